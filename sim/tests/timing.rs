//! One test (or more) per rule of `docs/timing.md`, named after the rule ID.
//!
//! Every test runs hand-written programs on `ModelDevice` with an event log and
//! checks the cycle stamps of the events against the rule's closed form, computed
//! here from the configuration (array shape `R` x `C`, beat `B`, latency `L`, ...)
//! and from the cycles of the events the rule starts from. No expected cycle is a
//! number copied from a run.
//!
//! Conventions of the helpers below: the ring is at physical address 0, data lives
//! from 0x10000 up, the translation table (when used) at 0xF000, and translated
//! pages map to 0x80000 upwards. `cfg(r, c, b, l)` gives full bandwidth
//! (`bytes_per_cycle = B`) and 64 outstanding requests unless a test changes it.
//!
//! A test marked `#[ignore = "model bug: ..."]` states the rule as documented
//! and fails on the model; it stays until the model or the document changes
//! (run them with `cargo test -p npukit-sim --test timing -- --ignored`).

use npukit_abi::desc::{deps, Act, Add, Dma, Fence, Matmul, Max, Op};
use npukit_abi::xlat::{pte, PAGE_BYTES, PAGE_SHIFT};
use npukit_abi::{regs, Descriptor, ErrorCode, Opcode, DESC_BYTES};
use npukit_sim::run::{self, RunError};
use npukit_sim::{
    Counters, Dataflow, Device, DeviceMemory, Engine, Event, MemKind, ModelDevice, NpuConfig,
    TokenQueue, VecMemory,
};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

const MEM_BYTES: u64 = 1 << 20;
const RING: u64 = 0;
const LIMIT: u64 = 2_000_000;
const XLAT_TABLE: u64 = 0xF000;
const XLAT_PAGES: u32 = 16;

/// An `r` x `c` array, `b`-byte beats, latency `l`, full bandwidth (`B` bytes per
/// cycle) and 64 outstanding requests.
fn cfg(r: u32, c: u32, b: u32, l: u32) -> NpuConfig {
    let mut cfg = NpuConfig::default();
    cfg.array.rows = r;
    cfg.array.cols = c;
    cfg.dma.beat_bytes = b;
    cfg.dram.latency = l;
    cfg.dram.bytes_per_cycle = b;
    cfg.dram.max_outstanding = 64;
    cfg.dram.size_bytes = MEM_BYTES;
    cfg.validate().expect("test config is valid");
    cfg
}

fn beat(cfg: &NpuConfig) -> u64 {
    cfg.dma.beat_bytes as u64
}

fn lat(cfg: &NpuConfig) -> u64 {
    cfg.dram.latency as u64
}

/// F1: fetch beats per descriptor, `32 / min(B, 32)`.
fn fetch_beats(cfg: &NpuConfig) -> usize {
    DESC_BYTES / (cfg.dma.beat_bytes as usize).min(DESC_BYTES)
}

/// C1: `2R + C + M - 2`.
fn matmul_latency(cfg: &NpuConfig, m: u64) -> u64 {
    2 * cfg.array.rows as u64 + cfg.array.cols as u64 + m - 2
}

/// C2: `rows * ceil(cols / C) + 2`.
fn act_latency(cfg: &NpuConfig, rows: u64, cols: u64) -> u64 {
    rows * cols.div_ceil(cfg.array.cols as u64) + 2
}

/// C3: `ceil(len / C) + 2`.
fn elementwise_latency(cfg: &NpuConfig, len: u64) -> u64 {
    len.div_ceil(cfg.array.cols as u64) + 2
}

/// A MAX length (a multiple of C) whose latency (C3) is `latency` (>= 3).
fn max_len_for(cfg: &NpuConfig, latency: u64) -> u32 {
    assert!(latency >= 3);
    let len = (latency - 2) * cfg.array.cols as u64;
    assert_eq!(elementwise_latency(cfg, len), latency);
    len as u32
}

// ---------------------------------------------------------------------------
// Descriptors
// ---------------------------------------------------------------------------

fn nop() -> Descriptor {
    Descriptor::new(Op::Nop)
}

fn fence(seq: u32) -> Descriptor {
    Descriptor::new(Op::Fence(Fence {
        seq,
        writeback: None,
        irq: true,
    }))
}

fn fence_quiet(seq: u32) -> Descriptor {
    Descriptor::new(Op::Fence(Fence {
        seq,
        writeback: None,
        irq: false,
    }))
}

fn fence_wb(seq: u32, addr: u64) -> Descriptor {
    Descriptor::new(Op::Fence(Fence {
        seq,
        writeback: Some(addr),
        irq: true,
    }))
}

/// MAX in place over the first `len` scratchpad bytes.
fn maxd(len: u32) -> Descriptor {
    Descriptor::new(Op::Max(Max {
        a: 0,
        b: 0,
        dst: 0,
        len,
    }))
}

fn maxd_at(a: u32, dst: u32, len: u32) -> Descriptor {
    Descriptor::new(Op::Max(Max { a, b: a, dst, len }))
}

fn add(len: u32) -> Descriptor {
    Descriptor::new(Op::Add(Add {
        a: 0,
        b: 0x1000,
        dst: 0,
        len,
        a_zp: 0,
        b_zp: 0,
        a_mult: 1,
        b_mult: 1,
        accumulate: false,
    }))
}

fn act(rows: u16, cols: u16) -> Descriptor {
    Descriptor::new(Op::Act(Act {
        src: 0,
        dst: 0,
        bias: None,
        rows,
        cols,
        multiplier: 1,
        shift: 0,
        zero_point: 0,
        relu: false,
        qtab: None,
    }))
}

/// ACT with PER_CHANNEL (table at accumulator 0x8000) and a bias (at 0xC000).
fn act_per_channel(rows: u16, cols: u16) -> Descriptor {
    Descriptor::new(Op::Act(Act {
        src: 0,
        dst: 0,
        bias: Some(0xC000),
        rows,
        cols,
        multiplier: 0,
        shift: 0,
        zero_point: 0,
        relu: true,
        qtab: Some(0x8000),
    }))
}

fn matmul(m: u16, k: u16, n: u16) -> Descriptor {
    Descriptor::new(Op::Matmul(Matmul {
        a: 0,
        w: 0x1000,
        out: 0,
        m,
        k,
        n,
        accumulate: false,
    }))
}

/// `rows` rows of `row_bytes`, packed on both sides.
fn dma(local: u32, dram: u64, rows: u16, row_bytes: u16) -> Dma {
    Dma {
        local,
        dram,
        rows,
        row_bytes,
        dram_stride: row_bytes as u32,
        local_stride: row_bytes as u32,
        acc: false,
    }
}

fn load(d: Dma) -> Descriptor {
    Descriptor::new(Op::Load(d))
}

fn store(d: Dma) -> Descriptor {
    Descriptor::new(Op::Store(d))
}

// ---------------------------------------------------------------------------
// Running programs
// ---------------------------------------------------------------------------

type Log = Vec<(u64, Event)>;

/// A model with an event log and its device memory.
struct Sim {
    dev: ModelDevice<Log>,
    mem: VecMemory,
}

impl Sim {
    fn new(cfg: &NpuConfig) -> Self {
        Sim {
            dev: ModelDevice::with_sink(cfg, Vec::new()),
            mem: VecMemory::new(MEM_BYTES as usize),
        }
    }

    fn ev(&self) -> Log {
        self.dev.sink().clone()
    }

    fn rd(&mut self, off: u32) -> u32 {
        self.dev.mmio_read(off)
    }

    fn wr(&mut self, off: u32, v: u32) {
        self.dev.mmio_write(off, v)
    }

    fn rd64(&mut self, off: u32) -> u64 {
        self.rd(off) as u64 | (self.rd(off + 4) as u64) << 32
    }

    /// Simulates up to (not including) cycle `c`.
    fn run_until(&mut self, c: u64) {
        self.dev.run_until(&mut self.mem, c, false);
    }

    fn cycle(&self) -> u64 {
        self.dev.cycle()
    }

    /// `run::run_program`: ring at 0 of the smallest size, IRQs unmasked, RUN.
    fn program(&mut self, descs: &[Descriptor]) -> Result<run::Outcome, RunError> {
        run::run_program(&mut self.dev, &mut self.mem, RING, descs, LIMIT)
    }

    /// Writes `descs` as a ring of `size` entries at `RING`, unmasks the
    /// interrupts and sets RUN (keeping XLAT_EN). `RING_TAIL` stays 0.
    fn ring(&mut self, descs: &[Descriptor], size: u32) {
        self.ring_at(RING, descs, size);
    }

    /// [`Sim::ring`] at physical `base`; descriptors that would not fit in
    /// memory are not written.
    fn ring_at(&mut self, base: u64, descs: &[Descriptor], size: u32) {
        assert!(descs.len() < size as usize);
        for (i, d) in descs.iter().enumerate() {
            let a = base + (i * DESC_BYTES) as u64;
            if a + DESC_BYTES as u64 <= MEM_BYTES {
                self.mem.write(a, &d.encode());
            }
        }
        self.wr(regs::RING_BASE_LO, base as u32);
        self.wr(regs::RING_BASE_HI, (base >> 32) as u32);
        self.wr(regs::RING_SIZE, size);
        self.wr(regs::IRQ_MASK, regs::IRQ_FENCE | regs::IRQ_ERROR);
        let ctl = self.rd(regs::CONTROL);
        self.wr(regs::CONTROL, ctl | regs::CONTROL_RUN);
    }

    fn doorbell(&mut self, tail: u32) {
        self.wr(regs::RING_TAIL, tail);
    }

    /// `run::wait_idle`.
    fn wait(&mut self) -> Result<u64, RunError> {
        run::wait_idle(&mut self.dev, &mut self.mem, LIMIT)
    }

    /// Latched error as read through MMIO: (code, ERR_DESC, ERR_ADDR).
    fn err_regs(&mut self) -> (ErrorCode, u32, u64) {
        let code = ErrorCode::from_u32(self.rd(regs::ERR_CODE)).expect("a known error code");
        (code, self.rd(regs::ERR_DESC), self.rd64(regs::ERR_ADDR_LO))
    }

    /// Writes the translation table at `XLAT_TABLE` (entry `v` = `entries[v]`),
    /// programs XLAT_BASE / XLAT_PAGES and sets CONTROL.XLAT_EN (before RUN).
    fn translation(&mut self, entries: &[u64]) {
        for (v, e) in entries.iter().enumerate() {
            self.mem.write(XLAT_TABLE + 8 * v as u64, &e.to_le_bytes());
        }
        self.wr(regs::XLAT_BASE_LO, XLAT_TABLE as u32);
        self.wr(regs::XLAT_BASE_HI, (XLAT_TABLE >> 32) as u32);
        self.wr(regs::XLAT_PAGES, entries.len() as u32);
        let ctl = self.rd(regs::CONTROL);
        self.wr(regs::CONTROL, ctl | regs::CONTROL_XLAT_EN);
    }

    /// Fills `len` bytes at `addr` with a nonzero pattern seeded by `seed`.
    fn fill(&mut self, addr: u64, len: usize, seed: u8) -> Vec<u8> {
        let data: Vec<u8> = (0..len)
            .map(|i| ((i as u32 * 7 + seed as u32) % 120 + 1) as u8)
            .collect();
        self.mem.write(addr, &data);
        data
    }

    fn mem_at(&self, addr: u64, len: usize) -> Vec<u8> {
        self.mem.load(addr, len).expect("in range").to_vec()
    }

    fn spad(&self, addr: u32, len: usize) -> Vec<u8> {
        self.dev.local().spad[addr as usize..addr as usize + len].to_vec()
    }
}

/// A fresh model running `descs` to completion; panics on a device error.
fn run_ok(cfg: &NpuConfig, descs: &[Descriptor]) -> (Sim, Log) {
    let mut s = Sim::new(cfg);
    s.program(descs)
        .unwrap_or_else(|e| panic!("program failed: {e}"));
    let ev = s.ev();
    (s, ev)
}

/// A fresh model running `descs` until the device halts; returns the error.
fn run_err(cfg: &NpuConfig, descs: &[Descriptor]) -> (Sim, Log, RunError) {
    let mut s = Sim::new(cfg);
    let e = s.program(descs).expect_err("the program must fault");
    let ev = s.ev();
    (s, ev, e)
}

// ---------------------------------------------------------------------------
// Event queries
// ---------------------------------------------------------------------------

/// An accepted request or a response: (cycle, beat-aligned address).
type Req = (u64, u64);

/// Cycles of the events matching `f`, in log order.
fn when(ev: &[(u64, Event)], f: impl Fn(&Event) -> bool) -> Vec<u64> {
    ev.iter().filter(|(_, e)| f(e)).map(|&(c, _)| c).collect()
}

/// Cycle of the first event matching `f`.
fn first(ev: &[(u64, Event)], what: &str, f: impl Fn(&Event) -> bool) -> u64 {
    when(ev, f)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no {what} event in the log"))
}

fn dispatch(ev: &[(u64, Event)], i: u32) -> u64 {
    first(
        ev,
        &format!("Dispatch #{i}"),
        |e| matches!(e, Event::Dispatch { index, .. } if *index == i),
    )
}

fn issue(ev: &[(u64, Event)], i: u32) -> u64 {
    first(
        ev,
        &format!("Issue #{i}"),
        |e| matches!(e, Event::Issue { index, .. } if *index == i),
    )
}

fn complete(ev: &[(u64, Event)], i: u32) -> u64 {
    first(
        ev,
        &format!("Complete #{i}"),
        |e| matches!(e, Event::Complete { index, .. } if *index == i),
    )
}

fn has_complete(ev: &[(u64, Event)], i: u32) -> bool {
    !when(
        ev,
        |e| matches!(e, Event::Complete { index, .. } if *index == i),
    )
    .is_empty()
}

/// (cycle, address) of the accepted requests of `who` of `kind`.
fn reqs(ev: &[(u64, Event)], who: Engine, kind: MemKind) -> Vec<(u64, u64)> {
    ev.iter()
        .filter_map(|(c, e)| match e {
            Event::MemReq {
                who: w,
                kind: k,
                addr,
            } if *w == who && *k == kind => Some((*c, *addr)),
            _ => None,
        })
        .collect()
}

/// (cycle, address) of the responses to `who` of `kind`.
fn resps(ev: &[(u64, Event)], who: Engine, kind: MemKind) -> Vec<(u64, u64)> {
    ev.iter()
        .filter_map(|(c, e)| match e {
            Event::MemResp {
                who: w,
                kind: k,
                addr,
            } if *w == who && *k == kind => Some((*c, *addr)),
            _ => None,
        })
        .collect()
}

fn cycles(v: &[(u64, u64)]) -> Vec<u64> {
    v.iter().map(|&(c, _)| c).collect()
}

/// Every MemReq, in order.
fn all_reqs(ev: &[(u64, Event)]) -> Vec<(u64, Engine, MemKind, u64)> {
    ev.iter()
        .filter_map(|(c, e)| match *e {
            Event::MemReq { who, kind, addr } => Some((*c, who, kind, addr)),
            _ => None,
        })
        .collect()
}

/// Every MemResp, in order.
fn all_resps(ev: &[(u64, Event)]) -> Vec<(u64, Engine, MemKind, u64)> {
    ev.iter()
        .filter_map(|(c, e)| match *e {
            Event::MemResp { who, kind, addr } => Some((*c, who, kind, addr)),
            _ => None,
        })
        .collect()
}

/// The single Error event: (cycle, code, index, addr).
fn error(ev: &[(u64, Event)]) -> (u64, ErrorCode, u32, u64) {
    let errs: Vec<_> = ev
        .iter()
        .filter_map(|(c, e)| match *e {
            Event::Error { code, index, addr } => Some((*c, code, index, addr)),
            _ => None,
        })
        .collect();
    assert_eq!(errs.len(), 1, "expected exactly one Error event: {errs:?}");
    errs[0]
}

fn events_at(ev: &[(u64, Event)], cycle: u64) -> Vec<Event> {
    ev.iter()
        .filter(|(c, _)| *c == cycle)
        .map(|(_, e)| e.clone())
        .collect()
}

/// Cycle in which the last fetch beat of descriptor `i` arrived (ring not
/// wrapped, fetched once, in order).
fn fetched(ev: &[(u64, Event)], cfg: &NpuConfig, i: u32) -> u64 {
    let k = fetch_beats(cfg);
    let r = resps(ev, Engine::Cmd, MemKind::Fetch);
    r[(i as usize + 1) * k - 1].0
}

/// Cycle in which the first fetch beat of descriptor `i` was accepted.
fn fetch_req(ev: &[(u64, Event)], cfg: &NpuConfig, i: u32) -> u64 {
    reqs(ev, Engine::Cmd, MemKind::Fetch)[i as usize * fetch_beats(cfg)].0
}

/// F2 for descriptors `0..n` that never wait for a queue or a FENCE: each
/// dispatches in the cycle after its last fetch beat arrived, one per cycle.
fn assert_dispatch_in_order(ev: &[(u64, Event)], cfg: &NpuConfig, n: u32) {
    let mut prev = None;
    for i in 0..n {
        let ready = fetched(ev, cfg, i) + 1;
        let want = prev.map_or(ready, |p: u64| ready.max(p + 1));
        assert_eq!(dispatch(ev, i), want, "dispatch of descriptor {i}");
        prev = Some(want);
    }
}

