//! `NpuTop` against the model, in lockstep under Verilator (`npukit-rtl`):
//! one small program per timing rule, opcode and error path, each run on the
//! generated 4x4 variant, with every event, MMIO read, the IRQ line and the
//! final memory compared.
//!
//! `NPUKIT_HW_VARIANT=<name>` runs them on another 4x4 variant instead, e.g. one
//! made by `npukit-hwgen --config FILE --name NAME` with another beat width or
//! queue depth and built into `npukit-rtl` through `NPUKIT_RTL_VARIANTS`.

use npukit_abi::desc::{deps, Act, Add, Dma, Fence, Matmul, Max, Op};
use npukit_abi::program::Program;
use npukit_abi::{regs, Descriptor};
use npukit_rtl::lockstep::{model_vs_rtl, LockstepOptions};
use npukit_rtl::variant;
use npukit_sim::run::{run_program, RunError};
use npukit_sim::{Device, NpuConfig, VecMemory};

const RING: u64 = 0x1_0000;
const MEM: usize = 1 << 20;

#[allow(clippy::unwrap_used)]
fn cfg4() -> NpuConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    NpuConfig::load(&root.join("configs/4x4.toml")).unwrap()
}

/// Runs `descs` on model and RTL in lockstep; panics at the first divergence.
/// Returns the run's outcome as the model saw it.
#[allow(clippy::unwrap_used)]
fn lockstep_on(
    variant_name: &str,
    descs: &[Descriptor],
    setup: impl Fn(&mut dyn Device, &mut VecMemory),
) -> Result<u64, RunError> {
    let cfg = cfg4();
    if !variant::verilator_available() {
        panic!("Verilator is missing: apt-get install -y verilator");
    }
    let mut ls = model_vs_rtl(&cfg, Some(variant_name), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    setup(&mut ls, &mut mem);
    let r = run_program(&mut ls, &mut mem, RING, descs, 200_000);
    // a few idle cycles after the end, and the counters
    let now = ls.cycle();
    ls.run_until(&mut mem, now + 50, false);
    for &off in regs::PERF_COUNTERS {
        ls.mmio_read(off);
        ls.mmio_read(off + 4);
    }
    for off in (0..0x70).step_by(4) {
        ls.mmio_read(off);
    }
    if let Err(d) = ls.finish(&mut mem) {
        panic!("divergence:\n{d}");
    }
    r.map(|o| o.cycles)
}

/// The variant under test: `npu_4x4`, or `NPUKIT_HW_VARIANT`.
fn under_test() -> String {
    std::env::var("NPUKIT_HW_VARIANT").unwrap_or_else(|_| "npu_4x4".to_string())
}

fn lockstep(descs: &[Descriptor]) -> Result<u64, RunError> {
    lockstep_on(&under_test(), descs, |_, _| {})
}

fn d(op: Op) -> Descriptor {
    Descriptor::new(op)
}

fn fence_irq(seq: u32) -> Descriptor {
    d(Op::Fence(Fence {
        seq,
        writeback: None,
        irq: true,
    }))
}

#[test]
fn nops_and_fence_irq() {
    let mut p = vec![d(Op::Nop); 9];
    p.push(fence_irq(7));
    lockstep(&p).unwrap();
}

#[test]
fn fence_writeback() {
    let p = vec![
        d(Op::Nop),
        d(Op::Fence(Fence {
            seq: 0xABCD,
            writeback: Some(0x8004),
            irq: false,
        })),
        d(Op::Fence(Fence {
            seq: 0x1234,
            writeback: Some(0x8008),
            irq: true,
        })),
    ];
    lockstep(&p).unwrap();
}

fn mm(m: u16) -> Matmul {
    Matmul {
        a: 0,
        w: 256,
        out: 0,
        m,
        k: 4,
        n: 4,
        accumulate: false,
    }
}

#[test]
fn compute_back_to_back_and_tokens() {
    let p = vec![
        d(Op::Matmul(mm(3))),
        d(Op::Matmul(Matmul {
            accumulate: true,
            ..mm(5)
        })),
        d(Op::Act(Act {
            src: 0,
            dst: 512,
            bias: None,
            rows: 2,
            cols: 4,
            multiplier: 1 << 20,
            shift: 20,
            zero_point: 0,
            relu: true,
            qtab: None,
        })),
        d(Op::Add(Add {
            a: 0,
            b: 16,
            dst: 64,
            len: 9,
            a_zp: 1,
            b_zp: -1,
            a_mult: 3,
            b_mult: -2,
            accumulate: false,
        })),
        d(Op::Max(Max {
            a: 0,
            b: 16,
            dst: 600,
            len: 7,
        })),
        fence_irq(1),
    ];
    lockstep(&p).unwrap();
}

#[test]
fn queue_full_back_pressure() {
    let mut p = vec![d(Op::Matmul(mm(20))); 14];
    p.push(fence_irq(3));
    lockstep(&p).unwrap();
}

#[test]
fn deadlock() {
    let p = vec![
        d(Op::Matmul(mm(2))).with_deps(deps::WAIT_PREV),
        fence_irq(1),
    ];
    assert!(lockstep(&p).is_err());
}

/// The limits of the variant under test.
#[allow(clippy::unwrap_used)]
fn limits() -> npukit_abi::Limits {
    let name = under_test();
    variant::all()
        .find(|v| v.name == name)
        .unwrap()
        .apply(&NpuConfig::default())
        .limits()
}

/// Every decode and validation check, each with the error code the model
/// latches (the lockstep pair also compares ERR_DESC and ERR_ADDR).
#[test]
fn decode_errors() {
    use npukit_abi::ErrorCode as E;
    let lim = limits();
    let (spad, acc, rows) = (lim.spad_bytes, lim.acc_bytes, lim.rows as u16);
    let good = d(Op::Matmul(mm(2)));
    let mut bad_op = good.encode();
    bad_op[0] = 0x42;
    let mut reserved = good.encode();
    reserved[5 * 4 + 3] = 1;
    let mut word0_reserved = d(Op::Nop).encode();
    word0_reserved[2] = 1;
    let mut max_flags = d(Op::Max(Max {
        a: 0,
        b: 0,
        dst: 0,
        len: 1,
    }))
    .encode();
    max_flags[1] |= 0x10;
    let mut nop_deps = d(Op::Nop).encode();
    nop_deps[1] |= 0x01;
    let mut act_bias_word = d(Op::Act(act(0, None))).encode();
    act_bias_word[12] = 4;
    let mut fence_addr = d(Op::Fence(Fence {
        seq: 1,
        writeback: None,
        irq: false,
    }))
    .encode();
    fence_addr[8] = 4;
    let load = |f: fn(&mut Dma)| {
        let mut x = Dma {
            local: 0,
            dram: 0,
            rows: 2,
            row_bytes: 16,
            dram_stride: 16,
            local_stride: 16,
            acc: false,
        };
        f(&mut x);
        d(Op::Load(x)).encode()
    };
    let cases: Vec<([u8; 32], E)> = vec![
        (bad_op, E::BadOpcode),
        (reserved, E::Reserved),
        (word0_reserved, E::Reserved),
        (act_bias_word, E::Reserved),
        (fence_addr, E::Reserved),
        (max_flags, E::BadFlags),
        (nop_deps, E::BadFlags),
        (
            d(Op::Load(Dma::default()))
                .with_deps(deps::WAIT_PREV)
                .encode(),
            E::BadFlags,
        ),
        (
            d(Op::Matmul(Matmul {
                k: rows + 1,
                ..mm(2)
            }))
            .encode(),
            E::BadField,
        ),
        (
            d(Op::Matmul(Matmul { n: 0, ..mm(2) })).encode(),
            E::BadField,
        ),
        (
            d(Op::Matmul(Matmul { out: 2, ..mm(2) })).encode(),
            E::Misaligned,
        ),
        (
            d(Op::Matmul(Matmul {
                a: spad - 4,
                ..mm(2)
            }))
            .encode(),
            E::SpadRange,
        ),
        (
            d(Op::Matmul(Matmul {
                out: acc - 8,
                ..mm(2)
            }))
            .encode(),
            E::AccRange,
        ),
        (d(Op::Act(act(0, Some(acc - 4)))).encode(), E::AccRange),
        (d(Op::Act(act(0, Some(2)))).encode(), E::Misaligned),
        (
            d(Op::Act(Act {
                shift: 63,
                ..act(0, None)
            }))
            .encode(),
            E::BadField,
        ),
        (
            d(Op::Act(Act {
                dst: spad - 1,
                ..act(0, None)
            }))
            .encode(),
            E::SpadRange,
        ),
        (
            d(Op::Add(Add {
                a: 0,
                b: 0,
                dst: 2,
                len: 3,
                ..Add::default()
            }))
            .encode(),
            E::Misaligned,
        ),
        (
            d(Op::Add(Add {
                a: 0,
                b: 0,
                dst: 0,
                len: 0,
                ..Add::default()
            }))
            .encode(),
            E::BadField,
        ),
        (
            d(Op::Add(Add {
                a: 0,
                b: 0,
                dst: acc - 4,
                len: 2,
                ..Add::default()
            }))
            .encode(),
            E::AccRange,
        ),
        (
            d(Op::Max(Max {
                a: 0,
                b: 0,
                dst: spad - 4,
                len: 7,
            }))
            .encode(),
            E::SpadRange,
        ),
        (load(|x| x.local_stride = 8), E::BadField),
        (load(|x| x.row_bytes = 0), E::BadField),
        (load(|x| x.rows = 0), E::BadField),
        (
            load(|x| {
                x.acc = true;
                x.local = 2
            }),
            E::Misaligned,
        ),
        (
            load(|x| {
                x.acc = true;
                x.row_bytes = 6;
                x.local_stride = 8
            }),
            E::Misaligned,
        ),
        (
            load(|x| {
                x.acc = true;
                x.local_stride = 18
            }),
            E::Misaligned,
        ),
        (load(|x| x.local = u32::MAX - 8), E::SpadRange),
        (
            load(|x| {
                x.acc = true;
                x.local = 0x1000_0000
            }),
            E::AccRange,
        ),
        (load(|x| x.dram = u64::MAX - 20), E::BadField),
        (
            d(Op::Fence(Fence {
                seq: 1,
                writeback: Some(0x8002),
                irq: false,
            }))
            .encode(),
            E::Misaligned,
        ),
    ];
    for (raw, code) in cases {
        match lockstep_raw(&raw) {
            Err(RunError::Device { code: c, .. }) => assert_eq!(c, code, "{raw:?}"),
            r => panic!("{raw:?}: expected {code:?}, got {r:?}"),
        }
    }
}

fn act(src: u32, bias: Option<u32>) -> Act {
    Act {
        src,
        dst: 0,
        bias,
        rows: 1,
        cols: 4,
        multiplier: 1,
        shift: 0,
        zero_point: 0,
        relu: false,
        qtab: None,
    }
}

/// Runs a ring whose second descriptor is `raw` (possibly invalid).
#[allow(clippy::unwrap_used)]
fn lockstep_raw(raw: &[u8; 32]) -> Result<u64, RunError> {
    let cfg = cfg4();
    let mut ls = model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    use npukit_sim::DeviceMemory;
    mem.write(RING, &d(Op::Nop).encode());
    mem.write(RING + 32, raw);
    mem.write(RING + 64, &fence_irq(1).encode());
    ls.mmio_write(regs::RING_BASE_LO, RING as u32);
    ls.mmio_write(regs::RING_SIZE, 4);
    ls.mmio_write(regs::IRQ_MASK, 3);
    ls.mmio_write(regs::RING_TAIL, 3);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    let r = npukit_sim::run::wait_idle(&mut ls, &mut mem, 10_000);
    for off in (0..0x70).step_by(4) {
        ls.mmio_read(off);
    }
    if let Err(dv) = ls.finish(&mut mem) {
        panic!("divergence:\n{dv}");
    }
    r
}

#[test]
fn bad_ring_and_watchdog() {
    let cfg = cfg4();
    let mut ls = model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    ls.mmio_write(regs::RING_SIZE, 3);
    ls.mmio_write(regs::IRQ_MASK, 3);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    ls.run_until(&mut mem, 20, false);
    for off in (0..0x70).step_by(4) {
        ls.mmio_read(off);
    }
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
    ls.run_until(&mut mem, 40, false);
    // watchdog: a MATMUL waiting for a token that a later LOAD-less ring never sends,
    // behind a queue-full command processor cannot deadlock-detect while a FENCE... use
    // a long MATMUL instead: no completion within 10 cycles.
    use npukit_sim::DeviceMemory;
    mem.write(RING, &d(Op::Matmul(mm(200))).encode());
    ls.mmio_write(regs::RING_BASE_LO, RING as u32);
    ls.mmio_write(regs::RING_SIZE, 2);
    ls.mmio_write(regs::IRQ_MASK, 3);
    ls.mmio_write(regs::WATCHDOG, 30);
    ls.mmio_write(regs::RING_TAIL, 1);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    ls.run_until(&mut mem, 400, false);
    for off in (0..0x70).step_by(4) {
        ls.mmio_read(off);
    }
    assert_ne!(ls.mmio_read(regs::ERR_CODE), 0);
    if let Err(dv) = ls.finish(&mut mem) {
        panic!("divergence:\n{dv}");
    }
}

#[test]
fn program_builder_is_usable() {
    let mut p = Program::new();
    p.nop();
    p.fence_irq(5);
    lockstep(p.descs()).unwrap();
}

#[test]
fn injected_fault_is_caught() {
    let mut p = vec![d(Op::Nop); 3];
    p.push(fence_irq(7));
    let r = std::panic::catch_unwind(|| lockstep_on("npu_4x4_offbyone", &p, |_, _| {}));
    let msg = match r {
        Ok(v) => panic!("the off-by-one variant ran in lockstep: {v:?}"),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    println!("{msg}");
    assert!(msg.contains("divergence"), "{msg}");
}

fn dma(local: u32, dram: u64, rows: u16, row_bytes: u16, acc: bool) -> Dma {
    Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride: row_bytes as u32 + 8,
        local_stride: row_bytes as u32,
        acc,
    }
}

/// Fills `[at, at + n)` with a byte pattern.
fn fill(mem: &mut VecMemory, at: u64, n: usize) {
    use npukit_sim::DeviceMemory;
    let v: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
    mem.write(at, &v);
}

#[test]
fn gemm_pipeline_with_tokens() {
    // Every pair of units touching the same local bytes is ordered by tokens
    // (C4), so the data results are specified.
    let mm44 = |out| Matmul {
        a: 0,
        w: 256,
        out,
        m: 4,
        k: 4,
        n: 4,
        accumulate: false,
    };
    let p = vec![
        d(Op::Load(dma(0, 0x2003, 4, 4, false))),
        d(Op::Load(dma(256, 0x3000, 4, 4, false))).with_deps(deps::SIGNAL_NEXT),
        d(Op::Matmul(mm44(0))).with_deps(deps::WAIT_PREV),
        d(Op::Matmul(mm44(64))).with_deps(deps::SIGNAL_NEXT),
        d(Op::Store(dma(0, 0x5001, 8, 16, true))).with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV),
        d(Op::Act(Act {
            src: 0,
            dst: 1024,
            bias: Some(64),
            rows: 4,
            cols: 4,
            multiplier: 3 << 28,
            shift: 30,
            zero_point: 3,
            relu: false,
            qtab: None,
        }))
        .with_deps(deps::WAIT_NEXT | deps::SIGNAL_NEXT),
        d(Op::Store(dma(1024, 0x6000, 2, 8, false))).with_deps(deps::WAIT_PREV),
        d(Op::Load(dma(2048, 0x2000, 3, 70, false))).with_deps(deps::SIGNAL_NEXT),
        d(Op::Max(Max {
            a: 2048,
            b: 2048,
            dst: 3000,
            len: 1,
        }))
        .with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        d(Op::Store(dma(2048, 0x7005, 3, 70, false))).with_deps(deps::WAIT_PREV),
        fence_irq(9),
    ];
    lockstep_on(&under_test(), &p, |_, mem| {
        fill(mem, 0x2000, 0x2000);
    })
    .unwrap();
}

