//! Simulation speed of the model, in simulated cycles per second of host time
//! (criterion's element throughput is set to the program's cycle count, so its
//! `thrpt` line reads as cycles/s).
//!
//! * `gemm_256`: a 256x256x256 int8 GEMM on a 16x16 array, A resident in the
//!   scratchpad, W streamed through two buffers, the int32 output through two
//!   accumulator buffers (545 descriptors; compute-bound).
//! * `gemm_256_stepped`: the same with cycle skipping off (every cycle stepped).
//! * `dma_strided`: big strided LOADs and STOREs of 256 rows x 200 bytes with a
//!   1000-byte pitch at an unaligned address, no compute (the per-beat memory
//!   port is the hot path).
//!
//! Run: `cargo bench -p npukit-sim --bench model`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use npukit_abi::desc::{deps, Dma, Fence, Matmul, Op};
use npukit_abi::Descriptor;
use npukit_sim::run::run_program;
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};

/// A program with its configuration and initial device memory (ring at 0).
struct Workload {
    cfg: NpuConfig,
    descs: Vec<Descriptor>,
    mem: VecMemory,
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

fn filled(size: usize) -> VecMemory {
    let mut mem = VecMemory::new(size);
    for (i, b) in mem.bytes_mut().iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8;
    }
    mem
}

/// C[256x256] (int32) = A[256x256] x W[256x256] (int8) on a 16x16 array.
fn gemm_256() -> Workload {
    const N: u32 = 256;
    const T: u32 = 16; // array rows = cols = K and N per fold
    let cfg = NpuConfig::default();
    assert_eq!((cfg.array.rows, cfg.array.cols), (T, T));
    let (a_dev, w_dev, c_dev) = (0x1_0000u64, 0x2_0000u64, 0x3_0000u64);
    let chunk = N * T; // one K-chunk of A: 256 rows x 16, packed
    let w_buf = |i: u32| N * N + (i % 2) * T * T;
    let c_buf = |nb: u32| (nb % 2) * N * T * 4;
    let kb = N / T;
    let total = kb * kb;
    let mut descs = Vec::new();
    // A stays resident: one packed 256x16 block per K-chunk.
    for kc in 0..kb {
        let d = dma(
            kc * chunk,
            a_dev + (kc * T) as u64,
            N as u16,
            T as u16,
            N,
            false,
        );
        descs.push(Descriptor::new(Op::Load(d)));
    }
    for nb in 0..kb {
        for kc in 0..kb {
            let i = nb * kb + kc;
            // W chunk (16x16) into buffer i % 2, once matmul i - 2 is done with it.
            let w = w_dev + (kc * T * N + nb * T) as u64;
            let mut ld = deps::SIGNAL_NEXT;
            if i >= 2 {
                ld |= deps::WAIT_NEXT;
            }
            let d = dma(w_buf(i), w, T as u16, T as u16, N, false);
            descs.push(Descriptor::new(Op::Load(d)).with_deps(ld));
            let mut mm = deps::WAIT_PREV;
            if i + 2 < total {
                mm |= deps::SIGNAL_PREV;
            }
            if kc == 0 && nb >= 2 {
                mm |= deps::WAIT_NEXT; // accumulator buffer stored
            }
            if kc == kb - 1 {
                mm |= deps::SIGNAL_NEXT;
            }
            let op = Matmul {
                a: kc * chunk,
                w: w_buf(i),
                out: c_buf(nb),
                m: N as u16,
                k: T as u16,
                n: T as u16,
                accumulate: kc > 0,
            };
            descs.push(Descriptor::new(Op::Matmul(op)).with_deps(mm));
        }
        let mut st = deps::WAIT_PREV;
        if nb + 2 < kb {
            st |= deps::SIGNAL_PREV;
        }
        let d = dma(
            c_buf(nb),
            c_dev + (nb * T * 4) as u64,
            N as u16,
            (T * 4) as u16,
            N * 4,
            true,
        );
        descs.push(Descriptor::new(Op::Store(d)).with_deps(st));
    }
    descs.push(Descriptor::new(Op::Fence(Fence {
        seq: 1,
        writeback: None,
        irq: true,
    })));
    Workload {
        cfg,
        descs,
        mem: filled(1 << 20),
    }
}

/// 24 LOADs and 8 STOREs of 256 x 200 bytes, pitch 1000, unaligned.
fn dma_strided() -> Workload {
    let cfg = NpuConfig::default();
    let (rows, row_bytes, pitch) = (256u16, 200u16, 1000u32);
    let block = rows as u32 * row_bytes as u32;
    let (src, dst) = (0x1_0003u64, 0x5_0005u64);
    let mut descs = Vec::new();
    for i in 0..32u32 {
        if i % 4 == 3 {
            // From a scratchpad block no LOAD writes: no tokens needed.
            let d = dma(4 * block, dst, rows, row_bytes, pitch, false);
            descs.push(Descriptor::new(Op::Store(d)));
        } else {
            let d = dma(
                (i % 4) * block,
                src + (i % 7) as u64 * 8,
                rows,
                row_bytes,
                pitch,
                false,
            );
            descs.push(Descriptor::new(Op::Load(d)));
        }
    }
    descs.push(Descriptor::new(Op::Fence(Fence {
        seq: 1,
        writeback: None,
        irq: true,
    })));
    Workload {
        cfg,
        descs,
        mem: filled(1 << 20),
    }
}

/// Checks the GEMM's output against a host matmul, so the benchmark measures
/// a program that computes what it claims.
fn check_gemm(mem: &VecMemory) {
    let b = mem.bytes();
    let at = |base: usize, i: usize| b[base + i] as i8 as i32;
    for i in 0..256 {
        for j in 0..256 {
            let want: i32 = (0..256)
                .map(|k| at(0x1_0000, i * 256 + k) * at(0x2_0000, k * 256 + j))
                .sum();
            let o = 0x3_0000 + 4 * (i * 256 + j);
            let got = i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            assert_eq!(got, want, "C[{i}][{j}]");
        }
    }
}

/// Runs the workload once on a fresh device; returns the simulated cycles.
fn run_once(w: &Workload, mem: &mut VecMemory, skip: bool) -> u64 {
    let mut dev = ModelDevice::new(&w.cfg);
    dev.set_skip(skip);
    let out = run_program(&mut dev, mem, 0, &w.descs, 100_000_000).expect("workload runs");
    out.cycles
}

fn bench_workload(c: &mut Criterion, name: &str, w: &Workload, skip: bool) {
    let cycles = run_once(w, &mut w.mem.clone(), skip);
    eprintln!(
        "{name}: {} descriptors, {cycles} simulated cycles",
        w.descs.len()
    );
    let mut g = c.benchmark_group("model");
    g.throughput(Throughput::Elements(cycles));
    g.bench_function(name, |b| {
        b.iter_batched_ref(
            || w.mem.clone(),
            |mem| run_once(w, mem, skip),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let gemm = gemm_256();
    let mut mem = gemm.mem.clone();
    run_once(&gemm, &mut mem, true);
    check_gemm(&mem);
    bench_workload(c, "gemm_256", &gemm, true);
    bench_workload(c, "gemm_256_stepped", &gemm, false);
    bench_workload(c, "dma_strided", &dma_strided(), true);
}

criterion_group!(model, benches);
criterion_main!(model);
