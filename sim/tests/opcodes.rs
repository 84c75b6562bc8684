//! Data semantics of every opcode, end to end on the model: hand-written programs
//! run through the command ring, and their results in device memory are compared
//! with plain Rust computations written here from the documented semantics
//! (`firmware-abi/src/desc.rs`, `sim/src/act.rs` module docs), independent of the
//! model's own `mac`/`act` code. Every run also checks the performance counters
//! that are exact from the semantics (MACs, DMA bytes, descriptors completed).

use npukit_abi::asm::assemble;
use npukit_abi::desc::{deps, qtab_image, Act, Add, Dma, Fence, Matmul, Max, Op, QuantEntry};
use npukit_abi::program::Program;
use npukit_abi::{regs, Descriptor};
use npukit_sim::run::{read_counters, run_program, start, Outcome};
use npukit_sim::{Device, ModelDevice, NpuConfig, RunExit, VecMemory};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MEM_BYTES: usize = 1 << 20;
/// The ring lives at the bottom of memory; data starts at 0x1_0000.
const RING: u64 = 0;
const MAX_CYCLES: u64 = 20_000_000;

// ---------------------------------------------------------------- helpers

fn config(rows: u32, cols: u32) -> NpuConfig {
    let mut cfg = NpuConfig::default();
    cfg.array.rows = rows;
    cfg.array.cols = cols;
    cfg.validate().expect("valid config");
    cfg
}

/// A byte that differs from its neighbours, to detect stray writes.
fn canary(addr: usize) -> u8 {
    ((addr.wrapping_mul(131).wrapping_add(17)) % 251) as u8 ^ 0xA5
}

fn random_bytes(rng: &mut ChaCha8Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen::<u8>()).collect()
}

/// Random int8 values, biased towards the extremes when `extremes`.
fn random_i8s(rng: &mut ChaCha8Rng, n: usize, extremes: bool) -> Vec<i8> {
    (0..n)
        .map(|_| {
            if extremes && rng.gen_bool(0.5) {
                [-128i8, 127, -127, -1, 0, 1][rng.gen_range(0..6)]
            } else {
                rng.gen::<i8>()
            }
        })
        .collect()
}

fn i8_bytes(v: &[i8]) -> Vec<u8> {
    v.iter().map(|&x| x as u8).collect()
}

fn i32_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_i32(b: &[u8]) -> Vec<i32> {
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn desc(op: Op) -> Descriptor {
    Descriptor::new(op)
}

#[allow(clippy::too_many_arguments)]
fn dma(
    local: u32,
    dram: u64,
    rows: u16,
    row_bytes: u16,
    dram_stride: u32,
    local_stride: u32,
    acc: bool,
) -> Dma {
    Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride,
        local_stride,
        acc,
    }
}

/// One packed row of `len` bytes.
fn row(local: u32, dram: u64, len: u16, acc: bool) -> Dma {
    dma(local, dram, 1, len, len as u32, len as u32, acc)
}

fn load(d: Dma) -> Descriptor {
    desc(Op::Load(d))
}

fn store(d: Dma) -> Descriptor {
    desc(Op::Store(d))
}

/// A FENCE used as a barrier: no interrupt, no writeback.
fn barrier(seq: u32) -> Descriptor {
    desc(Op::Fence(Fence {
        seq,
        writeback: None,
        irq: false,
    }))
}

fn fence_irq(seq: u32) -> Descriptor {
    desc(Op::Fence(Fence {
        seq,
        writeback: None,
        irq: true,
    }))
}

/// The counter values a program must produce, from its descriptors alone.
#[derive(Debug, Default, PartialEq, Eq)]
struct Exact {
    macs: u64,
    rd: u64,
    wr: u64,
    done: u64,
}

fn exact_counters(prog: &[Descriptor]) -> Exact {
    let mut e = Exact {
        done: prog.len() as u64,
        ..Exact::default()
    };
    for d in prog {
        match d.op {
            Op::Matmul(m) => e.macs += m.m as u64 * m.k as u64 * m.n as u64,
            Op::Load(x) => e.rd += x.rows as u64 * x.row_bytes as u64,
            Op::Store(x) => e.wr += x.rows as u64 * x.row_bytes as u64,
            _ => {}
        }
    }
    e
}

struct Env {
    dev: ModelDevice,
    mem: VecMemory,
}

impl Env {
    fn new(rows: u32, cols: u32) -> Self {
        Env {
            dev: ModelDevice::new(&config(rows, cols)),
            mem: VecMemory::new(MEM_BYTES),
        }
    }

    fn put(&mut self, addr: u64, data: &[u8]) {
        self.mem.store(addr, data).expect("in memory");
    }

    fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        self.mem.load(addr, len).expect("in memory").to_vec()
    }

    /// Fills `[from, to)` with the canary pattern.
    fn fill_canary(&mut self, from: usize, to: usize) {
        for a in from..to {
            self.mem.bytes_mut()[a] = canary(a);
        }
    }

    /// Resets the device (a previous run leaves RUN set, and `run::start` only
    /// programs an idle ring), runs `prog` (ending with a FENCE with IRQ) and
    /// checks the exact counters. Reset clears the local memories too.
    fn run(&mut self, prog: &[Descriptor]) -> Outcome {
        self.dev.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
        let before = read_counters(&mut self.dev);
        let out = run_program(&mut self.dev, &mut self.mem, RING, prog, MAX_CYCLES)
            .unwrap_or_else(|e| panic!("program failed: {e}\n{prog:#?}"));
        let c = out.counters;
        let got = Exact {
            macs: c.macs - before.macs,
            rd: c.dma_rd_bytes - before.dma_rd_bytes,
            wr: c.dma_wr_bytes - before.dma_wr_bytes,
            done: c.desc_done - before.desc_done,
        };
        assert_eq!(got, exact_counters(prog), "performance counters");
        assert_eq!(self.dev.mmio_read(regs::STATUS) & regs::STATUS_HALTED, 0);
        out
    }
}

// ---------------------------------------------------------------- LOAD

/// Fills a local region with random bytes, LOADs `d` over it, STOREs the whole
/// region back and compares with a reference copy of the region.
fn check_load(env: &mut Env, rng: &mut ChaCha8Rng, d: Dma) {
    const FILL: u64 = 0x1_0000; // random bytes used to prefill local memory
    const SRC: u64 = 0x4_0000; // the source window of the LOAD under test
    const OUT: u64 = 0x8_0000;
    assert!(d.dram >= SRC);
    let rows = d.rows as usize;
    let (rb, ls, ds) = (
        d.row_bytes as usize,
        d.local_stride as usize,
        d.dram_stride as usize,
    );
    // The local window checked: 8 bytes either side of the access (4-aligned).
    let lo = (d.local as usize).saturating_sub(8) & !3;
    let hi = (d.local as usize + (rows - 1) * ls + rb + 8 + 3) & !3;
    let span = hi - lo;
    let fill = random_bytes(rng, span);
    env.put(FILL, &fill);
    let src = random_bytes(rng, 0x2_0000);
    env.put(SRC, &src);
    // Reference.
    let mut local = fill.clone();
    for r in 0..rows {
        let s = d.dram as usize - SRC as usize + r * ds;
        let l = d.local as usize - lo + r * ls;
        local[l..l + rb].copy_from_slice(&src[s..s + rb]);
    }
    let prog = vec![
        load(row(lo as u32, FILL, span as u16, d.acc)),
        barrier(1),
        load(d),
        barrier(2),
        store(row(lo as u32, OUT, span as u16, d.acc)),
        fence_irq(3),
    ];
    env.run(&prog);
    assert_eq!(env.get(OUT, span), local, "LOAD {d:?}");
}

