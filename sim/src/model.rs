//! `ModelDevice`: the cycle-accurate model, the executable form of docs/timing.md.
//!
//! ```text
//!   MMIO ──> registers ──> command processor ──fetch──┐
//!                          │ dispatch (in order)       │
//!            ┌─────────────┼──────────────┐            │
//!            v             v              v            │
//!        load queue   compute queue   store queue      │
//!            │             │              │            │
//!          LOAD ──tok──> COMPUTE ──tok──> STORE        │
//!            │   <──tok──  (MAC, ACT) <──tok──│         │
//!            │        spad / acc memories     │        │
//!            └──────────> memory port <───────┴────────┘
//!                 (fixed priority cmd > store > load, DRAM timing)
//! ```
//!
//! Every cycle is evaluated in two phases: all decisions (requests, grant, issues,
//! completions, dispatch, faults) are made from the state at the start of the
//! cycle; then they are applied together. So nothing one block does in cycle `t`
//! is seen by another before `t + 1`. Cycles in which nothing can happen are
//! skipped in one step, with the same counters as stepping them one by one.

use std::collections::VecDeque;

use npukit_abi::desc::Op;
use npukit_abi::{regs, Descriptor, ErrorCode, Limits, Opcode, Unit, DESC_BYTES};

use crate::act;
use crate::cmdproc::{CmdProc, Fault, FenceOp, FencePhase, FetchEntry};
use crate::config::NpuConfig;
use crate::device::{Device, RunExit};
use crate::dma::{DmaJob, DmaUnit};
use crate::dram::DramTiming;
use crate::event::{signals, waits, Engine, Event, EventSink, MemKind, NullSink, TokenQueue};
use crate::mac;
use crate::mem::DeviceMemory;
use crate::spad::LocalMem;
use crate::xlat::{Xlat, XlatRegs};

/// Largest value of a dependency-token counter.
pub const TOKEN_MAX: u32 = 255;
const MAX_BEAT: usize = 64;

/// Performance counters (`PERF_*` registers), with units in their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub cycles: u64,
    pub load_busy: u64,
    pub load_token_stall: u64,
    pub load_mem_stall: u64,
    pub compute_busy: u64,
    pub compute_token_stall: u64,
    pub store_busy: u64,
    pub store_token_stall: u64,
    pub store_mem_stall: u64,
    pub macs: u64,
    pub dma_rd_bytes: u64,
    pub dma_wr_bytes: u64,
    pub desc_done: u64,
    pub mem_beats: u64,
}

impl Counters {
    /// The counter behind a `PERF_*` register offset (low word): the one
    /// mapping between registers and fields.
    pub fn field_mut(&mut self, off: u32) -> Option<&mut u64> {
        Some(match off {
            regs::PERF_CYCLES => &mut self.cycles,
            regs::PERF_LOAD_BUSY => &mut self.load_busy,
            regs::PERF_LOAD_TOKEN_STALL => &mut self.load_token_stall,
            regs::PERF_LOAD_MEM_STALL => &mut self.load_mem_stall,
            regs::PERF_COMPUTE_BUSY => &mut self.compute_busy,
            regs::PERF_COMPUTE_TOKEN_STALL => &mut self.compute_token_stall,
            regs::PERF_STORE_BUSY => &mut self.store_busy,
            regs::PERF_STORE_TOKEN_STALL => &mut self.store_token_stall,
            regs::PERF_STORE_MEM_STALL => &mut self.store_mem_stall,
            regs::PERF_MACS => &mut self.macs,
            regs::PERF_DMA_RD_BYTES => &mut self.dma_rd_bytes,
            regs::PERF_DMA_WR_BYTES => &mut self.dma_wr_bytes,
            regs::PERF_DESC_DONE => &mut self.desc_done,
            regs::PERF_MEM_BEATS => &mut self.mem_beats,
            _ => return None,
        })
    }

    /// The value of the counter behind a `PERF_*` register offset (low word).
    pub fn by_offset(&self, off: u32) -> Option<u64> {
        let mut c = *self;
        c.field_mut(off).map(|v| *v)
    }

    /// Every counter with its register name, for reports.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        regs::PERF_COUNTERS
            .iter()
            .filter_map(|&o| Some((regs::by_offset(o)?.name, self.by_offset(o)?)))
            .collect()
    }
}

/// The software-visible registers that are plain storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Regs {
    control: u32,
    irq_status: u32,
    irq_mask: u32,
    ring_base: u64,
    ring_size: u32,
    tail: u32,
    xlat: XlatRegs,
    watchdog: u32,
    fence_seq: u32,
    error: Option<Fault>,
}

/// A compute-unit descriptor in execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ComputeJob {
    index: u32,
    desc: Descriptor,
    done_at: u64,
}

/// The weight loader of a double-buffered weight-stationary array (rule C1b).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct WeightLoader {
    /// The cycle in which the load for the current compute-queue head started.
    head_start: Option<u64>,
    /// The cycle in which the latest load started.
    last_start: Option<u64>,
}

/// What a memory-port request carries until its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    Fetch {
        data: [u8; DESC_BYTES],
    },
    Pte {
        vpn: u64,
        pte: u64,
    },
    Load {
        local: u32,
        acc: bool,
        len: u32,
        data: [u8; MAX_BEAT],
    },
    WriteAck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct InFlight {
    who: Engine,
    kind: MemKind,
    addr: u64,
    payload: Payload,
}

/// A request offered on the memory port in one cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    /// The next fetch beat of the command processor.
    Fetch { addr: u64, new_entry: bool },
    /// A translation-table read for `who`.
    Pte { who: Engine, addr: u64, vpn: u64 },
    /// A LOAD or STORE beat at physical address `pa`.
    Data {
        who: Engine,
        pa: u64,
        len: u32,
        local: u32,
    },
    /// The FENCE writeback at physical address `pa`.
    FenceWrite { pa: u64 },
}

impl Req {
    fn who(&self) -> Engine {
        match *self {
            Req::Fetch { .. } | Req::FenceWrite { .. } => Engine::Cmd,
            Req::Pte { who, .. } | Req::Data { who, .. } => who,
        }
    }
}

/// The cycle-accurate NPU model.
#[derive(Debug, Clone)]
pub struct ModelDevice<S: EventSink = NullSink> {
    cfg: NpuConfig,
    limits: Limits,
    beat: u64,
    sink: S,
    now: u64,
    reset_cycle: u64,
    regs: Regs,
    cp: CmdProc,
    queues: [VecDeque<(u32, Descriptor)>; 3],
    load: DmaUnit,
    store: DmaUnit,
    compute: Option<ComputeJob>,
    wload: WeightLoader,
    tokens: [u32; 4],
    dram: DramTiming<InFlight>,
    local: LocalMem,
    counters: Counters,
    last_progress: u64,
    skip: bool,
    /// MATMUL's widened weights, kept to save an allocation per MATMUL.
    mac_buf: mac::MatmulBuf,
}

