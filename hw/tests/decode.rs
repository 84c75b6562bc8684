//! `Decode` (descriptor decode and validation) against the ABI's own decoder,
//! `npukit_abi::Descriptor::decode` followed by `validate`, under rust-hdl's
//! simulator: every opcode (and unknown ones), every reserved bit, every
//! dependency and opcode flag, and field values around each limit, for the
//! limits of several variants; and its Verilog alone under Verilator's linter.
//!
//! The reference is the model's: the code of the first failing check, and
//! `ERR_ADDR` = the error's `fault_addr`, else the descriptor's physical address
//! (`npukit_sim::cmdproc::FetchEntry::arrive`).

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;
use std::collections::BTreeSet;
use std::path::Path;

use common::Rng;
use npukit_abi::desc::{Act, Add, Dma, Fence, Layout, Matmul, Max, Op};
use npukit_abi::{Descriptor, Limits, Opcode, Unit, DESC_BYTES};
use npukit_hw::decode::{Decode, DecodeLimits};
use npukit_sim::NpuConfig;
use rust_hdl::prelude::*;

/// What the block must say: (bad, code, addr, unit).
type Verdict = (bool, u8, u64, u8);

/// The ABI's verdict, and for coverage the failing (opcode, field).
fn expected(
    bytes: &[u8; DESC_BYTES],
    paddr: u64,
    lim: &Limits,
) -> (Verdict, Option<(String, String)>) {
    let unit = match Opcode::from_u8(bytes[0]).and_then(Opcode::unit) {
        None => 0,
        Some(Unit::Load) => 1,
        Some(Unit::Compute) => 2,
        Some(Unit::Store) => 3,
    };
    match Descriptor::decode(bytes).and_then(|d| d.validate(lim)) {
        Ok(()) => ((false, 0, 0, unit), None),
        Err(e) => (
            (true, e.code as u8, e.fault_addr.unwrap_or(paddr), unit),
            Some((format!("{} {:?}", e.opcode, e.code), e.field.to_string())),
        ),
    }
}

fn observed(uut: &mut Decode, bytes: &[u8; DESC_BYTES], paddr: u64) -> Verdict {
    let wide = bytes.iter().rev().fold(Bits::<256>::default(), |b, &x| {
        (b << 8) | Bits::<256>::from(x as u64)
    });
    uut.desc.next = wide;
    uut.paddr.next = paddr.into();
    assert!(simulate(uut, 200), "the block did not settle");
    (
        uut.bad.val(),
        uut.code.val().to_u64() as u8,
        uut.addr.val().to_u64(),
        uut.unit.val().to_u64() as u8,
    )
}

/// A value near something that matters for a field of `bits` bits: zero, small
/// values and their misalignments, the array and memory limits around their
/// edges, the field's maximum, or anything.
fn interesting(rng: &mut Rng, lim: &Limits, bits: u32) -> u32 {
    let max = if bits == 32 {
        u32::MAX
    } else {
        (1 << bits) - 1
    };
    let edges = [lim.rows, lim.cols, lim.spad_bytes, lim.acc_bytes];
    let v = match rng.below(10) {
        0 => rng.below(6) as u32,
        1 => 62 + rng.below(3) as u32,
        2 => {
            let e = rng.pick(&edges);
            (e as i64 + rng.below(5) as i64 - 2).max(0) as u32
        }
        3 => (rng.pick(&edges) as u64 / (1 + rng.below(8))) as u32,
        4 => max - rng.below(2) as u32,
        5 => rng.next() as u32,
        _ => {
            let scale = 1 + rng.below(64);
            let v = rng.below(1 + lim.spad_bytes as u64 / scale) as u32;
            if rng.chance(50) {
                v & !3
            } else {
                v
            }
        }
    };
    v & max
}

/// `[start, start + len)` inside `size` bytes, often ending at its very end;
/// `align` 4 for accumulator addresses.
fn place(rng: &mut Rng, size: u32, len: u64, align: u32) -> u32 {
    let room = (size as u64).saturating_sub(len);
    let start = if rng.chance(40) {
        room
    } else {
        rng.below(room + 1)
    };
    (start as u32) & !(align - 1)
}

