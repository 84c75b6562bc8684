//! [`Lane`]: one lane of the activation unit, which also runs ADD and MAX
//! (`C` lanes, `lane$<l>` in `Compute`). A `#[hdl_gen]` block: the same
//! source is rust-hdl's simulation and the generated Verilog.
//!
//! The lane holds the pipeline registers after the read stage (`x1`, `y1`,
//! `qm1`, `qs1`) and after stage 2 (`p2`, `qs2`); `Compute` reads the local
//! memories for it (its inputs `acc`, `bias`, `qm`, `qs`, `ea`, `eb`, `old`),
//! sequences the pipeline (`ld`, `en`) and writes its results (`q8`, `q32`)
//! where and when they belong (module documentation of `compute.rs`).
//!
//! * Read stage (`ld`, with `en`): ACT latches `x1 = sat32(acc + bias)`, the
//!   PER_CHANNEL entry `qm1 = qm`, `qs1 = qs`; ADD and MAX latch `x1 = ea`,
//!   `y1 = eb`.
//! * Stage 2 (every `en` edge): ADD computes
//!   `p2 = (x1 - za) * ma + (y1 - zb) * mb` (int8 operands and zero points,
//!   int16 multipliers, 32-bit wrapping, sign-extended to 64); MAX the signed
//!   maximum of `x1` and `y1`; ACT the product `x1 * m` of [`SMul32`], with
//!   `m` the lane's `qm1` (PER_CHANNEL, flag 2) or the descriptor's word 5.
//!   `qs2 = qs1`.
//! * Write stage (combinational): `q8` is ACT's requantised int8
//!   ([`crate::compute::requant_tail`] on `p2`, shift `qs2` with PER_CHANNEL
//!   or word 6 bits 7:0, zero point word 6 bits 15:8, ReLU with flag 0) or
//!   MAX's byte; `q32` is ADD's int32 (plus `old` with ACCUMULATE, flag 0).
//!
//! The arithmetic is unsigned two's complement on purpose: sign extensions,
//! signed comparisons and the arithmetic shift are written with masks and
//! XORs, so Verilog's context-dependent signedness never differs from the
//! simulation. The one signed operation is the 16 x 16 -> 32 multiply of ADD
//! (as in the PEs).

use rust_hdl::prelude::*;

use super::pe::signed_bit_cast_sx;
use super::smul::SMul32;

/// One activation / ADD / MAX lane: see the module documentation.
#[derive(LogicBlock)]
pub struct Lane {
    pub clock: Signal<In, Clock>,
    /// The device acts at this edge and does not clear (gates every register).
    pub en: Signal<In, Bit>,
    /// The read stage is active: latch the operands.
    pub ld: Signal<In, Bit>,
    /// The descriptor is an ACT, ADD or MAX.
    pub is_act: Signal<In, Bit>,
    pub is_add: Signal<In, Bit>,
    pub is_max: Signal<In, Bit>,
    /// Descriptor flag 0 (ACT: ReLU; ADD: ACCUMULATE) and flag 2 (ACT:
    /// PER_CHANNEL).
    pub f0: Signal<In, Bit>,
    pub f2: Signal<In, Bit>,
    /// Descriptor words 5 (ACT: multiplier; ADD: zero points in bits 15:0)
    /// and 6 (ACT: shift 7:0, zero point 15:8; ADD: multipliers).
    pub w5: Signal<In, Bits<32>>,
    pub w6: Signal<In, Bits<32>>,
    /// ACT read stage: the accumulator, the bias, the table entry.
    pub acc: Signal<In, Bits<32>>,
    pub bias: Signal<In, Bits<32>>,
    pub qm: Signal<In, Bits<32>>,
    pub qs: Signal<In, Bits<8>>,
    /// ADD / MAX read stage: the two operands.
    pub ea: Signal<In, Bits<8>>,
    pub eb: Signal<In, Bits<8>>,
    /// Write stage: the old accumulator at the lane's ADD address.
    pub old: Signal<In, Bits<32>>,
    /// Write stage: the byte for the scratchpad (ACT result, MAX result).
    pub q8: Signal<Out, Bits<8>>,
    /// Write stage: the word for the accumulator memory (ADD).
    pub q32: Signal<Out, Bits<32>>,
    /// The requantiser's multiplier.
    pub mul: SMul32,
    x1: DFF<Bits<32>>,
    y1: DFF<Bits<8>>,
    qm1: DFF<Bits<32>>,
    qs1: DFF<Bits<8>>,
    p2: DFF<Bits<64>>,
    qs2: DFF<Bits<8>>,
    // Read stage.
    asum: Signal<Local, Bits<32>>,
    ax: Signal<Local, Bits<32>>,
    // Stage 2.
    da: Signal<Local, Signed<16>>,
    db: Signal<Local, Signed<16>>,
    pa: Signal<Local, Signed<32>>,
    pb: Signal<Local, Signed<32>>,
    sadd: Signal<Local, Bits<32>>,
    sadd64: Signal<Local, Bits<64>>,
    smax: Signal<Local, Bits<8>>,
    // Write stage.
    sh: Signal<Local, Bits<8>>,
    rbit: Signal<Local, Bits<64>>,
    asr: Signal<Local, Bits<64>>,
    r: Signal<Local, Bits<64>>,
    zp64: Signal<Local, Bits<64>>,
    y: Signal<Local, Bits<64>>,
    lo: Signal<Local, Bits<64>>,
    aq: Signal<Local, Bits<8>>,
    /// Bits 63:32 set (sign extension of a 32-bit value).
    hi32: Constant<Bits<64>>,
    /// Bits 63:8 set (sign extension of a byte).
    hi56: Constant<Bits<64>>,
    /// Bit 63 (signed comparison by XOR).
    sign64: Constant<Bits<64>>,
    /// -128 in 64 bits.
    min8: Constant<Bits<64>>,
    /// 127 in 64 bits, XOR bit 63.
    max8s: Constant<Bits<64>>,
}

