//! `Faults` (the fault priority of G3 with the deadlock rule E1 and the token
//! overflow's descriptor) against the rules of docs/timing.md, on random
//! plans under rust-hdl's simulator, and its Verilog alone under Verilator's
//! linter.
//!
//! The reference follows the model (`ModelDevice::plan` and
//! `ModelDevice::deadlocked` in `npukit_sim::model`): the command processor's
//! request, the dispatch decision, the STORE and the LOAD requests, then the
//! deadlock, the watchdog and the token overflow, the first fault found
//! being the cycle's.

#![allow(clippy::unwrap_used)]

mod common;
use common::{settle, Rng};
use npukit_abi::ErrorCode;
use npukit_hw::faults::Faults;
use rust_hdl::prelude::*;

/// One cycle's plan as the block sees it.
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    cp: Option<(u8, u32, u64)>,
    disp_fault: Option<(u8, u32, u64)>,
    store: Option<(u8, u64)>,
    load: Option<(u8, u64)>,
    /// Ring indices of the load, compute and store jobs.
    job: [u32; 3],
    disp: bool,
    responding: bool,
    inflight: u32,
    active: [bool; 3],
    /// `Some(draining)` while a FENCE is in progress.
    fence: Option<bool>,
    head_full: bool,
    head_bad: bool,
    /// Each queue's head: its ring index and whether its tokens are ready.
    q: [Option<(u32, bool)>; 3],
    wd: bool,
    head: u32,
    /// Overflowing pushes: load to compute, compute to load, compute to
    /// store, store to compute.
    over: [bool; 4],
}

/// The cycle's fault: code, descriptor index, address.
type Fault = (u8, u32, u64);

/// E1, as the model states it.
fn deadlock(p: &Plan) -> Option<u32> {
    if p.disp || p.responding || p.inflight > 0 || p.active.iter().any(|&a| a) {
        return None;
    }
    let cp_blocked = match p.fence {
        Some(draining) => draining,
        None => p.head_full && !p.head_bad,
    };
    if !cp_blocked {
        return None;
    }
    let mut first = None;
    for (index, ready) in p.q.iter().flatten() {
        if *ready {
            return None;
        }
        first = first.or(Some(*index));
    }
    first
}

/// U2: the first completing unit (load, compute, store) whose push overflows.
fn overflow(p: &Plan) -> Option<u32> {
    let pushes_of = [&[0usize][..], &[1, 2], &[3]];
    (0..3)
        .find(|&u| pushes_of[u].iter().any(|&q| p.over[q]))
        .map(|u| p.job[u])
}

fn expected(p: &Plan) -> Option<Fault> {
    if let Some(f) = p.cp {
        return Some(f);
    }
    if let Some(f) = p.disp_fault {
        return Some(f);
    }
    if let Some((code, addr)) = p.store {
        return Some((code, p.job[2], addr));
    }
    if let Some((code, addr)) = p.load {
        return Some((code, p.job[0], addr));
    }
    if let Some(index) = deadlock(p) {
        return Some((ErrorCode::Deadlock as u8, index, 0));
    }
    if p.wd {
        return Some((ErrorCode::Watchdog as u8, p.head, 0));
    }
    overflow(p).map(|index| (ErrorCode::TokenOverflow as u8, index, 0))
}

fn bits3(b: [bool; 3]) -> u64 {
    (0..3).map(|k| (b[k] as u64) << k).sum()
}

fn drive(uut: &mut Faults, p: &Plan) {
    let (f, c, i, a) = p.cp.map_or((false, 0, 0, 0), |(c, i, a)| (true, c, i, a));
    uut.cp_fault.next = f;
    uut.cp_code.next = (c as u64).into();
    uut.cp_index.next = (i as u64).into();
    uut.cp_addr.next = a.into();
    let (f, c, i, a) = p
        .disp_fault
        .map_or((false, 0, 0, 0), |(c, i, a)| (true, c, i, a));
    uut.disp_fault.next = f;
    uut.disp_code.next = (c as u64).into();
    uut.disp_index.next = (i as u64).into();
    uut.disp_addr.next = a.into();
    let (f, c, a) = p.store.map_or((false, 0, 0), |(c, a)| (true, c, a));
    uut.store_fault.next = f;
    uut.store_code.next = (c as u64).into();
    uut.store_addr.next = a.into();
    let (f, c, a) = p.load.map_or((false, 0, 0), |(c, a)| (true, c, a));
    uut.load_fault.next = f;
    uut.load_code.next = (c as u64).into();
    uut.load_addr.next = a.into();
    uut.l_job.next = (p.job[0] as u64).into();
    uut.c_job.next = (p.job[1] as u64).into();
    uut.s_job.next = (p.job[2] as u64).into();
    uut.disp.next = p.disp;
    uut.responding.next = p.responding;
    uut.inflight.next = (p.inflight as u64).into();
    uut.active.next = bits3(p.active).into();
    uut.fence_active.next = p.fence.is_some();
    uut.fence_draining.next = p.fence == Some(true);
    uut.head_full.next = p.head_full;
    uut.head_bad.next = p.head_bad;
    uut.q_valid.next = bits3(p.q.map(|h| h.is_some())).into();
    uut.q_ready.next = bits3(p.q.map(|h| h.is_some_and(|(_, r)| r))).into();
    let hi = p.q.map(|h| h.map_or(0, |(i, _)| i) as u64);
    uut.l_head.next = hi[0].into();
    uut.c_head.next = hi[1].into();
    uut.s_head.next = hi[2].into();
    uut.wd.next = p.wd;
    uut.head.next = (p.head as u64).into();
    uut.over.next = (0..4).map(|k| (p.over[k] as u64) << k).sum::<u64>().into();
}