#[test]
fn load_2d_strided_unaligned_device_address() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut env = Env::new(16, 16);
    // Device address 3 bytes past a beat boundary, rows spanning several beats.
    check_load(&mut env, &mut rng, dma(5, 0x4_0003, 5, 70, 133, 70, false));
}

#[test]
fn load_row_bytes_not_a_multiple_of_the_beat() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut env = Env::new(16, 16);
    for rb in [1u16, 7, 31, 33, 63, 65] {
        check_load(
            &mut env,
            &mut rng,
            dma(100, 0x4_001F, 3, rb, 97, rb as u32, false),
        );
    }
}

#[test]
fn load_dram_stride_zero_broadcasts_a_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut env = Env::new(16, 16);
    check_load(&mut env, &mut rng, dma(16, 0x4_0101, 6, 45, 0, 45, false));
    // Also spelled out: every row equals the first.
    let first = env.get(0x4_0101, 45);
    let out = env.get(0x8_0000 + 8, 6 * 45);
    for r in 0..6 {
        assert_eq!(out[r * 45..(r + 1) * 45], first[..], "row {r}");
    }
}

#[test]
fn load_local_stride_larger_than_row_bytes_keeps_gaps() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut env = Env::new(16, 16);
    check_load(&mut env, &mut rng, dma(64, 0x4_0040, 4, 20, 20, 57, false));
    check_load(&mut env, &mut rng, dma(3, 0x4_0007, 7, 9, 300, 1000, false));
}

#[test]
fn load_overlapping_device_rows() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut env = Env::new(16, 16);
    // dram_stride < row_bytes: rows overlap in device memory (any value is allowed).
    check_load(&mut env, &mut rng, dma(0, 0x4_0010, 4, 50, 7, 50, false));
}

#[test]
fn load_into_accumulator() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut env = Env::new(16, 16);
    check_load(&mut env, &mut rng, dma(16, 0x4_0005, 3, 12, 41, 20, true));
    check_load(&mut env, &mut rng, dma(0x800, 0x4_0000, 1, 4, 0, 0, true));
    check_load(&mut env, &mut rng, dma(0x100, 0x4_0021, 4, 64, 0, 64, true));
}

#[test]
fn load_random_shapes() {
    for seed in 0..40u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        let mut env = Env::new(16, 16);
        let acc = rng.gen_bool(0.3);
        let rows = rng.gen_range(1..=6u16);
        let mut rb = rng.gen_range(1..=100u16);
        if acc {
            rb = rb.div_ceil(4) * 4;
        }
        let ds = match rng.gen_range(0..4) {
            0 => 0,
            1 => rb as u32,
            2 => rng.gen_range(1..=rb as u32),
            _ => rb as u32 + rng.gen_range(1..200),
        };
        let mut ls = rb as u32 + rng.gen_range(0..50);
        let mut local = rng.gen_range(0..2000u32);
        if acc {
            ls = ls.div_ceil(4) * 4;
            local &= !3;
        }
        let dram = 0x4_0000 + rng.gen_range(0..0x1000u64);
        check_load(&mut env, &mut rng, dma(local, dram, rows, rb, ds, ls, acc));
    }
}

// ---------------------------------------------------------------- STORE

/// Fills device memory with the canary pattern and local memory with random
/// bytes, STOREs `d`, and compares the whole device memory with a reference.
fn check_store(env: &mut Env, rng: &mut ChaCha8Rng, d: Dma) {
    const FILL: u64 = 0x1_0000;
    const DST: u64 = 0x4_0000;
    assert!(d.dram >= DST);
    let (rows, rb) = (d.rows as usize, d.row_bytes as usize);
    let (ls, ds) = (d.local_stride as usize, d.dram_stride as usize);
    let lo = d.local as usize & !3;
    let span = (d.local as usize + (rows - 1) * ls + rb - lo + 3) & !3;
    let local = random_bytes(rng, span);
    env.fill_canary(0x1_0000, MEM_BYTES);
    env.put(FILL, &local);
    let mut expect = env.mem.bytes().to_vec();
    for r in 0..rows {
        let l = d.local as usize - lo + r * ls;
        let a = d.dram as usize + r * ds;
        expect[a..a + rb].copy_from_slice(&local[l..l + rb]);
    }
    let prog = vec![
        load(row(lo as u32, FILL, span as u16, d.acc)),
        barrier(1),
        store(d),
        fence_irq(2),
    ];
    env.run(&prog);
    // Only the target bytes changed (beyond the ring, which the run wrote).
    let got = &env.mem.bytes()[0x1_0000..];
    let want = &expect[0x1_0000..];
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "STORE {d:?}: byte {:#x} is {:#04x}, expected {:#04x}",
            0x1_0000 + i,
            got[i],
            want[i]
        );
    }
}

#[test]
fn store_2d_strided_partial_beats_keep_neighbours() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    let mut env = Env::new(16, 16);
    // Rows start mid-beat, end mid-beat, and are shorter than a beat.
    check_store(&mut env, &mut rng, dma(3, 0x4_0011, 4, 13, 45, 13, false));
    check_store(&mut env, &mut rng, dma(0, 0x4_001F, 3, 2, 32, 2, false));
    check_store(&mut env, &mut rng, dma(7, 0x4_0001, 2, 95, 200, 101, false));
    check_store(&mut env, &mut rng, dma(0, 0x4_0020, 1, 1, 0, 0, false));
}

#[test]
fn store_from_accumulator() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut env = Env::new(16, 16);
    check_store(&mut env, &mut rng, dma(16, 0x4_0013, 3, 12, 50, 24, true));
    check_store(
        &mut env,
        &mut rng,
        dma(0x400, 0x4_0000, 5, 64, 64, 64, true),
    );
    check_store(&mut env, &mut rng, dma(4, 0x4_003E, 2, 4, 1, 4, true));
}

#[test]
fn store_random_shapes() {
    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(200 + seed);
        let mut env = Env::new(16, 16);
        let acc = rng.gen_bool(0.3);
        let rows = rng.gen_range(1..=5u16);
        let mut rb = rng.gen_range(1..=90u16);
        if acc {
            rb = rb.div_ceil(4) * 4;
        }
        // Rows never overlap here (overlap is the next test).
        let ds = rb as u32 + rng.gen_range(0..100);
        let mut ls = rb as u32 + rng.gen_range(0..40);
        let mut local = rng.gen_range(0..1000u32);
        if acc {
            ls = ls.div_ceil(4) * 4;
            local &= !3;
        }
        let dram = 0x4_0000 + rng.gen_range(0..0x800u64);
        check_store(&mut env, &mut rng, dma(local, dram, rows, rb, ds, ls, acc));
    }
}

