//! The 32-byte command descriptor.
//!
//! A descriptor is eight little-endian 32-bit words. Word 0 is common to all opcodes:
//!
//! | bits  | field |
//! |-------|-------|
//! | 7:0   | opcode ([`Opcode`]) |
//! | 11:8  | dependency flags ([`deps`]) |
//! | 15:12 | opcode flags (per opcode, see below) |
//! | 31:16 | reserved, zero |
//!
//! Words 1-7 are laid out per opcode (see [`LAYOUTS`], from which the C header and
//! `docs/abi.md` are generated). Every bit not named there is reserved and must be
//! zero; the device halts with `RESERVED` otherwise.
//!
//! Decoding is in two steps, as in the device: [`Descriptor::decode`] checks the
//! encoding (opcode, reserved bits, flags), [`Descriptor::validate`] checks fields
//! against the device [`Limits`] (shapes, local-memory ranges, alignment).

use crate::error::ErrorCode;
use crate::Limits;

/// Size of a descriptor in bytes.
pub const DESC_BYTES: usize = 32;

/// Dependency-token flags (word 0, bits 11:8).
///
/// The three units form a chain load -> compute -> store. Between neighbours run
/// two token counters, one each way (load->compute, compute->load,
/// compute->store, store->compute). A descriptor with a WAIT flag does not start
/// until the counter from that neighbour is nonzero, and takes one token when it
/// starts; a SIGNAL flag adds one token to the neighbour's counter when the
/// descriptor completes. "Prev" is the neighbour towards load, "next" towards store:
/// load has no prev, store has no next.
pub mod deps {
    /// Wait for (and take) a token from the previous unit.
    pub const WAIT_PREV: u8 = 1 << 0;
    /// Wait for (and take) a token from the next unit.
    pub const WAIT_NEXT: u8 = 1 << 1;
    /// On completion, send a token to the previous unit.
    pub const SIGNAL_PREV: u8 = 1 << 2;
    /// On completion, send a token to the next unit.
    pub const SIGNAL_NEXT: u8 = 1 << 3;
    /// Bit position of the flags in word 0.
    pub const SHIFT: u32 = 8;
    pub const ALL: &[(&str, u8, &str)] = &[
        (
            "WAIT_PREV",
            WAIT_PREV,
            "wait for a token from the previous unit",
        ),
        (
            "WAIT_NEXT",
            WAIT_NEXT,
            "wait for a token from the next unit",
        ),
        (
            "SIGNAL_PREV",
            SIGNAL_PREV,
            "send a token to the previous unit on completion",
        ),
        (
            "SIGNAL_NEXT",
            SIGNAL_NEXT,
            "send a token to the next unit on completion",
        ),
    ];
}

/// Opcode flags (word 0, bits 15:12); their meaning depends on the opcode.
pub mod flags {
    /// LOAD/STORE: the local side is the accumulator memory (int32), not the scratchpad.
    pub const ACC: u8 = 1 << 0;
    /// MATMUL/ADD: add into the destination instead of overwriting it.
    pub const ACCUMULATE: u8 = 1 << 0;
    /// ACT: clamp the output below at the zero point (ReLU).
    pub const RELU: u8 = 1 << 0;
    /// ACT: add the per-column bias vector.
    pub const BIAS: u8 = 1 << 1;
    /// ACT: per-output-channel requantisation: each column's multiplier and
    /// shift come from the table at `qtab` (word 7), not from words 5 and 6.
    pub const PER_CHANNEL: u8 = 1 << 2;
    /// FENCE: raise the FENCE interrupt on completion.
    pub const IRQ: u8 = 1 << 0;
    /// FENCE: write the sequence number to memory on completion.
    pub const WRITEBACK: u8 = 1 << 1;
    /// Bit position of the flags in word 0.
    pub const SHIFT: u32 = 12;
}

macro_rules! opcodes {
    ($( $name:ident = $val:literal, $unit:expr, $doc:literal; )*) => {
        /// Descriptor opcodes (word 0, bits 7:0).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Opcode { $( #[doc = $doc] $name = $val, )* }

        impl Opcode {
            pub const ALL: &'static [Opcode] = &[ $( Opcode::$name, )* ];
            pub fn from_u8(v: u8) -> Option<Self> {
                match v { $( $val => Some(Opcode::$name), )* _ => None }
            }
            /// The unit that executes it; `None`: the command processor itself.
            pub const fn unit(self) -> Option<Unit> {
                match self { $( Opcode::$name => $unit, )* }
            }
            pub const fn doc(self) -> &'static str {
                match self { $( Opcode::$name => $doc, )* }
            }
        }
    };
}

opcodes! {
    Nop = 0, None, "No operation; retired by the command processor.";
    Load = 1, Some(Unit::Load), "2-D strided copy from device memory to the scratchpad or accumulator.";
    Store = 2, Some(Unit::Store), "2-D strided copy from the scratchpad or accumulator to device memory.";
    Matmul = 3, Some(Unit::Compute), "One fold of the MAC array (any dataflow; timing rule C1): OUT[M x N] (+)= A[M x K] * W[K x N], int8 x int8 -> int32, wrapping.";
    Act = 4, Some(Unit::Compute), "Requantise int32 accumulators to int8: bias, fixed-point multiply, rounding shift, zero point, optional ReLU.";
    Add = 5, Some(Unit::Compute), "Element-wise OUT (+)= (A - za) * ma + (B - zb) * mb, int8 inputs, int32 result in the accumulator (accumulation wraps).";
    Max = 6, Some(Unit::Compute), "Element-wise int8 maximum of two scratchpad vectors.";
    Fence = 7, None, "Wait until all units drain, then publish the sequence number (register, memory, interrupt).";
}

