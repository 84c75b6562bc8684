//! The schedule overlaps loads with compute, and its tokens balance.

mod common;

use common::*;
use npukit_abi::desc::{deps, Op};
use npukit_abi::Opcode;
use npukit_compiler::{compile, load_image, parse_workload};
use npukit_sim::run::run_program;
use npukit_sim::{Engine, Event, ModelDevice, NpuConfig, VecMemory};

/// Issue and completion cycles per descriptor index.
fn timeline(events: &[(u64, Event)], n: usize) -> (Vec<Option<u64>>, Vec<Option<u64>>) {
    let mut issue = vec![None; n];
    let mut done = vec![None; n];
    for (cy, e) in events {
        match e {
            Event::Issue { index, .. } => issue[*index as usize] = Some(*cy),
            Event::Complete { index, .. } => done[*index as usize] = Some(*cy),
            _ => {}
        }
    }
    (issue, done)
}

#[test]
fn second_tile_loads_while_the_first_matmul_runs() {
    let w = parse_workload(&gemm_json("overlap", 64, 128, 64, None, 1)).unwrap();
    let cfg = NpuConfig::default();
    let c = compile(&w, &cfg).unwrap();
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut mem).unwrap();
    let mut dev = ModelDevice::with_sink(&cfg, Vec::new());
    run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        10_000_000,
    )
    .unwrap();
    let events = dev.into_sink();
    let descs = c.program.descs();
    let (issue, done) = timeline(&events, descs.len());

    // The first MATMUL waits for the LOAD that completes its operands (the
    // first load signalling the compute unit). Every LOAD after that one in the
    // ring belongs to a later tile; the first of them must start before the
    // first MATMUL completes.
    let first_ready = (0..descs.len())
        .find(|&i| descs[i].opcode() == Opcode::Load && descs[i].deps & deps::SIGNAL_NEXT != 0)
        .unwrap();
    let first_mm = (0..descs.len())
        .find(|&i| descs[i].opcode() == Opcode::Matmul)
        .unwrap();
    let second = (first_ready + 1..descs.len())
        .find(|&i| descs[i].opcode() == Opcode::Load)
        .unwrap();
    assert!(
        second < first_mm,
        "the next tile's LOAD is placed ahead of the MATMULs"
    );
    let (mm_issue, mm_done) = (issue[first_mm].unwrap(), done[first_mm].unwrap());
    let second_issue = issue[second].unwrap();
    assert!(
        second_issue < mm_done,
        "the second tile's LOAD (descriptor {second}) issued at {second_issue}, \
         after the first MATMUL (descriptor {first_mm}) completed at {mm_done}"
    );
    // And it is still loading while the MATMUL runs: true overlap.
    assert!(done[second].unwrap() > mm_issue);
    // The weights it brings are used by a later MATMUL.
    let Op::Load(ld) = descs[second].op else {
        unreachable!()
    };
    let later_user = descs[first_mm + 1..].iter().any(|d| match d.op {
        Op::Matmul(m) => {
            let (lo, hi) = (ld.local, ld.local + ld.rows as u32 * ld.row_bytes as u32);
            (lo..hi).contains(&m.w) || (lo..hi).contains(&m.a)
        }
        _ => false,
    });
    assert!(later_user);

    // Overall the load unit is busy during a good share of the compute time.
    let mut busy = [vec![false; 0], vec![false; 0]];
    let end = events.last().unwrap().0 as usize + 1;
    for b in busy.iter_mut() {
        b.resize(end, false);
    }
    for (i, d) in descs.iter().enumerate() {
        let u = match d.opcode().unit() {
            Some(npukit_abi::Unit::Load) => 0,
            Some(npukit_abi::Unit::Compute) => 1,
            _ => continue,
        };
        let span = issue[i].unwrap() as usize..done[i].unwrap() as usize;
        busy[u][span].iter_mut().for_each(|b| *b = true);
    }
    let both = (0..end).filter(|&t| busy[0][t] && busy[1][t]).count();
    let compute = busy[1].iter().filter(|&&b| b).count();
    assert!(
        both * 4 > compute,
        "loads overlap only {both} of {compute} compute cycles"
    );
}

#[test]
fn every_unit_event_is_token_ordered() {
    // Each WAIT is served by its SIGNAL: replay the events and check that no
    // token counter goes negative and all end at zero.
    let w = parse_workload(&mlp_json("tokens", 40, &[70, 50, 20], true, -3, 4)).unwrap();
    let cfg = cfg(8, 4, 2048, 1024);
    let c = compile(&w, &cfg).unwrap();
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut mem).unwrap();
    let mut dev = ModelDevice::with_sink(&cfg, Vec::new());
    run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        10_000_000,
    )
    .unwrap();
    let mut count = [0i64; 4];
    let mut pushes = 0;
    for (_, e) in dev.sink() {
        match e {
            Event::TokenPush { queue } => {
                count[*queue as usize] += 1;
                pushes += 1;
            }
            Event::TokenPop { queue } => {
                count[*queue as usize] -= 1;
                assert!(count[*queue as usize] >= 0);
            }
            _ => {}
        }
    }
    assert_eq!(count, [0; 4]);
    assert!(pushes > 10);
    // Relays (store -> compute -> load) are the only MAX descriptors.
    let maxes = c
        .program
        .descs()
        .iter()
        .filter(|d| matches!(d.op, Op::Max(_)))
        .count();
    assert_eq!(maxes, c.relays);
    // Every compute descriptor ran on the compute unit, in ring order.
    let order: Vec<u32> = dev
        .sink()
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Issue {
                unit: Engine::Compute,
                index,
                ..
            } => Some(*index),
            _ => None,
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]));
}