impl ModelDevice<NullSink> {
    /// A model with no event sink. `cfg` must be valid.
    pub fn new(cfg: &NpuConfig) -> Self {
        Self::with_sink(cfg, NullSink)
    }
}

fn unit_index(u: Unit) -> usize {
    u as usize
}

/// What the cycles after a [`ModelDevice::tick`] are known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Anything may happen: plan the next cycle.
    Busy,
    /// Quiet until something is due.
    Quiet,
    /// The same requests offered and denied (these units' memory stalls)
    /// until something is due or the port could accept.
    Denied([bool; 3]),
    /// This DMA unit is the only requester and nothing else happens until
    /// something is due: its beats can be granted one per cycle without
    /// planning the whole device.
    Stream(Unit),
}

/// Everything decided for one cycle, before it is applied.
#[derive(Debug, Default)]
struct Plan {
    grant: Option<Req>,
    /// Some requester offered a request (granted or not).
    offered: bool,
    /// Units that asked for the port and were not granted.
    denied: [bool; 3],
    complete: [bool; 3],
    issue: [bool; 3],
    token_stall: [bool; 3],
    dispatch: bool,
    fence_drained: bool,
    /// The weight loader starts loading the compute-queue head (C1b).
    wload: bool,
    /// The only request offered was this DMA unit's data beat.
    lone: Option<Unit>,
}

impl Plan {
    /// Requests were offered and all denied, and nothing else happens in the
    /// cycle (a response may still be delivered in it).
    fn denied_only(&self) -> bool {
        self.offered && self.grant.is_none() && self.nothing_but_requests()
    }

    /// Nothing but requests (granted or denied) happens in the cycle.
    fn nothing_but_requests(&self) -> bool {
        !self.dispatch
            && !self.fence_drained
            && self.complete == [false; 3]
            && self.issue == [false; 3]
            && !self.wload
    }

    /// Nothing happens in the cycle (a response may still be delivered in it).
    fn quiet(&self) -> bool {
        !self.offered
            && !self.dispatch
            && !self.fence_drained
            && self.complete == [false; 3]
            && self.issue == [false; 3]
            && !self.wload
    }
}

impl<S: EventSink> ModelDevice<S> {
    /// A model that reports every event to `sink`. `cfg` must be valid.
    pub fn with_sink(cfg: &NpuConfig, sink: S) -> Self {
        let limits = cfg.limits();
        ModelDevice {
            limits,
            beat: cfg.dma.beat_bytes as u64,
            sink,
            now: 0,
            reset_cycle: 0,
            regs: Regs::default(),
            cp: CmdProc::default(),
            queues: Default::default(),
            load: DmaUnit::default(),
            store: DmaUnit::default(),
            compute: None,
            wload: WeightLoader::default(),
            tokens: [0; 4],
            dram: DramTiming::new(&cfg.dram, cfg.dma.beat_bytes),
            local: LocalMem::new(cfg.memory.spad_bytes, cfg.memory.acc_bytes),
            counters: Counters::default(),
            last_progress: 0,
            skip: true,
            mac_buf: mac::MatmulBuf::default(),
            cfg: cfg.clone(),
        }
    }

