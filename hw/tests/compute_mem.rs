//! The byte memory widget ([`ByteMem`], the compute unit's scratchpad and
//! accumulator memory): random reads, masked writes on several ports and
//! clears against a `Vec<u8>` reference, in rust-hdl's simulator and (when
//! Verilator is installed) on its generated Verilog; its lint; the shapes it
//! refuses.
#![allow(clippy::unwrap_used)]

mod common;
use common::{hex_words, scratch, Rng};

use npukit_hw::compute::mem::{ByteMem, MEM_PORT_BYTES};
use npukit_hw::compute::{bits_to_bytes, bytes_to_bits};
use rust_hdl::prelude::*;

impl common::Clocked for ByteMem {
    fn clock(&mut self) -> &mut Signal<In, Clock> {
        &mut self.clock
    }
}

/// The reference: a plain byte vector.
struct Model {
    mem: Vec<u8>,
}

impl Model {
    fn read(&self, addr: u32, n: u32) -> Vec<u8> {
        let mut v: Vec<u8> = (0..n)
            .map(|i| {
                self.mem
                    .get(addr.wrapping_add(i) as usize)
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        v.resize(MEM_PORT_BYTES as usize, 0);
        v
    }

    /// One edge: `clear`, or the write ports in order (later ports win).
    fn edge(&mut self, clear: bool, writes: &[Write], widths: &[u32]) {
        if clear {
            self.mem.iter_mut().for_each(|b| *b = 0);
            return;
        }
        for (w, &m) in writes.iter().zip(widths) {
            for i in 0..m {
                if (w.mask >> i) & 1 == 1 {
                    if let Some(b) = self.mem.get_mut(w.addr.wrapping_add(i) as usize) {
                        *b = w.data[i as usize];
                    }
                }
            }
        }
    }
}

#[derive(Clone)]
struct Write {
    addr: u32,
    mask: u64,
    data: Vec<u8>,
}

/// One cycle of stimulus.
struct Step {
    clear: bool,
    reads: Vec<u32>,
    writes: Vec<Write>,
}

/// An address: mostly around the memory (inside, straddling its end, just
/// past it), sometimes near the top of the 32-bit space (sums wrap) or
/// anywhere.
fn addr(rng: &mut Rng, size: u32) -> u32 {
    match rng.below(10) {
        0 => u32::MAX - rng.below(70) as u32,
        1 => rng.next() as u32,
        2 => size.saturating_sub(rng.below(70) as u32),
        _ => rng.below(size as u64 + 8) as u32,
    }
}

fn random_step(rng: &mut Rng, size: u32, reads: usize, writes: usize) -> Step {
    Step {
        clear: rng.chance(2),
        reads: (0..reads).map(|_| addr(rng, size)).collect(),
        writes: (0..writes)
            .map(|_| Write {
                addr: addr(rng, size),
                mask: match rng.below(4) {
                    0 => 0,
                    1 => u64::MAX,
                    _ => rng.next(),
                },
                data: (0..64).map(|_| rng.next() as u8).collect(),
            })
            .collect(),
    }
}

/// Sets the memory's inputs for one step.
fn drive(u: &mut ByteMem, s: &Step) {
    u.clear.next = s.clear;
    for (k, &a) in s.reads.iter().enumerate() {
        u.rd_addr[k].next = (a as u64).into();
    }
    for (k, w) in s.writes.iter().enumerate() {
        u.wr_addr[k].next = (w.addr as u64).into();
        u.wr_mask[k].next = w.mask.into();
        u.wr_data[k].next = bytes_to_bits::<512>(&w.data);
    }
}

/// The shapes the tests run: (size, read widths, write widths).
const SHAPES: &[(u32, &[u32], &[u32])] = &[
    (300, &[1, 4, 64, 7, 64], &[64, 5, 1]),
    (64, &[64, 3], &[64, 64]),
    (1, &[2], &[2]),
];

#[test]
fn random_reads_and_masked_writes_match_a_byte_vector() {
    for (n, &(size, rw, ww)) in SHAPES.iter().enumerate() {
        let mut rng = Rng(0xB17E_0001 + n as u64);
        let mut u = ByteMem::new(size, rw, ww).unwrap();
        u.connect_all();
        common::settle(&mut u);
        let mut m = Model {
            mem: vec![0; size as usize],
        };
        for step in 0..600 {
            let s = random_step(&mut rng, size, rw.len(), ww.len());
            drive(&mut u, &s);
            common::settle(&mut u);
            for (k, &a) in s.reads.iter().enumerate() {
                assert_eq!(
                    bits_to_bytes(&u.rd_data[k].val()),
                    m.read(a, rw[k]),
                    "size {size} step {step}: read port {k} at {a:#x}"
                );
            }
            common::edge(&mut u);
            m.edge(s.clear, &s.writes, ww);
            assert_eq!(u.contents(), &m.mem[..], "size {size} step {step}");
        }
    }
}

#[test]
fn bad_shapes_are_refused() {
    for (size, r, w, want) in [
        (0u32, &[1u32][..], &[1u32][..], "size 0"),
        ((1 << 31) + 1, &[1], &[1], "size 2147483649"),
        (16, &[1, 0], &[1], "read port 1 is 0 bytes"),
        (16, &[1], &[65], "write port 0 is 65 bytes"),
    ] {
        let e = ByteMem::new(size, r, w).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn verilog_lints_clean() {
    for &(size, rw, ww) in SHAPES {
        let mut u = ByteMem::new(size, rw, ww).unwrap();
        u.connect_all();
        let v = generate_verilog(&u);
        if let Err(log) = common::verilator_lint(&v, &format!("bytemem_{size}")) {
            panic!("verilator lint: {log}");
        }
    }
}

/// A Verilator harness for this shape: reads one cycle per trace line
/// (clear, read addresses, write ports, the reference's read data), checks
/// the read ports before the edge, then clocks.
fn harness(reads: usize, writes: usize) -> String {
    // Verilator spells `$` in a port name as `__024`.
    let mut h = String::from(
        "#include \"Vtop.h\"\n#include \"verilated.h\"\n#include <cstdio>\n\
         int main(int argc, char** argv) {\n  Verilated::commandArgs(argc, argv);\n  Vtop* t = new Vtop;\n\
         FILE* f = fopen(argv[1], \"r\");\n  if (!f) return 2;\n  t->clock = 0; t->eval();\n\
         unsigned long cyc = 0;\n  for (;;) {\n    unsigned v, w[16];\n\
         if (fscanf(f, \"%x\", &v) != 1) break;\n    t->clear = v;\n",
    );
    for k in 0..reads {
        h.push_str(&format!(
            "    if (fscanf(f, \"%x\", &v) != 1) return 2;\n    t->rd_addr__024{k} = v;\n"
        ));
    }
    for k in 0..writes {
        h.push_str(&format!(
            "    if (fscanf(f, \"%x\", &v) != 1) return 2;\n    t->wr_addr__024{k} = v;\n\
             {{ unsigned lo, hi; if (fscanf(f, \"%x %x\", &lo, &hi) != 2) return 2;\n\
             t->wr_mask__024{k} = ((unsigned long long)hi << 32) | lo; }}\n\
             for (int i = 0; i < 16; i++) {{ if (fscanf(f, \"%x\", &w[i]) != 1) return 2; t->wr_data__024{k}[i] = w[i]; }}\n"
        ));
    }
    h.push_str("    t->eval();\n");
    for k in 0..reads {
        h.push_str(&format!(
            "    for (int i = 0; i < 16; i++) {{ if (fscanf(f, \"%x\", &w[i]) != 1) return 2;\n\
             if (t->rd_data__024{k}[i] != w[i]) {{ printf(\"cycle %lu: read port {k} word %d: verilog %08x reference %08x\\n\", cyc, i, t->rd_data__024{k}[i], w[i]); return 1; }} }}\n"
        ));
    }
    h.push_str(
        "    t->clock = 1; t->eval();\n    t->clock = 0; t->eval();\n    cyc++;\n  }\n\
         printf(\"ok %lu cycles\\n\", cyc);\n  delete t;\n  return 0;\n}\n",
    );
    h
}

/// The same random stimulus on the Verilated Verilog, checked against the
/// reference in every cycle.
#[test]
fn verilog_matches_a_byte_vector() {
    for (n, &(size, rw, ww)) in SHAPES.iter().enumerate() {
        let mut u = ByteMem::new(size, rw, ww).unwrap();
        u.connect_all();
        let dir = scratch("bytemem", &format!("v{n}"));
        std::fs::write(dir.join("mem.v"), generate_verilog(&u)).unwrap();
        std::fs::write(dir.join("tb.cpp"), harness(rw.len(), ww.len())).unwrap();
        let mut rng = Rng(0xB17E_1001 + n as u64);
        let mut m = Model {
            mem: vec![0; size as usize],
        };
        let cycles = 3000;
        let mut trace = String::new();
        for _ in 0..cycles {
            let s = random_step(&mut rng, size, rw.len(), ww.len());
            trace.push_str(&format!("{:x}", s.clear as u8));
            for a in &s.reads {
                trace.push_str(&format!(" {a:x}"));
            }
            for w in &s.writes {
                trace.push_str(&format!(
                    " {:x} {:x} {:x} {}",
                    w.addr,
                    w.mask as u32,
                    w.mask >> 32,
                    hex_words(&w.data)
                ));
            }
            for (k, &a) in s.reads.iter().enumerate() {
                trace.push_str(&format!(" {}", hex_words(&m.read(a, rw[k]))));
            }
            trace.push('\n');
            m.edge(s.clear, &s.writes, ww);
        }
        std::fs::write(dir.join("trace.txt"), &trace).unwrap();
        common::replay_on_verilator(
            &dir,
            "mem.v",
            cycles,
            &format!("size {size}: Verilog and reference"),
        );
    }
}
