//! The DMA units inside the whole NPU (the generated 4x4 variant, Verilated)
//! against the model, in lockstep: random programs of LOADs and STOREs (rows
//! cut at beat boundaries, strides, both local memories), with and without
//! translation (PTE reads, entries reused across descriptors, invalid,
//! read-only and missing pages, table reads beyond memory), MMIO writes that
//! flush the translation caches while jobs run, random DRAM timing (latency,
//! bandwidth below and above a beat, few or many requests in flight), and
//! address faults. Every event, the IRQ line, MMIO reads and the final memory
//! are compared by `npukit_rtl::lockstep`.

mod common;
use common::Rng;
use npukit_abi::desc::{Dma, Fence, Op};
use npukit_abi::{regs, xlat, Descriptor};
use npukit_rtl::lockstep::{model_vs_rtl, LockstepOptions};
use npukit_rtl::variant;
use npukit_sim::run::{start, wait_idle};
use npukit_sim::{Device, DeviceMemory, NpuConfig, RunExit, VecMemory};

const MEM: u64 = 1 << 20;
const RING: u64 = 0x1_0000;
const TABLE: u64 = 0x1_8000;
/// Physical pages the table maps to.
const DATA: u64 = 0x2_0000;

#[allow(clippy::unwrap_used)]
fn cfg4() -> NpuConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    NpuConfig::load(&root.join("configs/4x4.toml")).unwrap()
}

/// One random LOAD or STORE within the 4x4 variant's local memories.
fn random_dma(rng: &mut Rng, cfg: &NpuConfig, space: (u64, u64)) -> Descriptor {
    let acc = rng.chance(25);
    let side = if acc {
        cfg.memory.acc_bytes
    } else {
        cfg.memory.spad_bytes
    } as u64;
    let rows = 1 + rng.below(4) as u16;
    let longest = if rng.chance(20) { 200 } else { 70 };
    let mut row_bytes = 1 + rng.below(longest) as u16;
    let mut local_stride = row_bytes as u32 + rng.below(16) as u32;
    if acc {
        row_bytes = row_bytes.div_ceil(4) * 4;
        local_stride = local_stride.div_ceil(4) * 4;
    }
    let any = rng.below(5000) as u32;
    let dram_stride = rng.pick(&[0, row_bytes as u32, 64, 100, any]);
    let extent_local = (rows as u64 - 1) * local_stride as u64 + row_bytes as u64;
    let mut local = rng.below(side - extent_local + 1) as u32;
    if acc {
        local &= !3;
    }
    let extent = (rows as u64 - 1) * dram_stride as u64 + row_bytes as u64;
    let (lo, hi) = space;
    // Mostly inside the space; sometimes running past its end.
    let dram = if rng.chance(3) {
        hi.saturating_sub(rng.below(extent + 64))
    } else {
        lo + rng.below((hi - lo).saturating_sub(extent).max(1))
    };
    let d = Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride,
        local_stride,
        acc,
    };
    Descriptor::new(if rng.chance(50) {
        Op::Store(d)
    } else {
        Op::Load(d)
    })
}

