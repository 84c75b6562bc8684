//! The generated Verilog of `Compute`: Verilator lint, and (when Verilator is
//! installed) lockstep equivalence with the rust-hdl simulation on random
//! stimulus.

mod common;
use common::{hex_words, Rng};

use npukit_hw::compute::{Compute, ComputeParams};
use npukit_sim::Dataflow;
use rust_hdl::prelude::*;

fn params_4x4() -> ComputeParams {
    ComputeParams {
        rows: 4,
        cols: 4,
        spad_bytes: 16384,
        acc_bytes: 4096,
        beat_bytes: 32,
        dataflow: Dataflow::WeightStationary,
        weight_double_buffer: false,
    }
}

#[test]
fn verilog_4x4_lints_clean() {
    let mut u = Compute::new(params_4x4()).unwrap();
    u.connect_all();
    let v = generate_verilog(&u);
    if let Err(log) = common::verilator_lint(&v, "compute_4x4") {
        panic!("verilator lint: {log}");
    }
    // One module per PE and per activation lane (with its multiplier), as
    // documented.
    for i in 0..16 {
        assert!(v.contains(&format!("module top$pe${i}(")), "PE {i}");
    }
    for l in 0..4 {
        assert!(v.contains(&format!("module top$lane${l}(")), "lane {l}");
        assert!(
            v.contains(&format!("module top$lane${l}$mul(")),
            "multiplier {l}"
        );
    }
}

/// A random descriptor: compute opcodes with small fields, addresses that may
/// run past the memories, random flags (PER_CHANNEL often, with a table
/// address in word 7), shifts beyond 62, random reserved bits
/// (the Verilog and the simulation must agree on any input).
fn random_desc(rng: &mut Rng) -> [u32; 8] {
    let mut d = [0u32; 8];
    let op = match rng.below(10) {
        0 => rng.below(8) as u32,
        n => 3 + (n as u32 % 4),
    };
    d[0] = op | ((rng.below(16) as u32) << 8) | ((rng.below(16) as u32) << 12);
    if rng.chance(10) {
        d[0] |= (rng.next() as u32) << 16;
    }
    for w in d.iter_mut().skip(1).take(3) {
        *w = rng.below(300) as u32;
    }
    d[4] = match op {
        3 => (1 + rng.below(5) as u32) | ((rng.below(6) as u32) << 16),
        4 => (1 + rng.below(3) as u32) | ((1 + rng.below(10) as u32) << 16),
        _ => 1 + rng.below(13) as u32,
    };
    d[5] = rng.next() as u32;
    if op == 3 {
        d[5] = (d[5] & 0xFFFF_0000) | rng.below(6) as u32;
    }
    d[6] = rng.next() as u32;
    if op == 4 {
        let shift = match rng.below(4) {
            0 => 0,
            1 => 62,
            2 => 60 + rng.below(200) as u32,
            _ => rng.below(63) as u32,
        };
        d[6] = (d[6] & !0xFF) | (shift & 0xFF);
    }
    if rng.chance(20) {
        d[7] = rng.next() as u32;
    }
    if op == 4 && rng.chance(50) {
        // PER_CHANNEL's table, mostly inside the accumulators (whose random
        // bytes hold shifts of every value).
        d[0] |= 1 << 14;
        d[7] = rng.below(300) as u32;
    }
    d
}

