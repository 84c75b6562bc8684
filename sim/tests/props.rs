//! Property tests of the model (proptest, 256 cases each unless `PROPTEST_CASES`
//! says otherwise):
//!
//! * `legal_programs_compute_the_reference`: random legal GEMM programs (race-free
//!   and deadlock-free by construction) on random configurations complete within a
//!   bound computed from the program, leave exactly the memory image that a
//!   sequential interpreter written here predicts, and every tile's output equals
//!   an int32 matmul (and requantisation) computed here.
//! * `broken_tokens_complete_or_deadlock`: the same programs with one token flag
//!   dropped or added never hang: they complete or halt with DEADLOCK.
//! * `skipping_is_invisible`: with and without skipping quiet cycles (rule S1),
//!   the event streams, counters and memories are identical.
//! * `fuzzed_descriptors_end_cleanly`: arbitrary descriptors (raw bytes,
//!   structured junk, typed descriptors with random fields) end in completion or
//!   a latched error; a decode error names the first invalid descriptor with the
//!   code and address the ABI's decoder gives; device memory no valid STORE or
//!   FENCE names is never written; skipping changes nothing. (A ring that a
//!   valid STORE overwrites is legal; then only no-panic and a clean end are
//!   checked, and a timeout is accepted, since the final FENCE may be gone.)
//!
//! The generator checks itself: every program validates against the limits,
//! and executing it in ring order never waits on an empty token counter (so
//! every wait is served by an earlier signal: no deadlock with any queue or
//! fetch depth). Race freedom is by construction: each local buffer is written
//! by one unit and read by another only across a token chain (see `build`).

use npukit_abi::desc::{deps, Act, Add, Dma, Fence, Matmul, Max, Op};
use npukit_abi::program::Program;
use npukit_abi::{regs, Descriptor, ErrorCode, DESC_BYTES};
use npukit_sim::run::{self, RunError};
use npukit_sim::{Dataflow, Device, Event, EventSink, ModelDevice, NpuConfig, VecMemory};
use proptest::prelude::*;
use proptest::sample::Index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CASES: u32 = 256;

fn pt_config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------

#[allow(clippy::too_many_arguments)]
fn make_config(
    rows: u32,
    cols: u32,
    beat: u32,
    latency: u32,
    bytes_per_cycle: u32,
    max_outstanding: u32,
    fetch_depth: u32,
    queue_depth: u32,
) -> NpuConfig {
    let mut c = NpuConfig::default();
    c.array.rows = rows;
    c.array.cols = cols;
    c.dma.beat_bytes = beat;
    c.dram.latency = latency;
    c.dram.bytes_per_cycle = bytes_per_cycle;
    c.dram.max_outstanding = max_outstanding;
    c.cmdproc.fetch_depth = fetch_depth;
    c.cmdproc.queue_depth = queue_depth;
    c
}

/// Array 1..=16 x 1..=16, beat 8..64, DRAM latency 1..100, 1..64 bytes/cycle,
/// 1..16 outstanding, fetch depth 1..4, queue depth 1..8, any of the three
/// dataflow options (weight-stationary with or without weight
/// double-buffering, output-stationary); default memories.
fn config() -> impl Strategy<Value = NpuConfig> {
    (
        (1u32..=16, 1u32..=16),
        prop::sample::select(vec![8u32, 16, 32, 64]),
        (1u32..=100, 1u32..=64, 1u32..=16),
        (1u32..=4, 1u32..=8),
        0u8..3,
    )
        .prop_map(|((r, c), beat, (lat, bpc, out), (fd, qd), df)| {
            let mut cfg = make_config(r, c, beat, lat, bpc, out, fd, qd);
            cfg.array.dataflow = if df == 2 {
                Dataflow::OutputStationary
            } else {
                Dataflow::WeightStationary
            };
            cfg.array.weight_double_buffer = df == 1;
            cfg
        })
}

// ---------------------------------------------------------------------------
// Legal programs: specification
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ActSpec {
    multiplier: i32,
    shift: u8,
    zero_point: i8,
    relu: bool,
    bias: bool,
}

/// A scratchpad operand of an extra element-wise op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Src {
    /// The tile's first A chunk (written by the load unit).
    A,
    /// The tile's first W chunk (written by the load unit).
    W,
    /// The compute unit's private scratch.
    X,
}

/// An extra MAX (into the private scratchpad scratch) or ADD (into the private
/// accumulator scratch), placed in the tile's compute sequence.
#[derive(Debug, Clone)]
struct ExtraSpec {
    max: bool,
    /// 0: before the MATMULs, 1: after them, 2: after the ACT.
    pos: u8,
    a: Src,
    b: Src,
    len: u16,
    zps: (i8, i8),
    mults: (i16, i16),
    accumulate: bool,
}

/// One GEMM tile: OUT[M x N] = A[M x K] * W[K x N], K split in 1 or 2 folds.
#[derive(Debug, Clone)]
struct TileSpec {
    m: u16,
    ks: Vec<u16>,
    n: u16,
    /// Extra device-memory row pitch of A, W, C and O.
    pads: [u8; 4],
    /// Misalignment (mod 64) of A, W, bias, C and O in device memory.
    mis: [u8; 5],
    w_first: bool,
    act: Option<ActSpec>,
    /// With ACT, also store the raw int32 result.
    store_raw: bool,
    extras: Vec<ExtraSpec>,
    nops: u8,
    seed: u64,
}

#[derive(Debug, Clone)]
struct ProgSpec {
    /// Buffers per local region: 1 = fully serial, 2 = double-buffered, 3 = triple.
    nbuf: usize,
    /// Loads of tile `j` are placed before the compute of tile `j - load_ahead`.
    load_ahead: usize,
    /// Stores of tile `j` are placed after the compute of tile `j + store_lag`.
    store_lag: usize,
    /// Provide the first `nbuf` buffer-free tokens with priming descriptors
    /// instead of letting the first tiles skip the wait.
    prime: bool,
    /// Signal buffer-free tokens even when no one will take them.
    signal_all: bool,
    spad_base: u32,
    acc_base: u32,
    tiles: Vec<TileSpec>,
    /// A FENCE (with or without IRQ) after this pipeline step.
    mid_fence: Option<(usize, bool)>,
    writeback: bool,
    seq: u32,
}

fn pad() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), 1u8..24]
}

fn act_spec() -> impl Strategy<Value = ActSpec> {
    (
        prop_oneof![0x2000_0000i32..=i32::MAX, any::<i32>()],
        prop_oneof![28u8..=40, 0u8..=62],
        any::<i8>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(multiplier, shift, zero_point, relu, bias)| ActSpec {
            multiplier,
            shift,
            zero_point,
            relu,
            bias,
        })
}

fn src() -> impl Strategy<Value = Src> {
    prop_oneof![Just(Src::A), Just(Src::W), Just(Src::X)]
}

fn extra() -> impl Strategy<Value = ExtraSpec> {
    (
        any::<bool>(),
        0u8..3,
        src(),
        src(),
        1u16..=1280,
        any::<(i8, i8)>(),
        any::<(i16, i16)>(),
        any::<bool>(),
    )
        .prop_map(|(max, pos, a, b, len, zps, mults, accumulate)| ExtraSpec {
            max,
            pos,
            a,
            b,
            len,
            zps,
            mults,
            accumulate,
        })
}