/// Runs one random program in lockstep; panics at the first divergence.
#[allow(clippy::unwrap_used)]
fn run_one(rng: &mut Rng, i: u64, variant: &str, beat: Option<u32>) -> String {
    let mut cfg = cfg4();
    if let Some(b) = beat {
        cfg.dma.beat_bytes = b;
    }
    let beat = cfg.dma.beat_bytes;
    cfg.dram.latency = rng.pick(&[1, 2, 5, 17, 64]);
    cfg.dram.bytes_per_cycle = rng.pick(&[1, beat / 4, beat / 2, beat, 2 * beat]);
    cfg.dram.max_outstanding = rng.pick(&[1, 2, 4, 16]);
    cfg.dram.size_bytes = MEM;
    let mut ls = model_vs_rtl(&cfg, Some(variant), None, LockstepOptions::default()).unwrap();
    let mut mem = VecMemory::new(MEM as usize);
    for (j, b) in mem.bytes_mut().iter_mut().enumerate() {
        *b = (j as u64 * 131 + i * 7 + (j as u64 >> 9)) as u8;
    }
    let translate = rng.chance(50);
    let mut pages = 0u32;
    let space = if translate {
        pages = 1 + rng.below(24) as u32;
        // Near the end of memory, the last entries are beyond it.
        let base = if rng.chance(15) {
            MEM - 8 * rng.below(pages as u64)
        } else {
            TABLE
        };
        for p in 0..pages as u64 + 2 {
            let top = if rng.chance(5) { 240 } else { 200 };
            let phys = DATA + rng.below(top) * 0x1000;
            let e = match rng.below(40) {
                0 => phys,                         // not valid
                1 => xlat::pte(phys, true) | 0x40, // reserved bit
                2..=4 => xlat::pte(phys, false),
                _ => xlat::pte(phys, true),
            };
            if base + 8 * p + 8 <= MEM {
                mem.write(base + 8 * p, &e.to_le_bytes());
            }
        }
        ls.mmio_write(regs::XLAT_BASE_LO, base as u32);
        ls.mmio_write(regs::XLAT_BASE_HI, (base >> 32) as u32);
        ls.mmio_write(regs::XLAT_PAGES, pages);
        ls.mmio_write(regs::CONTROL, regs::CONTROL_XLAT_EN);
        (0, (pages as u64 + u64::from(rng.chance(5))) << 12)
    } else {
        (DATA, MEM + 64)
    };
    let n = 1 + rng.below(10);
    let mut descs: Vec<Descriptor> = (0..n).map(|_| random_dma(rng, &cfg, space)).collect();
    descs.push(Descriptor::new(Op::Fence(Fence {
        seq: i as u32,
        writeback: None,
        irq: true,
    })));
    start(&mut ls, &mut mem, RING, &descs).unwrap();
    // MMIO writes while the jobs run: each empties the translation caches;
    // some change XLAT_PAGES or turn translation off.
    let mut writes = 0;
    if translate {
        while rng.chance(50) {
            let at = ls.cycle() + 1 + rng.below(80);
            if ls.run_until(&mut mem, at, true) != RunExit::Cycle {
                break;
            }
            let (reg, value) = match rng.below(4) {
                0 => (regs::XLAT_PAGES, pages),
                1 => (regs::XLAT_PAGES, rng.below(pages as u64 + 2) as u32),
                2 => (regs::XLAT_BASE_HI, 0),
                _ => (
                    regs::CONTROL,
                    regs::CONTROL_RUN
                        | if rng.chance(70) {
                            regs::CONTROL_XLAT_EN
                        } else {
                            0
                        },
                ),
            };
            ls.mmio_write(reg, value);
            writes += 1;
        }
    }
    let result = wait_idle(&mut ls, &mut mem, 200_000);
    let now = ls.cycle();
    ls.run_until(&mut mem, now + 20, false);
    for &off in regs::PERF_COUNTERS {
        ls.mmio_read(off);
        ls.mmio_read(off + 4);
    }
    for off in (0..0x70).step_by(4) {
        ls.mmio_read(off);
    }
    if let Err(d) = ls.finish(&mut mem) {
        panic!(
            "program {i} diverged ({} descriptors, translation {translate}, dram {:?}):\n{d}\n{descs:#x?}",
            descs.len(),
            cfg.dram
        );
    }
    format!("{result:?}, {writes} MMIO writes")
}

#[test]
fn random_dma_programs_lockstep() {
    assert!(
        variant::verilator_available(),
        "Verilator is missing: apt-get install -y verilator"
    );
    let programs = std::env::var("NPUKIT_HW_DMA_LOCKSTEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60u64);
    // Another variant of the 4x4 configuration with another beat width, e.g.
    // one written by `npukit-hwgen --config --name` and built with
    // NPUKIT_RTL_VARIANTS: NPUKIT_HW_DMA_VARIANT=name:beat_bytes.
    let (variant, beat) = match std::env::var("NPUKIT_HW_DMA_VARIANT") {
        Ok(v) => {
            let (name, b) = v
                .split_once(':')
                .unwrap_or_else(|| panic!("NPUKIT_HW_DMA_VARIANT={v:?} is not name:beat_bytes"));
            let b = b
                .parse()
                .unwrap_or_else(|_| panic!("NPUKIT_HW_DMA_VARIANT={v:?}: bad beat_bytes"));
            (name.to_string(), Some(b))
        }
        Err(_) => ("npu_4x4".to_string(), None),
    };
    let mut rng = Rng(0xD3A0_51EB_0000_0001);
    let (mut ok, mut faults) = (0, 0);
    for i in 0..programs {
        let r = run_one(&mut rng, i, &variant, beat);
        if r.starts_with("Ok") {
            ok += 1;
        } else if r.contains("Device") {
            faults += 1;
        }
    }
    eprintln!(
        "{programs} programs in lockstep on {variant}: {ok} completed, {faults} halted on a fault"
    );
    if programs >= 60 {
        assert!(
            ok >= programs / 3 && faults >= 5,
            "{ok} completed, {faults} faulted"
        );
    }
}