#[test]
fn store_overlapping_rows_land_in_row_order() {
    // Beats are requested in row order and memory is written at acceptance, so
    // the last row wins where rows overlap.
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut env = Env::new(16, 16);
    check_store(&mut env, &mut rng, dma(0, 0x4_0005, 4, 40, 0, 40, false));
    check_store(&mut env, &mut rng, dma(0, 0x4_0005, 4, 40, 9, 40, false));
}

// ---------------------------------------------------------------- MATMUL

fn ref_matmul(a: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    let mut out = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0i32;
            for kk in 0..k {
                s = s.wrapping_add(a[i * k + kk] as i32 * w[kk * n + j] as i32);
            }
            out[i * n + j] = s;
        }
    }
    out
}

struct MatmulCase {
    rows: u32,
    cols: u32,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    extremes: bool,
    seed: u64,
}

/// A and W from device memory to the scratchpad, the accumulator prefilled,
/// one MATMUL, and the accumulator window around OUT stored back.
fn check_matmul(c: MatmulCase) {
    const A: u64 = 0x1_0000;
    const W: u64 = 0x2_0000;
    const INIT: u64 = 0x3_0000;
    const OUT: u64 = 0x6_0000;
    const A_SP: u32 = 0x100;
    const W_SP: u32 = 0x1_0003; // unaligned on purpose
    const OUT_ACC: u32 = 0x40; // 16 words of margin before OUT
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let mut env = Env::new(c.rows, c.cols);
    let (m, k, n) = (c.m, c.k, c.n);
    let a = random_i8s(&mut rng, m * k, c.extremes);
    let w = random_i8s(&mut rng, k * n, c.extremes);
    let words = 16 + m * n + 16;
    let init: Vec<i32> = (0..words)
        .map(|_| rng.gen_range(-(1 << 24)..(1 << 24)))
        .collect();
    env.put(A, &i8_bytes(&a));
    env.put(W, &i8_bytes(&w));
    env.put(INIT, &i32_bytes(&init));
    let mut expect = init.clone();
    let prod = ref_matmul(&a, &w, m, k, n);
    for (i, p) in prod.iter().enumerate() {
        let e = &mut expect[16 + i];
        *e = if c.accumulate { e.wrapping_add(*p) } else { *p };
    }
    let mm = Matmul {
        a: A_SP,
        w: W_SP,
        out: OUT_ACC,
        m: m as u16,
        k: k as u16,
        n: n as u16,
        accumulate: c.accumulate,
    };
    let prog = vec![
        // A as m rows of k bytes, W as k rows of n bytes (2-D, packed locally).
        load(dma(A_SP, A, m as u16, k as u16, k as u32, k as u32, false)),
        load(dma(W_SP, W, k as u16, n as u16, n as u32, n as u32, false)),
        load(row(0, INIT, (words * 4) as u16, true)),
        barrier(1),
        desc(Op::Matmul(mm)),
        barrier(2),
        store(row(0, OUT, (words * 4) as u16, true)),
        fence_irq(3),
    ];
    let out = env.run(&prog);
    assert_eq!(out.counters.macs, (m * k * n) as u64);
    let got = bytes_i32(&env.get(OUT, words * 4));
    for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
        let at = if (16..16 + m * n).contains(&i) {
            format!("out[{}][{}]", (i - 16) / n, (i - 16) % n)
        } else {
            format!("acc word {i} (outside OUT)")
        };
        assert_eq!(g, e, "{at}, {}x{} array, m={m} k={k} n={n}", c.rows, c.cols);
    }
}

fn mm_case(rows: u32, cols: u32, m: usize, k: usize, n: usize, accumulate: bool) -> MatmulCase {
    let seed = (rows * 1000 + cols * 100) as u64 + (m * 10000 + k * 100 + n) as u64;
    MatmulCase {
        rows,
        cols,
        m,
        k,
        n,
        accumulate,
        extremes: true,
        seed,
    }
}

#[test]
fn matmul_full_array_overwrite_and_accumulate() {
    check_matmul(mm_case(8, 8, 8, 8, 8, false));
    check_matmul(mm_case(8, 8, 8, 8, 8, true));
    check_matmul(mm_case(16, 16, 16, 16, 16, false));
}

#[test]
fn matmul_k_below_rows_and_n_below_cols() {
    check_matmul(mm_case(8, 8, 5, 3, 6, false));
    check_matmul(mm_case(8, 8, 5, 1, 1, true));
    check_matmul(mm_case(16, 16, 3, 7, 9, true));
}

#[test]
fn matmul_non_square_arrays() {
    // 4 rows x 8 columns: k <= 4, n <= 8.
    check_matmul(mm_case(4, 8, 7, 4, 8, false));
    check_matmul(mm_case(4, 8, 3, 2, 5, true));
    // 8 rows x 4 columns: k <= 8, n <= 4.
    check_matmul(mm_case(8, 4, 9, 8, 4, false));
    check_matmul(mm_case(8, 4, 6, 5, 3, true));
}

#[test]
fn matmul_m_larger_than_the_array() {
    check_matmul(mm_case(8, 8, 37, 8, 8, false));
    check_matmul(mm_case(4, 8, 100, 3, 7, true));
    check_matmul(mm_case(8, 4, 65, 8, 4, true));
}

#[test]
fn matmul_extreme_values() {
    // All -128: every output is k * 16384.
    let mut env = Env::new(8, 8);
    env.put(0x1_0000, &[0x80; 64]);
    let prog = vec![
        load(row(0, 0x1_0000, 64, false)),
        barrier(1),
        desc(Op::Matmul(Matmul {
            a: 0,
            w: 0,
            out: 0,
            m: 8,
            k: 8,
            n: 8,
            accumulate: false,
        })),
        barrier(2),
        store(row(0, 0x2_0000, 256, true)),
        fence_irq(3),
    ];
    env.run(&prog);
    assert!(bytes_i32(&env.get(0x2_0000, 256))
        .iter()
        .all(|&v| v == 8 * 16384));
    // 127 x -128 and random mixtures of the extremes.
    for seed in 0..6 {
        check_matmul(MatmulCase {
            rows: 8,
            cols: 8,
            m: 11,
            k: 8,
            n: 8,
            accumulate: seed % 2 == 1,
            extremes: true,
            seed: 900 + seed,
        });
    }
}

#[test]
fn matmul_random_shapes() {
    for seed in 0..24u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(300 + seed);
        let (rows, cols) = [(4, 8), (8, 4), (8, 8), (16, 16), (4, 4)][rng.gen_range(0..5)];
        check_matmul(MatmulCase {
            rows,
            cols,
            m: rng.gen_range(1..=40),
            k: rng.gen_range(1..=rows as usize),
            n: rng.gen_range(1..=cols as usize),
            accumulate: rng.gen_bool(0.5),
            extremes: rng.gen_bool(0.5),
            seed: 400 + seed,
        });
    }
}

