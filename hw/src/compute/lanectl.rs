//! The control of the compute unit's ACT / ADD / MAX pipeline, two
//! `#[hdl_gen]` blocks: [`LaneCtl`] (`lc` in `Compute`: the walk over the
//! operands, the valid bits and write addresses after the read stage and
//! stage 2, and the two address registers `sa`, `sb` that the MATMUL control
//! also steps) and [`LaneAddr`] (`la$<l>`: lane `l`'s memory addresses, their
//! valid bits and its write enables). `Compute` reads and writes the memories
//! at these addresses and runs the lanes' arithmetic ([`super::Lane`]).
//!
//! `LaneCtl`, at an `enable` edge (`clear` drops the valid bits at any edge):
//! * `start` (a descriptor is accepted at this edge): `sa = A` and `sb = C`
//!   (words 1 and 3) for a MATMUL, else 0; `sg = 0`.
//! * `rd` (the read stage: the held descriptor is an ACT, ADD or MAX with at
//!   least two cycles to go, `cnt + 2 <= lat`): `v1 = 1`; ACT latches the
//!   write address `wa1 = dst + sb + sg` and lane count
//!   `wn1 = min(cols - sg, C)` and walks the lane groups of a row (`sg += C`),
//!   then the rows (`sg = 0`, `sb += cols`); ADD and MAX latch
//!   `wa1 = dst + 4 sa` (ADD, int32) or `dst + sa` (MAX) and
//!   `wn1 = min(len - sa, C)`, and step `sa += C`.
//! * MATMUL (weight-stationary, from `Compute`): `mm_sa` steps the A stream
//!   (`sa += K`), `mm_sb` the output rows (`sb += 4N`).
//! * Stage 2: `v2, wa2, wn2 = v1, wa1, wn1`.
//!
//! `LaneAddr` of lane `l` (combinational): an ACT reads element `e = sg + l`
//! of row `sb / cols` when `e < cols` (`aok`): the accumulator at
//! `src + 4 (sb + e)`, the bias at `bias + 4 e` (`bok`: with flag 1) and the
//! table entry at `qtab + 8 e` (`qok`: with flag 2, PER_CHANNEL); an ADD or
//! MAX reads element `sa + l` of both operands when it is below `len`
//! (`eok`). (The valid bits say what the lane uses; outside the read stage
//! the lane ignores its inputs.)
//! The write stage (`v2`, `l < wn2`) writes the scratchpad byte at
//! `wa2 + l` (`we8`: ACT, MAX) or the accumulator word at `wa2 + 4l` (`we32`:
//! ADD, whose ACCUMULATE also reads that word). All arithmetic is 32-bit
//! wrapping.

use rust_hdl::prelude::*;

