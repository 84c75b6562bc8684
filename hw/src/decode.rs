//! `Decode`: descriptor decode and validation at the dispatch point, the
//! hardware twin of `npukit_abi::Descriptor::decode` followed by
//! `Descriptor::validate` (and of the model's `FetchEntry::arrive`, which
//! latches `fault_addr` or the descriptor's own address). The checks run in
//! the same order, so the first failing one gives the model's `ERR_CODE` and
//! `ERR_ADDR` (docs/abi.md).
//!
//! ```text
//!  desc (256) ──►┌──────────────────────────┐──► bad, code (8), addr (64)
//!  paddr (64) ──►│ decode: opcode, reserved │
//!                │ bits, flags; validate:   │──► unit (2)
//!                │ sizes, alignment, ranges │
//!                └──────────────────────────┘
//! ```
//!
//! Purely combinational. In the order of the ABI decoder, the first check that
//! fails sets `bad`, its code and the address `ERR_ADDR` latches:
//!
//! 1. decode: the opcode (`BAD_OPCODE`), reserved bits of word 0 and of words
//!    1-7 for the opcode's layout (`RESERVED`), dependency flags the unit may
//!    not use and opcode flags the opcode does not define (`BAD_FLAGS`), the
//!    fields an opcode flag turns off (ACT bias, multiplier, shift or qtab;
//!    FENCE address: `RESERVED`);
//! 2. validate, per opcode: zero or too large sizes (`BAD_FIELD`), accumulator
//!    addresses, lengths and strides and the FENCE address not a multiple of 4
//!    (`MISALIGNED`, the address is the offending value), local-memory ranges
//!    (`SPAD_RANGE` / `ACC_RANGE`, the address is the first byte past the
//!    access), a LOAD/STORE device range past 2^64 (`BAD_FIELD`).
//!
//! Every other code's address is `paddr`, the descriptor's physical address.
//! `unit` is the opcode's unit: 0 the command processor (NOP, FENCE and an
//! unknown opcode), 1 load, 2 compute, 3 store.
//!
//! # Ports
//!
//! | Port | Dir | Width | Meaning |
//! |------|-----|-------|---------|
//! | `desc` | in | 256 | the fetched descriptor (word `i` in bits `32i+31:32i`) |
//! | `paddr` | in | 64 | its physical address |
//! | `bad` | out | 1 | the descriptor is rejected |
//! | `code` | out | 8 | its `ErrorCode` (0 when not `bad`) |
//! | `addr` | out | 64 | the address `ERR_ADDR` latches (0 when not `bad`) |
//! | `unit` | out | 2 | 0 command processor, 1 load, 2 compute, 3 store |

use npukit_abi::ErrorCode;
use rust_hdl::prelude::*;

/// The local-memory and array limits the decoder checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub rows: u32,
    pub cols: u32,
    pub spad_bytes: u32,
    pub acc_bytes: u32,
}

