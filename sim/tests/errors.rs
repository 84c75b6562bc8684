//! Every error path of the device, end to end on the model: the ring stops with
//! the documented error code (`firmware-abi/src/error.rs`), `ERR_DESC` holds the
//! ring index of the descriptor at fault, `ERR_ADDR` what error.rs documents for
//! the code, `STATUS.HALTED` is set, `IRQ_ERROR` is raised (and the line asserted
//! when unmasked), later descriptors never run, and device memory holds exactly
//! what the descriptors before the fault wrote — nothing else.
//!
//! Most cases run one ring:
//!
//! ```text
//!   0 LOAD  spad[0..64] <- SRC
//!   1 FENCE seq=1
//!   2 STORE spad[0..64] -> P
//!   3 FENCE seq=3 writeback=WB
//!   4.. the body under test (faults at a given body index)
//!   .. STORE spad[0..64] -> Q      (must never write)
//!   .. FENCE seq=101 irq           (must never complete)
//! ```

use npukit_abi::desc::{deps, flags, Act, Add, Dma, Fence, Matmul, Max, Op};
use npukit_abi::xlat::{pte, PAGE_BYTES};
use npukit_abi::{regs, Descriptor, ErrorCode, DESC_BYTES};
use npukit_sim::run::{read_counters, run_program, wait_idle, RunError};
use npukit_sim::{Device, Event, ModelDevice, NpuConfig, RunExit, VecMemory};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const MEM: u64 = 1 << 20;
const RING: u64 = 0x2000;
const SRC: u64 = 0x8000;
const P: u64 = 0x9000;
const Q: u64 = 0xA000;
const WB: u64 = 0xB000;
const TABLE: u64 = 0xC000;
const MAX_CYCLES: u64 = 5_000_000;
/// Scratchpad and accumulator sizes of the default configuration.
const SPAD: u32 = 256 << 10;
const ACC: u32 = 64 << 10;

type Dev = ModelDevice<Vec<(u64, Event)>>;

// ---------------------------------------------------------------- helpers

fn canary(addr: usize) -> u8 {
    ((addr.wrapping_mul(131).wrapping_add(17)) % 251) as u8 ^ 0xA5
}

fn desc(op: Op) -> Descriptor {
    Descriptor::new(op)
}

fn row(local: u32, dram: u64, len: u16, acc: bool) -> Dma {
    Dma {
        local,
        dram,
        rows: 1,
        row_bytes: len,
        dram_stride: len as u32,
        local_stride: len as u32,
        acc,
    }
}

fn load(d: Dma) -> Descriptor {
    desc(Op::Load(d))
}

fn store(d: Dma) -> Descriptor {
    desc(Op::Store(d))
}

fn fence(seq: u32, writeback: Option<u64>, irq: bool) -> Descriptor {
    desc(Op::Fence(Fence {
        seq,
        writeback,
        irq,
    }))
}

fn enc(d: Descriptor) -> [u8; DESC_BYTES] {
    d.encode()
}

/// `d` encoded, then word `w` ORed with `bits`.
fn patched(d: Descriptor, w: usize, bits: u32) -> [u8; DESC_BYTES] {
    let mut b = d.encode();
    let v = u32::from_le_bytes([b[4 * w], b[4 * w + 1], b[4 * w + 2], b[4 * w + 3]]) | bits;
    b[4 * w..4 * w + 4].copy_from_slice(&v.to_le_bytes());
    b
}

fn matmul(a: u32, w: u32, out: u32, m: u16, k: u16, n: u16) -> Descriptor {
    desc(Op::Matmul(Matmul {
        a,
        w,
        out,
        m,
        k,
        n,
        accumulate: false,
    }))
}

fn act() -> Act {
    Act {
        src: 0,
        dst: 0,
        bias: None,
        rows: 2,
        cols: 4,
        multiplier: 1,
        shift: 0,
        zero_point: 0,
        relu: false,
        qtab: None,
    }
}

/// `act()` with PER_CHANNEL and its table at `qtab`.
fn act_pc(qtab: u32) -> Act {
    Act {
        multiplier: 0,
        qtab: Some(qtab),
        ..act()
    }
}

fn add(a: u32, b: u32, dst: u32, len: u32) -> Descriptor {
    desc(Op::Add(Add {
        a,
        b,
        dst,
        len,
        a_zp: 0,
        b_zp: 0,
        a_mult: 1,
        b_mult: 1,
        accumulate: false,
    }))
}

fn max(a: u32, b: u32, dst: u32, len: u32) -> Descriptor {
    desc(Op::Max(Max { a, b, dst, len }))
}

fn prefix() -> Vec<Descriptor> {
    vec![
        load(row(0, SRC, 64, false)),
        fence(1, None, false),
        store(row(0, P, 64, false)),
        fence(3, Some(WB), false),
    ]
}

fn suffix() -> Vec<Descriptor> {
    vec![store(row(0, Q, 64, false)), fence(101, None, true)]
}

const PREFIX_LEN: u32 = 4;

struct Env {
    dev: Dev,
    mem: VecMemory,
    src: Vec<u8>,
}

impl Env {
    fn new() -> Self {
        Self::with_config(NpuConfig::default())
    }

    /// A device, and memory full of the canary pattern with 64 random bytes at SRC.
    fn with_config(cfg: NpuConfig) -> Self {
        let mut mem = VecMemory::new(MEM as usize);
        for (a, b) in mem.bytes_mut().iter_mut().enumerate() {
            *b = canary(a);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let src: Vec<u8> = (0..64).map(|_| rng.gen()).collect();
        mem.store(SRC, &src).expect("in memory");
        Env {
            dev: ModelDevice::with_sink(&cfg, Vec::new()),
            mem,
            src,
        }
    }

    /// Translation on: pages 0..16 identity and writable, page 16 unmapped,
    /// page 17 read-only onto 0x3_0000, page 18 onto a physical address beyond
    /// memory, page 19 writable onto 0x5_0000; XLAT_PAGES = 20.
    fn with_translation() -> Self {
        let mut env = Self::new();
        let mut table = Vec::new();
        for p in 0..16u64 {
            table.push(pte(p * PAGE_BYTES, true));
        }
        table.push(0);
        table.push(pte(0x3_0000, false));
        table.push(pte(0x4000_0000, true));
        table.push(pte(0x5_0000, true));
        let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_le_bytes()).collect();
        env.mem.store(TABLE, &bytes).expect("in memory");
        env.dev.mmio_write(regs::XLAT_BASE_LO, TABLE as u32);
        env.dev.mmio_write(regs::XLAT_BASE_HI, 0);
        env.dev.mmio_write(regs::XLAT_PAGES, table.len() as u32);
        env.dev.mmio_write(regs::CONTROL, regs::CONTROL_XLAT_EN);
        env
    }

