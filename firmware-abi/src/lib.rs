//! The npukit firmware ABI: the one contract that the model (`npukit-sim`), the RTL
//! (`npukit-hw`/`npukit-rtl`) and every driver implement.
//!
//! * [`regs`]: the MMIO register map (offsets, access, reset values, fields).
//! * [`desc`]: the 32-byte command descriptor, its opcodes and flags, encode/decode
//!   with typed validation errors.
//! * [`error`]: the device error codes latched in `ERR_CODE`.
//! * [`xlat`]: the per-job address-translation table format.
//!
//! Everything else (the C header, `docs/abi.md`) is generated from this crate by
//! [`gen`]. The crate is `no_std` (with `alloc` for the generators and the
//! assembler) so firmware or a kernel-side port can use the same definitions.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod asm;
pub mod desc;
pub mod error;
pub mod gen;
pub mod program;
pub mod regs;
pub mod xlat;

pub use desc::{DecodeError, Descriptor, Opcode, Unit, DESC_BYTES};
pub use error::ErrorCode;

/// Magic value of the `ID` register: ASCII "NPUK".
pub const DEVICE_ID: u32 = 0x4E50_554B;
/// ABI major version: bumped when an existing register, field or descriptor changes
/// meaning. A driver must refuse a device whose major differs from its own.
pub const ABI_MAJOR: u16 = 1;
/// ABI minor version: bumped when something is added (a register, an opcode, a flag)
/// that an older driver can safely ignore.
pub const ABI_MINOR: u16 = 1;

/// `VERSION` register value: major in bits 31:16, minor in bits 15:0.
pub const fn abi_version() -> u32 {
    ((ABI_MAJOR as u32) << 16) | ABI_MINOR as u32
}

/// Capability bits, read from the `CAPS` register.
pub mod caps {
    /// Per-job address translation (`XLAT_*` registers, `CONTROL.XLAT_EN`).
    pub const TRANSLATION: u32 = 1 << 0;
    /// FENCE can write its sequence number to memory (`FENCE_WRITEBACK`).
    pub const FENCE_WRITEBACK: u32 = 1 << 1;
    /// The hardware watchdog (`WATCHDOG` register).
    pub const WATCHDOG: u32 = 1 << 2;
    /// Element-wise ADD and MAX in the activation unit.
    pub const ELEMENTWISE: u32 = 1 << 3;
    /// Weight-stationary dataflow (docs/timing.md, rule C1a).
    pub const WEIGHT_STATIONARY: u32 = 1 << 4;
    /// ACT's `PER_CHANNEL` flag: per-output-channel multiplier and shift from a
    /// table in the accumulator memory (ABI 1.1).
    pub const PER_CHANNEL_ACT: u32 = 1 << 5;
    /// Output-stationary dataflow (rule C1c); exclusive with `WEIGHT_STATIONARY`.
    pub const OUTPUT_STATIONARY: u32 = 1 << 6;
    /// A second weight bank: the next MATMUL's weights load during the
    /// current one (rule C1b; with `WEIGHT_STATIONARY` only).
    pub const WEIGHT_DOUBLE_BUFFER: u32 = 1 << 7;
    /// All capability bits with their names, for generators.
    pub const ALL: &[(&str, u32, &str)] = &[
        ("TRANSLATION", TRANSLATION, "per-job address translation"),
        (
            "FENCE_WRITEBACK",
            FENCE_WRITEBACK,
            "FENCE can write its sequence number to memory",
        ),
        (
            "WATCHDOG",
            WATCHDOG,
            "hardware watchdog (WATCHDOG register)",
        ),
        ("ELEMENTWISE", ELEMENTWISE, "element-wise ADD and MAX"),
        (
            "WEIGHT_STATIONARY",
            WEIGHT_STATIONARY,
            "weight-stationary MAC array",
        ),
        (
            "PER_CHANNEL_ACT",
            PER_CHANNEL_ACT,
            "ACT per-output-channel requantisation (PER_CHANNEL flag, ABI 1.1)",
        ),
        (
            "OUTPUT_STATIONARY",
            OUTPUT_STATIONARY,
            "output-stationary MAC array",
        ),
        (
            "WEIGHT_DOUBLE_BUFFER",
            WEIGHT_DOUBLE_BUFFER,
            "two weight banks: the next MATMUL's weights load during the current one",
        ),
    ];
}

/// The limits a descriptor is validated against: the parts of a device
/// configuration that the ABI needs. Read them from the capability registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// MAC array rows (the K extent of one fold).
    pub rows: u32,
    /// MAC array columns (the N extent of one fold, and the activation unit's lanes).
    pub cols: u32,
    /// Scratchpad size in bytes.
    pub spad_bytes: u32,
    /// Accumulator memory size in bytes (4 bytes per int32 element).
    pub acc_bytes: u32,
}