/// C[40x20] = A[40x24] * W[24x20] on an 8x8 array: three column tiles of W
/// (8, 8, 4 wide), three k-chunks of 8 each accumulated with ACCUMULATE,
/// double-buffered in the scratchpad and synchronised with dependency tokens.
#[test]
fn multi_tile_gemm_40x24x20_on_8x8() {
    const M: usize = 40;
    const K: usize = 24;
    const N: usize = 20;
    const A: u64 = 0x1_0000;
    const W: u64 = 0x2_0000;
    const C: u64 = 0x3_0000;
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut env = Env::new(8, 8);
    let a = random_i8s(&mut rng, M * K, true);
    let w = random_i8s(&mut rng, K * N, true);
    env.put(A, &i8_bytes(&a));
    env.put(W, &i8_bytes(&w));
    env.fill_canary(C as usize, C as usize + M * N * 4 + 64);

    let steps: Vec<(usize, usize)> = (0..N)
        .step_by(8)
        .flat_map(|j0| (0..K).step_by(8).map(move |k0| (j0, k0)))
        .collect();
    let mut p = Program::new();
    for (s, &(j0, k0)) in steps.iter().enumerate() {
        let nt = (N - j0).min(8);
        let buf = (s % 2) as u32 * 0x800;
        let (a_sp, w_sp) = (buf, buf + 0x400);
        let out = (j0 / 8) as u32 * (M * 8 * 4) as u32; // one accumulator tile per column tile
                                                        // A[:, k0..k0+8] and W[k0..k0+8, j0..j0+nt], packed.
        p.load(dma(a_sp, A + k0 as u64, M as u16, 8, K as u32, 8, false));
        if s >= 2 {
            p.deps(deps::WAIT_NEXT); // buffer freed by MATMUL s-2
        }
        p.load(dma(
            w_sp,
            W + (k0 * N + j0) as u64,
            8,
            nt as u16,
            N as u32,
            nt as u32,
            false,
        ));
        p.deps(deps::SIGNAL_NEXT);
        let last_k = k0 + 8 == K;
        p.matmul(Matmul {
            a: a_sp,
            w: w_sp,
            out,
            m: M as u16,
            k: 8,
            n: nt as u16,
            accumulate: k0 > 0,
        });
        p.deps(deps::WAIT_PREV);
        if s + 2 < steps.len() {
            p.deps(deps::SIGNAL_PREV);
        }
        if last_k {
            p.deps(deps::SIGNAL_NEXT);
            let row_bytes = (nt * 4) as u16;
            p.store(dma(
                out,
                C + (j0 * 4) as u64,
                M as u16,
                row_bytes,
                (N * 4) as u32,
                row_bytes as u32,
                true,
            ));
            p.deps(deps::WAIT_PREV);
        }
    }
    p.fence(Fence {
        seq: 77,
        writeback: Some(C + (M * N * 4) as u64),
        irq: true,
    });
    let prog = p.into_descs();
    let out = env.run(&prog);

    let want = ref_matmul(&a, &w, M, K, N);
    let got = bytes_i32(&env.get(C, M * N * 4));
    for i in 0..M {
        for j in 0..N {
            assert_eq!(got[i * N + j], want[i * N + j], "C[{i}][{j}]");
        }
    }
    assert_eq!(env.get(C + (M * N * 4) as u64, 4), 77u32.to_le_bytes());
    let tail = (C as usize + M * N * 4 + 4)..(C as usize + M * N * 4 + 64);
    assert!(
        tail.clone().all(|x| env.mem.bytes()[x] == canary(x)),
        "bytes after C"
    );
    // Exact counters, spelled out.
    assert_eq!(out.counters.macs, (M * K * N) as u64);
    assert_eq!(
        out.counters.dma_rd_bytes,
        (3 * 3 * M * 8 + 3 * 8 * N) as u64
    );
    assert_eq!(out.counters.dma_wr_bytes, (M * N * 4) as u64);
    assert_eq!(out.counters.desc_done, prog.len() as u64);
    assert_eq!(env.dev.tokens(), [0; 4], "every token consumed");
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 77);
}

// ---------------------------------------------------------------- ACT

/// The documented requantisation, in wide integers.
fn ref_requantize(acc: i32, bias: i32, mult: i32, shift: u8, zp: i8, relu: bool) -> i8 {
    let x = (acc as i128 + bias as i128).clamp(i32::MIN as i128, i32::MAX as i128);
    let p = x * mult as i128;
    let r = if shift == 0 {
        p
    } else if shift > 100 {
        // |p| <= 2^62 < 2^(shift-1), so p + 2^(shift-1) lies in (0, 2^shift).
        0
    } else {
        (p + (1i128 << (shift - 1))).div_euclid(1i128 << shift)
    };
    let lo = if relu { zp as i128 } else { -128 };
    (r + zp as i128).clamp(lo, 127) as i8
}

#[derive(Debug, Clone, Copy)]
struct ActParams {
    rows: usize,
    cols: usize,
    multiplier: i32,
    shift: u8,
    zero_point: i8,
    relu: bool,
    bias: bool,
}

fn check_act(env: &mut Env, p: ActParams, acc: &[i32], bias: &[i32]) {
    check_act_with(env, p, acc, bias, None);
}