const HARNESS: &str = r#"
#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
int main(int argc, char** argv) {
  Verilated::commandArgs(argc, argv);
  Vtop* t = new Vtop;
  FILE* f = fopen(argv[1], "r");
  if (!f) { printf("no trace\n"); return 2; }
  t->clock = 0;
  t->eval();
  unsigned long cyc = 0;
  for (;;) {
    unsigned en, clr, iss, hr, d[8], wr, wracc, wraddr, wrlen, wd[16], rdacc, rdaddr, busy, done, rd[16];
    if (fscanf(f, "%x %x %x %x", &en, &clr, &iss, &hr) != 4) break;
    for (int i = 0; i < 8; i++) if (fscanf(f, "%x", &d[i]) != 1) return 2;
    if (fscanf(f, "%x %x %x %x", &wr, &wracc, &wraddr, &wrlen) != 4) return 2;
    for (int i = 0; i < 16; i++) if (fscanf(f, "%x", &wd[i]) != 1) return 2;
    if (fscanf(f, "%x %x %x %x", &rdacc, &rdaddr, &busy, &done) != 4) return 2;
    for (int i = 0; i < 16; i++) if (fscanf(f, "%x", &rd[i]) != 1) return 2;
    t->enable = en; t->clear = clr; t->issue = iss; t->head_ready = hr;
    for (int i = 0; i < 8; i++) t->desc[i] = d[i];
    t->dma_wr = wr; t->dma_wr_acc = wracc; t->dma_wr_addr = wraddr; t->dma_wr_len = wrlen;
    for (int i = 0; i < 16; i++) t->dma_wr_data[i] = wd[i];
    t->dma_rd_acc = rdacc; t->dma_rd_addr = rdaddr;
    t->eval();
    if (t->busy != busy || t->done != done) {
      printf("cycle %lu: busy/done verilog %u/%u simulation %u/%u\n", cyc, t->busy, t->done, busy, done);
      return 1;
    }
    for (int i = 0; i < 16; i++) if (t->dma_rd_data[i] != rd[i]) {
      printf("cycle %lu: dma_rd_data word %d (acc %u addr %u) verilog %08x simulation %08x\n",
             cyc, i, rdacc, rdaddr, t->dma_rd_data[i], rd[i]);
      return 1;
    }
    t->clock = 1; t->eval();
    t->clock = 0; t->eval();
    cyc++;
  }
  printf("ok %lu cycles\n", cyc);
  delete t;
  return 0;
}
"#;

#[test]
fn verilog_matches_simulation_4x4() {
    equivalence(
        "4x4",
        ComputeParams {
            rows: 4,
            cols: 4,
            spad_bytes: 256,
            acc_bytes: 256,
            beat_bytes: 32,
            dataflow: Dataflow::WeightStationary,
            weight_double_buffer: false,
        },
        0xC0FF_EE11,
    );
}

/// The output-stationary array (rule C1c), square and not.
#[test]
fn verilog_matches_simulation_output_stationary() {
    let p = ComputeParams {
        dataflow: Dataflow::OutputStationary,
        ..params_4x4()
    };
    equivalence(
        "os4x4",
        ComputeParams {
            spad_bytes: 256,
            acc_bytes: 256,
            ..p
        },
        0x05_4444,
    );
    let p = ComputeParams {
        rows: 3,
        cols: 5,
        spad_bytes: 200,
        acc_bytes: 124,
        beat_bytes: 8,
        ..p
    };
    equivalence("os3x5", p, 0x05_0035);
    equivalence(
        "os5x2",
        ComputeParams {
            rows: 5,
            cols: 2,
            ..p
        },
        0x05_0052,
    );
}

/// The double-buffered weight-stationary array (rule C1b), with the head
/// presented at random.
#[test]
fn verilog_matches_simulation_weight_double_buffer() {
    let p = ComputeParams {
        weight_double_buffer: true,
        spad_bytes: 256,
        acc_bytes: 256,
        ..params_4x4()
    };
    equivalence("db4x4", p, 0xDB_4444);
    let p = ComputeParams {
        rows: 3,
        cols: 5,
        spad_bytes: 200,
        acc_bytes: 124,
        beat_bytes: 8,
        ..p
    };
    equivalence("db3x5", p, 0xDB_0035);
}

#[test]
fn verilog_other_dataflows_lint_clean() {
    for (name, p) in [
        (
            "compute_os",
            ComputeParams {
                dataflow: Dataflow::OutputStationary,
                ..params_4x4()
            },
        ),
        (
            "compute_db",
            ComputeParams {
                weight_double_buffer: true,
                ..params_4x4()
            },
        ),
    ] {
        let mut u = Compute::new(p).unwrap();
        u.connect_all();
        let v = generate_verilog(&u);
        if let Err(log) = common::verilator_lint(&v, name) {
            panic!("verilator lint ({name}): {log}");
        }
    }
}