    /// Writes `entries` as a ring at `base` and starts the device the way
    /// `run::start` does (ring registers, interrupt mask, tail, RUN).
    fn start_raw(&mut self, base: u64, entries: &[[u8; DESC_BYTES]]) {
        for (i, e) in entries.iter().enumerate() {
            self.mem
                .store(base + (i * DESC_BYTES) as u64, e)
                .expect("ring in memory");
        }
        let size = (entries.len() as u32 + 1).next_power_of_two().max(2);
        self.program_ring(base, size, entries.len() as u32);
    }

    fn program_ring(&mut self, base: u64, size: u32, tail: u32) {
        let d = &mut self.dev;
        d.mmio_write(regs::RING_BASE_LO, base as u32);
        d.mmio_write(regs::RING_BASE_HI, (base >> 32) as u32);
        d.mmio_write(regs::RING_SIZE, size);
        d.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
        d.mmio_write(regs::RING_TAIL, tail);
        let ctl = d.mmio_read(regs::CONTROL);
        d.mmio_write(regs::CONTROL, ctl | regs::CONTROL_RUN);
    }

    fn err_addr(&mut self) -> u64 {
        self.dev.mmio_read(regs::ERR_ADDR_LO) as u64
            | (self.dev.mmio_read(regs::ERR_ADDR_HI) as u64) << 32
    }

    /// The latched error registers, the status bits and the interrupt.
    fn assert_halted(&mut self, code: ErrorCode, index: Option<u32>, addr: u64) {
        let d = &mut self.dev;
        assert_eq!(
            ErrorCode::from_u32(d.mmio_read(regs::ERR_CODE)),
            Some(code),
            "ERR_CODE"
        );
        if let Some(index) = index {
            assert_eq!(d.mmio_read(regs::ERR_DESC), index, "ERR_DESC");
        }
        assert_eq!(self.err_addr(), addr, "ERR_ADDR");
        let d = &mut self.dev;
        assert_ne!(
            d.mmio_read(regs::STATUS) & regs::STATUS_HALTED,
            0,
            "STATUS.HALTED"
        );
        assert_ne!(
            d.mmio_read(regs::IRQ_STATUS) & regs::IRQ_ERROR,
            0,
            "IRQ_STATUS.ERROR"
        );
        assert!(d.irq_pending(), "interrupt line (IRQ_ERROR unmasked)");
    }

    /// Runs on for a while: a halted device does nothing more.
    fn assert_stays_halted(&mut self) {
        let before = self.mem.bytes().to_vec();
        let regs_before: Vec<u32> = [
            regs::ERR_CODE,
            regs::ERR_DESC,
            regs::ERR_ADDR_LO,
            regs::RING_HEAD,
        ]
        .iter()
        .map(|&r| self.dev.mmio_read(r))
        .collect();
        let done = self.dev.counters().desc_done;
        let t = self.dev.cycle() + 100_000;
        assert_eq!(self.dev.run_until(&mut self.mem, t, false), RunExit::Cycle);
        assert!(
            self.mem.bytes() == &before[..],
            "memory changed after the halt"
        );
        let regs_after: Vec<u32> = [
            regs::ERR_CODE,
            regs::ERR_DESC,
            regs::ERR_ADDR_LO,
            regs::RING_HEAD,
        ]
        .iter()
        .map(|&r| self.dev.mmio_read(r))
        .collect();
        assert_eq!(regs_before, regs_after);
        assert_eq!(
            self.dev.counters().desc_done,
            done,
            "descriptors completed after the halt"
        );
        assert_ne!(self.dev.mmio_read(regs::STATUS) & regs::STATUS_HALTED, 0);
    }
}

/// How the fault is detected, for the extra checks that only hold for some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Decode or validation: the descriptor never dispatches, so `RING_HEAD`
    /// stops at it and every earlier descriptor has completed.
    Decode,
    /// Detected while executing.
    Runtime,
}

/// Runs prefix + `body` + suffix; the descriptor at `body[at]` must fault with
/// `code` and ERR_ADDR `addr` (`None`: the descriptor's physical address).
fn fault_case(
    env: &mut Env,
    body: &[[u8; DESC_BYTES]],
    at: usize,
    code: ErrorCode,
    addr: Option<u64>,
    kind: Kind,
) {
    let mut entries: Vec<[u8; DESC_BYTES]> = prefix().into_iter().map(enc).collect();
    entries.extend_from_slice(body);
    entries.extend(suffix().into_iter().map(enc));
    // The memory the run may produce: the ring, P (the prefix STORE) and WB.
    let mut expect = env.mem.bytes().to_vec();
    for (i, e) in entries.iter().enumerate() {
        let a = RING as usize + i * DESC_BYTES;
        expect[a..a + DESC_BYTES].copy_from_slice(e);
    }
    expect[P as usize..P as usize + 64].copy_from_slice(&env.src);
    expect[WB as usize..WB as usize + 4].copy_from_slice(&3u32.to_le_bytes());

    env.start_raw(RING, &entries);
    let index = PREFIX_LEN + at as u32;
    let addr = addr.unwrap_or(RING + index as u64 * DESC_BYTES as u64);
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert_eq!(
        r,
        Err(RunError::Device { code, index, addr }),
        "{code} at body[{at}]"
    );
    env.assert_halted(code, Some(index), addr);
    assert_eq!(
        env.dev.mmio_read(regs::FENCE_SEQ),
        3,
        "no FENCE after the prefix completed"
    );
    if kind == Kind::Decode {
        assert_eq!(
            env.dev.mmio_read(regs::RING_HEAD),
            index,
            "RING_HEAD stops at the fault"
        );
        assert_eq!(
            env.dev.counters().desc_done,
            index as u64,
            "descriptors completed"
        );
    }
    let got = env.mem.bytes();
    if let Some(i) = (0..got.len()).find(|&i| got[i] != expect[i]) {
        panic!(
            "{code}: memory byte {i:#x} is {:#04x}, expected {:#04x}",
            got[i], expect[i]
        );
    }
    env.assert_stays_halted();
}

