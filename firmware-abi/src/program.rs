//! A builder for command streams: a list of [`Descriptor`]s and its ring image.
//!
//! Tests, the co-simulation corpus and driver examples write programs by hand with
//! it; the compiler's code generator emits one. The builder does not check
//! anything as it goes: [`Program::validate`] checks a finished program against
//! the device [`Limits`] the way the command processor would, and the text form
//! lives in [`crate::asm`].
//!
//! ```
//! use npukit_abi::desc::{deps, Matmul};
//! use npukit_abi::program::Program;
//!
//! let mut p = Program::new();
//! p.load_2d(0x0, 0x1000, 4, 16, 64).deps(deps::SIGNAL_NEXT)
//!     .matmul(Matmul { a: 0, w: 256, out: 0, m: 4, k: 16, n: 16, accumulate: false })
//!     .deps(deps::WAIT_PREV)
//!     .fence_irq(1);
//! assert_eq!(p.encode().len(), 3 * 32);
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::desc::{Act, Add, Dma, Fence, Matmul, Max, Op};
use crate::{DecodeError, Descriptor, ErrorCode, Limits, DESC_BYTES};

/// A command stream: descriptors in ring order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Program {
    descs: Vec<Descriptor>,
}

/// Why a ring image did not decode into a [`Program`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramDecodeError {
    /// The image is not a whole number of descriptors; holds its length in bytes.
    Length(usize),
    /// The descriptor at `index` (0-based) does not decode.
    Descriptor { index: usize, error: DecodeError },
}

impl fmt::Display for ProgramDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProgramDecodeError::Length(n) => {
                write!(
                    f,
                    "command stream of {n} bytes is not a multiple of {DESC_BYTES}"
                )
            }
            ProgramDecodeError::Descriptor { index, error } => {
                write!(f, "descriptor {index}: {error}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProgramDecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProgramDecodeError::Length(_) => None,
            ProgramDecodeError::Descriptor { error, .. } => Some(error),
        }
    }
}

impl Program {
    /// An empty program.
    pub const fn new() -> Self {
        Program { descs: Vec::new() }
    }

    /// Appends a descriptor.
    pub fn push(&mut self, d: Descriptor) -> &mut Self {
        self.descs.push(d);
        self
    }

    /// The descriptors, in ring order.
    pub fn descs(&self) -> &[Descriptor] {
        &self.descs
    }

    /// The descriptors, by value.
    pub fn into_descs(self) -> Vec<Descriptor> {
        self.descs
    }

    /// Number of descriptors.
    pub fn len(&self) -> usize {
        self.descs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.descs.is_empty()
    }