/// F1 for a program of NOP, FENCE and compute descriptors only (the command
/// processor alone on the port), started at cycle 0: fetch beats one per
/// cycle, the first beat of descriptor i >= fetch_depth the cycle after
/// descriptor i - fetch_depth was dispatched (left the fetch buffer).
fn assert_fetch_schedule(ev: &[(u64, Event)], cfg: &NpuConfig, n: u32) {
    let k = fetch_beats(cfg) as u32;
    let fd = cfg.cmdproc.fetch_depth;
    let got = cycles(&reqs(ev, Engine::Cmd, MemKind::Fetch));
    assert_eq!(got.len(), (n * k) as usize);
    let mut prev: Option<u64> = None;
    for i in 0..n {
        for j in 0..k {
            let mut want = prev.map_or(0, |p| p + 1);
            if j == 0 && i >= fd {
                want = want.max(dispatch(ev, i - fd) + 1);
            }
            assert_eq!(
                got[(i * k + j) as usize],
                want,
                "fetch beat {j} of descriptor {i} (depth {fd})"
            );
            prev = Some(want);
        }
    }
}

/// D1: one beat of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Beat {
    /// Device address of the first byte.
    va: u64,
    len: u64,
    local: u64,
}

/// D1: the beats of a transfer, in order: each row cut at B-aligned addresses.
fn beats_of(d: &Dma, b: u64) -> Vec<Beat> {
    let mut out = vec![];
    for r in 0..d.rows as u64 {
        let start = d.dram + r * d.dram_stride as u64;
        let end = start + d.row_bytes as u64;
        let mut pos = start;
        while pos < end {
            let e = end.min((pos / b + 1) * b);
            out.push(Beat {
                va: pos,
                len: e - pos,
                local: d.local as u64 + r * d.local_stride as u64 + (pos - start),
            });
            pos = e;
        }
    }
    out
}

/// D1's closed form: `sum over rows of ceil((a mod B + n) / B)`.
fn beat_count(d: &Dma, b: u64) -> u64 {
    (0..d.rows as u64)
        .map(|r| {
            let a = d.dram + r * d.dram_stride as u64;
            (a % b + d.row_bytes as u64).div_ceil(b)
        })
        .sum()
}

/// M2 in executable form: the acceptance cycles of `n` requests offered back to
/// back from cycle `from` (each offered from the cycle after the previous one's
/// acceptance) by a requester alone on the port, the bucket full and nothing in
/// flight at `from`.
fn port_schedule(cfg: &NpuConfig, from: u64, n: usize) -> Vec<u64> {
    let (b, rate) = (beat(cfg), cfg.dram.bytes_per_cycle as u64);
    let cap = b + rate - 1;
    let mut credit = cap;
    let mut in_flight: Vec<u64> = vec![];
    let mut out = vec![];
    let mut t = from;
    while out.len() < n {
        in_flight.retain(|&due| due > t);
        if in_flight.len() < cfg.dram.max_outstanding as usize && credit >= b {
            credit -= b;
            in_flight.push(t + lat(cfg));
            out.push(t);
        }
        t += 1;
        credit = (credit + rate).min(cap);
    }
    out
}

/// Precondition of the isolated-transfer rules: the command processor did not
/// use the port in `[from, to)`; at `from` the credit bucket is full (the last
/// earlier request is at least `ceil(cap / rate)` cycles back, M2) and the
/// requests still in flight cannot make the outstanding limit bind.
fn assert_port_quiet(ev: &[(u64, Event)], cfg: &NpuConfig, from: u64, to: u64) {
    let rate = cfg.dram.bytes_per_cycle as u64;
    let cap = beat(cfg) + rate - 1;
    let rq = all_reqs(ev);
    if let Some(last) = rq.iter().rev().find(|r| r.0 < from) {
        let refill = cap.div_ceil(rate);
        assert!(
            from >= last.0 + refill,
            "bucket not full at {from}: request at {}",
            last.0
        );
    }
    let in_flight = rq
        .iter()
        .filter(|r| r.0 < from && r.0 + lat(cfg) >= from)
        .count();
    let later = rq.iter().filter(|r| r.0 >= from && r.0 < to).count();
    assert!(
        in_flight == 0 || in_flight + later <= cfg.dram.max_outstanding as usize,
        "{in_flight} requests in flight at {from}"
    );
    let cmd = rq
        .iter()
        .filter(|r| r.1 == Engine::Cmd && r.0 >= from && r.0 < to)
        .count();
    assert_eq!(
        cmd, 0,
        "the command processor used the port in [{from}, {to})"
    );
}

/// RING_HEAD at the start of cycle `t` (F2, F4): dispatches of unit descriptors
/// and NOPs, and FENCE completions, before `t`.
fn head_before(ev: &[(u64, Event)], t: u64) -> u32 {
    ev.iter()
        .filter(|(c, e)| {
            *c < t
                && match e {
                    Event::Dispatch { desc, .. } => desc.opcode() != Opcode::Fence,
                    Event::Complete { opcode, .. } => *opcode == Opcode::Fence,
                    _ => false,
                }
        })
        .count() as u32
}

/// The MMIO registers that hold state (everything but the constant ID block).
const STATE_REGS: &[u32] = &[
    regs::CONTROL,
    regs::STATUS,
    regs::IRQ_STATUS,
    regs::IRQ_MASK,
    regs::RING_HEAD,
    regs::RING_TAIL,
    regs::FENCE_SEQ,
    regs::ERR_CODE,
    regs::ERR_DESC,
    regs::ERR_ADDR_LO,
    regs::ERR_ADDR_HI,
];

// ---------------------------------------------------------------------------
// G — General
// ---------------------------------------------------------------------------

/// G1: decisions of cycle t are visible from t + 1 — a fetch response is
/// dispatched the next cycle, a dispatched descriptor issues the next cycle, a
/// token pushed at a completion is taken the next cycle, a DMA completes the
/// cycle after its last response, a FENCE completes the cycle after the last
/// unit completion.
#[test]
fn g1_effects_visible_next_cycle() {
    for (r, c, b, l) in [(8, 8, 32, 12), (4, 8, 8, 20), (16, 4, 64, 30)] {
        let cfg = cfg(r, c, b, l);
        let prog = [
            load(dma(0x100, 0x10000, 2, 64)).with_deps(deps::SIGNAL_NEXT),
            maxd(40).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
            store(dma(0x100, 0x20000, 1, 32)).with_deps(deps::WAIT_PREV),
            fence(1),
        ];
        let (_, ev) = run_ok(&cfg, &prog);
        assert_dispatch_in_order(&ev, &cfg, 4);
        // The load unit is idle and the LOAD waits on nothing: issue = dispatch + 1.
        assert_eq!(issue(&ev, 0), dispatch(&ev, 0) + 1);
        assert_eq!(
            reqs(&ev, Engine::Load, MemKind::Read)[0].0,
            issue(&ev, 0) + 1
        );
        let last_resp = resps(&ev, Engine::Load, MemKind::Read)
            .last()
            .expect("load responses")
            .0;
        assert_eq!(complete(&ev, 0), last_resp + 1);
        // Consumers issue exactly one cycle after their producer completes.
        assert_eq!(issue(&ev, 1), complete(&ev, 0) + 1);
        assert_eq!(issue(&ev, 2), complete(&ev, 1) + 1);
        let push = when(&ev, |e| {
            matches!(
                e,
                Event::TokenPush {
                    queue: TokenQueue::LoadToCompute
                }
            )
        });
        let pop = when(&ev, |e| {
            matches!(
                e,
                Event::TokenPop {
                    queue: TokenQueue::LoadToCompute
                }
            )
        });
        assert_eq!(push, vec![complete(&ev, 0)]);
        assert_eq!(pop, vec![complete(&ev, 0) + 1]);
        // The FENCE sees the store unit idle from the cycle after its completion.
        assert_eq!(complete(&ev, 3), complete(&ev, 2) + 1);
    }
}

/// G2: an MMIO write made between `run_until` calls (device at cycle t) is seen
/// in cycle t: the doorbell's first fetch is accepted in t.
#[test]
fn g2_mmio_write_seen_from_next_cycle() {
    for (b, l, t) in [(32, 10, 50), (8, 3, 7), (64, 40, 1000)] {
        let cfg = cfg(8, 8, b, l);
        let mut s = Sim::new(&cfg);
        s.ring(&[maxd(16), fence(5)], 4);
        s.run_until(t);
        assert!(s.ev().is_empty(), "RUN with an empty ring: nothing happens");
        assert_eq!(s.cycle(), t);
        assert_eq!(s.rd(regs::STATUS) & regs::STATUS_BUSY, 0);
        s.doorbell(2);
        s.wait().expect("program runs");
        let ev = s.ev();
        let fetch = cycles(&reqs(&ev, Engine::Cmd, MemKind::Fetch));
        let k = fetch_beats(&cfg) as u64;
        assert_eq!(fetch, (t..t + 2 * k).collect::<Vec<_>>());
        assert_eq!(ev[0].0, t);
    }
}

/// G2: reads return the state at the end of the last simulated cycle. Stepping
/// one cycle at a time, RING_HEAD, FENCE_SEQ, IRQ_STATUS, PERF_CYCLES and
/// PERF_DESC_DONE read after cycle c reflect exactly the events of cycles <= c.
#[test]
fn g2_reads_return_state_at_end_of_last_cycle() {
    let cfg = cfg(4, 4, 32, 9);
    let prog = [
        nop(),
        load(dma(0, 0x10000, 1, 64)).with_deps(deps::SIGNAL_NEXT),
        maxd(12).with_deps(deps::WAIT_PREV),
        fence_quiet(3),
        nop(),
        store(dma(0, 0x20000, 1, 32)),
        fence(4),
    ];
    let mut s = Sim::new(&cfg);
    run::start(&mut s.dev, &mut s.mem, RING, &prog).expect("start");
    let mut seen = vec![];
    while s.rd(regs::FENCE_SEQ) != 4 {
        let c = s.cycle();
        s.run_until(c + 1);
        seen.push((
            c,
            s.rd(regs::RING_HEAD),
            s.rd(regs::FENCE_SEQ),
            s.rd(regs::IRQ_STATUS),
            s.rd64(regs::PERF_CYCLES),
            s.rd64(regs::PERF_DESC_DONE),
        ));
        assert!(c < 10_000, "program did not finish");
    }
    let ev = s.ev();
    for (c, head, seq, irq, cyc, done) in seen {
        let upto: Vec<&Event> = ev.iter().filter(|(t, _)| *t <= c).map(|(_, e)| e).collect();
        // F2/F4: RING_HEAD advances at the dispatch of a unit descriptor or NOP,
        // and at the completion of a FENCE.
        let want_head = upto
            .iter()
            .filter(|e| match e {
                Event::Dispatch { desc, .. } => desc.opcode() != Opcode::Fence,
                Event::Complete { opcode, .. } => *opcode == Opcode::Fence,
                _ => false,
            })
            .count() as u32;
        let want_seq = upto
            .iter()
            .filter_map(|e| match e {
                Event::Fence { seq, .. } => Some(*seq),
                _ => None,
            })
            .next_back()
            .unwrap_or(0);
        let want_irq = upto
            .iter()
            .filter_map(|e| match e {
                Event::Irq { status } => Some(*status),
                _ => None,
            })
            .next_back()
            .unwrap_or(0);
        let want_done = upto
            .iter()
            .filter(|e| matches!(e, Event::Complete { .. }))
            .count() as u64;
        assert_eq!(head, want_head, "RING_HEAD after cycle {c}");
        assert_eq!(seq, want_seq, "FENCE_SEQ after cycle {c}");
        assert_eq!(irq, want_irq, "IRQ_STATUS after cycle {c}");
        assert_eq!(cyc, c + 1, "PERF_CYCLES after cycle {c}");
        assert_eq!(done, want_done, "PERF_DESC_DONE after cycle {c}");
    }
}