impl Opcode {
    /// Upper-case mnemonic, as in the assembly format and the C header.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Opcode::Nop => "NOP",
            Opcode::Load => "LOAD",
            Opcode::Store => "STORE",
            Opcode::Matmul => "MATMUL",
            Opcode::Act => "ACT",
            Opcode::Add => "ADD",
            Opcode::Max => "MAX",
            Opcode::Fence => "FENCE",
        }
    }
}

impl core::fmt::Display for Opcode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.mnemonic())
    }
}

/// The three execution units, in chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Unit {
    Load = 0,
    Compute = 1,
    Store = 2,
}

impl Unit {
    pub const ALL: [Unit; 3] = [Unit::Load, Unit::Compute, Unit::Store];
    pub const fn name(self) -> &'static str {
        match self {
            Unit::Load => "load",
            Unit::Compute => "compute",
            Unit::Store => "store",
        }
    }
    /// Which dependency flags the unit may use.
    pub const fn allowed_deps(self) -> u8 {
        match self {
            Unit::Load => deps::WAIT_NEXT | deps::SIGNAL_NEXT,
            Unit::Compute => {
                deps::WAIT_PREV | deps::WAIT_NEXT | deps::SIGNAL_PREV | deps::SIGNAL_NEXT
            }
            Unit::Store => deps::WAIT_PREV | deps::SIGNAL_PREV,
        }
    }
}

/// LOAD and STORE: a 2-D strided transfer of `rows` rows of `row_bytes` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dma {
    /// Local byte address (scratchpad, or accumulator when `acc`).
    pub local: u32,
    /// Device address of the first row (virtual when translation is on).
    pub dram: u64,
    pub rows: u16,
    pub row_bytes: u16,
    /// Bytes between row starts in device memory (any value, 0 repeats a row).
    pub dram_stride: u32,
    /// Bytes between row starts in local memory (at least `row_bytes` when rows > 1).
    pub local_stride: u32,
    /// Local side is the accumulator memory.
    pub acc: bool,
}

/// MATMUL: one fold on the array. A is M x K int8 (row-major, packed) at `a`,
/// W is K x N int8 (packed) at `w`, OUT is M x N int32 (packed) at accumulator
/// byte address `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Matmul {
    pub a: u32,
    pub w: u32,
    pub out: u32,
    pub m: u16,
    pub k: u16,
    pub n: u16,
    pub accumulate: bool,
}

/// ACT: requantise a `rows` x `cols` int32 block at accumulator address `src`
/// into int8 at scratchpad address `dst` (both packed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Act {
    pub src: u32,
    pub dst: u32,
    /// Accumulator address of `cols` int32 biases, one per column.
    pub bias: Option<u32>,
    pub rows: u16,
    pub cols: u16,
    /// Per-tensor multiplier; must be 0 with `qtab`.
    pub multiplier: i32,
    /// Per-tensor right shift with rounding, 0..=62; must be 0 with `qtab`.
    pub shift: u8,
    pub zero_point: i8,
    pub relu: bool,
    /// Per-output-channel requantisation (flag `PER_CHANNEL`): accumulator
    /// address (multiple of 4) of `cols` [`QuantEntry`] entries, 8 bytes each.
    pub qtab: Option<u32>,
}

/// Bytes of one entry of an ACT per-channel table.
pub const QTAB_ENTRY_BYTES: u32 = 8;

/// One entry of an ACT per-channel table (`qtab`), for output column `j` at
/// `qtab + 8 * j`: the little-endian i32 multiplier, then the u32 shift.
///
/// The shift is taken from bits 7:0 (bits 31:8 are ignored). Any value 0..=255
/// is defined: the rounding shift is exact (see `docs/timing.md`, C2, and the
/// activation unit), so shifts of 64 and more give 0 before the zero point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantEntry {
    pub multiplier: i32,
    pub shift: u32,
}

impl QuantEntry {
    /// The 8 bytes of the entry as they sit in the accumulator memory.
    pub fn to_bytes(self) -> [u8; QTAB_ENTRY_BYTES as usize] {
        let mut b = [0u8; QTAB_ENTRY_BYTES as usize];
        b[..4].copy_from_slice(&self.multiplier.to_le_bytes());
        b[4..].copy_from_slice(&self.shift.to_le_bytes());
        b
    }

    /// The entry from its 8 bytes.
    pub fn from_bytes(b: [u8; QTAB_ENTRY_BYTES as usize]) -> Self {
        QuantEntry {
            multiplier: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            shift: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// The shift the activation unit applies (bits 7:0).
    pub fn effective_shift(self) -> u8 {
        self.shift as u8
    }
}

/// The bytes of a per-channel table (entry `j` at offset `8 * j`), ready to be
/// loaded into the accumulator memory at `qtab`.
pub fn qtab_image(entries: &[QuantEntry]) -> alloc::vec::Vec<u8> {
    entries.iter().flat_map(|e| e.to_bytes()).collect()
}

/// ADD: `len` int8 elements of A and B (scratchpad) to int32 at accumulator
/// address `dst`: `(a - a_zp) * a_mult + (b - b_zp) * b_mult`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Add {
    pub a: u32,
    pub b: u32,
    pub dst: u32,
    pub len: u32,
    pub a_zp: i8,
    pub b_zp: i8,
    pub a_mult: i16,
    pub b_mult: i16,
    pub accumulate: bool,
}

/// MAX: `len` int8 elements, `dst[i] = max(a[i], b[i])`, all in the scratchpad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Max {
    pub a: u32,
    pub b: u32,
    pub dst: u32,
    pub len: u32,
}

/// FENCE: wait for all units to drain, then set `FENCE_SEQ` to `seq`, write `seq`
/// as a little-endian u32 to `writeback` (if any) and raise the FENCE interrupt if `irq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fence {
    pub seq: u32,
    pub writeback: Option<u64>,
    pub irq: bool,
}

