//! The requantiser's 32 x 32 -> 64-bit signed multiplier (rust-hdl's own
//! multiply is 16 x 16 only), as a custom Verilog block with the same behaviour
//! in simulation.

use rust_hdl::prelude::*;

/// `p = a * b`, both operands and the product two's complement, combinational.
#[derive(LogicBlock, Default)]
pub struct SMul32 {
    pub a: Signal<In, Bits<32>>,
    pub b: Signal<In, Bits<32>>,
    pub p: Signal<Out, Bits<64>>,
}

/// The product as the block computes it.
pub fn smul32(a: u32, b: u32) -> u64 {
    ((a as i32 as i64) * (b as i32 as i64)) as u64
}

impl std::fmt::Debug for SMul32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SMul32").finish_non_exhaustive()
    }
}

impl Logic for SMul32 {
    fn update(&mut self) {
        self.p.next = Bits::<64>::from(smul32(self.a.val().to_u32(), self.b.val().to_u32()));
    }

    fn connect(&mut self) {
        self.p.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom("always @(*) p = $signed(a) * $signed(b);".into())
    }
}
