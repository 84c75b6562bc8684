//! `Fence` (the command processor's FENCE: drain, writeback with its PTE
//! read, completion) against the FENCE rules of docs/timing.md, cycle by
//! cycle under rust-hdl's simulator on random stimulus, and its Verilog alone
//! under Verilator's linter.
//!
//! The reference follows the model (`npukit_sim::cmdproc::FenceOp` and the
//! command processor's part of `ModelDevice::plan`): a FENCE drains until
//! every queue and unit is idle at the start of a cycle; without WRITEBACK it
//! completes in that cycle, with it the next cycles offer the write (or the
//! PTE read its translation needs; `ADDR_RANGE` past the memory, the cache's
//! fault otherwise), and it completes in the cycle the write's response
//! arrives.

#![allow(clippy::unwrap_used)]

mod common;
use common::{edge, settle, Clocked, Rng};
use npukit_abi::ErrorCode;
use npukit_hw::fence::Fence;
use npukit_sim::MemKind;
use rust_hdl::prelude::*;

impl Clocked for Fence {
    fn clock(&mut self) -> &mut Signal<rust_hdl::prelude::In, Clock> {
        &mut self.clock
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Drain,
    Write,
    Ack,
}

/// The FENCE in progress (the model's `FenceOp`).
#[derive(Debug, Clone, Copy)]
struct Op {
    index: u32,
    seq: u32,
    va: u64,
    writeback: bool,
    irq: bool,
    phase: Phase,
}

/// One cycle's inputs.
#[derive(Debug, Clone, Copy, Default)]
struct In {
    enable: bool,
    clear: bool,
    start: bool,
    desc: [u32; 8],
    index: u32,
    idle: bool,
    granted: bool,
    resp: bool,
    mem_size: u64,
    phys_valid: bool,
    phys: u64,
    read_valid: bool,
    read_addr: u64,
    read_vpn: u32,
    fault: bool,
    fault_code: u8,
    fault_addr: u64,
}

/// What the block must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Out {
    active: bool,
    draining: bool,
    done: bool,
    decided: bool,
    req: bool,
    kind: u64,
    addr: u64,
    own: u64,
    wdata: [u64; 8],
    wmask: u64,
    fault: bool,
    fault_code: u8,
    fault_addr: u64,
    index: u32,
    seq: u32,
    irq: bool,
    va: u64,
}

/// The rules, from the FENCE `f` at the start of the cycle (`last`: the
/// fields of the last FENCE, which the outputs keep showing after it).
fn expected(f: &Option<Op>, last: &Op, i: &In, beat: u64) -> Out {
    let mut o = Out {
        active: f.is_some(),
        draining: matches!(f, Some(op) if op.phase == Phase::Drain),
        index: last.index,
        seq: last.seq,
        irq: last.irq,
        va: last.va,
        ..Default::default()
    };
    // The write's data: the sequence number at the translated address's
    // offset in the beat (only taken by the port with a write).
    let off = i.phys & (beat - 1);
    let data = (last.seq as u128) << (8 * (off % 8));
    let mut w = [0u64; 8];
    let k = (off / 8) as usize;
    w[k] = data as u64;
    if k + 1 < 8 {
        w[k + 1] = (data >> 64) as u64;
    }
    o.wdata = w;
    o.wmask = 0xF << off;
    if let Some(op) = f {
        if op.phase == Phase::Write {
            let range = |a: u64, n: u64| a as u128 + n as u128 > i.mem_size as u128;
            let range_code = ErrorCode::AddrRange as u8;
            if i.phys_valid {
                o.decided = true;
                if range(i.phys, 4) {
                    (o.fault, o.fault_code, o.fault_addr) = (true, range_code, i.phys);
                } else {
                    (o.req, o.kind, o.addr) = (true, MemKind::FenceWrite as u64, i.phys);
                }
            } else if i.read_valid {
                o.decided = true;
                if range(i.read_addr, 8) {
                    (o.fault, o.fault_code, o.fault_addr) = (true, range_code, i.read_addr);
                } else {
                    (o.req, o.kind, o.addr) = (true, MemKind::Pte as u64, i.read_addr);
                    o.own = (i.read_vpn as u64) << 6 | (i.read_addr & (beat - 1));
                }
            } else if i.fault {
                o.decided = true;
                (o.fault, o.fault_code, o.fault_addr) = (true, i.fault_code, i.fault_addr);
            }
        }
        let drained = op.phase == Phase::Drain && i.idle;
        o.done = i.enable && ((drained && !op.writeback) || i.resp);
    }
    o
}

fn next_state(f: &Option<Op>, i: &In, o: &Out) -> Option<Op> {
    let mut f = *f;
    if i.enable {
        if let Some(op) = f.as_mut() {
            if op.phase == Phase::Drain && i.idle && op.writeback {
                op.phase = Phase::Write;
            }
            if i.granted && o.req && o.kind == MemKind::FenceWrite as u64 {
                op.phase = Phase::Ack;
            }
        }
        if o.done {
            f = None;
        }
        if i.start {
            let d = &i.desc;
            f = Some(Op {
                index: i.index,
                seq: d[1],
                va: d[2] as u64 | (d[3] as u64) << 32,
                writeback: d[0] >> 13 & 1 == 1,
                irq: d[0] >> 12 & 1 == 1,
                phase: Phase::Drain,
            });
        }
    }
    if i.clear {
        f = None;
    }
    f
}

fn wide<const N: usize>(words: &[u64]) -> Bits<N> {
    words
        .iter()
        .rev()
        .fold(Bits::<N>::default(), |b, &w| (b << 64) | Bits::<N>::from(w))
}