/// A decoded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Nop,
    Load(Dma),
    Store(Dma),
    Matmul(Matmul),
    Act(Act),
    Add(Add),
    Max(Max),
    Fence(Fence),
}

/// A decoded descriptor: dependency flags and the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// [`deps`] bits.
    pub deps: u8,
    pub op: Op,
}

/// Why a descriptor was rejected: the device error code, and for people the
/// opcode, the field and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    /// Mnemonic of the opcode, or "?" when the opcode itself is bad.
    pub opcode: &'static str,
    /// Name of the offending field (as in the assembly format).
    pub field: &'static str,
    pub value: u64,
    /// What the value had to respect, when there is one bound.
    pub limit: Option<u64>,
    /// The faulting address to latch in `ERR_ADDR`, when the code defines one
    /// other than the descriptor's own address.
    pub fault_addr: Option<u64>,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {} = {}", self.opcode, self.field, self.value)?;
        if self.value > 9 {
            write!(f, " ({:#x})", self.value)?;
        }
        let what = match self.code {
            ErrorCode::BadOpcode => "is not an opcode",
            ErrorCode::Reserved => "has reserved bits set",
            ErrorCode::BadFlags => "sets flags this opcode or unit does not define",
            ErrorCode::BadField => "is out of range",
            ErrorCode::Misaligned => "is not aligned",
            ErrorCode::SpadRange => "runs past the end of the scratchpad",
            ErrorCode::AccRange => "runs past the end of the accumulator memory",
            _ => "is invalid",
        };
        write!(f, " {what}")?;
        if let Some(l) = self.limit {
            write!(f, " (limit {l})")?;
        }
        write!(f, " [{}]", self.code)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

/// Field layout of one opcode, for generators: (field name, word, lsb, width, doc).
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub opcode: Opcode,
    pub op_flags: &'static [(&'static str, u8, &'static str)],
    pub fields: &'static [(&'static str, u8, u8, u8, &'static str)],
}

const DMA_FIELDS: &[(&str, u8, u8, u8, &str)] = &[
    (
        "local",
        1,
        0,
        32,
        "local byte address (scratchpad, or accumulator with ACC)",
    ),
    (
        "dram_lo",
        2,
        0,
        32,
        "device address of the first row, bits 31:0",
    ),
    (
        "dram_hi",
        3,
        0,
        32,
        "device address of the first row, bits 63:32",
    ),
    ("rows", 4, 0, 16, "number of rows, >= 1"),
    (
        "row_bytes",
        4,
        16,
        16,
        "bytes per row, >= 1 (multiple of 4 with ACC)",
    ),
    (
        "dram_stride",
        5,
        0,
        32,
        "bytes between row starts in device memory",
    ),
    (
        "local_stride",
        6,
        0,
        32,
        "bytes between row starts in local memory, >= row_bytes if rows > 1",
    ),
];

/// The per-opcode layouts of words 1-7.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        opcode: Opcode::Nop,
        op_flags: &[],
        fields: &[],
    },
    Layout {
        opcode: Opcode::Load,
        op_flags: &[("ACC", flags::ACC, "local side is the accumulator memory")],
        fields: DMA_FIELDS,
    },
    Layout {
        opcode: Opcode::Store,
        op_flags: &[("ACC", flags::ACC, "local side is the accumulator memory")],
        fields: DMA_FIELDS,
    },
    Layout {
        opcode: Opcode::Matmul,
        op_flags: &[(
            "ACCUMULATE",
            flags::ACCUMULATE,
            "add into OUT instead of overwriting",
        )],
        fields: &[
            ("a", 1, 0, 32, "scratchpad address of A, M x K int8 packed"),
            ("w", 2, 0, 32, "scratchpad address of W, K x N int8 packed"),
            (
                "out",
                3,
                0,
                32,
                "accumulator byte address of OUT, M x N int32 packed",
            ),
            ("m", 4, 0, 16, "rows of A streamed, >= 1"),
            ("k", 4, 16, 16, "reduction depth, 1..=array rows"),
            ("n", 5, 0, 16, "output columns, 1..=array cols"),
        ],
    },
    Layout {
        opcode: Opcode::Act,
        op_flags: &[
            ("RELU", flags::RELU, "clamp below at the zero point"),
            ("BIAS", flags::BIAS, "add the per-column bias vector"),
            (
                "PER_CHANNEL",
                flags::PER_CHANNEL,
                "per-column multiplier and shift from the table at qtab",
            ),
        ],
        fields: &[
            (
                "src",
                1,
                0,
                32,
                "accumulator byte address of the rows x cols int32 input",
            ),
            (
                "dst",
                2,
                0,
                32,
                "scratchpad address of the rows x cols int8 output",
            ),
            (
                "bias",
                3,
                0,
                32,
                "accumulator byte address of cols int32 biases (0 without BIAS)",
            ),
            ("rows", 4, 0, 16, "rows, >= 1"),
            ("cols", 4, 16, 16, "columns, >= 1"),
            (
                "multiplier",
                5,
                0,
                32,
                "signed fixed-point multiplier (0 with PER_CHANNEL)",
            ),
            (
                "shift",
                6,
                0,
                8,
                "rounding right shift, 0..=62 (0 with PER_CHANNEL)",
            ),
            ("zero_point", 6, 8, 8, "signed output zero point"),
            (
                "qtab",
                7,
                0,
                32,
                "accumulator byte address of cols x {i32 multiplier, u32 shift} (0 without PER_CHANNEL)",
            ),
        ],
    },
    Layout {
        opcode: Opcode::Add,
        op_flags: &[(
            "ACCUMULATE",
            flags::ACCUMULATE,
            "add into DST instead of overwriting",
        )],
        fields: &[
            ("a", 1, 0, 32, "scratchpad address of A (int8)"),
            ("b", 2, 0, 32, "scratchpad address of B (int8)"),
            (
                "dst",
                3,
                0,
                32,
                "accumulator byte address of the int32 result",
            ),
            ("len", 4, 0, 32, "number of elements, >= 1"),
            ("a_zp", 5, 0, 8, "signed zero point of A"),
            ("b_zp", 5, 8, 8, "signed zero point of B"),
            ("a_mult", 6, 0, 16, "signed multiplier of A"),
            ("b_mult", 6, 16, 16, "signed multiplier of B"),
        ],
    },
    Layout {
        opcode: Opcode::Max,
        op_flags: &[],
        fields: &[
            ("a", 1, 0, 32, "scratchpad address of A (int8)"),
            ("b", 2, 0, 32, "scratchpad address of B (int8)"),
            ("dst", 3, 0, 32, "scratchpad address of the int8 result"),
            ("len", 4, 0, 32, "number of elements, >= 1"),
        ],
    },
    Layout {
        opcode: Opcode::Fence,
        op_flags: &[
            ("IRQ", flags::IRQ, "raise the FENCE interrupt"),
            (
                "WRITEBACK",
                flags::WRITEBACK,
                "write the sequence number to memory",
            ),
        ],
        fields: &[
            ("seq", 1, 0, 32, "sequence number published on completion"),
            (
                "addr_lo",
                2,
                0,
                32,
                "device address for the writeback, bits 31:0 (4-byte aligned)",
            ),
            (
                "addr_hi",
                3,
                0,
                32,
                "device address for the writeback, bits 63:32",
            ),
        ],
    },
];

