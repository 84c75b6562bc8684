//! The cycle-accurate NPU model.
//!
//! * [`Device`]: the boundary between driver and hardware; [`ModelDevice`] is the
//!   model's implementation.
//! * One module per hardware block: [`cmdproc`], [`dma`], [`spad`], [`mac`],
//!   [`act`], [`xlat`], and the DRAM timing model [`dram`] (shared with the RTL
//!   harness).
//! * [`event`]: the observable events and the sink trait.
//! * [`config`]: the hardware configuration.
//! * [`run`]: helpers to load a program into memory and run it to its last FENCE.
//!
//! The timing rules are in `docs/timing.md`; each has a test in `tests/timing.rs`.

pub mod act;
pub mod cmdproc;
pub mod config;
pub mod device;
pub mod dma;
pub mod dram;
pub mod event;
pub mod mac;
pub mod mem;
pub mod model;
pub mod run;
pub mod spad;
pub mod xlat;

pub use cmdproc::Fault;
pub use config::{ConfigError, Dataflow, NpuConfig};
pub use device::{Device, RunExit};
pub use event::{Engine, Event, EventSink, MemKind, NullSink, TokenQueue};
pub use mem::{DeviceMemory, VecMemory};
pub use model::{Counters, ModelDevice};