/// `check_act`, or with `table` a PER_CHANNEL ACT (the multiplier and shift of
/// `p` unused) with that table in the accumulator memory.
fn check_act_with(
    env: &mut Env,
    p: ActParams,
    acc: &[i32],
    bias: &[i32],
    table: Option<&[QuantEntry]>,
) {
    const QTAB: u64 = 0x5_0000;
    const QTAB_ACC: u32 = 0xC004;
    const SRC: u64 = 0x1_0000;
    const BIAS: u64 = 0x2_0000;
    const FILL: u64 = 0x3_0000;
    const OUT: u64 = 0x4_0000;
    const SRC_ACC: u32 = 0x100;
    const BIAS_ACC: u32 = 0x8000;
    const DST: u32 = 0x213; // unaligned scratchpad output
    let (rows, cols) = (p.rows, p.cols);
    let n = rows * cols;
    assert_eq!(acc.len(), n);
    assert_eq!(bias.len(), cols);
    env.put(SRC, &i32_bytes(acc));
    env.put(BIAS, &i32_bytes(bias));
    // Scratchpad window DST-16 .. DST+n+16, prefilled.
    let fill: Vec<u8> = (0..n + 32).map(canary).collect();
    env.put(FILL, &fill);
    let mut expect = fill.clone();
    let scale = |j: usize| match table {
        // The documented entry: shift = bits 7:0 of the second word.
        Some(t) => (t[j].multiplier, (t[j].shift & 0xFF) as u8),
        None => (p.multiplier, p.shift),
    };
    for i in 0..rows {
        for j in 0..cols {
            let b = if p.bias { bias[j] } else { 0 };
            let (m, sh) = scale(j);
            let y = ref_requantize(acc[i * cols + j], b, m, sh, p.zero_point, p.relu);
            expect[16 + i * cols + j] = y as u8;
        }
    }
    let per_channel = table.is_some();
    let act = Act {
        src: SRC_ACC,
        dst: DST,
        bias: p.bias.then_some(BIAS_ACC),
        rows: rows as u16,
        cols: cols as u16,
        multiplier: if per_channel { 0 } else { p.multiplier },
        shift: if per_channel { 0 } else { p.shift },
        zero_point: p.zero_point,
        relu: p.relu,
        qtab: per_channel.then_some(QTAB_ACC),
    };
    let mut prog = vec![];
    if let Some(t) = table {
        assert_eq!(t.len(), cols);
        env.put(QTAB, &qtab_image(t));
        prog.push(load(row(QTAB_ACC, QTAB, (cols * 8) as u16, true)));
    }
    prog.extend([
        load(dma(
            SRC_ACC,
            SRC,
            rows as u16,
            (cols * 4) as u16,
            (cols * 4) as u32,
            (cols * 4) as u32,
            true,
        )),
        load(row(BIAS_ACC, BIAS, (cols * 4) as u16, true)),
        load(row(DST - 16, FILL, (n + 32) as u16, false)),
        barrier(1),
        desc(Op::Act(act)),
        barrier(2),
        store(row(DST - 16, OUT, (n + 32) as u16, false)),
        fence_irq(3),
    ]);
    env.run(&prog);
    let got = env.get(OUT, n + 32);
    for (i, (&g, &e)) in got.iter().zip(&expect).enumerate() {
        if (16..16 + n).contains(&i) {
            let (r, c) = ((i - 16) / cols, (i - 16) % cols);
            let x = acc[i - 16];
            assert_eq!(g as i8, e as i8, "ACT {p:?}: y[{r}][{c}] from acc {x}");
        } else {
            assert_eq!(
                g, e,
                "ACT {p:?}: scratchpad byte {i} outside the output changed"
            );
        }
    }
}

/// Accumulator values: small, large, extremes, and rounding ties for `shift`.
fn act_inputs(rng: &mut ChaCha8Rng, n: usize, shift: u8) -> Vec<i32> {
    (0..n)
        .map(|_| match rng.gen_range(0..6) {
            0 => rng.gen_range(-300..300),
            1 => rng.gen(),
            2 => [i32::MIN, i32::MAX, i32::MIN + 1, i32::MAX - 1, 0, -1][rng.gen_range(0..6)],
            3 if shift > 0 && shift < 24 => {
                // An exact tie (x = (2q+1) * 2^(shift-1)) or one off it.
                let q: i32 = rng.gen_range(-100..100);
                ((2 * q + 1) << (shift - 1)) + rng.gen_range(-1..=1)
            }
            _ => rng.gen_range(-100_000..100_000),
        })
        .collect()
}

fn act_case(seed: u64, p: ActParams) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut env = Env::new(16, 16);
    let acc = act_inputs(&mut rng, p.rows * p.cols, p.shift);
    let bias: Vec<i32> = (0..p.cols)
        .map(|_| {
            if rng.gen_bool(0.2) {
                [i32::MAX, i32::MIN][rng.gen_range(0..2)]
            } else {
                rng.gen_range(-5000..5000)
            }
        })
        .collect();
    check_act(&mut env, p, &acc, &bias);
}

const ACT_BASE: ActParams = ActParams {
    rows: 5,
    cols: 19, // more than the 16 lanes
    multiplier: 1 << 30,
    shift: 31,
    zero_point: 0,
    relu: false,
    bias: false,
};

#[test]
fn act_without_bias() {
    act_case(500, ACT_BASE);
    act_case(
        501,
        ActParams {
            multiplier: 1_518_500_250,
            shift: 38,
            zero_point: 10,
            ..ACT_BASE
        },
    );
}

#[test]
fn act_with_bias_and_relu() {
    act_case(
        510,
        ActParams {
            bias: true,
            ..ACT_BASE
        },
    );
    act_case(
        511,
        ActParams {
            bias: true,
            relu: true,
            zero_point: -5,
            ..ACT_BASE
        },
    );
    act_case(
        512,
        ActParams {
            bias: false,
            relu: true,
            zero_point: 0,
            ..ACT_BASE
        },
    );
    // Bias saturation: acc + bias beyond int32 saturates before the multiply.
    let mut env = Env::new(16, 16);
    let p = ActParams {
        rows: 1,
        cols: 4,
        multiplier: 1,
        shift: 24,
        bias: true,
        ..ACT_BASE
    };
    check_act(
        &mut env,
        p,
        &[i32::MAX, i32::MIN, i32::MAX, 5],
        &[i32::MAX, i32::MIN, -1, i32::MIN],
    );
}

#[test]
fn act_negative_multipliers() {
    act_case(
        520,
        ActParams {
            multiplier: -(1 << 30),
            shift: 30,
            zero_point: 3,
            ..ACT_BASE
        },
    );
    act_case(
        521,
        ActParams {
            multiplier: i32::MIN,
            shift: 40,
            ..ACT_BASE
        },
    );
    act_case(
        522,
        ActParams {
            multiplier: -7,
            shift: 2,
            relu: true,
            zero_point: -20,
            ..ACT_BASE
        },
    );
}

#[test]
fn act_shift_zero_and_large_shifts() {
    act_case(
        530,
        ActParams {
            multiplier: 1,
            shift: 0,
            ..ACT_BASE
        },
    );
    act_case(
        531,
        ActParams {
            multiplier: -2,
            shift: 0,
            zero_point: -3,
            ..ACT_BASE
        },
    );
    act_case(
        532,
        ActParams {
            multiplier: i32::MAX,
            shift: 62,
            ..ACT_BASE
        },
    );
    act_case(
        533,
        ActParams {
            multiplier: i32::MIN,
            shift: 62,
            bias: true,
            ..ACT_BASE
        },
    );
    act_case(
        534,
        ActParams {
            multiplier: 1 << 20,
            shift: 50,
            ..ACT_BASE
        },
    );
}

