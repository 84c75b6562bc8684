//! The MMIO register map: 32-bit registers, little-endian, at byte offsets from the
//! start of the register window. This table is the single source: the C header and
//! the register reference in `docs/abi.md` are generated from [`REGISTERS`].
//!
//! MMIO accesses take no simulated time: a write made between cycle `t-1` and `t`
//! is seen by the device from cycle `t` on.

/// How software may access a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-only; writes are ignored.
    Ro,
    /// Read-write.
    Rw,
    /// Read; write 1 to clear a bit.
    W1c,
}

impl Access {
    pub const fn name(self) -> &'static str {
        match self {
            Access::Ro => "RO",
            Access::Rw => "RW",
            Access::W1c => "W1C",
        }
    }
}

/// One register of the map.
#[derive(Debug, Clone, Copy)]
pub struct Register {
    pub name: &'static str,
    pub offset: u32,
    pub access: Access,
    /// One line: what the register holds, with its unit.
    pub doc: &'static str,
}

macro_rules! registers {
    ($( $name:ident = $off:literal, $acc:ident, $doc:literal; )*) => {
        $( #[doc = $doc] pub const $name: u32 = $off; )*
        /// Every register, in offset order.
        pub const REGISTERS: &[Register] = &[
            $( Register { name: stringify!($name), offset: $off, access: Access::$acc, doc: $doc }, )*
        ];
    };
}

registers! {
    ID = 0x000, Ro, "Device identification, always 0x4E50554B (\"NPUK\").";
    VERSION = 0x004, Ro, "ABI version: major in bits 31:16, minor in bits 15:0.";
    CAPS = 0x008, Ro, "Capability bits (NPU_CAP_*).";
    ARRAY_SHAPE = 0x00C, Ro, "MAC array shape: rows in bits 15:0, columns in bits 31:16.";
    SPAD_BYTES = 0x010, Ro, "Scratchpad size in bytes (int8 data).";
    ACC_BYTES = 0x014, Ro, "Accumulator memory size in bytes (int32 data).";
    BEAT_BYTES = 0x018, Ro, "Width of one memory-port beat in bytes.";
    CLOCK_MHZ = 0x01C, Ro, "Nominal clock frequency in MHz.";
    CONTROL = 0x020, Rw, "Control bits (NPU_CONTROL_*).";
    STATUS = 0x024, Ro, "Status bits (NPU_STATUS_*).";
    IRQ_STATUS = 0x028, W1c, "Pending interrupt causes (NPU_IRQ_*); write 1 to clear.";
    IRQ_MASK = 0x02C, Rw, "Interrupt enable per cause (NPU_IRQ_*); the line is IRQ_STATUS & IRQ_MASK != 0.";
    RING_BASE_LO = 0x030, Rw, "Command ring physical base address, bits 31:0 (32-byte aligned). Ignored while RUN is set; writing it sets RING_HEAD and RING_TAIL to 0.";
    RING_BASE_HI = 0x034, Rw, "Command ring physical base address, bits 63:32. Ignored while RUN is set; writing it sets RING_HEAD and RING_TAIL to 0.";
    RING_SIZE = 0x038, Rw, "Command ring size in descriptors: a power of two, 2 to MAX_RING. Ignored while RUN is set; writing it sets RING_HEAD and RING_TAIL to 0.";
    RING_HEAD = 0x03C, Ro, "Index of the next descriptor the device will dispatch.";
    RING_TAIL = 0x040, Rw, "Index one past the last valid descriptor; writing it rings the doorbell.";
    FENCE_SEQ = 0x044, Ro, "Sequence number of the last completed FENCE.";
    ERR_CODE = 0x048, Ro, "Error code latched when the device halted (NPU_ERR_*), 0 if none.";
    ERR_DESC = 0x04C, Ro, "Ring index of the descriptor that caused the error.";
    ERR_ADDR_LO = 0x050, Ro, "Faulting address, bits 31:0 (device address or local memory address).";
    ERR_ADDR_HI = 0x054, Ro, "Faulting address, bits 63:32.";
    XLAT_BASE_LO = 0x058, Rw, "Translation table physical base address, bits 31:0 (8-byte aligned: bits 2:0 are ignored and read as zero).";
    XLAT_BASE_HI = 0x05C, Rw, "Translation table physical base address, bits 63:32.";
    XLAT_PAGES = 0x060, Rw, "Number of entries in the translation table (4 KiB pages of device address space).";
    WATCHDOG = 0x064, Rw, "Watchdog limit in cycles without a completed descriptor while work is pending; 0 disables.";
    MAX_RING = 0x068, Ro, "Largest supported RING_SIZE in descriptors.";
    QUEUE_DEPTH = 0x06C, Ro, "Depth of each unit queue (load, compute, store) in descriptors.";
    PERF_CYCLES = 0x100, Ro, "Cycles since reset (64-bit counter: low word here, high word at +4).";
    PERF_LOAD_BUSY = 0x108, Ro, "Cycles the load unit executed a descriptor (64-bit).";
    PERF_LOAD_TOKEN_STALL = 0x110, Ro, "Cycles the load unit waited for a dependency token (64-bit).";
    PERF_LOAD_MEM_STALL = 0x118, Ro, "Cycles the load unit wanted the memory port and did not get it (64-bit).";
    PERF_COMPUTE_BUSY = 0x120, Ro, "Cycles the compute unit executed a descriptor (64-bit).";
    PERF_COMPUTE_TOKEN_STALL = 0x128, Ro, "Cycles the compute unit waited for a dependency token (64-bit).";
    PERF_STORE_BUSY = 0x130, Ro, "Cycles the store unit executed a descriptor (64-bit).";
    PERF_STORE_TOKEN_STALL = 0x138, Ro, "Cycles the store unit waited for a dependency token (64-bit).";
    PERF_STORE_MEM_STALL = 0x140, Ro, "Cycles the store unit wanted the memory port and did not get it (64-bit).";
    PERF_MACS = 0x148, Ro, "Multiply-accumulates performed by MATMUL (useful MACs, 64-bit).";
    PERF_DMA_RD_BYTES = 0x150, Ro, "Bytes read from device memory by LOAD (64-bit).";
    PERF_DMA_WR_BYTES = 0x158, Ro, "Bytes written to device memory by STORE (64-bit).";
    PERF_DESC_DONE = 0x160, Ro, "Descriptors completed, all units and the command processor (64-bit).";
    PERF_MEM_BEATS = 0x168, Ro, "Memory-port beats accepted, all requesters (64-bit).";
}

/// The 64-bit performance counters, in register order; each occupies two registers
/// (low word at the offset, high word at offset + 4).
pub const PERF_COUNTERS: &[u32] = &[
    PERF_CYCLES,
    PERF_LOAD_BUSY,
    PERF_LOAD_TOKEN_STALL,
    PERF_LOAD_MEM_STALL,
    PERF_COMPUTE_BUSY,
    PERF_COMPUTE_TOKEN_STALL,
    PERF_STORE_BUSY,
    PERF_STORE_TOKEN_STALL,
    PERF_STORE_MEM_STALL,
    PERF_MACS,
    PERF_DMA_RD_BYTES,
    PERF_DMA_WR_BYTES,
    PERF_DESC_DONE,
    PERF_MEM_BEATS,
];

/// Size of the register window in bytes.
pub const WINDOW_BYTES: u32 = 0x1000;

/// One named bit or bit field inside a register.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub register: &'static str,
    pub name: &'static str,
    pub shift: u32,
    pub width: u32,
    pub doc: &'static str,
}

