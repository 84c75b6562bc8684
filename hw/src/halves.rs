//! Blocks built as two `#[hdl_gen]` halves. rust-hdl puts a block's logic in
//! one `always @(*)`; when the block's inputs depend (through its parent) on
//! its own outputs, Verilator then sees a combinational loop (UNOPTFLAT).
//! Such a block implements [`View`] (its outputs, from its state and the
//! inputs that do not depend on them) and [`NextState`] (the rest, from the
//! cycle's decisions) each with `#[hdl_gen]`, and gets its `Logic` from
//! [`logic_from_halves!`]: the two run in that order in simulation and are two
//! `always @(*)` blocks in the Verilog. Used by `Regs`, `Fence`, `Ctl` and
//! `LaneCtl`.

use rust_hdl::core::verilog_gen::verilog_combinatorial;
use rust_hdl::prelude::*;

/// The outputs: decided from the state and the inputs that do not depend on
/// them.
pub(crate) trait View {
    fn update(&mut self);
    fn connect(&mut self);
    fn hdl(&self) -> Verilog;
}

/// The next state (and any output decided from the cycle's decisions).
pub(crate) trait NextState {
    fn update(&mut self);
    fn connect(&mut self);
    fn hdl(&self) -> Verilog;
}

/// The block's Verilog: the two halves' `always @(*)` blocks, view first.
pub(crate) fn hdl<B: View + NextState>(block: &B) -> Verilog {
    let mut code = String::new();
    for part in [View::hdl(block), NextState::hdl(block)] {
        if let Verilog::Combinatorial(body) = part {
            code += &verilog_combinatorial(&body);
        }
    }
    Verilog::Custom(code)
}

/// `impl Logic for $block` from its [`View`] and [`NextState`] halves.
macro_rules! logic_from_halves {
    ($block:ty) => {
        impl rust_hdl::prelude::Logic for $block {
            fn update(&mut self) {
                $crate::halves::View::update(self);
                $crate::halves::NextState::update(self);
            }

            fn connect(&mut self) {
                $crate::halves::View::connect(self);
                $crate::halves::NextState::connect(self);
            }

            fn hdl(&self) -> rust_hdl::prelude::Verilog {
                $crate::halves::hdl(self)
            }
        }
    };
}
pub(crate) use logic_from_halves;