/// The descriptor decoder. See the module documentation.
#[derive(LogicBlock, Debug)]
pub struct Decode {
    pub desc: Signal<In, Bits<256>>,
    pub paddr: Signal<In, Bits<64>>,
    pub bad: Signal<Out, Bit>,
    pub code: Signal<Out, Bits<8>>,
    pub addr: Signal<Out, Bits<64>>,
    pub unit: Signal<Out, Bits<2>>,
    spad: Constant<Bits<64>>,
    acc: Constant<Bits<64>>,
    rows: Constant<Bits<16>>,
    cols: Constant<Bits<16>>,
    e_opcode: Constant<Bits<8>>,
    e_reserved: Constant<Bits<8>>,
    e_flags: Constant<Bits<8>>,
    e_field: Constant<Bits<8>>,
    e_align: Constant<Bits<8>>,
    e_spad: Constant<Bits<8>>,
    e_acc: Constant<Bits<8>>,
    // The verdict before the outputs (which are never read back).
    b: Signal<Local, Bit>,
    c: Signal<Local, Bits<8>>,
    a: Signal<Local, Bits<64>>,
    // The words and the fields of word 0.
    w0: Signal<Local, Bits<32>>,
    w1: Signal<Local, Bits<32>>,
    w2: Signal<Local, Bits<32>>,
    w3: Signal<Local, Bits<32>>,
    w4: Signal<Local, Bits<32>>,
    w5: Signal<Local, Bits<32>>,
    w6: Signal<Local, Bits<32>>,
    w7: Signal<Local, Bits<32>>,
    op: Signal<Local, Bits<8>>,
    dep: Signal<Local, Bits<4>>,
    of: Signal<Local, Bits<4>>,
    u: Signal<Local, Bits<2>>,
    // Word 4 low/high halves (rows/row_bytes, m/k, rows/cols) and word 5 low (n).
    lo4: Signal<Local, Bits<16>>,
    hi4: Signal<Local, Bits<16>>,
    lo5: Signal<Local, Bits<16>>,
    // Reserved bits of words 1-7 for this opcode's layout.
    r1: Signal<Local, Bit>,
    r2: Signal<Local, Bit>,
    r3: Signal<Local, Bit>,
    r4: Signal<Local, Bit>,
    r5: Signal<Local, Bit>,
    r6: Signal<Local, Bit>,
    r7: Signal<Local, Bit>,
    bad_deps: Signal<Local, Bit>,
    bad_flags: Signal<Local, Bit>,
    // LOAD / STORE extents: (rows - 1) * stride + row_bytes, the stride in halves.
    rm1: Signal<Local, Bits<16>>,
    pl0: Signal<Local, Bits<32>>,
    pl1: Signal<Local, Bits<32>>,
    pd0: Signal<Local, Bits<32>>,
    pd1: Signal<Local, Bits<32>>,
    lstride: Signal<Local, Bits<64>>,
    rowb: Signal<Local, Bits<64>>,
    lend: Signal<Local, Bits<64>>,
    dram: Signal<Local, Bits<64>>,
    dend: Signal<Local, Bits<64>>,
    // Products and the ends of the compute opcodes' local ranges.
    mk: Signal<Local, Bits<32>>,
    kn: Signal<Local, Bits<32>>,
    mn: Signal<Local, Bits<32>>,
    a1: Signal<Local, Bits<64>>,
    a2: Signal<Local, Bits<64>>,
    a3: Signal<Local, Bits<64>>,
    a7: Signal<Local, Bits<64>>,
    e1_mk: Signal<Local, Bits<64>>,
    e2_kn: Signal<Local, Bits<64>>,
    e3_mn4: Signal<Local, Bits<64>>,
    e1_mk4: Signal<Local, Bits<64>>,
    e2_mk: Signal<Local, Bits<64>>,
    e3_k4: Signal<Local, Bits<64>>,
    e7_k8: Signal<Local, Bits<64>>,
    e1_len: Signal<Local, Bits<64>>,
    e2_len: Signal<Local, Bits<64>>,
    e3_len: Signal<Local, Bits<64>>,
    e3_len4: Signal<Local, Bits<64>>,
}