impl Layout {
    /// The layout of `op`.
    pub fn of(op: Opcode) -> &'static Layout {
        &LAYOUTS[op as usize]
    }

    /// Mask of the bits of word `w` (1..=7) that this opcode defines.
    pub fn used_mask(&self, w: u8) -> u32 {
        self.fields
            .iter()
            .filter(|f| f.1 == w)
            .map(|f| {
                if f.3 == 32 {
                    u32::MAX
                } else {
                    ((1u32 << f.3) - 1) << f.2
                }
            })
            .fold(0, |a, b| a | b)
    }

    fn op_flag_mask(&self) -> u8 {
        self.op_flags.iter().fold(0, |a, f| a | f.1)
    }
}

/// The fields of [`LAYOUTS`] that hold two's-complement signed values; every
/// other field is unsigned. Kept next to `LAYOUTS` because its tuples carry no
/// signedness; the C header gives these fields signed types.
pub const SIGNED_FIELDS: &[(Opcode, &str)] = &[
    (Opcode::Act, "multiplier"),
    (Opcode::Act, "zero_point"),
    (Opcode::Add, "a_zp"),
    (Opcode::Add, "b_zp"),
    (Opcode::Add, "a_mult"),
    (Opcode::Add, "b_mult"),
];

impl Layout {
    /// Whether `field` of this opcode is signed (see [`SIGNED_FIELDS`]).
    pub fn is_signed(&self, field: &str) -> bool {
        SIGNED_FIELDS
            .iter()
            .any(|&(op, f)| op == self.opcode && f == field)
    }
}

/// A descriptor as the device reads it: eight 32-bit words in host order, to be
/// stored little-endian. Same layout as `struct npu_desc_raw` in the C header.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RawDescriptor {
    pub words: [u32; 8],
}

const _: () = assert!(core::mem::size_of::<RawDescriptor>() == DESC_BYTES);
const _: () = assert!(core::mem::align_of::<RawDescriptor>() == 4);

impl From<[u8; DESC_BYTES]> for RawDescriptor {
    fn from(b: [u8; DESC_BYTES]) -> Self {
        let mut words = [0u32; 8];
        for (i, w) in words.iter_mut().enumerate() {
            *w = word(&b, i);
        }
        RawDescriptor { words }
    }
}

impl From<RawDescriptor> for [u8; DESC_BYTES] {
    fn from(r: RawDescriptor) -> Self {
        let mut b = [0u8; DESC_BYTES];
        for (i, &w) in r.words.iter().enumerate() {
            put(&mut b, i, w);
        }
        b
    }
}