/// One faulting descriptor as the whole body.
fn fault_one(bad: [u8; DESC_BYTES], code: ErrorCode, addr: Option<u64>) {
    fault_case(&mut Env::new(), &[bad], 0, code, addr, Kind::Decode);
}

/// A faulting DMA or FENCE descriptor followed by a FENCE (so that the suffix
/// could only run after it).
fn fault_runtime(env: &mut Env, bad: Descriptor, code: ErrorCode, addr: u64) {
    fault_case(
        env,
        &[enc(bad), enc(fence(50, None, false))],
        0,
        code,
        Some(addr),
        Kind::Runtime,
    );
}

// ---------------------------------------------------------------- decode errors

#[test]
fn bad_opcode() {
    for op in [8u8, 0x42, 0xFF] {
        let mut b = [0u8; DESC_BYTES];
        b[0] = op;
        fault_one(b, ErrorCode::BadOpcode, None);
    }
    // A valid MATMUL whose opcode byte is patched to an unknown one.
    let mut b = enc(matmul(0, 0x100, 0, 4, 16, 16));
    b[0] = 9;
    fault_one(b, ErrorCode::BadOpcode, None);
}

#[test]
fn bad_opcode_patched_in_memory_before_run() {
    // Encode a valid ring, then corrupt one byte in device memory before RUN.
    let mut env = Env::new();
    let mut descs = prefix();
    descs.push(desc(Op::Nop));
    descs.extend(suffix());
    let entries: Vec<[u8; DESC_BYTES]> = descs.iter().map(|&d| enc(d)).collect();
    for (i, e) in entries.iter().enumerate() {
        env.mem
            .store(RING + (i * DESC_BYTES) as u64, e)
            .expect("in memory");
    }
    let bad = RING + PREFIX_LEN as u64 * DESC_BYTES as u64;
    env.mem.bytes_mut()[bad as usize] = 0x77;
    env.program_ring(RING, 8, entries.len() as u32);
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert_eq!(
        r,
        Err(RunError::Device {
            code: ErrorCode::BadOpcode,
            index: PREFIX_LEN,
            addr: bad
        })
    );
    env.assert_halted(ErrorCode::BadOpcode, Some(PREFIX_LEN), bad);
    assert_eq!(env.mem.load(P, 64).expect("in memory"), &env.src[..]);
    assert!(
        (Q as usize..Q as usize + 64).all(|a| env.mem.bytes()[a] == canary(a)),
        "Q written"
    );
}

#[test]
fn reserved_bits_in_word_0() {
    fault_one(
        patched(desc(Op::Nop), 0, 1 << 16),
        ErrorCode::Reserved,
        None,
    );
    fault_one(
        patched(matmul(0, 0x100, 0, 4, 16, 16), 0, 1 << 31),
        ErrorCode::Reserved,
        None,
    );
    fault_one(
        patched(load(row(0, SRC, 8, false)), 0, 0x00F0_0000),
        ErrorCode::Reserved,
        None,
    );
}

#[test]
fn reserved_bits_in_later_words() {
    // MATMUL word 5 holds only n (bits 15:0).
    fault_one(
        patched(matmul(0, 0x100, 0, 4, 16, 16), 5, 1 << 24),
        ErrorCode::Reserved,
        None,
    );
    // NOP defines no word at all; LOAD does not define word 7.
    fault_one(patched(desc(Op::Nop), 7, 1), ErrorCode::Reserved, None);
    fault_one(
        patched(load(row(0, SRC, 8, false)), 7, 0x8000_0000),
        ErrorCode::Reserved,
        None,
    );
    // MAX defines words 1-4 only; ACT's word 6 holds shift and zero point (15:0).
    fault_one(
        patched(max(0, 0x100, 0x200, 8), 5, 1),
        ErrorCode::Reserved,
        None,
    );
    fault_one(
        patched(desc(Op::Act(act())), 6, 1 << 16),
        ErrorCode::Reserved,
        None,
    );
    // A bias address without the BIAS flag, a writeback address without WRITEBACK.
    fault_one(
        patched(desc(Op::Act(act())), 3, 0x40),
        ErrorCode::Reserved,
        None,
    );
    fault_one(
        patched(fence(1, None, false), 2, 0x100),
        ErrorCode::Reserved,
        None,
    );
}

/// ACT (ABI 1.1): with PER_CHANNEL the per-tensor multiplier (word 5) and
/// shift (word 6 bits 7:0) are reserved; without it, `qtab` (word 7) is.
/// ACT's flag bit 3 (word 0 bit 15) is still undefined.
#[test]
fn act_per_channel_reserved_fields() {
    let pc = desc(Op::Act(act_pc(0x400)));
    fault_one(patched(pc, 5, 1), ErrorCode::Reserved, None);
    fault_one(patched(pc, 5, 0x8000_0000), ErrorCode::Reserved, None);
    fault_one(patched(pc, 6, 1), ErrorCode::Reserved, None);
    fault_one(patched(pc, 6, 0x80), ErrorCode::Reserved, None);
    fault_one(patched(pc, 6, 1 << 16), ErrorCode::Reserved, None);
    fault_one(
        patched(desc(Op::Act(act())), 7, 0x400),
        ErrorCode::Reserved,
        None,
    );
    fault_one(
        patched(pc, 0, (8u32) << flags::SHIFT),
        ErrorCode::BadFlags,
        None,
    );
}

