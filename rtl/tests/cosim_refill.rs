//! Programs longer than the command ring in lockstep: the ring is refilled as
//! the device consumes it (`npukit_sim::run::RingRun`, the model's own driver
//! loop), both sides get the same refill writes at the same cycle, and a
//! divergence after a refill is still reported at its cycle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use npukit_abi::{asm, regs, Descriptor, DESC_BYTES};
use npukit_rtl::corpus::{self, Case};
use npukit_rtl::lockstep::{model_vs_rtl, DivergenceKind, Observed};
use npukit_rtl::{Lockstep, LockstepOptions, RtlDevice};
use npukit_sim::{Device, DeviceMemory, Event, ModelDevice, NpuConfig, RunExit, VecMemory};

const RING: u64 = 0x1000;
const DATA: u64 = 0x4_0000;
const OUT: u64 = 0x6_0000;
const MEM: u64 = 1 << 20;

/// About `times` rings' worth of descriptors for `cfg`: blocks of a GEMM tile
/// (LOAD, LOAD, MATMUL, STORE chained by tokens), NOPs and a FENCE (which
/// keeps the blocks' accumulator use race-free), ending with a FENCE with IRQ.
fn long_program(cfg: &NpuConfig, times: f64) -> Vec<Descriptor> {
    let (r, c) = (cfg.array.rows, cfg.array.cols);
    let target = (times * cfg.cmdproc.max_ring as f64) as usize;
    let mut src = String::new();
    let mut n = 0;
    let mut b = 0u32;
    while n < target {
        let a = DATA + (b as u64 % 64) * 64;
        let o = OUT + (b as u64 % 32) * (4 * c as u64) * r as u64;
        src += &format!("LOAD local=0 dram={a:#x} rows={r} row_bytes={r}\n");
        src += &format!(
            "LOAD local=1024 dram={:#x} rows={r} row_bytes={c} signal_next\n",
            DATA + 0x8000 + (b as u64 % 8) * 32
        );
        src += &format!("MATMUL a=0 w=1024 out=0 m={r} k={r} n={c} wait_prev signal_next\n");
        src += &format!(
            "STORE local=0 dram={o:#x} rows={r} row_bytes={} acc wait_prev\n",
            4 * c
        );
        for _ in 0..11 {
            src += "NOP\n";
        }
        src += &format!("FENCE seq={b}\n");
        n += 16;
        b += 1;
    }
    src += "FENCE seq=0xE0D irq\n";
    asm::assemble(&src)
        .expect("the generated program assembles")
        .descs()
        .to_vec()
}

fn case(descs: &[Descriptor]) -> Case {
    let image: Vec<u8> = (0..0x1_0000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    corpus::workload("long_program", descs, &[(DATA, image)], RING, MEM)
}

/// The model alone through the same driver loop: its cycle count.
fn model_cycles(cfg: &NpuConfig, case: &Case, descs: &[Descriptor]) -> u64 {
    let cfg = case.config(cfg);
    let mut mem = VecMemory::new(case.mem_size as usize);
    for (a, bytes) in &case.image {
        mem.store(*a, bytes).expect("image fits");
    }
    let mut m = ModelDevice::new(&cfg);
    npukit_sim::run::run_program(&mut m, &mut mem, case.ring_base, descs, case.max_cycles)
        .expect("the model completes the program")
        .cycles
}

#[test]
fn programs_several_rings_long_are_refilled_in_lockstep() {
    common::require_rtl();
    let mut failures = Vec::new();
    for name in ["npu_4x4", "npu_8x8", "npu_16x16"] {
        let cfg = common::config_of(name);
        let descs = long_program(&cfg, 3.5);
        let ring = cfg.cmdproc.max_ring as usize;
        assert!(descs.len() > 3 * ring, "{} descriptors", descs.len());
        let case = case(&descs);
        let opts = LockstepOptions {
            keep_events: true,
            ..LockstepOptions::default()
        };
        let mut ls = model_vs_rtl(&case.config(&cfg), Some(name), None, opts).unwrap();
        let o = match corpus::run(&mut ls, &case) {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("--- {name}:\n{e}"));
                continue;
            }
        };
        // The device had a ring's worth at the start; every other descriptor
        // came through a refill, each one a RING_TAIL write (at most a ring's
        // worth less one each).
        let min_refills = ((descs.len() - (ring - 1)) as u64).div_ceil(ring as u64 - 1);
        assert!(
            o.refills >= min_refills.max(3),
            "{name}: {} refills for {} descriptors",
            o.refills,
            descs.len()
        );
        // Every descriptor was dispatched, once, in program order (the
        // events' ring index wraps with the ring), on both sides.
        for (side, events) in ls.all_events().iter().enumerate() {
            let dispatched: Vec<u32> = events
                .iter()
                .filter_map(|(_, e)| match e {
                    Event::Dispatch { index, desc, .. } => Some((*index, *desc)),
                    _ => None,
                })
                .enumerate()
                .map(|(p, (index, desc))| {
                    assert_eq!(desc, descs[p], "{name} side {side}: descriptor {p}");
                    index
                })
                .collect();
            assert_eq!(dispatched.len(), descs.len(), "{name} side {side}");
            for (p, &index) in dispatched.iter().enumerate() {
                assert_eq!(index as usize, p % ring, "{name} side {side}: ring index");
            }
        }
        // Exactly the run `npukit run` does: the model alone through the
        // same refill loop takes the same cycles.
        assert_eq!(
            o.result,
            Ok(model_cycles(&cfg, &case, &descs)),
            "{name}: lockstep vs the model alone"
        );
    }
    common::assert_all_pass("programs longer than the ring", 3, &failures);
}

