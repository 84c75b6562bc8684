//! `RtlDevice`: a Verilated RTL variant behind the [`Device`] trait.
//!
//! The harness plays the memory: each cycle it delivers the response due
//! (`DramTiming`, the same code as the model's), tells the RTL whether the port
//! can accept (`port_ready`), evaluates the cycle, and on `req_valid &&
//! port_ready` reads the beat or writes the masked bytes and schedules the
//! response with the request's tag. It rebuilds the model's [`Event`]s from
//! the event ports, with the same cycle stamps, and reports anything the RTL
//! does that the port contract (docs/rtl.md) forbids as a [`Violation`].

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::path::Path;
use std::ptr::NonNull;

use npukit_abi::{regs, Descriptor, ErrorCode, Opcode, DESC_BYTES};
use npukit_sim::dram::DramTiming;
use npukit_sim::{
    Device, DeviceMemory, Engine, Event, EventSink, MemKind, NpuConfig, NullSink, RunExit,
    TokenQueue,
};

use crate::error::RtlError;
use crate::ffi::{bytes_to_words, words_to_bytes, Api, NpuIn, NpuOut};
use crate::variant::{self, VariantInfo};

/// Something the RTL did that the port contract forbids (an RTL bug that
/// cannot be expressed as a model event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub cycle: u64,
    pub what: String,
}

/// A request in flight on the memory port.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    tag: u64,
    who: Engine,
    kind: MemKind,
    addr: u64,
    data: [u8; 64],
}

const ENGINES3: [Engine; 3] = [Engine::Load, Engine::Compute, Engine::Store];

fn who_of(v: u8) -> Option<Engine> {
    match v {
        0 => Some(Engine::Cmd),
        1 => Some(Engine::Load),
        2 => Some(Engine::Store),
        _ => None,
    }
}

fn kind_of(v: u8) -> Option<MemKind> {
    match v {
        0 => Some(MemKind::Fetch),
        1 => Some(MemKind::Pte),
        2 => Some(MemKind::Read),
        3 => Some(MemKind::Write),
        4 => Some(MemKind::FenceWrite),
        _ => None,
    }
}

/// A Verilated NPU. `S` receives the events rebuilt from the event ports.
pub struct RtlDevice<S: EventSink = NullSink> {
    api: Api,
    handle: NonNull<c_void>,
    info: &'static VariantInfo,
    cfg: NpuConfig,
    beat: u64,
    dram: DramTiming<InFlight>,
    now: u64,
    sink: S,
    input: NpuIn,
    out: NpuOut,
    irq: bool,
    /// Descriptors by ring index, from the dispatch port (to attribute token pops).
    dispatched: HashMap<u32, Descriptor>,
    violations: Vec<Violation>,
}

impl<S: EventSink> std::fmt::Debug for RtlDevice<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtlDevice")
            .field("variant", &self.info.name)
            .field("cycle", &self.now)
            .finish_non_exhaustive()
    }
}

impl RtlDevice<NullSink> {
    /// The RTL variant matching `cfg` (every field but `[dram]` and `[clock]`).
    pub fn new(cfg: &NpuConfig) -> Result<Self, RtlError> {
        Self::with_sink(cfg, NullSink)
    }
}

impl<S: EventSink> RtlDevice<S> {
    /// The variant matching `cfg`, reporting its events to `sink`.
    pub fn with_sink(cfg: &NpuConfig, sink: S) -> Result<Self, RtlError> {
        Self::build(cfg, sink, None, None)
    }

    /// A variant chosen by name (faulty variants included), with the DRAM and
    /// clock parts of `cfg`; the other fields are the variant's.
    pub fn with_variant(name: &str, cfg: &NpuConfig, sink: S) -> Result<Self, RtlError> {
        Self::build(cfg, sink, Some(name), None)
    }

    /// Like [`RtlDevice::with_sink`] (or [`RtlDevice::with_variant`] when
    /// `variant` is given), tracing every internal signal to a VCD file.
    pub fn with_vcd(
        cfg: &NpuConfig,
        variant: Option<&str>,
        sink: S,
        vcd: &Path,
    ) -> Result<Self, RtlError> {
        Self::build(cfg, sink, variant, Some(vcd))
    }