#[test]
fn act_rounds_half_up() {
    // multiplier 1, shift 1: x / 2 rounded half up (-1.5 -> -1, 1.5 -> 2).
    let mut env = Env::new(16, 16);
    let acc: Vec<i32> = (-9..=9).collect();
    let p = ActParams {
        rows: 1,
        cols: 19,
        multiplier: 1,
        shift: 1,
        ..ACT_BASE
    };
    check_act(&mut env, p, &acc, &[0; 19]);
    let got: Vec<i8> = env
        .get(0x4_0000 + 16, 19)
        .iter()
        .map(|&b| b as i8)
        .collect();
    assert_eq!(
        got,
        vec![-4, -4, -3, -3, -2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    );
}

#[test]
fn act_zero_points_and_saturation_at_both_ends() {
    act_case(
        540,
        ActParams {
            multiplier: 1,
            shift: 0,
            zero_point: 127,
            ..ACT_BASE
        },
    );
    act_case(
        541,
        ActParams {
            multiplier: 1,
            shift: 0,
            zero_point: -128,
            ..ACT_BASE
        },
    );
    act_case(
        542,
        ActParams {
            multiplier: 1,
            shift: 0,
            zero_point: 127,
            relu: true,
            ..ACT_BASE
        },
    );
    act_case(
        543,
        ActParams {
            multiplier: 1,
            shift: 0,
            zero_point: -128,
            relu: true,
            ..ACT_BASE
        },
    );
    act_case(
        544,
        ActParams {
            multiplier: 3,
            shift: 1,
            zero_point: 60,
            relu: true,
            ..ACT_BASE
        },
    );
    // Spelled out: shift 0 passes values through, saturating at -128 and 127.
    let mut env = Env::new(16, 16);
    let p = ActParams {
        rows: 2,
        cols: 4,
        multiplier: 1,
        shift: 0,
        ..ACT_BASE
    };
    check_act(
        &mut env,
        p,
        &[-1000, -129, -128, -5, 5, 127, 128, 1000],
        &[0; 4],
    );
    let got: Vec<i8> = env.get(0x4_0000 + 16, 8).iter().map(|&b| b as i8).collect();
    assert_eq!(got, vec![-128, -128, -128, -5, 5, 127, 127, 127]);
}

#[test]
fn act_random_parameters() {
    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(600 + seed);
        let p = ActParams {
            rows: rng.gen_range(1..=6),
            cols: rng.gen_range(1..=40),
            multiplier: rng.gen(),
            shift: rng.gen_range(0..=62),
            zero_point: rng.gen(),
            relu: rng.gen_bool(0.5),
            bias: rng.gen_bool(0.5),
        };
        act_case(700 + seed, p);
    }
}

/// A per-channel table: multipliers and shifts of every kind, including the
/// shifts a descriptor may not hold (63..=255) and bits above 7:0.
fn random_table(rng: &mut ChaCha8Rng, cols: usize) -> Vec<QuantEntry> {
    (0..cols)
        .map(|_| {
            let multiplier = match rng.gen_range(0..5) {
                0 => [i32::MIN, i32::MAX, -1, 0, 1][rng.gen_range(0..5)],
                1 => rng.gen(),
                _ => rng.gen_range(1 << 28..=i32::MAX),
            };
            let shift = match rng.gen_range(0..6) {
                0 => [0u32, 1, 62, 63, 64, 65, 127, 128, 255][rng.gen_range(0..9)],
                1 => rng.gen(),
                _ => rng.gen_range(20..=40),
            };
            QuantEntry { multiplier, shift }
        })
        .collect()
}

/// PER_CHANNEL: each column requantised with its own table entry, against the
/// reference; shapes across lane groups, with and without bias and ReLU.
#[test]
fn act_per_channel_random_tables() {
    for seed in 0..30u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(900 + seed);
        let p = ActParams {
            rows: rng.gen_range(1..=6),
            cols: rng.gen_range(1..=40),
            zero_point: rng.gen(),
            relu: rng.gen_bool(0.5),
            bias: rng.gen_bool(0.5),
            ..ACT_BASE
        };
        let table = random_table(&mut rng, p.cols);
        let acc = act_inputs(&mut rng, p.rows * p.cols, 20);
        let bias: Vec<i32> = (0..p.cols).map(|_| rng.gen_range(-5000..5000)).collect();
        let mut env = Env::new(16, 16);
        check_act_with(&mut env, p, &acc, &bias, Some(&table));
    }
}

/// PER_CHANNEL: the shift corners, exactly. Shift 63 rounds `p = 2^62` (x and
/// the multiplier both `i32::MIN`) to 1 and everything else to 0; 64 and more
/// give 0; only bits 7:0 of the shift word count (0x1_00 is a shift of 0).
#[test]
fn act_per_channel_shift_corners() {
    let e = |multiplier, shift| QuantEntry { multiplier, shift };
    let table = [
        e(i32::MIN, 63),
        e(i32::MIN, 63),
        e(i32::MIN, 64),
        e(i32::MAX, 255),
        e(3, 0x100),
        e(3, 0xABCD_EF01),
        e(-1, 62),
    ];
    let p = ActParams {
        rows: 1,
        cols: table.len(),
        zero_point: 5,
        relu: false,
        bias: false,
        ..ACT_BASE
    };
    let acc = [i32::MIN, i32::MIN + 1, i32::MIN, i32::MAX, -7, -7, i32::MIN];
    let mut env = Env::new(4, 4);
    check_act_with(&mut env, p, &acc, &[0; 7], Some(&table));
    // Spelled out, without the reference: 1+5, 0+5, 0+5, 0+5, then shift 0:
    // -21+5, shift 1: floor((-21+1)/2) = -10, -10+5, and
    // floor((2^31 + 2^61) / 2^62) = 0 -> 5.
    let out = env.get(0x4_0000 + 16, 7);
    let got: Vec<i8> = out.iter().map(|&b| b as i8).collect();
    assert_eq!(got, [6, 5, 5, 5, -16, -5, 5]);
}

// ---------------------------------------------------------------- ADD

#[derive(Debug, Clone, Copy)]
struct AddParams {
    len: usize,
    a_zp: i8,
    b_zp: i8,
    a_mult: i16,
    b_mult: i16,
    accumulate: bool,
}

fn check_add(seed: u64, p: AddParams, extremes: bool) {
    const A: u64 = 0x1_0000;
    const B: u64 = 0x2_0000;
    const INIT: u64 = 0x3_0000;
    const OUT: u64 = 0x4_0000;
    const A_SP: u32 = 0x101;
    const B_SP: u32 = 0x2002;
    const DST: u32 = 0x40; // 16 words of margin
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut env = Env::new(16, 16);
    let a = random_i8s(&mut rng, p.len, extremes);
    let b = random_i8s(&mut rng, p.len, extremes);
    let words = 16 + p.len + 16;
    let init: Vec<i32> = (0..words)
        .map(|_| rng.gen_range(-(1 << 30)..(1 << 30)))
        .collect();
    env.put(A, &i8_bytes(&a));
    env.put(B, &i8_bytes(&b));
    env.put(INIT, &i32_bytes(&init));
    let mut expect = init.clone();
    for i in 0..p.len {
        let v = (a[i] as i64 - p.a_zp as i64) * p.a_mult as i64
            + (b[i] as i64 - p.b_zp as i64) * p.b_mult as i64;
        let v = i32::try_from(v).expect("fits int32");
        let e = &mut expect[16 + i];
        *e = if p.accumulate { e.wrapping_add(v) } else { v };
    }
    let add = Add {
        a: A_SP,
        b: B_SP,
        dst: DST,
        len: p.len as u32,
        a_zp: p.a_zp,
        b_zp: p.b_zp,
        a_mult: p.a_mult,
        b_mult: p.b_mult,
        accumulate: p.accumulate,
    };
    let prog = vec![
        load(row(A_SP, A, p.len as u16, false)),
        load(row(B_SP, B, p.len as u16, false)),
        load(row(0, INIT, (words * 4) as u16, true)),
        barrier(1),
        desc(Op::Add(add)),
        barrier(2),
        store(row(0, OUT, (words * 4) as u16, true)),
        fence_irq(3),
    ];
    env.run(&prog);
    let got = bytes_i32(&env.get(OUT, words * 4));
    for (i, (g, e)) in got.iter().zip(&expect).enumerate() {
        let what = if (16..16 + p.len).contains(&i) {
            format!("dst[{}] (a={}, b={})", i - 16, a[i - 16], b[i - 16])
        } else {
            format!("acc word {i} outside dst")
        };
        assert_eq!(g, e, "ADD {p:?}: {what}");
    }
}