impl Default for Lane {
    fn default() -> Self {
        Lane {
            clock: Default::default(),
            en: Default::default(),
            ld: Default::default(),
            is_act: Default::default(),
            is_add: Default::default(),
            is_max: Default::default(),
            f0: Default::default(),
            f2: Default::default(),
            w5: Default::default(),
            w6: Default::default(),
            acc: Default::default(),
            bias: Default::default(),
            qm: Default::default(),
            qs: Default::default(),
            ea: Default::default(),
            eb: Default::default(),
            old: Default::default(),
            q8: Default::default(),
            q32: Default::default(),
            mul: Default::default(),
            x1: Default::default(),
            y1: Default::default(),
            qm1: Default::default(),
            qs1: Default::default(),
            p2: Default::default(),
            qs2: Default::default(),
            asum: Default::default(),
            ax: Default::default(),
            da: Default::default(),
            db: Default::default(),
            pa: Default::default(),
            pb: Default::default(),
            sadd: Default::default(),
            sadd64: Default::default(),
            smax: Default::default(),
            sh: Default::default(),
            rbit: Default::default(),
            asr: Default::default(),
            r: Default::default(),
            zp64: Default::default(),
            y: Default::default(),
            lo: Default::default(),
            aq: Default::default(),
            hi32: Constant::new(0xFFFF_FFFF_0000_0000_u64.into()),
            hi56: Constant::new(0xFFFF_FFFF_FFFF_FF00_u64.into()),
            sign64: Constant::new(0x8000_0000_0000_0000_u64.into()),
            min8: Constant::new(0xFFFF_FFFF_FFFF_FF80_u64.into()),
            max8s: Constant::new(0x8000_0000_0000_007F_u64.into()),
        }
    }
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("x1", &self.x1.q.val())
            .field("p2", &self.p2.q.val())
            .finish_non_exhaustive()
    }
}

