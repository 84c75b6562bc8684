//! Programs to run in lockstep: a [`Case`] is everything a run needs (memory
//! image, MMIO set-up, raw ring, DRAM timing); [`handwritten`] is the corpus of
//! hand-written programs (every opcode, every error path), [`random`] the
//! constrained-random generator, [`workload`] a compiled workload. [`run`]
//! plays a case on any pair of devices the way a driver would and returns the
//! first divergence, if any.

use npukit_abi::desc::{deps, qtab_image, Act, Add, Dma, Fence, Matmul, Max, Op, QuantEntry};
use npukit_abi::xlat::{pte, PAGE_BYTES};
use npukit_abi::{regs, Descriptor, ErrorCode, DESC_BYTES};
use npukit_sim::config::DramParams;
use npukit_sim::run::{self, RunError};
use npukit_sim::{Device, DeviceMemory, NpuConfig, VecMemory};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::lockstep::{model_vs_rtl, Divergence, Lockstep, LockstepOptions, Observed};
use crate::RtlError;

/// What a case is expected to do (checked on side A, so that a case really
/// tests what its name says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Runs to the end of the ring.
    Complete,
    /// Halts with this error code.
    Error(ErrorCode),
    /// Anything (random programs whose outcome is not predicted).
    Any,
}

/// One lockstep run.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub mem_size: u64,
    /// Memory written before the run.
    pub image: Vec<(u64, Vec<u8>)>,
    /// Register writes before the ring is started (translation, watchdog).
    pub setup: Vec<(u32, u32)>,
    pub ring_base: u64,
    /// The ring, raw (so that invalid descriptors can be written). A ring of
    /// at least `[cmdproc] max_ring` entries is refilled as the device consumes
    /// it (see [`run`]) and must then decode.
    pub ring: Vec<[u8; DESC_BYTES]>,
    /// RING_SIZE to program instead of the smallest fitting power of two.
    pub ring_size: Option<u32>,
    /// DRAM timing (the harness's part of the configuration) to use.
    pub dram: Option<DramParams>,
    pub max_cycles: u64,
    pub expect: Expect,
    /// Compare the final device memory (off for racy programs, whose data
    /// docs/rtl.md leaves unspecified; events are always compared).
    pub compare_memory: bool,
}

impl Case {
    fn new(name: impl Into<String>, descs: &[Descriptor]) -> Self {
        Case {
            name: name.into(),
            mem_size: MEM,
            image: vec![(DATA, pattern(DATA_LEN, 1))],
            setup: Vec::new(),
            ring_base: RING,
            ring: descs.iter().map(|d| d.encode()).collect(),
            ring_size: None,
            dram: None,
            max_cycles: 2_000_000,
            expect: Expect::Complete,
            compare_memory: true,
        }
    }
    fn expect(mut self, e: Expect) -> Self {
        self.expect = e;
        self
    }
    fn setup(mut self, w: &[(u32, u32)]) -> Self {
        self.setup.extend_from_slice(w);
        self
    }
    fn dram(mut self, latency: u32, bytes_per_cycle: u32, max_outstanding: u32) -> Self {
        self.dram = Some(DramParams {
            latency,
            bytes_per_cycle,
            max_outstanding,
            size_bytes: self.mem_size,
        });
        self
    }

    /// `cfg` with this case's DRAM timing and memory size.
    pub fn config(&self, cfg: &NpuConfig) -> NpuConfig {
        let mut c = cfg.clone();
        if let Some(d) = &self.dram {
            c.dram = d.clone();
        }
        c.dram.size_bytes = self.mem_size;
        c
    }
}

/// How a case ended (both sides agreeing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutcome {
    /// The driver-level result (side A's view; side B agreed).
    pub result: Result<u64, RunError>,
    /// Cycles simulated.
    pub cycles: u64,
    /// Events compared and found equal.
    pub events: u64,
    /// Times the ring was refilled (0 when the program fitted the ring).
    pub refills: u64,
}

/// Why a case did not pass.
#[derive(Debug, thiserror::Error)]
pub enum CosimError {
    #[error(transparent)]
    Rtl(#[from] RtlError),
    #[error("{0}")]
    Diverged(Box<Divergence>),
    #[error("case {case}: {problem}")]
    Case { case: String, problem: String },
}

const MEM: u64 = 1 << 20;
const RING: u64 = 0x2000;
const DATA: u64 = 0x1_0000;
const DATA_LEN: usize = 0x1_0000;
const OUT: u64 = 0x3_0000;
const WB: u64 = 0xB000;
const TABLE: u64 = 0xC000;

/// Where the per-channel ACT tables and their accumulators sit in device memory
/// (inside the data region, clear of what the GEMM tiles read).
const QTAB_DRAM: u64 = DATA + 0x8000;
const QACC_DRAM: u64 = DATA + 0x9000;

/// A per-channel table of `cols` entries: multipliers and shifts in the useful
/// range, with the corners of the rounding shift (0, 1, 62, 63, 64, 255, and
/// bits above 7:0 that must be ignored) mixed in.
fn qtab_entries(r: &mut ChaCha8Rng, cols: usize) -> Vec<QuantEntry> {
    (0..cols)
        .map(|j| {
            let multiplier = match r.gen_range(0..8) {
                0 => i32::MIN,
                1 => -r.gen_range(1..=i32::MAX),
                2 => i32::MAX,
                _ => r.gen_range(0x2000_0000..=i32::MAX),
            };
            let low = match j % 9 {
                0 => 0,
                1 => 1,
                2 => 62,
                3 => 63,
                4 => 64,
                5 => 255,
                _ => r.gen_range(28..=40),
            };
            let high = if r.gen_bool(0.3) {
                r.gen::<u32>() & !0xFF
            } else {
                0
            };
            QuantEntry {
                multiplier,
                shift: high | low,
            }
        })
        .collect()
}

/// Deterministic non-trivial bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.gen()).collect()
}