/// A non-square array, odd memory sizes, the narrowest beat.
#[test]
fn verilog_matches_simulation_3x5() {
    equivalence(
        "3x5",
        ComputeParams {
            rows: 3,
            cols: 5,
            spad_bytes: 200,
            acc_bytes: 124,
            beat_bytes: 8,
            dataflow: Dataflow::WeightStationary,
            weight_double_buffer: false,
        },
        0x5EED_0003,
    );
}

/// Random stimulus through the rust-hdl simulation (random descriptors
/// issued when free and sometimes when busy, DMA writes, frozen edges, clears), recorded with its outputs,
/// then replayed on the Verilated Verilog, which must produce the same outputs
/// in every cycle (the DMA read port scans the memories all along).
#[allow(clippy::unwrap_used)]
fn equivalence(name: &str, p: ComputeParams, seed: u64) {
    let mut u = Compute::new(p).unwrap();
    u.connect_all();
    let v = generate_verilog(&u);
    let dir = common::scratch("compute", &format!("equiv-{name}"));
    std::fs::write(dir.join("compute.v"), &v).unwrap();
    std::fs::write(dir.join("tb.cpp"), HARNESS).unwrap();

    let mut rng = Rng(seed);
    let mut trace = String::new();
    let settle = |u: &mut Compute| {
        for _ in 0..1000 {
            u.update_all();
            if !u.has_changed() {
                return;
            }
        }
        panic!("no convergence");
    };
    settle(&mut u);
    let mut rd_addr = 0u32;
    for _ in 0..6000 {
        let en = !rng.chance(5);
        let clr = rng.chance(1);
        let iss = rng.chance(if u.busy.val() && !u.done.val() { 5 } else { 40 });
        // The head is ready whenever the top would issue it, and at random
        // otherwise (the weight loader of rule C1b may start on it).
        let hr = iss || rng.chance(30);
        let d = random_desc(&mut rng);
        let wr = rng.chance(25);
        let wracc = rng.chance(50);
        let wraddr = rng.below(290) as u32;
        let wrlen = 1 + rng.below(64) as u32;
        let wd: Vec<u8> = (0..64).map(|_| rng.next() as u8).collect();
        let rdacc = rng.chance(50);
        rd_addr = (rd_addr + 29) % 270;
        u.enable.next = en;
        u.clear.next = clr;
        u.issue.next = iss;
        u.head_ready.next = hr;
        let db: Vec<u8> = d.iter().flat_map(|w| w.to_le_bytes()).collect();
        u.desc.next = npukit_hw::compute::bytes_to_bits::<256>(&db);
        u.dma_wr.next = wr;
        u.dma_wr_acc.next = wracc;
        u.dma_wr_addr.next = (wraddr as u64).into();
        u.dma_wr_len.next = (wrlen as u64).into();
        u.dma_wr_data.next = npukit_hw::compute::bytes_to_bits::<512>(&wd);
        u.dma_rd_acc.next = rdacc;
        u.dma_rd_addr.next = (rd_addr as u64).into();
        settle(&mut u);
        let rd = npukit_hw::compute::bits_to_bytes(&u.dma_rd_data.val());
        trace.push_str(&format!(
            "{:x} {:x} {:x} {:x} {} {:x} {:x} {:x} {:x} {} {:x} {:x} {:x} {:x} {}\n",
            en as u8,
            clr as u8,
            iss as u8,
            hr as u8,
            hex_words(&db),
            wr as u8,
            wracc as u8,
            wraddr,
            wrlen,
            hex_words(&wd),
            rdacc as u8,
            rd_addr,
            u.busy.val() as u8,
            u.done.val() as u8,
            hex_words(&rd)
        ));
        u.clock.next = true.into();
        settle(&mut u);
        u.clock.next = false.into();
        settle(&mut u);
    }
    std::fs::write(dir.join("trace.txt"), &trace).unwrap();
    common::replay_on_verilator(&dir, "compute.v", 6000, "Verilog and simulation");
}