fn observed(uut: &Faults) -> (bool, Fault) {
    (
        uut.any.val(),
        (
            uut.code.val().to_u64() as u8,
            uut.index.val().to_u64() as u32,
            uut.addr.val().to_u64(),
        ),
    )
}

fn random_plan(rng: &mut Rng) -> Plan {
    let fault = |rng: &mut Rng| {
        rng.chance(12)
            .then(|| (1 + rng.below(12) as u8, rng.next() as u32, rng.next()))
    };
    let cp = fault(rng);
    let disp_fault = fault(rng);
    let store = fault(rng).map(|(c, _, a)| (c, a));
    let load = fault(rng).map(|(c, _, a)| (c, a));
    // Each precondition of E1 holds often, so that all of them hold together
    // in many cycles.
    let mut q = [None; 3];
    for h in q.iter_mut() {
        if rng.chance(50) {
            *h = Some((rng.next() as u32, rng.chance(20)));
        }
    }
    Plan {
        cp,
        disp_fault,
        store,
        load,
        job: std::array::from_fn(|_| rng.next() as u32),
        disp: rng.chance(15),
        responding: rng.chance(15),
        inflight: if rng.chance(80) {
            0
        } else {
            1 << rng.below(32)
        },
        active: std::array::from_fn(|_| rng.chance(8)),
        fence: rng.chance(40).then(|| rng.chance(70)),
        head_full: rng.chance(70),
        head_bad: rng.chance(20),
        q,
        wd: rng.chance(15),
        head: rng.next() as u32,
        over: std::array::from_fn(|_| rng.chance(12)),
    }
}

#[test]
fn random_plans_follow_the_g3_order() {
    let mut uut = Faults::new();
    uut.connect_all();
    settle(&mut uut);
    let mut rng = Rng(0x063F_A017);
    // Which rule decided the cycle: cp, decode, store, load, deadlock,
    // watchdog, overflow, none.
    let mut seen = [0u32; 8];
    let mut dl_not_first_queue = 0;
    for n in 0..40_000 {
        let p = random_plan(&mut rng);
        drive(&mut uut, &p);
        settle(&mut uut);
        let want = expected(&p);
        let got = observed(&uut);
        assert_eq!(
            got,
            (want.is_some(), want.unwrap_or((0, 0, 0))),
            "plan {n}: {p:?}"
        );
        let rule = [
            p.cp.is_some(),
            p.disp_fault.is_some(),
            p.store.is_some(),
            p.load.is_some(),
            deadlock(&p).is_some(),
            p.wd,
            overflow(&p).is_some(),
            true,
        ]
        .iter()
        .position(|&b| b)
        .unwrap();
        seen[rule] += 1;
        if rule == 4 && p.q[0].is_none() {
            dl_not_first_queue += 1;
        }
    }
    assert!(
        seen.iter().all(|&n| n > 100),
        "cp, decode, store, load, deadlock, watchdog, overflow, none: {seen:?}"
    );
    assert!(dl_not_first_queue > 50, "{dl_not_first_queue}");
}

/// Each rule alone, and each pair in both priority positions.
#[test]
fn each_pair_of_faults_is_ordered() {
    let mut uut = Faults::new();
    uut.connect_all();
    settle(&mut uut);
    let quiet = Plan {
        job: [10, 11, 12],
        head: 99,
        ..Default::default()
    };
    let set = |p: &mut Plan, rule: usize| match rule {
        0 => p.cp = Some((8, 1, 0x100)),
        1 => p.disp_fault = Some((2, 2, 0x200)),
        2 => p.store = Some((9, 0x300)),
        3 => p.load = Some((8, 0x400)),
        4 => {
            p.head_full = true;
            p.q = [None, Some((5, false)), Some((6, false))];
        }
        5 => p.wd = true,
        _ => p.over = [false, false, true, true],
    };
    let alone: Vec<Fault> = (0..7)
        .map(|r| {
            let mut p = quiet;
            set(&mut p, r);
            expected(&p).unwrap()
        })
        .collect();
    assert_eq!(
        alone,
        [
            (8, 1, 0x100),
            (2, 2, 0x200),
            (9, 12, 0x300),
            (8, 10, 0x400),
            (ErrorCode::Deadlock as u8, 5, 0),
            (ErrorCode::Watchdog as u8, 99, 0),
            (ErrorCode::TokenOverflow as u8, 11, 0),
        ]
    );
    drive(&mut uut, &quiet);
    settle(&mut uut);
    assert_eq!(observed(&uut), (false, (0, 0, 0)));
    for (a, &first) in alone.iter().enumerate() {
        for b in a..7 {
            let mut p = quiet;
            set(&mut p, a);
            set(&mut p, b);
            drive(&mut uut, &p);
            settle(&mut uut);
            assert_eq!(observed(&uut), (true, first), "rules {a} and {b}");
        }
    }
}

#[test]
fn verilog_lints_clean() {
    let mut uut = Faults::new();
    uut.connect_all();
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "faults") {
        panic!("verilator lint failed: {log}");
    }
}
