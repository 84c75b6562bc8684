//! The compute unit's descriptor control `Ctl` (`hw/src/compute/ctl.rs`) in
//! rust-hdl's simulator against the latency rules C1-C3 (`latency_with`,
//! which `hw/tests/compute.rs` checks against the model), the reciprocal
//! constants of its ceiling division against integer division, and its
//! generated Verilog: lint, and (Verilator installed) the same outputs as
//! the simulation on random stimulus with extreme descriptor fields.

mod common;
use common::{Clocked, Rng};

use npukit_hw::compute::ctl::{Ctl, Recip};
use npukit_hw::compute::{bytes_to_bits, latency_with, ComputeParams};
use npukit_sim::Dataflow;
use rust_hdl::prelude::*;

impl Clocked for Ctl {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

fn params(rows: u32, cols: u32, os: bool, db: bool) -> ComputeParams {
    ComputeParams {
        rows,
        cols,
        spad_bytes: 256,
        acc_bytes: 256,
        beat_bytes: 8,
        dataflow: if os {
            Dataflow::OutputStationary
        } else {
            Dataflow::WeightStationary
        },
        weight_double_buffer: db,
    }
}

/// Shapes: the checked-in ones, non-square, not powers of two, the limits.
fn shapes() -> Vec<ComputeParams> {
    let mut v = Vec::new();
    for (r, c) in [
        (4, 4),
        (8, 8),
        (16, 16),
        (3, 5),
        (5, 2),
        (7, 3),
        (1, 1),
        (256, 256),
        (255, 3),
    ] {
        v.push(params(r, c, false, false));
        v.push(params(r, c, true, false));
        v.push(params(r, c, false, true));
    }
    v
}

fn new_ctl(p: &ComputeParams) -> Ctl {
    let mut u = Ctl::new(
        p.rows,
        p.cols,
        p.dataflow == Dataflow::OutputStationary,
        p.weight_double_buffer,
    );
    u.connect_all();
    u
}

fn set_desc(u: &mut Ctl, d: &[u32; 8]) {
    let b: Vec<u8> = d.iter().flat_map(|w| w.to_le_bytes()).collect();
    u.desc.next = bytes_to_bits::<256>(&b);
}

/// A 32-bit value biased towards the extremes of a 16-bit or 32-bit field.
fn field(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => 0xFFFF,
        3 => 0x1_0000,
        4 => 0xFFFF_FFFF,
        5 => 0xFFFF_FFFF - rng.below(600) as u32,
        6 => 0xFFFF_0000 | rng.below(0x1_0000) as u32,
        7 => rng.below(40) as u32,
        _ => rng.next() as u32,
    }
}

/// A random descriptor: every opcode (compute ones mostly), word 4 (the
/// latency's fields) at the extremes, random other words.
fn random_desc(rng: &mut Rng) -> [u32; 8] {
    let mut d = [0u32; 8];
    for w in d.iter_mut() {
        *w = rng.next() as u32;
    }
    let op = match rng.below(10) {
        0 => rng.below(256) as u32,
        n => 3 + (n as u32 % 4),
    };
    d[0] = (d[0] & !0xFF) | op;
    d[4] = field(rng);
    d
}

/// A small descriptor (latency at most a few hundred cycles).
fn small_desc(rng: &mut Rng) -> [u32; 8] {
    let mut d = random_desc(rng);
    d[4] = match d[0] & 0xFF {
        3 => rng.below(40) as u32,
        4 => (rng.below(8) as u32) | ((rng.below(40) as u32) << 16),
        _ => rng.below(200) as u32,
    };
    d
}