#[test]
fn the_broken_variant_is_caught_at_its_first_dispatch_on_a_refilled_ring() {
    // npu_4x4_offbyone dispatches one cycle late whenever the head descriptor
    // has only just arrived, which every program's first dispatch is: through
    // the refill path the report is the same as for a ring written once.
    common::require_rtl();
    let name = "npu_4x4_offbyone";
    let cfg = common::config_of("npu_4x4");
    let descs = long_program(&cfg, 3.2);
    let case = case(&descs);
    let (first_cycle, unit) = model_events(&cfg, &case)
        .into_iter()
        .find_map(|(c, e)| match e {
            Event::Dispatch { unit, .. } => Some((c, unit)),
            _ => None,
        })
        .unwrap();
    let mut ls = model_vs_rtl(
        &case.config(&cfg),
        Some(name),
        None,
        LockstepOptions::default(),
    )
    .unwrap();
    let err = corpus::run(&mut ls, &case)
        .expect_err("the broken variant diverges")
        .to_string();
    let d = ls.divergence().unwrap();
    assert_eq!(
        (d.cycle, d.unit.as_str(), d.event_kind.as_str()),
        (first_cycle, unit.name(), "Dispatch"),
        "{err}"
    );
    assert!(err.contains("MMIO writes"), "{err}");
}

/// The model's events for `case` (two models in lockstep, side A's events).
fn model_events(cfg: &NpuConfig, case: &Case) -> Vec<(u64, Event)> {
    let cfg = case.config(cfg);
    let mut ls = Lockstep::new(
        ModelDevice::with_sink(&cfg, Vec::new()),
        ModelDevice::with_sink(&cfg, Vec::new()),
        LockstepOptions {
            keep_events: true,
            ..LockstepOptions::default()
        },
    );
    corpus::run(&mut ls, case).unwrap();
    ls.all_events()[0].to_vec()
}

/// Side B with one descriptor of the `refill`-th refill replaced in its copy
/// of device memory (the first slot that refill wrote), as if that refill had
/// reached it differently. It counts descriptors given to the device from the
/// `RING_TAIL` writes, as the device does.
struct CorruptRefill<D> {
    dev: D,
    refill: u32,
    tail_writes: u32,
    tail: u32,
    size: u32,
    written: u64,
    /// Physical address, program index and replacement of the corrupted slot.
    slot: Option<(u64, u64, [u8; DESC_BYTES])>,
    /// The cycle of that refill's `RING_TAIL` write.
    refilled_at: u64,
    ring_base: u64,
}

impl<D: Observed> Device for CorruptRefill<D> {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.dev.mmio_read(offset)
    }
    fn mmio_write(&mut self, offset: u32, value: u32) {
        match offset {
            regs::RING_SIZE => self.size = value,
            regs::RING_TAIL => {
                let added = (value + self.size - self.tail) % self.size;
                if self.tail_writes == self.refill {
                    let bad =
                        Descriptor::new(npukit_abi::desc::Op::Fence(npukit_abi::desc::Fence {
                            seq: 0xBAD,
                            writeback: None,
                            irq: false,
                        }));
                    let addr = self.ring_base + (self.tail as u64) * DESC_BYTES as u64;
                    self.slot = Some((addr, self.written, bad.encode()));
                    self.refilled_at = self.dev.cycle();
                }
                self.tail_writes += 1;
                self.written += added as u64;
                self.tail = value;
            }
            _ => {}
        }
        self.dev.mmio_write(offset, value);
    }
    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        if let Some((addr, _, bytes)) = &self.slot {
            mem.write(*addr, bytes);
        }
        self.dev.run_until(mem, cycle, stop_on_irq)
    }
    fn irq_pending(&self) -> bool {
        self.dev.irq_pending()
    }
    fn cycle(&self) -> u64 {
        self.dev.cycle()
    }
}

impl<D: Observed> Observed for CorruptRefill<D> {
    fn take_events(&mut self, out: &mut Vec<(u64, Event)>) {
        self.dev.take_events(out)
    }
    fn take_violations(&mut self) -> Vec<(u64, String)> {
        self.dev.take_violations()
    }
    fn npu_config(&self) -> &NpuConfig {
        self.dev.npu_config()
    }
}