#[inline]
fn word(b: &[u8; DESC_BYTES], i: usize) -> u32 {
    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

#[inline]
fn put(b: &mut [u8; DESC_BYTES], i: usize, v: u32) {
    b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
}

impl Descriptor {
    /// A descriptor without dependency flags.
    pub const fn new(op: Op) -> Self {
        Descriptor { deps: 0, op }
    }

    /// Sets the dependency flags.
    pub const fn with_deps(mut self, deps: u8) -> Self {
        self.deps = deps;
        self
    }

    pub const fn opcode(&self) -> Opcode {
        match self.op {
            Op::Nop => Opcode::Nop,
            Op::Load(_) => Opcode::Load,
            Op::Store(_) => Opcode::Store,
            Op::Matmul(_) => Opcode::Matmul,
            Op::Act(_) => Opcode::Act,
            Op::Add(_) => Opcode::Add,
            Op::Max(_) => Opcode::Max,
            Op::Fence(_) => Opcode::Fence,
        }
    }

    /// The opcode flags (word 0 bits 15:12) this descriptor encodes.
    pub fn op_flags(&self) -> u8 {
        match &self.op {
            Op::Load(d) | Op::Store(d) => {
                if d.acc {
                    flags::ACC
                } else {
                    0
                }
            }
            Op::Matmul(m) => {
                if m.accumulate {
                    flags::ACCUMULATE
                } else {
                    0
                }
            }
            Op::Act(a) => {
                (if a.relu { flags::RELU } else { 0 })
                    | if a.bias.is_some() { flags::BIAS } else { 0 }
                    | if a.qtab.is_some() {
                        flags::PER_CHANNEL
                    } else {
                        0
                    }
            }
            Op::Add(a) => {
                if a.accumulate {
                    flags::ACCUMULATE
                } else {
                    0
                }
            }
            Op::Fence(f) => {
                (if f.irq { flags::IRQ } else { 0 })
                    | if f.writeback.is_some() {
                        flags::WRITEBACK
                    } else {
                        0
                    }
            }
            Op::Nop | Op::Max(_) => 0,
        }
    }

    /// Encodes to the 32-byte wire format.
    pub fn encode(&self) -> [u8; DESC_BYTES] {
        let mut b = [0u8; DESC_BYTES];
        let w0 = self.opcode() as u32
            | ((self.deps as u32 & 0xF) << deps::SHIFT)
            | ((self.op_flags() as u32 & 0xF) << flags::SHIFT);
        put(&mut b, 0, w0);
        match &self.op {
            Op::Nop => {}
            Op::Load(d) | Op::Store(d) => {
                put(&mut b, 1, d.local);
                put(&mut b, 2, d.dram as u32);
                put(&mut b, 3, (d.dram >> 32) as u32);
                put(&mut b, 4, d.rows as u32 | (d.row_bytes as u32) << 16);
                put(&mut b, 5, d.dram_stride);
                put(&mut b, 6, d.local_stride);
            }
            Op::Matmul(m) => {
                put(&mut b, 1, m.a);
                put(&mut b, 2, m.w);
                put(&mut b, 3, m.out);
                put(&mut b, 4, m.m as u32 | (m.k as u32) << 16);
                put(&mut b, 5, m.n as u32);
            }
            Op::Act(a) => {
                put(&mut b, 1, a.src);
                put(&mut b, 2, a.dst);
                put(&mut b, 3, a.bias.unwrap_or(0));
                put(&mut b, 4, a.rows as u32 | (a.cols as u32) << 16);
                put(&mut b, 5, a.multiplier as u32);
                put(&mut b, 6, a.shift as u32 | (a.zero_point as u8 as u32) << 8);
                put(&mut b, 7, a.qtab.unwrap_or(0));
            }
            Op::Add(a) => {
                put(&mut b, 1, a.a);
                put(&mut b, 2, a.b);
                put(&mut b, 3, a.dst);
                put(&mut b, 4, a.len);
                put(&mut b, 5, a.a_zp as u8 as u32 | (a.b_zp as u8 as u32) << 8);
                put(
                    &mut b,
                    6,
                    a.a_mult as u16 as u32 | (a.b_mult as u16 as u32) << 16,
                );
            }
            Op::Max(m) => {
                put(&mut b, 1, m.a);
                put(&mut b, 2, m.b);
                put(&mut b, 3, m.dst);
                put(&mut b, 4, m.len);
            }
            Op::Fence(f) => {
                let a = f.writeback.unwrap_or(0);
                put(&mut b, 1, f.seq);
                put(&mut b, 2, a as u32);
                put(&mut b, 3, (a >> 32) as u32);
            }
        }
        b
    }

    /// Decodes the wire format, checking the opcode, reserved bits and flags.
    /// Field ranges are checked by [`Descriptor::validate`].
    pub fn decode(b: &[u8; DESC_BYTES]) -> Result<Self, DecodeError> {
        let w0 = word(b, 0);
        let err = |code, opcode, field, value: u64| DecodeError {
            code,
            opcode,
            field,
            value,
            limit: None,
            fault_addr: None,
        };
        let opcode = Opcode::from_u8(w0 as u8)
            .ok_or_else(|| err(ErrorCode::BadOpcode, "?", "opcode", (w0 & 0xFF) as u64))?;
        let name = opcode.mnemonic();
        if w0 >> 16 != 0 {
            return Err(err(
                ErrorCode::Reserved,
                name,
                "word0[31:16]",
                (w0 >> 16) as u64,
            ));
        }
        let layout = Layout::of(opcode);
        for w in 1..8u8 {
            let extra = word(b, w as usize) & !layout.used_mask(w);
            if extra != 0 {
                return Err(err(
                    ErrorCode::Reserved,
                    name,
                    RESERVED_WORD[w as usize],
                    extra as u64,
                ));
            }
        }
        let dep = ((w0 >> deps::SHIFT) & 0xF) as u8;
        let allowed = opcode.unit().map_or(0, Unit::allowed_deps);
        if dep & !allowed != 0 {
            return Err(err(ErrorCode::BadFlags, name, "deps", dep as u64));
        }
        let of = ((w0 >> flags::SHIFT) & 0xF) as u8;
        if of & !layout.op_flag_mask() != 0 {
            return Err(err(ErrorCode::BadFlags, name, "flags", of as u64));
        }
        let lo16 = |w| word(b, w) as u16;
        let hi16 = |w| (word(b, w) >> 16) as u16;
        let op = match opcode {
            Opcode::Nop => Op::Nop,
            Opcode::Load | Opcode::Store => {
                let d = Dma {
                    local: word(b, 1),
                    dram: word(b, 2) as u64 | (word(b, 3) as u64) << 32,
                    rows: lo16(4),
                    row_bytes: hi16(4),
                    dram_stride: word(b, 5),
                    local_stride: word(b, 6),
                    acc: of & flags::ACC != 0,
                };
                if opcode == Opcode::Load {
                    Op::Load(d)
                } else {
                    Op::Store(d)
                }
            }
            Opcode::Matmul => Op::Matmul(Matmul {
                a: word(b, 1),
                w: word(b, 2),
                out: word(b, 3),
                m: lo16(4),
                k: hi16(4),
                n: lo16(5),
                accumulate: of & flags::ACCUMULATE != 0,
            }),
            Opcode::Act => {
                let has_bias = of & flags::BIAS != 0;
                if !has_bias && word(b, 3) != 0 {
                    return Err(err(ErrorCode::Reserved, name, "bias", word(b, 3) as u64));
                }
                let per_channel = of & flags::PER_CHANNEL != 0;
                if per_channel {
                    if word(b, 5) != 0 {
                        let v = word(b, 5) as u64;
                        return Err(err(ErrorCode::Reserved, name, "multiplier", v));
                    }
                    if word(b, 6) & 0xFF != 0 {
                        let v = (word(b, 6) & 0xFF) as u64;
                        return Err(err(ErrorCode::Reserved, name, "shift", v));
                    }
                } else if word(b, 7) != 0 {
                    return Err(err(ErrorCode::Reserved, name, "qtab", word(b, 7) as u64));
                }
                Op::Act(Act {
                    src: word(b, 1),
                    dst: word(b, 2),
                    bias: has_bias.then(|| word(b, 3)),
                    rows: lo16(4),
                    cols: hi16(4),
                    multiplier: word(b, 5) as i32,
                    shift: word(b, 6) as u8,
                    zero_point: (word(b, 6) >> 8) as u8 as i8,
                    relu: of & flags::RELU != 0,
                    qtab: per_channel.then(|| word(b, 7)),
                })
            }
            Opcode::Add => Op::Add(Add {
                a: word(b, 1),
                b: word(b, 2),
                dst: word(b, 3),
                len: word(b, 4),
                a_zp: word(b, 5) as u8 as i8,
                b_zp: (word(b, 5) >> 8) as u8 as i8,
                a_mult: word(b, 6) as u16 as i16,
                b_mult: (word(b, 6) >> 16) as u16 as i16,
                accumulate: of & flags::ACCUMULATE != 0,
            }),
            Opcode::Max => Op::Max(Max {
                a: word(b, 1),
                b: word(b, 2),
                dst: word(b, 3),
                len: word(b, 4),
            }),
            Opcode::Fence => {
                let wb = of & flags::WRITEBACK != 0;
                let addr = word(b, 2) as u64 | (word(b, 3) as u64) << 32;
                if !wb && addr != 0 {
                    return Err(err(ErrorCode::Reserved, name, "addr", addr));
                }
                Op::Fence(Fence {
                    seq: word(b, 1),
                    writeback: wb.then_some(addr),
                    irq: of & flags::IRQ != 0,
                })
            }
        };
        Ok(Descriptor { deps: dep, op })
    }

    /// Checks every field against the device limits, as the command processor does
    /// before dispatch.
    pub fn validate(&self, lim: &Limits) -> Result<(), DecodeError> {
        let name = self.opcode().mnemonic();
        let spad = lim.spad_bytes as u64;
        let acc = lim.acc_bytes as u64;
        let field = |code, field, value: u64, limit: Option<u64>| DecodeError {
            code,
            opcode: name,
            field,
            value,
            limit,
            fault_addr: None,
        };
        let nonzero = |f: &'static str, v: u64| {
            if v == 0 {
                Err(field(ErrorCode::BadField, f, 0, None))
            } else {
                Ok(())
            }
        };
        let at_most = |f: &'static str, v: u64, max: u64| {
            if v > max {
                Err(field(ErrorCode::BadField, f, v, Some(max)))
            } else {
                Ok(())
            }
        };
        let aligned4 = |f: &'static str, v: u64| {
            if !v.is_multiple_of(4) {
                Err(DecodeError {
                    fault_addr: Some(v),
                    ..field(ErrorCode::Misaligned, f, v, None)
                })
            } else {
                Ok(())
            }
        };
        // `[start, start + len)` must lie inside a local memory of `size` bytes.
        let range = |f: &'static str, is_acc: bool, start: u64, len: u64| {
            let end = start + len;
            let size = if is_acc { acc } else { spad };
            if end > size {
                let code = if is_acc {
                    ErrorCode::AccRange
                } else {
                    ErrorCode::SpadRange
                };
                Err(DecodeError {
                    fault_addr: Some(end),
                    ..field(code, f, start, Some(size))
                })
            } else {
                Ok(())
            }
        };
        match &self.op {
            Op::Nop => Ok(()),
            Op::Load(d) | Op::Store(d) => {
                nonzero("rows", d.rows as u64)?;
                nonzero("row_bytes", d.row_bytes as u64)?;
                if d.rows > 1 && d.local_stride < d.row_bytes as u32 {
                    return Err(field(
                        ErrorCode::BadField,
                        "local_stride",
                        d.local_stride as u64,
                        None,
                    ));
                }
                if d.acc {
                    aligned4("local", d.local as u64)?;
                    aligned4("row_bytes", d.row_bytes as u64)?;
                    if d.rows > 1 {
                        aligned4("local_stride", d.local_stride as u64)?;
                    }
                }
                let extent = (d.rows as u64 - 1) * d.local_stride as u64 + d.row_bytes as u64;
                range("local", d.acc, d.local as u64, extent)?;
                let dram_extent = (d.rows as u64 - 1) * d.dram_stride as u64 + d.row_bytes as u64;
                if d.dram.checked_add(dram_extent).is_none() {
                    return Err(field(ErrorCode::BadField, "dram", d.dram, None));
                }
                Ok(())
            }
            Op::Matmul(m) => {
                nonzero("m", m.m as u64)?;
                nonzero("k", m.k as u64)?;
                nonzero("n", m.n as u64)?;
                at_most("k", m.k as u64, lim.rows as u64)?;
                at_most("n", m.n as u64, lim.cols as u64)?;
                let (mm, k, n) = (m.m as u64, m.k as u64, m.n as u64);
                range("a", false, m.a as u64, mm * k)?;
                range("w", false, m.w as u64, k * n)?;
                aligned4("out", m.out as u64)?;
                if cfg!(feature = "planted-bug-skip-acc-range") {
                    // The planted bug (test-only feature, see Cargo.toml).
                    return Ok(());
                }
                range("out", true, m.out as u64, mm * n * 4)
            }
            Op::Act(a) => {
                nonzero("rows", a.rows as u64)?;
                nonzero("cols", a.cols as u64)?;
                at_most("shift", a.shift as u64, 62)?;
                let n = a.rows as u64 * a.cols as u64;
                aligned4("src", a.src as u64)?;
                range("src", true, a.src as u64, n * 4)?;
                range("dst", false, a.dst as u64, n)?;
                if let Some(bias) = a.bias {
                    aligned4("bias", bias as u64)?;
                    range("bias", true, bias as u64, a.cols as u64 * 4)?;
                }
                if let Some(qtab) = a.qtab {
                    // Only a hand-built struct can get here with these set:
                    // decode already rejects the encoding.
                    if a.multiplier != 0 {
                        let m = a.multiplier as u32 as u64;
                        return Err(field(ErrorCode::Reserved, "multiplier", m, None));
                    }
                    if a.shift != 0 {
                        return Err(field(ErrorCode::Reserved, "shift", a.shift as u64, None));
                    }
                    aligned4("qtab", qtab as u64)?;
                    let len = a.cols as u64 * QTAB_ENTRY_BYTES as u64;
                    range("qtab", true, qtab as u64, len)?;
                }
                Ok(())
            }
            Op::Add(a) => {
                nonzero("len", a.len as u64)?;
                let n = a.len as u64;
                range("a", false, a.a as u64, n)?;
                range("b", false, a.b as u64, n)?;
                aligned4("dst", a.dst as u64)?;
                range("dst", true, a.dst as u64, n * 4)
            }
            Op::Max(m) => {
                nonzero("len", m.len as u64)?;
                let n = m.len as u64;
                range("a", false, m.a as u64, n)?;
                range("b", false, m.b as u64, n)?;
                range("dst", false, m.dst as u64, n)
            }
            Op::Fence(f) => match f.writeback {
                Some(a) => aligned4("addr", a),
                None => Ok(()),
            },
        }
    }
}