#[test]
fn add_plain() {
    let p = AddParams {
        len: 50,
        a_zp: 0,
        b_zp: 0,
        a_mult: 1,
        b_mult: 1,
        accumulate: false,
    };
    check_add(800, p, false);
}

#[test]
fn add_zero_points_and_multipliers() {
    let p = AddParams {
        len: 37,
        a_zp: -3,
        b_zp: 17,
        a_mult: 1234,
        b_mult: -567,
        accumulate: false,
    };
    check_add(801, p, true);
    let p = AddParams {
        len: 64,
        a_zp: 127,
        b_zp: -128,
        a_mult: i16::MIN,
        b_mult: i16::MAX,
        accumulate: false,
    };
    check_add(802, p, true);
    let p = AddParams {
        len: 1,
        a_zp: -128,
        b_zp: 127,
        a_mult: i16::MIN,
        b_mult: i16::MIN,
        accumulate: false,
    };
    check_add(803, p, true);
}

#[test]
fn add_accumulate() {
    let p = AddParams {
        len: 45,
        a_zp: 5,
        b_zp: -7,
        a_mult: 300,
        b_mult: 200,
        accumulate: true,
    };
    check_add(810, p, false);
    let p = AddParams {
        len: 17,
        a_zp: 127,
        b_zp: 127,
        a_mult: i16::MIN,
        b_mult: -1,
        accumulate: true,
    };
    check_add(811, p, true);
}

#[test]
fn add_random_parameters() {
    for seed in 0..20u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(820 + seed);
        let p = AddParams {
            len: rng.gen_range(1..=100),
            a_zp: rng.gen(),
            b_zp: rng.gen(),
            a_mult: rng.gen(),
            b_mult: rng.gen(),
            accumulate: rng.gen_bool(0.5),
        };
        check_add(840 + seed, p, rng.gen_bool(0.5));
    }
}

// ---------------------------------------------------------------- MAX

fn check_max(seed: u64, len: usize, in_place: bool) {
    const A: u64 = 0x1_0000;
    const B: u64 = 0x2_0000;
    const FILL: u64 = 0x3_0000;
    const OUT: u64 = 0x4_0000;
    const A_SP: u32 = 0x1000;
    const B_SP: u32 = 0x3003;
    let dst: u32 = if in_place { A_SP } else { 0x5011 };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut env = Env::new(16, 16);
    let a = random_i8s(&mut rng, len, true);
    let b = random_i8s(&mut rng, len, true);
    env.put(A, &i8_bytes(&a));
    env.put(B, &i8_bytes(&b));
    let fill: Vec<u8> = (0..len + 32).map(canary).collect();
    env.put(FILL, &fill);
    let mut prog = Vec::new();
    if !in_place {
        prog.push(load(row(dst - 16, FILL, (len + 32) as u16, false)));
    }
    prog.extend([
        load(row(A_SP, A, len as u16, false)),
        load(row(B_SP, B, len as u16, false)),
        barrier(1),
        desc(Op::Max(Max {
            a: A_SP,
            b: B_SP,
            dst,
            len: len as u32,
        })),
        barrier(2),
        store(row(dst, OUT, len as u16, false)),
        fence_irq(3),
    ]);
    if !in_place {
        prog.splice(
            6..6,
            [store(row(dst - 16, OUT + 0x1000, (len + 32) as u16, false))],
        );
    }
    env.run(&prog);
    let want: Vec<u8> = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| if x >= y { x as u8 } else { y as u8 })
        .collect();
    assert_eq!(env.get(OUT, len), want, "MAX len {len} in_place {in_place}");
    if !in_place {
        let around = env.get(OUT + 0x1000, len + 32);
        assert_eq!(around[..16], fill[..16], "bytes before dst");
        assert_eq!(around[16 + len..], fill[16 + len..], "bytes after dst");
    }
}

#[test]
fn max_elementwise() {
    check_max(900, 77, false);
    check_max(901, 1, false);
    check_max(902, 16, false);
    check_max(903, 200, true);
}

// ---------------------------------------------------------------- FENCE and NOP

#[test]
fn fence_seq_register_and_writeback() {
    let mut env = Env::new(16, 16);
    env.fill_canary(0x1_0000, 0x1_1000);
    let prog = vec![
        desc(Op::Nop),
        desc(Op::Fence(Fence {
            seq: 11,
            writeback: Some(0x1_0100),
            irq: false,
        })),
        desc(Op::Fence(Fence {
            seq: 0xDEAD_BEEF,
            writeback: Some(0x1_0104),
            irq: false,
        })),
        desc(Op::Fence(Fence {
            seq: 0x0102_0304,
            writeback: Some(0x1_0204),
            irq: true,
        })),
    ];
    env.run(&prog);
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 0x0102_0304);
    assert_eq!(env.get(0x1_0100, 4), 11u32.to_le_bytes());
    assert_eq!(env.get(0x1_0104, 4), 0xDEAD_BEEFu32.to_le_bytes());
    assert_eq!(env.get(0x1_0204, 4), 0x0102_0304u32.to_le_bytes());
    for a in 0x1_0000..0x1_1000usize {
        if !(0x1_0100..0x1_0108).contains(&a) && !(0x1_0204..0x1_0208).contains(&a) {
            assert_eq!(env.mem.bytes()[a], canary(a), "byte {a:#x}");
        }
    }
}