/// PER_CHANNEL's table address: a multiple of 4 (`MISALIGNED`, `ERR_ADDR` =
/// `qtab`) and `cols` 8-byte entries inside the accumulator memory
/// (`ACC_RANGE`, `ERR_ADDR` = the table's end), checked after the bias.
#[test]
fn act_per_channel_table_address() {
    // act() has 4 columns: a 32-byte table.
    fault_one(
        enc(desc(Op::Act(act_pc(0x402)))),
        ErrorCode::Misaligned,
        Some(0x402),
    );
    fault_one(
        enc(desc(Op::Act(act_pc(0x401)))),
        ErrorCode::Misaligned,
        Some(0x401),
    );
    fault_one(
        enc(desc(Op::Act(act_pc(ACC - 28)))),
        ErrorCode::AccRange,
        Some(ACC as u64 + 4),
    );
    fault_one(
        enc(desc(Op::Act(act_pc(u32::MAX - 3)))),
        ErrorCode::AccRange,
        Some(u32::MAX as u64 - 3 + 32),
    );
    // A misaligned bias is reported before the table.
    fault_one(
        enc(desc(Op::Act(Act {
            bias: Some(0x22),
            ..act_pc(0x402)
        }))),
        ErrorCode::Misaligned,
        Some(0x22),
    );
    // The table may end exactly at the end of the memory.
    let mut env = Env::new();
    let ok = desc(Op::Act(act_pc(ACC - 32)));
    let prog: Vec<[u8; DESC_BYTES]> = [ok, fence(1, None, true)].iter().map(|&d| enc(d)).collect();
    env.start_raw(RING, &prog);
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(env.dev.error(), None);
}