const RESERVED_WORD: [&str; 8] = [
    "word0", "word1", "word2", "word3", "word4", "word5", "word6", "word7",
];

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: Limits = Limits {
        rows: 16,
        cols: 8,
        spad_bytes: 4096,
        acc_bytes: 4096,
    };

    fn mm() -> Matmul {
        Matmul {
            a: 0,
            w: 1024,
            out: 0,
            m: 4,
            k: 16,
            n: 8,
            accumulate: true,
        }
    }

    #[test]
    fn layout_masks_cover_encoding() {
        // Every bit `encode` can set must be a defined field bit.
        let d = Descriptor::new(Op::Act(Act {
            src: !0,
            dst: !0,
            bias: Some(!0),
            rows: !0,
            cols: !0,
            multiplier: -1,
            shift: !0,
            zero_point: -1,
            relu: true,
            qtab: None,
        }));
        let b = d.encode();
        assert_eq!(Descriptor::decode(&b), Ok(d));
        let d = Descriptor::new(Op::Act(Act {
            src: !0,
            dst: !0,
            bias: Some(!0),
            rows: !0,
            cols: !0,
            multiplier: 0,
            shift: 0,
            zero_point: -1,
            relu: true,
            qtab: Some(!0),
        }));
        let b = d.encode();
        assert_eq!(Descriptor::decode(&b), Ok(d));
    }

    fn pc() -> Act {
        Act {
            rows: 2,
            cols: 8,
            qtab: Some(256),
            ..Default::default()
        }
    }

    #[test]
    fn per_channel_encoding() {
        let b = Descriptor::new(Op::Act(pc())).encode();
        assert_eq!(word(&b, 0) >> 12 & 0xF, flags::PER_CHANNEL as u32);
        assert_eq!(word(&b, 0) & (1 << 14), 1 << 14);
        assert_eq!(word(&b, 7), 256);
        // With PER_CHANNEL, words 5 and 6 bits 7:0 are reserved.
        for (w, bit, field) in [
            (5, 0, "multiplier"),
            (5, 31, "multiplier"),
            (6, 0, "shift"),
            (6, 7, "shift"),
        ] {
            let mut x = b;
            x[4 * w + bit / 8] |= 1 << (bit % 8);
            let e = Descriptor::decode(&x).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (ErrorCode::Reserved, field),
                "word {w} bit {bit}"
            );
        }
        // zero_point (word 6 bits 15:8) is still a field.
        let mut x = b;
        x[4 * 6 + 1] = 0x80;
        let Op::Act(a) = Descriptor::decode(&x).unwrap().op else {
            panic!()
        };
        assert_eq!((a.zero_point, a.qtab), (-128, Some(256)));
        // Without PER_CHANNEL, word 7 is reserved.
        let mut x = Descriptor::new(Op::Act(Act {
            qtab: None,
            multiplier: 1,
            ..pc()
        }))
        .encode();
        x[4 * 7 + 3] = 0x40;
        let e = Descriptor::decode(&x).unwrap_err();
        assert_eq!(
            (e.code, e.field, e.value),
            (ErrorCode::Reserved, "qtab", 0x4000_0000)
        );
    }

    #[test]
    fn per_channel_validation() {
        assert_eq!(Descriptor::new(Op::Act(pc())).validate(&LIM), Ok(()));
        let v = |a: Act| Descriptor::new(Op::Act(a)).validate(&LIM).unwrap_err();
        let e = v(Act {
            qtab: Some(258),
            ..pc()
        });
        assert_eq!(
            (e.code, e.field, e.fault_addr),
            (ErrorCode::Misaligned, "qtab", Some(258))
        );
        // 8 columns x 8 bytes end exactly at the end of the memory: fine; 4 more bytes are not.
        let end = LIM.acc_bytes - 64;
        assert_eq!(
            Descriptor::new(Op::Act(Act {
                qtab: Some(end),
                ..pc()
            }))
            .validate(&LIM),
            Ok(())
        );
        let e = v(Act {
            qtab: Some(end + 4),
            ..pc()
        });
        assert_eq!(
            (e.code, e.field, e.fault_addr, e.limit),
            (
                ErrorCode::AccRange,
                "qtab",
                Some(LIM.acc_bytes as u64 + 4),
                Some(LIM.acc_bytes as u64)
            )
        );
        let e = v(Act {
            qtab: Some(u32::MAX - 3),
            ..pc()
        });
        assert_eq!(e.code, ErrorCode::AccRange);
        // A struct with both a table and a per-tensor scale cannot be encoded validly.
        assert_eq!(
            v(Act {
                multiplier: 3,
                ..pc()
            })
            .code,
            ErrorCode::Reserved
        );
        assert_eq!(v(Act { shift: 1, ..pc() }).code, ErrorCode::Reserved);
        // Bias checks come first (the device's order).
        let e = v(Act {
            bias: Some(2),
            qtab: Some(2),
            ..pc()
        });
        assert_eq!(e.field, "bias");
    }

    #[test]
    fn quant_entry_bytes() {
        let e = QuantEntry {
            multiplier: -2,
            shift: 0x1234_5640,
        };
        let b = e.to_bytes();
        assert_eq!(b, [0xFE, 0xFF, 0xFF, 0xFF, 0x40, 0x56, 0x34, 0x12]);
        assert_eq!(QuantEntry::from_bytes(b), e);
        assert_eq!(e.effective_shift(), 0x40);
        let img = qtab_image(&[
            e,
            QuantEntry {
                multiplier: 1,
                shift: 2,
            },
        ]);
        assert_eq!(img[..8], b);
        assert_eq!(img[8..], [1, 0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn reserved_bits_rejected() {
        let mut b = Descriptor::new(Op::Matmul(mm())).encode();
        b[5 * 4 + 3] = 1; // word 5 bit 24: above `n`
        let e = Descriptor::decode(&b).unwrap_err();
        assert_eq!(e.code, ErrorCode::Reserved);
        assert_eq!(e.field, "word5");
        let mut b = Descriptor::new(Op::Nop).encode();
        b[2] = 1;
        assert_eq!(
            Descriptor::decode(&b).unwrap_err().code,
            ErrorCode::Reserved
        );
    }

    #[test]
    fn bad_opcode_and_flags() {
        let mut b = [0u8; 32];
        b[0] = 0x42;
        assert_eq!(
            Descriptor::decode(&b).unwrap_err().code,
            ErrorCode::BadOpcode
        );
        // LOAD has no previous unit.
        let d = Descriptor::new(Op::Load(Dma::default())).with_deps(deps::WAIT_PREV);
        assert_eq!(
            Descriptor::decode(&d.encode()).unwrap_err().code,
            ErrorCode::BadFlags
        );
        // MAX defines no opcode flags.
        let mut b = Descriptor::new(Op::Max(Max::default())).encode();
        b[1] |= 0x10;
        assert_eq!(
            Descriptor::decode(&b).unwrap_err().code,
            ErrorCode::BadFlags
        );
    }

    #[test]
    fn validate_ranges() {
        let ok = Descriptor::new(Op::Matmul(mm()));
        assert_eq!(ok.validate(&LIM), Ok(()));
        let e = Descriptor::new(Op::Matmul(Matmul { k: 17, ..mm() }))
            .validate(&LIM)
            .unwrap_err();
        assert_eq!(
            (e.code, e.field, e.limit),
            (ErrorCode::BadField, "k", Some(16))
        );
        let e = Descriptor::new(Op::Matmul(Matmul { a: 4090, ..mm() }))
            .validate(&LIM)
            .unwrap_err();
        assert_eq!(
            (e.code, e.fault_addr),
            (ErrorCode::SpadRange, Some(4090 + 64))
        );
        let e = Descriptor::new(Op::Matmul(Matmul { out: 2, ..mm() }))
            .validate(&LIM)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Misaligned);
        let dma = Dma {
            local: 0,
            dram: 0,
            rows: 2,
            row_bytes: 16,
            dram_stride: 16,
            local_stride: 8,
            acc: false,
        };
        let e = Descriptor::new(Op::Load(dma)).validate(&LIM).unwrap_err();
        assert_eq!(e.field, "local_stride");
        let msg = alloc::format!("{e}");
        assert!(
            msg.contains("LOAD") && msg.contains("local_stride"),
            "{msg}"
        );
    }

    #[test]
    fn signed_fields_exist_once() {
        for (i, &(op, name)) in SIGNED_FIELDS.iter().enumerate() {
            let defined = Layout::of(op).fields.iter().any(|f| f.0 == name);
            assert!(defined, "{op} {name}");
            assert!(!SIGNED_FIELDS[..i].contains(&(op, name)), "{op} {name}");
        }
        assert!(Layout::of(Opcode::Act).is_signed("zero_point"));
        assert!(!Layout::of(Opcode::Act).is_signed("shift"));
        assert!(!Layout::of(Opcode::Max).is_signed("a_zp"));
    }

    #[test]
    fn raw_descriptor_round_trip() {
        let d = Descriptor::new(Op::Fence(Fence {
            seq: 0x0102_0304,
            writeback: Some(0x1122_3344_5566_7788),
            irq: true,
        }));
        let bytes = d.encode();
        let raw = RawDescriptor::from(bytes);
        let of = (flags::IRQ | flags::WRITEBACK) as u32;
        assert_eq!(raw.words[0], Opcode::Fence as u32 | of << flags::SHIFT);
        assert_eq!(raw.words[1..4], [0x0102_0304, 0x5566_7788, 0x1122_3344]);
        assert_eq!(<[u8; DESC_BYTES]>::from(raw), bytes);
    }
}