/// G3: a fault in cycle f freezes f: no grant, no delivery (the response due in
/// f is dropped, and every later one), only the Error and Irq events; ERR_*
/// latched; nothing happens afterwards.
#[test]
fn g3_fault_freezes_the_cycle() {
    let cfg = cfg(16, 16, 32, 8);
    let n_beats = 32u16;
    let max_lat = lat(&cfg);
    let prog = [
        load(dma(0, 0x10000, 1, 32 * n_beats)),
        maxd(max_len_for(&cfg, max_lat)).with_deps(deps::SIGNAL_NEXT),
        store(dma(0x2000, MEM_BYTES, 1, 32)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let mut s = Sim::new(&cfg);
    let src = s.fill(0x10000, 32 * n_beats as usize, 3);
    let e = s.program(&prog).expect_err("the STORE faults");
    let ev = s.ev();
    // D2: the STORE offers its first request (and faults) the cycle after issue.
    let f = issue(&ev, 2) + 1;
    assert_eq!(error(&ev), (f, ErrorCode::AddrRange, 2, MEM_BYTES));
    assert_eq!(
        e,
        RunError::Device {
            code: ErrorCode::AddrRange,
            index: 2,
            addr: MEM_BYTES
        }
    );
    // Preconditions: a load response is due in f and the load was still requesting.
    let load_reqs = cycles(&reqs(&ev, Engine::Load, MemKind::Read));
    assert!(
        load_reqs.contains(&(f - lat(&cfg))),
        "a response is due in the fault cycle"
    );
    assert!(load_reqs.len() < n_beats as usize && *load_reqs.last().expect("reqs") == f - 1);
    // In f only the Error and the Irq; nothing after f.
    let at_f = events_at(&ev, f);
    assert_eq!(at_f.len(), 2, "{at_f:?}");
    assert!(matches!(at_f[0], Event::Error { .. }));
    assert!(matches!(at_f[1], Event::Irq { status } if status & regs::IRQ_ERROR != 0));
    s.run_until(f + 10 * lat(&cfg));
    assert_eq!(
        s.ev().last().expect("events").0,
        f,
        "nothing happens after the fault"
    );
    // The beat whose response was due in f was dropped; the one before was written.
    let k = load_reqs
        .iter()
        .position(|&c| c == f - lat(&cfg))
        .expect("beat") as u32;
    assert_eq!(s.spad(32 * k, 32), vec![0; 32]);
    assert_eq!(
        s.spad(32 * (k - 1), 32),
        src[32 * (k as usize - 1)..32 * k as usize].to_vec()
    );
    // ERR registers latched, HALTED, not busy.
    assert_eq!(s.err_regs(), (ErrorCode::AddrRange, 2, MEM_BYTES));
    assert_eq!(s.rd(regs::STATUS), regs::STATUS_HALTED);
    assert_ne!(s.rd(regs::IRQ_STATUS) & regs::IRQ_ERROR, 0);
}

/// G3: of two faults detected in the same cycle, the store unit's wins over the
/// load unit's.
#[test]
fn g3_fault_priority_store_before_load() {
    let cfg = cfg(8, 8, 32, 10);
    let prog = [
        maxd(16).with_deps(deps::SIGNAL_PREV | deps::SIGNAL_NEXT),
        load(dma(0, MEM_BYTES + 0x1000, 1, 32)).with_deps(deps::WAIT_NEXT),
        store(dma(0, MEM_BYTES + 0x2000, 1, 32)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let (_, ev, _) = run_err(&cfg, &prog);
    let c = complete(&ev, 0);
    assert_eq!(issue(&ev, 1), c + 1);
    assert_eq!(issue(&ev, 2), c + 1);
    assert_eq!(
        error(&ev),
        (c + 2, ErrorCode::AddrRange, 2, MEM_BYTES + 0x2000)
    );
}

/// G3: a descriptor that fails validation at the dispatch point in the same
/// cycle as a store-unit fault wins over it (command processor first).
#[test]
fn g3_fault_priority_decode_before_store() {
    let cfg = cfg(8, 8, 32, 10);
    let l = lat(&cfg);
    let max_lat = 6;
    let bad = matmul(1, 9, 8); // k > R: BAD_FIELD
    let prog = [
        maxd(max_len_for(&cfg, max_lat)).with_deps(deps::SIGNAL_NEXT),
        store(dma(0, MEM_BYTES, 1, 32)).with_deps(deps::WAIT_PREV),
        bad,
    ];
    // F1-F2, U1-U2, C3, D2: MAX dispatches at L+1, issues L+2, completes
    // L+2+lat; the STORE issues the cycle after and faults the cycle after that.
    let store_fault = l + 4 + max_lat;
    // The bad descriptor, fetched from the doorbell at w, would dispatch at w+L+1.
    let w = store_fault - l - 1;
    let mut s = Sim::new(&cfg);
    s.ring(&prog, 4);
    s.doorbell(2);
    s.run_until(w);
    s.doorbell(3);
    let e = s.wait().expect_err("faults");
    let ev = s.ev();
    assert_eq!(
        issue(&ev, 1) + 1,
        store_fault,
        "the store would fault in this cycle"
    );
    assert_eq!(
        fetched(&ev, &cfg, 2) + 1,
        store_fault,
        "the bad descriptor would dispatch now"
    );
    assert_eq!(
        error(&ev),
        (
            store_fault,
            ErrorCode::BadField,
            2,
            RING + 2 * DESC_BYTES as u64
        )
    );
    assert!(matches!(
        e,
        RunError::Device {
            code: ErrorCode::BadField,
            index: 2,
            ..
        }
    ));
}

/// G3: a fault made by an MMIO write (BAD_RING) is stamped with the next cycle
/// to be simulated.
#[test]
fn g3_bad_ring_mmio_fault_stamped_next_cycle() {
    let cfg = cfg(8, 8, 32, 10);
    // RING_TAIL beyond the ring.
    let mut s = Sim::new(&cfg);
    s.ring(&[nop()], 4);
    s.run_until(37);
    s.doorbell(4);
    let ev = s.ev();
    assert_eq!(error(&ev), (37, ErrorCode::BadRing, 4, RING));
    assert_eq!(events_at(&ev, 37).len(), 2);
    assert_eq!(s.err_regs(), (ErrorCode::BadRing, 4, RING));
    // RUN set with a ring size that is not a power of two.
    let mut s = Sim::new(&cfg);
    s.run_until(123);
    s.wr(regs::RING_SIZE, 3);
    s.wr(regs::CONTROL, regs::CONTROL_RUN);
    assert_eq!(error(&s.ev()).0, 123);
    assert_eq!(s.err_regs().0, ErrorCode::BadRing);
}

/// G3: a descriptor fetch beyond device memory faults (ADDR_RANGE, the
/// descriptor's physical address) in the cycle the fetch would be requested;
/// in the same cycle as a decode fault at the dispatch point, it wins.
#[test]
fn g3_fetch_address_fault_and_priority_over_decode() {
    let base = MEM_BYTES - 2 * DESC_BYTES as u64; // entries 2 and 3 lie beyond memory
    let cfg = cfg(8, 8, 32, 10);
    let mut s = Sim::new(&cfg);
    s.ring_at(base, &[nop(), nop()], 4);
    s.doorbell(3);
    s.wait().expect_err("fetch fault");
    let ev = s.ev();
    // F1: descriptors 0 and 1 are fetched in cycles 0 and 1, descriptor 2 would be in 2.
    assert_eq!(cycles(&reqs(&ev, Engine::Cmd, MemKind::Fetch)), vec![0, 1]);
    assert_eq!(error(&ev), (2, ErrorCode::AddrRange, 2, MEM_BYTES));
    assert_eq!(events_at(&ev, 2).len(), 2);
    // fetch_depth 2: descriptor 2 would be fetched the cycle after descriptor 0
    // dispatched (L + 2), the cycle descriptor 1 (invalid) would dispatch.
    let mut cfg = cfg;
    cfg.cmdproc.fetch_depth = 2;
    let f = lat(&cfg) + 2;
    let mut s = Sim::new(&cfg);
    s.ring_at(base, &[nop(), matmul(1, 9, 1)], 4);
    s.doorbell(3);
    s.wait().expect_err("fetch fault");
    let ev = s.ev();
    assert_eq!(dispatch(&ev, 0), f - 1);
    assert_eq!(
        fetched(&ev, &cfg, 1) + 1,
        f,
        "descriptor 1 would dispatch (and fault) in f"
    );
    assert_eq!(error(&ev), (f, ErrorCode::AddrRange, 2, MEM_BYTES));
}

/// G3: deadlock before watchdog, detected in the same cycle.
#[test]
fn g3_fault_priority_deadlock_before_watchdog() {
    let cfg = cfg(8, 8, 32, 10);
    let prog = [maxd(16).with_deps(deps::WAIT_PREV), fence(1)];
    // E1: the deadlock is detected the cycle after the FENCE dispatched, L + 3;
    // E2: p = 0 (RUN and RING_TAIL written before cycle 0).
    let d = lat(&cfg) + 3;
    for (w, code) in [(d - 1, ErrorCode::Watchdog), (d, ErrorCode::Deadlock)] {
        let mut s = Sim::new(&cfg);
        s.wr(regs::WATCHDOG, w as u32);
        s.program(&prog).expect_err("faults");
        let ev = s.ev();
        let (f, got, _, _) = error(&ev);
        assert_eq!((f, got), (w, code), "WATCHDOG = {w}");
        if code == ErrorCode::Deadlock {
            assert_eq!(dispatch(&ev, 1) + 1, d);
        }
    }
}

/// G3: watchdog before token overflow, detected in the same cycle.
#[test]
fn g3_fault_priority_watchdog_before_token_overflow() {
    let mut cfg = cfg(8, 16, 32, 4);
    cfg.cmdproc.fetch_depth = 64;
    let w = 40;
    let mut prog = vec![maxd(16).with_deps(deps::SIGNAL_NEXT); 255];
    prog.push(maxd(max_len_for(&cfg, w)).with_deps(deps::SIGNAL_NEXT)); // the 256th push, w after the 255th
    prog.push(fence(1));
    let mut s = Sim::new(&cfg);
    s.wr(regs::WATCHDOG, w as u32);
    s.program(&prog).expect_err("faults");
    let ev = s.ev();
    let p = complete(&ev, 254);
    assert_eq!(issue(&ev, 255), p);
    let f = p + w;
    assert_eq!(error(&ev), (f, ErrorCode::Watchdog, head_before(&ev, f), 0));
    // Without the watchdog the same cycle faults TOKEN_OVERFLOW.
    let (_, ev, _) = run_err(&cfg, &prog);
    assert_eq!(error(&ev), (f, ErrorCode::TokenOverflow, 255, 0));
}

/// A model halted by a fault in cycle f (a STORE beyond memory, or the
/// watchdog in the middle of a LOAD), stopped right after f. Returns (sim, f).
fn halted(skip: bool, watchdog: bool) -> (Sim, u64) {
    let mut cfg = cfg(16, 16, 32, 8);
    cfg.dram.bytes_per_cycle = 4;
    let mut s = Sim::new(&cfg);
    s.dev.set_skip(skip);
    let prog = if watchdog {
        s.wr(regs::WATCHDOG, 100); // fires in the middle of the LOAD
        vec![load(dma(0, 0x10000, 1, 32 * 40)), fence(1)]
    } else {
        vec![
            load(dma(0, 0x10000, 1, 32 * 32)),
            maxd(96).with_deps(deps::SIGNAL_NEXT),
            store(dma(0x2000, MEM_BYTES, 1, 32)).with_deps(deps::WAIT_PREV),
            fence(1),
        ]
    };
    s.program(&prog).expect_err("faults");
    let f = error(&s.ev()).0;
    assert_eq!(s.cycle(), f + 1);
    (s, f)
}

/// G3: a halted device does nothing more: time passes without events or
/// register changes, the same with and without skipping (S1).
#[test]
fn g3_halted_device_does_nothing() {
    for watchdog in [false, true] {
        let mut snaps = vec![];
        for skip in [true, false] {
            let (mut s, f) = halted(skip, watchdog);
            let regs_at_f: Vec<u32> = STATE_REGS.iter().map(|&r| s.rd(r)).collect();
            s.run_until(f + 500);
            assert_eq!(
                s.ev().last().expect("events").0,
                f,
                "no event after the fault"
            );
            let regs_after: Vec<u32> = STATE_REGS.iter().map(|&r| s.rd(r)).collect();
            assert_eq!(regs_after, regs_at_f);
            snaps.push(snapshot(&mut s));
        }
        assert_eq!(snaps[0], snaps[1], "skip vs step, watchdog {watchdog}");
    }
}

/// G3: "from then on ... no counter but PERF_CYCLES counts until
/// CONTROL.RESET" — every other PERF_* counter keeps its value after the
/// fault, and PERF_CYCLES goes on counting cycles since reset.
#[test]
fn g3_halted_counters_frozen() {
    for watchdog in [false, true] {
        for skip in [true, false] {
            let (mut s, f) = halted(skip, watchdog);
            let at_f = run::read_counters(&mut s.dev);
            let c0 = s.cycle();
            s.run_until(f + 500);
            let after = run::read_counters(&mut s.dev);
            assert_eq!(
                Counters {
                    cycles: at_f.cycles,
                    ..after
                },
                at_f,
                "skip {skip}, watchdog {watchdog}"
            );
            assert_eq!(after.cycles - at_f.cycles, s.cycle() - c0);
        }
    }
}

// ---------------------------------------------------------------------------
// M — Memory port
// ---------------------------------------------------------------------------

/// M1: when the store and load units offer in the same cycle, the store beats
/// go first; the load is denied (a memory stall) until the store is done.
#[test]
fn m1_store_beats_win_over_load_beats() {
    for (b, n) in [(32u32, 4u64), (8, 7), (64, 3)] {
        let cfg = cfg(8, 8, b, 12);
        let bytes = (n * b as u64) as u16;
        let prog = [
            // Long enough for everything to be fetched and dispatched meanwhile.
            maxd(max_len_for(&cfg, 30)).with_deps(deps::SIGNAL_PREV | deps::SIGNAL_NEXT),
            load(dma(0, 0x10000, 1, bytes)).with_deps(deps::WAIT_NEXT),
            store(dma(0x4000, 0x20000, 1, bytes)).with_deps(deps::WAIT_PREV),
            fence(1),
        ];
        let (s, ev) = run_ok(&cfg, &prog);
        let c = complete(&ev, 0);
        assert_port_quiet(&ev, &cfg, c + 2, u64::MAX);
        assert_eq!((issue(&ev, 1), issue(&ev, 2)), (c + 1, c + 1));
        let st = cycles(&reqs(&ev, Engine::Store, MemKind::Write));
        let ld = cycles(&reqs(&ev, Engine::Load, MemKind::Read));
        assert_eq!(st, (c + 2..c + 2 + n).collect::<Vec<_>>());
        assert_eq!(ld, (c + 2 + n..c + 2 + 2 * n).collect::<Vec<_>>());
        let k = s.dev.counters();
        assert_eq!((k.store_mem_stall, k.load_mem_stall), (0, n));
    }
}

/// M1: the command processor's fetch wins over both DMA units.
#[test]
fn m1_fetch_wins_over_store_and_load() {
    let cfg = cfg(8, 8, 32, 12);
    let (l, n) = (lat(&cfg), 5u64);
    let bytes = (n * beat(&cfg)) as u16;
    let prog = [
        maxd(16).with_deps(deps::SIGNAL_PREV | deps::SIGNAL_NEXT),
        load(dma(0, 0x10000, 1, bytes)).with_deps(deps::WAIT_NEXT),
        store(dma(0x4000, 0x20000, 1, bytes)).with_deps(deps::WAIT_PREV),
        nop(),
        fence(1),
    ];
    // F1/M3/F2/U1/C3: the MAX completes at c = L + 2 + latency.
    let c = l + 2 + elementwise_latency(&cfg, 16);
    let mut s = Sim::new(&cfg);
    s.ring(&prog, 8);
    s.doorbell(3);
    s.run_until(c + 3);
    s.doorbell(5); // two fetches offered at c+3 and c+4, while both DMA units want the port
    s.wait().expect("program runs");
    let ev = s.ev();
    assert_eq!(complete(&ev, 0), c);
    assert_eq!(fetch_req(&ev, &cfg, 3), c + 3);
    assert_eq!(fetch_req(&ev, &cfg, 4), c + 4);
    let st = cycles(&reqs(&ev, Engine::Store, MemKind::Write));
    let ld = cycles(&reqs(&ev, Engine::Load, MemKind::Read));
    let mut want_st = vec![c + 2];
    want_st.extend(c + 5..c + 5 + n - 1);
    assert_eq!(st, want_st);
    assert_eq!(ld, (c + 4 + n..c + 4 + 2 * n).collect::<Vec<_>>());
    let k = s.dev.counters();
    assert_eq!((k.store_mem_stall, k.load_mem_stall), (2, n + 2));
}

/// The FENCE-writeback programs of the M1/F1 tests: a MAX, a FENCE with
/// writeback, and two descriptors whose doorbell is rung in cycle t + 1, the
/// cycle the FENCE offers its first request. Returns (t, events).
fn fence_writeback_then_doorbell(cfg: &NpuConfig, xlat: bool) -> (u64, Log) {
    let max_lat = 20;
    // F1-F2, U1, C3: the MAX completes at L + 2 + latency; F4: the FENCE is
    // drained the cycle after (t) and offers its first request in t + 1.
    let t = lat(cfg) + 2 + max_lat + 1;
    let mut s = Sim::new(cfg);
    if xlat {
        s.translation(&xlat_table(true));
    }
    s.ring(
        &[
            maxd(max_len_for(cfg, max_lat)),
            fence_wb(1, 0x3008),
            nop(),
            fence(2),
        ],
        8,
    );
    s.doorbell(2);
    s.run_until(t + 1);
    s.doorbell(4);
    s.wait().expect("program runs");
    let ev = s.ev();
    assert_eq!(complete(&ev, 0) + 1, t);
    (t, ev)
}

/// M1: within the command processor the FENCE writeback (and its translation
/// read) goes before a descriptor fetch offered in the same cycle; the fetch
/// follows the next cycle.
#[test]
fn m1_fence_writeback_before_fetch() {
    let cfg = cfg(8, 8, 32, 12);
    let l = lat(&cfg);
    let (t, ev) = fence_writeback_then_doorbell(&cfg, false);
    assert_eq!(
        cycles(&reqs(&ev, Engine::Cmd, MemKind::FenceWrite)),
        vec![t + 1]
    );
    assert_eq!(fetch_req(&ev, &cfg, 2), t + 2);
    assert_eq!(fetch_req(&ev, &cfg, 3), t + 3);
    assert_eq!(complete(&ev, 1), t + 1 + l);
    let (t, ev) = fence_writeback_then_doorbell(&cfg, true);
    assert_eq!(cycles(&reqs(&ev, Engine::Cmd, MemKind::Pte)), vec![t + 1]);
    assert_eq!(
        cycles(&reqs(&ev, Engine::Cmd, MemKind::FenceWrite)),
        vec![t + 2 + l]
    );
    assert_eq!(complete(&ev, 1), t + 2 + 2 * l);
}

/// M2: with `bytes_per_cycle = B / 2` an isolated LOAD is accepted every other
/// cycle; other rates follow the credit bucket (full at `B + rate - 1`, `+rate`
/// per cycle, `-B` per request).
#[test]
fn m2_bandwidth_credit() {
    for (b, rate, n) in [
        (32, 16, 8u64),
        (8, 4, 9),
        (64, 32, 5),
        (32, 12, 10),
        (32, 8, 6),
        (16, 24, 9),
        (8, 2, 3),
    ] {
        let mut cfg = cfg(8, 8, b, 30);
        cfg.dram.bytes_per_cycle = rate;
        let bytes = (n * b as u64) as u16;
        let (s, ev) = run_ok(&cfg, &[load(dma(0, 0x10000, 1, bytes)), fence(1)]);
        let t = issue(&ev, 0);
        assert_port_quiet(&ev, &cfg, t + 1, u64::MAX);
        let got = cycles(&reqs(&ev, Engine::Load, MemKind::Read));
        let want = port_schedule(&cfg, t + 1, n as usize);
        assert_eq!(got, want, "B={b} rate={rate}");
        if rate * 2 == b {
            let every_other: Vec<u64> = (0..n).map(|i| t + 1 + 2 * i).collect();
            assert_eq!(got, every_other);
        }
        // Denied offers are memory stalls.
        assert_eq!(
            s.dev.counters().load_mem_stall,
            got.last().expect("reqs") - t - n
        );
    }
}

/// M2: `max_outstanding` limits the requests in flight; a response due in t
/// frees its slot for a request in t.
#[test]
fn m2_max_outstanding_limits_in_flight() {
    for (m, l, n) in [(1u32, 6u32, 4u64), (2, 10, 7), (3, 5, 10), (4, 4, 9)] {
        let mut cfg = cfg(8, 8, 32, l);
        cfg.dram.max_outstanding = m;
        let bytes = (n * beat(&cfg)) as u16;
        // The LOAD waits for a long MAX so that no fetch is in flight when it starts.
        let prog = [
            maxd(max_len_for(&cfg, 60)).with_deps(deps::SIGNAL_PREV),
            load(dma(0, 0x10000, 1, bytes)).with_deps(deps::WAIT_NEXT),
            fence(1),
        ];
        let (_, ev) = run_ok(&cfg, &prog);
        let t = issue(&ev, 1);
        assert_port_quiet(&ev, &cfg, t + 1, u64::MAX);
        let got = cycles(&reqs(&ev, Engine::Load, MemKind::Read));
        let closed: Vec<u64> = (0..n)
            .map(|i| t + 1 + (i / m as u64) * l as u64 + i % m as u64)
            .collect();
        assert_eq!(got, closed, "max_outstanding={m} L={l}");
        assert_eq!(got, port_schedule(&cfg, t + 1, n as usize));
        assert_eq!(complete(&ev, 1), got.last().expect("reqs") + l as u64 + 1);
    }
}

/// M3: every response arrives exactly L cycles after its request, in
/// acceptance order, for every requester (fetch, translation reads, loads,
/// stores, FENCE writeback).
#[test]
fn m3_response_latency_and_order() {
    for (b, l, m) in [(32, 1, 64), (8, 5, 3), (64, 33, 2), (16, 17, 1)] {
        let mut cfg = cfg(8, 8, b, l);
        cfg.dram.max_outstanding = m;
        cfg.dram.bytes_per_cycle = (b / 2).max(1);
        let prog = [
            load(dma(0, 0x1030, 3, 100)).with_deps(deps::SIGNAL_NEXT),
            maxd(16).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT | deps::SIGNAL_PREV),
            load(dma(0x800, 0x2000, 2, 40)).with_deps(deps::WAIT_NEXT),
            store(dma(0, 0x5010, 2, 70)).with_deps(deps::WAIT_PREV),
            fence_wb(9, 0x6004),
        ];
        let mut s = Sim::new(&cfg);
        s.translation(
            &(0..XLAT_PAGES as u64)
                .map(|v| pte(0x80000 + v * PAGE_BYTES, true))
                .collect::<Vec<_>>(),
        );
        s.program(&prog).expect("program runs");
        let ev = s.ev();
        let rq = all_reqs(&ev);
        let rs = all_resps(&ev);
        assert_eq!(rq.len(), rs.len());
        assert!(
            rq.iter().any(|r| r.2 == MemKind::Pte) && rq.iter().any(|r| r.2 == MemKind::FenceWrite)
        );
        for (q, r) in rq.iter().zip(&rs) {
            assert_eq!(r.0, q.0 + l as u64, "response to {q:?}");
            assert_eq!((r.1, r.2, r.3), (q.1, q.2, q.3), "order");
        }
    }
}

/// M4: a read samples memory and a write updates it in the acceptance cycle, so
/// port order is memory order.
#[test]
fn m4_port_order_is_memory_order() {
    let cfg = cfg(8, 16, 32, 20);
    let (p, a) = (0x10000u64, 0x20000u64);
    // 1. STORE accepted before the LOAD (M1), LOAD accepted before the STORE's
    //    response: the LOAD sees the new data.
    let prog = [
        load(dma(0, p, 1, 32)).with_deps(deps::SIGNAL_NEXT),
        maxd_at(0x400, 0x400, 16)
            .with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV | deps::SIGNAL_NEXT),
        store(dma(0, a, 1, 32)).with_deps(deps::WAIT_PREV),
        load(dma(0x800, a, 1, 32)).with_deps(deps::WAIT_NEXT),
        fence(1),
    ];
    let mut s = Sim::new(&cfg);
    let new = s.fill(p, 32, 1);
    s.mem.write(a, &[0x11; 32]);
    s.program(&prog).expect("program runs");
    let ev = s.ev();
    let st = reqs(&ev, Engine::Store, MemKind::Write)[0].0;
    let ld = reqs(&ev, Engine::Load, MemKind::Read)[1].0;
    let st_resp = resps(&ev, Engine::Store, MemKind::Write)[0].0;
    assert!(
        st < ld && ld < st_resp,
        "store {st} < load {ld} < store response {st_resp}"
    );
    assert_eq!(s.spad(0x800, 32), new);
    // 2. LOAD accepted before the STORE, its response after it: old data.
    let prog = [
        load(dma(0, p, 1, 32)).with_deps(deps::SIGNAL_NEXT),
        maxd_at(0x400, 0x400, 16).with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV),
        maxd_at(0x400, 0x400, 48).with_deps(deps::SIGNAL_NEXT),
        load(dma(0x800, a, 1, 32)).with_deps(deps::WAIT_NEXT),
        store(dma(0, a, 1, 32)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let mut s = Sim::new(&cfg);
    let new = s.fill(p, 32, 1);
    s.mem.write(a, &[0x11; 32]);
    s.program(&prog).expect("program runs");
    let ev = s.ev();
    let ld = reqs(&ev, Engine::Load, MemKind::Read)[1].0;
    let ld_resp = resps(&ev, Engine::Load, MemKind::Read)[1].0;
    let st = reqs(&ev, Engine::Store, MemKind::Write)[0].0;
    assert!(
        ld < st && st < ld_resp,
        "load {ld} < store {st} < load response {ld_resp}"
    );
    assert_eq!(s.spad(0x800, 32), vec![0x11; 32]);
    assert_eq!(s.mem_at(a, 32), new);
}

// ---------------------------------------------------------------------------
// F — Command processor
// ---------------------------------------------------------------------------

/// F1: the command processor keeps at most `fetch_depth` descriptors fetched
/// ahead of dispatch: descriptor i >= depth is requested the cycle after
/// descriptor i - depth left the buffer (its dispatch).
#[test]
fn f1_fetch_depth_limits_prefetch() {
    for fd in [1u32, 2, 3, 4, 8] {
        let mut cfg = cfg(8, 8, 32, 11);
        cfg.cmdproc.fetch_depth = fd;
        let mut prog = vec![nop(); 9];
        prog.push(fence(1));
        let (_, ev) = run_ok(&cfg, &prog);
        assert_fetch_schedule(&ev, &cfg, prog.len() as u32);
        assert_dispatch_in_order(&ev, &cfg, prog.len() as u32);
    }
}

/// F1: a descriptor takes `32 / min(B, 32)` beats: 4 at B = 8, 2 at B = 16, one
/// at B >= 32, requested one per cycle; it dispatches after its last beat.
#[test]
fn f1_beats_per_descriptor() {
    for b in [8u32, 16, 32, 64] {
        let cfg = cfg(8, 8, b, 7);
        let prog = [nop(), nop(), nop(), fence(1)];
        let (_, ev) = run_ok(&cfg, &prog);
        let k = fetch_beats(&cfg);
        assert_eq!(k, 32 / (b as usize).min(32));
        let fetch = reqs(&ev, Engine::Cmd, MemKind::Fetch);
        assert_eq!(fetch.len(), 4 * k);
        let chunk = (b as u64).min(32);
        for (j, &(c, addr)) in fetch.iter().enumerate() {
            assert_eq!(c, j as u64, "fetch beat {j}");
            assert_eq!(addr, (RING + j as u64 * chunk) & !(b as u64 - 1));
        }
        assert_dispatch_in_order(&ev, &cfg, 4);
        assert_eq!(dispatch(&ev, 0), (k as u64 - 1) + lat(&cfg) + 1);
    }
}

/// F1: nothing in F1 stops fetching while a FENCE drains: with room in the
/// fetch buffer, the descriptors after the FENCE are fetched during the drain.
#[test]
fn f1_fetch_continues_while_fence_drains() {
    // B = 32: descriptor 5 is fetched the cycle after the FENCE (index 1)
    // dispatched. B = 8, L = 1: the FENCE dispatches while descriptor 2 is half
    // fetched; its remaining beats follow without waiting for the FENCE.
    for (b, l) in [(32, 10), (8, 1)] {
        let cfg = cfg(8, 8, b, l);
        let mut prog = vec![maxd(max_len_for(&cfg, 80)), fence_quiet(1)];
        prog.extend([nop(); 5]);
        prog.push(fence(2));
        let (_, ev) = run_ok(&cfg, &prog);
        assert_fetch_schedule(&ev, &cfg, prog.len() as u32);
        assert!(
            fetch_req(&ev, &cfg, cfg.cmdproc.fetch_depth + 1) < complete(&ev, 1),
            "B={b}"
        );
        // F4: dispatch resumes the cycle after the FENCE completes.
        assert_eq!(dispatch(&ev, 2), complete(&ev, 1) + 1, "B={b}");
    }
}

/// F1: while the FENCE waits for its translation read, the command processor
/// offers nothing else of the FENCE, so fetching goes on (M1 holds the fetch
/// back only in the cycles the FENCE itself offers a request).
#[test]
fn f1_fetch_continues_while_fence_translates() {
    let cfg = cfg(8, 8, 32, 12);
    let (t, ev) = fence_writeback_then_doorbell(&cfg, true);
    assert_eq!(cycles(&reqs(&ev, Engine::Cmd, MemKind::Pte)), vec![t + 1]);
    assert_eq!(fetch_req(&ev, &cfg, 2), t + 2);
    assert_eq!(fetch_req(&ev, &cfg, 3), t + 3);
}

/// F2: a descriptor dispatches in the cycle after its last fetch beat arrives,
/// in ring order, one per cycle; its unit can issue it the next cycle.
#[test]
fn f2_dispatch_after_last_fetch_beat() {
    for b in [8u32, 16, 32, 64] {
        let cfg = cfg(8, 8, b, 9);
        let prog = [
            maxd(16),
            load(dma(0x100, 0x10000, 1, 64)),
            store(dma(0x200, 0x20000, 1, 64)),
            nop(),
            fence(1),
        ];
        let (_, ev) = run_ok(&cfg, &prog);
        assert_dispatch_in_order(&ev, &cfg, 5);
        for i in 0..3 {
            assert_eq!(issue(&ev, i), dispatch(&ev, i) + 1, "B={b}");
        }
    }
}

/// F2: descriptors held back by a FENCE dispatch one per cycle from the cycle
/// after the FENCE completes.
#[test]
fn f2_one_dispatch_per_cycle() {
    let mut cfg = cfg(8, 8, 32, 9);
    cfg.cmdproc.fetch_depth = 8; // everything is fetched before the FENCE completes
    let prog = [
        maxd(max_len_for(&cfg, 40)),
        fence_quiet(1),
        nop(),
        nop(),
        maxd(16),
        nop(),
        fence(2),
    ];
    let (_, ev) = run_ok(&cfg, &prog);
    let f = complete(&ev, 1);
    assert!(
        fetched(&ev, &cfg, 6) < f,
        "all fetched while the FENCE drained"
    );
    for i in 2..7 {
        assert_eq!(dispatch(&ev, i), f + i as u64 - 1, "dispatch of {i}");
    }
}

/// F2: a descriptor whose queue is full at the start of the cycle does not
/// dispatch; it dispatches the cycle after the queue head issued.
#[test]
fn f2_queue_full_blocks_dispatch() {
    for q in [1u32, 2, 3] {
        let mut cfg = cfg(8, 8, 32, 9);
        cfg.cmdproc.queue_depth = q;
        cfg.cmdproc.fetch_depth = 8;
        let mut prog: Vec<Descriptor> = (0..6).map(|i| maxd(16 * (3 + i))).collect();
        prog.push(fence(1));
        let (_, ev) = run_ok(&cfg, &prog);
        for i in 0..6u32 {
            let mut want = fetched(&ev, &cfg, i) + 1;
            if i > 0 {
                want = want.max(dispatch(&ev, i - 1) + 1);
            }
            if i >= q {
                // The queue holds i-q+1 .. i-1 plus the head i-q until it issues.
                want = want.max(issue(&ev, i - q) + 1);
            }
            assert_eq!(dispatch(&ev, i), want, "dispatch of {i}, queue depth {q}");
        }
        // The compute unit runs back to back.
        for i in 1..6 {
            assert_eq!(issue(&ev, i), complete(&ev, i - 1));
        }
    }
}

/// F2: a descriptor that fails decoding or validation faults in the cycle it
/// would have dispatched — also when a FENCE held it back.
#[test]
fn f2_decode_fault_at_dispatch_cycle() {
    let cfg = cfg(8, 8, 32, 9);
    let bad = matmul(1, 1, 9); // n > C
                               // Right after the NOP.
    let (_, ev, _) = run_err(&cfg, &[nop(), bad, fence(1)]);
    let want = fetched(&ev, &cfg, 1) + 1;
    assert_eq!(want, dispatch(&ev, 0) + 1);
    assert_eq!(
        error(&ev),
        (want, ErrorCode::BadField, 1, RING + DESC_BYTES as u64)
    );
    // Behind a FENCE: the cycle after the FENCE completes.
    let (_, ev, _) = run_err(&cfg, &[maxd(max_len_for(&cfg, 30)), fence_quiet(1), bad]);
    assert_eq!(
        error(&ev),
        (
            complete(&ev, 1) + 1,
            ErrorCode::BadField,
            2,
            RING + 2 * DESC_BYTES as u64
        )
    );
    // An unknown opcode.
    let mut s = Sim::new(&cfg);
    s.ring(&[nop(), nop(), fence(1)], 4);
    let mut raw = nop().encode();
    raw[0] = 0xEE;
    s.mem.write(RING + DESC_BYTES as u64, &raw);
    s.doorbell(3);
    s.wait().expect_err("bad opcode");
    let ev = s.ev();
    assert_eq!(
        error(&ev),
        (
            dispatch(&ev, 0) + 1,
            ErrorCode::BadOpcode,
            1,
            RING + DESC_BYTES as u64
        )
    );
}

/// F3: a NOP completes in its dispatch cycle (and never issues on a unit).
#[test]
fn f3_nop_retires_in_dispatch_cycle() {
    let cfg = cfg(8, 8, 16, 6);
    let prog = [
        nop(),
        nop(),
        maxd(16),
        nop(),
        fence_quiet(1),
        nop(),
        fence(2),
    ];
    let (s, ev) = run_ok(&cfg, &prog);
    for i in [0u32, 1, 3, 5] {
        assert_eq!(complete(&ev, i), dispatch(&ev, i), "NOP {i}");
        assert!(when(
            &ev,
            |e| matches!(e, Event::Issue { index, .. } if *index == i)
        )
        .is_empty());
        assert!(ev.iter().any(|(c, e)| *c == dispatch(&ev, i)
            && matches!(e, Event::Complete { unit: Engine::Cmd, index, opcode: Opcode::Nop } if *index == i)));
    }
    assert_eq!(s.dev.counters().desc_done, prog.len() as u64);
}

/// F4: a FENCE dispatched in d completes in the first cycle t >= d + 1 at whose
/// start every queue is empty and every unit idle; FENCE_SEQ, RING_HEAD and
/// IRQ_FENCE change in t; dispatch resumes in t + 1.
#[test]
fn f4_fence_drains() {
    let cfg = cfg(8, 8, 32, 9);
    // Nothing to drain: completes the cycle after its dispatch.
    let (_, ev) = run_ok(&cfg, &[fence(7)]);
    let d = dispatch(&ev, 0);
    assert_eq!(complete(&ev, 0), d + 1);
    assert_eq!(
        when(&ev, |e| matches!(e, Event::Fence { seq: 7, .. })),
        vec![d + 1]
    );
    assert_eq!(
        when(
            &ev,
            |e| matches!(e, Event::Irq { status } if *status & regs::IRQ_FENCE != 0)
        ),
        vec![d + 1]
    );
    // After units of every kind: the cycle after the last completion.
    let prog = [
        load(dma(0, 0x10000, 3, 64)).with_deps(deps::SIGNAL_NEXT),
        maxd(64).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        store(dma(0, 0x20000, 2, 32)).with_deps(deps::WAIT_PREV),
        maxd(max_len_for(&cfg, 50)),
        fence_quiet(3),
        nop(),
        fence(4),
    ];
    let (mut s, ev) = run_ok(&cfg, &prog);
    let last = (0..4).map(|i| complete(&ev, i)).max().expect("units");
    let t = complete(&ev, 4);
    assert_eq!(t, last + 1);
    assert!(
        when(&ev, |e| matches!(e, Event::Irq { .. }))
            .iter()
            .all(|&c| c != t),
        "no IRQ without the flag"
    );
    assert_eq!(
        when(&ev, |e| matches!(e, Event::Fence { seq: 3, .. })),
        vec![t]
    );
    assert_eq!(dispatch(&ev, 5), t + 1, "dispatch resumes the next cycle");
    assert_eq!(complete(&ev, 6), dispatch(&ev, 6) + 1);
    assert_eq!(s.rd(regs::FENCE_SEQ), 4);
}

/// F4: with WRITEBACK the FENCE requests its write the cycle after the drain
/// and completes (FENCE_SEQ, IRQ) in the cycle the write's response arrives;
/// the memory is written at acceptance (M4).
#[test]
fn f4_fence_writeback() {
    for (b, l) in [(32, 9), (8, 20), (64, 40), (32, 1)] {
        let cfg = cfg(8, 8, b, l);
        let wb = 0x30004u64;
        let prog = [
            maxd(max_len_for(&cfg, 20)),
            fence_wb(0xABCD, wb),
            nop(),
            fence(2),
        ];
        let (_, ev) = run_ok(&cfg, &prog);
        let t = complete(&ev, 0) + 1; // drained
        let w = reqs(&ev, Engine::Cmd, MemKind::FenceWrite);
        assert_eq!(w, vec![(t + 1, wb & !(b as u64 - 1))]);
        let done = t + 1 + l as u64;
        assert_eq!(complete(&ev, 1), done);
        assert_eq!(resps(&ev, Engine::Cmd, MemKind::FenceWrite)[0].0, done);
        assert!(ev
            .iter()
            .any(|(c, e)| *c == done && matches!(e, Event::Fence { seq: 0xABCD, .. })));
        assert!(ev.iter().any(|(c, e)| *c == done
            && matches!(e, Event::Irq { status } if status & regs::IRQ_FENCE != 0)));
        assert_eq!(dispatch(&ev, 2), done + 1);
        // Replay, stopping around the write: memory at acceptance, FENCE_SEQ at completion.
        let mut s = Sim::new(&cfg);
        run::start(&mut s.dev, &mut s.mem, RING, &prog).expect("start");
        s.run_until(t + 1);
        assert_eq!(s.mem_at(wb, 4), vec![0; 4]);
        s.run_until(t + 2);
        assert_eq!(s.mem_at(wb, 4), 0xABCDu32.to_le_bytes().to_vec());
        s.run_until(done);
        assert_eq!(
            (
                s.rd(regs::FENCE_SEQ),
                s.rd(regs::IRQ_STATUS) & regs::IRQ_FENCE
            ),
            (0, 0)
        );
        assert_eq!(s.rd(regs::RING_HEAD), 1);
        s.run_until(done + 1);
        assert_eq!(
            (
                s.rd(regs::FENCE_SEQ),
                s.rd(regs::IRQ_STATUS) & regs::IRQ_FENCE
            ),
            (0xABCD, regs::IRQ_FENCE)
        );
        assert_eq!(s.rd(regs::RING_HEAD), 2);
    }
}

/// F4 + X1: with translation on, the writeback is preceded by the command
/// processor's translation read: PTE at t + 1, write the cycle after its
/// response, completion L later.
#[test]
fn f4_fence_writeback_with_translation() {
    let cfg = cfg(8, 8, 32, 13);
    let l = lat(&cfg);
    let mut s = Sim::new(&cfg);
    s.translation(
        &(0..XLAT_PAGES as u64)
            .map(|v| pte(0x80000 + v * PAGE_BYTES, true))
            .collect::<Vec<_>>(),
    );
    let wb = 0x5008u64; // page 5
    s.program(&[maxd(16), fence_wb(77, wb)])
        .expect("program runs");
    let ev = s.ev();
    let t = complete(&ev, 0) + 1;
    assert_eq!(
        reqs(&ev, Engine::Cmd, MemKind::Pte),
        vec![(t + 1, (XLAT_TABLE + 5 * 8) & !31)]
    );
    let pa = 0x80000 + 5 * PAGE_BYTES + (wb & (PAGE_BYTES - 1));
    assert_eq!(
        reqs(&ev, Engine::Cmd, MemKind::FenceWrite),
        vec![(t + 2 + l, pa & !31)]
    );
    assert_eq!(complete(&ev, 1), t + 2 + 2 * l);
    assert_eq!(s.mem_at(pa, 4), 77u32.to_le_bytes().to_vec());
}

// ---------------------------------------------------------------------------
// U — Units and dependency tokens
// ---------------------------------------------------------------------------

/// U1: a unit issues its queue head when free (idle, or completing now) and
/// every counter it waits on is nonzero; it takes one token from each.
#[test]
fn u1_issue_when_free_and_tokens_ready() {
    let cfg = cfg(4, 8, 32, 10);
    // Back to back on the compute unit and on both DMA units.
    let prog = [
        maxd(40),
        matmul(3, 4, 8),
        act(2, 9),
        add(17),
        load(dma(0, 0x10000, 2, 64)),
        load(dma(0x100, 0x11000, 1, 32)),
        store(dma(0, 0x20000, 1, 96)),
        store(dma(0, 0x21000, 3, 16)),
        fence(1),
    ];
    let (_, ev) = run_ok(&cfg, &prog);
    for i in [1u32, 2, 3, 5, 7] {
        assert_eq!(
            issue(&ev, i),
            complete(&ev, i - 1),
            "descriptor {i} issues as {} completes",
            i - 1
        );
    }
    // Waiting on two counters: issues the cycle after the later producer, and
    // takes one token from each.
    let prog = [
        load(dma(0, 0x10000, 4, 64)).with_deps(deps::SIGNAL_NEXT),
        store(dma(0x800, 0x20000, 1, 32)).with_deps(deps::SIGNAL_PREV),
        maxd(16).with_deps(deps::WAIT_PREV | deps::WAIT_NEXT),
        fence(1),
    ];
    let (s, ev) = run_ok(&cfg, &prog);
    let t = complete(&ev, 0).max(complete(&ev, 1)) + 1;
    assert_eq!(issue(&ev, 2), t);
    let pops: Vec<_> = ev
        .iter()
        .filter_map(|(c, e)| match e {
            Event::TokenPop { queue } => Some((*c, *queue)),
            _ => None,
        })
        .collect();
    assert_eq!(
        pops,
        vec![
            (t, TokenQueue::LoadToCompute),
            (t, TokenQueue::StoreToCompute)
        ]
    );
    assert_eq!(s.dev.tokens(), [0; 4]);
    // One token per issue: two consumers need two producers.
    let prog = [
        load(dma(0, 0x10000, 1, 32)).with_deps(deps::SIGNAL_NEXT),
        load(dma(0, 0x10000, 6, 64)).with_deps(deps::SIGNAL_NEXT),
        maxd(16).with_deps(deps::WAIT_PREV),
        maxd(16).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let (_, ev) = run_ok(&cfg, &prog);
    assert_eq!(issue(&ev, 2), complete(&ev, 0) + 1);
    assert_eq!(issue(&ev, 3), complete(&ev, 1) + 1);
    assert!(
        complete(&ev, 2) < complete(&ev, 1),
        "the second MAX waited for the second token"
    );
}

/// U2: tokens signalled at completion c are usable from c + 1 (and not in c);
/// counters show the push at the end of c.
#[test]
fn u2_tokens_usable_from_next_cycle() {
    let cfg = cfg(8, 8, 32, 12);
    let prog = [
        load(dma(0, 0x10000, 2, 32)).with_deps(deps::SIGNAL_NEXT),
        matmul(2, 8, 8).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT | deps::SIGNAL_PREV),
        load(dma(0x100, 0x10000, 1, 32)).with_deps(deps::WAIT_NEXT),
        store(dma(0, 0x20000, 1, 32)).with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV),
        maxd(16).with_deps(deps::WAIT_NEXT),
        fence(1),
    ];
    let (_, ev) = run_ok(&cfg, &prog);
    assert_eq!(issue(&ev, 1), complete(&ev, 0) + 1);
    assert_eq!(issue(&ev, 2), complete(&ev, 1) + 1);
    assert_eq!(issue(&ev, 3), complete(&ev, 1) + 1);
    assert_eq!(issue(&ev, 4), complete(&ev, 3) + 1);
    for q in TokenQueue::ALL {
        let push = when(
            &ev,
            |e| matches!(e, Event::TokenPush { queue } if *queue == q),
        );
        let pop = when(
            &ev,
            |e| matches!(e, Event::TokenPop { queue } if *queue == q),
        );
        assert_eq!(push.len(), 1);
        assert_eq!(pop, vec![push[0] + 1], "{q:?}");
    }
    // A consumer dispatched after the push issues the cycle after its dispatch.
    let mut s = Sim::new(&cfg);
    s.ring(
        &[
            maxd(16).with_deps(deps::SIGNAL_NEXT),
            store(dma(0, 0x20000, 1, 32)).with_deps(deps::WAIT_PREV),
            fence(1),
        ],
        4,
    );
    s.doorbell(1);
    s.run_until(200);
    let c = complete(&s.ev(), 0);
    assert_eq!(s.dev.tokens()[TokenQueue::ComputeToStore as usize], 1);
    // Replay to observe the counter across the completion cycle.
    let mut r = Sim::new(&cfg);
    r.ring(&[maxd(16).with_deps(deps::SIGNAL_NEXT)], 4);
    r.doorbell(1);
    r.run_until(c);
    assert_eq!(r.dev.tokens()[TokenQueue::ComputeToStore as usize], 0);
    r.run_until(c + 1);
    assert_eq!(r.dev.tokens()[TokenQueue::ComputeToStore as usize], 1);
    s.doorbell(3);
    s.wait().expect("program runs");
    let ev = s.ev();
    assert_eq!(issue(&ev, 1), dispatch(&ev, 1) + 1);
}

/// U2: a counter holds 255 tokens; the 256th push faults TOKEN_OVERFLOW in the
/// completion cycle of the descriptor that pushes it.
#[test]
fn u2_token_overflow() {
    let mut cfg = cfg(8, 16, 32, 4);
    cfg.cmdproc.fetch_depth = 64; // keep the compute unit fed
    let mut prog = vec![maxd(16).with_deps(deps::SIGNAL_NEXT); 256];
    prog.push(fence(1));
    let (mut s, ev, e) = run_err(&cfg, &prog);
    let lat_max = elementwise_latency(&cfg, 16);
    for k in 1..256 {
        assert_eq!(
            issue(&ev, k),
            issue(&ev, 0) + k as u64 * lat_max,
            "back to back"
        );
    }
    let f = issue(&ev, 255) + lat_max;
    assert_eq!(error(&ev), (f, ErrorCode::TokenOverflow, 255, 0));
    assert_eq!(
        e,
        RunError::Device {
            code: ErrorCode::TokenOverflow,
            index: 255,
            addr: 0
        }
    );
    assert!(has_complete(&ev, 254) && !has_complete(&ev, 255));
    assert_eq!(
        when(&ev, |e| matches!(e, Event::TokenPush { .. })).len(),
        255
    );
    assert_eq!(s.dev.tokens()[TokenQueue::ComputeToStore as usize], 255);
    assert_eq!(s.err_regs(), (ErrorCode::TokenOverflow, 255, 0));
}

// ---------------------------------------------------------------------------
// C — Compute unit
// ---------------------------------------------------------------------------

/// C1: a MATMUL on an R x C array streaming M rows takes `2R + C + M - 2`
/// cycles, whatever K and N; back-to-back MATMULs start every latency.
#[test]
fn c1_matmul_latency_is_2r_plus_c_plus_m_minus_2() {
    for (r, c) in [
        (4u32, 4u32),
        (4, 8),
        (8, 4),
        (16, 16),
        (8, 16),
        (3, 5),
        (1, 1),
        (32, 8),
    ] {
        let mut cfg = cfg(r, c, 32, 9);
        cfg.cmdproc.fetch_depth = 64; // keep the compute unit fed
        let shapes: Vec<(u16, u16, u16)> = [1u16, 2, r as u16, 2 * r as u16 + 3, 37]
            .iter()
            .flat_map(|&m| {
                [
                    (m, 1, 1),
                    (m, r as u16, c as u16),
                    (m, r.div_ceil(2) as u16, c as u16),
                ]
            })
            .collect();
        let mut prog: Vec<Descriptor> = shapes.iter().map(|&(m, k, n)| matmul(m, k, n)).collect();
        prog.push(fence(1));
        let (s, ev) = run_ok(&cfg, &prog);
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            let i = i as u32;
            let want = matmul_latency(&cfg, m as u64);
            assert_eq!(want, 2 * r as u64 + c as u64 + m as u64 - 2);
            assert_eq!(
                complete(&ev, i) - issue(&ev, i),
                want,
                "{r}x{c} array, M={m} K={k} N={n}"
            );
            if i > 0 {
                assert_eq!(issue(&ev, i), complete(&ev, i - 1));
            }
        }
        let macs: u64 = shapes
            .iter()
            .map(|&(m, k, n)| m as u64 * k as u64 * n as u64)
            .sum();
        assert_eq!(s.dev.counters().macs, macs);
    }
}

fn with_options(mut cfg: NpuConfig, dataflow: Dataflow, double_buffer: bool) -> NpuConfig {
    cfg.array.dataflow = dataflow;
    cfg.array.weight_double_buffer = double_buffer;
    cfg.validate().expect("test config is valid");
    cfg
}

/// C1c: `ceil(M / R) * max(R, C) + R + C + 1`.
fn os_latency(cfg: &NpuConfig, m: u64) -> u64 {
    let (r, c) = (cfg.array.rows as u64, cfg.array.cols as u64);
    m.div_ceil(r) * r.max(c) + r + c + 1
}

/// C1c: an output-stationary MATMUL streaming M rows takes
/// `ceil(M / R) * max(R, C) + R + C + 1` cycles, whatever K and N; back-to-back
/// MATMULs start every latency (U1 unchanged); the data is C1a's.
#[test]
fn c1c_output_stationary_latency() {
    for (r, c) in [
        (4u32, 4u32),
        (4, 8),
        (8, 4),
        (16, 16),
        (3, 5),
        (1, 1),
        (8, 32),
    ] {
        let mut ws = cfg(r, c, 32, 9);
        ws.cmdproc.fetch_depth = 64;
        let os = with_options(ws.clone(), Dataflow::OutputStationary, false);
        let shapes: Vec<(u16, u16, u16)> = [1u16, 2, r as u16, r as u16 + 1, 2 * r as u16 + 3, 37]
            .iter()
            .flat_map(|&m| {
                [
                    (m, 1, 1),
                    (m, r as u16, c as u16),
                    (m, r.div_ceil(2) as u16, 1),
                ]
            })
            .collect();
        let mut prog: Vec<Descriptor> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(m, k, n))| {
                let mut d = matmul(m, k, n);
                if let Op::Matmul(mm) = &mut d.op {
                    mm.accumulate = i % 2 == 1;
                }
                d
            })
            .collect();
        prog.push(fence(1));
        let run = |cfg: &NpuConfig| {
            let mut s = Sim::new(cfg);
            s.fill(0x10000, 0x8000, 3);
            let descs: Vec<Descriptor> = [load(dma(0, 0x10000, 1, 0x2000))]
                .into_iter()
                .chain([fence_quiet(9)])
                .chain(prog.iter().copied())
                .collect();
            s.program(&descs).expect("program runs");
            s
        };
        let s = run(&os);
        let ev = s.ev();
        for (i, &(m, k, n)) in shapes.iter().enumerate() {
            let i = i as u32 + 2;
            let want = os_latency(&os, m as u64);
            assert_eq!(
                complete(&ev, i) - issue(&ev, i),
                want,
                "{r}x{c} output-stationary, M={m} K={k} N={n}"
            );
            if i > 2 {
                assert_eq!(issue(&ev, i), complete(&ev, i - 1));
            }
        }
        let macs: u64 = shapes
            .iter()
            .map(|&(m, k, n)| m as u64 * k as u64 * n as u64)
            .sum();
        assert_eq!(s.dev.counters().macs, macs);
        let busy: u64 = shapes
            .iter()
            .map(|&(m, _, _)| os_latency(&os, m as u64))
            .sum();
        assert_eq!(s.dev.counters().compute_busy, busy, "P1: busy = latencies");
        // Same data as weight-stationary.
        let w = run(&ws);
        assert_eq!(s.dev.local().acc, w.dev.local().acc, "{r}x{c}");
    }
}