/// A translation table at 0x40000 mapping page i to 0x80000 + i * 0x1000;
/// page 3 read-only, page 5 invalid.
fn xlat_setup(dev: &mut dyn Device, mem: &mut VecMemory) {
    use npukit_sim::DeviceMemory;
    for i in 0..8u64 {
        let pte = npukit_abi::xlat::pte(0x80000 + i * 0x1000, i != 3);
        let pte = if i == 5 { 0 } else { pte };
        mem.write(0x40000 + 8 * i, &pte.to_le_bytes());
    }
    fill(mem, 0x80000, 0x8000);
    dev.mmio_write(regs::XLAT_BASE_LO, 0x40000);
    dev.mmio_write(regs::XLAT_PAGES, 8);
    dev.mmio_write(regs::CONTROL, regs::CONTROL_XLAT_EN);
}

#[test]
fn translation_paths() {
    let ok = vec![
        d(Op::Load(dma(0, 0x0FF0, 3, 40, false))),
        d(Op::Store(dma(0, 0x1FF8, 3, 40, false))),
        d(Op::Fence(Fence {
            seq: 77,
            writeback: Some(0x2010),
            irq: false,
        })),
        d(Op::Load(dma(512, 0x3000, 2, 16, false))),
        fence_irq(1),
    ];
    lockstep_on(&under_test(), &ok, xlat_setup).unwrap();
    // a write through the read-only page, an invalid page, beyond XLAT_PAGES
    for bad in [
        d(Op::Store(dma(0, 0x3000, 1, 16, false))),
        d(Op::Load(dma(0, 0x5008, 1, 16, false))),
        d(Op::Load(dma(0, 0x7FF0, 2, 16, false))),
        d(Op::Fence(Fence {
            seq: 1,
            writeback: Some(0x3000),
            irq: false,
        })),
        d(Op::Fence(Fence {
            seq: 1,
            writeback: Some(0x9000),
            irq: false,
        })),
    ] {
        let p = vec![d(Op::Nop), bad, fence_irq(2)];
        let r = lockstep_on(&under_test(), &p, xlat_setup);
        assert!(matches!(r, Err(RunError::Device { .. })), "{r:?}");
    }
}