    fn build(
        cfg: &NpuConfig,
        sink: S,
        name: Option<&str>,
        vcd: Option<&Path>,
    ) -> Result<Self, RtlError> {
        cfg.validate()?;
        let (info, api) = match name {
            Some(n) => variant::by_name(n)?,
            None => variant::for_config(cfg)?,
        };
        let cfg = info.apply(cfg);
        cfg.validate()?;
        let path = vcd
            .map(|p| {
                CString::new(p.display().to_string())
                    .map_err(|_| RtlError::Create(p.display().to_string()))
            })
            .transpose()?;
        let ptr = path.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: `create` takes a NUL-terminated path or null and returns an
        // owned handle (null on failure), released in Drop.
        let raw = unsafe { (api.create)(ptr) };
        let handle = NonNull::new(raw).ok_or_else(|| {
            RtlError::Create(vcd.map(|p| p.display().to_string()).unwrap_or_default())
        })?;
        let beat = cfg.dma.beat_bytes as u64;
        Ok(RtlDevice {
            api,
            handle,
            info,
            beat,
            dram: DramTiming::new(&cfg.dram, cfg.dma.beat_bytes),
            now: 0,
            sink,
            input: NpuIn::default(),
            out: NpuOut::default(),
            irq: false,
            dispatched: HashMap::new(),
            violations: Vec::new(),
            cfg,
        })
    }