/// C1b: the cycle `p` in which the weight loader starts the load for
/// descriptor `i` (a MATMUL right after MATMUL `i - 1`, no ACT/MAX/ADD
/// between), from the rule's three conditions: `i` is the queue head (from
/// the cycle after `i - 1` issued and after its own dispatch), its tokens are
/// there (`ready`), the previous load (started in `prev_p`) is `R` cycles
/// old, and the unit executes a MATMUL or is free (always true here).
fn load_start(ev: &[(u64, Event)], i: u32, ready: u64, prev_p: u64, r: u64) -> u64 {
    let head = (issue(ev, i - 1) + 1).max(dispatch(ev, i) + 1);
    head.max(ready).max(prev_p + r)
}

/// C1b: weight double-buffering. The first MATMUL's load starts at its issue
/// (C1a latency); in a chain, each next MATMUL's weights load during the
/// current fold (`R + C + M - 1`); a MATMUL whose tokens come late pays
/// `max(1, p + R - t) + R + C + M - 2`; after an ACT/MAX (which write the
/// scratchpad) the load waits for the unit to be free. Data as C1a.
#[test]
fn c1b_weight_double_buffering() {
    for (r, c) in [(4u32, 4u32), (8, 8), (16, 16), (3, 5), (1, 1), (8, 2)] {
        let (rr, cc) = (r as u64, c as u64);
        let mut ws = cfg(r, c, 32, 9);
        ws.cmdproc.fetch_depth = 64;
        let db = with_options(ws.clone(), Dataflow::WeightStationary, true);
        let lat_b = |m: u64, p: u64, t: u64| (p + rr).saturating_sub(t).max(1) + rr + cc + m - 2;
        // A chain of MATMULs, then a MAX, then one more MATMUL.
        let ms: Vec<u16> = vec![1, 2, r as u16, 2 * r as u16 + 3, 1, 37];
        let mut prog: Vec<Descriptor> = ms.iter().map(|&m| matmul(m, r as u16, c as u16)).collect();
        prog.push(maxd(c));
        prog.push(matmul(3, r as u16, c as u16));
        prog.push(fence(1));
        let (s, ev) = run_ok(&db, &prog);
        let t0 = issue(&ev, 0);
        assert_eq!(
            complete(&ev, 0) - t0,
            matmul_latency(&db, 1),
            "{r}x{c} first"
        );
        let mut prev_p = t0;
        let mut busy = matmul_latency(&db, 1);
        for (i, &m) in ms.iter().enumerate().skip(1) {
            let i = i as u32;
            let t = issue(&ev, i);
            assert_eq!(t, complete(&ev, i - 1), "U1 unchanged");
            let p = load_start(&ev, i, 0, prev_p, rr);
            assert!(p <= t);
            let want = lat_b(m as u64, p, t);
            assert_eq!(
                want,
                rr + cc + m as u64 - 1,
                "{r}x{c}: a chain hides the load"
            );
            assert_eq!(complete(&ev, i) - t, want, "{r}x{c} #{i} M={m}");
            busy += want;
            prev_p = p;
        }
        let n = ms.len() as u32;
        busy += complete(&ev, n) - issue(&ev, n);
        // After the MAX: the load starts when the MAX completes (the unit is free).
        let t = issue(&ev, n + 1);
        assert_eq!(t, complete(&ev, n));
        assert_eq!(complete(&ev, n + 1) - t, lat_b(3, t, t));
        assert_eq!(lat_b(3, t, t), matmul_latency(&db, 3));
        busy += lat_b(3, t, t);
        assert_eq!(s.dev.counters().compute_busy, busy, "P1: busy = latencies");
        // Data as without double-buffering.
        let (w, _) = run_ok(&ws, &prog);
        assert_eq!(s.dev.local().acc, w.dev.local().acc);
    }
    // Tokens that come during the previous fold: a LOAD the second MATMUL waits
    // on completes at various points of the first MATMUL's run.
    let cfg = with_options(cfg(8, 4, 32, 9), Dataflow::WeightStationary, true);
    let (rr, cc) = (8u64, 4u64);
    let mut regimes = [false; 3]; // hidden, partial, none
    for m0 in 1..60u16 {
        let prog = [
            matmul(m0, 8, 4),
            load(dma(0x4000, 0x10000, 4, 64)).with_deps(deps::SIGNAL_NEXT),
            matmul(5, 8, 4).with_deps(deps::WAIT_PREV),
            fence(1),
        ];
        let (_, ev) = run_ok(&cfg, &prog);
        let ready = complete(&ev, 1) + 1; // U2
        let t = issue(&ev, 2);
        assert_eq!(t, complete(&ev, 0).max(ready), "U1");
        let head = (issue(&ev, 0) + 1).max(dispatch(&ev, 2) + 1);
        let p = head.max(ready).max(issue(&ev, 0) + rr);
        let want = (p + rr).saturating_sub(t).max(1) + rr + cc + 5 - 2;
        assert_eq!(complete(&ev, 2) - t, want, "M0={m0}");
        let hide = (p + rr).saturating_sub(t);
        regimes[if hide <= 1 {
            0
        } else if hide < rr {
            1
        } else {
            2
        }] = true;
    }
    assert_eq!(
        regimes, [true; 3],
        "hidden, partly hidden and unhidden loads all occur"
    );
}

