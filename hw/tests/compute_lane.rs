//! One activation lane ([`Lane`], a `#[hdl_gen]` block) in rust-hdl's
//! simulator against the model's arithmetic (`npukit_sim::act::requantize`
//! for ACT, the model's ADD and MAX formulas), on random and extreme
//! operands: read stage, stage 2 and the write stage's outputs, and the
//! registers holding while `en` is low.

mod common;
use common::Rng;

use npukit_hw::compute::Lane;
use npukit_sim::act;
use rust_hdl::prelude::*;

/// A byte biased towards the extremes (-128, 127, 0, -1).
fn byte(rng: &mut Rng) -> u8 {
    match rng.below(8) {
        0 => 0x80,
        1 => 0x7F,
        2 => 0,
        3 => 0xFF,
        _ => rng.next() as u8,
    }
}

/// A 32-bit value biased towards the extremes.
fn word(rng: &mut Rng) -> u32 {
    match rng.below(8) {
        0 => 0x8000_0000,
        1 => 0x7FFF_FFFF,
        2 => 0,
        3 => rng.below(600) as u32,
        4 => (rng.below(600) as u32).wrapping_neg(),
        _ => rng.next() as u32,
    }
}

struct Tb {
    l: Lane,
}

impl Tb {
    fn new() -> Tb {
        let mut l = Lane::default();
        l.connect_all();
        let mut tb = Tb { l };
        tb.settle();
        tb
    }

    fn settle(&mut self) {
        for _ in 0..100 {
            self.l.update_all();
            if !self.l.has_changed() {
                return;
            }
        }
        panic!("the lane did not settle");
    }

    fn edge(&mut self) {
        self.settle();
        self.l.clock.next = true.into();
        self.settle();
        self.l.clock.next = false.into();
        self.settle();
    }

    /// Sets the descriptor-derived inputs.
    fn op(&mut self, op: u8, f0: bool, f2: bool, w5: u32, w6: u32) {
        self.l.is_act.next = op == 4;
        self.l.is_add.next = op == 5;
        self.l.is_max.next = op == 6;
        self.l.f0.next = f0;
        self.l.f2.next = f2;
        self.l.w5.next = (w5 as u64).into();
        self.l.w6.next = (w6 as u64).into();
    }

    /// Read stage with these operands, then stage 2; returns `(q8, q32)` of
    /// the write stage (with `old` at the write stage).
    #[allow(clippy::too_many_arguments)]
    fn run(&mut self, acc: u32, bias: u32, qm: u32, qs: u8, ea: u8, eb: u8, old: u32) -> (u8, u32) {
        self.l.en.next = true;
        self.l.ld.next = true;
        self.l.acc.next = (acc as u64).into();
        self.l.bias.next = (bias as u64).into();
        self.l.qm.next = (qm as u64).into();
        self.l.qs.next = (qs as u64).into();
        self.l.ea.next = (ea as u64).into();
        self.l.eb.next = (eb as u64).into();
        self.edge();
        // Stage 2: the read-stage inputs change (they must not matter now).
        self.l.ld.next = false;
        self.l.acc.next = 0xDEAD_u64.into();
        self.l.ea.next = 0x11_u64.into();
        self.edge();
        // A frozen edge changes nothing.
        self.l.en.next = false;
        self.l.ld.next = true;
        self.edge();
        self.l.old.next = (old as u64).into();
        self.settle();
        (self.l.q8.val().to_u8(), self.l.q32.val().to_u32())
    }
}

#[test]
fn act_matches_requantize() {
    let mut rng = Rng(0xAC7_1A4E);
    let mut tb = Tb::new();
    for i in 0..3000u32 {
        let (acc, bias) = (word(&mut rng), word(&mut rng));
        let (m, qm) = (word(&mut rng), word(&mut rng));
        // A descriptor's shift is <= 62; a table entry's any byte.
        let (shift, qs) = match i % 4 {
            0 => (0, 255 - (i / 4 % 256) as u8),
            1 => (62, 63),
            2 => (rng.below(63) as u8, 64 + rng.below(192) as u8),
            _ => (1 + rng.below(62) as u8, rng.below(64) as u8),
        };
        let zp = byte(&mut rng);
        let relu = rng.chance(50);
        let per_channel = rng.chance(50);
        let w6 = (word(&mut rng) & 0xFFFF_0000) | ((zp as u32) << 8) | shift as u32;
        tb.op(4, relu, per_channel, m, w6);
        let (q8, _) = tb.run(acc, bias, qm, qs, 0, 0, 0);
        let (mult, sh) = if per_channel { (qm, qs) } else { (m, shift) };
        let want = act::requantize(acc as i32, bias as i32, mult as i32, sh, zp as i8, relu);
        assert_eq!(
            q8 as i8, want,
            "acc {acc:#x} bias {bias:#x} mult {mult:#x} shift {sh} zp {zp} relu {relu}"
        );
    }
}

#[test]
fn add_and_max_match_the_model() {
    let mut rng = Rng(0xADD_3A4);
    let mut tb = Tb::new();
    for _ in 0..3000 {
        let (a, b) = (byte(&mut rng), byte(&mut rng));
        let (za, zb) = (byte(&mut rng), byte(&mut rng));
        let (ma, mb) = (word(&mut rng) as u16, word(&mut rng) as u16);
        let acc = rng.chance(50);
        let old = word(&mut rng);
        let w5 = (word(&mut rng) & 0xFFFF_0000) | ((zb as u32) << 8) | za as u32;
        let w6 = ((mb as u32) << 16) | ma as u32;
        tb.op(5, acc, rng.chance(50), w5, w6);
        let (_, q32) = tb.run(word(&mut rng), 0, word(&mut rng), 7, a, b, old);
        let sum = ((a as i8 as i32 - za as i8 as i32) * ma as i16 as i32)
            .wrapping_add((b as i8 as i32 - zb as i8 as i32) * mb as i16 as i32);
        let want = if acc {
            sum.wrapping_add(old as i32)
        } else {
            sum
        };
        assert_eq!(
            q32 as i32, want,
            "a {a} b {b} za {za} zb {zb} ma {ma} mb {mb}"
        );

        tb.op(6, rng.chance(50), rng.chance(50), w5, w6);
        let (q8, _) = tb.run(0, 0, 0, 0, a, b, old);
        assert_eq!(q8 as i8, (a as i8).max(b as i8), "max {a} {b}");
    }
}
