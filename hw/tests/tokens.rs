//! `Tokens` (the issue rule U1 and the token counters U2) against the model's
//! rules, cycle by cycle under rust-hdl's simulator on random stimulus, and its
//! Verilog alone under Verilator's linter.
//!
//! The reference is written from the model's pieces: which counters a head
//! waits on and a job signals are `npukit_sim::event::{waits, signals}`, a unit
//! issues when it is free (idle or completing) and every counter it waits on
//! is nonzero, and a push onto a counter that stays at `TOKEN_MAX` after this
//! cycle's pops overflows (`ModelDevice`'s plan).

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;
use common::{edge, settle, Clocked, Rng};
use npukit_abi::Unit;
use npukit_hw::tokens::Tokens;
use npukit_sim::event::{signals, waits};
use npukit_sim::model::TOKEN_MAX;
use rust_hdl::prelude::*;

impl Clocked for Tokens {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

/// One cycle's inputs, per unit in `Unit::ALL` order (load, compute, store).
#[derive(Debug, Clone, Copy, Default)]
struct Inputs {
    enable: bool,
    clear: bool,
    head: [bool; 3],
    deps: [u8; 3],
    active: [bool; 3],
    done: [bool; 3],
    job: [u8; 3],
}

/// What the block must say, per unit and per counter (`TokenQueue::ALL` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Outputs {
    ready: [bool; 3],
    issue: [bool; 3],
    stall: [bool; 3],
    pop: [bool; 4],
    push: [bool; 4],
    over: [bool; 4],
    count: [u32; 4],
}

/// The rules, from the state `tok` at the start of the cycle.
fn expected(tok: &[u32; 4], i: &Inputs) -> Outputs {
    let mut o = Outputs {
        count: *tok,
        ..Default::default()
    };
    for (k, u) in Unit::ALL.into_iter().enumerate() {
        o.ready[k] = waits(u, i.deps[k]).all(|q| tok[q as usize] > 0);
        let free = !i.active[k] || i.done[k];
        o.issue[k] = free && i.head[k] && o.ready[k];
        o.stall[k] = free && i.head[k] && !o.issue[k];
        if o.issue[k] {
            for q in waits(u, i.deps[k]) {
                o.pop[q as usize] = true;
            }
        }
        if i.done[k] {
            for q in signals(u, i.job[k]) {
                o.push[q as usize] = true;
            }
        }
    }
    for q in 0..4 {
        o.over[q] = o.push[q] && tok[q] - o.pop[q] as u32 >= TOKEN_MAX;
    }
    o
}

/// The counters after the edge.
fn next_state(tok: &[u32; 4], i: &Inputs, o: &Outputs) -> [u32; 4] {
    let mut t = *tok;
    if i.enable {
        for q in 0..4 {
            t[q] = t[q] - o.pop[q] as u32 + o.push[q] as u32;
        }
    }
    if i.clear {
        t = [0; 4];
    }
    t
}

fn drive(uut: &mut Tokens, i: &Inputs) {
    uut.enable.next = i.enable;
    uut.clear.next = i.clear;
    uut.l_head.next = i.head[0];
    uut.c_head.next = i.head[1];
    uut.s_head.next = i.head[2];
    uut.l_deps.next = (i.deps[0] as u64).into();
    uut.c_deps.next = (i.deps[1] as u64).into();
    uut.s_deps.next = (i.deps[2] as u64).into();
    uut.l_active.next = i.active[0];
    uut.c_active.next = i.active[1];
    uut.s_active.next = i.active[2];
    uut.l_done.next = i.done[0];
    uut.c_done.next = i.done[1];
    uut.s_done.next = i.done[2];
    uut.l_job.next = (i.job[0] as u64).into();
    uut.c_job.next = (i.job[1] as u64).into();
    uut.s_job.next = (i.job[2] as u64).into();
}