    /// The variant this device runs.
    pub fn variant(&self) -> &'static VariantInfo {
        self.info
    }
    /// The configuration (the variant's fixed fields, the caller's DRAM and clock).
    pub fn config(&self) -> &NpuConfig {
        &self.cfg
    }
    pub fn sink(&self) -> &S {
        &self.sink
    }
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }
    /// Contract violations seen so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }
    /// Takes the contract violations seen so far.
    pub fn take_violations(&mut self) -> Vec<Violation> {
        std::mem::take(&mut self.violations)
    }
    /// Flushes the VCD trace, if any, to its file.
    pub fn flush_trace(&mut self) {
        // SAFETY: the handle is live until Drop.
        unsafe { (self.api.flush)(self.handle.as_ptr()) }
    }

    fn violation(&mut self, cycle: u64, what: String) {
        if self.violations.len() < 1000 {
            self.violations.push(Violation { cycle, what });
        }
    }

    fn emit(&mut self, t: u64, e: Event) {
        if S::ENABLED {
            self.sink.event(t, e);
        }
    }

    fn opcode(&mut self, t: u64, v: u32, what: &str) -> Option<Opcode> {
        let op = Opcode::from_u8((v & 0xFF) as u8);
        if op.is_none() {
            self.violation(
                t,
                format!("{what}: opcode {:#04x} is not an opcode", v & 0xFF),
            );
        }
        op
    }

    /// Simulates one cycle.
    fn tick(&mut self, mem: &mut dyn DeviceMemory) {
        let t = self.now;
        let resp = self.dram.deliver(t);
        let ready = self.dram.can_accept(t);
        self.input.mem_size = mem.size();
        self.input.port_ready = ready as u8;
        self.input.resp_valid = resp.is_some() as u8;
        self.input.resp_tag = resp.map_or(0, |r| r.tag);
        self.input.resp_data = bytes_to_words(&resp.map_or([0; 64], |r| r.data));
        // SAFETY: the handle is live; both structs match the C layout.
        unsafe { (self.api.cycle)(self.handle.as_ptr(), &self.input, &mut self.out) };
        // SAFETY: as above.
        self.irq = unsafe { (self.api.irq)(self.handle.as_ptr()) } != 0;
        self.now += 1;
        let o = self.out;
        if o.ev_error != 0 {
            self.error_cycle(t, &o, resp.is_some());
            return;
        }
        let accepted = (o.req_valid != 0 && ready)
            .then(|| self.accept(t, &o, mem))
            .flatten();
        if let Some(r) = accepted {
            self.emit(
                t,
                Event::MemReq {
                    who: r.who,
                    kind: r.kind,
                    addr: r.addr,
                },
            );
        }
        let mut fence_done = false;
        if o.ev_resp != 0 {
            match resp {
                Some(r) => {
                    self.emit(
                        t,
                        Event::MemResp {
                            who: r.who,
                            kind: r.kind,
                            addr: r.addr,
                        },
                    );
                    if r.kind == MemKind::FenceWrite {
                        fence_done = self.cmd_done(t, &o, Opcode::Fence, true);
                    }
                }
                None => self.violation(t, "ev_resp = 1 with no response due".into()),
            }
        }
        // Completions (load, compute, store).
        for (i, unit) in ENGINES3.iter().enumerate() {
            if o.ev_done & (1 << i) != 0 {
                if let Some(opcode) = self.opcode(t, o.ev_done_opcode >> (8 * i), "ev_done_opcode")
                {
                    let index = o.ev_done_index[i];
                    self.emit(
                        t,
                        Event::Complete {
                            unit: *unit,
                            index,
                            opcode,
                        },
                    );
                }
            }
        }
        // Issues, each preceded by the token pops of its descriptor.
        let mut pops = o.ev_tok_pop;
        for (i, unit) in ENGINES3.iter().enumerate() {
            if o.ev_issue & (1 << i) == 0 {
                continue;
            }
            let index = o.ev_issue_index[i];
            if let (Some(d), Some(u)) = (self.dispatched.get(&index).copied(), unit.unit()) {
                for q in npukit_sim::event::waits(u, d.deps) {
                    if pops & (1 << q as u8) != 0 {
                        pops &= !(1 << q as u8);
                        self.emit(t, Event::TokenPop { queue: q });
                    }
                }
            }
            if let Some(opcode) = self.opcode(t, o.ev_issue_opcode >> (8 * i), "ev_issue_opcode") {
                self.emit(
                    t,
                    Event::Issue {
                        unit: *unit,
                        index,
                        opcode,
                    },
                );
            }
        }
        for q in TokenQueue::ALL {
            if pops & (1 << q as u8) != 0 {
                self.emit(t, Event::TokenPop { queue: q });
            }
        }
        for q in TokenQueue::ALL {
            if o.ev_tok_push & (1 << q as u8) != 0 {
                self.emit(t, Event::TokenPush { queue: q });
            }
        }
        if o.ev_dispatch != 0 {
            self.dispatch(t, &o);
        }
        if !fence_done && o.ev_done & 8 != 0 {
            if let Some(op) = self.opcode(t, o.ev_done_opcode >> 24, "ev_done_opcode (cmd)") {
                fence_done = self.cmd_done(t, &o, op, false);
            }
        }
        if !fence_done {
            if o.ev_fence != 0 {
                self.violation(
                    t,
                    "ev_fence = 1 without a FENCE completion on ev_done[3]".into(),
                );
            }
            self.fence_and_irq(t, &o);
        }
    }

    /// The Fence and Irq events on the event ports, in the model's order.
    fn fence_and_irq(&mut self, t: u64, o: &NpuOut) {
        if o.ev_fence != 0 {
            self.emit(
                t,
                Event::Fence {
                    index: o.ev_fence_index,
                    seq: o.ev_fence_seq,
                },
            );
        }
        if o.ev_irq != 0 {
            self.emit(
                t,
                Event::Irq {
                    status: o.ev_irq_status,
                },
            );
        }
    }

    /// A completion on the command processor's done port (NOP or FENCE), with
    /// the FENCE's Fence and Irq events. Returns whether Fence/Irq were emitted.
    fn cmd_done(&mut self, t: u64, o: &NpuOut, op: Opcode, writeback: bool) -> bool {
        // A FENCE writeback response without a completion on ev_done[3] makes
        // no event here: the event comparison shows the missing completion.
        if o.ev_done & 8 == 0 {
            return false;
        }
        let index = o.ev_done_index[3];
        let op = if writeback {
            self.opcode(t, o.ev_done_opcode >> 24, "ev_done_opcode (cmd)")
                .unwrap_or(op)
        } else {
            op
        };
        self.emit(
            t,
            Event::Complete {
                unit: Engine::Cmd,
                index,
                opcode: op,
            },
        );
        if op != Opcode::Fence {
            return false;
        }
        self.fence_and_irq(t, o);
        true
    }

    fn dispatch(&mut self, t: u64, o: &NpuOut) {
        let unit = match o.ev_dispatch_unit {
            0 => Engine::Cmd,
            1 => Engine::Load,
            2 => Engine::Compute,
            _ => Engine::Store,
        };
        let mut raw = [0u8; DESC_BYTES];
        for (chunk, w) in raw.chunks_exact_mut(4).zip(o.ev_dispatch_desc) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        let index = o.ev_dispatch_index;
        match Descriptor::decode(&raw) {
            Ok(desc) => {
                self.dispatched.insert(index, desc);
                self.emit(t, Event::Dispatch { unit, index, desc });
            }
            Err(e) => self.violation(
                t,
                format!("dispatched descriptor {index} does not decode ({e}): {raw:02x?}"),
            ),
        }
    }

    /// The fault cycle: Error then Irq; nothing else may happen (G3).
    fn error_cycle(&mut self, t: u64, o: &NpuOut, had_resp: bool) {
        let code = ErrorCode::from_u32(o.ev_err_code as u32);
        match code {
            Some(code) => self.emit(
                t,
                Event::Error {
                    code,
                    index: o.ev_err_desc,
                    addr: o.ev_err_addr,
                },
            ),
            None => self.violation(
                t,
                format!("ev_err_code {} is not an error code", o.ev_err_code),
            ),
        }
        if o.ev_irq != 0 {
            self.emit(
                t,
                Event::Irq {
                    status: o.ev_irq_status,
                },
            );
        }
        let mut also = Vec::new();
        if o.req_valid != 0 {
            also.push("req_valid");
        }
        if o.ev_resp != 0 && had_resp {
            also.push("ev_resp");
        }
        for (f, v) in [
            ("ev_dispatch", o.ev_dispatch),
            ("ev_issue", o.ev_issue),
            ("ev_done", o.ev_done),
            ("ev_tok_push", o.ev_tok_push),
            ("ev_tok_pop", o.ev_tok_pop),
            ("ev_fence", o.ev_fence),
        ] {
            if v != 0 {
                also.push(f);
            }
        }
        if !also.is_empty() {
            self.violation(
                t,
                format!(
                    "fault cycle (ev_error = 1) also shows {} (G3: nothing else happens)",
                    also.join(", ")
                ),
            );
        }
        // The model drops everything in flight when it halts.
        self.dram.clear();
    }

    /// Accepts the request on the port: memory access and response scheduling.
    fn accept(&mut self, t: u64, o: &NpuOut, mem: &mut dyn DeviceMemory) -> Option<InFlight> {
        let (Some(who), Some(kind)) = (who_of(o.req_who), kind_of(o.req_kind)) else {
            self.violation(
                t,
                format!(
                    "request with req_who = {} / req_kind = {}: out of range",
                    o.req_who, o.req_kind
                ),
            );
            return None;
        };
        let b = self.beat;
        let addr = o.req_addr;
        if !addr.is_multiple_of(b) {
            self.violation(
                t,
                format!("req_addr {addr:#x} is not aligned to the {b}-byte beat"),
            );
        }
        if kind.is_write() != (o.req_write != 0) {
            self.violation(
                t,
                format!("req_write = {} with req_kind {kind:?}", o.req_write),
            );
        }
        let base = addr & !(b - 1);
        let in_range = base.checked_add(b).is_some_and(|end| end <= mem.size());
        let mut data = [0u8; 64];
        if !in_range {
            self.violation(
                t,
                format!(
                    "request at {addr:#x} outside device memory ({} bytes)",
                    mem.size()
                ),
            );
        } else if o.req_write != 0 {
            if b < 64 && o.req_wmask >> b != 0 {
                self.violation(
                    t,
                    format!("req_wmask {:#x} has bits at or above beat {b}", o.req_wmask),
                );
            }
            let wdata = words_to_bytes(&o.req_wdata);
            // Contiguous runs of enabled bytes.
            let mut i = 0usize;
            while i < b as usize {
                if o.req_wmask & (1 << i) == 0 {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < b as usize && o.req_wmask & (1 << i) != 0 {
                    i += 1;
                }
                mem.write(base + start as u64, &wdata[start..i]);
            }
        } else {
            mem.read(base, &mut data[..b as usize]);
        }
        let r = InFlight {
            tag: o.req_tag,
            who,
            kind,
            addr,
            data,
        };
        self.dram.accept(t, r);
        Some(r)
    }
}