impl Field {
    pub const fn mask(&self) -> u32 {
        (((1u64 << self.width) - 1) as u32) << self.shift
    }
}

/// `CONTROL.RUN`: fetch and execute descriptors while set. Clearing it stops
/// fetching; descriptors already dispatched finish.
pub const CONTROL_RUN: u32 = 1 << 0;
/// `CONTROL.RESET`: write 1 to reset the device (self-clearing): every register
/// to its reset value, queues, tokens and counters emptied, the scratchpad and
/// accumulator memories zeroed, memory requests in flight dropped.
pub const CONTROL_RESET: u32 = 1 << 1;
/// `CONTROL.XLAT_EN`: descriptor addresses are device-virtual and go through the
/// translation table; otherwise they are physical.
pub const CONTROL_XLAT_EN: u32 = 1 << 2;

/// `STATUS.BUSY`: descriptors are pending or executing.
pub const STATUS_BUSY: u32 = 1 << 0;
/// `STATUS.HALTED`: an error stopped the device; `ERR_*` say why. Cleared by reset.
pub const STATUS_HALTED: u32 = 1 << 1;

/// `IRQ_*.FENCE`: a FENCE with the IRQ flag completed.
pub const IRQ_FENCE: u32 = 1 << 0;
/// `IRQ_*.ERROR`: the device halted on an error.
pub const IRQ_ERROR: u32 = 1 << 1;

