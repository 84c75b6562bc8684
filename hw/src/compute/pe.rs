//! The processing elements: [`Pe`] (weight-stationary), [`PeDb`] (weight-stationary
//! with two weight banks, rule C1b) and [`PeOs`] (output-stationary, rule C1c).
//!
//! `Pe`, one processing element of the weight-stationary array:
//!
//! Registers: the stationary weight `w` (loaded by shifting down the column while
//! `w_shift`), the activation `a` (passed right) and the partial sum `p` (passed
//! down). `sum = psum_in + a_in * w` (int8 x int8, sign-extended, 32-bit wrapping)
//! is combinational; the bottom row's `sum` is the column's output. All registers
//! change only when `en` (the device acts in this cycle).

use rust_hdl::prelude::*;

/// Sign extension from `N` to `M` bits through the big-integer value.
///
/// rust-hdl's own `signed_bit_cast` recurses forever on the most negative value
/// (-128 for int8) in simulation; the `#[hdl_gen]` macro maps every function whose
/// name starts with `signed_bit_cast` to Verilog `$signed(..)`, so this one
/// generates the same Verilog and simulates correctly.
pub fn signed_bit_cast_sx<const M: usize, const N: usize>(x: Signed<N>) -> Signed<M> {
    Signed::<M>::from(x.bigint())
}

/// A processing element: see the module documentation.
#[derive(LogicBlock, Default)]
pub struct Pe {
    pub clock: Signal<In, Clock>,
    /// Registers update only when set.
    pub en: Signal<In, Bit>,
    /// Load `w_in` into the weight register (with `en`).
    pub w_shift: Signal<In, Bit>,
    pub w_in: Signal<In, Bits<8>>,
    pub a_in: Signal<In, Bits<8>>,
    pub psum_in: Signal<In, Bits<32>>,
    /// The stationary weight (to the PE below while shifting).
    pub w_out: Signal<Out, Bits<8>>,
    /// The registered activation (to the PE on the right).
    pub a_out: Signal<Out, Bits<8>>,
    /// The registered partial sum (to the PE below).
    pub psum_out: Signal<Out, Bits<32>>,
    /// `psum_in + a_in * w`, combinational.
    pub sum: Signal<Out, Bits<32>>,
    prod: Signal<Local, Signed<32>>,
    w: DFF<Bits<8>>,
    a: DFF<Bits<8>>,
    p: DFF<Bits<32>>,
}

impl std::fmt::Debug for Pe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pe")
            .field("w", &self.w.q.val())
            .field("a", &self.a.q.val())
            .field("psum", &self.p.q.val())
            .finish()
    }
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, w, a, p);
        self.prod.next = signed_bit_cast_sx::<16, 8>(signed_cast(self.a_in.val()))
            * signed_bit_cast_sx::<16, 8>(signed_cast(self.w.q.val()));
        self.sum.next = self.psum_in.val() + unsigned_cast(self.prod.val());
        if self.en.val() {
            self.a.d.next = self.a_in.val();
            self.p.d.next = self.sum.val();
            if self.w_shift.val() {
                self.w.d.next = self.w_in.val();
            }
        }
        self.w_out.next = self.w.q.val();
        self.a_out.next = self.a.q.val();
        self.psum_out.next = self.p.q.val();
    }
}

/// A processing element of the weight-stationary array with two weight banks
/// (rule C1b). The weight loader shifts `w_in` into bank `w_bank` (with
/// `w_shift`); `w_out` is that bank's weight, passed to the PE below. The
/// bank a product uses travels with its activation: `sel_in` (registered to
/// `sel_out`, to the PE on the right) chooses `w1` when set, else `w0`.
#[derive(LogicBlock, Default)]
pub struct PeDb {
    pub clock: Signal<In, Clock>,
    pub en: Signal<In, Bit>,
    pub w_shift: Signal<In, Bit>,
    /// The bank being loaded.
    pub w_bank: Signal<In, Bit>,
    pub w_in: Signal<In, Bits<8>>,
    pub a_in: Signal<In, Bits<8>>,
    /// The bank the activation `a_in` multiplies with.
    pub sel_in: Signal<In, Bit>,
    pub psum_in: Signal<In, Bits<32>>,
    pub w_out: Signal<Out, Bits<8>>,
    pub a_out: Signal<Out, Bits<8>>,
    pub sel_out: Signal<Out, Bit>,
    pub psum_out: Signal<Out, Bits<32>>,
    /// `psum_in + a_in * w[sel_in]`, combinational.
    pub sum: Signal<Out, Bits<32>>,
    wsel: Signal<Local, Bits<8>>,
    prod: Signal<Local, Signed<32>>,
    w0: DFF<Bits<8>>,
    w1: DFF<Bits<8>>,
    a: DFF<Bits<8>>,
    s: DFF<Bit>,
    p: DFF<Bits<32>>,
}