impl<S: EventSink> Drop for RtlDevice<S> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `create` and is released once.
        unsafe { (self.api.destroy)(self.handle.as_ptr()) }
    }
}

impl<S: EventSink> Device for RtlDevice<S> {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        if offset >= regs::WINDOW_BYTES {
            return 0;
        }
        // The clock lives in the harness, not in the variant.
        if offset == regs::CLOCK_MHZ {
            return self.cfg.clock.freq_mhz;
        }
        // SAFETY: the handle is live.
        unsafe { (self.api.mmio_read)(self.handle.as_ptr(), offset) }
    }

    fn mmio_write(&mut self, offset: u32, value: u32) {
        if offset >= regs::WINDOW_BYTES {
            return;
        }
        // SAFETY: the handle is live.
        unsafe { (self.api.mmio_write)(self.handle.as_ptr(), offset, value) };
        // SAFETY: as above.
        self.irq = unsafe { (self.api.irq)(self.handle.as_ptr()) } != 0;
        if offset == regs::CONTROL && value & regs::CONTROL_RESET != 0 {
            // Device reset drops everything in flight (as the model's reset).
            self.dram.clear();
            self.dispatched.clear();
        }
    }

    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        loop {
            if stop_on_irq && self.irq {
                return RunExit::Irq;
            }
            if self.now >= cycle {
                return RunExit::Cycle;
            }
            self.tick(mem);
        }
    }

    fn irq_pending(&self) -> bool {
        self.irq
    }

    fn cycle(&self) -> u64 {
        self.now
    }
}
