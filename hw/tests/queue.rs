//! `UnitQueue` (one unit's descriptor queue) against a `VecDeque` of
//! `queue_depth` entries, as the model keeps it: dispatch pushes only with
//! room at the start of the cycle (F2), the unit pops only a valid head (U1),
//! both in one cycle allowed, nothing changes at an edge without `enable`,
//! `clear` empties. Cycle by cycle under rust-hdl's simulator on random
//! stimulus, for several depths; and its Verilog alone under Verilator's
//! linter.

#![allow(clippy::unwrap_used)]

mod common;
use std::collections::VecDeque;

use common::{edge, settle, Clocked, Rng};
use npukit_hw::queue::UnitQueue;
use rust_hdl::prelude::*;

impl Clocked for UnitQueue {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

fn desc_bits(d: &[u64; 4]) -> Bits<256> {
    d.iter().rev().fold(Bits::<256>::default(), |b, &w| {
        (b << 64) | Bits::<256>::from(w)
    })
}

fn desc_words(b: Bits<256>) -> [u64; 4] {
    std::array::from_fn(|i| b.get_bits::<64>(64 * i).to_u64())
}

fn run(depth: u32, cycles: u32, seed: u64) {
    let mut uut = UnitQueue::new(depth).unwrap();
    uut.connect_all();
    settle(&mut uut);
    let mut rng = Rng(seed);
    let mut q: VecDeque<(u32, [u64; 4])> = VecDeque::new();
    let (mut full, mut both) = (0u32, 0u32);
    for cycle in 0..cycles {
        // What the block says from the state at the start of the cycle.
        let ctx = format!("depth {depth} cycle {cycle}, queue {:?}", q.len());
        assert_eq!(uut.valid.val(), !q.is_empty(), "valid, {ctx}");
        assert_eq!(uut.room.val(), q.len() < depth as usize, "room, {ctx}");
        assert_eq!(uut.count.val().to_u64(), q.len() as u64, "count, {ctx}");
        if let Some(&(i, d)) = q.front() {
            assert_eq!(uut.head_index.val().to_u64(), i as u64, "head index, {ctx}");
            assert_eq!(desc_words(uut.head_desc.val()), d, "head desc, {ctx}");
        }
        full += (q.len() == depth as usize) as u32;
        // Phases that fill and that drain the queue.
        let fill = (cycle / 40) % 2 == 0;
        let push = q.len() < depth as usize && rng.chance(if fill { 80 } else { 30 });
        let pop = !q.is_empty() && rng.chance(if fill { 30 } else { 80 });
        let enable = rng.chance(90);
        let clear = !enable && rng.chance(5);
        let index = rng.next() as u32;
        let d: [u64; 4] = std::array::from_fn(|_| rng.next());
        uut.enable.next = enable;
        uut.clear.next = clear;
        uut.push.next = push;
        uut.pop.next = pop;
        uut.push_index.next = (index as u64).into();
        uut.push_desc.next = desc_bits(&d);
        settle(&mut uut);
        edge(&mut uut);
        if enable {
            if pop {
                q.pop_front();
            }
            if push {
                q.push_back((index, d));
            }
            both += (push && pop) as u32;
        }
        if clear {
            q.clear();
        }
    }
    // (a queue of one entry never pushes and pops in one cycle: a push needs
    // room at the start of the cycle, a pop a head)
    assert!(
        full > 10 && (depth == 1 || both > 10),
        "depth {depth}: full {full}, push+pop {both}"
    );
}

#[test]
fn random_pushes_and_pops_keep_fifo_order() {
    for (depth, seed) in [(1, 1), (2, 2), (3, 3), (8, 4), (16, 5)] {
        run(depth, 3000, 0x9E37_79B9_7F4A_7C15 ^ seed);
    }
}

#[test]
fn bad_depths_are_refused() {
    assert!(UnitQueue::new(0).is_err());
    assert!(UnitQueue::new(257).is_err());
    assert!(UnitQueue::new(256).is_ok());
}

#[test]
fn verilog_lints_clean() {
    let mut uut = UnitQueue::new(8).unwrap();
    uut.connect_all();
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "queue") {
        panic!("verilator lint failed: {log}");
    }
}