/// The lane pipeline's shared control: see the module documentation.
#[derive(LogicBlock)]
pub struct LaneCtl {
    pub clock: Signal<In, Clock>,
    pub enable: Signal<In, Bit>,
    pub clear: Signal<In, Bit>,
    /// A descriptor is accepted at this edge: a MATMUL (`start_mm`) with
    /// words 1 and 3 `start_a`, `start_c`.
    pub start: Signal<In, Bit>,
    pub start_mm: Signal<In, Bit>,
    pub start_a: Signal<In, Bits<32>>,
    pub start_c: Signal<In, Bits<32>>,
    /// The descriptor held, from [`super::Ctl`]: `busy`, opcode, words 2, 3,
    /// 4, word 5's low half (MATMUL: N), `cnt`, `lat`.
    pub busy: Signal<In, Bit>,
    pub op: Signal<In, Bits<8>>,
    pub w2: Signal<In, Bits<32>>,
    pub w3: Signal<In, Bits<32>>,
    pub w4: Signal<In, Bits<32>>,
    pub mn: Signal<In, Bits<16>>,
    pub cnt: Signal<In, Bits<32>>,
    pub lat: Signal<In, Bits<32>>,
    /// MATMUL: an A row enters the array (`sa += K`); an output row is
    /// written (`sb += 4N`).
    pub mm_sa: Signal<In, Bit>,
    pub mm_sb: Signal<In, Bit>,
    /// The read stage is active in this cycle.
    pub rd: Signal<Out, Bit>,
    pub sa: Signal<Out, Bits<32>>,
    pub sb: Signal<Out, Bits<32>>,
    pub sg: Signal<Out, Bits<32>>,
    /// The write stage: valid, address, lane count.
    pub v2: Signal<Out, Bit>,
    pub wa2: Signal<Out, Bits<32>>,
    pub wn2: Signal<Out, Bits<32>>,
    sa_r: DFF<Bits<32>>,
    sb_r: DFF<Bits<32>>,
    sg_r: DFF<Bits<32>>,
    v1_r: DFF<Bit>,
    wa1_r: DFF<Bits<32>>,
    wn1_r: DFF<Bits<32>>,
    v2_r: DFF<Bit>,
    wa2_r: DFF<Bits<32>>,
    wn2_r: DFF<Bits<32>>,
    acols: Signal<Local, Bits<32>>,
    aleft: Signal<Local, Bits<32>>,
    eleft: Signal<Local, Bits<32>>,
    /// `C`, the lanes.
    k_c: Constant<Bits<32>>,
}

impl LaneCtl {
    /// The control of `cols` lanes.
    pub fn new(cols: u32) -> LaneCtl {
        LaneCtl {
            clock: Default::default(),
            enable: Default::default(),
            clear: Default::default(),
            start: Default::default(),
            start_mm: Default::default(),
            start_a: Default::default(),
            start_c: Default::default(),
            busy: Default::default(),
            op: Default::default(),
            w2: Default::default(),
            w3: Default::default(),
            w4: Default::default(),
            mn: Default::default(),
            cnt: Default::default(),
            lat: Default::default(),
            mm_sa: Default::default(),
            mm_sb: Default::default(),
            rd: Default::default(),
            sa: Default::default(),
            sb: Default::default(),
            sg: Default::default(),
            v2: Default::default(),
            wa2: Default::default(),
            wn2: Default::default(),
            sa_r: Default::default(),
            sb_r: Default::default(),
            sg_r: Default::default(),
            v1_r: Default::default(),
            wa1_r: Default::default(),
            wn1_r: Default::default(),
            v2_r: Default::default(),
            wa2_r: Default::default(),
            wn2_r: Default::default(),
            acols: Default::default(),
            aleft: Default::default(),
            eleft: Default::default(),
            k_c: Constant::new(Bits::<32>::from(cols as u64)),
        }
    }
}

impl std::fmt::Debug for LaneCtl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneCtl")
            .field("sa", &self.sa_r.q.val())
            .field("sb", &self.sb_r.q.val())
            .field("sg", &self.sg_r.q.val())
            .finish_non_exhaustive()
    }
}

mod half {
    use super::LaneCtl;
    use rust_hdl::prelude::*;

    use crate::halves::{NextState, View};

    // The outputs, from the registers and the held descriptor.
    impl View for LaneCtl {
        #[hdl_gen]
        fn update(&mut self) {
            self.rd.next = self.busy.val()
                & ((self.op.val() == 4_u64) | (self.op.val() == 5_u64) | (self.op.val() == 6_u64))
                & ((self.cnt.val() + 2_u64) <= self.lat.val());
            self.sa.next = self.sa_r.q.val();
            self.sb.next = self.sb_r.q.val();
            self.sg.next = self.sg_r.q.val();
            self.v2.next = self.v2_r.q.val();
            self.wa2.next = self.wa2_r.q.val();
            self.wn2.next = self.wn2_r.q.val();
        }
    }