/// X1: a flush (an XLAT_PAGES write) at every cycle around a LOAD's and a
/// FENCE writeback's table reads, in flight or not: the stale read is
/// discarded on both sides alike. Also XLAT_BASE_LO bits 2:0 read as zero.
#[test]
fn flush_with_table_reads_in_flight() {
    use npukit_sim::DeviceMemory;
    let cfg = cfg4();
    let prog = [
        d(Op::Load(dma(0, 0x0FF0, 2, 40, false))),
        d(Op::Fence(Fence {
            seq: 5,
            writeback: Some(0x2010),
            irq: true,
        })),
    ];
    for k in (60..140).step_by(3).chain(200..270) {
        let mut ls =
            model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
        let mut mem = VecMemory::new(MEM);
        xlat_setup(&mut ls, &mut mem);
        ls.mmio_write(regs::XLAT_BASE_LO, 0x40007);
        for (i, x) in prog.iter().enumerate() {
            mem.write(RING + 32 * i as u64, &x.encode());
        }
        ls.mmio_write(regs::RING_BASE_LO, RING as u32);
        ls.mmio_write(regs::RING_SIZE, 4);
        ls.mmio_write(regs::IRQ_MASK, 3);
        ls.mmio_write(regs::RING_TAIL, 2);
        ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN | regs::CONTROL_XLAT_EN);
        ls.run_until(&mut mem, k, false);
        // the driver remaps page 0 and flushes
        mem.write(0x40000, &npukit_abi::xlat::pte(0x85000, true).to_le_bytes());
        ls.mmio_write(regs::XLAT_PAGES, 8);
        ls.run_until(&mut mem, 600, false);
        read_all(&mut ls);
        if let Err(dv) = ls.finish(&mut mem) {
            panic!("flush at cycle {k}: divergence:\n{dv}");
        }
    }
}