impl Decode {
    /// The decoder for a variant's limits.
    pub fn new(lim: DecodeLimits) -> Result<Self, String> {
        if lim.rows == 0 || lim.rows > 0xFFFF || lim.cols == 0 || lim.cols > 0xFFFF {
            return Err(format!(
                "array {}x{}: rows and cols must be in 1..=65535",
                lim.rows, lim.cols
            ));
        }
        let code = |c: ErrorCode| Constant::new((c as u64).into());
        Ok(Decode {
            desc: Default::default(),
            paddr: Default::default(),
            bad: Default::default(),
            code: Default::default(),
            addr: Default::default(),
            unit: Default::default(),
            spad: Constant::new((lim.spad_bytes as u64).into()),
            acc: Constant::new((lim.acc_bytes as u64).into()),
            rows: Constant::new((lim.rows as u64).into()),
            cols: Constant::new((lim.cols as u64).into()),
            e_opcode: code(ErrorCode::BadOpcode),
            e_reserved: code(ErrorCode::Reserved),
            e_flags: code(ErrorCode::BadFlags),
            e_field: code(ErrorCode::BadField),
            e_align: code(ErrorCode::Misaligned),
            e_spad: code(ErrorCode::SpadRange),
            e_acc: code(ErrorCode::AccRange),
            b: Default::default(),
            c: Default::default(),
            a: Default::default(),
            w0: Default::default(),
            w1: Default::default(),
            w2: Default::default(),
            w3: Default::default(),
            w4: Default::default(),
            w5: Default::default(),
            w6: Default::default(),
            w7: Default::default(),
            op: Default::default(),
            dep: Default::default(),
            of: Default::default(),
            u: Default::default(),
            lo4: Default::default(),
            hi4: Default::default(),
            lo5: Default::default(),
            r1: Default::default(),
            r2: Default::default(),
            r3: Default::default(),
            r4: Default::default(),
            r5: Default::default(),
            r6: Default::default(),
            r7: Default::default(),
            bad_deps: Default::default(),
            bad_flags: Default::default(),
            rm1: Default::default(),
            pl0: Default::default(),
            pl1: Default::default(),
            pd0: Default::default(),
            pd1: Default::default(),
            lstride: Default::default(),
            rowb: Default::default(),
            lend: Default::default(),
            dram: Default::default(),
            dend: Default::default(),
            mk: Default::default(),
            kn: Default::default(),
            mn: Default::default(),
            a1: Default::default(),
            a2: Default::default(),
            a3: Default::default(),
            a7: Default::default(),
            e1_mk: Default::default(),
            e2_kn: Default::default(),
            e3_mn4: Default::default(),
            e1_mk4: Default::default(),
            e2_mk: Default::default(),
            e3_k4: Default::default(),
            e7_k8: Default::default(),
            e1_len: Default::default(),
            e2_len: Default::default(),
            e3_len: Default::default(),
            e3_len4: Default::default(),
        })
    }
}