    pub fn config(&self) -> &NpuConfig {
        &self.cfg
    }
    pub fn sink(&self) -> &S {
        &self.sink
    }
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }
    pub fn into_sink(self) -> S {
        self.sink
    }
    /// The performance counters.
    pub fn counters(&self) -> Counters {
        Counters {
            cycles: self.now - self.reset_cycle,
            ..self.counters
        }
    }
    /// The scratchpad and accumulator contents.
    pub fn local(&self) -> &LocalMem {
        &self.local
    }
    /// The latched error, if the device halted.
    pub fn error(&self) -> Option<Fault> {
        self.regs.error
    }
    /// Turns cycle skipping off (every cycle stepped); for testing the skip.
    pub fn set_skip(&mut self, on: bool) {
        self.skip = on;
    }
    /// The token counters, in [`TokenQueue::ALL`] order.
    pub fn tokens(&self) -> [u32; 4] {
        self.tokens
    }

    fn emit(&mut self, cycle: u64, f: impl FnOnce() -> Event) {
        if S::ENABLED {
            self.sink.event(cycle, f());
        }
    }

    fn running(&self) -> bool {
        self.regs.control & regs::CONTROL_RUN != 0 && self.regs.error.is_none()
    }

    fn dma(&self, u: Unit) -> &DmaUnit {
        if u == Unit::Load {
            &self.load
        } else {
            &self.store
        }
    }

    fn dma_mut(&mut self, u: Unit) -> &mut DmaUnit {
        if u == Unit::Load {
            &mut self.load
        } else {
            &mut self.store
        }
    }

    fn unit_active(&self, u: Unit) -> bool {
        match u {
            Unit::Compute => self.compute.is_some(),
            _ => self.dma(u).job.is_some(),
        }
    }

    /// Whether work is pending or executing (`STATUS.BUSY`).
    fn busy(&self) -> bool {
        if self.regs.error.is_some() {
            return false;
        }
        (self.running() && self.cp.fetch_ptr != self.regs.tail)
            || !self.cp.fifo.is_empty()
            || self.cp.fence.is_some()
            || self.queues.iter().any(|q| !q.is_empty())
            || Unit::ALL.iter().any(|&u| self.unit_active(u))
            || self.dram.outstanding() > 0
    }

    fn irq_line(&self) -> bool {
        self.regs.irq_status & self.regs.irq_mask != 0
    }

    fn raise_irq(&mut self, cycle: u64, bits: u32) {
        self.regs.irq_status |= bits;
        let status = self.regs.irq_status;
        self.emit(cycle, || Event::Irq { status });
    }

    fn halt(&mut self, cycle: u64, f: Fault) {
        self.regs.error = Some(f);
        self.dram.clear();
        self.emit(cycle, || Event::Error {
            code: f.code,
            index: f.index,
            addr: f.addr,
        });
        self.raise_irq(cycle, regs::IRQ_ERROR);
    }

    fn reset(&mut self) {
        self.regs = Regs::default();
        self.cp = CmdProc::default();
        self.queues = Default::default();
        self.load = DmaUnit::default();
        self.store = DmaUnit::default();
        self.compute = None;
        self.wload = WeightLoader::default();
        self.tokens = [0; 4];
        self.dram.clear();
        self.local = LocalMem::new(self.cfg.memory.spad_bytes, self.cfg.memory.acc_bytes);
        self.counters = Counters::default();
        self.reset_cycle = self.now;
        self.last_progress = self.now;
    }

    /// Programming the ring (base or size, while stopped) starts it afresh.
    /// Descriptors already fetched but not dispatched are dropped with it.
    fn reset_ring_pointers(&mut self) {
        self.cp.head = 0;
        self.cp.fetch_ptr = 0;
        self.cp.fifo.clear();
        self.regs.tail = 0;
    }

    fn flush_tlbs(&mut self) {
        self.cp.tlb.flush();
        self.load.tlb.flush();
        self.store.tlb.flush();
    }

    // ---- per-cycle decisions (from the state at the start of the cycle) ----

    fn tokens_ready(&self, unit: Unit, d: u8) -> bool {
        waits(unit, d).all(|q| self.tokens[q as usize] > 0)
    }

    /// Whether `unit` frees up in this cycle (its job completes now).
    fn completes_now(&self, unit: Unit) -> bool {
        match unit {
            Unit::Compute => self.compute.is_some_and(|j| j.done_at == self.now),
            _ => self
                .dma(unit)
                .job
                .as_ref()
                .is_some_and(|j| j.issued_all && j.outstanding == 0),
        }
    }

    /// Whether `unit` can take its queue head this cycle (after a completion now).
    fn can_issue(&self, unit: Unit) -> bool {
        let free = !self.unit_active(unit) || self.completes_now(unit);
        free && self.queues[unit_index(unit)]
            .front()
            .is_some_and(|(_, d)| self.tokens_ready(unit, d.deps))
    }

    /// Whether the weight loader starts a load for the compute-queue head in
    /// this cycle (rule C1b; never without weight double-buffering).
    fn wload_starts(&self) -> bool {
        if !self.cfg.array.weight_double_buffer || self.wload.head_start.is_some() {
            return false;
        }
        let r = self.cfg.array.rows as u64;
        if self.wload.last_start.is_some_and(|q| q + r > self.now) {
            return false;
        }
        let head_ready = self.queues[unit_index(Unit::Compute)]
            .front()
            .is_some_and(|(_, d)| {
                matches!(d.op, Op::Matmul(_)) && self.tokens_ready(Unit::Compute, d.deps)
            });
        let unit_ok = match &self.compute {
            None => true,
            Some(j) => matches!(j.desc.op, Op::Matmul(_)) || j.done_at == self.now,
        };
        head_ready && unit_ok
    }

    fn drained(&self) -> bool {
        self.queues.iter().all(|q| q.is_empty()) && Unit::ALL.iter().all(|&u| !self.unit_active(u))
    }

    /// The command processor's request this cycle.
    fn cp_request(&self, mem_size: u64) -> Result<Option<Req>, Fault> {
        // A FENCE offering its writeback (or the translation read before it)
        // takes the command processor's port slot; in every other cycle,
        // including while it drains or waits for a response, fetching goes on.
        if let Some(f) = self
            .cp
            .fence
            .as_ref()
            .filter(|f| f.phase == FencePhase::Write)
        {
            let va = f.writeback.unwrap_or(0);
            let fault = |code, addr| Fault {
                code,
                index: f.index,
                addr,
            };
            match self.cp.tlb.translate(&self.regs.xlat, va, true) {
                Xlat::Phys(pa) if beyond(pa, 4, mem_size) => {
                    return Err(fault(ErrorCode::AddrRange, pa))
                }
                Xlat::Phys(pa) => return Ok(Some(Req::FenceWrite { pa })),
                Xlat::ReadPte { pte_addr, vpn } => {
                    return self.pte_request(Engine::Cmd, pte_addr, vpn, f.index, mem_size)
                }
                Xlat::Wait => {}
                Xlat::Fault(code, addr) => return Err(fault(code, addr)),
            }
        }
        if !self.running() {
            return Ok(None);
        }
        let chunk = FetchEntry::chunk(self.beat);
        if let Some(last) = self.cp.fifo.back() {
            if last.beats_issued < last.beats_total {
                let addr = last.addr + last.beats_issued as u64 * chunk;
                return Ok(Some(Req::Fetch {
                    addr,
                    new_entry: false,
                }));
            }
        }
        if self.cp.fetch_ptr == self.regs.tail
            || self.cp.fifo.len() >= self.cfg.cmdproc.fetch_depth as usize
        {
            return Ok(None);
        }
        let addr = self
            .regs
            .ring_base
            .wrapping_add(self.cp.fetch_ptr as u64 * DESC_BYTES as u64);
        if beyond(addr, DESC_BYTES as u64, mem_size) {
            return Err(Fault {
                code: ErrorCode::AddrRange,
                index: self.cp.fetch_ptr,
                addr,
            });
        }
        Ok(Some(Req::Fetch {
            addr,
            new_entry: true,
        }))
    }

    fn pte_request(
        &self,
        who: Engine,
        addr: u64,
        vpn: u64,
        index: u32,
        mem_size: u64,
    ) -> Result<Option<Req>, Fault> {
        if beyond(addr, 8, mem_size) {
            return Err(Fault {
                code: ErrorCode::AddrRange,
                index,
                addr,
            });
        }
        Ok(Some(Req::Pte { who, addr, vpn }))
    }

    /// A DMA unit's request this cycle.
    fn dma_request(&self, unit: Unit, mem_size: u64) -> Result<Option<Req>, Fault> {
        let u = self.dma(unit);
        let Some(job) = &u.job else { return Ok(None) };
        if job.issued_all || self.completes_now(unit) {
            return Ok(None);
        }
        let who = Engine::from(unit);
        let b = job.next_beat(self.beat);
        match u.tlb.translate(&self.regs.xlat, b.va, unit == Unit::Store) {
            Xlat::Phys(pa) => {
                if beyond(pa, b.len as u64, mem_size) {
                    return Err(Fault {
                        code: ErrorCode::AddrRange,
                        index: job.index,
                        addr: pa,
                    });
                }
                Ok(Some(Req::Data {
                    who,
                    pa,
                    len: b.len,
                    local: b.local,
                }))
            }
            Xlat::ReadPte { pte_addr, vpn } => {
                self.pte_request(who, pte_addr, vpn, job.index, mem_size)
            }
            Xlat::Wait => Ok(None),
            Xlat::Fault(code, addr) => Err(Fault {
                code,
                index: job.index,
                addr,
            }),
        }
    }

    /// A decode fault at the head of the fetch buffer, or whether it dispatches now.
    fn dispatch_decision(&self) -> Result<bool, Fault> {
        if self.cp.fence.is_some() {
            return Ok(false);
        }
        let Some(e) = self.cp.fifo.front() else {
            return Ok(false);
        };
        match &e.decoded {
            None => Ok(false),
            Some(Err(f)) => Err(*f),
            Some(Ok(d)) => Ok(match d.opcode().unit() {
                None => true,
                Some(u) => self.queues[unit_index(u)].len() < self.cfg.cmdproc.queue_depth as usize,
            }),
        }
    }

    /// Every unit with work waits for a token no one can send, and the command
    /// processor cannot dispatch anything that would send one.
    /// `responding`: a response is delivered in this cycle (it was in flight at
    /// the start of the cycle).
    fn deadlocked(&self, dispatch: bool, responding: bool) -> Option<Fault> {
        if dispatch
            || responding
            || self.dram.outstanding() > 0
            || Unit::ALL.iter().any(|&u| self.unit_active(u))
        {
            return None;
        }
        let cp_blocked = match (&self.cp.fence, self.cp.fifo.front()) {
            (Some(f), _) => f.phase == FencePhase::Drain,
            (None, Some(e)) => matches!(e.decoded, Some(Ok(_))),
            (None, None) => false,
        };
        if !cp_blocked {
            return None;
        }
        let mut first = None;
        for u in Unit::ALL {
            if let Some((index, d)) = self.queues[unit_index(u)].front() {
                if self.tokens_ready(u, d.deps) {
                    return None;
                }
                first = first.or(Some(*index));
            }
        }
        first.map(|index| Fault {
            code: ErrorCode::Deadlock,
            index,
            addr: 0,
        })
    }

    fn watchdog_deadline(&self) -> Option<u64> {
        (self.regs.watchdog != 0 && self.busy())
            .then(|| self.last_progress + self.regs.watchdog as u64)
    }

    fn plan(&self, mem_size: u64, responding: bool) -> Result<Plan, Fault> {
        let mut p = Plan::default();
        // Faults, in priority order: command processor, store, load, deadlock, watchdog.
        let cp_req = self.cp_request(mem_size)?;
        p.dispatch = self.dispatch_decision()?;
        let store_req = self.dma_request(Unit::Store, mem_size)?;
        let load_req = self.dma_request(Unit::Load, mem_size)?;
        if let Some(f) = self.deadlocked(p.dispatch, responding) {
            return Err(f);
        }
        if self.watchdog_deadline().is_some_and(|d| self.now >= d) {
            let index = self.cp.head;
            return Err(Fault {
                code: ErrorCode::Watchdog,
                index,
                addr: 0,
            });
        }
        let accept = self.dram.can_accept(self.now);
        p.offered = cp_req.is_some() || store_req.is_some() || load_req.is_some();
        p.lone = match (cp_req, store_req, load_req) {
            (None, Some(Req::Data { .. }), None) => Some(Unit::Store),
            (None, None, Some(Req::Data { .. })) => Some(Unit::Load),
            _ => None,
        };
        for r in [cp_req, store_req, load_req].into_iter().flatten() {
            if p.grant.is_none() && accept {
                p.grant = Some(r);
            } else if let Some(u) = r.who().unit() {
                p.denied[unit_index(u)] = true;
            }
        }
        for u in Unit::ALL {
            let i = unit_index(u);
            p.complete[i] = self.completes_now(u);
            p.issue[i] = self.can_issue(u);
            let free = !self.unit_active(u) || p.complete[i];
            p.token_stall[i] = free && !p.issue[i] && !self.queues[i].is_empty();
        }
        p.fence_drained =
            self.cp.fence.is_some_and(|f| f.phase == FencePhase::Drain) && self.drained();
        p.wload = self.wload_starts();
        // Token overflow: a push onto a full counter.
        for u in Unit::ALL {
            if !p.complete[unit_index(u)] {
                continue;
            }
            let (index, d) = self.job_of(u);
            for q in signals(u, d) {
                let pops = u8::from(self.pops_now(&p, q));
                if self.tokens[q as usize] - pops as u32 >= TOKEN_MAX {
                    return Err(Fault {
                        code: ErrorCode::TokenOverflow,
                        index,
                        addr: 0,
                    });
                }
            }
        }
        Ok(p)
    }

    /// (index, dependency flags) of the job a unit is executing.
    fn job_of(&self, u: Unit) -> (u32, u8) {
        match u {
            Unit::Compute => self.compute.map_or((0, 0), |j| (j.index, j.desc.deps)),
            _ => self
                .dma(u)
                .job
                .as_ref()
                .map_or((0, 0), |j| (j.index, j.deps)),
        }
    }

    /// Whether the plan takes a token from `q` this cycle.
    fn pops_now(&self, p: &Plan, q: TokenQueue) -> bool {
        Unit::ALL.iter().any(|&u| {
            p.issue[unit_index(u)]
                && self.queues[unit_index(u)]
                    .front()
                    .is_some_and(|(_, d)| waits(u, d.deps).any(|w| w == q))
        })
    }

    // ---- applying a cycle ----

    /// Simulates one cycle. Returns what the following cycles are when the
    /// cycle left the state every decision depends on as it was (no response,
    /// or an inert one): quiet (S1: no request, issue, completion, dispatch or
    /// fault) up to the next cycle something is due ([`Self::quiet_until`]), or
    /// denied (the same requests offered and refused, nothing else) up to that
    /// cycle or the first in which the port could accept.
    fn tick(&mut self, mem: &mut dyn DeviceMemory) -> Next {
        let t = self.now;
        if self.regs.error.is_some() {
            // Halted: frozen until reset; time passes, nothing counts.
            self.now += 1;
            return Next::Busy;
        }
        let resp = self.dram.deliver(t);
        let plan = match self.plan(mem.size(), resp.is_some()) {
            Ok(p) => p,
            Err(f) => {
                self.halt(t, f);
                self.now += 1;
                return Next::Busy;
            }
        };
        if self.skip && plan.quiet() {
            // Only the response, if any, changes anything (and the counters).
            let inert = resp.is_none_or(|r| self.apply_response(t, r));
            self.skip_to(t + 1);
            return if inert { Next::Quiet } else { Next::Busy };
        }
        if self.skip && plan.denied_only() {
            // The response, if any, and the counters (with the memory stalls).
            let inert = resp.is_none_or(|r| self.apply_response(t, r));
            self.skip_to(t + 1);
            self.counters.load_mem_stall += plan.denied[0] as u64;
            self.counters.store_mem_stall += plan.denied[2] as u64;
            // The next cycles offer the same requests; with a request in
            // flight or a unit executing, nothing but a response, a completion
            // or the port's credit can change that (no deadlock either, E1).
            let live =
                self.dram.outstanding() > 0 || Unit::ALL.iter().any(|&u| self.unit_active(u));
            return if inert && live {
                Next::Denied(plan.denied)
            } else {
                Next::Busy
            };
        }
        if let Some(r) = plan.grant {
            self.apply_grant(t, r, mem);
        }
        let inert = resp.is_none_or(|r| self.apply_response(t, r));
        if plan.wload {
            self.wload.head_start = Some(t);
            self.wload.last_start = Some(t);
        }
        let mut pushes: Vec<TokenQueue> = Vec::new();
        for u in Unit::ALL {
            if plan.complete[unit_index(u)] {
                self.complete_unit(t, u, &mut pushes);
            }
        }
        for u in Unit::ALL {
            if plan.issue[unit_index(u)] {
                self.issue_unit(t, u);
            }
        }
        for q in pushes {
            self.tokens[q as usize] += 1;
            self.emit(t, || Event::TokenPush { queue: q });
        }
        if plan.dispatch {
            self.dispatch(t);
        }
        if plan.fence_drained {
            self.fence_drained(t);
        }
        // Counters: the unit state after this cycle's issue and completion.
        let c = &mut self.counters;
        let busy = [
            self.load.job.is_some(),
            self.compute.is_some(),
            self.store.job.is_some(),
        ];
        c.load_busy += busy[0] as u64;
        c.compute_busy += busy[1] as u64;
        c.store_busy += busy[2] as u64;
        c.load_token_stall += plan.token_stall[0] as u64;
        c.compute_token_stall += plan.token_stall[1] as u64;
        c.store_token_stall += plan.token_stall[2] as u64;
        c.load_mem_stall += plan.denied[0] as u64;
        c.store_mem_stall += plan.denied[2] as u64;
        self.now += 1;
        // A lone DMA unit's granted beat with nothing else happening: the
        // cycles after it are that unit's request stream ([`Self::stream`]).
        match plan.lone {
            Some(u)
                if self.skip && inert && plan.grant.is_some() && plan.nothing_but_requests() =>
            {
                Next::Stream(u)
            }
            _ => Next::Busy,
        }
    }

    fn apply_grant(&mut self, t: u64, r: Req, mem: &mut dyn DeviceMemory) {
        let beat = self.beat;
        self.counters.mem_beats += 1;
        let (who, kind, addr, payload) = match r {
            Req::Fetch { addr, new_entry } => {
                let chunk = FetchEntry::chunk(beat);
                if new_entry {
                    let index = self.cp.fetch_ptr;
                    self.cp.fifo.push_back(FetchEntry {
                        index,
                        addr,
                        beats_total: (DESC_BYTES as u64 / chunk) as u8,
                        beats_issued: 0,
                        beats_arrived: 0,
                        bytes: [0; DESC_BYTES],
                        decoded: None,
                    });
                    self.cp.fetch_ptr = (self.cp.fetch_ptr + 1) % self.regs.ring_size.max(1);
                }
                if let Some(e) = self.cp.fifo.back_mut() {
                    e.beats_issued += 1;
                }
                let mut data = [0u8; DESC_BYTES];
                mem.read(addr, &mut data[..chunk as usize]);
                (
                    Engine::Cmd,
                    MemKind::Fetch,
                    addr & !(beat - 1),
                    Payload::Fetch { data },
                )
            }
            Req::Pte { who, addr, vpn } => {
                let mut b = [0u8; 8];
                mem.read(addr, &mut b);
                self.tlb_mut(who).pending = true;
                (
                    who,
                    MemKind::Pte,
                    addr & !(beat - 1),
                    Payload::Pte {
                        vpn,
                        pte: u64::from_le_bytes(b),
                    },
                )
            }
            Req::Data {
                who,
                pa,
                len,
                local,
            } => {
                let unit = if who == Engine::Load {
                    Unit::Load
                } else {
                    Unit::Store
                };
                let b = self.dma(unit).job.as_ref().map(|j| j.next_beat(beat));
                let acc = self.dma(unit).job.as_ref().is_some_and(|j| j.d.acc);
                if let (Some(b), Some(job)) = (b, self.dma_mut(unit).job.as_mut()) {
                    job.advance(&b);
                }
                let (l, n) = (local as usize, len as usize);
                if unit == Unit::Load {
                    self.counters.dma_rd_bytes += len as u64;
                    let mut data = [0u8; MAX_BEAT];
                    mem.read(pa, &mut data[..n]);
                    (
                        who,
                        MemKind::Read,
                        pa & !(beat - 1),
                        Payload::Load {
                            local,
                            acc,
                            len,
                            data,
                        },
                    )
                } else {
                    self.counters.dma_wr_bytes += len as u64;
                    mem.write(pa, &self.local.side(acc)[l..l + n]);
                    (who, MemKind::Write, pa & !(beat - 1), Payload::WriteAck)
                }
            }
            Req::FenceWrite { pa } => {
                if let Some(f) = self.cp.fence.as_mut() {
                    f.phase = FencePhase::Ack;
                    mem.write(pa, &f.seq.to_le_bytes());
                }
                (
                    Engine::Cmd,
                    MemKind::FenceWrite,
                    pa & !(beat - 1),
                    Payload::WriteAck,
                )
            }
        };
        self.dram.accept(
            t,
            InFlight {
                who,
                kind,
                addr,
                payload,
            },
        );
        self.emit(t, || Event::MemReq { who, kind, addr });
    }

    fn tlb_mut(&mut self, who: Engine) -> &mut crate::xlat::Tlb {
        match who {
            Engine::Load => &mut self.load.tlb,
            Engine::Store => &mut self.store.tlb,
            _ => &mut self.cp.tlb,
        }
    }

    /// Delivers a response. Returns whether it is inert: whether no decision of
    /// a later cycle can differ for it (it completes no fetched descriptor, no
    /// translation, no FENCE and no DMA descriptor's last beat); only memory
    /// contents, the count in flight and a unit's outstanding count move.
    fn apply_response(&mut self, t: u64, r: InFlight) -> bool {
        let InFlight {
            who,
            kind,
            addr,
            payload,
        } = r;
        self.emit(t, || Event::MemResp { who, kind, addr });
        match payload {
            Payload::Fetch { data } => {
                let chunk = FetchEntry::chunk(self.beat) as usize;
                let limits = self.limits;
                let undecoded = self
                    .cp
                    .fifo
                    .iter_mut()
                    .find(|e| e.beats_arrived < e.beats_issued)
                    .is_some_and(|e| {
                        e.arrive(&data, chunk, &limits);
                        e.decoded.is_none()
                    });
                // With nothing left in flight the deadlock rule (E1) could
                // see something new.
                undecoded && self.dram.outstanding() > 0
            }
            Payload::Pte { vpn, pte } => {
                self.tlb_mut(who).arrive(vpn, pte);
                false
            }
            Payload::Load {
                local,
                acc,
                len,
                data,
            } => {
                let (l, n) = (local as usize, len as usize);
                self.local.side_mut(acc)[l..l + n].copy_from_slice(&data[..n]);
                self.load.job.as_mut().is_some_and(|j| {
                    j.outstanding -= 1;
                    !(j.issued_all && j.outstanding == 0)
                })
            }
            Payload::WriteAck => match who {
                Engine::Cmd => {
                    self.fence_complete(t);
                    false
                }
                _ => self.store.job.as_mut().is_some_and(|j| {
                    j.outstanding -= 1;
                    !(j.issued_all && j.outstanding == 0)
                }),
            },
        }
    }

    fn complete_unit(&mut self, t: u64, u: Unit, pushes: &mut Vec<TokenQueue>) {
        let (index, d, opcode) = match u {
            Unit::Compute => {
                let Some(job) = self.compute.take() else {
                    return;
                };
                self.execute_compute(&job.desc);
                (job.index, job.desc.deps, job.desc.opcode())
            }
            _ => {
                let Some(job) = self.dma_mut(u).job.take() else {
                    return;
                };
                let op = if u == Unit::Load {
                    Opcode::Load
                } else {
                    Opcode::Store
                };
                (job.index, job.deps, op)
            }
        };
        pushes.extend(signals(u, d));
        self.counters.desc_done += 1;
        self.last_progress = t;
        self.emit(t, || Event::Complete {
            unit: u.into(),
            index,
            opcode,
        });
    }

    fn execute_compute(&mut self, d: &Descriptor) {
        match &d.op {
            Op::Matmul(m) => {
                mac::matmul_with(&mut self.local, m, &mut self.mac_buf);
                self.counters.macs += mac::matmul_macs(m);
            }
            Op::Act(a) => act::act(&mut self.local, a),
            Op::Add(a) => act::add(&mut self.local, a),
            Op::Max(m) => act::max(&mut self.local, m),
            _ => {}
        }
    }

    /// Latency of a compute descriptor (docs/timing.md, rules C1-C3) whose
    /// weight load, if any (C1b), starts in its issue cycle.
    pub fn compute_latency(&self, d: &Descriptor) -> u64 {
        self.compute_latency_with_lead(d, 0)
    }

    /// Latency of a compute descriptor whose weight load (C1b only) started
    /// `lead` cycles before its issue.
    fn compute_latency_with_lead(&self, d: &Descriptor, lead: u64) -> u64 {
        let cols = self.cfg.array.cols;
        match &d.op {
            Op::Matmul(m) => mac::fold_latency(&self.cfg.array, m.m as u32, lead),
            Op::Act(a) => act::act_latency(cols, a),
            Op::Add(a) => act::elementwise_latency(cols, a.len),
            Op::Max(m) => act::elementwise_latency(cols, m.len),
            _ => 1,
        }
    }

    fn issue_unit(&mut self, t: u64, u: Unit) {
        let Some((index, d)) = self.queues[unit_index(u)].pop_front() else {
            return;
        };
        for q in waits(u, d.deps) {
            self.tokens[q as usize] -= 1;
            self.emit(t, || Event::TokenPop { queue: q });
        }
        match (u, d.op) {
            (Unit::Compute, _) => {
                // C1b: the head's weight load started in this cycle at the latest.
                let lead = self.wload.head_start.take().map_or(0, |p| t - p);
                let done_at = t + self.compute_latency_with_lead(&d, lead);
                self.compute = Some(ComputeJob {
                    index,
                    desc: d,
                    done_at,
                });
            }
            (_, Op::Load(dma) | Op::Store(dma)) => {
                self.dma_mut(u).job = Some(DmaJob::new(index, d.deps, dma));
            }
            _ => {}
        }
        let opcode = d.opcode();
        self.emit(t, || Event::Issue {
            unit: u.into(),
            index,
            opcode,
        });
    }

    fn dispatch(&mut self, t: u64) {
        let Some(e) = self.cp.fifo.pop_front() else {
            return;
        };
        let Some(Ok(d)) = e.decoded else { return };
        let index = e.index;
        let unit = d.opcode().unit().map_or(Engine::Cmd, Engine::from);
        self.emit(t, || Event::Dispatch {
            unit,
            index,
            desc: d,
        });
        match d.op {
            Op::Nop => {
                self.advance_head();
                self.counters.desc_done += 1;
                self.last_progress = t;
                self.emit(t, || Event::Complete {
                    unit: Engine::Cmd,
                    index,
                    opcode: Opcode::Nop,
                });
            }
            Op::Fence(f) => {
                self.cp.fence = Some(FenceOp {
                    index,
                    seq: f.seq,
                    writeback: f.writeback,
                    irq: f.irq,
                    phase: FencePhase::Drain,
                });
            }
            _ => {
                if let Some(u) = d.opcode().unit() {
                    self.queues[unit_index(u)].push_back((index, d));
                }
                self.advance_head();
            }
        }
    }

    fn advance_head(&mut self) {
        self.cp.head = (self.cp.head + 1) % self.regs.ring_size.max(1);
    }

    fn fence_drained(&mut self, t: u64) {
        let Some(f) = self.cp.fence.as_mut() else {
            return;
        };
        if f.writeback.is_some() {
            f.phase = FencePhase::Write;
        } else {
            self.fence_complete(t);
        }
    }

    fn fence_complete(&mut self, t: u64) {
        let Some(f) = self.cp.fence.take() else {
            return;
        };
        self.regs.fence_seq = f.seq;
        self.advance_head();
        self.counters.desc_done += 1;
        self.last_progress = t;
        self.emit(t, || Event::Complete {
            unit: Engine::Cmd,
            index: f.index,
            opcode: Opcode::Fence,
        });
        self.emit(t, || Event::Fence {
            index: f.index,
            seq: f.seq,
        });
        if f.irq {
            self.raise_irq(t, regs::IRQ_FENCE);
        }
    }

    // ---- skipping quiet cycles ----

    /// After a quiet cycle that changed no decision (see [`Self::tick`]): the
    /// first cycle in which something is due (a response, a compute completion,
    /// the watchdog). Every cycle before it is quiet, since nothing but time
    /// changes until then and no decision depends on time but these three (and
    /// the bandwidth credit, which matters only to a request).
    fn quiet_until(&self) -> u64 {
        let next = self.due_until();
        self.dram
            .next_due()
            .map_or(next, |d| next.min(d.max(self.now)))
    }

    /// The first cycle in which a compute completion, the watchdog or the
    /// weight loader (C1b) is due: until then, with no response and no
    /// request, no decision changes.
    fn due_until(&self) -> u64 {
        let mut next = u64::MAX;
        if let Some(j) = self.compute {
            next = next.min(j.done_at);
        }
        if let Some(d) = self.watchdog_deadline() {
            next = next.min(d);
        }
        // The weight loader frees up (C1b): a load may start then.
        if let Some(q) = self.wload.last_start {
            let free = q + self.cfg.array.rows as u64;
            if free >= self.now {
                next = next.min(free);
            }
        }
        next.max(self.now)
    }

    /// Whether delivering `r` now would be inert (see [`Self::apply_response`]),
    /// decided without delivering it.
    fn would_be_inert(&self, r: &InFlight) -> bool {
        let unfinished = |j: &Option<DmaJob>| {
            j.as_ref()
                .is_some_and(|j| !(j.issued_all && j.outstanding == 1))
        };
        match r.payload {
            Payload::Load { .. } => unfinished(&self.load.job),
            Payload::WriteAck if r.who == Engine::Store => unfinished(&self.store.job),
            Payload::Fetch { .. } => {
                self.dram.outstanding() > 1
                    && self
                        .cp
                        .fifo
                        .iter()
                        .find(|e| e.beats_arrived < e.beats_issued)
                        .is_some_and(|e| e.beats_arrived + 1 < e.beats_total)
            }
            _ => false,
        }
    }

    /// A lone DMA unit's request stream (after a tick that returned
    /// [`Next::Stream`]): while `unit` is the only requester and nothing else
    /// is due, each cycle is its beat, granted or denied by the port, and an
    /// inert response at most. Those are exactly the cycles a full plan would
    /// find (no other unit's decision can change: no completion, issue,
    /// dispatch or non-inert response happens), so they are applied without
    /// one. Returns at the first cycle that needs a full plan: a non-inert
    /// response, a compute completion, the watchdog, the weight loader, the
    /// unit's last beat granted or a beat that is not a plain data request
    /// (translation, fault).
    fn stream(&mut self, mem: &mut dyn DeviceMemory, limit: u64, unit: Unit) {
        let stop = self.due_until().min(limit);
        let size = mem.size();
        while self.now < stop {
            let t = self.now;
            if self
                .dram
                .peek_due(t)
                .is_some_and(|r| !self.would_be_inert(r))
            {
                return;
            }
            let req = match self.dma_request(unit, size) {
                Ok(Some(r @ Req::Data { .. })) => r,
                _ => return,
            };
            let resp = self.dram.deliver(t);
            let granted = self.dram.can_accept(t);
            if granted {
                self.apply_grant(t, req, mem);
            }
            if let Some(r) = resp {
                self.apply_response(t, r);
            }
            self.skip_to(t + 1);
            if !granted {
                // Denied until a response or the credit may change that.
                let mut to = stop;
                if let Some(d) = self.dram.next_due() {
                    to = to.min(d);
                }
                if let Some(a) = self.dram.next_accept(self.now) {
                    to = to.min(a);
                }
                let n = 1 + to.saturating_sub(self.now);
                if to > self.now {
                    self.skip_to(to);
                }
                match unit {
                    Unit::Load => self.counters.load_mem_stall += n,
                    _ => self.counters.store_mem_stall += n,
                }
            }
        }
    }

    /// From a quiet, unchanged state: skips to the next cycle something is due,
    /// and while that is only an inert response (no compute completion, no
    /// watchdog in that cycle), delivers it as the quiet cycle it is and goes
    /// on skipping. Stops at `limit`.
    fn skip_quiet(&mut self, limit: u64) {
        loop {
            let next = self.quiet_until().min(limit);
            if next > self.now {
                self.skip_to(next);
            }
            let t = self.now;
            if t >= limit
                || self.dram.next_due() != Some(t)
                || self.compute.is_some_and(|j| j.done_at == t)
                || self.watchdog_deadline().is_some_and(|d| d <= t)
                || self
                    .wload
                    .last_start
                    .is_some_and(|q| q + self.cfg.array.rows as u64 == t)
            {
                return;
            }
            // The plan of cycle t is quiet (the state is the quiet one), so the
            // cycle is the response alone.
            let Some(r) = self.dram.deliver(t) else {
                return;
            };
            let inert = self.apply_response(t, r);
            self.skip_to(t + 1);
            if !inert {
                return;
            }
        }
    }

    /// From a denied, unchanged state (see [`Self::tick`]): skips the cycles in
    /// which the same requests are offered and refused again, up to the next
    /// cycle something is due or the port could accept, counting each as
    /// stepping would (with a memory stall for each denied DMA unit).
    fn skip_denied(&mut self, limit: u64, denied: [bool; 3]) {
        let mut to = self.quiet_until().min(limit);
        if let Some(a) = self.dram.next_accept(self.now) {
            to = to.min(a);
        }
        if to > self.now {
            let n = to - self.now;
            self.skip_to(to);
            self.counters.load_mem_stall += n * denied[0] as u64;
            self.counters.store_mem_stall += n * denied[2] as u64;
        }
    }

    /// Advances the clock to `to` through quiet cycles, counting them as stepping would.
    fn skip_to(&mut self, to: u64) {
        let n = if self.regs.error.is_some() {
            0
        } else {
            to - self.now
        };
        let c = &mut self.counters;
        c.load_busy += n * self.load.job.is_some() as u64;
        c.compute_busy += n * self.compute.is_some() as u64;
        c.store_busy += n * self.store.job.is_some() as u64;
        c.load_token_stall += n * (self.load.job.is_none() && !self.queues[0].is_empty()) as u64;
        c.compute_token_stall += n * (self.compute.is_none() && !self.queues[1].is_empty()) as u64;
        c.store_token_stall += n * (self.store.job.is_none() && !self.queues[2].is_empty()) as u64;
        self.now = to;
    }

    // ---- registers ----

    fn ring_fault(&self) -> Option<Fault> {
        let size = self.regs.ring_size;
        let ok = size.is_power_of_two()
            && size >= 2
            && size <= self.cfg.cmdproc.max_ring
            && self.regs.ring_base.is_multiple_of(DESC_BYTES as u64)
            && self.regs.tail < size;
        (!ok).then_some(Fault {
            code: ErrorCode::BadRing,
            index: self.regs.tail,
            addr: self.regs.ring_base,
        })
    }

    fn status(&self) -> u32 {
        (if self.busy() { regs::STATUS_BUSY } else { 0 })
            | if self.regs.error.is_some() {
                regs::STATUS_HALTED
            } else {
                0
            }
    }

    fn caps(&self) -> u32 {
        self.cfg.caps()
    }
}