fn observed(uut: &Tokens) -> Outputs {
    Outputs {
        ready: [uut.l_ready.val(), uut.c_ready.val(), uut.s_ready.val()],
        issue: [uut.l_issue.val(), uut.c_issue.val(), uut.s_issue.val()],
        stall: [uut.l_stall.val(), uut.c_stall.val(), uut.s_stall.val()],
        pop: [
            uut.pop_lc.val(),
            uut.pop_cl.val(),
            uut.pop_cs.val(),
            uut.pop_sc.val(),
        ],
        push: [
            uut.push_lc.val(),
            uut.push_cl.val(),
            uut.push_cs.val(),
            uut.push_sc.val(),
        ],
        over: [
            uut.over_lc.val(),
            uut.over_cl.val(),
            uut.over_cs.val(),
            uut.over_sc.val(),
        ],
        count: [
            uut.count_lc.val().to_u32(),
            uut.count_cl.val().to_u32(),
            uut.count_cs.val().to_u32(),
            uut.count_sc.val().to_u32(),
        ],
    }
}

/// The unit that signals counter `q` (`TokenQueue::ALL` order) and the flag.
const PRODUCER: [(usize, u8); 4] = [(0, 0x8), (1, 0x4), (1, 0x8), (2, 0x4)];

/// Random inputs as the top drives them: a job completes only while active.
/// In a `pump` phase for counter `q` no head issues and only `q`'s producer
/// completes, signalling only `q`, so `q` climbs to 255 and overflows.
fn random_inputs(rng: &mut Rng, pump: Option<usize>) -> Inputs {
    let mut i = Inputs {
        enable: rng.chance(85),
        clear: pump.is_none() && rng.chance(1),
        ..Default::default()
    };
    for k in 0..3 {
        i.head[k] = rng.chance(70);
        i.deps[k] = rng.below(16) as u8;
        i.active[k] = rng.chance(50);
        i.done[k] = i.active[k] && rng.chance(40);
        i.job[k] = rng.below(16) as u8;
    }
    if let Some(q) = pump {
        let (unit, flag) = PRODUCER[q];
        i.head = [false; 3];
        i.done = [false; 3];
        i.active[unit] = true;
        i.done[unit] = rng.chance(90);
        i.job[unit] = flag;
    }
    i
}

#[test]
fn random_cycles_match_the_rules() {
    let mut uut = Tokens::default();
    uut.connect_all();
    settle(&mut uut);
    let mut rng = Rng(0x7031_2A55_0C0F_FEE1);
    let mut tok = [0u32; 4];
    let mut seen_over = [0u32; 4];
    let mut seen_issue = [0u32; 3];
    for cycle in 0..16000 {
        // Phases of ordinary traffic, and of pushes onto one counter (to 255).
        let phase = cycle / 1000;
        let pump = (phase % 2 == 1).then_some((phase / 2) % 4);
        let mut i = random_inputs(&mut rng, pump);
        let want = expected(&tok, &i);
        if want.over.iter().any(|&b| b) {
            // The top halts on an overflow: model that as a reset now and then.
            i.enable = false;
            i.clear = rng.chance(20);
        }
        drive(&mut uut, &i);
        settle(&mut uut);
        let got = observed(&uut);
        assert_eq!(got, want, "cycle {cycle}, inputs {i:?}, counters {tok:?}");
        for q in 0..4 {
            seen_over[q] += want.over[q] as u32;
        }
        for k in 0..3 {
            seen_issue[k] += want.issue[k] as u32;
        }
        tok = next_state(&tok, &i, &want);
        edge(&mut uut);
        assert!(tok.iter().all(|&t| t <= TOKEN_MAX), "{tok:?}");
    }
    assert!(
        seen_over.iter().all(|&n| n > 0) && seen_issue.iter().all(|&n| n > 100),
        "every counter overflows and every unit issues: {seen_over:?} {seen_issue:?}"
    );
}

#[test]
fn verilog_lints_clean() {
    let mut uut = Tokens::default();
    uut.connect_all();
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "tokens") {
        panic!("verilator lint failed: {log}");
    }
}