fn tile(rows: u16, cols: u16) -> impl Strategy<Value = TileSpec> {
    (
        1u16..=40,
        prop::collection::vec(1u16..=rows, 1..=2),
        1u16..=cols,
        prop::array::uniform4(pad()),
        prop::array::uniform5(0u8..64),
        any::<bool>(),
        prop::option::weighted(0.4, act_spec()),
        any::<bool>(),
        prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec(extra(), 1..=2)],
        prop_oneof![4 => Just(0u8), 1 => 1u8..=2],
        any::<u64>(),
    )
        .prop_map(
            |(m, ks, n, pads, mis, w_first, act, store_raw, extras, nops, seed)| TileSpec {
                m,
                ks,
                n,
                pads,
                mis,
                w_first,
                act,
                store_raw,
                extras,
                nops,
                seed,
            },
        )
}

fn prog(rows: u16, cols: u16) -> impl Strategy<Value = ProgSpec> {
    prop::sample::select(vec![1usize, 2, 2, 3]).prop_flat_map(move |nbuf| {
        (
            0..nbuf,
            0..nbuf,
            any::<bool>(),
            any::<bool>(),
            0u32..4096,
            0u32..1024,
            prop::collection::vec(tile(rows, cols), 1..=6),
            prop::option::weighted(0.25, (0usize..8, any::<bool>())),
            any::<bool>(),
            any::<u32>(),
        )
            .prop_map(
                move |(
                    load_ahead,
                    store_lag,
                    prime,
                    signal_all,
                    spad_base,
                    acc_base,
                    tiles,
                    mid_fence,
                    writeback,
                    seq,
                )| ProgSpec {
                    nbuf,
                    load_ahead,
                    store_lag,
                    prime,
                    signal_all,
                    spad_base,
                    acc_base: acc_base * 4,
                    tiles,
                    mid_fence,
                    writeback,
                    seq,
                },
            )
    })
}

/// A random configuration with a random legal program for it.
fn legal() -> impl Strategy<Value = (NpuConfig, ProgSpec)> {
    config().prop_flat_map(|cfg| {
        let (r, c) = (cfg.array.rows as u16, cfg.array.cols as u16);
        (Just(cfg), prog(r, c))
    })
}

// ---------------------------------------------------------------------------
// Legal programs: construction
// ---------------------------------------------------------------------------

// Local memory slots (bytes), sized for the largest tile: M <= 40, K <= 2 x 16,
// N <= 16.
const A_SLOT: u32 = 40 * 32;
const W_SLOT: u32 = 32 * 16;
const O_SLOT: u32 = 40 * 16;
const X_SLOT: u32 = 1280;
const C_SLOT: u32 = 40 * 16 * 4;
const BIAS_SLOT: u32 = 16 * 4;
const SPAD_BUF: u32 = A_SLOT + W_SLOT + O_SLOT;
const ACC_BUF: u32 = C_SLOT + BIAS_SLOT;
const MAX_BUF: u32 = 3;
/// Device memory below this holds the ring; data goes above.
const DATA_BASE: u64 = 0x1_0000;

/// Where the program's local buffers live.
#[derive(Debug, Clone, Copy)]
struct Local {
    spad: u32,
    acc: u32,
}

impl Local {
    fn a(&self, b: usize) -> u32 {
        self.spad + b as u32 * SPAD_BUF
    }
    fn w(&self, b: usize) -> u32 {
        self.a(b) + A_SLOT
    }
    fn o(&self, b: usize) -> u32 {
        self.w(b) + W_SLOT
    }
    /// Compute-private scratchpad scratch (MAX destination).
    fn x(&self) -> u32 {
        self.spad + MAX_BUF * SPAD_BUF
    }
    /// Never-written scratchpad bytes (source of the priming STOREs).
    fn z(&self) -> u32 {
        self.x() + X_SLOT
    }
    fn c(&self, b: usize) -> u32 {
        self.acc + b as u32 * ACC_BUF
    }
    fn bias(&self, b: usize) -> u32 {
        self.c(b) + C_SLOT
    }
    /// Compute-private accumulator scratch (ADD destination).
    fn y(&self) -> u32 {
        self.acc + MAX_BUF * ACC_BUF
    }
}

/// Bump allocator of device memory with a pattern-filled image.
struct Image {
    next: u64,
    bytes: Vec<u8>,
}

impl Image {
    fn alloc(&mut self, len: u64, mis: u8) -> u64 {
        let a = self.next.next_multiple_of(64) + mis as u64;
        self.next = a + len + 8;
        a
    }
    fn put(&mut self, addr: u64, data: &[u8]) {
        let end = addr as usize + data.len();
        if self.bytes.len() < end {
            let old = self.bytes.len();
            self.bytes
                .extend((old..end).map(|i| (i as u8).wrapping_mul(29) ^ 0xA5));
        }
        self.bytes[addr as usize..end].copy_from_slice(data);
    }
}

/// What a tile must have produced, computed from its inputs.
#[derive(Debug, Clone)]
struct TileCheck {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<i8>,
    w: Vec<i8>,
    /// Raw int32 output: (address, row pitch).
    raw: Option<(u64, u64)>,
    /// Requantised output: (params, bias, address, row pitch).
    act: Option<(ActSpec, Vec<i32>, u64, u64)>,
}

#[derive(Debug, Clone)]
struct Built {
    descs: Vec<Descriptor>,
    /// Initial device memory, ring included.
    image: Vec<u8>,
    checks: Vec<TileCheck>,
    seq: u32,
    writeback: Option<u64>,
}

fn dma(local: u32, dram: u64, rows: u16, row_bytes: u16, dram_stride: u32, acc: bool) -> Dma {
    // A packed block whose device rows are contiguous moves as one row.
    let (rows, row_bytes) = if rows > 1 && dram_stride == row_bytes as u32 {
        (1, rows * row_bytes)
    } else {
        (rows, row_bytes)
    };
    Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride,
        local_stride: row_bytes as u32,
        acc,
    }
}

fn desc(op: Op) -> Descriptor {
    Descriptor::new(op)
}

/// Descriptors of one tile, per unit.
struct TileDescs {
    loads: Vec<Descriptor>,
    compute: Vec<Descriptor>,
    stores: Vec<Descriptor>,
    nops: u8,
}