/// Whether `len` bytes at `addr` reach past `size` (or past the 64-bit space: the
/// hardware compares the end address in 65 bits).
fn beyond(addr: u64, len: u64, size: u64) -> bool {
    addr.checked_add(len).is_none_or(|end| end > size)
}

fn set_lo(v: &mut u64, lo: u32) {
    *v = (*v & !0xFFFF_FFFF) | lo as u64;
}
fn set_hi(v: &mut u64, hi: u32) {
    *v = (*v & 0xFFFF_FFFF) | (hi as u64) << 32;
}

impl<S: EventSink> Device for ModelDevice<S> {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        let r = &self.regs;
        let err = r.error.unwrap_or(Fault {
            code: ErrorCode::None,
            index: 0,
            addr: 0,
        });
        match offset {
            regs::ID => npukit_abi::DEVICE_ID,
            regs::VERSION => npukit_abi::abi_version(),
            regs::CAPS => self.caps(),
            regs::ARRAY_SHAPE => self.cfg.array.rows | self.cfg.array.cols << 16,
            regs::SPAD_BYTES => self.cfg.memory.spad_bytes,
            regs::ACC_BYTES => self.cfg.memory.acc_bytes,
            regs::BEAT_BYTES => self.cfg.dma.beat_bytes,
            regs::CLOCK_MHZ => self.cfg.clock.freq_mhz,
            regs::CONTROL => r.control,
            regs::STATUS => self.status(),
            regs::IRQ_STATUS => r.irq_status,
            regs::IRQ_MASK => r.irq_mask,
            regs::RING_BASE_LO => r.ring_base as u32,
            regs::RING_BASE_HI => (r.ring_base >> 32) as u32,
            regs::RING_SIZE => r.ring_size,
            regs::RING_HEAD => self.cp.head,
            regs::RING_TAIL => r.tail,
            regs::FENCE_SEQ => r.fence_seq,
            regs::ERR_CODE => err.code as u32,
            regs::ERR_DESC => err.index,
            regs::ERR_ADDR_LO => err.addr as u32,
            regs::ERR_ADDR_HI => (err.addr >> 32) as u32,
            regs::XLAT_BASE_LO => r.xlat.base as u32,
            regs::XLAT_BASE_HI => (r.xlat.base >> 32) as u32,
            regs::XLAT_PAGES => r.xlat.pages,
            regs::WATCHDOG => r.watchdog,
            regs::MAX_RING => self.cfg.cmdproc.max_ring,
            regs::QUEUE_DEPTH => self.cfg.cmdproc.queue_depth,
            _ => {
                let c = self.counters();
                if let Some(v) = c.by_offset(offset) {
                    v as u32
                } else if let Some(v) = c.by_offset(offset.wrapping_sub(4)) {
                    (v >> 32) as u32
                } else {
                    0
                }
            }
        }
    }

    fn mmio_write(&mut self, offset: u32, value: u32) {
        let t = self.now;
        let running = self.regs.control & regs::CONTROL_RUN != 0;
        match offset {
            regs::CONTROL => {
                if value & regs::CONTROL_RESET != 0 {
                    self.reset();
                    return;
                }
                let was_running = running;
                self.regs.control = value & (regs::CONTROL_RUN | regs::CONTROL_XLAT_EN);
                self.regs.xlat.enabled = value & regs::CONTROL_XLAT_EN != 0;
                self.flush_tlbs();
                if !was_running && value & regs::CONTROL_RUN != 0 && self.regs.error.is_none() {
                    self.last_progress = t;
                    if let Some(f) = self.ring_fault() {
                        self.halt(t, f);
                    }
                }
            }
            regs::IRQ_STATUS => self.regs.irq_status &= !value,
            regs::IRQ_MASK => self.regs.irq_mask = value & (regs::IRQ_FENCE | regs::IRQ_ERROR),
            regs::RING_BASE_LO if !running => {
                set_lo(&mut self.regs.ring_base, value);
                self.reset_ring_pointers();
            }
            regs::RING_BASE_HI if !running => {
                set_hi(&mut self.regs.ring_base, value);
                self.reset_ring_pointers();
            }
            regs::RING_SIZE if !running => {
                self.regs.ring_size = value;
                self.reset_ring_pointers();
            }
            regs::RING_TAIL => {
                self.regs.tail = value;
                self.last_progress = t;
                if running && value >= self.regs.ring_size && self.regs.error.is_none() {
                    let f = Fault {
                        code: ErrorCode::BadRing,
                        index: value,
                        addr: self.regs.ring_base,
                    };
                    self.halt(t, f);
                }
            }
            regs::XLAT_BASE_LO => {
                set_lo(
                    &mut self.regs.xlat.base,
                    value & !(npukit_abi::xlat::PTE_BYTES as u32 - 1),
                );
                self.flush_tlbs();
            }
            regs::XLAT_BASE_HI => {
                set_hi(&mut self.regs.xlat.base, value);
                self.flush_tlbs();
            }
            regs::XLAT_PAGES => {
                self.regs.xlat.pages = value;
                self.flush_tlbs();
            }
            regs::WATCHDOG => {
                self.regs.watchdog = value;
                self.last_progress = t;
            }
            _ => {}
        }
    }

    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        loop {
            if stop_on_irq && self.irq_line() {
                return RunExit::Irq;
            }
            if self.now >= cycle {
                return RunExit::Cycle;
            }
            if self.skip && self.regs.error.is_some() {
                // Halted: nothing happens until reset.
                self.skip_to(cycle);
                continue;
            }
            match self.tick(mem) {
                Next::Quiet => self.skip_quiet(cycle),
                Next::Denied(d) => self.skip_denied(cycle, d),
                Next::Stream(u) => self.stream(mem, cycle, u),
                Next::Busy => {}
            }
        }
    }

    fn irq_pending(&self) -> bool {
        self.irq_line()
    }

    fn cycle(&self) -> u64 {
        self.now
    }
}