#[test]
fn reciprocal_ceiling_division_is_exact() {
    let mut rng = Rng(0xD1D1);
    for d in (1..=256u32).chain([257, 1000, 4097, 65535, 65536]) {
        let k = Recip::new(d);
        assert!(k.m2 <= 1, "divisor {d}: m needs more than 33 bits");
        let mut xs: Vec<u32> = vec![0, 1, 2, d - 1, d, d + 1, 0xFFFF, 0x1_0000, u32::MAX];
        for j in 1..=4u64 {
            for q in [
                u32::MAX as u64 / d as u64,
                (u32::MAX as u64 / d as u64) / j,
                0xFFFF / d as u64 + j,
            ] {
                let x = q * d as u64;
                for e in [x.wrapping_sub(1), x, x + 1] {
                    if e <= u32::MAX as u64 {
                        xs.push(e as u32);
                    }
                }
            }
        }
        xs.extend((0..2000).map(|_| rng.next() as u32));
        xs.extend((0..500).map(|_| rng.below(1 << 17) as u32));
        for x in xs {
            assert_eq!(k.ceil_div(x), x.div_ceil(d), "ceil({x} / {d})");
        }
    }
}

/// Issues `d` (with stream offset `so`) into an idle unit and returns the
/// latency register after the issue edge.
fn issue_one(u: &mut Ctl, d: &[u32; 8], so: u32) -> u32 {
    u.enable.next = true;
    u.clear.next = false;
    u.issue.next = true;
    u.iso.next = (so as u64).into();
    set_desc(u, d);
    common::settle(u);
    assert!(u.free.val());
    common::edge(u);
    u.issue.next = false;
    common::settle(u);
    u.lat.val().to_u32()
}

#[test]
fn latency_at_issue_follows_the_rules() {
    let mut rng = Rng(0x1A7);
    for p in shapes() {
        let mut u = new_ctl(&p);
        for _ in 0..120 {
            let d = random_desc(&mut rng);
            let so = if p.weight_double_buffer {
                1 + rng.below(p.rows as u64) as u32
            } else {
                p.rows
            };
            u.clear.next = true;
            common::edge(&mut u);
            u.clear.next = false;
            let lat = issue_one(&mut u, &d, so);
            assert_eq!(lat, latency_with(&p, &d, so), "{p:?} {d:x?} so {so}");
            assert!(u.busy.val());
            assert_eq!(u.cnt.val().to_u32(), 1);
            assert_eq!(crate_words(&u.d.val()), d, "descriptor register");
        }
    }
}

fn crate_words(b: &Bits<256>) -> [u32; 8] {
    npukit_hw::compute::desc_words(b)
}

/// Random small descriptors issued back to back (also in the completion
/// cycle) with frozen edges, issues while busy and clears: `done` exactly
/// in the cycle `latency` enabled edges after the issue, `busy` in between.
#[test]
fn done_exactly_at_issue_plus_latency() {
    let mut rng = Rng(0xD0E);
    for p in [
        params(4, 4, false, false),
        params(3, 5, true, false),
        params(5, 2, false, true),
        params(7, 3, true, false),
    ] {
        let mut u = new_ctl(&p);
        // The expected state: (edges left to the completion, latency) of the
        // descriptor held.
        let mut held: Option<u32> = None;
        let mut issued = 0;
        for _ in 0..4000 {
            let en = !rng.chance(10);
            let clr = rng.chance(1);
            let iss = rng.chance(40);
            let d = small_desc(&mut rng);
            let so = if p.weight_double_buffer {
                1 + rng.below(p.rows as u64) as u32
            } else {
                p.rows
            };
            u.enable.next = en;
            u.clear.next = clr;
            u.issue.next = iss;
            u.iso.next = (so as u64).into();
            set_desc(&mut u, &d);
            common::settle(&mut u);
            let done = held == Some(0);
            assert_eq!(u.busy.val(), held.is_some(), "{p:?}");
            assert_eq!(u.done.val(), done, "{p:?} left {held:?}");
            assert_eq!(u.free.val(), held.is_none() || done);
            common::edge(&mut u);
            if clr {
                held = None;
            } else if en {
                held = match held {
                    Some(n) if n > 0 => Some(n - 1),
                    _ => None,
                };
                if iss && (held.is_none() || done) {
                    // cnt = 1 after the edge: the completion is lat - 1
                    // enabled edges away.
                    let lat = latency_with(&p, &d, so);
                    assert!(lat >= 1);
                    held = Some(lat - 1);
                    issued += 1;
                }
            }
        }
        assert!(issued > 100, "{issued} issues");
    }
}