    /// The ring image: [`DESC_BYTES`] bytes per descriptor, in order.
    ///
    /// Dependency bits above bit 3 do not exist in the wire format and are
    /// dropped, as [`Descriptor::encode`] does.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.descs.len() * DESC_BYTES);
        for d in &self.descs {
            out.extend_from_slice(&d.encode());
        }
        out
    }

    /// Decodes a ring image, checking each descriptor's encoding (not its
    /// fields against the limits; see [`Program::validate`]).
    pub fn decode(bytes: &[u8]) -> Result<Program, ProgramDecodeError> {
        let chunks = bytes.chunks_exact(DESC_BYTES);
        if !chunks.remainder().is_empty() {
            return Err(ProgramDecodeError::Length(bytes.len()));
        }
        let mut descs = Vec::with_capacity(chunks.len());
        for (index, chunk) in chunks.enumerate() {
            let mut b = [0u8; DESC_BYTES];
            b.copy_from_slice(chunk);
            let d = Descriptor::decode(&b)
                .map_err(|error| ProgramDecodeError::Descriptor { index, error })?;
            descs.push(d);
        }
        Ok(Program { descs })
    }

    /// Checks every descriptor as the command processor would before dispatch:
    /// the dependency flags against its unit (which [`Descriptor::validate`]
    /// leaves to decoding), then its fields against `lim`. Returns the index of
    /// the first bad descriptor with the reason.
    pub fn validate(&self, lim: &Limits) -> Result<(), (usize, DecodeError)> {
        for (i, d) in self.descs.iter().enumerate() {
            let opcode = d.opcode();
            let allowed = opcode.unit().map_or(0, |u| u.allowed_deps());
            if d.deps & !allowed != 0 {
                let e = DecodeError {
                    code: ErrorCode::BadFlags,
                    opcode: opcode.mnemonic(),
                    field: "deps",
                    value: d.deps as u64,
                    limit: None,
                    fault_addr: None,
                };
                return Err((i, e));
            }
            d.validate(lim).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    /// ORs dependency flags ([`crate::desc::deps`]) into the descriptor pushed
    /// last. On an empty program it does nothing (there is no descriptor to
    /// flag, and a builder must not panic); [`Program::validate`] reports
    /// flags the descriptor's unit cannot use.
    pub fn deps(&mut self, flags: u8) -> &mut Self {
        if let Some(d) = self.descs.last_mut() {
            d.deps |= flags;
        }
        self
    }

    fn op(&mut self, op: Op) -> &mut Self {
        self.push(Descriptor::new(op))
    }

    /// Appends a NOP.
    pub fn nop(&mut self) -> &mut Self {
        self.op(Op::Nop)
    }

    /// Appends a LOAD.
    pub fn load(&mut self, d: Dma) -> &mut Self {
        self.op(Op::Load(d))
    }

    /// Appends a STORE.
    pub fn store(&mut self, d: Dma) -> &mut Self {
        self.op(Op::Store(d))
    }

    /// Appends a MATMUL.
    pub fn matmul(&mut self, m: Matmul) -> &mut Self {
        self.op(Op::Matmul(m))
    }

    /// Appends an ACT.
    pub fn act(&mut self, a: Act) -> &mut Self {
        self.op(Op::Act(a))
    }

    /// Appends an ADD.
    pub fn add(&mut self, a: Add) -> &mut Self {
        self.op(Op::Add(a))
    }

    /// Appends a MAX.
    pub fn max(&mut self, m: Max) -> &mut Self {
        self.op(Op::Max(m))
    }

    /// Appends a FENCE.
    pub fn fence(&mut self, f: Fence) -> &mut Self {
        self.op(Op::Fence(f))
    }

    /// Appends a LOAD of `rows` x `row_bytes` from device address `dram`
    /// (rows `dram_stride` bytes apart) into the scratchpad at `local`, packed
    /// (`local_stride == row_bytes`).
    pub fn load_2d(
        &mut self,
        local: u32,
        dram: u64,
        rows: u16,
        row_bytes: u16,
        dram_stride: u32,
    ) -> &mut Self {
        self.load(packed(local, dram, rows, row_bytes, dram_stride, false))
    }

    /// As [`Program::load_2d`], into the accumulator memory at byte address `local`.
    pub fn load_acc(
        &mut self,
        local: u32,
        dram: u64,
        rows: u16,
        row_bytes: u16,
        dram_stride: u32,
    ) -> &mut Self {
        self.load(packed(local, dram, rows, row_bytes, dram_stride, true))
    }

    /// Appends a STORE of `rows` x `row_bytes` packed at scratchpad address
    /// `local` to device address `dram`, rows `dram_stride` bytes apart.
    pub fn store_2d(
        &mut self,
        local: u32,
        dram: u64,
        rows: u16,
        row_bytes: u16,
        dram_stride: u32,
    ) -> &mut Self {
        self.store(packed(local, dram, rows, row_bytes, dram_stride, false))
    }

    /// As [`Program::store_2d`], from the accumulator memory at byte address `local`.
    pub fn store_acc(
        &mut self,
        local: u32,
        dram: u64,
        rows: u16,
        row_bytes: u16,
        dram_stride: u32,
    ) -> &mut Self {
        self.store(packed(local, dram, rows, row_bytes, dram_stride, true))
    }

    /// Appends a FENCE publishing `seq` and raising the FENCE interrupt, with no
    /// memory writeback.
    pub fn fence_irq(&mut self, seq: u32) -> &mut Self {
        self.fence(Fence {
            seq,
            writeback: None,
            irq: true,
        })
    }
}

fn packed(local: u32, dram: u64, rows: u16, row_bytes: u16, dram_stride: u32, acc: bool) -> Dma {
    Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride,
        local_stride: row_bytes as u32,
        acc,
    }
}

impl From<Vec<Descriptor>> for Program {
    fn from(descs: Vec<Descriptor>) -> Self {
        Program { descs }
    }
}

