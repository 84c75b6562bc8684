//! npukit-rtl: the generated Verilog (`rtl/generated/`), its Verilator build,
//! [`RtlDevice`] (a Verilated variant behind the `Device` trait) and
//! [`Lockstep`], which runs two devices on the same input and stops at the
//! first divergence. See docs/cosim.md.
//!
//! * [`variant`]: the checked-in variants and which ones this build can run.
//! * [`RtlDevice`]: the harness of docs/rtl.md (memory port served with the
//!   model's own DRAM timing, MMIO edges, events rebuilt from the event ports).
//! * [`Lockstep`] and [`Divergence`]: the cycle-by-cycle checker and its report.
//! * [`corpus`]: running programs and workloads in lockstep (used by the tests,
//!   the benches and `npukit cosim`).

pub mod corpus;
mod device;
mod error;
mod ffi;
pub mod lockstep;
pub mod variant;

pub use device::{RtlDevice, Violation};
pub use error::RtlError;
pub use lockstep::{Divergence, Lockstep, LockstepOptions, Observed};
pub use variant::VariantInfo;
