//! npukit hardware in rust-hdl: the NPU's blocks and the Verilog generator.
//!
//! * [`top`]: `NpuTop`, the whole device with the harness port contract of
//!   `docs/rtl.md` (the command processor's fetch buffer and dispatch, the
//!   descriptor each unit executes and the event ports as Verilog text; the
//!   children below).
//! * [`dma`]: `DmaUnit`, one LOAD or STORE engine.
//! * [`decode`]: `Decode`, descriptor decode and validation.
//! * [`faults`]: `Faults`, the fault priority (G3) and deadlock (E1).
//! * [`fence`]: `Fence`, the command processor's FENCE.
//! * [`queue`]: `UnitQueue`, one unit's descriptor queue.
//! * [`xlat`]: `Tlb`, a one-entry translation cache.
//! * [`tokens`]: `Tokens`, the issue rule and the dependency-token counters.
//! * [`port`]: `Port`, the memory-port arbiter and the request mux.
//! * [`regs`]: `Regs`, the MMIO register file, counters, IRQ and watchdog.
//! * [`compute`]: `Compute`, the MAC array, activation unit and local memories.
//! * [`gen`]: the variants (one Verilog file per configuration) and the
//!   generator behind `npukit-hwgen`.

pub mod compute;
pub mod decode;
pub mod dma;
pub mod faults;
pub mod fence;
pub mod gen;
mod halves;
pub mod port;
pub mod queue;
pub mod regs;
pub mod tokens;
pub mod top;
pub mod xlat;