/// Writes `ring` at `base` and starts the device on it (as `run::start`, raw).
fn start_raw(
    dev: &mut dyn Device,
    mem: &mut dyn DeviceMemory,
    case: &Case,
) -> Result<(), RunError> {
    let needed = (case.ring.len() as u32 + 1).next_power_of_two().max(2);
    let size = case.ring_size.unwrap_or(needed);
    for (i, d) in case.ring.iter().enumerate() {
        let a = case.ring_base + (i * DESC_BYTES) as u64;
        if a + DESC_BYTES as u64 <= mem.size() {
            mem.write(a, d);
        }
    }
    let ctl = dev.mmio_read(regs::CONTROL) & !regs::CONTROL_RUN;
    dev.mmio_write(regs::CONTROL, ctl);
    dev.mmio_write(regs::RING_BASE_LO, case.ring_base as u32);
    dev.mmio_write(regs::RING_BASE_HI, (case.ring_base >> 32) as u32);
    dev.mmio_write(regs::RING_SIZE, size);
    dev.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
    dev.mmio_write(regs::RING_TAIL, (case.ring.len() as u32) % size.max(1));
    dev.mmio_write(regs::CONTROL, ctl | regs::CONTROL_RUN);
    Ok(())
}

/// Plays `case` on a lockstep pair (whose devices were made for
/// [`Case::config`]) and compares every register at the end.
///
/// A ring that fits the device's largest ring (`[cmdproc] max_ring`) is
/// written once, raw, and run to idle. A longer one (a compiled workload) must
/// decode, and is fed through the model's own driver loop,
/// [`npukit_sim::run::RingRun`]: the ring is filled, and every
/// [`run::REFILL_SLICE`] cycles the consumed entries are replaced by the next
/// descriptors and `RING_TAIL` is written. The pair sees those memory and MMIO
/// writes at the same cycle on both sides (side B's memory is refreshed from
/// the caller's at the start of every `run_until`).
pub fn run<A: Observed, B: Observed>(
    ls: &mut Lockstep<A, B>,
    case: &Case,
) -> Result<CaseOutcome, CosimError> {
    let mut mem = image(case)?;
    ls.set_compare_memory(case.compare_memory);
    let max_ring = ls.a().npu_config().cmdproc.max_ring;
    let (result, refills) = play(ls, &mut mem, case, max_ring)?;
    // Every register, compared through the pair's MMIO reads.
    for r in npukit_abi::regs::REGISTERS {
        ls.mmio_read(r.offset);
    }
    for &c in regs::PERF_COUNTERS {
        ls.mmio_read(c + 4);
    }
    ls.finish(&mut mem).map_err(CosimError::Diverged)?;
    let ok = match (case.expect, &result) {
        (Expect::Any, _) | (Expect::Complete, Ok(_)) => true,
        (Expect::Error(c), Err(RunError::Device { code, .. })) => c == *code,
        _ => false,
    };
    if !ok {
        return Err(CosimError::Case {
            case: case.name.clone(),
            problem: format!(
                "expected {:?}, got {result:?} (on both sides: no divergence)",
                case.expect
            ),
        });
    }
    Ok(CaseOutcome {
        result,
        cycles: ls.cycle(),
        events: ls.matched_events(),
        refills,
    })
}

/// Plays `case` on the model alone (events are not collected or compared,
/// `events` is 0): what the lockstep run will do, quickly (the model skips
/// quiet cycles), e.g. to size a progress bar.
pub fn model_alone(case: &Case, cfg: &NpuConfig) -> Result<CaseOutcome, CosimError> {
    let cfg = case.config(cfg);
    let mut dev = npukit_sim::ModelDevice::new(&cfg);
    let mut mem = image(case)?;
    let (result, refills) = play(&mut dev, &mut mem, case, cfg.cmdproc.max_ring)?;
    Ok(CaseOutcome {
        result,
        cycles: dev.cycle(),
        events: 0,
        refills,
    })
}

/// The case's memory image.
fn image(case: &Case) -> Result<VecMemory, CosimError> {
    let mut mem = VecMemory::new(case.mem_size as usize);
    for (a, bytes) in &case.image {
        if mem.store(*a, bytes).is_none() {
            return Err(CosimError::Case {
                case: case.name.clone(),
                problem: format!("image segment at {a:#x} does not fit in memory"),
            });
        }
    }
    Ok(mem)
}

/// The set-up writes, then the ring: written once, or refilled through
/// [`run::RingRun`] when it is longer than `max_ring`. The driver-level
/// result and the number of refills.
fn play(
    dev: &mut dyn Device,
    mem: &mut VecMemory,
    case: &Case,
    max_ring: u32,
) -> Result<(Result<u64, RunError>, u64), CosimError> {
    for &(r, v) in &case.setup {
        dev.mmio_write(r, v);
    }
    if case.ring.len() >= max_ring as usize && case.ring_size.is_none() {
        let descs = decode_ring(case)?;
        let mut ring = run::RingRun::start(dev, mem, case.ring_base, &descs).map_err(|e| {
            CosimError::Case {
                case: case.name.clone(),
                problem: e.to_string(),
            }
        })?;
        let r = ring.finish(dev, mem, case.max_cycles);
        Ok((r, ring.refills()))
    } else {
        start_raw(dev, mem, case)?;
        Ok((run::wait_idle(dev, mem, case.max_cycles), 0))
    }
}

/// The ring of a case longer than the device's largest ring, as descriptors.
fn decode_ring(case: &Case) -> Result<Vec<Descriptor>, CosimError> {
    case.ring
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Descriptor::decode(b).map_err(|e| CosimError::Case {
                case: case.name.clone(),
                problem: format!(
                    "the ring of {} entries is longer than the device's largest ring, so it \
                     is refilled, which needs valid descriptors; entry {i}: {e}",
                    case.ring.len()
                ),
            })
        })
        .collect()
}

impl From<RunError> for CosimError {
    fn from(e: RunError) -> Self {
        CosimError::Case {
            case: String::new(),
            problem: e.to_string(),
        }
    }
}

/// Runs `case` on the model and the RTL variant for `cfg` (or `variant` by name).
pub fn cosim(
    case: &Case,
    cfg: &NpuConfig,
    variant: Option<&str>,
    opts: LockstepOptions,
) -> Result<CaseOutcome, CosimError> {
    let cfg = case.config(cfg);
    let mut ls = model_vs_rtl(&cfg, variant, None, opts)?;
    run(&mut ls, case)
}

// ------------------------------------------------------------ descriptors

fn d(op: Op) -> Descriptor {
    Descriptor::new(op)
}