impl std::fmt::Debug for PeDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeDb")
            .field("w0", &self.w0.q.val())
            .field("w1", &self.w1.q.val())
            .field("a", &self.a.q.val())
            .field("psum", &self.p.q.val())
            .finish()
    }
}

impl Logic for PeDb {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, w0, w1, a, s, p);
        if self.sel_in.val() {
            self.wsel.next = self.w1.q.val();
        } else {
            self.wsel.next = self.w0.q.val();
        }
        self.prod.next = signed_bit_cast_sx::<16, 8>(signed_cast(self.a_in.val()))
            * signed_bit_cast_sx::<16, 8>(signed_cast(self.wsel.val()));
        self.sum.next = self.psum_in.val() + unsigned_cast(self.prod.val());
        if self.en.val() {
            self.a.d.next = self.a_in.val();
            self.s.d.next = self.sel_in.val();
            self.p.d.next = self.sum.val();
            if self.w_shift.val() {
                if self.w_bank.val() {
                    self.w1.d.next = self.w_in.val();
                } else {
                    self.w0.d.next = self.w_in.val();
                }
            }
        }
        if self.w_bank.val() {
            self.w_out.next = self.w1.q.val();
        } else {
            self.w_out.next = self.w0.q.val();
        }
        self.a_out.next = self.a.q.val();
        self.sel_out.next = self.s.q.val();
        self.psum_out.next = self.p.q.val();
    }
}

/// A processing element of the output-stationary array (rule C1c): A moves
/// right, W moves down, and the PE accumulates `a_in * w_in` into `acc`. The
/// flag `f_in` travels with A and marks the first operand of a new output
/// tile: the PE then moves its finished sum to the output register `o` and
/// restarts `acc` with the new product.
#[derive(LogicBlock, Default)]
pub struct PeOs {
    pub clock: Signal<In, Clock>,
    pub en: Signal<In, Bit>,
    pub a_in: Signal<In, Bits<8>>,
    pub w_in: Signal<In, Bits<8>>,
    pub f_in: Signal<In, Bit>,
    pub a_out: Signal<Out, Bits<8>>,
    pub w_out: Signal<Out, Bits<8>>,
    pub f_out: Signal<Out, Bit>,
    /// The finished sum of the previous tile.
    pub o: Signal<Out, Bits<32>>,
    prod: Signal<Local, Signed<32>>,
    a: DFF<Bits<8>>,
    w: DFF<Bits<8>>,
    f: DFF<Bit>,
    acc: DFF<Bits<32>>,
    out: DFF<Bits<32>>,
}

impl std::fmt::Debug for PeOs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeOs")
            .field("acc", &self.acc.q.val())
            .field("o", &self.out.q.val())
            .finish()
    }
}

impl Logic for PeOs {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, a, w, f, acc, out);
        self.prod.next = signed_bit_cast_sx::<16, 8>(signed_cast(self.a_in.val()))
            * signed_bit_cast_sx::<16, 8>(signed_cast(self.w_in.val()));
        if self.en.val() {
            self.a.d.next = self.a_in.val();
            self.w.d.next = self.w_in.val();
            self.f.d.next = self.f_in.val();
            if self.f_in.val() {
                self.acc.d.next = unsigned_cast(self.prod.val());
                self.out.d.next = self.acc.q.val();
            } else {
                self.acc.d.next = self.acc.q.val() + unsigned_cast(self.prod.val());
            }
        }
        self.a_out.next = self.a.q.val();
        self.w_out.next = self.w.q.val();
        self.f_out.next = self.f.q.val();
        self.o.next = self.out.q.val();
    }
}