/// C1b / C1c: CAPS announces the options.
#[test]
fn c1_caps_announce_the_dataflow() {
    use npukit_abi::caps;
    let base = cfg(4, 4, 32, 9);
    for (df, wdb, set, clear) in [
        (
            Dataflow::WeightStationary,
            false,
            caps::WEIGHT_STATIONARY,
            caps::OUTPUT_STATIONARY | caps::WEIGHT_DOUBLE_BUFFER,
        ),
        (
            Dataflow::WeightStationary,
            true,
            caps::WEIGHT_STATIONARY | caps::WEIGHT_DOUBLE_BUFFER,
            caps::OUTPUT_STATIONARY,
        ),
        (
            Dataflow::OutputStationary,
            false,
            caps::OUTPUT_STATIONARY,
            caps::WEIGHT_STATIONARY | caps::WEIGHT_DOUBLE_BUFFER,
        ),
    ] {
        let mut s = Sim::new(&with_options(base.clone(), df, wdb));
        let v = s.rd(regs::CAPS);
        assert_eq!(v & set, set, "{df} {wdb}");
        assert_eq!(v & clear, 0, "{df} {wdb}");
        assert_ne!(v & caps::ELEMENTWISE, 0);
    }
}

/// C2: ACT on rows x cols takes `rows * ceil(cols / C) + 2` cycles.
#[test]
fn c2_act_latency() {
    for c in [4u32, 8, 16, 5] {
        let cfg = cfg(4, c, 32, 9);
        let c16 = c as u16;
        let shapes: Vec<(u16, u16)> = [1u16, 3, 7]
            .iter()
            .flat_map(|&r| [(r, 1), (r, c16 - 1), (r, c16), (r, c16 + 1), (r, 3 * c16)])
            .filter(|&(_, cols)| cols > 0)
            .collect();
        let mut prog: Vec<Descriptor> = shapes.iter().map(|&(r, cols)| act(r, cols)).collect();
        prog.push(fence(1));
        let (_, ev) = run_ok(&cfg, &prog);
        for (i, &(r, cols)) in shapes.iter().enumerate() {
            let want = act_latency(&cfg, r as u64, cols as u64);
            assert_eq!(
                complete(&ev, i as u32) - issue(&ev, i as u32),
                want,
                "C={c} ACT {r}x{cols}"
            );
        }
    }
}