impl FromIterator<Descriptor> for Program {
    fn from_iter<I: IntoIterator<Item = Descriptor>>(iter: I) -> Self {
        Program {
            descs: iter.into_iter().collect(),
        }
    }
}

impl Extend<Descriptor> for Program {
    fn extend<I: IntoIterator<Item = Descriptor>>(&mut self, iter: I) {
        self.descs.extend(iter);
    }
}

impl<'a> IntoIterator for &'a Program {
    type Item = &'a Descriptor;
    type IntoIter = core::slice::Iter<'a, Descriptor>;
    fn into_iter(self) -> Self::IntoIter {
        self.descs.iter()
    }
}

/// The canonical assembly text ([`crate::asm::disassemble`]).
impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::asm::disassemble(self))
    }
}

/// Proptest strategies for random legal descriptors and programs (test-only for
/// now; the simulator will want them later behind a feature).
#[cfg(test)]
pub(crate) mod strategy {
    use super::*;
    use crate::desc::Opcode;
    use proptest::prelude::*;

    fn dma() -> impl Strategy<Value = Dma> {
        (
            any::<u32>(),
            any::<u64>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(
                |(local, dram, rows, row_bytes, dram_stride, local_stride, acc)| Dma {
                    local,
                    dram,
                    rows,
                    row_bytes,
                    dram_stride,
                    local_stride,
                    acc,
                },
            )
    }

    fn op() -> impl Strategy<Value = Op> {
        let matmul = (any::<[u32; 3]>(), any::<[u16; 3]>(), any::<bool>()).prop_map(
            |([a, w, out], [m, k, n], accumulate)| {
                Op::Matmul(Matmul {
                    a,
                    w,
                    out,
                    m,
                    k,
                    n,
                    accumulate,
                })
            },
        );
        let act = (
            any::<[u32; 2]>(),
            any::<Option<u32>>(),
            any::<[u16; 2]>(),
            any::<i32>(),
            any::<u8>(),
            any::<i8>(),
            any::<bool>(),
            any::<Option<u32>>(),
        )
            .prop_map(
                |([src, dst], bias, [rows, cols], multiplier, shift, zero_point, relu, qtab)| {
                    // With a table the per-tensor scale is reserved (zero).
                    let per_tensor = qtab.is_none();
                    Op::Act(Act {
                        src,
                        dst,
                        bias,
                        rows,
                        cols,
                        multiplier: if per_tensor { multiplier } else { 0 },
                        shift: if per_tensor { shift } else { 0 },
                        zero_point,
                        relu,
                        qtab,
                    })
                },
            );
        let add = (
            any::<[u32; 4]>(),
            any::<[i8; 2]>(),
            any::<[i16; 2]>(),
            any::<bool>(),
        )
            .prop_map(
                |([a, b, dst, len], [a_zp, b_zp], [a_mult, b_mult], accumulate)| {
                    Op::Add(Add {
                        a,
                        b,
                        dst,
                        len,
                        a_zp,
                        b_zp,
                        a_mult,
                        b_mult,
                        accumulate,
                    })
                },
            );
        let max = any::<[u32; 4]>().prop_map(|[a, b, dst, len]| Op::Max(Max { a, b, dst, len }));
        let fence = (any::<u32>(), any::<Option<u64>>(), any::<bool>()).prop_map(
            |(seq, writeback, irq)| {
                Op::Fence(Fence {
                    seq,
                    writeback,
                    irq,
                })
            },
        );
        prop_oneof![
            Just(Op::Nop),
            dma().prop_map(Op::Load),
            dma().prop_map(Op::Store),
            matmul,
            act,
            add,
            max,
            fence,
        ]
    }

    /// Any descriptor that encodes and decodes: every opcode, any field values,
    /// dependency flags drawn from those its unit may use.
    pub(crate) fn descriptor() -> impl Strategy<Value = Descriptor> {
        (op(), any::<u8>()).prop_map(|(op, deps)| {
            let d = Descriptor::new(op);
            let allowed = d.opcode().unit().map_or(0, |u| u.allowed_deps());
            d.with_deps(deps & allowed)
        })
    }

    pub(crate) fn program(max_len: usize) -> impl Strategy<Value = Program> {
        proptest::collection::vec(descriptor(), 0..=max_len).prop_map(Program::from)
    }

    #[test]
    fn strategy_covers_every_opcode() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut seen = [false; 8];
        let mut runner = TestRunner::deterministic();
        for _ in 0..500 {
            if let Ok(t) = descriptor().new_tree(&mut runner) {
                seen[t.current().opcode() as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        assert_eq!(Opcode::ALL.len(), seen.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desc::deps;
    use proptest::prelude::*;

    const LIM: Limits = Limits {
        rows: 16,
        cols: 16,
        spad_bytes: 4096,
        acc_bytes: 4096,
    };

    fn sample() -> Program {
        let mut p = Program::new();
        p.load_2d(0, 0x1000, 4, 16, 64)
            .deps(deps::SIGNAL_NEXT)
            .load_2d(256, 0x2000, 16, 16, 16)
            .deps(deps::SIGNAL_NEXT)
            .matmul(Matmul {
                a: 0,
                w: 256,
                out: 0,
                m: 4,
                k: 16,
                n: 16,
                accumulate: false,
            })
            .deps(deps::WAIT_PREV)
            .deps(deps::SIGNAL_NEXT)
            .store_acc(0, 0x3000, 4, 64, 64)
            .deps(deps::WAIT_PREV)
            .fence_irq(7);
        p
    }

    #[test]
    fn builder_sets_fields_and_deps() {
        let p = sample();
        assert_eq!(p.len(), 5);
        assert!(!p.is_empty());
        let d = p.descs()[0];
        assert_eq!(d.deps, deps::SIGNAL_NEXT);
        let Op::Load(dma) = d.op else { panic!("{d:?}") };
        assert_eq!(
            (dma.local_stride, dma.dram_stride, dma.acc),
            (16, 64, false)
        );
        assert_eq!(p.descs()[2].deps, deps::WAIT_PREV | deps::SIGNAL_NEXT);
        let Op::Store(dma) = p.descs()[3].op else {
            panic!()
        };
        assert!(dma.acc);
        assert_eq!(
            p.descs()[4].op,
            Op::Fence(Fence {
                seq: 7,
                writeback: None,
                irq: true
            })
        );
        assert_eq!(p.validate(&LIM), Ok(()));
    }

    #[test]
    fn deps_on_empty_program_is_a_no_op() {
        let mut p = Program::new();
        p.deps(deps::WAIT_PREV);
        assert!(p.is_empty());
        assert_eq!(p, Program::default());
    }

    #[test]
    fn encode_decode_round_trip() {
        let p = sample();
        let bytes = p.encode();
        assert_eq!(bytes.len(), p.len() * DESC_BYTES);
        assert_eq!(&bytes[..DESC_BYTES], &p.descs()[0].encode());
        assert_eq!(Program::decode(&bytes), Ok(p));
        assert_eq!(Program::decode(&[]), Ok(Program::new()));
    }

    #[test]
    fn decode_errors() {
        let mut bytes = sample().encode();
        assert_eq!(
            Program::decode(&bytes[..33]),
            Err(ProgramDecodeError::Length(33))
        );
        bytes[2 * DESC_BYTES] = 0x42;
        let e = Program::decode(&bytes).unwrap_err();
        let ProgramDecodeError::Descriptor { index, error } = e else {
            panic!("{e:?}")
        };
        assert_eq!((index, error.code), (2, ErrorCode::BadOpcode));
        let msg = alloc::format!("{e}");
        assert!(msg.starts_with("descriptor 2: "), "{msg}");
    }

    #[test]
    fn validate_reports_index() {
        let mut p = sample();
        p.matmul(Matmul {
            a: 0,
            w: 0,
            out: 0,
            m: 1,
            k: 17,
            n: 1,
            accumulate: false,
        });
        let (i, e) = p.validate(&LIM).unwrap_err();
        assert_eq!((i, e.field), (5, "k"));
        // A dependency flag the load unit cannot use.
        let mut p = Program::new();
        p.nop().load_2d(0, 0, 1, 1, 1).deps(deps::WAIT_PREV);
        let (i, e) = p.validate(&LIM).unwrap_err();
        assert_eq!((i, e.code, e.field), (1, ErrorCode::BadFlags, "deps"));
    }

    proptest! {
        #[test]
        fn random_programs_round_trip_through_the_ring_image(p in strategy::program(16)) {
            prop_assert_eq!(Program::decode(&p.encode()), Ok(p));
        }
    }
}