#[test]
fn bad_flags() {
    let ld = load(row(0, SRC, 8, false));
    let st = store(row(0, Q, 8, false));
    // Dependency flags a unit cannot use: LOAD has no previous unit, STORE no next,
    // NOP and FENCE belong to no unit.
    fault_one(
        enc(ld.with_deps(deps::WAIT_PREV)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(
        enc(ld.with_deps(deps::SIGNAL_PREV)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(
        enc(st.with_deps(deps::WAIT_NEXT)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(
        enc(st.with_deps(deps::SIGNAL_NEXT)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(
        enc(desc(Op::Nop).with_deps(deps::SIGNAL_NEXT)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(
        enc(fence(9, None, false).with_deps(deps::WAIT_PREV)),
        ErrorCode::BadFlags,
        None,
    );
    // Opcode flags the opcode does not define.
    let of = |f: u8| (f as u32) << flags::SHIFT;
    fault_one(
        patched(max(0, 0x100, 0x200, 8), 0, of(1)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(patched(ld, 0, of(2)), ErrorCode::BadFlags, None);
    fault_one(
        patched(matmul(0, 0x100, 0, 4, 16, 16), 0, of(8)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(
        patched(fence(9, None, false), 0, of(4)),
        ErrorCode::BadFlags,
        None,
    );
    fault_one(patched(desc(Op::Nop), 0, of(1)), ErrorCode::BadFlags, None);
}

#[test]
fn bad_field() {
    let f = ErrorCode::BadField;
    // The default array is 16 x 16.
    fault_one(enc(matmul(0, 0x100, 0, 4, 17, 16)), f, None);
    fault_one(enc(matmul(0, 0x100, 0, 4, 16, 17)), f, None);
    fault_one(enc(matmul(0, 0x100, 0, 0, 16, 16)), f, None);
    fault_one(enc(matmul(0, 0x100, 0, 4, 0, 16)), f, None);
    fault_one(
        enc(load(Dma {
            rows: 0,
            ..row(0, SRC, 8, false)
        })),
        f,
        None,
    );
    fault_one(
        enc(store(Dma {
            row_bytes: 0,
            ..row(0, Q, 8, false)
        })),
        f,
        None,
    );
    // local_stride below row_bytes with more than one row.
    let d = Dma {
        rows: 2,
        row_bytes: 16,
        local_stride: 8,
        ..row(0, SRC, 16, false)
    };
    fault_one(enc(load(d)), f, None);
    fault_one(enc(desc(Op::Act(Act { shift: 63, ..act() }))), f, None);
    fault_one(
        enc(desc(Op::Act(Act {
            shift: 255,
            ..act()
        }))),
        f,
        None,
    );
    fault_one(enc(desc(Op::Act(Act { rows: 0, ..act() }))), f, None);
    fault_one(enc(add(0, 0x100, 0, 0)), f, None);
    fault_one(enc(max(0, 0x100, 0x200, 0)), f, None);
}

#[test]
fn bad_field_on_non_square_arrays() {
    for (rows, cols) in [(4u32, 8u32), (8, 4)] {
        let mut cfg = NpuConfig::default();
        cfg.array.rows = rows;
        cfg.array.cols = cols;
        let k = rows as u16;
        let n = cols as u16;
        let ok_then = |bad: Descriptor| {
            let mut env = Env::with_config(cfg.clone());
            // The largest legal fold first, then the one that exceeds the array.
            let body = [
                enc(matmul(0, 0x100, 0, 3, k, n)),
                enc(fence(3, None, false)),
                enc(bad),
            ];
            fault_case(&mut env, &body, 2, ErrorCode::BadField, None, Kind::Decode);
        };
        ok_then(matmul(0, 0x100, 0, 3, k + 1, n));
        ok_then(matmul(0, 0x100, 0, 3, k, n + 1));
    }
}

#[test]
fn misaligned_accumulator_and_fence_addresses() {
    let m = ErrorCode::Misaligned;
    fault_one(enc(load(row(6, SRC, 8, true))), m, Some(6));
    fault_one(enc(store(row(0x102, Q, 8, true))), m, Some(0x102));
    fault_one(enc(matmul(0, 0x100, 2, 4, 16, 16)), m, Some(2));
    fault_one(
        enc(desc(Op::Act(Act { src: 0x11, ..act() }))),
        m,
        Some(0x11),
    );
    fault_one(
        enc(desc(Op::Act(Act {
            bias: Some(0x22),
            ..act()
        }))),
        m,
        Some(0x22),
    );
    fault_one(enc(add(0, 0x100, 0x13, 4)), m, Some(0x13));
    fault_one(enc(fence(5, Some(Q + 2), false)), m, Some(Q + 2));
}

#[test]
fn spad_range_reports_the_first_byte_past_the_access() {
    let s = ErrorCode::SpadRange;
    fault_one(
        enc(load(row(SPAD - 10, SRC, 20, false))),
        s,
        Some(SPAD as u64 + 10),
    );
    let d = Dma {
        rows: 3,
        row_bytes: 16,
        local_stride: 100,
        dram_stride: 16,
        ..row(SPAD - 200, SRC, 16, false)
    };
    fault_one(enc(load(d)), s, Some(SPAD as u64 + 16));
    fault_one(
        enc(store(row(SPAD - 1, Q, 2, false))),
        s,
        Some(SPAD as u64 + 1),
    );
    fault_one(
        enc(matmul(SPAD - 30, 0, 0, 2, 16, 16)),
        s,
        Some(SPAD as u64 + 2),
    );
    fault_one(
        enc(matmul(0, SPAD - 100, 0, 2, 16, 16)),
        s,
        Some(SPAD as u64 + 156),
    );
    fault_one(enc(max(0, 0x100, SPAD - 16, 32)), s, Some(SPAD as u64 + 16));
    fault_one(enc(add(SPAD - 4, 0, 0, 8)), s, Some(SPAD as u64 + 4));
    fault_one(
        enc(desc(Op::Act(Act {
            dst: SPAD - 7,
            ..act()
        }))),
        s,
        Some(SPAD as u64 + 1),
    );
}

#[test]
fn acc_range_reports_the_first_byte_past_the_access() {
    let a = ErrorCode::AccRange;
    fault_one(
        enc(store(row(ACC - 8, Q, 16, true))),
        a,
        Some(ACC as u64 + 8),
    );
    fault_one(
        enc(load(row(ACC - 4, SRC, 8, true))),
        a,
        Some(ACC as u64 + 4),
    );
    fault_one(
        enc(matmul(0, 0x100, ACC - 16, 2, 16, 4)),
        a,
        Some(ACC as u64 + 16),
    );
    fault_one(
        enc(desc(Op::Act(Act {
            src: ACC - 16,
            ..act()
        }))),
        a,
        Some(ACC as u64 + 16),
    );
    fault_one(
        enc(desc(Op::Act(Act {
            bias: Some(ACC - 4),
            ..act()
        }))),
        a,
        Some(ACC as u64 + 12),
    );
    fault_one(enc(add(0, 0x100, ACC - 16, 8)), a, Some(ACC as u64 + 16));
}

// ---------------------------------------------------------------- memory and translation

#[test]
fn addr_range_load_beyond_device_memory() {
    let r = ErrorCode::AddrRange;
    // Entirely beyond memory.
    fault_runtime(
        &mut Env::new(),
        load(row(0x100, MEM + 0x1000, 16, false)),
        r,
        MEM + 0x1000,
    );
    // A row that runs off the end: the first beat beyond memory faults.
    fault_runtime(
        &mut Env::new(),
        load(row(0x100, MEM - 40, 64, false)),
        r,
        MEM,
    );
    // The third row of a 2-D LOAD starts at the end of memory.
    let d = Dma {
        rows: 4,
        row_bytes: 16,
        dram_stride: 0x80,
        local_stride: 16,
        ..row(0x100, MEM - 0x100, 16, false)
    };
    fault_runtime(&mut Env::new(), load(d), r, MEM);
}

#[test]
fn addr_range_store_and_fence_writeback_beyond_device_memory() {
    let r = ErrorCode::AddrRange;
    fault_runtime(
        &mut Env::new(),
        store(row(0, MEM + 64, 16, false)),
        r,
        MEM + 64,
    );
    fault_runtime(&mut Env::new(), fence(7, Some(MEM + 4), false), r, MEM + 4);
}

#[test]
fn addr_range_ring_beyond_device_memory() {
    // Four-entry ring whose last two entries lie past the end of memory.
    let mut env = Env::new();
    let base = MEM - 2 * DESC_BYTES as u64;
    env.mem.store(base, &enc(desc(Op::Nop))).expect("in memory");
    env.mem
        .store(base + DESC_BYTES as u64, &enc(desc(Op::Nop)))
        .expect("in memory");
    let before = env.mem.bytes().to_vec();
    env.program_ring(base, 4, 3);
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert_eq!(
        r,
        Err(RunError::Device {
            code: ErrorCode::AddrRange,
            index: 2,
            addr: MEM
        })
    );
    env.assert_halted(ErrorCode::AddrRange, Some(2), MEM);
    assert!(env.mem.bytes() == &before[..]);
    env.assert_stays_halted();
}

#[test]
fn translation_works_before_the_faults() {
    // Control: translated LOAD, STORE and FENCE writeback land where the table says.
    let mut env = Env::with_translation();
    let prog = vec![
        load(row(0, 0x1_1000 + 8, 32, false)), // page 17 -> 0x3_0000, read-only
        fence(1, None, false),
        store(row(0, 0x1_3000 + 0x100, 32, false)), // page 19 -> 0x5_0000
        fence(2, Some(0x1_3000 + 0x200), true),
    ];
    run_program(&mut env.dev, &mut env.mem, RING, &prog, MAX_CYCLES).expect("runs");
    let src = env.mem.load(0x3_0008, 32).expect("in memory").to_vec();
    assert_eq!(env.mem.load(0x5_0100, 32).expect("in memory"), &src[..]);
    assert_eq!(
        env.mem.load(0x5_0200, 4).expect("in memory"),
        &2u32.to_le_bytes()
    );
    // Nothing landed at the untranslated addresses.
    assert!((0x1_3100..0x1_3204).all(|a| env.mem.bytes()[a] == canary(a)));
}

#[test]
fn xlat_fault_unmapped_page() {
    let x = ErrorCode::XlatFault;
    fault_runtime(
        &mut Env::with_translation(),
        load(row(0, 0x1_0010, 8, false)),
        x,
        0x1_0010,
    );
    fault_runtime(
        &mut Env::with_translation(),
        store(row(0, 0x1_0abc, 8, false)),
        x,
        0x1_0abc,
    );
    fault_runtime(
        &mut Env::with_translation(),
        fence(7, Some(0x1_0000), false),
        x,
        0x1_0000,
    );
    // A row crossing from a mapped page into the unmapped one faults at the page.
    fault_runtime(
        &mut Env::with_translation(),
        load(row(0, 0xFFF0, 32, false)),
        x,
        0x1_0000,
    );
}

#[test]
fn xlat_fault_beyond_xlat_pages() {
    let x = ErrorCode::XlatFault;
    fault_runtime(
        &mut Env::with_translation(),
        load(row(0, 0x1_4005, 8, false)),
        x,
        0x1_4005,
    );
    fault_runtime(
        &mut Env::with_translation(),
        store(row(0, 0x80_0000, 8, false)),
        x,
        0x80_0000,
    );
    fault_runtime(
        &mut Env::with_translation(),
        fence(7, Some(0x1_5000), false),
        x,
        0x1_5000,
    );
}

#[test]
fn xlat_write_to_read_only_page() {
    let w = ErrorCode::XlatWrite;
    fault_runtime(
        &mut Env::with_translation(),
        store(row(0, 0x1_1008, 8, false)),
        w,
        0x1_1008,
    );
    fault_runtime(
        &mut Env::with_translation(),
        fence(7, Some(0x1_1010), false),
        w,
        0x1_1010,
    );
}

#[test]
fn addr_range_through_translation_reports_the_physical_address() {
    let r = ErrorCode::AddrRange;
    fault_runtime(
        &mut Env::with_translation(),
        load(row(0, 0x1_2020, 8, false)),
        r,
        0x4000_0020,
    );
}

#[test]
fn addr_range_translation_table_beyond_device_memory() {
    // The table is physical: an entry past the end of memory is ADDR_RANGE at
    // the entry's physical address.
    let mut env = Env::new();
    let base = MEM - 16; // entries 0 and 1 in memory, entry 5 at MEM + 24
    env.mem
        .store(base, &pte(0, true).to_le_bytes())
        .expect("in memory");
    env.mem
        .store(base + 8, &pte(PAGE_BYTES, true).to_le_bytes())
        .expect("in memory");
    env.dev.mmio_write(regs::XLAT_BASE_LO, base as u32);
    env.dev.mmio_write(regs::XLAT_PAGES, 8);
    env.dev.mmio_write(regs::CONTROL, regs::CONTROL_XLAT_EN);
    let before = env.mem.bytes().to_vec();
    let ring = [
        enc(load(row(0, 0x5010, 8, false))),
        enc(fence(1, None, false)),
        enc(store(row(0, 0x100, 8, false))),
        enc(fence(2, None, true)),
    ];
    env.start_raw(RING, &ring);
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert_eq!(
        r,
        Err(RunError::Device {
            code: ErrorCode::AddrRange,
            index: 0,
            addr: MEM + 24
        })
    );
    env.assert_halted(ErrorCode::AddrRange, Some(0), MEM + 24);
    let got = env.mem.bytes();
    let ring_end = RING as usize + ring.len() * DESC_BYTES;
    assert!(
        got[..RING as usize] == before[..RING as usize] && got[ring_end..] == before[ring_end..]
    );
    env.assert_stays_halted();
}

// ---------------------------------------------------------------- ring registers

/// Ring whose only entry is a STORE to Q: it must never run.
fn bad_ring_env() -> Env {
    let mut env = Env::new();
    env.mem
        .store(RING, &enc(store(row(0, Q, 64, false))))
        .expect("in memory");
    env.mem
        .store(RING + DESC_BYTES as u64, &enc(fence(1, None, true)))
        .expect("in memory");
    env
}

fn assert_bad_ring(env: &mut Env, base: u64) {
    let t = env.dev.cycle() + 10_000;
    env.dev.run_until(&mut env.mem, t, true);
    env.assert_halted(ErrorCode::BadRing, None, base);
    assert_eq!(env.dev.mmio_read(regs::RING_HEAD), 0);
    assert!(
        (Q as usize..Q as usize + 64).all(|a| env.mem.bytes()[a] == canary(a)),
        "Q written"
    );
    env.assert_stays_halted();
}

#[test]
fn bad_ring_size_at_run() {
    for size in [0u32, 1, 3, 6, 100, 8192] {
        let mut env = bad_ring_env();
        env.program_ring(RING, size, 1);
        assert_bad_ring(&mut env, RING);
    }
}

#[test]
fn bad_ring_base_not_32_byte_aligned() {
    let mut env = bad_ring_env();
    env.program_ring(RING + 16, 4, 1);
    assert_bad_ring(&mut env, RING + 16);
}

#[test]
fn bad_ring_tail_not_below_size() {
    for tail in [4u32, 5, 0xFFFF_FFFF] {
        let mut env = bad_ring_env();
        env.program_ring(RING, 4, 0); // running, ring empty
        let t = env.dev.cycle() + 1000;
        assert_eq!(env.dev.run_until(&mut env.mem, t, true), RunExit::Cycle);
        env.dev.mmio_write(regs::RING_TAIL, tail);
        assert_bad_ring(&mut env, RING);
    }
}

#[test]
fn ring_tail_before_size_is_not_an_error_and_ring_programming_resets_pointers() {
    let mut env = bad_ring_env();
    let d = &mut env.dev;
    d.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
    d.mmio_write(regs::RING_TAIL, 2); // RING_SIZE is still 0 after reset: checked only at RUN
    assert_eq!(
        d.mmio_read(regs::STATUS) & regs::STATUS_HALTED,
        0,
        "halted before RUN"
    );
    d.mmio_write(regs::RING_SIZE, 4);
    d.mmio_write(regs::RING_BASE_LO, RING as u32);
    // Programming the ring starts it afresh (docs/abi.md, RING_BASE/RING_SIZE).
    assert_eq!(d.mmio_read(regs::RING_TAIL), 0);
    assert_eq!(d.mmio_read(regs::RING_HEAD), 0);
    d.mmio_write(regs::RING_TAIL, 2);
    d.mmio_write(regs::CONTROL, regs::CONTROL_RUN);
    assert_eq!(
        d.mmio_read(regs::STATUS) & regs::STATUS_HALTED,
        0,
        "halted at RUN"
    );
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 1);
}

// ---------------------------------------------------------------- liveness

#[test]
fn deadlock_compute_waits_for_a_load_that_never_comes() {
    let mut env = Env::new();
    let mm = matmul(0, 0x100, 0, 4, 16, 16).with_deps(deps::WAIT_PREV);
    let body = [enc(mm), enc(fence(50, None, false))];
    fault_case(
        &mut env,
        &body,
        0,
        ErrorCode::Deadlock,
        Some(0),
        Kind::Runtime,
    );
    assert_eq!(env.dev.counters().macs, 0, "the MATMUL never ran");
}

#[test]
fn deadlock_reports_the_first_blocked_head_in_load_compute_store_order() {
    // The STORE (earlier in the ring) and the LOAD both wait; ERR_DESC names the LOAD.
    let mut env = Env::new();
    let body = [
        enc(store(row(0, Q + 0x100, 8, false)).with_deps(deps::WAIT_PREV)),
        enc(load(row(0, SRC, 8, false)).with_deps(deps::WAIT_NEXT)),
        enc(fence(50, None, false)),
    ];
    fault_case(
        &mut env,
        &body,
        1,
        ErrorCode::Deadlock,
        Some(0),
        Kind::Runtime,
    );
}

#[test]
fn deadlock_with_a_full_queue_and_no_fence() {
    // Nine waiting MATMULs: eight fill the compute queue (depth 8), the ninth
    // cannot dispatch; no FENCE is needed for the device to know.
    let mut env = Env::new();
    let mm = enc(matmul(0, 0x100, 0, 4, 16, 16).with_deps(deps::WAIT_PREV));
    let body = vec![mm; 9];
    fault_case(
        &mut env,
        &body,
        0,
        ErrorCode::Deadlock,
        Some(0),
        Kind::Runtime,
    );
}

#[test]
fn watchdog_fires_during_a_long_matmul() {
    const W: u32 = 200;
    let mut env = Env::new();
    env.dev.mmio_write(regs::WATCHDOG, W);
    // 5000 streamed rows: 2*16 + 16 + 5000 - 2 cycles, far beyond the watchdog.
    let body = [
        enc(matmul(0, 0, 0, 5000, 16, 1)),
        enc(fence(50, None, false)),
    ];
    let mm_index = PREFIX_LEN;
    let mut entries: Vec<[u8; DESC_BYTES]> = prefix().into_iter().map(enc).collect();
    entries.extend_from_slice(&body);
    entries.extend(suffix().into_iter().map(enc));
    env.start_raw(RING, &entries);
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    // ERR_DESC is RING_HEAD (timing.md E2): the MATMUL has dispatched, so the
    // head is at the FENCE behind it.
    let head = env.dev.mmio_read(regs::RING_HEAD);
    assert_eq!(head, mm_index + 1);
    assert_eq!(
        r,
        Err(RunError::Device {
            code: ErrorCode::Watchdog,
            index: head,
            addr: 0
        })
    );
    env.assert_halted(ErrorCode::Watchdog, Some(head), 0);
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 3);
    assert_eq!(env.dev.counters().macs, 0, "the MATMUL never completed");
    assert!(
        (Q as usize..Q as usize + 64).all(|a| env.mem.bytes()[a] == canary(a)),
        "Q written"
    );
    // It fires exactly W cycles after the last completion (the prefix FENCE).
    let events = env.dev.sink();
    let err_at = events
        .iter()
        .find(|(_, e)| matches!(e, Event::Error { .. }))
        .map(|e| e.0);
    let last_done = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Complete { .. }))
        .map(|e| e.0)
        .max();
    assert_eq!(
        err_at,
        last_done.map(|c| c + W as u64),
        "fault cycle = last completion + WATCHDOG"
    );
    env.assert_stays_halted();

    // Control: with a watchdog longer than the MATMUL the same ring completes.
    let mut env = Env::new();
    env.dev.mmio_write(regs::WATCHDOG, 6000);
    env.start_raw(RING, &entries);
    assert!(wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES).is_ok());
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 101);
}

#[test]
fn token_overflow_on_the_256th_signal() {
    let ld = enc(load(row(0, SRC, 1, false)).with_deps(deps::SIGNAL_NEXT));
    let mut body = vec![ld; 256];
    body.push(enc(fence(50, None, false)));
    let mut env = Env::new();
    fault_case(
        &mut env,
        &body,
        255,
        ErrorCode::TokenOverflow,
        Some(0),
        Kind::Runtime,
    );
    assert_eq!(env.dev.tokens()[0], 255, "load->compute counter full");

    // compute -> store, from MAX descriptors.
    let mx = enc(max(0, 0, 0x100, 1).with_deps(deps::SIGNAL_NEXT));
    let mut body = vec![mx; 256];
    body.push(enc(fence(50, None, false)));
    let mut env = Env::new();
    fault_case(
        &mut env,
        &body,
        255,
        ErrorCode::TokenOverflow,
        Some(0),
        Kind::Runtime,
    );
}

#[test]
fn token_counter_holds_255() {
    let mut env = Env::new();
    let mut prog = vec![load(row(0, SRC, 1, false)).with_deps(deps::SIGNAL_NEXT); 255];
    prog.push(fence(1, None, true));
    let out = run_program(&mut env.dev, &mut env.mem, RING, &prog, MAX_CYCLES).expect("runs");
    assert_eq!(out.counters.desc_done, 256);
    assert_eq!(env.dev.tokens()[0], 255);
}

// ---------------------------------------------------------------- interrupt, reset

#[test]
fn error_interrupt_follows_the_mask_and_halted_survives_acknowledge() {
    let mut env = Env::new();
    let mut b = [0u8; DESC_BYTES];
    b[0] = 0x42;
    env.mem.store(RING, &b).expect("in memory");
    env.program_ring(RING, 2, 1);
    env.dev.mmio_write(regs::IRQ_MASK, regs::IRQ_FENCE);
    let t = env.dev.cycle() + 10_000;
    assert_eq!(
        env.dev.run_until(&mut env.mem, t, true),
        RunExit::Cycle,
        "masked: no stop"
    );
    assert_eq!(env.dev.mmio_read(regs::IRQ_STATUS), regs::IRQ_ERROR);
    assert!(!env.dev.irq_pending());
    env.dev.mmio_write(regs::IRQ_MASK, regs::IRQ_ERROR);
    assert!(env.dev.irq_pending());
    env.dev.mmio_write(regs::IRQ_STATUS, regs::IRQ_ERROR);
    assert!(!env.dev.irq_pending());
    // Acknowledging does not clear the error; only reset does.
    let status = env.dev.mmio_read(regs::STATUS);
    assert_ne!(status & regs::STATUS_HALTED, 0);
    assert_eq!(
        env.dev.mmio_read(regs::ERR_CODE),
        ErrorCode::BadOpcode as u32
    );
    // Ringing the doorbell again does not restart a halted device.
    env.mem
        .store(RING, &enc(fence(9, None, true)))
        .expect("in memory");
    env.dev.mmio_write(regs::RING_TAIL, 0);
    env.dev.mmio_write(regs::RING_TAIL, 1);
    let t = env.dev.cycle() + 10_000;
    env.dev.run_until(&mut env.mem, t, true);
    assert_eq!(env.dev.mmio_read(regs::FENCE_SEQ), 0);
    assert_eq!(
        env.dev.mmio_read(regs::ERR_CODE),
        ErrorCode::BadOpcode as u32
    );
}

/// A LOAD / MATMUL / STORE program with tokens, and its expected output.
fn good_program(rng: &mut ChaCha8Rng, mem: &mut VecMemory) -> (Vec<Descriptor>, u64, Vec<i32>) {
    let (m, k, n) = (6usize, 16usize, 16usize);
    let a: Vec<i8> = (0..m * k).map(|_| rng.gen()).collect();
    let w: Vec<i8> = (0..k * n).map(|_| rng.gen()).collect();
    mem.store(0x2_0000, &a.iter().map(|&x| x as u8).collect::<Vec<_>>())
        .expect("in memory");
    mem.store(0x2_1000, &w.iter().map(|&x| x as u8).collect::<Vec<_>>())
        .expect("in memory");
    let mut want = vec![0i32; m * n];
    for i in 0..m {
        for j in 0..n {
            want[i * n + j] = (0..k)
                .map(|kk| a[i * k + kk] as i32 * w[kk * n + j] as i32)
                .sum();
        }
    }
    let out = 0x2_2000u64;
    let prog = vec![
        load(row(0, 0x2_0000, (m * k) as u16, false)),
        load(row(0x400, 0x2_1000, (k * n) as u16, false)).with_deps(deps::SIGNAL_NEXT),
        desc(Op::Matmul(Matmul {
            a: 0,
            w: 0x400,
            out: 0,
            m: m as u16,
            k: k as u16,
            n: n as u16,
            accumulate: false,
        }))
        .with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        store(row(0, out, (m * n * 4) as u16, true)).with_deps(deps::WAIT_PREV),
        fence(77, Some(out + 0x1000), true),
    ];
    (prog, out, want)
}

fn reset_and_rerun(env: &mut Env, seed: u64) {
    env.dev.mmio_write(regs::CONTROL, regs::CONTROL_RESET);
    let d = &mut env.dev;
    assert_eq!(d.mmio_read(regs::STATUS), 0, "not halted, not busy");
    for r in [
        regs::ERR_CODE,
        regs::ERR_DESC,
        regs::ERR_ADDR_LO,
        regs::ERR_ADDR_HI,
    ] {
        assert_eq!(d.mmio_read(r), 0, "{:?}", regs::name_of(r));
    }
    assert_eq!(d.mmio_read(regs::IRQ_STATUS), 0);
    assert!(!d.irq_pending());
    assert_eq!(d.mmio_read(regs::RING_HEAD), 0);
    assert_eq!(d.mmio_read(regs::FENCE_SEQ), 0);
    assert_eq!(d.mmio_read(regs::CONTROL), 0);
    let c = read_counters(d);
    assert_eq!(
        (c.desc_done, c.macs, c.dma_rd_bytes, c.dma_wr_bytes),
        (0, 0, 0, 0)
    );
    assert_eq!(d.tokens(), [0; 4]);

    // A new program at another ring base runs correctly.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (prog, out_addr, want) = good_program(&mut rng, &mut env.mem);
    let out = run_program(&mut env.dev, &mut env.mem, 0x4_0000, &prog, MAX_CYCLES)
        .expect("runs after reset");
    let got: Vec<i32> = env
        .mem
        .load(out_addr, want.len() * 4)
        .expect("in memory")
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        env.mem.load(out_addr + 0x1000, 4).expect("in memory"),
        &77u32.to_le_bytes()
    );
    assert_eq!(out.counters.desc_done, 5);
    assert_eq!(out.counters.macs, 6 * 16 * 16);
    assert_eq!(out.counters.dma_rd_bytes, 6 * 16 + 16 * 16);
    assert_eq!(out.counters.dma_wr_bytes, 6 * 16 * 4);
}

#[test]
fn reset_after_a_decode_error() {
    let mut env = Env::new();
    let mut b = [0u8; DESC_BYTES];
    b[0] = 0x42;
    fault_case(&mut env, &[b], 0, ErrorCode::BadOpcode, None, Kind::Decode);
    reset_and_rerun(&mut env, 1);
}

#[test]
fn reset_after_a_watchdog_in_the_middle_of_a_matmul() {
    let mut env = Env::new();
    env.dev.mmio_write(regs::WATCHDOG, 100);
    env.start_raw(
        RING,
        &[enc(matmul(0, 0, 0, 5000, 16, 1)), enc(fence(1, None, true))],
    );
    let r = wait_idle(&mut env.dev, &mut env.mem, MAX_CYCLES);
    assert!(
        matches!(
            r,
            Err(RunError::Device {
                code: ErrorCode::Watchdog,
                ..
            })
        ),
        "{r:?}"
    );
    reset_and_rerun(&mut env, 2);
    assert_eq!(
        env.dev.mmio_read(regs::WATCHDOG),
        0,
        "reset clears WATCHDOG"
    );
}

#[test]
fn reset_after_a_fault_with_memory_requests_in_flight() {
    // A long LOAD is streaming when a STORE faults on translation; the LOAD's
    // responses still in flight are dropped, and reset leaves nothing behind.
    let mut env = Env::with_translation();
    let body = [
        enc(load(Dma {
            rows: 64,
            row_bytes: 64,
            dram_stride: 64,
            local_stride: 64,
            ..row(0x1000, 0x4000, 64, false)
        })),
        enc(store(row(0, 0x1_1000, 8, false))),
        enc(fence(50, None, false)),
    ];
    fault_case(
        &mut env,
        &body,
        1,
        ErrorCode::XlatWrite,
        Some(0x1_1000),
        Kind::Runtime,
    );
    reset_and_rerun(&mut env, 3);
    assert_eq!(env.dev.mmio_read(regs::XLAT_PAGES), 0);
}
