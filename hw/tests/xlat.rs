//! `Tlb` against the model's translation cache (`npukit_sim::xlat::Tlb`), cycle
//! by cycle under rust-hdl's simulator, and its Verilog alone under Verilator's
//! linter.

mod common;
use common::{edge, settle, Clocked, Rng};
use npukit_abi::xlat::pte;
use npukit_abi::ErrorCode;
use npukit_hw::xlat::Tlb;
use npukit_sim::xlat::{Tlb as ModelTlb, Xlat, XlatRegs};
use rust_hdl::prelude::*;
use std::collections::VecDeque;

impl Clocked for Tlb {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

fn new_tlb() -> Tlb {
    let mut uut = Tlb::default();
    uut.connect_all();
    settle(&mut uut);
    uut
}

/// What the block says this cycle, in the model's terms.
fn observed(uut: &Tlb) -> Xlat {
    let set = [
        uut.phys_valid.val(),
        uut.read_valid.val(),
        uut.waiting.val(),
        uut.fault.val(),
    ];
    assert_eq!(
        set.iter().filter(|&&b| b).count(),
        1,
        "exactly one outcome must be set: {set:?}"
    );
    if uut.phys_valid.val() {
        Xlat::Phys(uut.phys.val().to_u64())
    } else if uut.read_valid.val() {
        Xlat::ReadPte {
            pte_addr: uut.read_addr.val().to_u64(),
            vpn: uut.read_vpn.val().to_u64(),
        }
    } else if uut.waiting.val() {
        Xlat::Wait
    } else {
        let code = ErrorCode::from_u32(uut.fault_code.val().to_u32());
        match code {
            Some(c) => Xlat::Fault(c, uut.fault_addr.val().to_u64()),
            None => panic!("bad fault code {}", uut.fault_code.val().to_u32()),
        }
    }
}

fn drive_regs(uut: &mut Tlb, regs: &XlatRegs) {
    uut.xlat_en.next = regs.enabled;
    uut.xlat_base.next = regs.base.into();
    uut.xlat_pages.next = (regs.pages as u64).into();
}

#[test]
fn fixed_paths_match_model() {
    let mut uut = new_tlb();
    let regs = XlatRegs {
        enabled: true,
        base: 0x1000,
        pages: 4,
    };
    drive_regs(&mut uut, &regs);
    uut.enable.next = true;
    uut.va.next = 0x2345_u64.into();
    settle(&mut uut);
    assert_eq!(
        observed(&uut),
        Xlat::ReadPte {
            pte_addr: 0x1010,
            vpn: 2
        }
    );
    // Beyond XLAT_PAGES: fault without a read.
    uut.va.next = 0x4000_u64.into();
    settle(&mut uut);
    assert_eq!(observed(&uut), Xlat::Fault(ErrorCode::XlatFault, 0x4000));
    // The read is accepted: wait until its response.
    uut.va.next = 0x2345_u64.into();
    settle(&mut uut);
    uut.pte_granted.next = true;
    settle(&mut uut);
    edge(&mut uut);
    uut.pte_granted.next = false;
    settle(&mut uut);
    assert_eq!(observed(&uut), Xlat::Wait);
    // The response (read-only entry) arrives; usable from the next cycle.
    uut.pte_valid.next = true;
    uut.pte_vpn.next = 2_u64.into();
    uut.pte_entry.next = pte(0x9000, false).into();
    settle(&mut uut);
    assert_eq!(observed(&uut), Xlat::Wait);
    edge(&mut uut);
    uut.pte_valid.next = false;
    settle(&mut uut);
    assert_eq!(observed(&uut), Xlat::Phys(0x9345));
    uut.write.next = true;
    settle(&mut uut);
    assert_eq!(observed(&uut), Xlat::Fault(ErrorCode::XlatWrite, 0x2345));
    // Translation off: identity, whatever the entry.
    uut.xlat_en.next = false;
    settle(&mut uut);
    assert_eq!(observed(&uut), Xlat::Phys(0x2345));
    // A flush at a disabled edge empties the entry.
    uut.xlat_en.next = true;
    uut.enable.next = false;
    uut.flush.next = true;
    settle(&mut uut);
    edge(&mut uut);
    uut.flush.next = false;
    settle(&mut uut);
    assert_eq!(
        observed(&uut),
        Xlat::ReadPte {
            pte_addr: 0x1010,
            vpn: 2
        }
    );
}

#[test]
fn disabled_edges_change_nothing() {
    let mut uut = new_tlb();
    drive_regs(
        &mut uut,
        &XlatRegs {
            enabled: true,
            base: 0,
            pages: 8,
        },
    );
    uut.va.next = 0x1000_u64.into();
    uut.enable.next = false;
    uut.pte_granted.next = true;
    settle(&mut uut);
    edge(&mut uut);
    assert!(
        uut.read_valid.val(),
        "a grant at a disabled edge is ignored"
    );
    uut.pte_granted.next = false;
    uut.pte_valid.next = true;
    uut.pte_vpn.next = 1_u64.into();
    uut.pte_entry.next = pte(0x5000, true).into();
    settle(&mut uut);
    edge(&mut uut);
    uut.pte_valid.next = false;
    settle(&mut uut);
    assert!(
        uut.read_valid.val(),
        "a response at a disabled edge is ignored"
    );
}

/// Random cycles: translation registers, addresses, entries (valid, invalid,
/// reserved bits, read-only), reads with a random latency, flushes (also while
/// a read is in flight, whose response then still installs its entry), and
/// disabled edges. The block's outcome must equal the model's in every cycle.
#[test]
fn random_cycles_match_model() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut uut = new_tlb();
    let mut model = ModelTlb::default();
    let mut regs = XlatRegs {
        enabled: true,
        base: 0x8000,
        pages: 6,
    };
    // In flight: (cycles to go, vpn, entry).
    let mut inflight: VecDeque<(u32, u64, u64)> = VecDeque::new();
    let mut seen = [0usize; 4];
    drive_regs(&mut uut, &regs);
    for cycle in 0..3000 {
        // Between cycles: sometimes an MMIO write that flushes.
        let flush = rng.chance(3);
        if flush {
            match rng.below(4) {
                0 => regs.enabled = !regs.enabled,
                1 => regs.base = rng.below(1 << 20) * 8,
                2 => regs.pages = rng.below(10) as u32,
                _ => {}
            }
            drive_regs(&mut uut, &regs);
            uut.enable.next = false;
            uut.flush.next = true;
            settle(&mut uut);
            edge(&mut uut);
            uut.flush.next = false;
            model.flush();
        }
        // The access this cycle: a few pages (some beyond XLAT_PAGES).
        let va = rng.below(10) * 4096 + rng.below(4096);
        let write = rng.chance(50);
        let enable = !rng.chance(5);
        uut.va.next = va.into();
        uut.write.next = write;
        uut.enable.next = enable;
        settle(&mut uut);
        let want = model.translate(&regs, va, write);
        let got = observed(&uut);
        assert_eq!(got, want, "cycle {cycle}: va {va:#x} write {write}");
        seen[match want {
            Xlat::Phys(_) => 0,
            Xlat::ReadPte { .. } => 1,
            Xlat::Wait => 2,
            Xlat::Fault(..) => 3,
        }] += 1;
        // The port: accept a read sometimes; deliver the oldest when due.
        let granted = matches!(want, Xlat::ReadPte { .. }) && rng.chance(60);
        let due = inflight.front().is_some_and(|r| r.0 == 0);
        uut.pte_granted.next = granted;
        uut.pte_valid.next = due;
        if let Some(&(_, vpn, entry)) = inflight.front().filter(|_| due) {
            uut.pte_vpn.next = vpn.into();
            uut.pte_entry.next = entry.into();
        }
        settle(&mut uut);
        edge(&mut uut);
        uut.pte_granted.next = false;
        uut.pte_valid.next = false;
        if enable {
            if let (true, Xlat::ReadPte { vpn, .. }) = (granted, want) {
                model.pending = true;
                let phys = rng.below(1 << 30) << 12;
                let entry = match rng.below(6) {
                    0 => phys,                   // not valid
                    1 => pte(phys, true) | 0x10, // reserved bit
                    2 | 3 => pte(phys, false),
                    _ => pte(phys, true),
                };
                inflight.push_back((1 + rng.below(4) as u32, vpn, entry));
            }
            if due {
                if let Some((_, vpn, entry)) = inflight.pop_front() {
                    model.arrive(vpn, entry);
                }
            }
            for r in inflight.iter_mut() {
                r.0 = r.0.saturating_sub(1);
            }
        }
    }
    assert!(
        seen.iter().all(|&n| n > 50),
        "every outcome is exercised: {seen:?}"
    );
}

#[test]
fn verilog_lints_clean() {
    let mut uut = Tlb::default();
    uut.connect_all();
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "tlb") {
        panic!("verilator lint failed: {log}");
    }
}