fn drive(uut: &mut Fence, i: &In) {
    uut.enable.next = i.enable;
    uut.clear.next = i.clear;
    uut.start.next = i.start;
    let d: Vec<u64> = (0..4)
        .map(|k| i.desc[2 * k] as u64 | (i.desc[2 * k + 1] as u64) << 32)
        .collect();
    uut.start_desc.next = wide::<256>(&d);
    uut.start_index.next = (i.index as u64).into();
    uut.idle.next = i.idle;
    uut.granted.next = i.granted;
    uut.resp.next = i.resp;
    uut.mem_size.next = i.mem_size.into();
    uut.tlb_phys_valid.next = i.phys_valid;
    uut.tlb_phys.next = i.phys.into();
    uut.tlb_read_valid.next = i.read_valid;
    uut.tlb_read_addr.next = i.read_addr.into();
    uut.tlb_read_vpn.next = (i.read_vpn as u64).into();
    uut.tlb_fault.next = i.fault;
    uut.tlb_fault_code.next = (i.fault_code as u64).into();
    uut.tlb_fault_addr.next = i.fault_addr.into();
}

fn observed(uut: &Fence) -> Out {
    let wd = uut.wdata.val();
    Out {
        active: uut.active.val(),
        draining: uut.draining.val(),
        done: uut.done.val(),
        decided: uut.decided.val(),
        req: uut.req.val(),
        kind: uut.kind.val().to_u64(),
        addr: uut.addr.val().to_u64(),
        own: uut.own.val().to_u64(),
        wdata: std::array::from_fn(|k| wd.get_bits::<64>(64 * k).to_u64()),
        wmask: uut.wmask.val().to_u64(),
        fault: uut.fault.val(),
        fault_code: uut.fault_code.val().to_u64() as u8,
        fault_addr: uut.fault_addr.val().to_u64(),
        index: uut.index.val().to_u64() as u32,
        seq: uut.seq.val().to_u64() as u32,
        irq: uut.irq.val(),
        va: uut.va.val().to_u64(),
    }
}

/// An address near the end of memory (or of the address space).
fn near(rng: &mut Rng, end: u64) -> u64 {
    end.wrapping_sub(rng.below(16)) & !rng.pick(&[0u64, 3])
}

fn random_inputs(rng: &mut Rng, f: &Option<Op>) -> In {
    let mem_size = if rng.chance(10) {
        u64::MAX
    } else {
        1 << (12 + rng.below(20))
    };
    let ends = [mem_size, u64::MAX, rng.next()];
    let mut i = In {
        enable: rng.chance(90),
        idle: rng.chance(40),
        granted: rng.chance(60),
        mem_size,
        index: rng.next() as u32,
        ..Default::default()
    };
    i.clear = !i.enable && rng.chance(10);
    // The top dispatches a FENCE only while none is in progress.
    i.start = f.is_none() && rng.chance(30);
    i.desc = std::array::from_fn(|_| rng.next() as u32);
    i.desc[0] = 7 | (rng.below(4) as u32) << 12;
    // The cache presents at most one of: a translation, a PTE read, a fault.
    match rng.below(4) {
        0 => i.phys_valid = true,
        1 => i.read_valid = true,
        2 => i.fault = true,
        _ => {}
    }
    let e = rng.pick(&ends);
    i.phys = near(rng, e);
    let e = rng.pick(&ends);
    i.read_addr = near(rng, e);
    i.read_vpn = rng.next() as u32;
    i.fault_code = rng.pick(&[ErrorCode::XlatFault as u8, ErrorCode::AddrRange as u8]);
    i.fault_addr = rng.next();
    // The write's response comes only while it waits for it.
    i.resp = matches!(f, Some(op) if op.phase == Phase::Ack) && rng.chance(40);
    i
}

#[test]
fn random_cycles_follow_the_fence_rules() {
    for beat in [8u64, 32, 64] {
        let mut uut = Fence::new(beat as u32).unwrap();
        uut.connect_all();
        settle(&mut uut);
        let mut rng = Rng(0xFE4C_E000 ^ beat);
        let mut f: Option<Op> = None;
        let mut last = Op {
            index: 0,
            seq: 0,
            va: 0,
            writeback: false,
            irq: false,
            phase: Phase::Drain,
        };
        let mut seen = [0u32; 6];
        for cycle in 0..6000 {
            let i = random_inputs(&mut rng, &f);
            drive(&mut uut, &i);
            settle(&mut uut);
            let want = expected(&f, &last, &i, beat);
            assert_eq!(
                observed(&uut),
                want,
                "beat {beat} cycle {cycle}: {f:?} {i:?}"
            );
            seen[0] += (want.done && !f.unwrap().writeback) as u32;
            seen[1] += (want.done && f.unwrap().writeback) as u32;
            seen[2] += (want.req && want.kind == MemKind::FenceWrite as u64) as u32;
            seen[3] += (want.req && want.kind == MemKind::Pte as u64) as u32;
            seen[4] += (want.fault && want.fault_code == ErrorCode::AddrRange as u8) as u32;
            seen[5] += (want.decided && i.fault) as u32;
            let n = next_state(&f, &i, &want);
            if let (true, Some(op)) = (i.enable && i.start, n) {
                last = op;
            }
            f = n;
            edge(&mut uut);
        }
        assert!(
            seen.iter().all(|&n| n > 20),
            "beat {beat}: done without/with writeback, writes, PTE reads, range faults, cache faults: {seen:?}"
        );
    }
}

#[test]
fn bad_beats_are_refused() {
    for b in [0, 4, 12, 128] {
        assert!(Fence::new(b).is_err(), "{b}");
    }
}

#[test]
fn verilog_lints_clean() {
    let mut uut = Fence::new(32).unwrap();
    uut.connect_all();
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "fence") {
        panic!("verilator lint failed: {log}");
    }
}