/// C2 with PER_CHANNEL: the table entries are read with the accumulators, so a
/// per-channel ACT takes the same `rows * ceil(cols / C) + 2` cycles; mixed with
/// per-tensor ones, each still issues in the completion cycle of the previous.
/// The table's contents (here: loaded with out-of-range shifts) do not matter.
#[test]
fn c2_per_channel_act_latency_includes_the_table_read() {
    for c in [4u32, 8, 16, 5] {
        let mut cfg = cfg(4, c, 32, 9);
        cfg.cmdproc.fetch_depth = 64;
        let c16 = c as u16;
        let shapes: Vec<(u16, u16, bool)> = [1u16, 3, 7]
            .iter()
            .flat_map(|&r| {
                [(r, 1), (r, c16 - 1), (r, c16), (r, c16 + 1), (r, 3 * c16)]
                    .into_iter()
                    .enumerate()
                    .map(move |(k, (r, cols))| (r, cols, k % 2 == 0))
            })
            .filter(|&(_, cols, _)| cols > 0)
            .collect();
        // The table: every entry with multiplier -1 and shift 0xFFFF_FFFF (bits 7:0 = 255).
        let table = 0x30000u64;
        let mut prog = vec![Descriptor::new(Op::Load(Dma {
            acc: true,
            ..dma(0x8000, table, 1, 8 * 48)
        }))
        .with_deps(deps::SIGNAL_NEXT)];
        for (k, &(r, cols, pc)) in shapes.iter().enumerate() {
            let d = if pc {
                act_per_channel(r, cols)
            } else {
                act(r, cols)
            };
            prog.push(if k == 0 {
                d.with_deps(deps::WAIT_PREV)
            } else {
                d
            });
        }
        prog.push(fence(1));
        let mut s = Sim::new(&cfg);
        let entry = npukit_abi::desc::QuantEntry {
            multiplier: -1,
            shift: u32::MAX,
        };
        let img: Vec<u8> = (0..48).flat_map(|_| entry.to_bytes()).collect();
        s.mem.write(table, &img);
        s.program(&prog)
            .unwrap_or_else(|e| panic!("program failed: {e}"));
        let ev = s.ev();
        for (i, &(r, cols, pc)) in shapes.iter().enumerate() {
            let i = i as u32 + 1;
            let want = act_latency(&cfg, r as u64, cols as u64);
            assert_eq!(
                complete(&ev, i) - issue(&ev, i),
                want,
                "C={c} ACT {r}x{cols} per_channel={pc}"
            );
            if i > 1 {
                assert_eq!(issue(&ev, i), complete(&ev, i - 1), "C={c} #{i}");
            }
        }
    }
}

/// C3: ADD and MAX on len elements take `ceil(len / C) + 2` cycles.
#[test]
fn c3_add_max_latency() {
    for c in [4u32, 8, 16, 7] {
        let cfg = cfg(4, c, 32, 9);
        let lens = [1, c - 1, c, c + 1, 5 * c + 3, 1000];
        let mut prog = vec![];
        for &len in &lens {
            prog.push(add(len.max(1)));
            prog.push(maxd(len.max(1)));
        }
        prog.push(fence(1));
        let (_, ev) = run_ok(&cfg, &prog);
        for (j, &len) in lens.iter().enumerate() {
            let want = elementwise_latency(&cfg, len.max(1) as u64);
            for i in [2 * j as u32, 2 * j as u32 + 1] {
                assert_eq!(complete(&ev, i) - issue(&ev, i), want, "C={c} len={len}");
            }
        }
    }
}