/// Every named bit field, for generators.
pub const FIELDS: &[Field] = &[
    Field {
        register: "ARRAY_SHAPE",
        name: "ROWS",
        shift: 0,
        width: 16,
        doc: "MAC array rows",
    },
    Field {
        register: "ARRAY_SHAPE",
        name: "COLS",
        shift: 16,
        width: 16,
        doc: "MAC array columns",
    },
    Field {
        register: "CONTROL",
        name: "RUN",
        shift: 0,
        width: 1,
        doc: "fetch and execute descriptors",
    },
    Field {
        register: "CONTROL",
        name: "RESET",
        shift: 1,
        width: 1,
        doc: "write 1 to reset the device",
    },
    Field {
        register: "CONTROL",
        name: "XLAT_EN",
        shift: 2,
        width: 1,
        doc: "translate descriptor addresses through the translation table",
    },
    Field {
        register: "STATUS",
        name: "BUSY",
        shift: 0,
        width: 1,
        doc: "work pending or executing",
    },
    Field {
        register: "STATUS",
        name: "HALTED",
        shift: 1,
        width: 1,
        doc: "halted on an error",
    },
    Field {
        register: "IRQ",
        name: "FENCE",
        shift: 0,
        width: 1,
        doc: "a FENCE with the IRQ flag completed",
    },
    Field {
        register: "IRQ",
        name: "ERROR",
        shift: 1,
        width: 1,
        doc: "the device halted on an error",
    },
];

/// Looks up a register by offset.
pub fn by_offset(offset: u32) -> Option<&'static Register> {
    REGISTERS.iter().find(|r| r.offset == offset)
}

/// The name of the register at `offset`, including the high halves of the 64-bit
/// counters (`PERF_CYCLES_HI`), for register traces.
pub fn name_of(offset: u32) -> Option<(&'static str, bool)> {
    if let Some(r) = by_offset(offset) {
        return Some((r.name, false));
    }
    if PERF_COUNTERS.contains(&offset.wrapping_sub(4)) {
        return by_offset(offset - 4).map(|r| (r.name, true));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_aligned_unique_and_sorted() {
        for w in REGISTERS.windows(2) {
            assert!(w[0].offset < w[1].offset, "{} / {}", w[0].name, w[1].name);
        }
        for r in REGISTERS {
            assert_eq!(r.offset % 4, 0, "{}", r.name);
            assert!(r.offset < WINDOW_BYTES);
        }
        // 64-bit counters must leave their high word free.
        for &c in PERF_COUNTERS {
            assert!(by_offset(c + 4).is_none());
            assert_eq!(c % 8, 0);
        }
    }

    #[test]
    fn field_masks() {
        assert_eq!(FIELDS[1].mask(), 0xFFFF_0000);
        assert_eq!(FIELDS[2].mask(), CONTROL_RUN);
    }
}