impl Logic for Lane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, x1, y1, qm1, qs1, p2, qs2);
        // Read stage: sat32(acc + bias) (overflow: equal signs in, other sign out).
        self.asum.next = self.acc.val() + self.bias.val();
        self.ax.next = self.asum.val();
        if (self.acc.val().get_bit(31) == self.bias.val().get_bit(31))
            && (self.asum.val().get_bit(31) != self.acc.val().get_bit(31))
        {
            if self.acc.val().get_bit(31) {
                self.ax.next = bits::<32>(0x8000_0000_u64);
            } else {
                self.ax.next = bits::<32>(0x7FFF_FFFF_u64);
            }
        }
        if self.en.val() && self.ld.val() {
            if self.is_act.val() {
                self.x1.d.next = self.ax.val();
                self.qm1.d.next = self.qm.val();
                self.qs1.d.next = self.qs.val();
            } else {
                self.x1.d.next = bit_cast::<32, 8>(self.ea.val());
                self.y1.d.next = self.eb.val();
            }
        }
        // Stage 2.
        self.mul.a.next = self.x1.q.val();
        if self.f2.val() {
            self.mul.b.next = self.qm1.q.val();
        } else {
            self.mul.b.next = self.w5.val();
        }
        self.da.next = signed_bit_cast_sx::<16, 8>(signed_cast(self.x1.q.val().get_bits::<8>(0)))
            - signed_bit_cast_sx::<16, 8>(signed_cast(self.w5.val().get_bits::<8>(0)));
        self.db.next = signed_bit_cast_sx::<16, 8>(signed_cast(self.y1.q.val()))
            - signed_bit_cast_sx::<16, 8>(signed_cast(self.w5.val().get_bits::<8>(8)));
        self.pa.next = self.da.val() * signed_cast(self.w6.val().get_bits::<16>(0));
        self.pb.next = self.db.val() * signed_cast(self.w6.val().get_bits::<16>(16));
        self.sadd.next = unsigned_cast(self.pa.val()) + unsigned_cast(self.pb.val());
        self.sadd64.next = bit_cast::<64, 32>(self.sadd.val());
        if self.sadd.val().get_bit(31) {
            self.sadd64.next = bit_cast::<64, 32>(self.sadd.val()) | self.hi32.val();
        }
        if (self.x1.q.val().get_bits::<8>(0) ^ bits::<8>(0x80_u64))
            > (self.y1.q.val() ^ bits::<8>(0x80_u64))
        {
            self.smax.next = self.x1.q.val().get_bits::<8>(0);
        } else {
            self.smax.next = self.y1.q.val();
        }
        if self.en.val() {
            if self.is_add.val() {
                self.p2.d.next = self.sadd64.val();
            } else if self.is_max.val() {
                self.p2.d.next = bit_cast::<64, 8>(self.smax.val());
            } else {
                self.p2.d.next = self.mul.p.val();
            }
            self.qs2.d.next = self.qs1.q.val();
        }
        // Write stage: rounding shift (floor(p / 2^s) plus bit s-1 of p;
        // 0 for shifts above 63), zero point, clamp.
        if self.f2.val() {
            self.sh.next = self.qs2.q.val();
        } else {
            self.sh.next = self.w6.val().get_bits::<8>(0);
        }
        self.rbit.next = bits::<64>(0_u64);
        self.asr.next = self.p2.q.val();
        if (self.sh.val() != 0_u64) && (self.sh.val() < 64_u64) {
            self.rbit.next = (self.p2.q.val() >> (self.sh.val() - 1_u64)) & 1_u64;
            if self.p2.q.val().get_bit(63) {
                self.asr.next = !(!self.p2.q.val() >> self.sh.val());
            } else {
                self.asr.next = self.p2.q.val() >> self.sh.val();
            }
        }
        self.r.next = self.asr.val() + self.rbit.val();
        if self.sh.val() > 63_u64 {
            self.r.next = bits::<64>(0_u64);
        }
        self.zp64.next = bit_cast::<64, 8>(self.w6.val().get_bits::<8>(8));
        if self.w6.val().get_bit(15) {
            self.zp64.next = bit_cast::<64, 8>(self.w6.val().get_bits::<8>(8)) | self.hi56.val();
        }
        self.y.next = self.r.val() + self.zp64.val();
        if self.f0.val() {
            self.lo.next = self.zp64.val();
        } else {
            self.lo.next = self.min8.val();
        }
        if (self.y.val() ^ self.sign64.val()) < (self.lo.val() ^ self.sign64.val()) {
            self.aq.next = self.lo.val().get_bits::<8>(0);
        } else if (self.y.val() ^ self.sign64.val()) > self.max8s.val() {
            self.aq.next = bits::<8>(127_u64);
        } else {
            self.aq.next = self.y.val().get_bits::<8>(0);
        }
        if self.is_act.val() {
            self.q8.next = self.aq.val();
        } else {
            self.q8.next = self.p2.q.val().get_bits::<8>(0);
        }
        self.q32.next = self.p2.q.val().get_bits::<32>(0);
        if self.f0.val() {
            self.q32.next = self.p2.q.val().get_bits::<32>(0) + self.old.val();
        }
    }
}