/// A valid descriptor of opcode `op` (deps and flags allowed), fields up to
/// the limits.
fn valid_desc(rng: &mut Rng, lim: &Limits, op: Opcode) -> [u8; DESC_BYTES] {
    let small = |rng: &mut Rng, max: u32| 1 + rng.below(max.min(0xFFFF) as u64) as u16;
    let allowed = op.unit().map_or(0, Unit::allowed_deps);
    let deps = rng.below(16) as u8 & allowed;
    let o = match op {
        Opcode::Nop => Op::Nop,
        Opcode::Load | Opcode::Store => {
            let acc = rng.chance(40);
            let (size, al) = if acc {
                (lim.acc_bytes, 4)
            } else {
                (lim.spad_bytes, 1)
            };
            let most = if rng.chance(50) { 4 } else { 64 };
            let rows = small(rng, most);
            let row_bytes = small(rng, 64) as u32 * al;
            let local_stride = row_bytes + rng.below(8) as u32 * al;
            let ext = (rows as u64 - 1) * local_stride as u64 + row_bytes as u64;
            // sometimes a device range ending near or past 2^64
            let top = 1 << rng.below(24);
            let dram = if rng.chance(20) {
                u64::MAX - rng.below(top)
            } else {
                rng.next() >> rng.below(40)
            };
            let d = Dma {
                local: place(rng, size, ext, al),
                dram,
                rows,
                row_bytes: row_bytes as u16,
                dram_stride: rng.below(1 << 20) as u32,
                local_stride,
                acc,
            };
            if op == Opcode::Load {
                Op::Load(d)
            } else {
                Op::Store(d)
            }
        }
        Opcode::Matmul => {
            let (m, k, n) = (small(rng, 64), small(rng, lim.rows), small(rng, lim.cols));
            let (mm, kk, nn) = (m as u64, k as u64, n as u64);
            Op::Matmul(Matmul {
                a: place(rng, lim.spad_bytes, mm * kk, 1),
                w: place(rng, lim.spad_bytes, kk * nn, 1),
                out: place(rng, lim.acc_bytes, mm * nn * 4, 4),
                m,
                k,
                n,
                accumulate: rng.chance(50),
            })
        }
        Opcode::Act => {
            let (rows, cols) = (small(rng, 16), small(rng, lim.cols));
            let n = rows as u64 * cols as u64;
            let per_channel = rng.chance(50);
            Op::Act(Act {
                src: place(rng, lim.acc_bytes, n * 4, 4),
                dst: place(rng, lim.spad_bytes, n, 1),
                bias: rng
                    .chance(50)
                    .then(|| place(rng, lim.acc_bytes, cols as u64 * 4, 4)),
                rows,
                cols,
                multiplier: if per_channel { 0 } else { rng.next() as i32 },
                shift: if per_channel { 0 } else { rng.below(63) as u8 },
                zero_point: rng.next() as i8,
                relu: rng.chance(50),
                qtab: per_channel.then(|| place(rng, lim.acc_bytes, cols as u64 * 8, 4)),
            })
        }
        Opcode::Add => {
            let len = small(rng, 256) as u32;
            Op::Add(Add {
                a: place(rng, lim.spad_bytes, len as u64, 1),
                b: place(rng, lim.spad_bytes, len as u64, 1),
                dst: place(rng, lim.acc_bytes, len as u64 * 4, 4),
                len,
                a_zp: rng.next() as i8,
                b_zp: rng.next() as i8,
                a_mult: rng.next() as i16,
                b_mult: rng.next() as i16,
                accumulate: rng.chance(50),
            })
        }
        Opcode::Max => {
            let len = small(rng, 256) as u32;
            Op::Max(Max {
                a: place(rng, lim.spad_bytes, len as u64, 1),
                b: place(rng, lim.spad_bytes, len as u64, 1),
                dst: place(rng, lim.spad_bytes, len as u64, 1),
                len,
            })
        }
        Opcode::Fence => Op::Fence(Fence {
            seq: rng.next() as u32,
            writeback: rng.chance(50).then(|| rng.next() & !3),
            irq: rng.chance(50),
        }),
    };
    Descriptor { deps, op: o }.encode()
}