#[test]
fn address_range_faults() {
    for bad in [
        d(Op::Load(dma(0, (MEM - 8) as u64, 1, 16, false))),
        d(Op::Store(dma(0, (MEM - 8) as u64, 1, 16, false))),
        d(Op::Fence(Fence {
            seq: 1,
            writeback: Some(MEM as u64),
            irq: false,
        })),
    ] {
        let p = vec![d(Op::Nop), bad, fence_irq(2)];
        let r = lockstep(&p);
        assert!(matches!(r, Err(RunError::Device { .. })), "{r:?}");
    }
}

#[test]
fn token_overflow() {
    let mut p = vec![d(Op::Matmul(mm(1))).with_deps(deps::SIGNAL_NEXT); 257];
    p.push(fence_irq(1));
    let r = lockstep(&p);
    assert!(matches!(r, Err(RunError::Device { .. })), "{r:?}");
}

/// Reads every register (and both halves of every counter) through the
/// lockstep pair, which compares each value.
fn read_all(dev: &mut dyn Device) {
    for off in (0..0x70).step_by(4) {
        dev.mmio_read(off);
    }
    for &off in regs::PERF_COUNTERS {
        dev.mmio_read(off);
        dev.mmio_read(off + 4);
    }
}

/// Counters, STATUS, RING_HEAD and the rest compared after every single cycle
/// of a program that uses every unit, stalls on tokens and on the port.
#[test]
#[allow(clippy::unwrap_used)]
fn registers_every_cycle() {
    let cfg = cfg4();
    let mut ls = model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    fill(&mut mem, 0x2000, 0x1000);
    let p = vec![
        d(Op::Load(dma(0, 0x2000, 4, 4, false))).with_deps(deps::SIGNAL_NEXT),
        d(Op::Load(dma(256, 0x2100, 4, 4, false))).with_deps(deps::SIGNAL_NEXT),
        d(Op::Load(dma(512, 0x2200, 6, 40, false))),
        d(Op::Matmul(mm(3))).with_deps(deps::WAIT_PREV),
        d(Op::Matmul(mm(2))).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        d(Op::Store(dma(0, 0x9000, 3, 16, true))).with_deps(deps::WAIT_PREV),
        d(Op::Store(dma(512, 0x9800, 6, 40, false))),
        d(Op::Nop),
        d(Op::Fence(Fence {
            seq: 5,
            writeback: Some(0x8000),
            irq: true,
        })),
    ];
    npukit_sim::run::start(&mut ls, &mut mem, RING, &p).unwrap();
    let mut t = 0;
    while ls.mmio_read(regs::FENCE_SEQ) != 5 && t < 20_000 {
        t += 1;
        ls.run_until(&mut mem, t, false);
        read_all(&mut ls);
    }
    assert_eq!(
        ls.mmio_read(regs::FENCE_SEQ),
        5,
        "no FENCE after {t} cycles"
    );
    ls.run_until(&mut mem, t + 20, false);
    read_all(&mut ls);
    if let Err(dv) = ls.finish(&mut mem) {
        panic!("divergence:\n{dv}");
    }
}