#[test]
fn fence_waits_for_units_and_publishes_after_stores() {
    // The FENCE writeback must not land before the STORE ahead of it: when its
    // interrupt is seen, the stored data is in memory.
    let mut env = Env::new(16, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(950);
    let data = random_bytes(&mut rng, 4096);
    env.put(0x1_0000, &data);
    let prog = vec![
        load(row(0, 0x1_0000, 4096, false)).with_deps(deps::SIGNAL_NEXT),
        desc(Op::Matmul(Matmul {
            a: 0,
            w: 0,
            out: 0,
            m: 200,
            k: 16,
            n: 16,
            accumulate: false,
        }))
        .with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        store(row(0, 0x2_0000, 4096, false)).with_deps(deps::WAIT_PREV),
        desc(Op::Fence(Fence {
            seq: 5,
            writeback: Some(0x3_0000),
            irq: true,
        })),
    ];
    start(&mut env.dev, &mut env.mem, RING, &prog).expect("start");
    assert_eq!(
        env.dev.run_until(&mut env.mem, MAX_CYCLES, true),
        RunExit::Irq
    );
    assert_eq!(env.dev.mmio_read(regs::IRQ_STATUS), regs::IRQ_FENCE);
    assert_eq!(env.get(0x3_0000, 4), 5u32.to_le_bytes());
    assert_eq!(env.get(0x2_0000, 4096), data);
    assert_eq!(env.dev.mmio_read(regs::RING_HEAD), 4);
    assert_eq!(env.dev.mmio_read(regs::STATUS) & regs::STATUS_BUSY, 0);
    assert_eq!(env.dev.counters().desc_done, 4);
}

#[test]
fn fence_irq_only_with_the_flag() {
    // Without IRQ: the FENCE completes (FENCE_SEQ, head) but raises nothing.
    let mut env = Env::new(16, 16);
    let prog = vec![desc(Op::Nop), barrier(5)];
    start(&mut env.dev, &mut env.mem, RING, &prog).expect("start");
    assert_eq!(
        env.dev.run_until(&mut env.mem, 100_000, true),
        RunExit::Cycle
    );
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 5);
    assert_eq!(env.dev.mmio_read(regs::RING_HEAD), 2);
    assert_eq!(env.dev.mmio_read(regs::IRQ_STATUS), 0);
    assert!(!env.dev.irq_pending());
    assert_eq!(env.dev.mmio_read(regs::STATUS), 0, "idle, not halted");

    // With IRQ: IRQ_STATUS.FENCE is set and the line follows the mask.
    let mut env = Env::new(16, 16);
    let prog = vec![desc(Op::Nop), fence_irq(6)];
    start(&mut env.dev, &mut env.mem, RING, &prog).expect("start");
    assert_eq!(env.dev.run_until(&mut env.mem, 100_000, true), RunExit::Irq);
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 6);
    assert_eq!(env.dev.mmio_read(regs::IRQ_STATUS), regs::IRQ_FENCE);
    assert!(env.dev.irq_pending());
    env.dev.mmio_write(regs::IRQ_MASK, 0);
    assert!(!env.dev.irq_pending(), "masked");
    assert_eq!(
        env.dev.mmio_read(regs::IRQ_STATUS),
        regs::IRQ_FENCE,
        "still pending"
    );
    env.dev.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE);
    assert!(env.dev.irq_pending());
    env.dev.mmio_write(regs::IRQ_STATUS, regs::IRQ_FENCE); // W1C
    assert_eq!(env.dev.mmio_read(regs::IRQ_STATUS), 0);
    assert!(!env.dev.irq_pending());

    // With IRQ but the cause masked: status set, line low.
    let mut env = Env::new(16, 16);
    start(&mut env.dev, &mut env.mem, RING, &[fence_irq(7)]).expect("start");
    env.dev.mmio_write(regs::IRQ_MASK, regs::IRQ_ERROR);
    assert_eq!(
        env.dev.run_until(&mut env.mem, 100_000, true),
        RunExit::Cycle
    );
    assert_eq!(env.dev.mmio_read(regs::IRQ_STATUS), regs::IRQ_FENCE);
    assert!(!env.dev.irq_pending());
}

#[test]
fn nop_retires_and_changes_nothing() {
    let src = "\
        NOP\n\
        NOP\n\
        LOAD local=0x10 dram=0x10000 rows=1 row_bytes=40\n\
        NOP\n\
        FENCE seq=1\n\
        NOP\n\
        STORE local=0x10 dram=0x20000 rows=1 row_bytes=40\n\
        NOP\n\
        NOP\n\
        FENCE seq=2 irq\n";
    let prog = assemble(src).expect("assembles").into_descs();
    let mut env = Env::new(16, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(960);
    let data = random_bytes(&mut rng, 40);
    env.put(0x1_0000, &data);
    env.fill_canary(0x2_0000, 0x2_1000);
    let out = env.run(&prog);
    assert_eq!(out.counters.desc_done, 10);
    assert_eq!(env.get(0x2_0000, 40), data);
    assert!((0x2_0028..0x2_1000).all(|a| env.mem.bytes()[a] == canary(a)));
    assert_eq!(env.dev.mmio_read(regs::RING_HEAD), 10);
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 2);

    // A ring of only NOPs and the FENCE: nothing moves.
    let mut env = Env::new(16, 16);
    let prog = assemble("NOP\nNOP\nNOP\nFENCE seq=9 irq")
        .expect("assembles")
        .into_descs();
    let out = env.run(&prog);
    assert_eq!(out.counters.desc_done, 4);
    assert_eq!(
        out.counters.mem_beats, 4,
        "only the four descriptor fetches"
    );
    assert!(env.dev.local().spad.iter().all(|&b| b == 0));
    assert!(env.dev.local().acc.iter().all(|&b| b == 0));
}

// ---------------------------------------------------------------- counters, memory edge

#[test]
fn performance_counters_are_exact() {
    let mut env = Env::new(8, 8);
    let mut rng = ChaCha8Rng::seed_from_u64(970);
    let data = random_bytes(&mut rng, 0x1000);
    env.put(0x1_0000, &data);
    let mm = |m, k, n, accumulate| {
        desc(Op::Matmul(Matmul {
            a: 0,
            w: 0x400,
            out: 0,
            m,
            k,
            n,
            accumulate,
        }))
    };
    let prog = vec![
        load(dma(0, 0x1_0003, 9, 33, 70, 40, false)),  // 9 * 33
        load(dma(0x400, 0x1_0800, 8, 8, 8, 8, false)), // 64
        barrier(1),
        mm(9, 8, 8, false),  // 576
        mm(5, 3, 7, true),   // 105
        mm(40, 1, 1, false), // 40
        desc(Op::Nop),
        barrier(2),
        store(dma(0, 0x2_0001, 3, 20, 100, 32, true)), // 60
        store(dma(0x10, 0x3_0000, 2, 5, 7, 5, false)), // 10
        fence_irq(3),
    ];
    let out = env.run(&prog);
    let c = out.counters;
    assert_eq!(c.macs, 576 + 105 + 40);
    assert_eq!(c.dma_rd_bytes, 9 * 33 + 64);
    assert_eq!(c.dma_wr_bytes, 60 + 10);
    assert_eq!(c.desc_done, 11);
}

#[test]
fn dma_at_the_end_of_memory_whose_size_is_not_a_multiple_of_the_beat() {
    // Device memory is `0..size` (DeviceMemory::size); every byte touched here
    // is inside it, so nothing may fault.
    let size = 0x2_0000 + 20;
    let mut dev = ModelDevice::new(&config(16, 16));
    let mut mem = VecMemory::new(size);
    let mut rng = ChaCha8Rng::seed_from_u64(980);
    let data = random_bytes(&mut rng, 20);
    mem.store(0x2_0000, &data).expect("in memory");
    let prog = vec![
        load(row(0, 0x2_0000, 20, false)),
        barrier(1),
        store(row(0, 0x1_0000, 20, false)),
        store(row(0, 0x2_0000 - 12, 16, false)),
        fence_irq(2),
    ];
    let r = run_program(&mut dev, &mut mem, RING, &prog, MAX_CYCLES);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(mem.load(0x1_0000, 20).expect("in memory"), &data[..]);
    assert_eq!(mem.load(0x2_0000 - 12, 16).expect("in memory"), &data[..16]);
}