/// A random descriptor: a valid one, maybe with one word or half-word moved a
/// little or set to an interesting value; or else a known opcode with allowed flags and no
/// reserved bits set, its fields near their limits; sometimes any bits.
fn random_desc(rng: &mut Rng, lim: &Limits) -> [u8; DESC_BYTES] {
    if rng.chance(50) {
        let op = rng.pick(Opcode::ALL);
        let mut b = valid_desc(rng, lim, op);
        if rng.chance(70) {
            let i = 4 + 2 * rng.below(14) as usize;
            let h = u16::from_le_bytes([b[i], b[i + 1]]);
            let v = match rng.below(3) {
                0 => h.wrapping_add(1 + rng.below(4) as u16),
                1 => h.wrapping_sub(1 + rng.below(4) as u16),
                _ => interesting(rng, lim, 16) as u16,
            };
            b[i..i + 2].copy_from_slice(&v.to_le_bytes());
        }
        return b;
    }
    let op = if rng.chance(3) {
        rng.below(256) as u32
    } else {
        rng.below(8) as u32
    };
    let mut w = [0u32; 8];
    let deps = rng.below(16) as u32;
    let flags = rng.below(16) as u32;
    w[0] = op | deps << 8 | flags << 12;
    for (i, word) in w.iter_mut().enumerate().skip(1) {
        *word = if rng.chance(50) {
            interesting(rng, lim, 16) | interesting(rng, lim, 16) << 16
        } else {
            interesting(rng, lim, 32)
        };
        if rng.chance(30) {
            // small halves (rows, row_bytes, m, k, n) near the array size
            *word = interesting(rng, lim, 8) | (interesting(rng, lim, 8) << 16);
        }
        let _ = i;
    }
    if let Some(o) = Opcode::from_u8(op as u8) {
        // Mostly keep to the layout, the unit's dependency flags and the
        // opcode's flags, so that validation is reached.
        if rng.chance(85) {
            let layout = Layout::of(o);
            for i in 1..8 {
                w[i] &= layout.used_mask(i as u8);
            }
        }
        if rng.chance(80) {
            let allowed = o.unit().map_or(0, Unit::allowed_deps) as u32;
            let defined = Layout::of(o).op_flags.iter().fold(0, |a, f| a | f.1) as u32;
            w[0] = op | (deps & allowed) << 8 | (flags & defined) << 12;
        }
        if o == Opcode::Fence && rng.chance(50) {
            // an aligned writeback address, or none without WRITEBACK
            if w[0] >> 13 & 1 == 0 {
                w[2] = 0;
                w[3] = 0;
            } else {
                w[2] &= !3;
            }
        }
        if (o == Opcode::Load || o == Opcode::Store) && rng.chance(10) {
            // a device range ending near or past 2^64
            w[3] = u32::MAX;
            let span = 1 << rng.below(20);
            w[2] = u32::MAX - rng.below(span) as u32;
        }
        if o == Opcode::Act && rng.chance(50) {
            // the fields the flags switch off are zero
            if w[0] >> 13 & 1 == 0 {
                w[3] = 0;
            }
            if w[0] >> 14 & 1 == 1 {
                w[5] = 0;
                w[6] &= !0xFF;
            } else {
                w[7] = 0;
            }
        }
    }
    if rng.chance(5) {
        // one reserved bit of word 0
        w[0] |= 1 << (16 + rng.below(16));
    }
    if rng.chance(3) {
        // one random bit anywhere
        let b = rng.below(256);
        w[(b / 32) as usize] ^= 1 << (b % 32);
    }
    let mut bytes = [0u8; DESC_BYTES];
    for (i, x) in w.iter().enumerate() {
        bytes[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    bytes
}

fn limits_of(cfg: &str) -> Limits {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    NpuConfig::load(&root.join(cfg)).unwrap().limits()
}

fn block(lim: &Limits) -> Decode {
    let mut uut = Decode::new(DecodeLimits {
        rows: lim.rows,
        cols: lim.cols,
        spad_bytes: lim.spad_bytes,
        acc_bytes: lim.acc_bytes,
    })
    .unwrap();
    uut.connect_all();
    uut
}

/// Every check of the ABI decoder (opcode and code, field) the random
/// descriptors must reach.
fn required() -> BTreeSet<(String, String)> {
    let mut s = BTreeSet::new();
    let mut add = |op: &str, code: &str, fields: &[&str]| {
        for f in fields {
            s.insert((format!("{op} {code}"), f.to_string()));
        }
    };
    add("?", "BadOpcode", &["opcode"]);
    let words = [
        "word0[31:16]",
        "word1",
        "word2",
        "word3",
        "word4",
        "word5",
        "word6",
        "word7",
    ];
    add("NOP", "Reserved", &words);
    add("NOP", "BadFlags", &["deps", "flags"]);
    for op in ["LOAD", "STORE"] {
        add(op, "Reserved", &["word0[31:16]", "word7"]);
        add(op, "BadFlags", &["deps", "flags"]);
        add(
            op,
            "BadField",
            &["rows", "row_bytes", "local_stride", "dram"],
        );
        add(op, "Misaligned", &["local", "row_bytes", "local_stride"]);
        add(op, "SpadRange", &["local"]);
        add(op, "AccRange", &["local"]);
    }
    add(
        "MATMUL",
        "Reserved",
        &["word0[31:16]", "word5", "word6", "word7"],
    );
    add("MATMUL", "BadFlags", &["flags"]);
    add("MATMUL", "BadField", &["m", "k", "n"]);
    add("MATMUL", "SpadRange", &["a", "w"]);
    add("MATMUL", "Misaligned", &["out"]);
    add("MATMUL", "AccRange", &["out"]);
    add(
        "ACT",
        "Reserved",
        &[
            "word0[31:16]",
            "word6",
            "bias",
            "multiplier",
            "shift",
            "qtab",
        ],
    );
    add("ACT", "BadFlags", &["flags"]);
    add("ACT", "BadField", &["rows", "cols", "shift"]);
    add("ACT", "Misaligned", &["src", "bias", "qtab"]);
    add("ACT", "AccRange", &["src", "bias", "qtab"]);
    add("ACT", "SpadRange", &["dst"]);
    add("ADD", "Reserved", &["word0[31:16]", "word5", "word7"]);
    add("ADD", "BadFlags", &["flags"]);
    add("ADD", "BadField", &["len"]);
    add("ADD", "SpadRange", &["a", "b"]);
    add("ADD", "Misaligned", &["dst"]);
    add("ADD", "AccRange", &["dst"]);
    add(
        "MAX",
        "Reserved",
        &["word0[31:16]", "word5", "word6", "word7"],
    );
    add("MAX", "BadFlags", &["flags"]);
    add("MAX", "BadField", &["len"]);
    add("MAX", "SpadRange", &["a", "b", "dst"]);
    add(
        "FENCE",
        "Reserved",
        &["word0[31:16]", "word4", "word5", "word6", "word7", "addr"],
    );
    add("FENCE", "BadFlags", &["deps", "flags"]);
    add("FENCE", "Misaligned", &["addr"]);
    s
}

#[test]
fn random_descriptors_match_the_abi_decoder() {
    let mut seen = BTreeSet::new();
    let mut valid = [0u32; 8];
    // Two variants' limits, and a non-square array with odd memory sizes.
    let odd = Limits {
        rows: 4,
        cols: 12,
        spad_bytes: 1000,
        acc_bytes: 300,
    };
    for (cfg, lim, n) in [
        ("configs/4x4.toml", limits_of("configs/4x4.toml"), 30_000),
        (
            "configs/default.toml",
            limits_of("configs/default.toml"),
            15_000,
        ),
        ("4x12, 1000 B, 300 B", odd, 15_000),
    ] {
        let mut uut = block(&lim);
        let mut rng = Rng(0x0DEC_0DE5_1234_5678 ^ lim.spad_bytes as u64);
        for case in 0..n {
            let bytes = random_desc(&mut rng, &lim);
            let paddr = rng.next() & !31;
            let (want, why) = expected(&bytes, paddr, &lim);
            let got = observed(&mut uut, &bytes, paddr);
            assert_eq!(
                got, want,
                "{cfg} case {case}: descriptor {bytes:02x?} at {paddr:#x} ({why:?})"
            );
            match why {
                Some(w) => {
                    seen.insert(w);
                }
                None => valid[bytes[0] as usize] += 1,
            }
        }
    }
    let missing: Vec<_> = required().difference(&seen).cloned().collect();
    assert!(missing.is_empty(), "checks never reached: {missing:?}");
    assert!(
        valid.iter().all(|&n| n >= 50),
        "valid descriptors per opcode: {valid:?}"
    );
}

#[test]
fn every_single_bit_of_a_valid_descriptor() {
    // One valid descriptor of each opcode, then each of its 256 bits flipped.
    let lim = limits_of("configs/4x4.toml");
    let mut uut = block(&lim);
    let mut rng = Rng(0x00B1_750F_0123);
    for op in Opcode::ALL {
        let mut base = None;
        for _ in 0..100_000 {
            let b = random_desc(&mut rng, &lim);
            if b[0] == *op as u8 && expected(&b, 0, &lim).1.is_none() {
                base = Some(b);
                break;
            }
        }
        let base = base.unwrap_or_else(|| panic!("no valid {op:?} descriptor found"));
        for bit in 0..8 * DESC_BYTES {
            let mut b = base;
            b[bit / 8] ^= 1 << (bit % 8);
            let paddr = 0x1000 + 32 * bit as u64;
            let (want, why) = expected(&b, paddr, &lim);
            assert_eq!(
                observed(&mut uut, &b, paddr),
                want,
                "{op:?} bit {bit} ({why:?})"
            );
        }
    }
}

#[test]
fn verilog_lints_clean() {
    let uut = block(&limits_of("configs/4x4.toml"));
    let v = generate_verilog(&uut);
    if let Err(log) = common::verilator_lint(&v, "decode") {
        panic!("verilator lint failed: {log}");
    }
}