fn build(spec: &ProgSpec) -> Built {
    let lay = Local {
        spad: spec.spad_base,
        acc: spec.acc_base,
    };
    let mut img = Image {
        next: DATA_BASE,
        bytes: vec![0; DATA_BASE as usize],
    };
    let t_count = spec.tiles.len();
    let nbuf = spec.nbuf;
    let mut checks = Vec::new();
    let mut groups = Vec::new();
    for (j, t) in spec.tiles.iter().enumerate() {
        let b = j % nbuf;
        let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
        let (m, n) = (t.m as usize, t.n as usize);
        let k: usize = t.ks.iter().map(|&k| k as usize).sum();
        let a: Vec<i8> = (0..m * k).map(|_| rng.gen()).collect();
        let w: Vec<i8> = (0..k * n).map(|_| rng.gen()).collect();
        let wide = rng.gen_bool(0.2);
        let bias: Vec<i32> = (0..n)
            .map(|_| {
                if wide {
                    rng.gen()
                } else {
                    rng.gen_range(-5000..5000)
                }
            })
            .collect();

        // Device memory.
        let a_pitch = k as u64 + t.pads[0] as u64;
        let w_pitch = n as u64 + t.pads[1] as u64;
        let c_pitch = 4 * n as u64 + t.pads[2] as u64;
        let o_pitch = n as u64 + t.pads[3] as u64;
        let a_addr = img.alloc(m as u64 * a_pitch, t.mis[0]);
        let w_addr = img.alloc(k as u64 * w_pitch, t.mis[1]);
        for i in 0..m {
            let row: Vec<u8> = a[i * k..(i + 1) * k].iter().map(|&v| v as u8).collect();
            img.put(a_addr + i as u64 * a_pitch, &row);
        }
        for i in 0..k {
            let row: Vec<u8> = w[i * n..(i + 1) * n].iter().map(|&v| v as u8).collect();
            img.put(w_addr + i as u64 * w_pitch, &row);
        }
        let mut bias_addr = 0;
        if t.act.as_ref().is_some_and(|a| a.bias) {
            bias_addr = img.alloc(4 * n as u64, t.mis[2]);
            let bytes: Vec<u8> = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
            img.put(bias_addr, &bytes);
        }
        let raw_out = (t.act.is_none() || t.store_raw).then(|| {
            let addr = img.alloc(m as u64 * c_pitch, t.mis[3]);
            img.put(addr + m as u64 * c_pitch, &[]);
            (addr, c_pitch)
        });
        let act_out = t.act.as_ref().map(|_| {
            let addr = img.alloc(m as u64 * o_pitch, t.mis[4]);
            img.put(addr + m as u64 * o_pitch, &[]);
            (addr, o_pitch)
        });

        // Loads.
        let mut a_loads = Vec::new();
        let mut w_loads = Vec::new();
        let mut k_off = 0u16;
        for &kc in &t.ks {
            let ko = k_off as u32;
            a_loads.push(desc(Op::Load(dma(
                lay.a(b) + m as u32 * ko,
                a_addr + ko as u64,
                t.m,
                kc,
                a_pitch as u32,
                false,
            ))));
            w_loads.push(desc(Op::Load(dma(
                lay.w(b) + ko * n as u32,
                w_addr + ko as u64 * w_pitch,
                kc,
                t.n,
                w_pitch as u32,
                false,
            ))));
            k_off += kc;
        }
        let mut loads = if t.w_first {
            [w_loads, a_loads].concat()
        } else {
            [a_loads, w_loads].concat()
        };
        if t.act.as_ref().is_some_and(|a| a.bias) {
            loads.push(desc(Op::Load(dma(
                lay.bias(b),
                bias_addr,
                1,
                4 * t.n,
                0,
                true,
            ))));
        }

        // Compute: (descriptor, reads memory the load unit wrote).
        let k0 = t.ks[0] as u32;
        let src_of = |s: Src| match s {
            Src::A => (lay.a(b), m as u32 * k0),
            Src::W => (lay.w(b), k0 * n as u32),
            Src::X => (lay.x(), X_SLOT),
        };
        let extra_op = |e: &ExtraSpec| {
            let (sa, la) = src_of(e.a);
            let (sb, lb) = src_of(e.b);
            let len = (e.len as u32).min(la).min(lb);
            let op = if e.max {
                Op::Max(Max {
                    a: sa,
                    b: sb,
                    dst: lay.x(),
                    len,
                })
            } else {
                Op::Add(Add {
                    a: sa,
                    b: sb,
                    dst: lay.y(),
                    len,
                    a_zp: e.zps.0,
                    b_zp: e.zps.1,
                    a_mult: e.mults.0,
                    b_mult: e.mults.1,
                    accumulate: e.accumulate,
                })
            };
            (desc(op), e.a != Src::X || e.b != Src::X)
        };
        let extras_at = |pos: u8| t.extras.iter().filter(move |e| e.pos == pos).map(extra_op);
        let mut compute: Vec<(Descriptor, bool)> = extras_at(0).collect();
        let mut k_off = 0u32;
        for (c, &kc) in t.ks.iter().enumerate() {
            let mm = Matmul {
                a: lay.a(b) + m as u32 * k_off,
                w: lay.w(b) + k_off * n as u32,
                out: lay.c(b),
                m: t.m,
                k: kc,
                n: t.n,
                accumulate: c > 0,
            };
            compute.push((desc(Op::Matmul(mm)), true));
            k_off += kc as u32;
        }
        compute.extend(extras_at(1));
        if let Some(act) = &t.act {
            let op = Act {
                src: lay.c(b),
                dst: lay.o(b),
                bias: act.bias.then(|| lay.bias(b)),
                rows: t.m,
                cols: t.n,
                multiplier: act.multiplier,
                shift: act.shift,
                zero_point: act.zero_point,
                relu: act.relu,
                qtab: None,
            };
            compute.push((desc(Op::Act(op)), act.bias));
        }
        compute.extend(extras_at(2));

        // Stores.
        let mut stores = Vec::new();
        if let Some((addr, pitch)) = act_out {
            stores.push(desc(Op::Store(dma(
                lay.o(b),
                addr,
                t.m,
                t.n,
                pitch as u32,
                false,
            ))));
        }
        if let Some((addr, pitch)) = raw_out {
            stores.push(desc(Op::Store(dma(
                lay.c(b),
                addr,
                t.m,
                4 * t.n,
                pitch as u32,
                true,
            ))));
        }

        // Tokens. Buffer-free tokens (compute->load, store->compute) of tile j
        // are taken by tile j + nbuf, or by tile j when primed.
        let waits_free = j >= nbuf || spec.prime;
        let signals_free = j + nbuf < t_count || spec.signal_all;
        let wait_next = if waits_free { deps::WAIT_NEXT } else { 0 };
        loads[0].deps |= wait_next;
        if let Some(l) = loads.last_mut() {
            l.deps |= deps::SIGNAL_NEXT;
        }
        compute[0].0.deps |= deps::WAIT_PREV | wait_next;
        if signals_free {
            if let Some(i) = compute.iter().rposition(|(_, reads_loaded)| *reads_loaded) {
                compute[i].0.deps |= deps::SIGNAL_PREV;
            }
        }
        if let Some(c) = compute.last_mut() {
            c.0.deps |= deps::SIGNAL_NEXT;
        }
        stores[0].deps |= deps::WAIT_PREV;
        if signals_free {
            if let Some(s) = stores.last_mut() {
                s.deps |= deps::SIGNAL_PREV;
            }
        }
        groups.push(TileDescs {
            loads,
            compute: compute.into_iter().map(|(d, _)| d).collect(),
            stores,
            nops: t.nops,
        });
        checks.push(TileCheck {
            m,
            k,
            n,
            a,
            w,
            raw: raw_out,
            act: t
                .act
                .clone()
                .map(|s| (s, bias, act_out.map_or(0, |o| o.0), o_pitch)),
        });
    }

    // Ring order.
    let mut descs = Vec::new();
    if spec.prime {
        let dummy = img.alloc(nbuf as u64 * 8, 0);
        img.put(dummy, &vec![0xEE; nbuf * 8]);
        for _ in 0..nbuf {
            let op = Op::Max(Max {
                a: lay.z(),
                b: lay.z(),
                dst: lay.x(),
                len: 1,
            });
            descs.push(desc(op).with_deps(deps::SIGNAL_PREV));
        }
        for i in 0..nbuf {
            let d = dma(lay.z(), dummy + 8 * i as u64, 1, 1 + i as u16, 0, false);
            descs.push(desc(Op::Store(d)).with_deps(deps::SIGNAL_PREV));
        }
    }
    let (la, sl) = (spec.load_ahead, spec.store_lag);
    for s in 0..t_count + la + sl {
        if let Some(g) = groups.get(s) {
            descs.extend((0..g.nops).map(|_| desc(Op::Nop)));
            descs.extend(g.loads.iter().copied());
        }
        if let Some(g) = s.checked_sub(la).and_then(|j| groups.get(j)) {
            descs.extend(g.compute.iter().copied());
        }
        if let Some(g) = s.checked_sub(la + sl).and_then(|j| groups.get(j)) {
            descs.extend(g.stores.iter().copied());
        }
        if spec.mid_fence.is_some_and(|(at, _)| at == s) {
            let irq = spec.mid_fence.is_some_and(|(_, irq)| irq);
            let f = Fence {
                seq: spec.seq ^ 0x55,
                writeback: None,
                irq,
            };
            descs.push(desc(Op::Fence(f)));
        }
    }
    let writeback = spec.writeback.then(|| {
        let a = img.alloc(4, 0);
        img.put(a, &[0; 4]);
        a
    });
    descs.push(desc(Op::Fence(Fence {
        seq: spec.seq,
        writeback,
        irq: true,
    })));

    let ring = (descs.len() as u64 + 1).next_power_of_two() * DESC_BYTES as u64;
    assert!(ring <= DATA_BASE, "program too long for the ring area");
    for (i, d) in descs.iter().enumerate() {
        img.put((i * DESC_BYTES) as u64, &d.encode());
    }
    // Slack so that beat-aligned requests near the end stay in memory.
    let size = (img.next + 4096).next_multiple_of(4096);
    img.put(size - 1, &[0xA5]);
    Built {
        descs,
        image: img.bytes,
        checks,
        seq: spec.seq,
        writeback,
    }
}