    // The next state.
    impl NextState for LaneCtl {
        #[hdl_gen]
        fn update(&mut self) {
            dff_setup!(self, clock, sa_r, sb_r, sg_r, v1_r, wa1_r, wn1_r, v2_r, wa2_r, wn2_r);
            self.acols.next = bit_cast::<32, 16>(self.w4.val().get_bits::<16>(16));
            self.aleft.next = self.acols.val() - self.sg_r.q.val();
            self.eleft.next = self.w4.val() - self.sa_r.q.val();
            if self.clear.val() {
                self.v1_r.d.next = false;
                self.v2_r.d.next = false;
            } else if self.enable.val() {
                // MATMUL (weight-stationary).
                if self.mm_sa.val() {
                    self.sa_r.d.next = self.sa_r.q.val() + self.acols.val();
                }
                if self.mm_sb.val() {
                    self.sb_r.d.next =
                        self.sb_r.q.val() + (bit_cast::<32, 16>(self.mn.val()) << 2_u64);
                }
                // The read stage.
                self.v1_r.d.next = self.rd.val();
                if self.rd.val() {
                    if self.op.val() == 4_u64 {
                        self.wa1_r.d.next = self.w2.val() + self.sb_r.q.val() + self.sg_r.q.val();
                        self.wn1_r.d.next = self.k_c.val();
                        if self.aleft.val() < self.k_c.val() {
                            self.wn1_r.d.next = self.aleft.val();
                        }
                        if (self.sg_r.q.val() + self.k_c.val()) < self.acols.val() {
                            self.sg_r.d.next = self.sg_r.q.val() + self.k_c.val();
                        } else {
                            self.sg_r.d.next = bits::<32>(0);
                            self.sb_r.d.next = self.sb_r.q.val() + self.acols.val();
                        }
                    } else {
                        self.wa1_r.d.next = self.w3.val() + self.sa_r.q.val();
                        if self.op.val() == 5_u64 {
                            self.wa1_r.d.next = self.w3.val() + (self.sa_r.q.val() << 2_u64);
                        }
                        self.wn1_r.d.next = self.k_c.val();
                        if self.eleft.val() < self.k_c.val() {
                            self.wn1_r.d.next = self.eleft.val();
                        }
                        self.sa_r.d.next = self.sa_r.q.val() + self.k_c.val();
                    }
                }
                // Stage 2.
                self.v2_r.d.next = self.v1_r.q.val();
                self.wa2_r.d.next = self.wa1_r.q.val();
                self.wn2_r.d.next = self.wn1_r.q.val();
                // A new descriptor.
                if self.start.val() {
                    self.sa_r.d.next = bits::<32>(0);
                    self.sb_r.d.next = bits::<32>(0);
                    if self.start_mm.val() {
                        self.sa_r.d.next = self.start_a.val();
                        self.sb_r.d.next = self.start_c.val();
                    }
                    self.sg_r.d.next = bits::<32>(0);
                }
            }
        }
    }
}

crate::halves::logic_from_halves!(LaneCtl);