// One branch per check of the ABI decoder, in its order (several give the
// same code).
#[allow(clippy::if_same_then_else)]
impl Logic for Decode {
    #[hdl_gen]
    fn update(&mut self) {
        self.w0.next = self.desc.val().get_bits::<32>(0);
        self.w1.next = self.desc.val().get_bits::<32>(32);
        self.w2.next = self.desc.val().get_bits::<32>(64);
        self.w3.next = self.desc.val().get_bits::<32>(96);
        self.w4.next = self.desc.val().get_bits::<32>(128);
        self.w5.next = self.desc.val().get_bits::<32>(160);
        self.w6.next = self.desc.val().get_bits::<32>(192);
        self.w7.next = self.desc.val().get_bits::<32>(224);
        self.op.next = self.w0.val().get_bits::<8>(0);
        self.dep.next = self.w0.val().get_bits::<4>(8);
        self.of.next = self.w0.val().get_bits::<4>(12);
        self.lo4.next = self.w4.val().get_bits::<16>(0);
        self.hi4.next = self.w4.val().get_bits::<16>(16);
        self.lo5.next = self.w5.val().get_bits::<16>(0);
        // The opcode's unit.
        self.u.next = 0.into();
        if self.op.val() == 1_u64 {
            self.u.next = 1.into();
        }
        if self.op.val() == 2_u64 {
            self.u.next = 3.into();
        }
        if (self.op.val() >= 3_u64) & (self.op.val() <= 6_u64) {
            self.u.next = 2.into();
        }
        self.unit.next = self.u.val();
        // Reserved bits of words 1-7 (Layout::used_mask): NOP uses none; LOAD,
        // STORE words 1-6; MATMUL 1-4 and the low half of 5; ACT 1-5, the low
        // half of 6, and 7; ADD 1-4, the low half of 5, and 6; MAX 1-4;
        // FENCE 1-3.
        self.r1.next = (self.op.val() == 0_u64) & self.w1.val().any();
        self.r2.next = (self.op.val() == 0_u64) & self.w2.val().any();
        self.r3.next = (self.op.val() == 0_u64) & self.w3.val().any();
        self.r4.next = ((self.op.val() == 0_u64) | (self.op.val() == 7_u64)) & self.w4.val().any();
        self.r5.next =
            (((self.op.val() == 0_u64) | (self.op.val() == 6_u64) | (self.op.val() == 7_u64))
                & self.w5.val().any())
                | (((self.op.val() == 3_u64) | (self.op.val() == 5_u64))
                    & self.w5.val().get_bits::<16>(16).any());
        self.r6.next = (((self.op.val() == 0_u64)
            | (self.op.val() == 3_u64)
            | (self.op.val() == 6_u64)
            | (self.op.val() == 7_u64))
            & self.w6.val().any())
            | ((self.op.val() == 4_u64) & self.w6.val().get_bits::<16>(16).any());
        self.r7.next = (self.op.val() != 4_u64) & self.w7.val().any();
        // Dependency flags the unit may use (Unit::allowed_deps): none for the
        // command processor, load WAIT_NEXT | SIGNAL_NEXT, store WAIT_PREV |
        // SIGNAL_PREV, compute all.
        self.bad_deps.next = ((self.u.val() == 0_u64) & self.dep.val().any())
            | ((self.u.val() == 1_u64) & (self.dep.val().get_bit(0) | self.dep.val().get_bit(2)))
            | ((self.u.val() == 3_u64) & (self.dep.val().get_bit(1) | self.dep.val().get_bit(3)));
        // Opcode flags the opcode defines: LOAD/STORE ACC, MATMUL and ADD
        // ACCUMULATE (bit 0); ACT RELU, BIAS, PER_CHANNEL (bits 0-2); FENCE
        // IRQ, WRITEBACK (bits 0-1); none for NOP and MAX.
        self.bad_flags.next = (((self.op.val() == 0_u64) | (self.op.val() == 6_u64))
            & self.of.val().any())
            | (((self.op.val() == 1_u64)
                | (self.op.val() == 2_u64)
                | (self.op.val() == 3_u64)
                | (self.op.val() == 5_u64))
                & self.of.val().get_bits::<3>(1).any())
            | ((self.op.val() == 4_u64) & self.of.val().get_bit(3))
            | ((self.op.val() == 7_u64) & self.of.val().get_bits::<2>(2).any());
        // LOAD / STORE: the local extent (rows - 1) * local_stride + row_bytes
        // and the device extent with dram_stride; 16 x 16 products only.
        self.rm1.next = 0.into();
        if self.lo4.val().any() {
            self.rm1.next = self.lo4.val() - 1_u64;
        }
        self.pl0.next = self.rm1.val() * self.w6.val().get_bits::<16>(0);
        self.pl1.next = self.rm1.val() * self.w6.val().get_bits::<16>(16);
        self.pd0.next = self.rm1.val() * self.w5.val().get_bits::<16>(0);
        self.pd1.next = self.rm1.val() * self.w5.val().get_bits::<16>(16);
        self.lstride.next = bit_cast::<64, 32>(self.w6.val());
        self.rowb.next = bit_cast::<64, 16>(self.hi4.val());
        self.a1.next = bit_cast::<64, 32>(self.w1.val());
        self.a2.next = bit_cast::<64, 32>(self.w2.val());
        self.a3.next = bit_cast::<64, 32>(self.w3.val());
        self.a7.next = bit_cast::<64, 32>(self.w7.val());
        self.lend.next = self.a1.val()
            + bit_cast::<64, 32>(self.pl0.val())
            + (bit_cast::<64, 32>(self.pl1.val()) << 16_u64)
            + self.rowb.val();
        self.dram.next = (self.a3.val() << 32_u64) | self.a2.val();
        // The device range may not pass 2^64: the 64-bit sum wraps below dram.
        self.dend.next = self.dram.val()
            + bit_cast::<64, 32>(self.pd0.val())
            + (bit_cast::<64, 32>(self.pd1.val()) << 16_u64)
            + self.rowb.val();
        // MATMUL (m, k, n), ACT (rows = m, cols = k), ADD and MAX (len = word 4).
        self.mk.next = self.lo4.val() * self.hi4.val();
        self.kn.next = self.hi4.val() * self.lo5.val();
        self.mn.next = self.lo4.val() * self.lo5.val();
        self.e1_mk.next = self.a1.val() + bit_cast::<64, 32>(self.mk.val());
        self.e2_kn.next = self.a2.val() + bit_cast::<64, 32>(self.kn.val());
        self.e3_mn4.next = self.a3.val() + (bit_cast::<64, 32>(self.mn.val()) << 2_u64);
        self.e1_mk4.next = self.a1.val() + (bit_cast::<64, 32>(self.mk.val()) << 2_u64);
        self.e2_mk.next = self.a2.val() + bit_cast::<64, 32>(self.mk.val());
        self.e3_k4.next = self.a3.val() + (bit_cast::<64, 16>(self.hi4.val()) << 2_u64);
        self.e7_k8.next = self.a7.val() + (bit_cast::<64, 16>(self.hi4.val()) << 3_u64);
        self.e1_len.next = self.a1.val() + bit_cast::<64, 32>(self.w4.val());
        self.e2_len.next = self.a2.val() + bit_cast::<64, 32>(self.w4.val());
        self.e3_len.next = self.a3.val() + bit_cast::<64, 32>(self.w4.val());
        self.e3_len4.next = self.a3.val() + (bit_cast::<64, 32>(self.w4.val()) << 2_u64);
        // The checks, first failing wins.
        self.b.next = true;
        self.c.next = self.e_reserved.val();
        self.a.next = self.paddr.val();
        if self.op.val() > 7_u64 {
            self.c.next = self.e_opcode.val();
        } else if self.w0.val().get_bits::<16>(16).any() {
            self.c.next = self.e_reserved.val();
        } else if self.r1.val() | self.r2.val() | self.r3.val() | self.r4.val() {
            self.c.next = self.e_reserved.val();
        } else if self.r5.val() | self.r6.val() | self.r7.val() {
            self.c.next = self.e_reserved.val();
        } else if self.bad_deps.val() | self.bad_flags.val() {
            self.c.next = self.e_flags.val();
        } else if (self.op.val() == 4_u64)
            & ((!self.of.val().get_bit(1) & self.w3.val().any())
                | (self.of.val().get_bit(2)
                    & (self.w5.val().any() | self.w6.val().get_bits::<8>(0).any()))
                | (!self.of.val().get_bit(2) & self.w7.val().any()))
        {
            // ACT: bias without BIAS; multiplier or shift with PER_CHANNEL; qtab without.
            self.c.next = self.e_reserved.val();
        } else if (self.op.val() == 7_u64)
            & !self.of.val().get_bit(1)
            & (self.w2.val().any() | self.w3.val().any())
        {
            // FENCE: an address without WRITEBACK.
            self.c.next = self.e_reserved.val();
        } else if (self.op.val() == 1_u64) | (self.op.val() == 2_u64) {
            if !self.lo4.val().any() | !self.hi4.val().any() {
                self.c.next = self.e_field.val();
            } else if (self.lo4.val() > 1_u64) & (self.lstride.val() < self.rowb.val()) {
                self.c.next = self.e_field.val();
            } else if self.of.val().get_bit(0) & self.w1.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.a1.val();
            } else if self.of.val().get_bit(0) & self.hi4.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.rowb.val();
            } else if self.of.val().get_bit(0)
                & (self.lo4.val() > 1_u64)
                & self.w6.val().get_bits::<2>(0).any()
            {
                self.c.next = self.e_align.val();
                self.a.next = self.lstride.val();
            } else if !self.of.val().get_bit(0) & (self.lend.val() > self.spad.val()) {
                self.c.next = self.e_spad.val();
                self.a.next = self.lend.val();
            } else if self.of.val().get_bit(0) & (self.lend.val() > self.acc.val()) {
                self.c.next = self.e_acc.val();
                self.a.next = self.lend.val();
            } else if self.dend.val() < self.dram.val() {
                self.c.next = self.e_field.val();
            } else {
                self.b.next = false;
            }
        } else if self.op.val() == 3_u64 {
            if !self.lo4.val().any() | !self.hi4.val().any() | !self.lo5.val().any() {
                self.c.next = self.e_field.val();
            } else if (self.hi4.val() > self.rows.val()) | (self.lo5.val() > self.cols.val()) {
                self.c.next = self.e_field.val();
            } else if self.e1_mk.val() > self.spad.val() {
                self.c.next = self.e_spad.val();
                self.a.next = self.e1_mk.val();
            } else if self.e2_kn.val() > self.spad.val() {
                self.c.next = self.e_spad.val();
                self.a.next = self.e2_kn.val();
            } else if self.w3.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.a3.val();
            } else if self.e3_mn4.val() > self.acc.val() {
                self.c.next = self.e_acc.val();
                self.a.next = self.e3_mn4.val();
            } else {
                self.b.next = false;
            }
        } else if self.op.val() == 4_u64 {
            if !self.lo4.val().any() | !self.hi4.val().any() {
                self.c.next = self.e_field.val();
            } else if self.w6.val().get_bits::<8>(0) > 62_u64 {
                self.c.next = self.e_field.val();
            } else if self.w1.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.a1.val();
            } else if self.e1_mk4.val() > self.acc.val() {
                self.c.next = self.e_acc.val();
                self.a.next = self.e1_mk4.val();
            } else if self.e2_mk.val() > self.spad.val() {
                self.c.next = self.e_spad.val();
                self.a.next = self.e2_mk.val();
            } else if self.of.val().get_bit(1) & self.w3.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.a3.val();
            } else if self.of.val().get_bit(1) & (self.e3_k4.val() > self.acc.val()) {
                self.c.next = self.e_acc.val();
                self.a.next = self.e3_k4.val();
            } else if self.of.val().get_bit(2) & self.w7.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.a7.val();
            } else if self.of.val().get_bit(2) & (self.e7_k8.val() > self.acc.val()) {
                self.c.next = self.e_acc.val();
                self.a.next = self.e7_k8.val();
            } else {
                self.b.next = false;
            }
        } else if (self.op.val() == 5_u64) | (self.op.val() == 6_u64) {
            if !self.w4.val().any() {
                self.c.next = self.e_field.val();
            } else if self.e1_len.val() > self.spad.val() {
                self.c.next = self.e_spad.val();
                self.a.next = self.e1_len.val();
            } else if self.e2_len.val() > self.spad.val() {
                self.c.next = self.e_spad.val();
                self.a.next = self.e2_len.val();
            } else if (self.op.val() == 5_u64) & self.w3.val().get_bits::<2>(0).any() {
                self.c.next = self.e_align.val();
                self.a.next = self.a3.val();
            } else if (self.op.val() == 5_u64) & (self.e3_len4.val() > self.acc.val()) {
                self.c.next = self.e_acc.val();
                self.a.next = self.e3_len4.val();
            } else if (self.op.val() == 6_u64) & (self.e3_len.val() > self.spad.val()) {
                self.c.next = self.e_spad.val();
                self.a.next = self.e3_len.val();
            } else {
                self.b.next = false;
            }
        } else if (self.op.val() == 7_u64)
            & self.of.val().get_bit(1)
            & self.w2.val().get_bits::<2>(0).any()
        {
            // FENCE: the writeback address must be 4-byte aligned.
            self.c.next = self.e_align.val();
            self.a.next = self.dram.val();
        } else {
            self.b.next = false;
        }
        self.bad.next = self.b.val();
        self.code.next = 0.into();
        self.addr.next = 0.into();
        if self.b.val() {
            self.code.next = self.c.val();
            self.addr.next = self.a.val();
        }
    }
}