/// C4: a compute descriptor reads its inputs and writes its outputs in its
/// completion cycle: data loaded into its input during its execution is used,
/// and a STORE of its output accepted before completion sees the old bytes.
#[test]
fn c4_data_read_and_written_at_completion() {
    let cfg = cfg(8, 16, 32, 8);
    let (p, q1, q2) = (0x10000u64, 0x20000u64, 0x20100u64);
    let prog = [
        maxd_at(0, 0x1000, max_len_for(&cfg, 40)).with_deps(deps::SIGNAL_NEXT),
        load(dma(0, p, 1, 32)),
        store(dma(0x1000, q1, 1, 32)),
        store(dma(0x1000, q2, 1, 32)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let mut s = Sim::new(&cfg);
    let data = s.fill(p, 32, 5);
    s.mem.write(q1, &[0x55; 32]);
    s.mem.write(q2, &[0x55; 32]);
    s.program(&prog).expect("program runs");
    let ev = s.ev();
    let (i0, c0) = (issue(&ev, 0), complete(&ev, 0));
    let ld = resps(&ev, Engine::Load, MemKind::Read)[0].0;
    let st = reqs(&ev, Engine::Store, MemKind::Write)[0].0;
    assert!(
        i0 < ld && ld < c0,
        "the LOAD writes the MAX's input while it runs"
    );
    assert!(
        st < c0,
        "the first STORE reads the MAX's output before it completes"
    );
    assert_eq!(s.spad(0x1000, 32), data, "MAX read its input at completion");
    assert_eq!(
        s.mem_at(q1, 32),
        vec![0; 32],
        "output not written before completion"
    );
    assert_eq!(s.mem_at(q2, 32), data);
}

// ---------------------------------------------------------------------------
// D — DMA units
// ---------------------------------------------------------------------------

/// D1: each row is cut at B-aligned addresses; a row of n bytes at a takes
/// `ceil((a mod B + n) / B)` beats, requested in row order. For LOAD and STORE.
#[test]
fn d1_beats_for_unaligned_rows() {
    let cases: [(u32, u64, u16, u16, u32); 8] = [
        (32, 0x10000, 1, 32, 32),
        (32, 0x10001, 1, 32, 32),
        (32, 0x1001F, 1, 2, 2),
        (8, 0x10003, 3, 13, 100),
        (64, 0x10030, 2, 100, 0),
        (16, 0x10005, 4, 1, 16),
        (16, 0x1000F, 3, 33, 17),
        (32, 0x10000, 5, 7, 4096),
    ];
    for (b, dram, rows, row_bytes, stride) in cases {
        let cfg = cfg(8, 8, b, 6);
        let ld = Dma {
            local: 0x100,
            dram,
            rows,
            row_bytes,
            dram_stride: stride,
            local_stride: row_bytes as u32 + 3,
            acc: false,
        };
        let st = Dma {
            dram: dram + 0x40000,
            ..ld
        };
        let want_ld = beats_of(&ld, b as u64);
        let want_st = beats_of(&st, b as u64);
        assert_eq!(want_ld.len() as u64, beat_count(&ld, b as u64));
        assert_eq!(want_st.len() as u64, beat_count(&st, b as u64));
        let mut s = Sim::new(&cfg);
        let src = s.fill(dram, 0x5000, 9);
        s.program(&[load(ld), fence_quiet(1), store(st), fence(2)])
            .expect("program runs");
        let ev = s.ev();
        let got_ld: Vec<u64> = reqs(&ev, Engine::Load, MemKind::Read)
            .iter()
            .map(|r| r.1)
            .collect();
        let got_st: Vec<u64> = reqs(&ev, Engine::Store, MemKind::Write)
            .iter()
            .map(|r| r.1)
            .collect();
        let aligned = |v: &[Beat]| v.iter().map(|x| x.va & !(b as u64 - 1)).collect::<Vec<_>>();
        assert_eq!(
            got_ld,
            aligned(&want_ld),
            "LOAD B={b} dram={dram:#x} rows={rows} n={row_bytes}"
        );
        assert_eq!(got_st, aligned(&want_st), "STORE B={b}");
        // The data went where the beats say.
        for x in &want_st {
            let off = (x.va - 0x40000 - dram) as usize;
            assert_eq!(
                s.mem_at(x.va, x.len as usize),
                src[off..off + x.len as usize].to_vec()
            );
        }
    }
}

/// D2: a DMA unit issued in t offers its first request in t + 1 and each
/// following one in the cycle after the previous was accepted.
#[test]
fn d2_first_request_the_cycle_after_issue() {
    for (b, rate) in [(32, 32), (32, 16), (16, 5), (8, 8)] {
        let mut cfg = cfg(8, 8, b, 15);
        cfg.dram.bytes_per_cycle = rate;
        for d in [load(dma(0, 0x10008, 3, 50)), store(dma(0, 0x20008, 3, 50))] {
            let (s, ev) = run_ok(&cfg, &[d, fence(1)]);
            let t = issue(&ev, 0);
            assert_port_quiet(&ev, &cfg, t + 1, u64::MAX);
            let who = if d.opcode() == Opcode::Load {
                Engine::Load
            } else {
                Engine::Store
            };
            let kind = if who == Engine::Load {
                MemKind::Read
            } else {
                MemKind::Write
            };
            let got = cycles(&reqs(&ev, who, kind));
            assert_eq!(got[0], t + 1);
            // Every cycle from t + 1 on is an offer until the last acceptance.
            assert_eq!(
                got,
                port_schedule(&cfg, t + 1, got.len()),
                "B={b} rate={rate}"
            );
            let k = s.dev.counters();
            let stalls = if who == Engine::Load {
                k.load_mem_stall
            } else {
                k.store_mem_stall
            };
            assert_eq!(stalls, got.last().expect("reqs") - t - got.len() as u64);
        }
    }
}

/// The translated pages of the D2/X1 tests: page v at 0x80000 + (15 - v) pages.
fn xlat_phys(vpn: u64) -> u64 {
    0x80000 + (XLAT_PAGES as u64 - 1 - vpn) * PAGE_BYTES
}

fn xlat_table(writable: bool) -> Vec<u64> {
    (0..XLAT_PAGES as u64)
        .map(|v| pte(xlat_phys(v), writable))
        .collect()
}

/// D2 with translation: the expected requests of a DMA issued in t, alone on
/// the port at full bandwidth, with an empty translation cache: a PTE read
/// before the first beat of each new page, the beat the cycle after its response.
fn translated_walk(cfg: &NpuConfig, t: u64, beats: &[Beat]) -> (Vec<Req>, Vec<Req>) {
    let (b, l) = (beat(cfg), lat(cfg));
    let mut cached = None;
    let mut cycle = t + 1;
    let (mut ptes, mut data) = (vec![], vec![]);
    for x in beats {
        let vpn = x.va >> PAGE_SHIFT;
        if cached != Some(vpn) {
            ptes.push((cycle, (XLAT_TABLE + 8 * vpn) & !(b - 1)));
            cycle += l + 1;
            cached = Some(vpn);
        }
        let pa = xlat_phys(vpn) + (x.va & (PAGE_BYTES - 1));
        data.push((cycle, pa & !(b - 1)));
        cycle += 1;
    }
    (ptes, data)
}

/// D2: with translation on, a beat on a page not in the unit's cache is
/// preceded by a translation read and offered the cycle after its response.
#[test]
fn d2_translation_read_precedes_each_new_page() {
    for (b, l) in [(32u32, 11u32), (8, 16), (64, 20)] {
        let cfg = cfg(8, 8, b, l);
        let ld = Dma {
            local: 0,
            dram: 0x0FC0,
            rows: 3,
            row_bytes: 96,
            dram_stride: 0x1800,
            local_stride: 96,
            acc: false,
        };
        let st = Dma {
            local: 0,
            dram: 0x5FE0,
            rows: 2,
            row_bytes: 64,
            dram_stride: 0x2010,
            local_stride: 64,
            acc: false,
        };
        let mut s = Sim::new(&cfg);
        s.translation(&xlat_table(true));
        let mut src = vec![];
        for x in beats_of(&ld, b as u64) {
            let pa = xlat_phys(x.va >> PAGE_SHIFT) + (x.va & (PAGE_BYTES - 1));
            src.push(s.fill(pa, x.len as usize, x.va as u8));
        }
        s.program(&[load(ld), fence_quiet(1), store(st), fence(2)])
            .expect("program runs");
        let ev = s.ev();
        for (d, who, kind, i) in [
            (ld, Engine::Load, MemKind::Read, 0u32),
            (st, Engine::Store, MemKind::Write, 2),
        ] {
            let t = issue(&ev, i);
            assert_port_quiet(&ev, &cfg, t + 1, complete(&ev, i));
            let (ptes, data) = translated_walk(&cfg, t, &beats_of(&d, b as u64));
            assert_eq!(
                reqs(&ev, who, MemKind::Pte),
                ptes,
                "{who:?} PTE reads, B={b} L={l}"
            );
            assert_eq!(reqs(&ev, who, kind), data, "{who:?} beats, B={b} L={l}");
            assert_eq!(
                complete(&ev, i),
                data.last().expect("beats").0 + l as u64 + 1
            );
        }
        assert!(
            reqs(&ev, Engine::Cmd, MemKind::Pte).is_empty(),
            "the ring is physical"
        );
        // The data came from the translated pages.
        for (x, want) in beats_of(&ld, b as u64).iter().zip(&src) {
            assert_eq!(&s.spad(x.local as u32, x.len as usize), want);
        }
    }
}

/// D2: a physical address outside device memory faults in the cycle the beat
/// would have been offered (ADDR_RANGE, ERR_ADDR the physical address).
#[test]
fn d2_address_out_of_range_faults_when_offered() {
    let cfg = cfg(8, 8, 32, 10);
    // Without translation: the second beat of the row is beyond memory.
    let (_, ev, _) = run_err(&cfg, &[load(dma(0, MEM_BYTES - 16, 1, 32)), fence(1)]);
    let t = issue(&ev, 0);
    assert_eq!(
        reqs(&ev, Engine::Load, MemKind::Read),
        vec![(t + 1, MEM_BYTES - 32)]
    );
    assert_eq!(error(&ev), (t + 2, ErrorCode::AddrRange, 0, MEM_BYTES));
    // With translation: the entry maps beyond memory; faults the cycle after it arrives.
    let mut table = xlat_table(true);
    table[3] = pte(MEM_BYTES + 0x7000, true);
    let mut s = Sim::new(&cfg);
    s.translation(&table);
    s.program(&[store(dma(0, 0x3010, 1, 16)), fence(1)])
        .expect_err("faults");
    let ev = s.ev();
    let r = resps(&ev, Engine::Store, MemKind::Pte);
    assert_eq!(r.len(), 1);
    assert_eq!(
        error(&ev),
        (r[0].0 + 1, ErrorCode::AddrRange, 0, MEM_BYTES + 0x7010)
    );
}

/// D3: a LOAD writes each beat into local memory in the cycle its response
/// arrives; a STORE reads local memory (and M4 writes memory) in the cycle its
/// request is accepted; both complete the cycle after the last response.
#[test]
fn d3_data_and_completion() {
    let cfg = cfg(8, 8, 16, 7);
    let b = beat(&cfg);
    let ld = Dma {
        local: 0x300,
        dram: 0x10005,
        rows: 2,
        row_bytes: 40,
        dram_stride: 64,
        local_stride: 48,
        acc: false,
    };
    let st = Dma {
        local: 0x300,
        dram: 0x2000B,
        rows: 2,
        row_bytes: 40,
        dram_stride: 0x100,
        local_stride: 48,
        acc: false,
    };
    let prog = [
        load(ld).with_deps(deps::SIGNAL_NEXT),
        maxd_at(0x2000, 0x2000, 16).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        store(st).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let mut s = Sim::new(&cfg);
    let src = s.fill(0x10000, 0x100, 2);
    let old = vec![0x77u8; 0x200];
    s.mem.write(0x20000, &old);
    run::start(&mut s.dev, &mut s.mem, RING, &prog).expect("start");
    let (lb, sb) = (beats_of(&ld, b), beats_of(&st, b));
    let local_of = |x: &Beat| {
        let off = (x.va - 0x10000) as usize;
        src[off..off + x.len as usize].to_vec()
    };
    while s.rd(regs::FENCE_SEQ) != 1 {
        let c = s.cycle();
        s.run_until(c + 1);
        let ev = s.ev();
        let lr = resps(&ev, Engine::Load, MemKind::Read);
        for (k, x) in lb.iter().enumerate() {
            let want = if k < lr.len() {
                local_of(x)
            } else {
                vec![0; x.len as usize]
            };
            assert_eq!(
                s.spad(x.local as u32, x.len as usize),
                want,
                "LOAD beat {k} after cycle {c}"
            );
        }
        let sr = reqs(&ev, Engine::Store, MemKind::Write);
        for (k, x) in sb.iter().enumerate() {
            // The STORE reads the bytes the LOAD put at the same local address.
            let want = if k < sr.len() {
                s.spad(x.local as u32, x.len as usize)
            } else {
                old[..x.len as usize].to_vec()
            };
            assert_eq!(
                s.mem_at(x.va, x.len as usize),
                want,
                "STORE beat {k} after cycle {c}"
            );
        }
        assert!(c < 10_000);
    }
    let ev = s.ev();
    let last_ld = resps(&ev, Engine::Load, MemKind::Read)
        .last()
        .expect("resps")
        .0;
    let last_st = resps(&ev, Engine::Store, MemKind::Write)
        .last()
        .expect("resps")
        .0;
    assert_eq!(complete(&ev, 0), last_ld + 1);
    assert_eq!(complete(&ev, 2), last_st + 1);
    // Completion under contention (M1): still the cycle after the last response.
    let prog = [
        maxd(16).with_deps(deps::SIGNAL_PREV | deps::SIGNAL_NEXT),
        load(dma(0, 0x10000, 3, 40)).with_deps(deps::WAIT_NEXT),
        store(dma(0x800, 0x20000, 2, 50)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let (_, ev) = run_ok(&cfg, &prog);
    assert_eq!(
        complete(&ev, 1),
        resps(&ev, Engine::Load, MemKind::Read)
            .last()
            .expect("resps")
            .0
            + 1
    );
    assert_eq!(
        complete(&ev, 2),
        resps(&ev, Engine::Store, MemKind::Write)
            .last()
            .expect("resps")
            .0
            + 1
    );
}

/// D4: an isolated LOAD of n beats issued in t requests in t+1 .. t+n and
/// completes in t + n + L + 1.
#[test]
fn d4_isolated_load() {
    d4_isolated(true);
}

/// D4: the same for STORE.
#[test]
fn d4_isolated_store() {
    d4_isolated(false);
}

fn d4_isolated(is_load: bool) {
    for (b, l) in [(8u32, 5u32), (32, 1), (32, 7), (64, 40), (16, 64)] {
        for n in [1u64, 3, 10] {
            let cfg = cfg(8, 8, b, l);
            let rows = [
                dma(0, 0x10000, 1, (n * b as u64) as u16),
                Dma {
                    dram_stride: 2 * b,
                    ..dma(0, 0x10000, n as u16, b as u16)
                },
            ];
            for d in rows {
                let desc = if is_load { load(d) } else { store(d) };
                let (_, ev) = run_ok(&cfg, &[desc, fence(1)]);
                let t = issue(&ev, 0);
                assert_port_quiet(&ev, &cfg, t + 1, t + n + 1);
                let (who, kind) = if is_load {
                    (Engine::Load, MemKind::Read)
                } else {
                    (Engine::Store, MemKind::Write)
                };
                assert_eq!(
                    cycles(&reqs(&ev, who, kind)),
                    (t + 1..=t + n).collect::<Vec<_>>(),
                    "B={b} L={l} n={n}"
                );
                assert_eq!(complete(&ev, 0), t + n + l as u64 + 1, "B={b} L={l} n={n}");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// X — Translation
// ---------------------------------------------------------------------------

/// X1: a write to CONTROL, XLAT_BASE_LO, XLAT_BASE_HI or XLAT_PAGES (even of the
/// same value) empties the translation caches; other writes do not.
#[test]
fn x1_cache_flushed_by_register_writes() {
    let cfg = cfg(8, 8, 32, 9);
    let prog = [
        load(dma(0, 0x100, 1, 32)),
        fence(1),
        load(dma(0x100, 0x200, 1, 32)),
        fence(2),
    ];
    for (reg, flushes) in [
        (None, false),
        (Some(regs::CONTROL), true),
        (Some(regs::XLAT_BASE_LO), true),
        (Some(regs::XLAT_BASE_HI), true),
        (Some(regs::XLAT_PAGES), true),
        (Some(regs::WATCHDOG), false),
        (Some(regs::IRQ_MASK), false),
    ] {
        let mut s = Sim::new(&cfg);
        s.translation(&xlat_table(true));
        s.ring(&prog, 8);
        s.doorbell(2);
        s.wait().expect("first part");
        if let Some(r) = reg {
            let v = s.rd(r);
            s.wr(r, v);
        }
        s.doorbell(4);
        s.wait().expect("second part");
        let ev = s.ev();
        let ptes = reqs(&ev, Engine::Load, MemKind::Pte);
        assert_eq!(ptes.len(), 1 + flushes as usize, "after a write to {reg:?}");
        assert_eq!(ptes[0].0, issue(&ev, 0) + 1);
        if flushes {
            assert_eq!(ptes[1].0, issue(&ev, 2) + 1);
        } else {
            assert_eq!(
                reqs(&ev, Engine::Load, MemKind::Read)[1].0,
                issue(&ev, 2) + 1,
                "cache hit"
            );
        }
    }
}

/// X1: each requester has its own one-entry cache.
#[test]
fn x1_caches_are_per_requester_and_one_entry() {
    let cfg = cfg(8, 8, 32, 9);
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(true));
    let prog = [
        load(dma(0, 0x1000, 1, 32)), // page 1: read
        load(dma(0, 0x1100, 1, 32)), // page 1: hit
        load(dma(0, 0x2000, 1, 32)), // page 2: read
        load(dma(0, 0x1200, 1, 32)), // page 1 again: read (one entry)
        fence_quiet(1),
        store(dma(0, 0x1300, 1, 32)), // page 1 for the store unit: its own read
        fence_wb(2, 0x1400),          // page 1 for the command processor: its own read
    ];
    s.program(&prog).expect("program runs");
    let ev = s.ev();
    let kinds = |who| {
        all_reqs(&ev)
            .iter()
            .filter(|r| r.1 == who)
            .map(|r| r.2)
            .collect::<Vec<_>>()
    };
    use MemKind::{FenceWrite, Pte, Read, Write};
    assert_eq!(
        kinds(Engine::Load),
        vec![Pte, Read, Read, Pte, Read, Pte, Read]
    );
    assert_eq!(kinds(Engine::Store), vec![Pte, Write]);
    let cmd: Vec<MemKind> = kinds(Engine::Cmd)
        .into_iter()
        .filter(|k| *k != MemKind::Fetch)
        .collect();
    assert_eq!(cmd, vec![Pte, FenceWrite]);
}

/// XLAT_BASE is 8-byte aligned by construction: bits 2:0 of XLAT_BASE_LO are
/// ignored and read as zero, so a table entry never straddles two beats.
#[test]
fn xlat_base_ignores_bits_2_0() {
    let mut s = Sim::new(&cfg(8, 8, 8, 9));
    s.wr(regs::XLAT_BASE_LO, 0x9007);
    assert_eq!(s.rd(regs::XLAT_BASE_LO), 0x9000);
}

/// X1: a flush while a table read is in flight discards that read's entry when
/// it arrives; the unit reads the table again (never two reads in flight) and
/// uses the entry as it is after the driver's change.
#[test]
fn x1_flush_discards_the_read_in_flight() {
    let l = 9;
    let cfg = cfg(8, 8, 32, l);
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(true));
    s.ring(&[load(dma(0, 0x100, 1, 32)), fence(1)], 8);
    s.doorbell(2);
    // Issue in cycle 0 + fetch + dispatch; run until the PTE read is accepted.
    let mut c = 0;
    while reqs(&s.ev(), Engine::Load, MemKind::Pte).is_empty() {
        c += 1;
        s.run_until(c);
    }
    let granted = reqs(&s.ev(), Engine::Load, MemKind::Pte)[0].0;
    // The driver unmaps page 0 and flushes while the read is in flight.
    s.mem.write(XLAT_TABLE, &0u64.to_le_bytes());
    s.wr(regs::XLAT_PAGES, XLAT_PAGES);
    s.wait().expect_err("the new (invalid) entry must be used");
    let ev = s.ev();
    let ptes = reqs(&ev, Engine::Load, MemKind::Pte);
    assert_eq!(ptes.len(), 2, "one read discarded, one read again");
    // The second read is offered the cycle after the first one's response.
    assert_eq!(ptes[1].0, granted + l as u64 + 1);
    assert!(
        reqs(&ev, Engine::Load, MemKind::Read).is_empty(),
        "no stale access"
    );
    let (code, index, addr) = s.err_regs();
    assert_eq!((code, index, addr), (ErrorCode::XlatFault, 0, 0x100));
}

/// X1: an invalid entry (not VALID, or reserved bits set) faults XLAT_FAULT in
/// the cycle after it arrived, with ERR_ADDR the device address.
#[test]
fn x1_invalid_entry_faults_cycle_after_arrival() {
    for bad in [0u64, pte(xlat_phys(2), true) | 0x10] {
        let cfg = cfg(8, 8, 32, 9);
        let mut table = xlat_table(true);
        table[2] = bad;
        let mut s = Sim::new(&cfg);
        s.translation(&table);
        let e = s
            .program(&[nop(), load(dma(0, 0x2040, 1, 32)), fence(1)])
            .expect_err("faults");
        let ev = s.ev();
        let r = resps(&ev, Engine::Load, MemKind::Pte);
        assert_eq!(r.len(), 1);
        assert_eq!(
            reqs(&ev, Engine::Load, MemKind::Pte)[0].0,
            issue(&ev, 1) + 1
        );
        assert_eq!(error(&ev), (r[0].0 + 1, ErrorCode::XlatFault, 1, 0x2040));
        assert_eq!(
            e,
            RunError::Device {
                code: ErrorCode::XlatFault,
                index: 1,
                addr: 0x2040
            }
        );
    }
}

/// X1: a write through a read-only entry faults XLAT_WRITE the cycle after the
/// entry arrived — for a STORE and for a FENCE writeback; reads through it work.
#[test]
fn x1_write_through_read_only_entry() {
    let cfg = cfg(8, 8, 32, 9);
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(false));
    s.program(&[load(dma(0, 0x3010, 1, 32)), fence(1)])
        .expect("reads are fine");
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(false));
    s.program(&[store(dma(0, 0x3010, 1, 32)), fence(1)])
        .expect_err("faults");
    let ev = s.ev();
    let r = resps(&ev, Engine::Store, MemKind::Pte);
    assert_eq!(error(&ev), (r[0].0 + 1, ErrorCode::XlatWrite, 0, 0x3010));
    assert!(reqs(&ev, Engine::Store, MemKind::Write).is_empty());
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(false));
    s.program(&[maxd(16), fence_wb(5, 0x4020)])
        .expect_err("faults");
    let ev = s.ev();
    let t = complete(&ev, 0) + 1;
    let r = resps(&ev, Engine::Cmd, MemKind::Pte);
    assert_eq!(reqs(&ev, Engine::Cmd, MemKind::Pte)[0].0, t + 1);
    assert_eq!(error(&ev), (r[0].0 + 1, ErrorCode::XlatWrite, 1, 0x4020));
}

/// X1: a device address beyond XLAT_PAGES pages faults without a table read, in
/// the cycle the beat would have been offered.
#[test]
fn x1_beyond_xlat_pages_faults_without_read() {
    let cfg = cfg(8, 8, 32, 9);
    let va = XLAT_PAGES as u64 * PAGE_BYTES + 0x20;
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(true));
    s.program(&[load(dma(0, va, 1, 32)), fence(1)])
        .expect_err("faults");
    let ev = s.ev();
    assert!(reqs(&ev, Engine::Load, MemKind::Pte).is_empty());
    assert_eq!(error(&ev), (issue(&ev, 0) + 1, ErrorCode::XlatFault, 0, va));
    // Crossing the end in the middle of a row: faults when that beat is offered.
    let mut s = Sim::new(&cfg);
    s.translation(&xlat_table(true));
    let va = XLAT_PAGES as u64 * PAGE_BYTES - 32;
    s.program(&[load(dma(0, va, 1, 64)), fence(1)])
        .expect_err("faults");
    let ev = s.ev();
    let beat0 = reqs(&ev, Engine::Load, MemKind::Read)[0].0;
    assert_eq!(error(&ev), (beat0 + 1, ErrorCode::XlatFault, 0, va + 32));
}

// ---------------------------------------------------------------------------
// E — Errors and liveness
// ---------------------------------------------------------------------------

/// E1: a compute descriptor waiting on a token no one sends, followed by a
/// FENCE: DEADLOCK in the first cycle the FENCE is draining (the cycle after
/// its dispatch), ERR_DESC the blocked head, ERR_ADDR 0.
#[test]
fn e1_deadlock_detected() {
    for (b, l) in [(32, 9), (8, 3), (64, 30)] {
        let cfg = cfg(8, 8, b, l);
        let (mut s, ev, e) = run_err(&cfg, &[maxd(16).with_deps(deps::WAIT_PREV), fence(1)]);
        let f = dispatch(&ev, 1) + 1;
        assert_eq!(error(&ev), (f, ErrorCode::Deadlock, 0, 0));
        assert_eq!(
            e,
            RunError::Device {
                code: ErrorCode::Deadlock,
                index: 0,
                addr: 0
            }
        );
        assert_eq!(s.err_regs(), (ErrorCode::Deadlock, 0, 0));
    }
}

/// E1: ERR_DESC is the first blocked queue head in the order load, compute,
/// store (not ring order).
#[test]
fn e1_err_desc_is_first_blocked_head_load_compute_store() {
    let cfg = cfg(8, 8, 32, 9);
    let st = store(dma(0, 0x20000, 1, 32)).with_deps(deps::WAIT_PREV);
    let mx = maxd(16).with_deps(deps::WAIT_NEXT);
    let ld = load(dma(0, 0x10000, 1, 32)).with_deps(deps::WAIT_NEXT);
    let (_, ev, _) = run_err(&cfg, &[st, mx, fence(1)]);
    assert_eq!(
        error(&ev),
        (dispatch(&ev, 2) + 1, ErrorCode::Deadlock, 1, 0)
    );
    let (_, ev, _) = run_err(&cfg, &[st, mx, ld, fence(1)]);
    assert_eq!(
        error(&ev),
        (dispatch(&ev, 3) + 1, ErrorCode::Deadlock, 2, 0)
    );
}

/// E1: a request in flight at the start of the cycle (even one whose response
/// arrives in it) rules the deadlock out; it is detected the cycle after the
/// last response.
#[test]
fn e1_no_deadlock_while_a_request_is_in_flight() {
    let mut cfg = cfg(8, 8, 32, 9);
    cfg.cmdproc.fetch_depth = 2;
    // Descriptor 2 is fetched the cycle descriptor 1 (the FENCE) dispatches.
    let (_, ev, _) = run_err(
        &cfg,
        &[maxd(16).with_deps(deps::WAIT_PREV), fence(1), nop()],
    );
    let fetch2 = fetch_req(&ev, &cfg, 2);
    assert_eq!(fetch2, dispatch(&ev, 1));
    let last_resp = fetch2 + lat(&cfg);
    assert_eq!(error(&ev), (last_resp + 1, ErrorCode::Deadlock, 0, 0));
    assert_eq!(
        resps(&ev, Engine::Cmd, MemKind::Fetch)
            .last()
            .expect("resps")
            .0,
        last_resp
    );
}

/// E1: the command processor blocked by a full queue (no FENCE) also deadlocks,
/// in the first cycle it cannot dispatch.
#[test]
fn e1_queue_full_deadlock() {
    let mut cfg = cfg(8, 8, 32, 9);
    cfg.cmdproc.queue_depth = 1;
    let mut s = Sim::new(&cfg);
    s.ring(&[maxd(16).with_deps(deps::WAIT_PREV), maxd(16)], 4);
    s.doorbell(2);
    s.wait().expect_err("deadlock");
    let ev = s.ev();
    let f = (fetched(&ev, &cfg, 1) + 1).max(dispatch(&ev, 0) + 1);
    assert_eq!(error(&ev), (f, ErrorCode::Deadlock, 0, 0));
}

/// E1: with the ring empty and no FENCE pending the device merely waits for
/// the driver; a later producer unblocks it.
#[test]
fn e1_empty_ring_is_not_a_deadlock() {
    let cfg = cfg(8, 8, 32, 9);
    let mut s = Sim::new(&cfg);
    s.ring(
        &[
            maxd(16).with_deps(deps::WAIT_PREV),
            load(dma(0, 0x10000, 1, 32)).with_deps(deps::SIGNAL_NEXT),
            fence(1),
        ],
        4,
    );
    s.doorbell(1);
    s.run_until(5000);
    assert!(when(&s.ev(), |e| matches!(e, Event::Error { .. })).is_empty());
    assert_ne!(s.rd(regs::STATUS) & regs::STATUS_BUSY, 0);
    s.doorbell(3);
    s.wait().expect("unblocked");
    let ev = s.ev();
    assert_eq!(issue(&ev, 0), complete(&ev, 1) + 1);
}

/// E2: with WATCHDOG = w the device faults WATCHDOG in p + w, p the last
/// completion; ERR_DESC is RING_HEAD. A device that keeps completing within w
/// is left alone.
#[test]
fn e2_watchdog_fires_at_p_plus_w() {
    for w in [40u32, 51, 333] {
        for first in [nop(), load(dma(0, 0x10000, 4, 64)), maxd(160)] {
            let cfg = cfg(8, 8, 32, 9);
            let mut s = Sim::new(&cfg);
            s.wr(regs::WATCHDOG, w);
            s.ring(&[first, maxd(16).with_deps(deps::WAIT_PREV)], 4);
            s.doorbell(2);
            let e = s.wait().expect_err("watchdog");
            let ev = s.ev();
            let f = complete(&ev, 0) + w as u64;
            let head = head_before(&ev, f);
            assert_eq!(
                error(&ev),
                (f, ErrorCode::Watchdog, head, 0),
                "w={w} after {:?}",
                first.opcode()
            );
            assert_eq!(
                e,
                RunError::Device {
                    code: ErrorCode::Watchdog,
                    index: head,
                    addr: 0
                }
            );
        }
    }
    // Before any completion p is the cycle of the RUN / RING_TAIL writes (0).
    for w in [1u32, 5] {
        let cfg = cfg(8, 8, 32, 9);
        let mut s = Sim::new(&cfg);
        s.wr(regs::WATCHDOG, w);
        s.program(&[maxd(16), fence(1)]).expect_err("watchdog");
        assert_eq!(error(&s.ev()), (w as u64, ErrorCode::Watchdog, 0, 0));
    }
    // Completions every < w cycles: no watchdog, though the program is longer.
    let cfg = cfg(8, 8, 32, 9);
    let mut s = Sim::new(&cfg);
    s.wr(regs::WATCHDOG, 60);
    let mut prog = vec![maxd(max_len_for(&cfg, 40)); 20];
    prog.push(fence(1));
    s.program(&prog).expect("no watchdog");
}

/// E2: p also moves when RING_TAIL or WATCHDOG is written.
#[test]
fn e2_watchdog_restarted_by_register_writes() {
    let cfg = cfg(8, 8, 32, 9);
    let w = 100u64;
    let hang = maxd(16).with_deps(deps::WAIT_PREV);
    for reg in [regs::RING_TAIL, regs::WATCHDOG] {
        let mut s = Sim::new(&cfg);
        s.wr(regs::WATCHDOG, w as u32);
        s.ring(&[nop(), hang, hang], 4);
        s.doorbell(2);
        s.run_until(lat(&cfg) + 60);
        let x = s.cycle();
        let w2 = if reg == regs::RING_TAIL {
            s.doorbell(3);
            w
        } else {
            s.wr(regs::WATCHDOG, 70);
            70
        };
        s.wait().expect_err("watchdog");
        let ev = s.ev();
        assert!(
            complete(&ev, 0) + w > x,
            "the first deadline had not passed"
        );
        let head = head_before(&ev, x + w2);
        assert_eq!(
            error(&ev),
            (x + w2, ErrorCode::Watchdog, head, 0),
            "restarted by {reg:#x}"
        );
    }
}

/// E2: only a RUN 0 -> 1 edge restarts the watchdog; a CONTROL write that
/// leaves RUN set does not, so the deadline stays p + w from the last
/// completion.
#[test]
fn e2_control_write_keeping_run_does_not_restart_watchdog() {
    let cfg = cfg(8, 8, 32, 9);
    let w = 100u64;
    let mut s = Sim::new(&cfg);
    s.wr(regs::WATCHDOG, w as u32);
    s.ring(&[nop(), maxd(16).with_deps(deps::WAIT_PREV)], 4);
    s.doorbell(2);
    s.run_until(lat(&cfg) + 60);
    let x = s.cycle();
    let ctl = s.rd(regs::CONTROL);
    s.wr(regs::CONTROL, ctl);
    s.wait().expect_err("watchdog");
    let ev = s.ev();
    let p = ev
        .iter()
        .filter(|(c, e)| *c < x && matches!(e, Event::Complete { .. }))
        .map(|(c, _)| *c)
        .max()
        .expect("the NOP completed before the CONTROL write");
    assert!(p + w > x, "the test must write CONTROL before the deadline");
    assert_eq!(
        error(&ev),
        (p + w, ErrorCode::Watchdog, head_before(&ev, p + w), 0)
    );
}

// ---------------------------------------------------------------------------
// P — Counters
// ---------------------------------------------------------------------------

fn assert_counters_match_mmio(s: &mut Sim) -> Counters {
    let k = s.dev.counters();
    assert_eq!(run::read_counters(&mut s.dev), k);
    k
}

/// P1: busy = cycles holding a descriptor (a compute descriptor counts exactly
/// its latency, a DMA from issue to completion); token stall = free with a
/// waiting queue head; memory stall = offered and not accepted; MACS, bytes,
/// descriptors and beats as documented.
#[test]
fn p1_counters() {
    let cfg = cfg(4, 8, 32, 10);
    // Compute: busy is the sum of latencies.
    let prog = [
        matmul(5, 4, 8),
        maxd(50),
        act(3, 9),
        add(17),
        matmul(1, 2, 3),
        fence(1),
    ];
    let (mut s, ev) = run_ok(&cfg, &prog);
    let k = assert_counters_match_mmio(&mut s);
    let want = matmul_latency(&cfg, 5)
        + elementwise_latency(&cfg, 50)
        + act_latency(&cfg, 3, 9)
        + elementwise_latency(&cfg, 17)
        + matmul_latency(&cfg, 1);
    assert_eq!(k.compute_busy, want);
    assert_eq!(k.macs, 5 * 4 * 8 + 2 * 3);
    assert_eq!(k.desc_done, prog.len() as u64);
    assert_eq!(k.compute_token_stall, 0);
    assert_eq!(k.mem_beats, all_reqs(&ev).len() as u64);
    assert_eq!(k.cycles, s.cycle());
    // Token stalls, DMA busy and bytes.
    let prog = [
        load(dma(0, 0x10003, 3, 50)).with_deps(deps::SIGNAL_NEXT),
        maxd(16).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
        store(dma(0, 0x20000, 2, 70)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let (mut s, ev) = run_ok(&cfg, &prog);
    let k = assert_counters_match_mmio(&mut s);
    assert_eq!(k.load_busy, complete(&ev, 0) - issue(&ev, 0));
    assert_eq!(k.store_busy, complete(&ev, 2) - issue(&ev, 2));
    assert_eq!(k.compute_busy, elementwise_latency(&cfg, 16));
    assert_eq!(k.compute_token_stall, issue(&ev, 1) - dispatch(&ev, 1) - 1);
    assert_eq!(k.store_token_stall, issue(&ev, 2) - dispatch(&ev, 2) - 1);
    assert_eq!(k.load_token_stall, 0);
    assert_eq!((k.dma_rd_bytes, k.dma_wr_bytes), (150, 140));
    assert_eq!((k.load_mem_stall, k.store_mem_stall), (0, 0));
    assert_eq!(k.mem_beats, all_reqs(&ev).len() as u64);
    // Memory stalls under contention: offers from issue + 1 to the last acceptance.
    let prog = [
        maxd(16).with_deps(deps::SIGNAL_PREV | deps::SIGNAL_NEXT),
        load(dma(0, 0x10000, 3, 64)).with_deps(deps::WAIT_NEXT),
        store(dma(0x800, 0x20000, 2, 64)).with_deps(deps::WAIT_PREV),
        fence(1),
    ];
    let (mut s, ev) = run_ok(&cfg, &prog);
    let k = assert_counters_match_mmio(&mut s);
    let stalls = |i: u32, who, kind| {
        let r = reqs(&ev, who, kind);
        r.last().expect("reqs").0 - issue(&ev, i) - r.len() as u64
    };
    assert_eq!(k.load_mem_stall, stalls(1, Engine::Load, MemKind::Read));
    assert_eq!(k.store_mem_stall, stalls(2, Engine::Store, MemKind::Write));
    assert!(k.load_mem_stall > 0);
    assert_eq!(k.load_token_stall, issue(&ev, 1) - dispatch(&ev, 1) - 1);
}

/// P1 in executable form: the counters after cycle `c`, from the events of a
/// program without translation whose ring did not wrap.
fn p1_expected(ev: &[(u64, Event)], cfg: &NpuConfig, c: u64) -> Counters {
    let b = beat(cfg);
    let never = u64::MAX;
    let cyc = |f: &dyn Fn(&Event) -> bool| ev.iter().find(|(_, e)| f(e)).map_or(never, |&(t, _)| t);
    let mut k = Counters {
        cycles: c + 1,
        ..Counters::default()
    };
    for (u, engine) in [
        (0usize, Engine::Load),
        (1, Engine::Compute),
        (2, Engine::Store),
    ] {
        // (dispatch, issue, complete, descriptor) of the unit's descriptors.
        let descs: Vec<(u64, u64, u64, Descriptor)> = ev
            .iter()
            .filter_map(|&(t, ref e)| match e {
                Event::Dispatch { unit, index, desc } if *unit == engine => {
                    let i = *index;
                    let is = cyc(&|e| matches!(e, Event::Issue { index, .. } if *index == i));
                    let co = cyc(&|e| matches!(e, Event::Complete { index, .. } if *index == i));
                    Some((t, is, co, *desc))
                }
                _ => None,
            })
            .collect();
        let mut busy = 0;
        let mut stall = 0;
        for t in 0..=c {
            // Holds a descriptor at the end of t.
            busy += descs.iter().any(|&(_, is, co, _)| is <= t && t < co) as u64;
            let free = !descs.iter().any(|&(_, is, co, _)| is < t && t < co);
            let queued = descs.iter().any(|&(d, is, _, _)| d < t && is >= t);
            let issues = descs.iter().any(|&(_, is, _, _)| is == t);
            stall += (free && queued && !issues) as u64;
        }
        let mut mem_stall = 0;
        if engine != Engine::Compute {
            let kind = if engine == Engine::Load {
                MemKind::Read
            } else {
                MemKind::Write
            };
            let rq = reqs(ev, engine, kind);
            let mut next = 0;
            for &(_, is, _, d) in &descs {
                let (Op::Load(x) | Op::Store(x)) = d.op else {
                    continue;
                };
                let beats = beats_of(&x, b);
                let mine = &rq[next..next + beats.len()];
                next += beats.len();
                let last = mine.last().expect("beats").0;
                // D2: offered every cycle from issue + 1 to the last acceptance.
                for t in is + 1..=last.min(c) {
                    mem_stall += !mine.iter().any(|r| r.0 == t) as u64;
                }
                for (x, r) in beats.iter().zip(mine) {
                    if r.0 <= c {
                        if engine == Engine::Load {
                            k.dma_rd_bytes += x.len;
                        } else {
                            k.dma_wr_bytes += x.len;
                        }
                    }
                }
            }
        }
        if engine == Engine::Compute {
            for &(_, _, co, d) in &descs {
                if let Op::Matmul(m) = d.op {
                    k.macs += (co <= c) as u64 * m.m as u64 * m.k as u64 * m.n as u64;
                }
            }
        }
        match u {
            0 => (k.load_busy, k.load_token_stall, k.load_mem_stall) = (busy, stall, mem_stall),
            1 => (k.compute_busy, k.compute_token_stall) = (busy, stall),
            _ => (k.store_busy, k.store_token_stall, k.store_mem_stall) = (busy, stall, mem_stall),
        }
    }
    k.desc_done = ev
        .iter()
        .filter(|(t, e)| *t <= c && matches!(e, Event::Complete { .. }))
        .count() as u64;
    k.mem_beats = ev
        .iter()
        .filter(|(t, e)| *t <= c && matches!(e, Event::MemReq { .. }))
        .count() as u64;
    k
}

/// P1, cycle by cycle: after every cycle the counters equal their definitions
/// applied to the events so far (busy, token stall, memory stall, MACs at
/// completion, bytes at acceptance, descriptors, beats, cycles).
#[test]
fn p1_counters_per_cycle() {
    let mut slow = cfg(4, 8, 16, 11);
    slow.dram.bytes_per_cycle = 12;
    slow.cmdproc.queue_depth = 2;
    let mut tight = cfg(8, 4, 32, 5);
    tight.dram.max_outstanding = 2;
    for (cfg, skip) in [(slow, true), (tight, false), (cfg(16, 16, 64, 20), true)] {
        let prog = [
            load(dma(0, 0x10003, 3, 40)).with_deps(deps::SIGNAL_NEXT),
            load(dma(0x200, 0x11000, 2, 64)),
            matmul(3, 4, 4).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT | deps::SIGNAL_PREV),
            maxd(50),
            load(dma(0x400, 0x12000, 1, 100)).with_deps(deps::WAIT_NEXT),
            store(dma(0x800, 0x20001, 2, 33)).with_deps(deps::WAIT_PREV | deps::SIGNAL_PREV),
            store(dma(0x900, 0x21000, 1, 16)),
            act(2, 5).with_deps(deps::WAIT_NEXT),
            matmul(2, 1, 1),
            fence(1),
        ];
        let mut s = Sim::new(&cfg);
        s.dev.set_skip(skip);
        run::start(&mut s.dev, &mut s.mem, RING, &prog).expect("start");
        let mut seen = vec![];
        while s.rd(regs::FENCE_SEQ) != 1 {
            let c = s.cycle();
            s.run_until(c + 1);
            seen.push((c, run::read_counters(&mut s.dev)));
            assert!(c < 20_000, "program did not finish");
        }
        let ev = s.ev();
        assert!(seen
            .iter()
            .any(|(_, k)| k.load_mem_stall + k.store_mem_stall > 0));
        assert!(seen.iter().any(|(_, k)| k.compute_token_stall > 0));
        for (c, got) in seen {
            assert_eq!(got, p1_expected(&ev, &cfg, c), "counters after cycle {c}");
        }
    }
}

// ---------------------------------------------------------------------------
// S — Skipping
// ---------------------------------------------------------------------------

/// Everything observable after a scenario.
#[derive(Debug, PartialEq)]
struct Snapshot {
    events: Log,
    counters: Counters,
    regs: Vec<u32>,
    mem: Vec<u8>,
    spad: Vec<u8>,
    acc: Vec<u8>,
    tokens: [u32; 4],
    cycle: u64,
}

fn snapshot(s: &mut Sim) -> Snapshot {
    let regs = STATE_REGS.iter().map(|&r| s.rd(r)).collect();
    Snapshot {
        events: s.ev(),
        counters: s.dev.counters(),
        regs,
        mem: s.mem.bytes().to_vec(),
        spad: s.dev.local().spad.clone(),
        acc: s.dev.local().acc.clone(),
        tokens: s.dev.tokens(),
        cycle: s.cycle(),
    }
}

type Scenario = (&'static str, NpuConfig, fn(&mut Sim));

fn scenarios() -> Vec<Scenario> {
    let mut slow = cfg(16, 16, 32, 64);
    slow.dram.bytes_per_cycle = 12;
    slow.dram.max_outstanding = 3;
    let mut q1 = cfg(4, 8, 8, 20);
    q1.cmdproc.queue_depth = 1;
    q1.cmdproc.fetch_depth = 2;
    let mut overflow = cfg(8, 16, 32, 4);
    overflow.cmdproc.fetch_depth = 64;
    vec![
        ("load-matmul-store", slow, |s| {
            s.fill(0x10000, 0x2000, 1);
            let prog = [
                load(dma(0, 0x10000, 4, 16)),
                load(dma(256, 0x11000, 16, 16)).with_deps(deps::SIGNAL_NEXT),
                matmul(4, 16, 16).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT),
                store(Dma {
                    acc: true,
                    ..dma(0, 0x30000, 4, 64)
                })
                .with_deps(deps::WAIT_PREV),
                fence_wb(7, 0x40000),
            ];
            let _ = s.program(&prog);
        }),
        ("queue-depth-1 chain", q1, |s| {
            let mut prog = vec![];
            for i in 0..6u32 {
                prog.push(
                    load(dma(0, 0x10000 + 0x100 * i as u64, 2, 24)).with_deps(deps::SIGNAL_NEXT),
                );
                prog.push(maxd(8 * (i + 1)).with_deps(deps::WAIT_PREV | deps::SIGNAL_NEXT));
                prog.push(
                    store(dma(0, 0x20000 + 0x100 * i as u64, 1, 40)).with_deps(deps::WAIT_PREV),
                );
            }
            prog.push(fence(1));
            let _ = s.program(&prog);
        }),
        ("doorbells and idle gaps", cfg(8, 8, 16, 30), |s| {
            s.ring(
                &[
                    maxd(100),
                    fence(1),
                    load(dma(0, 0x10000, 2, 48)),
                    fence_wb(2, 0x5000),
                ],
                8,
            );
            s.run_until(500);
            s.doorbell(2);
            let _ = s.wait();
            s.run_until(s.cycle() + 777);
            s.doorbell(4);
            let _ = s.wait();
        }),
        ("watchdog", cfg(8, 8, 32, 9), |s| {
            s.wr(regs::WATCHDOG, 250);
            s.ring(
                &[
                    load(dma(0, 0x10000, 4, 64)),
                    maxd(16).with_deps(deps::WAIT_PREV),
                ],
                4,
            );
            s.doorbell(2);
            s.run_until(150);
            s.wr(regs::WATCHDOG, 300);
            let _ = s.wait();
        }),
        ("deadlock", cfg(8, 8, 32, 9), |s| {
            let _ = s.program(&[maxd(16), maxd(16).with_deps(deps::WAIT_NEXT), fence(1)]);
            s.run_until(s.cycle() + 300); // halted: time passes, nothing happens
        }),
        ("translation and fault", cfg(8, 8, 32, 21), |s| {
            let mut table = xlat_table(true);
            table[6] = pte(xlat_phys(6), false);
            s.translation(&table);
            let _ = s.program(&[
                load(dma(0, 0x0FF0, 3, 80)),
                store(dma(0, 0x3FF8, 2, 40)),
                fence_wb(3, 0x2000),
                store(dma(0, 0x6000, 1, 8)),
                fence(4),
            ]);
        }),
        ("token overflow", overflow, |s| {
            let mut prog = vec![maxd(16).with_deps(deps::SIGNAL_NEXT); 256];
            prog.push(fence(1));
            let _ = s.program(&prog);
        }),
    ]
}

/// S1: skipping quiet cycles gives the same events, counters, registers and
/// memories as stepping every cycle.
#[test]
fn s1_skip_equals_stepping() {
    for (name, cfg, scenario) in scenarios() {
        let run = |skip: bool| {
            let mut s = Sim::new(&cfg);
            s.dev.set_skip(skip);
            scenario(&mut s);
            snapshot(&mut s)
        };
        let stepped = run(false);
        let skipped = run(true);
        assert!(!stepped.events.is_empty(), "{name}");
        assert_eq!(
            skipped.events.len(),
            stepped.events.len(),
            "{name}: event count"
        );
        for (i, (a, b)) in skipped.events.iter().zip(&stepped.events).enumerate() {
            assert_eq!(a, b, "{name}: event {i}");
        }
        assert_eq!(skipped, stepped, "{name}");
    }
}