#[test]
fn verilog_lints_clean() {
    for p in [
        params(4, 4, false, false),
        params(4, 4, true, false),
        params(3, 5, false, true),
    ] {
        let u = new_ctl(&p);
        let v = generate_verilog(&u);
        if let Err(log) = common::verilator_lint(&v, "compute_ctl") {
            panic!("verilator lint ({p:?}): {log}");
        }
    }
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
    unsigned en, clr, iss, iso, d[8], busy, done, fr, cnt, lat;
    if (fscanf(f, "%x %x %x %x", &en, &clr, &iss, &iso) != 4) break;
    for (int i = 0; i < 8; i++) if (fscanf(f, "%x", &d[i]) != 1) return 2;
    if (fscanf(f, "%x %x %x %x %x", &busy, &done, &fr, &cnt, &lat) != 5) return 2;
    t->enable = en; t->clear = clr; t->issue = iss; t->iso = iso;
    for (int i = 0; i < 8; i++) t->desc[i] = d[i];
    t->eval();
    if (t->busy != busy || t->done != done || t->free != fr || t->cnt != cnt || t->lat != lat) {
      printf("cycle %lu: busy/done/free/cnt/lat verilog %u/%u/%u/%x/%x simulation %u/%u/%u/%x/%x\n",
             cyc, t->busy, t->done, t->free, t->cnt, t->lat, busy, done, fr, cnt, lat);
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

/// Random stimulus (extreme word 4, any opcode, frozen edges, clears)
/// through the simulation, replayed on the Verilated Verilog: the same
/// outputs in every cycle (so the same latency for every issued descriptor).
#[test]
#[allow(clippy::unwrap_used)]
fn verilog_matches_simulation() {
    for (n, p) in [
        params(4, 4, false, false),
        params(3, 5, true, false),
        params(7, 3, false, true),
        params(255, 3, true, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut u = new_ctl(&p);
        let v = generate_verilog(&u);
        let dir = common::scratch("compute-ctl", &n.to_string());
        std::fs::write(dir.join("ctl.v"), &v).unwrap();
        std::fs::write(dir.join("tb.cpp"), HARNESS).unwrap();
        let mut rng = Rng(0xC7_0000 + n as u64);
        let mut trace = String::new();
        let cycles = 3000;
        for _ in 0..cycles {
            let en = !rng.chance(10);
            let clr = rng.chance(2);
            // Issue often: most latencies are huge, clears end them.
            let iss = rng.chance(50);
            let d = if rng.chance(50) {
                random_desc(&mut rng)
            } else {
                small_desc(&mut rng)
            };
            let iso = field(&mut rng);
            u.enable.next = en;
            u.clear.next = clr;
            u.issue.next = iss;
            u.iso.next = (iso as u64).into();
            set_desc(&mut u, &d);
            common::settle(&mut u);
            let words: Vec<String> = d.iter().map(|w| format!("{w:x}")).collect();
            trace.push_str(&format!(
                "{:x} {:x} {:x} {:x} {} {:x} {:x} {:x} {:x} {:x}\n",
                en as u8,
                clr as u8,
                iss as u8,
                iso,
                words.join(" "),
                u.busy.val() as u8,
                u.done.val() as u8,
                u.free.val() as u8,
                u.cnt.val().to_u32(),
                u.lat.val().to_u32()
            ));
            common::edge(&mut u);
        }
        std::fs::write(dir.join("trace.txt"), &trace).unwrap();
        common::replay_on_verilator(
            &dir,
            "ctl.v",
            cycles,
            &format!("{p:?}: Verilog and simulation"),
        );
    }
}