fn dma(local: u32, dram: u64, rows: u16, row_bytes: u16, dram_stride: u32, acc: bool) -> Dma {
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

fn fence(seq: u32, writeback: Option<u64>, irq: bool) -> Descriptor {
    d(Op::Fence(Fence {
        seq,
        writeback,
        irq,
    }))
}

fn end() -> Descriptor {
    fence(0xE0D, None, true)
}

fn with(x: Descriptor, deps: u8) -> Descriptor {
    x.with_deps(deps)
}

fn matmul(a: u32, w: u32, out: u32, m: u16, k: u16, n: u16, accumulate: bool) -> Descriptor {
    d(Op::Matmul(Matmul {
        a,
        w,
        out,
        m,
        k,
        n,
        accumulate,
    }))
}

/// `d` encoded, then word `w` ORed with `bits`.
fn patched(d: Descriptor, w: usize, bits: u32) -> [u8; DESC_BYTES] {
    let mut b = d.encode();
    let v = u32::from_le_bytes([b[4 * w], b[4 * w + 1], b[4 * w + 2], b[4 * w + 3]]) | bits;
    b[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
    b
}

/// A GEMM tile: load A (m x k) and W (k x n), MATMUL, optional ACT, store.
fn gemm(cfg: &NpuConfig, m: u16, act: bool) -> Vec<Descriptor> {
    let (k, n) = (cfg.array.rows as u16, cfg.array.cols as u16);
    let a_local = 0u32;
    let w_local = 4096u32.min(cfg.memory.spad_bytes / 4);
    let mut v = vec![
        d(Op::Load(dma(a_local, DATA + 3, m, k, k as u32 + 5, false))),
        with(
            d(Op::Load(dma(w_local, DATA + 0x2001, k, n, n as u32, false))),
            deps::SIGNAL_NEXT,
        ),
        with(
            matmul(a_local, w_local, 0, m, k, n, false),
            deps::WAIT_PREV | if act { 0 } else { deps::SIGNAL_NEXT },
        ),
    ];
    if act {
        v.push(with(
            d(Op::Act(Act {
                src: 0,
                dst: 8192u32.min(cfg.memory.spad_bytes / 2),
                bias: None,
                rows: m,
                cols: n,
                multiplier: 0x4000_0000,
                shift: 33,
                zero_point: -3,
                relu: true,
                qtab: None,
            })),
            deps::SIGNAL_NEXT,
        ));
        v.push(with(
            d(Op::Store(dma(
                8192u32.min(cfg.memory.spad_bytes / 2),
                OUT + 1,
                m,
                n,
                n as u32 + 7,
                false,
            ))),
            deps::WAIT_PREV,
        ));
    } else {
        v.push(with(
            d(Op::Store(dma(0, OUT, m, n * 4, n as u32 * 4, true))),
            deps::WAIT_PREV,
        ));
    }
    v
}

/// MATMUL sequences whose timing differs between the array options (rule
/// C1): back-to-back folds accumulating into one output (C1b hides the next
/// fold's weight load), an ACT between two folds (no load during an ACT),
/// and folds whose weights arrive by LOAD at different points of the
/// previous fold (hidden, partly hidden and unhidden loads). Valid on every
/// configuration with at least 16 KiB of scratchpad and 4 KiB of accumulators.
fn matmul_chains(cfg: &NpuConfig) -> Vec<Case> {
    let (r, c) = (cfg.array.rows as u16, cfg.array.cols as u16);
    let act_dst = 8192u32.min(cfg.memory.spad_bytes / 2);
    let mut chain = vec![with(
        d(Op::Load(dma(0, DATA, 4, 1024, 1024, false))),
        deps::SIGNAL_NEXT,
    )];
    let shapes = [
        (1u16, r, c),
        (2, r, c),
        (r, r.div_ceil(2), c),
        (37, r, c.div_ceil(2)),
        (1, 1, 1),
        (r + 1, r, c),
    ];
    for (i, &(m, k, n)) in shapes.iter().enumerate() {
        let mm = matmul(64 * i as u32, 2048 + 7 * i as u32, 0, m, k, n, i % 3 != 0);
        chain.push(if i == 0 {
            with(mm, deps::WAIT_PREV)
        } else {
            mm
        });
    }
    chain.push(d(Op::Act(Act {
        src: 0,
        dst: act_dst,
        bias: None,
        rows: 1,
        cols: c,
        multiplier: 0x4000_0000,
        shift: 31,
        zero_point: 1,
        relu: false,
        qtab: None,
    })));
    // Its weights are the ACT's output.
    chain.push(with(
        matmul(0, act_dst, 256, 1, 1, c, false),
        deps::SIGNAL_NEXT,
    ));
    chain.push(with(
        d(Op::Store(dma(0, OUT, 37, c * 4, c as u32 * 4, true))),
        deps::WAIT_PREV,
    ));
    chain.push(end());
    // Weights by LOAD while the previous fold runs: LOAD i fills W region i,
    // MATMUL i waits for it (a token per pair).
    let mut late = vec![d(Op::Load(dma(0, DATA, 1, 1024, 1024, false)))];
    for i in 0..6u16 {
        let w = 4096 + 1024 * i as u32;
        late.push(with(
            d(Op::Load(dma(
                w,
                DATA + 0x3000,
                r,
                c * (1 + i % 3),
                c as u32,
                false,
            ))),
            deps::SIGNAL_NEXT,
        ));
        late.push(with(
            matmul(0, w, 0, 3 + 11 * (i % 3), r, c, i > 0),
            deps::WAIT_PREV | if i == 5 { deps::SIGNAL_NEXT } else { 0 },
        ));
    }
    late.push(with(
        d(Op::Store(dma(0, OUT, 25, c * 4, c as u32 * 4, true))),
        deps::WAIT_PREV,
    ));
    late.push(end());
    vec![
        Case::new("matmul_chain", &chain),
        Case::new("matmul_weights_during_fold", &late),
        Case::new("matmul_weights_during_fold_fast_dram", &late).dram(5, 32, 16),
    ]
}

/// The hand-written corpus for the array shape and memories of `cfg`: every
/// opcode, token patterns, translation, DRAM timings, and every error path.
#[allow(clippy::vec_init_then_push)]
pub fn handwritten(cfg: &NpuConfig) -> Vec<Case> {
    let (rows, cols) = (cfg.array.rows as u16, cfg.array.cols as u16);
    let spad = cfg.memory.spad_bytes;
    let acc = cfg.memory.acc_bytes;
    let mut v = Vec::new();

    // ---- MATMUL timing under every array option (rules C1a-C1c)
    v.extend(matmul_chains(cfg));

    // ---- every opcode
    v.push(Case::new(
        "nop_and_fence",
        &[
            d(Op::Nop),
            d(Op::Nop),
            fence(7, None, false),
            d(Op::Nop),
            end(),
        ],
    ));
    v.push(Case::new(
        "fence_writeback",
        &[
            d(Op::Load(dma(0, DATA, 2, 64, 64, false))),
            fence(3, Some(WB), false),
            fence(4, Some(WB + 8), true),
            end(),
        ],
    ));
    v.push(Case::new(
        "load_store_spad_unaligned_strided",
        &[
            d(Op::Load(dma(5, DATA + 5, 3, 45, 50, false))),
            fence(1, None, false),
            d(Op::Store(dma(5, OUT + 3, 3, 45, 61, false))),
            end(),
        ],
    ));
    v.push(Case::new(
        "load_store_acc_repeat_row",
        &[
            d(Op::Load(dma(64, DATA + 40, 4, 36, 0, true))),
            fence(1, None, false),
            d(Op::Store(dma(64, OUT + 31, 4, 36, 40, true))),
            end(),
        ],
    ));
    let mut g = gemm(cfg, rows + 3, false);
    g.push(end());
    v.push(Case::new("matmul", &g));
    let mut g = gemm(cfg, 2 * rows + 1, true);
    g.push(end());
    v.push(Case::new("matmul_act_relu", &g));
    let w_local = 4096u32.min(spad / 4);
    v.push(Case::new(
        "matmul_accumulate_and_partial_fold",
        &[
            d(Op::Load(dma(0, DATA, 5, rows, rows as u32, false))),
            with(
                d(Op::Load(dma(
                    w_local,
                    DATA + 0x1000,
                    rows,
                    cols,
                    cols as u32,
                    false,
                ))),
                deps::SIGNAL_NEXT,
            ),
            with(matmul(0, w_local, 0, 5, rows, cols, false), deps::WAIT_PREV),
            matmul(0, w_local, 0, 5, rows.div_ceil(2), cols.div_ceil(2), true),
            with(matmul(0, w_local, 0, 3, 1, cols, true), deps::SIGNAL_NEXT),
            with(
                d(Op::Store(dma(0, OUT, 5, cols * 4, cols as u32 * 4, true))),
                deps::WAIT_PREV,
            ),
            end(),
        ],
    ));
    v.push(Case::new(
        "act_with_bias_add_max",
        &[
            d(Op::Load(dma(0, DATA, 4, 64, 64, true))),
            with(
                d(Op::Load(dma(512, DATA + 0x800, 1, 256, 256, false))),
                deps::SIGNAL_NEXT,
            ),
            with(
                d(Op::Act(Act {
                    src: 0,
                    dst: 1024,
                    bias: Some(128),
                    rows: 2,
                    cols: 16,
                    multiplier: 0x5555_5555,
                    shift: 35,
                    zero_point: 4,
                    relu: false,
                    qtab: None,
                })),
                deps::WAIT_PREV,
            ),
            d(Op::Add(Add {
                a: 512,
                b: 600,
                dst: 256,
                len: 37,
                a_zp: -2,
                b_zp: 9,
                a_mult: 300,
                b_mult: -77,
                accumulate: false,
            })),
            d(Op::Add(Add {
                a: 512,
                b: 512,
                dst: 256,
                len: 37,
                a_zp: 1,
                b_zp: 0,
                a_mult: 2,
                b_mult: 3,
                accumulate: true,
            })),
            with(
                d(Op::Max(Max {
                    a: 512,
                    b: 700,
                    dst: 1200,
                    len: 3 * cols as u32 + 1,
                })),
                deps::SIGNAL_NEXT,
            ),
            with(
                d(Op::Store(dma(1024, OUT, 1, 200, 200, false))),
                deps::WAIT_PREV,
            ),
            d(Op::Store(dma(256, OUT + 0x400, 1, 148, 148, true))),
            end(),
        ],
    ));
    v.push(act_per_channel_case(cfg));
    // ---- tokens: a double-buffered pipeline of 4 tiles
    {
        let mut p = Vec::new();
        let m = rows + 1;
        for t in 0..4u32 {
            let buf = t % 2;
            let a = buf * 2048;
            let w = 4096 + buf * 2048;
            let out = buf * (acc / 2);
            let first = t < 2;
            p.push(with(
                d(Op::Load(dma(
                    a,
                    DATA + t as u64 * 512,
                    m,
                    rows,
                    rows as u32,
                    false,
                ))),
                if first { 0 } else { deps::WAIT_NEXT },
            ));
            p.push(with(
                d(Op::Load(dma(
                    w,
                    DATA + 0x4000 + t as u64 * 256,
                    rows,
                    cols,
                    cols as u32,
                    false,
                ))),
                deps::SIGNAL_NEXT,
            ));
            p.push(with(
                matmul(a, w, out, m, rows, cols, false),
                deps::WAIT_PREV
                    | deps::SIGNAL_NEXT
                    | if t < 2 { 0 } else { deps::WAIT_NEXT }
                    | if t < 2 { deps::SIGNAL_PREV } else { 0 },
            ));
            p.push(with(
                d(Op::Store(dma(
                    out,
                    OUT + t as u64 * 1024,
                    m,
                    cols * 4,
                    cols as u32 * 4,
                    true,
                ))),
                deps::WAIT_PREV | if t < 2 { deps::SIGNAL_PREV } else { 0 },
            ));
        }
        p.push(end());
        v.push(Case::new("double_buffered_pipeline", &p));
    }
    // ---- translation
    {
        let mut table = Vec::new();
        // Virtual pages 0..16 -> physical 0x10000 + (15 - i) pages, page 3 read-only.
        for i in 0..16u64 {
            let phys = DATA + (15 - i) * PAGE_BYTES;
            table.extend_from_slice(&pte(phys, i != 3).to_le_bytes());
        }
        let mut c = Case::new(
            "translation",
            &[
                d(Op::Load(dma(0, 0x0FF0, 2, 40, 4096, false))),
                fence(1, Some(0x5000), false),
                d(Op::Store(dma(0, 0x7FFC, 2, 40, 100, false))),
                end(),
            ],
        )
        .setup(&[
            (regs::XLAT_BASE_LO, TABLE as u32),
            (regs::XLAT_BASE_HI, 0),
            (regs::XLAT_PAGES, 16),
            (regs::CONTROL, regs::CONTROL_XLAT_EN),
        ]);
        c.image.push((TABLE, table));
        v.push(c.clone());
        let mut c2 = c.clone();
        c2.name = "xlat_write_to_read_only_page".into();
        c2.ring[2] = d(Op::Store(dma(0, 3 * PAGE_BYTES + 8, 1, 8, 8, false))).encode();
        v.push(c2.expect(Expect::Error(ErrorCode::XlatWrite)));
        let mut c3 = c.clone();
        c3.name = "xlat_beyond_xlat_pages".into();
        c3.ring[2] = d(Op::Store(dma(0, 16 * PAGE_BYTES, 1, 8, 8, false))).encode();
        v.push(c3.expect(Expect::Error(ErrorCode::XlatFault)));
        let mut c4 = c;
        c4.name = "xlat_fault_invalid_entry".into();
        // Entry 5 invalid.
        if let Some(seg) = c4.image.last_mut() {
            seg.1[5 * 8..6 * 8].copy_from_slice(&0u64.to_le_bytes());
        }
        c4.ring[0] = d(Op::Load(dma(0, 5 * PAGE_BYTES + 16, 1, 8, 8, false))).encode();
        v.push(c4.expect(Expect::Error(ErrorCode::XlatFault)));
    }
    // ---- DRAM timings (the harness's part)
    for (lat, bpc, out) in [(1, 64, 16), (3, 8, 1), (100, 5, 3)] {
        let mut g = gemm(cfg, rows + 2, true);
        g.insert(
            0,
            d(Op::Load(dma(
                12000.min(spad - 300),
                DATA + 7,
                3,
                97,
                101,
                false,
            ))),
        );
        g.push(end());
        v.push(Case::new(format!("dram_latency{lat}_bpc{bpc}_out{out}"), &g).dram(lat, bpc, out));
    }

    // ---- error paths
    let err = |name: &str, descs: &[Descriptor], code: ErrorCode| {
        let mut p = vec![
            d(Op::Load(dma(0, DATA, 1, 64, 64, false))),
            fence(1, Some(WB), false),
        ];
        p.extend_from_slice(descs);
        p.push(d(Op::Store(dma(0, OUT, 1, 64, 64, false))));
        p.push(end());
        Case::new(name, &p).expect(Expect::Error(code))
    };
    let mut bad_op = err("bad_opcode", &[d(Op::Nop)], ErrorCode::BadOpcode);
    bad_op.ring[2][0] = 0x7E;
    v.push(bad_op);
    let mut reserved = err("reserved_bits", &[d(Op::Nop)], ErrorCode::Reserved);
    reserved.ring[2] = patched(d(Op::Nop), 6, 1 << 9);
    v.push(reserved);
    v.push(err(
        "bad_flags_load_waits_prev",
        &[with(
            d(Op::Load(dma(0, DATA, 1, 8, 8, false))),
            deps::WAIT_PREV,
        )],
        ErrorCode::BadFlags,
    ));
    v.push(err(
        "bad_field_k_above_rows",
        &[matmul(0, 0, 0, 1, rows + 1, 1, false)],
        ErrorCode::BadField,
    ));
    v.push(err(
        "spad_range",
        &[d(Op::Load(dma(spad - 10, DATA, 1, 20, 20, false)))],
        ErrorCode::SpadRange,
    ));
    v.push(err(
        "acc_range",
        &[d(Op::Store(dma(acc - 8, OUT, 1, 16, 16, true)))],
        ErrorCode::AccRange,
    ));
    let pc = |qtab: u32| {
        d(Op::Act(Act {
            rows: 2,
            cols: cols + 1,
            qtab: Some(qtab),
            ..Act::default()
        }))
    };
    v.push(err(
        "act_per_channel_misaligned_qtab",
        &[pc(258)],
        ErrorCode::Misaligned,
    ));
    v.push(err(
        "act_per_channel_qtab_acc_range",
        &[pc(acc - 8 * (cols as u32 + 1) + 4)],
        ErrorCode::AccRange,
    ));
    let mut e = err(
        "act_per_channel_reserved_multiplier",
        &[pc(0)],
        ErrorCode::Reserved,
    );
    e.ring[2] = patched(pc(0), 5, 1 << 31);
    v.push(e);
    let mut e = err(
        "act_per_channel_reserved_shift",
        &[pc(0)],
        ErrorCode::Reserved,
    );
    e.ring[2] = patched(pc(0), 6, 0x10);
    v.push(e);
    let per_tensor = d(Op::Act(Act {
        rows: 1,
        cols: 1,
        multiplier: 1,
        ..Act::default()
    }));
    let mut e = err(
        "act_qtab_without_per_channel",
        &[per_tensor],
        ErrorCode::Reserved,
    );
    e.ring[2] = patched(per_tensor, 7, 0x100);
    v.push(e);
    v.push(err(
        "misaligned_fence_writeback",
        &[fence(2, Some(WB + 2), false)],
        ErrorCode::Misaligned,
    ));
    v.push(err(
        "addr_range_load",
        &[d(Op::Load(dma(0, MEM - 16, 2, 32, 32, false)))],
        ErrorCode::AddrRange,
    ));
    v.push(err(
        "addr_range_store",
        &[d(Op::Store(dma(0, MEM + 64, 1, 8, 8, false)))],
        ErrorCode::AddrRange,
    ));
    v.push(err(
        "addr_range_fence_writeback",
        &[fence(2, Some(MEM), false)],
        ErrorCode::AddrRange,
    ));
    let mut ring_oob = Case::new(
        "addr_range_ring_beyond_memory",
        &[d(Op::Nop), d(Op::Nop), d(Op::Nop), end()],
    )
    .expect(Expect::Error(ErrorCode::AddrRange));
    ring_oob.ring_base = MEM - 2 * DESC_BYTES as u64;
    v.push(ring_oob);
    let mut bad_size =
        Case::new("bad_ring_size", &[d(Op::Nop), end()]).expect(Expect::Error(ErrorCode::BadRing));
    bad_size.ring_size = Some(3);
    v.push(bad_size);
    let mut bad_base = Case::new("bad_ring_base_misaligned", &[d(Op::Nop), end()])
        .expect(Expect::Error(ErrorCode::BadRing));
    bad_base.ring_base = RING + 16;
    v.push(bad_base);
    v.push(
        Case::new(
            "deadlock_compute_waits_for_nothing",
            &[
                d(Op::Load(dma(0, DATA, 1, 16, 16, false))),
                with(matmul(0, 0, 0, 1, 1, 1, false), deps::WAIT_PREV),
                end(),
            ],
        )
        .expect(Expect::Error(ErrorCode::Deadlock)),
    );
    v.push(
        Case::new(
            "watchdog_long_matmul",
            &[
                matmul(
                    0,
                    0,
                    0,
                    (acc / (cols as u32 * 4)).min(200) as u16,
                    rows,
                    cols,
                    false,
                ),
                end(),
            ],
        )
        .setup(&[(regs::WATCHDOG, 100)])
        .expect(Expect::Error(ErrorCode::Watchdog)),
    );
    {
        let mut p: Vec<Descriptor> = (0..256)
            .map(|i| {
                with(
                    d(Op::Load(dma(i * 4 % 1024, DATA + i as u64, 1, 1, 1, false))),
                    deps::SIGNAL_NEXT,
                )
            })
            .collect();
        p.push(end());
        v.push(Case::new("token_overflow", &p).expect(Expect::Error(ErrorCode::TokenOverflow)));
    }
    v
}

/// Per-channel ACTs (PER_CHANNEL): a table with the rounding-shift corners,
/// `2C + 3` columns (three lane groups, the last partial) with a bias, then
/// `C` columns with ReLU, then a per-tensor ACT right after, and the outputs
/// stored. Row 0 of column 3 (shift 63, multiplier `i32::MIN`) is `i32::MIN`,
/// so that `p = 2^62` (the one product that shift 63 rounds to 1) occurs.
fn act_per_channel_case(cfg: &NpuConfig) -> Case {
    let c = cfg.array.cols as u16;
    let cols = 2 * c + 3;
    let mut r = ChaCha8Rng::seed_from_u64(0xAC7);
    let mut table = qtab_entries(&mut r, cols as usize);
    // Column 3 has shift 63; with x = i32::MIN (row 0, no bias: the second ACT)
    // this multiplier makes p = 2^62.
    table[3].multiplier = i32::MIN;
    let mut accs: Vec<u8> = (0..3 * cols as usize)
        .flat_map(|_| r.gen_range(-5000..=5000i32).to_le_bytes())
        .collect();
    accs[12..16].copy_from_slice(&i32::MIN.to_le_bytes());
    let (acc_at, bias_at, qtab_at) = (0u32, 512u32, 1024u32);
    let act = |rows: u16, cols: u16, bias: Option<u32>, relu: bool| Act {
        src: acc_at,
        dst: 2048,
        bias,
        rows,
        cols,
        zero_point: -7,
        relu,
        qtab: Some(qtab_at),
        ..Act::default()
    };
    let p = [
        d(Op::Load(dma(
            acc_at,
            QACC_DRAM,
            1,
            accs.len() as u16,
            0,
            true,
        ))),
        d(Op::Load(dma(bias_at, DATA + 0x100, 1, cols * 4, 0, true))),
        with(
            d(Op::Load(dma(qtab_at, QTAB_DRAM, 1, cols * 8, 0, true))),
            deps::SIGNAL_NEXT,
        ),
        with(
            d(Op::Act(act(3, cols, Some(bias_at), false))),
            deps::WAIT_PREV | deps::SIGNAL_NEXT,
        ),
        with(
            d(Op::Store(dma(2048, OUT, 3, cols, cols as u32, false))),
            deps::WAIT_PREV,
        ),
        d(Op::Act(Act {
            dst: 3072,
            ..act(1, c, None, true)
        })),
        with(
            d(Op::Act(Act {
                dst: 3200,
                qtab: None,
                multiplier: 0x4000_0000,
                shift: 33,
                ..act(2, c, Some(bias_at), false)
            })),
            deps::SIGNAL_NEXT,
        ),
        with(
            d(Op::Store(dma(2048, OUT + 0x400, 1, 1400, 0, false))),
            deps::WAIT_PREV,
        ),
        end(),
    ];
    let mut case = Case::new("act_per_channel", &p);
    case.image.push((QTAB_DRAM, qtab_image(&table)));
    case.image.push((QACC_DRAM, accs));
    case
}

// ------------------------------------------------------------ random programs

/// A constrained-random program: serial GEMM tiles with random shapes, DMA
/// misalignment and strides, optional ACT (per-tensor, or per-channel with a
/// table loaded into the accumulator memory) / ADD / MAX, NOPs and FENCEs
/// (with IRQ and writeback), on random DRAM timing. The token chain makes it
/// race-free and deadlock-free by construction (each tile's loads wait for
/// the previous tile's compute, each compute waits for its loads and for the
/// previous tile's store), and every compute descriptor's input and output
/// ranges are disjoint, so the RTL's streaming compute gives the same data.
pub fn random(cfg: &NpuConfig, seed: u64) -> Case {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    let (rows, cols) = (cfg.array.rows as u16, cfg.array.cols as u16);
    let spad = cfg.memory.spad_bytes;
    let acc = cfg.memory.acc_bytes;
    let tiles = r.gen_range(1..=4u32);
    // Local layout: A at 0, W at spad/4, ACT output at spad/2, MAX/ADD scratch at 3 spad/4.
    let (a_loc, w_loc, o_loc, x_loc) = (0u32, spad / 4, spad / 2, 3 * spad / 4);
    let max_m = ((spad / 4) / rows as u32)
        .min((acc / 2) / (cols as u32 * 4))
        .min(64) as u16;
    let mut p: Vec<Descriptor> = Vec::new();
    let mut seq = 1u32;
    for t in 0..tiles {
        let first = t == 0;
        let last = t + 1 == tiles;
        let m = r.gen_range(1..=max_m.max(1));
        let k = r.gen_range(1..=rows);
        let n = r.gen_range(1..=cols);
        let mis = |r: &mut ChaCha8Rng| r.gen_range(0..64u64);
        let a_dram = DATA + mis(&mut r);
        let w_dram = DATA + 0x4000 + mis(&mut r);
        let a_pitch = k as u32 + r.gen_range(0..20);
        let w_pitch = n as u32 + r.gen_range(0..20);
        let w_first = r.gen_bool(0.5);
        let la = with(d(Op::Load(dma(a_loc, a_dram, m, k, a_pitch, false))), 0);
        let lw = with(d(Op::Load(dma(w_loc, w_dram, k, n, w_pitch, false))), 0);
        let (mut l1, mut l2) = if w_first { (lw, la) } else { (la, lw) };
        if !first {
            l1.deps |= deps::WAIT_NEXT;
        }
        l2.deps |= deps::SIGNAL_NEXT;
        p.push(l1);
        if r.gen_bool(0.2) {
            p.push(d(Op::Nop));
        }
        // A per-channel ACT's table, in the accumulator half that the MATMUL
        // leaves alone (the previous tile's ADD there has completed: l1 waits).
        let act = r.gen_bool(0.5);
        let qtab = (act && r.gen_bool(0.5)).then(|| acc / 2 + 8 * r.gen_range(0..4));
        if let Some(q) = qtab {
            let from = QTAB_DRAM + 8 * r.gen_range(0..16);
            p.push(d(Op::Load(dma(q, from, 1, n * 8, 0, true))));
        }
        p.push(l2);
        // Compute sequence.
        let mut comp = vec![matmul(a_loc, w_loc, 0, m, k, n, false)];
        if r.gen_bool(0.3) {
            let k2 = r.gen_range(1..=k);
            comp.push(matmul(a_loc, w_loc, 0, m, k2, n, true));
        }
        if act {
            let per_tensor = qtab.is_none();
            comp.push(d(Op::Act(Act {
                src: 0,
                dst: o_loc,
                bias: None,
                rows: m,
                cols: n,
                multiplier: if per_tensor {
                    r.gen_range(0x2000_0000..=i32::MAX)
                } else {
                    0
                },
                shift: if per_tensor { r.gen_range(28..=40) } else { 0 },
                zero_point: r.gen(),
                relu: r.gen_bool(0.5),
                qtab,
            })));
        }
        if r.gen_bool(0.3) {
            let len = r.gen_range(1..=(m as u32 * k as u32).min(spad / 8));
            comp.push(d(Op::Max(Max {
                a: a_loc,
                b: w_loc,
                dst: x_loc,
                len,
            })));
        }
        if r.gen_bool(0.3) {
            let len = r.gen_range(1..=(m as u32 * k as u32).min(acc / 8));
            comp.push(d(Op::Add(Add {
                a: a_loc,
                b: w_loc,
                dst: acc / 2,
                len,
                a_zp: r.gen(),
                b_zp: r.gen(),
                a_mult: r.gen(),
                b_mult: r.gen(),
                accumulate: r.gen_bool(0.5),
            })));
        }
        let nc = comp.len();
        comp[0].deps |= deps::WAIT_PREV | if first { 0 } else { deps::WAIT_NEXT };
        comp[nc - 1].deps |= deps::SIGNAL_NEXT | if last { 0 } else { deps::SIGNAL_PREV };
        p.extend(comp);
        let out = OUT + t as u64 * 0x2000 + mis(&mut r);
        let st = if act {
            d(Op::Store(dma(
                o_loc,
                out,
                m,
                n,
                n as u32 + r.gen_range(0..9),
                false,
            )))
        } else {
            d(Op::Store(dma(
                0,
                out,
                m,
                n * 4,
                n as u32 * 4 + r.gen_range(0..9),
                true,
            )))
        };
        p.push(with(
            st,
            deps::WAIT_PREV | if last { 0 } else { deps::SIGNAL_PREV },
        ));
        if r.gen_bool(0.3) {
            let wb = r.gen_bool(0.5).then_some(WB + 4 * seq as u64);
            p.push(fence(seq, wb, r.gen_bool(0.5)));
            seq += 1;
        }
    }
    p.push(fence(seq, Some(WB), true));
    let mut c = Case::new(format!("random_seed{seed}"), &p);
    let mut data = pattern(DATA_LEN, seed ^ 0x5EED);
    let table = qtab_image(&qtab_entries(&mut r, cols as usize + 16));
    let at = (QTAB_DRAM - DATA) as usize;
    data[at..at + table.len()].copy_from_slice(&table);
    c.image = vec![(DATA, data.clone())];
    let lat = *[1u32, 2, 7, 20, 64, 100]
        .get(r.gen_range(0..6))
        .unwrap_or(&64);
    let bpc = *[4u32, 8, 16, 32, 64].get(r.gen_range(0..5)).unwrap_or(&16);
    let out = r.gen_range(1..=16);
    c = c.dram(lat, bpc, out);
    if r.gen_bool(0.25) {
        c.setup.push((regs::WATCHDOG, 1_000_000));
    }
    if r.gen_bool(0.3) {
        // Translation on: the 4 KiB pages of the data region are shuffled
        // among themselves (pages below it map to themselves), so every DMA
        // beat and the FENCE writeback go through the translation caches.
        let pages = (MEM / PAGE_BYTES) as usize;
        let first = (DATA / PAGE_BYTES) as usize;
        let mut map: Vec<usize> = (0..pages).collect();
        for i in (first + 1..pages).rev() {
            let j = r.gen_range(first..=i);
            map.swap(i, j);
        }
        let mut table = Vec::with_capacity(pages * 8);
        for &p in &map {
            table.extend_from_slice(&pte(p as u64 * PAGE_BYTES, true).to_le_bytes());
        }
        // The data image is placed where the shuffled pages put it.
        for (k, chunk) in data.chunks(PAGE_BYTES as usize).enumerate() {
            let pa = map[first + k] as u64 * PAGE_BYTES;
            c.image.push((pa, chunk.to_vec()));
        }
        c.image
            .retain(|(a, b)| !(*a == DATA && b.len() == DATA_LEN));
        c.image.push((TABLE, table));
        c.setup.extend_from_slice(&[
            (regs::XLAT_BASE_LO, TABLE as u32),
            (regs::XLAT_BASE_HI, 0),
            (regs::XLAT_PAGES, pages as u32),
            (regs::CONTROL, regs::CONTROL_XLAT_EN),
        ]);
        c.name.push_str("_xlat");
    }
    c
}

/// A compiled workload as a case (`mem_size` from the compiler).
pub fn workload(
    name: &str,
    program: &[Descriptor],
    image: &[(u64, Vec<u8>)],
    ring_base: u64,
    mem_bytes: u64,
) -> Case {
    let mut c = Case::new(name, program);
    c.image = image.to_vec();
    c.ring_base = ring_base;
    c.mem_size = mem_bytes.max(4096).next_multiple_of(4096);
    c.max_cycles = 500_000_000;
    c
}

/// A fuzzed program: random descriptors of every opcode with random fields
/// (mostly in range, sometimes not), random dependency flags (so deadlocks,
/// token overflows and bad flags happen), now and then 32 random bytes, ending
/// with a FENCE. Whatever happens (completion or any error), both sides must
/// agree event for event. Such programs race freely, so their data is
/// unspecified (docs/rtl.md, C4) and memory is not compared; DMA and FENCE
/// addresses stay clear of the ring, so data never changes what is fetched.
pub fn fuzz(cfg: &NpuConfig, seed: u64) -> Case {
    let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0xF022);
    let (rows, cols) = (cfg.array.rows, cfg.array.cols);
    let spad = cfg.memory.spad_bytes;
    let acc = cfg.memory.acc_bytes;
    let n = r.gen_range(1..=24);
    let mut ring: Vec<[u8; DESC_BYTES]> = Vec::new();
    // Mostly in range, sometimes just past the end.
    fn pick(r: &mut ChaCha8Rng, limit: u32, len: u32) -> u32 {
        if r.gen_bool(0.01) {
            limit.saturating_sub(len / 2)
        } else {
            r.gen_range(0..limit.saturating_sub(len).max(1))
        }
    }
    for _ in 0..n {
        let k = r.gen_range(0..100);
        let deps_roll = r.gen_range(0..100);
        let deps_bits = r.gen_range(0..16u8);
        let dram = |r: &mut ChaCha8Rng| {
            if r.gen_bool(0.01) {
                MEM - r.gen_range(0..64)
            } else {
                DATA + r.gen_range(0..0x2_0000u64)
            }
        };
        let op = match k {
            0..=1 => {
                let mut b = [0u8; DESC_BYTES];
                r.fill(&mut b[..]);
                if r.gen_bool(0.5) {
                    b[0] = r.gen_range(0..10);
                }
                ring.push(b);
                continue;
            }
            2..=12 => Op::Nop,
            13..=47 => {
                let acc_side = r.gen_bool(0.3);
                let rows_n = r.gen_range(1..=8u16);
                let row_bytes = if acc_side {
                    4 * r.gen_range(1..=16u16)
                } else {
                    r.gen_range(1..=64u16)
                };
                let limit = if acc_side { acc } else { spad };
                let mut local = pick(&mut r, limit, rows_n as u32 * row_bytes as u32);
                if acc_side && !r.gen_bool(0.01) {
                    local &= !3;
                }
                let dma = Dma {
                    local,
                    dram: dram(&mut r),
                    rows: rows_n,
                    row_bytes,
                    dram_stride: r.gen_range(0..200),
                    local_stride: row_bytes as u32 + if acc_side { 0 } else { r.gen_range(0..8) },
                    acc: acc_side,
                };
                if k <= 32 {
                    Op::Load(dma)
                } else {
                    Op::Store(dma)
                }
            }
            48..=65 => {
                let m = r.gen_range(1..=32u16);
                let over = u16::from(r.gen_bool(0.01));
                let kk = r.gen_range(1..=rows as u16 + over);
                let nn = r.gen_range(1..=cols as u16);
                Op::Matmul(Matmul {
                    a: pick(&mut r, spad, m as u32 * kk as u32),
                    w: pick(&mut r, spad, kk as u32 * nn as u32),
                    out: pick(&mut r, acc, m as u32 * nn as u32 * 4) & !3,
                    m,
                    k: kk,
                    n: nn,
                    accumulate: r.gen_bool(0.3),
                })
            }
            66..=75 => {
                let (rr, cc) = (r.gen_range(1..=8u16), r.gen_range(1..=24u16));
                let mut a = Act {
                    src: pick(&mut r, acc, rr as u32 * cc as u32 * 4) & !3,
                    dst: pick(&mut r, spad, rr as u32 * cc as u32),
                    bias: r
                        .gen_bool(0.5)
                        .then(|| pick(&mut r, acc, cc as u32 * 4) & !3),
                    rows: rr,
                    cols: cc,
                    multiplier: r.gen(),
                    shift: r.gen_range(0..=62),
                    zero_point: r.gen(),
                    relu: r.gen_bool(0.5),
                    qtab: None,
                };
                if r.gen_bool(0.4) {
                    // Per-channel: mostly a valid table address (sometimes
                    // misaligned or past the end), now and then with the
                    // per-tensor scale left in (reserved bits).
                    let mut q = pick(&mut r, acc, cc as u32 * 8);
                    if !r.gen_bool(0.02) {
                        q &= !3;
                    }
                    a.qtab = Some(q);
                    if !r.gen_bool(0.05) {
                        a.multiplier = 0;
                        a.shift = 0;
                    }
                }
                Op::Act(a)
            }
            76..=82 => {
                let len = r.gen_range(1..=300u32);
                Op::Add(Add {
                    a: pick(&mut r, spad, len),
                    b: pick(&mut r, spad, len),
                    dst: pick(&mut r, acc, len * 4) & !3,
                    len,
                    a_zp: r.gen(),
                    b_zp: r.gen(),
                    a_mult: r.gen(),
                    b_mult: r.gen(),
                    accumulate: r.gen_bool(0.5),
                })
            }
            83..=89 => {
                let len = r.gen_range(1..=300u32);
                Op::Max(Max {
                    a: pick(&mut r, spad, len),
                    b: pick(&mut r, spad, len),
                    dst: pick(&mut r, spad, len),
                    len,
                })
            }
            _ => Op::Fence(Fence {
                seq: r.gen(),
                writeback: r
                    .gen_bool(0.5)
                    .then(|| WB + 4 * r.gen_range(0..64) + u64::from(r.gen_bool(0.01))),
                irq: r.gen_bool(0.5),
            }),
        };
        // Mostly no flags or flags the unit allows; rarely any flags.
        let d = Descriptor::new(op);
        let allowed = d.opcode().unit().map_or(0, |u| u.allowed_deps());
        let deps = match deps_roll {
            0..=69 => 0,
            70..=97 => deps_bits & allowed,
            _ => deps_bits,
        };
        ring.push(d.with_deps(deps).encode());
    }
    ring.push(fence(0xF0, Some(WB), true).encode());
    let mut c = Case::new(format!("fuzz_seed{seed}"), &[]);
    c.ring = ring;
    c.image = vec![(DATA, pattern(DATA_LEN, seed))];
    c.expect = Expect::Any;
    c.compare_memory = false;
    c.max_cycles = 300_000;
    c.setup.push((regs::WATCHDOG, 50_000));
    let lat = r.gen_range(1..=80);
    let bpc = r.gen_range(1..=64);
    let out = r.gen_range(1..=16);
    c.dram(lat, bpc, out)
}