#[test]
fn a_divergence_after_refills_is_reported_at_its_cycle() {
    common::require_rtl();
    let name = "npu_4x4";
    let cfg = common::config_of(name);
    let descs = long_program(&cfg, 3.2);
    let mut case = case(&descs);
    // The corrupted ring slot would otherwise first show as a memory
    // difference at the end of the slice; with memory off it shows as what
    // the device does with it.
    case.compare_memory = false;
    let model = model_events(&cfg, &case);
    let c = case.config(&cfg);
    let rtl = RtlDevice::with_variant(name, &c, Vec::new()).unwrap();
    let refill = 5;
    let b = CorruptRefill {
        dev: rtl,
        refill,
        tail_writes: 0,
        tail: 0,
        size: 2,
        written: 0,
        slot: None,
        refilled_at: 0,
        ring_base: case.ring_base,
    };
    let mut ls = Lockstep::new(
        ModelDevice::with_sink(b.npu_config(), Vec::new()),
        b,
        LockstepOptions::default(),
    );
    let err = corpus::run(&mut ls, &case)
        .expect_err("the corrupted descriptor diverges")
        .to_string();
    let (_, p, _) = ls.b().slot.expect("the refill happened");
    // The model's dispatch of program descriptor p: the p-th Dispatch event.
    let (cycle, unit) = model
        .iter()
        .filter_map(|(c, e)| match e {
            Event::Dispatch { unit, .. } => Some((*c, *unit)),
            _ => None,
        })
        .nth(p as usize)
        .unwrap();
    let d = ls.divergence().unwrap();
    assert_eq!(
        (d.cycle, d.unit.as_str(), d.event_kind.as_str()),
        (cycle, unit.name(), "Dispatch"),
        "{err}"
    );
    // It came after that refill (the ring had wrapped: the slot was used
    // before), and the report lists the refills' RING_TAIL writes.
    let ring = cfg.cmdproc.max_ring as u64;
    assert!(cycle > ls.b().refilled_at && p >= ring, "{err}");
    assert!(err.contains("RING_TAIL"), "{err}");
    assert!(
        err.contains(&format!(
            "DIVERGENCE at cycle {cycle}: unit {}, Dispatch",
            unit.name()
        )),
        "{err}"
    );
}

/// A model that, in its `nth` `run_until` call, also writes `byte` at `addr`
/// of the memory it runs on (a device writing where it should not).
struct StrayWrite {
    dev: ModelDevice<Vec<(u64, Event)>>,
    nth: u32,
    calls: u32,
    addr: u64,
    byte: u8,
    at_cycle: Option<u64>,
}

impl npukit_sim::Device for StrayWrite {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.dev.mmio_read(offset)
    }
    fn mmio_write(&mut self, offset: u32, value: u32) {
        self.dev.mmio_write(offset, value)
    }
    fn run_until(
        &mut self,
        mem: &mut dyn npukit_sim::DeviceMemory,
        cycle: u64,
        stop_on_irq: bool,
    ) -> npukit_sim::RunExit {
        let exit = self.dev.run_until(mem, cycle, stop_on_irq);
        self.calls += 1;
        if self.calls == self.nth {
            mem.write(self.addr, &[self.byte]);
            self.at_cycle = Some(self.dev.cycle());
        }
        exit
    }
    fn irq_pending(&self) -> bool {
        self.dev.irq_pending()
    }
    fn cycle(&self) -> u64 {
        self.dev.cycle()
    }
}

impl npukit_rtl::lockstep::Observed for StrayWrite {
    fn take_events(&mut self, out: &mut Vec<(u64, Event)>) {
        self.dev.take_events(out)
    }
    fn npu_config(&self) -> &NpuConfig {
        self.dev.config()
    }
}

#[test]
fn a_stray_write_mid_run_is_caught_as_a_memory_difference_at_the_end_of_its_slice() {
    // At the end of every run_until the pair compares the pages either side
    // wrote (the rest is equal since the refresh at its start): a stray byte
    // anywhere, the first and last pages of memory included, is found at the
    // end of the refill slice it was written in, long before the end.
    let cfg = common::config_of("npu_4x4");
    let descs = long_program(&cfg, 3.2);
    let case = case(&descs);
    let c = case.config(&cfg);
    let total = model_cycles(&cfg, &case, &descs);
    for addr in [OUT + 5, case.mem_size - 1, 0] {
        let b = StrayWrite {
            dev: ModelDevice::with_sink(&c, Vec::new()),
            nth: 200,
            calls: 0,
            addr,
            byte: 0xA5,
            at_cycle: None,
        };
        let mut ls = Lockstep::new(
            ModelDevice::with_sink(&c, Vec::new()),
            b,
            LockstepOptions::default(),
        );
        let err = corpus::run(&mut ls, &case).unwrap_err().to_string();
        let d = ls.divergence().expect("a divergence");
        let at = ls.b().at_cycle.expect("the stray write happened");
        match d.kind {
            DivergenceKind::Memory { addr: a, b, .. } => {
                assert_eq!((a, b), (addr, 0xA5), "{err}")
            }
            ref other => panic!("expected a memory divergence, got {other:?}\n{err}"),
        }
        assert!(
            d.cycle >= at
                && d.cycle <= at + npukit_sim::run::REFILL_SLICE
                && d.cycle + 100_000 < total,
            "stray write at {at}, {total} cycles in all: {err}"
        );
    }
}