/// Lane `l`'s addresses, valid bits and write enables: see the module
/// documentation.
#[derive(LogicBlock)]
pub struct LaneAddr {
    /// The descriptor held (opcode, flags 1 and 2, words 1, 2, 3, 4, 7)
    /// and [`LaneCtl`]'s registers.
    pub op: Signal<In, Bits<8>>,
    pub f1: Signal<In, Bit>,
    pub f2: Signal<In, Bit>,
    pub w1: Signal<In, Bits<32>>,
    pub w2: Signal<In, Bits<32>>,
    pub w3: Signal<In, Bits<32>>,
    pub w4: Signal<In, Bits<32>>,
    pub w7: Signal<In, Bits<32>>,
    pub sa: Signal<In, Bits<32>>,
    pub sb: Signal<In, Bits<32>>,
    pub sg: Signal<In, Bits<32>>,
    pub v2: Signal<In, Bit>,
    pub wa2: Signal<In, Bits<32>>,
    pub wn2: Signal<In, Bits<32>>,
    /// ACT: the accumulator's address and valid bit, the bias's (and flag
    /// 1), the table entry's (and flag 2).
    pub asrc: Signal<Out, Bits<32>>,
    pub aok: Signal<Out, Bit>,
    pub abia: Signal<Out, Bits<32>>,
    pub bok: Signal<Out, Bit>,
    pub qta: Signal<Out, Bits<32>>,
    pub qok: Signal<Out, Bit>,
    /// ADD / MAX: the two operands' addresses, valid.
    pub eaa: Signal<Out, Bits<32>>,
    pub eba: Signal<Out, Bits<32>>,
    pub eok: Signal<Out, Bit>,
    /// The write stage: scratchpad byte address and enable (ACT, MAX),
    /// accumulator word address and enable (ADD).
    pub wsb: Signal<Out, Bits<32>>,
    pub we8: Signal<Out, Bit>,
    pub wav: Signal<Out, Bits<32>>,
    pub we32: Signal<Out, Bit>,
    ae: Signal<Local, Bits<32>>,
    ee: Signal<Local, Bits<32>>,
    wl: Signal<Local, Bit>,
    /// The lane's index `l`.
    k_l: Constant<Bits<32>>,
}

impl LaneAddr {
    /// The addresses of lane `l`.
    pub fn new(l: u32) -> LaneAddr {
        LaneAddr {
            op: Default::default(),
            f1: Default::default(),
            f2: Default::default(),
            w1: Default::default(),
            w2: Default::default(),
            w3: Default::default(),
            w4: Default::default(),
            w7: Default::default(),
            sa: Default::default(),
            sb: Default::default(),
            sg: Default::default(),
            v2: Default::default(),
            wa2: Default::default(),
            wn2: Default::default(),
            asrc: Default::default(),
            aok: Default::default(),
            abia: Default::default(),
            bok: Default::default(),
            qta: Default::default(),
            qok: Default::default(),
            eaa: Default::default(),
            eba: Default::default(),
            eok: Default::default(),
            wsb: Default::default(),
            we8: Default::default(),
            wav: Default::default(),
            we32: Default::default(),
            ae: Default::default(),
            ee: Default::default(),
            wl: Default::default(),
            k_l: Constant::new(Bits::<32>::from(l as u64)),
        }
    }
}

impl std::fmt::Debug for LaneAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneAddr")
            .field("l", &self.k_l.val())
            .finish_non_exhaustive()
    }
}

impl Logic for LaneAddr {
    #[hdl_gen]
    fn update(&mut self) {
        // ACT.
        self.ae.next = self.sg.val() + self.k_l.val();
        self.aok.next = (self.op.val() == 4_u64)
            & (self.ae.val() < bit_cast::<32, 16>(self.w4.val().get_bits::<16>(16)));
        self.asrc.next = self.w1.val() + ((self.sb.val() + self.ae.val()) << 2_u64);
        self.abia.next = self.w3.val() + (self.ae.val() << 2_u64);
        self.bok.next = self.aok.val() & self.f1.val();
        self.qta.next = self.w7.val() + (self.ae.val() << 3_u64);
        self.qok.next = self.aok.val() & self.f2.val();
        // ADD / MAX.
        self.ee.next = self.sa.val() + self.k_l.val();
        self.eok.next =
            ((self.op.val() == 5_u64) | (self.op.val() == 6_u64)) & (self.ee.val() < self.w4.val());
        self.eaa.next = self.w1.val() + self.ee.val();
        self.eba.next = self.w2.val() + self.ee.val();
        // The write stage.
        self.wl.next = self.v2.val() & (self.k_l.val() < self.wn2.val());
        self.wsb.next = self.wa2.val() + self.k_l.val();
        self.wav.next = self.wa2.val() + (self.k_l.val() << 2_u64);
        self.we8.next = self.wl.val() & ((self.op.val() == 4_u64) | (self.op.val() == 6_u64));
        self.we32.next = self.wl.val() & (self.op.val() == 5_u64);
    }
}