/// MMIO in the middle of a run: doorbells that extend the ring, writes that
/// must be ignored while running, W1C, a reset with requests in flight, a
/// restart, and BAD_RING raised by a TAIL write while running.
#[test]
#[allow(clippy::unwrap_used)]
fn mmio_during_a_run() {
    use npukit_sim::DeviceMemory;
    let cfg = cfg4();
    let mut ls = model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    fill(&mut mem, 0x2000, 0x1000);
    let ring = [
        d(Op::Load(dma(0, 0x2000, 8, 64, false))),
        d(Op::Nop),
        d(Op::Matmul(mm(4))),
        fence_irq(1),
        d(Op::Store(dma(0, 0x9000, 8, 64, false))),
        fence_irq(2),
        d(Op::Nop),
        d(Op::Nop),
    ];
    for (i, x) in ring.iter().enumerate() {
        mem.write(RING + 32 * i as u64, &x.encode());
    }
    ls.mmio_write(regs::RING_BASE_LO, RING as u32);
    ls.mmio_write(regs::RING_SIZE, 8);
    ls.mmio_write(regs::IRQ_MASK, 3);
    ls.mmio_write(regs::WATCHDOG, 500);
    ls.mmio_write(regs::RING_TAIL, 2);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    let mut t = 0;
    let mut step = |ls: &mut dyn Device, mem: &mut VecMemory, n: u64| {
        t += n;
        ls.run_until(mem, t, false);
        read_all(ls);
    };
    step(&mut ls, &mut mem, 20);
    ls.mmio_write(regs::RING_BASE_LO, 0x4000); // ignored: running
    ls.mmio_write(regs::RING_SIZE, 4); // ignored: running
    ls.mmio_write(regs::RING_TAIL, 4); // doorbell
    step(&mut ls, &mut mem, 150);
    ls.mmio_write(regs::IRQ_STATUS, regs::IRQ_FENCE); // W1C
    ls.mmio_write(regs::RING_TAIL, 6);
    step(&mut ls, &mut mem, 70);
    // reset with the STORE's beats in flight, then run the ring again
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
    step(&mut ls, &mut mem, 100);
    ls.mmio_write(regs::RING_BASE_LO, RING as u32);
    ls.mmio_write(regs::RING_SIZE, 8);
    ls.mmio_write(regs::IRQ_MASK, 3);
    ls.mmio_write(regs::RING_TAIL, 6);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN | regs::CONTROL_XLAT_EN);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN); // translation off again, RUN stays
    step(&mut ls, &mut mem, 400);
    ls.mmio_write(regs::RING_TAIL, 9); // >= RING_SIZE while running: BAD_RING
    step(&mut ls, &mut mem, 5);
    assert_eq!(ls.mmio_read(regs::ERR_CODE), 11);
    if let Err(dv) = ls.finish(&mut mem) {
        panic!("divergence:\n{dv}");
    }
}