// ---------------------------------------------------------------------------
// Reference: sequential interpreter and direct tile math
// ---------------------------------------------------------------------------

/// The memories after executing `descs` one by one in ring order. For a
/// race-free program this is what the device must produce. Fails if a
/// descriptor waits on a token no earlier descriptor provided (the generator's
/// deadlock-freedom argument).
#[derive(Debug, Clone)]
struct RefState {
    mem: Vec<u8>,
    spad: Vec<u8>,
    acc: Vec<u8>,
    fence_seq: u32,
}

fn rd32(b: &[u8], a: usize) -> i32 {
    i32::from_le_bytes([b[a], b[a + 1], b[a + 2], b[a + 3]])
}

fn interpret(cfg: &NpuConfig, descs: &[Descriptor], image: &[u8]) -> Result<RefState, String> {
    let mut s = RefState {
        mem: image.to_vec(),
        spad: vec![0; cfg.memory.spad_bytes as usize],
        acc: vec![0; cfg.memory.acc_bytes as usize],
        fence_seq: 0,
    };
    // Token counters: load->compute, compute->load, compute->store, store->compute.
    let mut tokens = [0u32; 4];
    for (i, d) in descs.iter().enumerate() {
        let unit = d.opcode().unit();
        let (wp, wn, sp, sn) = match unit {
            Some(npukit_abi::Unit::Load) => (None, Some(1), None, Some(0)),
            Some(npukit_abi::Unit::Compute) => (Some(0), Some(3), Some(1), Some(2)),
            Some(npukit_abi::Unit::Store) => (Some(2), None, Some(3), None),
            None => (None, None, None, None),
        };
        for (flag, q) in [(deps::WAIT_PREV, wp), (deps::WAIT_NEXT, wn)] {
            if d.deps & flag != 0 {
                let q = q.ok_or(format!("descriptor {i}: wait flag on a unit without it"))?;
                if tokens[q] == 0 {
                    return Err(format!("descriptor {i} waits on empty counter {q}"));
                }
                tokens[q] -= 1;
            }
        }
        match &d.op {
            Op::Nop => {}
            Op::Load(x) | Op::Store(x) => {
                let load = matches!(d.op, Op::Load(_));
                for r in 0..x.rows as usize {
                    let dev = x.dram as usize + r * x.dram_stride as usize;
                    let loc = x.local as usize + r * x.local_stride as usize;
                    let n = x.row_bytes as usize;
                    let side = if x.acc { &mut s.acc } else { &mut s.spad };
                    if load {
                        side[loc..loc + n].copy_from_slice(&s.mem[dev..dev + n]);
                    } else {
                        s.mem[dev..dev + n].copy_from_slice(&side[loc..loc + n]);
                    }
                }
            }
            Op::Matmul(mm) => {
                let (m, k, n) = (mm.m as usize, mm.k as usize, mm.n as usize);
                for i in 0..m {
                    for j in 0..n {
                        let mut v = 0i32;
                        for kk in 0..k {
                            let a = s.spad[mm.a as usize + i * k + kk] as i8 as i32;
                            let w = s.spad[mm.w as usize + kk * n + j] as i8 as i32;
                            v = v.wrapping_add(a * w);
                        }
                        let o = mm.out as usize + 4 * (i * n + j);
                        if mm.accumulate {
                            v = v.wrapping_add(rd32(&s.acc, o));
                        }
                        s.acc[o..o + 4].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            Op::Act(a) => {
                let (rows, cols) = (a.rows as usize, a.cols as usize);
                for i in 0..rows {
                    for j in 0..cols {
                        let x = rd32(&s.acc, a.src as usize + 4 * (i * cols + j));
                        let bias = a.bias.map_or(0, |b| rd32(&s.acc, b as usize + 4 * j));
                        // PER_CHANNEL: entry j = {i32 multiplier, u32 shift (bits 7:0)}.
                        let (mult, shift) = match a.qtab {
                            Some(q) => {
                                let e = q as usize + 8 * j;
                                (rd32(&s.acc, e), rd32(&s.acc, e + 4) as u8)
                            }
                            None => (a.multiplier, a.shift),
                        };
                        let y = requant(x, bias, mult, shift, a.zero_point, a.relu);
                        s.spad[a.dst as usize + i * cols + j] = y as u8;
                    }
                }
            }
            Op::Add(a) => {
                for i in 0..a.len as usize {
                    let x =
                        (s.spad[a.a as usize + i] as i8 as i32 - a.a_zp as i32) * a.a_mult as i32;
                    let y =
                        (s.spad[a.b as usize + i] as i8 as i32 - a.b_zp as i32) * a.b_mult as i32;
                    let o = a.dst as usize + 4 * i;
                    let mut v = x + y;
                    if a.accumulate {
                        v = v.wrapping_add(rd32(&s.acc, o));
                    }
                    s.acc[o..o + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
            Op::Max(mx) => {
                for i in 0..mx.len as usize {
                    let x = s.spad[mx.a as usize + i] as i8;
                    let y = s.spad[mx.b as usize + i] as i8;
                    s.spad[mx.dst as usize + i] = x.max(y) as u8;
                }
            }
            Op::Fence(f) => {
                s.fence_seq = f.seq;
                if let Some(a) = f.writeback {
                    s.mem[a as usize..a as usize + 4].copy_from_slice(&f.seq.to_le_bytes());
                }
            }
        }
        for (flag, q) in [(deps::SIGNAL_PREV, sp), (deps::SIGNAL_NEXT, sn)] {
            if d.deps & flag != 0 {
                let q = q.ok_or(format!("descriptor {i}: signal flag on a unit without it"))?;
                tokens[q] += 1;
                if tokens[q] > 255 {
                    return Err(format!("descriptor {i} overflows counter {q}"));
                }
            }
        }
    }
    Ok(s)
}

/// Requantisation as docs/timing.md and the ABI define it, in wide arithmetic:
/// `x = sat32(acc + bias)`, `r = round_half_up(x * multiplier / 2^shift)`,
/// `y = clamp(r + zero_point, relu ? zero_point : -128, 127)`.
fn requant(acc: i32, bias: i32, multiplier: i32, shift: u8, zero_point: i8, relu: bool) -> i8 {
    let x = (acc as i128 + bias as i128).clamp(i32::MIN as i128, i32::MAX as i128);
    let p = x * multiplier as i128;
    let r = if shift == 0 {
        p
    } else if shift > 100 {
        // |p| <= 2^62 < 2^(shift-1): p + 2^(shift-1) lies in (0, 2^shift).
        0
    } else {
        (p + (1i128 << (shift - 1))) >> shift
    };
    let lo = if relu { zero_point as i128 } else { -128 };
    (r + zero_point as i128).clamp(lo, 127) as i8
}

/// Checks each tile's outputs in device memory against A x W computed here.
fn check_tiles(checks: &[TileCheck], mem: &[u8]) -> Result<(), TestCaseError> {
    for (ti, t) in checks.iter().enumerate() {
        let mut c = vec![0i32; t.m * t.n];
        for i in 0..t.m {
            for j in 0..t.n {
                c[i * t.n + j] = (0..t.k)
                    .map(|kk| t.a[i * t.k + kk] as i32 * t.w[kk * t.n + j] as i32)
                    .sum();
            }
        }
        for i in 0..t.m {
            for j in 0..t.n {
                if let Some((addr, pitch)) = t.raw {
                    let got = rd32(mem, (addr + i as u64 * pitch) as usize + 4 * j);
                    prop_assert_eq!(got, c[i * t.n + j], "tile {} raw ({}, {})", ti, i, j);
                }
                if let Some((s, bias, addr, pitch)) = &t.act {
                    let b = if s.bias { bias[j] } else { 0 };
                    let want = requant(
                        c[i * t.n + j],
                        b,
                        s.multiplier,
                        s.shift,
                        s.zero_point,
                        s.relu,
                    );
                    let got = mem[(addr + i as u64 * pitch) as usize + j] as i8;
                    prop_assert_eq!(got, want, "tile {} act ({}, {})", ti, i, j);
                }
            }
        }
    }
    Ok(())
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn same_bytes(what: &str, got: &[u8], want: &[u8]) -> Result<(), TestCaseError> {
    if let Some(i) = first_diff(got, want) {
        return Err(TestCaseError::fail(format!(
            "{what} differs first at {i:#x}: got {:?}, want {:?}",
            got.get(i),
            want.get(i)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

fn dma_beats(d: &Dma, beat: u64) -> u64 {
    (0..d.rows as u64)
        .map(|r| {
            let a = d.dram.wrapping_add(r.wrapping_mul(d.dram_stride as u64));
            (a % beat + d.row_bytes as u64).div_ceil(beat)
        })
        .sum()
}

/// Memory requests the program makes with translation off: fetch beats, DMA
/// beats, FENCE writebacks (rules F1, D1, F4).
fn mem_requests(cfg: &NpuConfig, descs: &[Descriptor]) -> u64 {
    let beat = cfg.dma.beat_bytes as u64;
    let fetch = DESC_BYTES as u64 / beat.min(DESC_BYTES as u64);
    descs
        .iter()
        .map(|d| {
            fetch
                + match &d.op {
                    Op::Load(x) | Op::Store(x) => dma_beats(x, beat),
                    Op::Fence(f) => f.writeback.is_some() as u64,
                    _ => 0,
                }
        })
        .sum()
}

/// Compute latency by rules C1-C3; with weight double-buffering (C1b) the
/// longest one (the weight load starting at issue).
fn compute_latency(cfg: &NpuConfig, d: &Descriptor) -> u64 {
    let (r, c) = (cfg.array.rows as u64, cfg.array.cols as u64);
    match &d.op {
        Op::Matmul(m) if cfg.array.dataflow == Dataflow::OutputStationary => {
            (m.m as u64).div_ceil(r) * r.max(c) + r + c + 1
        }
        Op::Matmul(m) => 2 * r + c + m.m as u64 - 2,
        Op::Act(a) => a.rows as u64 * (a.cols as u64).div_ceil(c) + 2,
        Op::Add(a) => (a.len as u64).div_ceil(c) + 2,
        Op::Max(m) => (m.len as u64).div_ceil(c) + 2,
        _ => 0,
    }
}

/// A generous bound on the cycles of any schedule of `descs` (only the ones
/// that validate count): every memory request alone on the port, every
/// compute descriptor alone, times four.
fn cycle_bound(cfg: &NpuConfig, descs: &[Descriptor]) -> u64 {
    let beat = cfg.dma.beat_bytes as u64;
    let per_req = cfg.dram.latency as u64 + beat.div_ceil(cfg.dram.bytes_per_cycle as u64) + 2;
    let lim = cfg.limits();
    let mut t = 1000;
    for d in descs.iter().filter(|d| d.validate(&lim).is_ok()) {
        t += mem_requests(cfg, std::slice::from_ref(d)) * per_req + compute_latency(cfg, d) + 4;
    }
    4 * t
}

struct Ran<S: EventSink> {
    res: Result<run::Outcome, RunError>,
    dev: ModelDevice<S>,
    mem: VecMemory,
}

fn run_prog<S: EventSink>(
    cfg: &NpuConfig,
    sink: S,
    skip: bool,
    descs: &[Descriptor],
    image: &[u8],
) -> Ran<S> {
    let mut dev = ModelDevice::with_sink(cfg, sink);
    dev.set_skip(skip);
    let mut mem = VecMemory::new(image.len());
    mem.bytes_mut().copy_from_slice(image);
    let res = run::run_program(&mut dev, &mut mem, 0, descs, cycle_bound(cfg, descs));
    Ran { res, dev, mem }
}

/// Builds the program and checks the generator's own promises.
fn build_checked(cfg: &NpuConfig, spec: &ProgSpec) -> Result<(Built, RefState), TestCaseError> {
    let built = build(spec);
    if let Err((i, e)) = Program::from(built.descs.clone()).validate(&cfg.limits()) {
        return Err(TestCaseError::fail(format!(
            "generator bug: descriptor {i}: {e}"
        )));
    }
    let reference = interpret(cfg, &built.descs, &built.image)
        .map_err(|e| TestCaseError::fail(format!("generator bug: {e}")))?;
    Ok((built, reference))
}

/// Legal program: completes, memory and local memories as the reference,
/// tiles as the direct math, counters as the rules.
fn check_legal(cfg: &NpuConfig, spec: &ProgSpec) -> Result<(), TestCaseError> {
    let (built, reference) = build_checked(cfg, spec)?;
    let Ran { res, mut dev, mem } =
        run_prog(cfg, npukit_sim::NullSink, true, &built.descs, &built.image);
    let out = res.map_err(|e| TestCaseError::fail(format!("run failed: {e}")))?;
    prop_assert_eq!(dev.error(), None);
    same_bytes("device memory", mem.bytes(), &reference.mem)?;
    same_bytes("scratchpad", &dev.local().spad, &reference.spad)?;
    same_bytes("accumulator memory", &dev.local().acc, &reference.acc)?;
    check_tiles(&built.checks, mem.bytes())?;
    if let Some(a) = built.writeback {
        prop_assert_eq!(
            &mem.bytes()[a as usize..a as usize + 4],
            &built.seq.to_le_bytes()
        );
    }
    prop_assert_eq!(dev.mmio_read(regs::FENCE_SEQ), built.seq);
    prop_assert_eq!(reference.fence_seq, built.seq);
    let c = out.counters;
    let descs = &built.descs;
    let macs: u64 = descs
        .iter()
        .map(|d| match &d.op {
            Op::Matmul(m) => m.m as u64 * m.k as u64 * m.n as u64,
            _ => 0,
        })
        .sum();
    let bytes = |load: bool| -> u64 {
        descs
            .iter()
            .map(|d| match (&d.op, load) {
                (Op::Load(x), true) | (Op::Store(x), false) => x.rows as u64 * x.row_bytes as u64,
                _ => 0,
            })
            .sum()
    };
    let busy: u64 = descs.iter().map(|d| compute_latency(cfg, d)).sum();
    // C1b: a MATMUL whose weight load finished before its issue saves R - 1.
    let hideable: u64 = if cfg.array.weight_double_buffer {
        let n = descs
            .iter()
            .filter(|d| matches!(d.op, Op::Matmul(_)))
            .count() as u64;
        n * (cfg.array.rows as u64 - 1)
    } else {
        0
    };
    prop_assert_eq!(c.macs, macs);
    prop_assert_eq!(c.desc_done, descs.len() as u64);
    prop_assert_eq!(c.dma_rd_bytes, bytes(true));
    prop_assert_eq!(c.dma_wr_bytes, bytes(false));
    prop_assert_eq!(c.mem_beats, mem_requests(cfg, descs));
    prop_assert!(
        c.compute_busy <= busy && c.compute_busy + hideable >= busy,
        "compute busy {} not within [{}, {busy}]",
        c.compute_busy,
        busy - hideable
    );
    if hideable == 0 {
        prop_assert_eq!(c.compute_busy, busy);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Broken token patterns
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MutKind {
    /// Clear one SIGNAL flag (can only add ordering: a later token is taken).
    DropSignal,
    /// Set one WAIT flag the unit allows (can only add ordering).
    AddWait,
    /// Clear one WAIT flag (can race).
    DropWait,
    /// Set one SIGNAL flag the unit allows (can race).
    AddSignal,
}

#[derive(Debug, Clone)]
struct Mutation {
    kind: MutKind,
    which: Index,
    bit: Index,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        prop_oneof![
            4 => Just(MutKind::DropSignal),
            2 => Just(MutKind::AddWait),
            1 => Just(MutKind::DropWait),
            1 => Just(MutKind::AddSignal),
        ],
        any::<Index>(),
        any::<Index>(),
    )
        .prop_map(|(kind, which, bit)| Mutation { kind, which, bit })
}

const WAITS: u8 = deps::WAIT_PREV | deps::WAIT_NEXT;
const SIGNALS: u8 = deps::SIGNAL_PREV | deps::SIGNAL_NEXT;

/// Applies the mutation; returns (descriptor index, old deps, new deps), or
/// `None` if no descriptor can take it.
fn mutate(descs: &mut [Descriptor], m: &Mutation) -> Option<(usize, u8, u8)> {
    let (pool, present) = match m.kind {
        MutKind::DropSignal => (SIGNALS, true),
        MutKind::AddWait => (WAITS, false),
        MutKind::DropWait => (WAITS, true),
        MutKind::AddSignal => (SIGNALS, false),
    };
    let bits_of = |d: &Descriptor| -> Vec<u8> {
        let allowed = d.opcode().unit().map_or(0, |u| u.allowed_deps());
        (0..4)
            .map(|b| 1u8 << b)
            .filter(|&f| f & pool & allowed != 0 && (d.deps & f != 0) == present)
            .collect()
    };
    let cands: Vec<usize> = (0..descs.len())
        .filter(|&i| !bits_of(&descs[i]).is_empty())
        .collect();
    if cands.is_empty() {
        return None;
    }
    let i = *m.which.get(&cands);
    let bits = bits_of(&descs[i]);
    let f = *m.bit.get(&bits);
    let old = descs[i].deps;
    descs[i].deps ^= f;
    Some((i, old, descs[i].deps))
}

fn check_broken(cfg: &NpuConfig, spec: &ProgSpec, m: &Mutation) -> Result<(), TestCaseError> {
    let (built, reference) = build_checked(cfg, spec)?;
    let mut descs = built.descs.clone();
    let Some((at, old, new)) = mutate(&mut descs, m) else {
        return Ok(());
    };
    let mut image = built.image.clone();
    image[at * DESC_BYTES..(at + 1) * DESC_BYTES].copy_from_slice(&descs[at].encode());
    let Ran { res, dev, mem } = run_prog(cfg, npukit_sim::NullSink, true, &descs, &image);
    let why = format!("descriptor {at} deps {old:#x} -> {new:#x}");
    match res {
        Ok(_) => {
            prop_assert_eq!(dev.error(), None);
            // Only more ordering: a completed run still computes the reference.
            if matches!(m.kind, MutKind::DropSignal | MutKind::AddWait) {
                let mut want = reference.mem.clone();
                want[at * DESC_BYTES..(at + 1) * DESC_BYTES].copy_from_slice(&descs[at].encode());
                same_bytes(&format!("device memory ({why})"), mem.bytes(), &want)?;
            }
        }
        Err(RunError::Device {
            code: ErrorCode::Deadlock,
            index,
            addr,
        }) => {
            prop_assert_eq!(addr, 0);
            let d = descs.get(index as usize);
            prop_assert!(
                d.is_some_and(|d| d.deps & WAITS != 0),
                "DEADLOCK names descriptor {} which waits on nothing ({})",
                index,
                why
            );
        }
        Err(e) => return Err(TestCaseError::fail(format!("{e} ({why})"))),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Skip equivalence
// ---------------------------------------------------------------------------

fn check_skip(cfg: &NpuConfig, spec: &ProgSpec, m: Option<&Mutation>) -> Result<(), TestCaseError> {
    let built = build(spec);
    let mut descs = built.descs.clone();
    let mut image = built.image.clone();
    if let Some((at, _, _)) = m.and_then(|m| mutate(&mut descs, m)) {
        image[at * DESC_BYTES..(at + 1) * DESC_BYTES].copy_from_slice(&descs[at].encode());
    }
    let stepped = run_prog(cfg, Vec::<(u64, Event)>::new(), false, &descs, &image);
    let skipped = run_prog(cfg, Vec::<(u64, Event)>::new(), true, &descs, &image);
    let (ev_a, ev_b) = (stepped.dev.sink(), skipped.dev.sink());
    if let Some(i) = (0..ev_a.len().max(ev_b.len())).find(|&i| ev_a.get(i) != ev_b.get(i)) {
        return Err(TestCaseError::fail(format!(
            "event {i} differs: stepped {:?}, skipped {:?}",
            ev_a.get(i),
            ev_b.get(i)
        )));
    }
    prop_assert_eq!(&stepped.res, &skipped.res);
    prop_assert_eq!(stepped.dev.counters(), skipped.dev.counters());
    prop_assert_eq!(stepped.dev.cycle(), skipped.dev.cycle());
    prop_assert_eq!(stepped.dev.error(), skipped.dev.error());
    prop_assert_eq!(stepped.dev.tokens(), skipped.dev.tokens());
    same_bytes("device memory", stepped.mem.bytes(), skipped.mem.bytes())?;
    same_bytes(
        "scratchpad",
        &stepped.dev.local().spad,
        &skipped.dev.local().spad,
    )?;
    same_bytes(
        "accumulator",
        &stepped.dev.local().acc,
        &skipped.dev.local().acc,
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Fuzzed descriptors
// ---------------------------------------------------------------------------

const FUZZ_MEM: usize = 64 << 10;

fn half() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..4, 0u32..64, 0u32..1024, 0u32..=0xFFFF]
}

fn word() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        0u32..64,
        0u32..4096,
        0u32..FUZZ_MEM as u32,
        any::<u32>(),
        (half(), half()).prop_map(|(lo, hi)| lo | hi << 16),
    ]
}

/// Structured junk: word 0 mostly with a real opcode and zero reserved bits,
/// words 1-7 from a mix of small, in-memory and arbitrary values.
fn word_desc() -> impl Strategy<Value = [u8; DESC_BYTES]> {
    (
        prop_oneof![9 => 0u32..8, 1 => 0u32..256],
        0u32..16,
        0u32..16,
        prop_oneof![9 => Just(0u32), 1 => any::<u32>()],
        prop::array::uniform7(word()),
    )
        .prop_map(|(op, dep, fl, hi, w)| {
            let mut b = [0u8; DESC_BYTES];
            let w0 = op | dep << 8 | fl << 12 | hi << 16;
            b[..4].copy_from_slice(&w0.to_le_bytes());
            for (i, v) in w.iter().enumerate() {
                b[4 * (i + 1)..4 * (i + 2)].copy_from_slice(&v.to_le_bytes());
            }
            b
        })
}

/// The encoding of a typed descriptor (so no reserved bits) from random fields.
/// With `sane`, fields are folded into the local memories of [`fuzz_config`]
/// and accumulator addresses aligned, so that most descriptors validate (shapes
/// can still exceed the array, device addresses can still leave memory);
/// otherwise fields are small but unconstrained, and so are the flags. With
/// `tokens` false, no dependency flags (sane descriptors then all run).
fn typed_desc(sane: bool, tokens: bool) -> impl Strategy<Value = [u8; DESC_BYTES]> {
    let field =
        prop_oneof![1 => 0u32..8, 3 => 0u32..256, 2 => 0u32..2048, 1 => 0u32..FUZZ_MEM as u32];
    let dep = prop_oneof![Just(0u8), 0u8..16];
    (
        0u8..8,
        dep,
        any::<bool>(),
        prop::array::uniform8(field),
        any::<u32>(),
    )
        .prop_map(move |(op, dep, flag, f, r)| {
            let op = if sane {
                sane_op(op, flag, &f, r)
            } else {
                wild_op(op, flag, &f, r)
            };
            let allowed = Descriptor::new(op)
                .opcode()
                .unit()
                .map_or(0, |u| u.allowed_deps());
            let dep = match (sane, tokens) {
                (_, false) => 0,
                (true, true) => dep & allowed,
                (false, true) => dep,
            };
            Descriptor::new(op).with_deps(dep).encode()
        })
}

fn s16(v: u32) -> u16 {
    v.min(0xFFFF) as u16
}

fn wild_op(op: u8, flag: bool, f: &[u32; 8], r: u32) -> Op {
    match op {
        0 => Op::Nop,
        1 | 2 => {
            let row_bytes = f[3] % 128;
            let d = Dma {
                local: f[0],
                dram: f[1] as u64,
                rows: s16(f[2] % 16),
                row_bytes: s16(row_bytes),
                dram_stride: f[4],
                local_stride: if r & 2 != 0 {
                    f[5]
                } else {
                    row_bytes + f[5] % 32
                },
                acc: flag,
            };
            if op == 1 {
                Op::Load(d)
            } else {
                Op::Store(d)
            }
        }
        3 => Op::Matmul(Matmul {
            a: f[0],
            w: f[1],
            out: f[2],
            m: s16(f[3] % 48),
            k: s16(f[4] % 20),
            n: s16(f[5] % 20),
            accumulate: flag,
        }),
        4 => Op::Act(Act {
            src: f[0],
            dst: f[1],
            bias: flag.then_some(f[2]),
            rows: s16(f[3] % 32),
            cols: s16(f[4] % 32),
            multiplier: r as i32,
            shift: (f[5] % 70) as u8,
            zero_point: r as i8,
            relu: r & 1 != 0,
            // PER_CHANNEL with any table address (the per-tensor fields left in).
            qtab: (r & 6 == 6).then_some(f[6]),
        }),
        5 => Op::Add(Add {
            a: f[0],
            b: f[1],
            dst: f[2],
            len: f[3] % 512,
            a_zp: r as i8,
            b_zp: (r >> 8) as i8,
            a_mult: (r >> 16) as i16,
            b_mult: r as i16,
            accumulate: flag,
        }),
        6 => Op::Max(Max {
            a: f[0],
            b: f[1],
            dst: f[2],
            len: f[3] % 512,
        }),
        _ => Op::Fence(Fence {
            seq: r,
            writeback: flag.then_some(f[0] as u64),
            irq: r & 1 != 0,
        }),
    }
}

const FUZZ_SPAD: u32 = 2048;
const FUZZ_ACC: u32 = 1024;

fn sane_op(op: u8, flag: bool, f: &[u32; 8], r: u32) -> Op {
    // `len` bytes placed in a local memory (4-aligned in the accumulator).
    let place = |v: u32, len: u32, acc: bool| {
        let size = if acc { FUZZ_ACC } else { FUZZ_SPAD };
        let a = v % (size - len + 1);
        if acc {
            a & !3
        } else {
            a
        }
    };
    match op {
        0 => Op::Nop,
        1 | 2 => {
            let acc = flag;
            let unit = if acc { 4 } else { 1 };
            let rows = 1 + f[2] % 8;
            let row_bytes = (1 + f[3] % 64).next_multiple_of(unit);
            let local_stride = (row_bytes + f[5] % 32).next_multiple_of(unit);
            let extent = (rows - 1) * local_stride + row_bytes;
            let d = Dma {
                local: place(f[0], extent, acc),
                dram: f[1] as u64,
                rows: rows as u16,
                row_bytes: row_bytes as u16,
                dram_stride: f[4] % 512,
                local_stride,
                acc,
            };
            if op == 1 {
                Op::Load(d)
            } else {
                Op::Store(d)
            }
        }
        3 => {
            let (m, k, n) = (1 + f[3] % 16, 1 + f[4] % 16, 1 + f[5] % 16);
            Op::Matmul(Matmul {
                a: place(f[0], m * k, false),
                w: place(f[1], k * n, false),
                out: place(f[2], 4 * m * n, true),
                m: m as u16,
                k: k as u16,
                n: n as u16,
                accumulate: flag,
            })
        }
        4 => {
            let (rows, cols) = (1 + f[3] % 16, 1 + f[4] % 16);
            let per_channel = r & 6 == 6;
            Op::Act(Act {
                src: place(f[0], 4 * rows * cols, true),
                dst: place(f[1], rows * cols, false),
                bias: flag.then(|| place(f[2], 4 * cols, true)),
                rows: rows as u16,
                cols: cols as u16,
                multiplier: if per_channel { 0 } else { r as i32 },
                shift: if per_channel { 0 } else { (f[5] % 63) as u8 },
                zero_point: r as i8,
                relu: r & 1 != 0,
                qtab: per_channel.then(|| place(f[6], 8 * cols, true)),
            })
        }
        5 => {
            let len = 1 + f[3] % 256;
            Op::Add(Add {
                a: place(f[0], len, false),
                b: place(f[1], len, false),
                dst: place(f[2], 4 * len, true),
                len,
                a_zp: r as i8,
                b_zp: (r >> 8) as i8,
                a_mult: (r >> 16) as i16,
                b_mult: r as i16,
                accumulate: flag,
            })
        }
        6 => {
            let len = 1 + f[3] % 512;
            Op::Max(Max {
                a: place(f[0], len, false),
                b: place(f[1], len, false),
                dst: place(f[2], len, false),
                len,
            })
        }
        _ => Op::Fence(Fence {
            seq: r,
            writeback: flag.then_some(f[0] as u64 & !3),
            irq: r & 1 != 0,
        }),
    }
}

/// A ring body: sane typed descriptors without or with tokens, or a mix of everything.
fn fuzz_body() -> impl Strategy<Value = Vec<[u8; DESC_BYTES]>> {
    let mixed = prop_oneof![
        1 => any::<[u8; DESC_BYTES]>(),
        1 => word_desc(),
        1 => typed_desc(false, true),
        5 => typed_desc(true, true),
    ];
    prop_oneof![
        prop::collection::vec(typed_desc(true, false), 1..=16),
        prop::collection::vec(typed_desc(true, true), 1..=16),
        prop::collection::vec(mixed, 1..=16),
    ]
}

/// A small configuration, so that valid DMA descriptors stay short.
fn fuzz_config() -> impl Strategy<Value = NpuConfig> {
    config().prop_map(|mut c| {
        c.memory.spad_bytes = FUZZ_SPAD;
        c.memory.acc_bytes = FUZZ_ACC;
        c
    })
}

/// The decoded, validated descriptor, or the error the command processor must
/// latch (code, ERR_ADDR).
fn decode(
    cfg: &NpuConfig,
    b: &[u8; DESC_BYTES],
    phys: u64,
) -> Result<Descriptor, (ErrorCode, u64)> {
    let d = Descriptor::decode(b).map_err(|e| (e.code, e.fault_addr.unwrap_or(phys)))?;
    d.validate(&cfg.limits())
        .map_err(|e| (e.code, e.fault_addr.unwrap_or(phys)))?;
    Ok(d)
}

/// Starts the device on a raw ring at `base` (already in `mem`) and runs it
/// until idle, an error, or `bound` cycles.
fn run_raw<S: EventSink>(
    cfg: &NpuConfig,
    sink: S,
    skip: bool,
    mem: &mut VecMemory,
    base: u64,
    len: usize,
    bound: u64,
) -> (Result<u64, RunError>, ModelDevice<S>) {
    let mut dev = ModelDevice::with_sink(cfg, sink);
    dev.set_skip(skip);
    let size = (len as u32 + 1).next_power_of_two();
    dev.mmio_write(regs::RING_BASE_LO, base as u32);
    dev.mmio_write(regs::RING_BASE_HI, (base >> 32) as u32);
    dev.mmio_write(regs::RING_SIZE, size);
    dev.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
    dev.mmio_write(regs::RING_TAIL, len as u32);
    dev.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    let res = run::wait_idle(&mut dev, mem, bound);
    (res, dev)
}

fn check_fuzz(
    cfg: &NpuConfig,
    ring_slot: u64,
    body: &[[u8; DESC_BYTES]],
) -> Result<(), TestCaseError> {
    let mut ring: Vec<[u8; DESC_BYTES]> = body.to_vec();
    let last = Fence {
        seq: 0xF00D,
        writeback: None,
        irq: true,
    };
    ring.push(Descriptor::new(Op::Fence(last)).encode());
    let base = ring_slot * 0x400;
    let ring_bytes = base..base + (ring.len() * DESC_BYTES) as u64;
    let mut initial: Vec<u8> = (0..FUZZ_MEM)
        .map(|i| (i as u8).wrapping_mul(131) ^ 0x3C)
        .collect();
    for (i, b) in ring.iter().enumerate() {
        let a = base as usize + i * DESC_BYTES;
        initial[a..a + DESC_BYTES].copy_from_slice(b);
    }

    // What the test expects from decoding alone.
    let decoded: Vec<_> = ring
        .iter()
        .enumerate()
        .map(|(i, b)| decode(cfg, b, base + (i * DESC_BYTES) as u64))
        .collect();
    let valid: Vec<Descriptor> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok().copied())
        .collect();
    let first_bad = decoded.iter().position(|d| d.is_err());
    // Bytes a valid descriptor may write (translation is off: addresses are physical).
    let mut writable = vec![false; FUZZ_MEM];
    for d in &valid {
        let mut allow = |a: u64, n: u64| {
            for x in a..a.saturating_add(n).min(FUZZ_MEM as u64) {
                writable[x as usize] = true;
            }
        };
        match &d.op {
            Op::Store(x) => {
                for r in 0..x.rows as u64 {
                    allow(x.dram + r * x.dram_stride as u64, x.row_bytes as u64);
                }
            }
            Op::Fence(Fence {
                writeback: Some(a), ..
            }) => allow(*a, 4),
            _ => {}
        }
    }
    // A program may legally overwrite its own ring; then decoding the initial
    // ring predicts nothing.
    let self_modifying = ring_bytes.clone().any(|a| writable[a as usize]);

    let bound = cycle_bound(cfg, &valid);
    let mut mem = VecMemory::new(FUZZ_MEM);
    mem.bytes_mut().copy_from_slice(&initial);
    let (res, mut dev) = run_raw(cfg, Vec::new(), true, &mut mem, base, ring.len(), bound);

    // Skipping must not matter here either.
    let mut mem2 = VecMemory::new(FUZZ_MEM);
    mem2.bytes_mut().copy_from_slice(&initial);
    let (res2, dev2) = run_raw(cfg, Vec::new(), false, &mut mem2, base, ring.len(), bound);
    prop_assert_eq!(&res, &res2, "skip on / off");
    prop_assert!(
        dev.sink() == dev2.sink(),
        "events differ with skip on / off"
    );
    prop_assert_eq!(dev.counters(), dev2.counters());
    same_bytes("device memory (skip on / off)", mem.bytes(), mem2.bytes())?;

    match (&res, first_bad) {
        (Ok(_), None) => {
            prop_assert_eq!(dev.error(), None);
            if !self_modifying {
                prop_assert_eq!(dev.mmio_read(regs::FENCE_SEQ), 0xF00D);
            }
        }
        (Ok(_), Some(i)) => {
            prop_assert!(
                self_modifying,
                "completed although descriptor {} is invalid ({:?})",
                i,
                decoded[i]
            );
        }
        (Err(RunError::Device { code, index, addr }), _) => {
            use ErrorCode::*;
            prop_assert!(*code != ErrorCode::None);
            prop_assert!(
                (*index as usize) < ring.len(),
                "ERR_DESC {} outside the ring",
                index
            );
            let decode_class = matches!(
                code,
                BadOpcode | Reserved | BadFlags | BadField | Misaligned | SpadRange | AccRange
            );
            if self_modifying {
                prop_assert!(
                    decode_class || matches!(code, AddrRange | Deadlock),
                    "{:?}",
                    res
                );
            } else if decode_class {
                prop_assert_eq!(Some(*index as usize), first_bad, "{:?}", res);
                prop_assert_eq!(
                    decoded[*index as usize],
                    Err::<Descriptor, _>((*code, *addr))
                );
            } else {
                prop_assert!(matches!(code, AddrRange | Deadlock), "unexpected {:?}", res);
            }
        }
        // Overwriting the final FENCE leaves the device waiting for the driver.
        (Err(RunError::Timeout { .. }), _) if self_modifying => {}
        (Err(e), _) => return Err(TestCaseError::fail(format!("{e}"))),
    }
    if !self_modifying {
        for (i, (&now, &was)) in mem.bytes().iter().zip(&initial).enumerate() {
            prop_assert!(
                now == was || writable[i],
                "device memory at {:#x} changed ({:#x} -> {:#x}), no valid STORE or FENCE names it",
                i,
                was,
                now
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(pt_config())]

    #[test]
    fn legal_programs_compute_the_reference((cfg, spec) in legal()) {
        check_legal(&cfg, &spec)?;
    }

    #[test]
    fn broken_tokens_complete_or_deadlock((cfg, spec) in legal(), m in mutation()) {
        check_broken(&cfg, &spec, &m)?;
    }

    #[test]
    fn skipping_is_invisible(
        (cfg, spec) in legal(),
        m in prop::option::weighted(0.3, mutation()),
    ) {
        check_skip(&cfg, &spec, m.as_ref())?;
    }

    #[test]
    fn fuzzed_descriptors_end_cleanly(
        cfg in fuzz_config(),
        ring_slot in 0u64..32,
        body in fuzz_body(),
    ) {
        check_fuzz(&cfg, ring_slot, &body)?;
    }
}
