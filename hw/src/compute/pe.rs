//! One processing element of the weight-stationary array.
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