/// E1 with the command processor blocked by a full queue (not by a FENCE):
/// nine MATMULs that wait for tokens nobody sends, queue depth 8.
#[test]
fn deadlock_behind_a_full_queue() {
    let mut p = vec![d(Op::Matmul(mm(2))).with_deps(deps::WAIT_PREV); 10];
    p.push(fence_irq(1));
    let r = lockstep(&p);
    assert!(matches!(r, Err(RunError::Device { .. })), "{r:?}");
}

/// Power-up state: every register equals a fresh model's, before and after
/// idle cycles.
#[test]
#[allow(clippy::unwrap_used)]
fn power_up_state() {
    let cfg = cfg4();
    let mut ls = model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    read_all(&mut ls);
    ls.run_until(&mut mem, 1000, false);
    read_all(&mut ls);
    assert_eq!(ls.mmio_read(regs::PERF_CYCLES), 1000);
    if let Err(dv) = ls.finish(&mut mem) {
        panic!("divergence:\n{dv}");
    }
}

/// The harness's corpus (hand-written cases and constrained-random programs)
/// on the variant under test; with the default variant this repeats part of
/// `cargo test -p npukit-rtl`, with `NPUKIT_HW_VARIANT` it covers other beat
/// widths and depths.
#[test]
#[allow(clippy::unwrap_used)]
fn harness_corpus_on_variant_under_test() {
    use npukit_rtl::corpus;
    let name = under_test();
    let v = variant::all().find(|v| v.name == name).unwrap();
    let cfg = v.apply(&NpuConfig::default());
    let mut cases = corpus::handwritten(&cfg);
    cases.extend((1..=40).map(|s| corpus::random(&cfg, s)));
    let mut failures = Vec::new();
    let mut events = 0;
    for c in &cases {
        match corpus::cosim(c, &cfg, Some(&name), LockstepOptions::default()) {
            Ok(o) => events += o.events,
            Err(e) => failures.push(format!("--- {}:\n{e}", c.name)),
        }
    }
    println!("{name}: {} cases, {events} events matched", cases.len());
    assert!(
        events > 1000 * cases.len() as u64 / 10,
        "too few events compared: {events}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A ring of four entries used three times round: the fetch pointer and
/// RING_HEAD wrap, FENCEs publish in order.
#[test]
#[allow(clippy::unwrap_used)]
fn ring_wraps_around() {
    use npukit_sim::DeviceMemory;
    let cfg = cfg4();
    let mut ls = model_vs_rtl(&cfg, Some(&under_test()), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM);
    ls.mmio_write(regs::RING_BASE_LO, RING as u32);
    ls.mmio_write(regs::RING_SIZE, 4);
    ls.mmio_write(regs::IRQ_MASK, 3);
    ls.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    let mut idx = 0u64;
    for round in 0..4u32 {
        for k in 0..3u32 {
            let x = if k == 2 {
                fence_irq(round)
            } else {
                d(Op::Matmul(mm(1 + k as u16)))
            };
            mem.write(RING + 32 * (idx % 4), &x.encode());
            idx += 1;
        }
        ls.mmio_write(regs::RING_TAIL, (idx % 4) as u32);
        let r = npukit_sim::run::wait_idle(&mut ls, &mut mem, 10_000);
        assert!(r.is_ok(), "round {round}: {r:?}");
        read_all(&mut ls);
        assert_eq!(ls.mmio_read(regs::FENCE_SEQ), round);
    }
    if let Err(dv) = ls.finish(&mut mem) {
        panic!("divergence:\n{dv}");
    }
}
