//! `Lockstep`: two devices on the same input, compared cycle by cycle.
//!
//! Side A is the reference (normally the model), side B the device under test
//! (normally the RTL). Every MMIO write goes to both; every MMIO read goes to
//! both and the values must agree. Time advances in chunks; after each chunk the
//! events of every completed cycle are compared cycle by cycle, each cycle's
//! events in a canonical order (so the order in which a device reports the
//! events of one cycle does not matter, their cycle does). Side A runs on the
//! caller's memory, side B on a private copy that is refreshed from the
//! caller's memory at the start of every `run_until` and compared with it at
//! the end of every `run_until` (the device memories must be equal; there the
//! pages either side wrote in that call are compared, the rest being equal
//! since the refresh, and [`Lockstep::finish`] compares all of memory).
//!
//! At the first difference the pair stops (`run_until` returns at once from
//! then on) and [`Lockstep::divergence`] holds a [`Divergence`], whose
//! `Display` is the report for an RTL engineer: the cycle, the unit, both
//! sides' events in that cycle, the descriptor in flight for that unit, and
//! the last matching events.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;

use npukit_abi::asm::disassemble_one;
use npukit_abi::{regs, Descriptor};
use npukit_sim::{Device, DeviceMemory, Engine, Event, ModelDevice, NpuConfig, RunExit, VecMemory};

use crate::device::RtlDevice;

/// A device whose events (and contract violations) can be collected.
pub trait Observed: Device {
    /// Moves the events recorded so far into `out`, in order.
    fn take_events(&mut self, out: &mut Vec<(u64, Event)>);
    /// Contract violations recorded so far (`(cycle, what)`); none for the model.
    fn take_violations(&mut self) -> Vec<(u64, String)> {
        Vec::new()
    }
    /// The configuration it runs.
    fn npu_config(&self) -> &NpuConfig;
}

impl Observed for ModelDevice<Vec<(u64, Event)>> {
    fn take_events(&mut self, out: &mut Vec<(u64, Event)>) {
        out.append(self.sink_mut());
    }
    fn npu_config(&self) -> &NpuConfig {
        self.config()
    }
}

impl Observed for RtlDevice<Vec<(u64, Event)>> {
    fn take_events(&mut self, out: &mut Vec<(u64, Event)>) {
        out.append(self.sink_mut());
    }
    fn take_violations(&mut self) -> Vec<(u64, String)> {
        RtlDevice::take_violations(self)
            .into_iter()
            .map(|v| (v.cycle, v.what))
            .collect()
    }
    fn npu_config(&self) -> &NpuConfig {
        self.config()
    }
}

/// How the pair runs and what it keeps.
#[derive(Debug, Clone)]
pub struct LockstepOptions {
    /// Names of the two sides in reports (default "model", "rtl").
    pub names: [String; 2],
    /// Cycles simulated between two comparisons (default 256).
    pub chunk: u64,
    /// Matching events shown before the divergence (default 20).
    pub history: usize,
    /// Keep every event of both sides (for Perfetto traces on divergence).
    pub keep_events: bool,
    /// With `keep_events`, keep only about the last this many events of each
    /// side (between this and twice this), so that long runs do not fill
    /// memory; 0 keeps all (default).
    pub keep_last: usize,
    /// Where to write `<name>.trace.json` for both sides on divergence.
    pub trace_dir: Option<PathBuf>,
    /// Compare device memory at the end of every `run_until` (default true;
    /// off for racy programs, whose data is unspecified by docs/rtl.md C4).
    pub compare_memory: bool,
}

impl Default for LockstepOptions {
    fn default() -> Self {
        LockstepOptions {
            names: ["model".into(), "rtl".into()],
            chunk: 256,
            history: 20,
            keep_events: false,
            keep_last: 0,
            trace_dir: None,
            compare_memory: true,
        }
    }
}

/// What differed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The events of one cycle differ. `a`, `b`: both sides' events in that
    /// cycle (canonical order); `first`: the index of the first difference.
    Events {
        a: Vec<Event>,
        b: Vec<Event>,
        first: usize,
    },
    /// An MMIO read returned different values.
    MmioRead { offset: u32, a: u32, b: u32 },
    /// The interrupt line differs after the cycle.
    Irq { a: bool, b: bool },
    /// The two sides stopped at different cycles.
    Cycle { a: u64, b: u64 },
    /// Device memory differs (first differing byte).
    Memory { addr: u64, a: u8, b: u8 },
    /// Side B broke the port contract.
    Contract { what: String },
}

/// The first divergence and its context.
#[derive(Debug, Clone)]
pub struct Divergence {
    /// The cycle of the first difference.
    pub cycle: u64,
    /// The unit concerned: `cmd`, `load`, `compute`, `store`, a token counter,
    /// `irq`, `mmio` or `memory`.
    pub unit: String,
    /// The event kind of the first differing event (`MemReq`, `Issue`, ...), or
    /// what else differed.
    pub event_kind: String,
    pub kind: DivergenceKind,
    /// The descriptor the unit was executing (or the FENCE the command
    /// processor held), per side A, disassembled with its ring index.
    pub in_flight: Option<String>,
    /// Descriptors dispatched to the unit and not yet issued, per side A.
    pub queued: Vec<String>,
    /// The last events both sides agreed on, oldest first.
    pub recent: Vec<(u64, Event)>,
    /// The last MMIO writes (both sides got each one), oldest first:
    /// `(cycle, offset, value)`; the cycle is the device's when it was written
    /// (the write takes effect from that cycle on).
    pub writes: Vec<(u64, u32, u32)>,
    /// MMIO writes before the divergence (both sides).
    pub write_count: u64,
    /// Side names.
    pub names: [String; 2],
    /// Perfetto traces written for both sides, if any.
    pub traces: Vec<PathBuf>,
}

/// The short name of an event's variant.
pub fn event_kind(e: &Event) -> &'static str {
    match e {
        Event::MemReq { .. } => "MemReq",
        Event::MemResp { .. } => "MemResp",
        Event::Dispatch { .. } => "Dispatch",
        Event::Issue { .. } => "Issue",
        Event::Complete { .. } => "Complete",
        Event::TokenPush { .. } => "TokenPush",
        Event::TokenPop { .. } => "TokenPop",
        Event::Fence { .. } => "Fence",
        Event::Irq { .. } => "Irq",
        Event::Error { .. } => "Error",
    }
}

/// The unit an event belongs to.
pub fn event_unit(e: &Event) -> String {
    match e {
        Event::MemReq { who, .. } | Event::MemResp { who, .. } => who.name().into(),
        Event::Dispatch { unit, .. } | Event::Issue { unit, .. } | Event::Complete { unit, .. } => {
            unit.name().into()
        }
        Event::TokenPush { queue } | Event::TokenPop { queue } => {
            format!("tokens {}", queue.name())
        }
        Event::Fence { .. } => "cmd".into(),
        Event::Irq { .. } => "irq".into(),
        Event::Error { .. } => "error".into(),
    }
}

fn engine_of(e: &Event) -> Option<Engine> {
    match e {
        Event::MemReq { who, .. } | Event::MemResp { who, .. } => Some(*who),
        Event::Dispatch { unit, .. } | Event::Issue { unit, .. } | Event::Complete { unit, .. } => {
            Some(*unit)
        }
        Event::Fence { .. } | Event::Irq { .. } | Event::Error { .. } => Some(Engine::Cmd),
        _ => None,
    }
}

/// One line per event, readable without the source.
pub fn describe(e: &Event) -> String {
    match e {
        Event::MemReq { who, kind, addr } => {
            format!("MemReq   {:<7} {kind:?} @ {addr:#x}", who.name())
        }
        Event::MemResp { who, kind, addr } => {
            format!("MemResp  {:<7} {kind:?} @ {addr:#x}", who.name())
        }
        Event::Dispatch { unit, index, desc } => format!(
            "Dispatch {:<7} #{index}: {}",
            unit.name(),
            disassemble_one(desc)
        ),
        Event::Issue {
            unit,
            index,
            opcode,
        } => format!("Issue    {:<7} #{index} {opcode}", unit.name()),
        Event::Complete {
            unit,
            index,
            opcode,
        } => format!("Complete {:<7} #{index} {opcode}", unit.name()),
        Event::TokenPush { queue } => format!("TokenPush {}", queue.name()),
        Event::TokenPop { queue } => format!("TokenPop  {}", queue.name()),
        Event::Fence { index, seq } => format!("Fence    #{index} seq={seq}"),
        Event::Irq { status } => format!("Irq      status={status:#x}"),
        Event::Error { code, index, addr } => {
            format!("Error    {code} at #{index} addr={addr:#x}")
        }
    }
}

/// A total order on the events of one cycle.
fn canonical_key(e: &Event) -> (u8, u8, u64, u64) {
    let eng = |x: &Engine| *x as u8;
    match e {
        Event::MemReq { who, kind, addr } => (0, eng(who), *kind as u64, *addr),
        Event::MemResp { who, kind, addr } => (1, eng(who), *kind as u64, *addr),
        // A NOP or FENCE completes after its dispatch (the model's order).
        Event::Complete {
            unit: Engine::Cmd,
            index,
            opcode,
        } => (7, 0, *index as u64, *opcode as u64),
        Event::Complete {
            unit,
            index,
            opcode,
        } => (2, eng(unit), *index as u64, *opcode as u64),
        Event::TokenPop { queue } => (3, *queue as u8, 0, 0),
        Event::Issue {
            unit,
            index,
            opcode,
        } => (4, eng(unit), *index as u64, *opcode as u64),
        Event::TokenPush { queue } => (5, *queue as u8, 0, 0),
        Event::Dispatch { unit, index, .. } => (6, eng(unit), *index as u64, 0),
        Event::Fence { index, seq } => (8, 0, *index as u64, *seq as u64),
        Event::Irq { status } => (9, 0, *status as u64, 0),
        Event::Error { code, index, addr } => (10, *code as u8, *index as u64, *addr),
    }
}

fn canonical(mut v: Vec<Event>) -> Vec<Event> {
    v.sort_by_key(canonical_key);
    v
}

/// What side A's events say each unit is doing.
#[derive(Debug, Default)]
struct Tracker {
    descs: HashMap<u32, Descriptor>,
    running: [Option<u32>; 4],
    queued: [VecDeque<u32>; 4],
}

impl Tracker {
    fn apply(&mut self, e: &Event) {
        match e {
            Event::Dispatch { unit, index, desc } => {
                self.descs.insert(*index, *desc);
                if *unit == Engine::Cmd {
                    self.running[0] = Some(*index);
                } else {
                    self.queued[*unit as usize].push_back(*index);
                }
            }
            Event::Issue { unit, index, .. } => {
                let q = &mut self.queued[*unit as usize];
                if let Some(p) = q.iter().position(|i| i == index) {
                    q.remove(p);
                }
                self.running[*unit as usize] = Some(*index);
            }
            Event::Complete { unit, index, .. } if self.running[*unit as usize] == Some(*index) => {
                self.running[*unit as usize] = None;
            }
            _ => {}
        }
    }

    fn show(&self, index: u32) -> String {
        match self.descs.get(&index) {
            Some(d) => format!("#{index}: {}", disassemble_one(d)),
            None => format!("#{index}"),
        }
    }
}

/// Two devices in lockstep. `A` is the reference, `B` the device under test.
pub struct Lockstep<A: Observed, B: Observed> {
    a: A,
    b: B,
    opts: LockstepOptions,
    shadow: VecMemory,
    /// Pages (of [`PAGE`] bytes) either side wrote in this `run_until`, one bit each.
    dirty: Vec<u64>,
    pend_a: Vec<(u64, Event)>,
    pend_b: Vec<(u64, Event)>,
    all_a: Vec<(u64, Event)>,
    all_b: Vec<(u64, Event)>,
    recent: VecDeque<(u64, Event)>,
    tracker: Tracker,
    divergence: Option<Box<Divergence>>,
    /// Cycles compared so far.
    compared: u64,
    /// Events that matched so far.
    matched: u64,
    /// The last MMIO writes, and how many there were.
    writes: VecDeque<(u64, u32, u32)>,
    write_count: u64,
    progress: Option<Box<dyn FnMut(u64)>>,
}

/// MMIO writes shown in a divergence report.
const WRITES_SHOWN: usize = 6;

/// The granule in which `run_until` notes what the devices wrote, in bytes.
const PAGE: u64 = 4096;

/// Device memory that notes the pages written through it.
struct Noted<'a> {
    inner: &'a mut dyn DeviceMemory,
    pages: &'a mut [u64],
}

impl DeviceMemory for Noted<'_> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read(&self, addr: u64, buf: &mut [u8]) {
        self.inner.read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) {
        if let Some(last) = (data.len() as u64).checked_sub(1) {
            for p in addr / PAGE..=(addr + last) / PAGE {
                if let Some(w) = self.pages.get_mut((p / 64) as usize) {
                    *w |= 1 << (p % 64);
                }
            }
        }
        self.inner.write(addr, data)
    }
}

impl<A: Observed + fmt::Debug, B: Observed + fmt::Debug> fmt::Debug for Lockstep<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockstep")
            .field("a", &self.a)
            .field("b", &self.b)
            .field("compared", &self.compared)
            .field("divergence", &self.divergence)
            .finish_non_exhaustive()
    }
}

impl<A: Observed, B: Observed> Lockstep<A, B> {
    pub fn new(a: A, b: B, opts: LockstepOptions) -> Self {
        Lockstep {
            a,
            b,
            opts,
            shadow: VecMemory::new(0),
            dirty: Vec::new(),
            pend_a: Vec::new(),
            pend_b: Vec::new(),
            all_a: Vec::new(),
            all_b: Vec::new(),
            recent: VecDeque::new(),
            tracker: Tracker::default(),
            divergence: None,
            compared: 0,
            matched: 0,
            writes: VecDeque::new(),
            write_count: 0,
            progress: None,
        }
    }

    /// Calls `f(cycle)` after every compared chunk (for progress display).
    pub fn on_progress(&mut self, f: impl FnMut(u64) + 'static) {
        self.progress = Some(Box::new(f));
    }

    /// The first divergence, if any.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_deref()
    }
    pub fn a(&self) -> &A {
        &self.a
    }
    pub fn b(&self) -> &B {
        &self.b
    }
    pub fn a_mut(&mut self) -> &mut A {
        &mut self.a
    }
    pub fn b_mut(&mut self) -> &mut B {
        &mut self.b
    }
    /// Side B's private memory.
    pub fn b_memory(&self) -> &VecMemory {
        &self.shadow
    }
    /// Events that matched so far.
    pub fn matched_events(&self) -> u64 {
        self.matched
    }
    /// Every event of both sides (with `keep_events`; the last ones only
    /// with `keep_last`).
    pub fn all_events(&self) -> [&[(u64, Event)]; 2] {
        [&self.all_a, &self.all_b]
    }
    /// MMIO writes so far (each went to both sides).
    pub fn mmio_writes(&self) -> u64 {
        self.write_count
    }

    fn diverge(&mut self, cycle: u64, unit: String, event_kind: String, kind: DivergenceKind) {
        if self.divergence.is_some() {
            return;
        }
        let eng = match unit.as_str() {
            "cmd" | "irq" | "error" => Some(Engine::Cmd),
            "load" => Some(Engine::Load),
            "compute" => Some(Engine::Compute),
            "store" => Some(Engine::Store),
            _ => None,
        };
        let in_flight =
            eng.and_then(|e| self.tracker.running[e as usize].map(|i| self.tracker.show(i)));
        let queued = eng
            .map(|e| {
                self.tracker.queued[e as usize]
                    .iter()
                    .map(|&i| self.tracker.show(i))
                    .collect()
            })
            .unwrap_or_default();
        let mut d = Divergence {
            cycle,
            unit,
            event_kind,
            kind,
            in_flight,
            queued,
            recent: self.recent.iter().cloned().collect(),
            writes: self.writes.iter().copied().collect(),
            write_count: self.write_count,
            names: self.opts.names.clone(),
            traces: Vec::new(),
        };
        if let Some(dir) = self.opts.trace_dir.clone() {
            d.traces = self.write_traces(&dir);
        }
        self.divergence = Some(Box::new(d));
    }

    /// Writes both sides' Perfetto traces (every event kept, plus the pending
    /// ones) into `dir`; returns the files written.
    pub fn write_traces(&mut self, dir: &std::path::Path) -> Vec<PathBuf> {
        let mut written = Vec::new();
        if std::fs::create_dir_all(dir).is_err() {
            return written;
        }
        let sides = [
            (
                &self.opts.names[0],
                &self.all_a,
                &self.pend_a,
                self.a.npu_config(),
            ),
            (
                &self.opts.names[1],
                &self.all_b,
                &self.pend_b,
                self.b.npu_config(),
            ),
        ];
        for (name, all, pend, cfg) in sides {
            let mut ev = all.clone();
            ev.extend(pend.iter().cloned());
            let path = dir.join(format!("{name}.trace.json"));
            let ok = std::fs::File::create(&path).ok().is_some_and(|f| {
                let mut w = std::io::BufWriter::new(f);
                npukit_traces::perfetto::write_perfetto(&ev, cfg, &mut w).is_ok()
            });
            if ok {
                written.push(path);
            }
        }
        written
    }

    /// Compares the events of every cycle before `upto`.
    fn compare_until(&mut self, upto: u64) {
        self.a.take_events(&mut self.pend_a);
        self.b.take_events(&mut self.pend_b);
        if let Some((cycle, what)) = self.b.take_violations().into_iter().next() {
            self.diverge(
                cycle,
                self.opts.names[1].clone(),
                "contract".into(),
                DivergenceKind::Contract { what },
            );
            return;
        }
        let split = |v: &mut Vec<(u64, Event)>| {
            let n = v.iter().take_while(|(c, _)| *c < upto).count();
            let rest = v.split_off(n);
            std::mem::replace(v, rest)
        };
        let done_a = split(&mut self.pend_a);
        let done_b = split(&mut self.pend_b);
        let (mut i, mut j) = (0, 0);
        while i < done_a.len() || j < done_b.len() {
            let ca = done_a.get(i).map_or(u64::MAX, |e| e.0);
            let cb = done_b.get(j).map_or(u64::MAX, |e| e.0);
            let c = ca.min(cb);
            let ia = i + done_a[i..].iter().take_while(|e| e.0 == c).count();
            let jb = j + done_b[j..].iter().take_while(|e| e.0 == c).count();
            let ea = canonical(done_a[i..ia].iter().map(|e| e.1.clone()).collect());
            let eb = canonical(done_b[j..jb].iter().map(|e| e.1.clone()).collect());
            if ea != eb {
                let first = ea.iter().zip(&eb).take_while(|(x, y)| x == y).count();
                // Events before the first difference matched.
                for e in &ea[..first] {
                    self.push_recent(c, e);
                }
                let ev = ea.get(first).or(eb.get(first));
                let unit = ev.map(event_unit).unwrap_or_default();
                let kind = ev.map(event_kind).unwrap_or_default().to_string();
                let unit = match ev.and_then(engine_of) {
                    Some(e) => e.name().to_string(),
                    None => unit,
                };
                self.diverge(
                    c,
                    unit,
                    kind,
                    DivergenceKind::Events {
                        a: ea,
                        b: eb,
                        first,
                    },
                );
                return;
            }
            for e in &ea {
                self.push_recent(c, e);
            }
            self.matched += ea.len() as u64;
            i = ia;
            j = jb;
        }
        if self.opts.keep_events {
            self.all_a.extend(done_a);
            self.all_b.extend(done_b);
            let keep = self.opts.keep_last;
            for all in [&mut self.all_a, &mut self.all_b] {
                if keep > 0 && all.len() > 2 * keep {
                    all.drain(..all.len() - keep);
                }
            }
        }
        self.compared = upto;
    }

    fn push_recent(&mut self, c: u64, e: &Event) {
        self.tracker.apply(e);
        if self.opts.history == 0 {
            return;
        }
        if self.recent.len() == self.opts.history {
            self.recent.pop_front();
        }
        self.recent.push_back((c, e.clone()));
    }

    /// Makes side B's memory a copy of `mem`.
    fn sync_shadow(&mut self, mem: &dyn DeviceMemory) {
        let size = mem.size() as usize;
        if self.shadow.size() != mem.size() {
            self.shadow = VecMemory::new(size);
        }
        let words = (mem.size().div_ceil(PAGE)).div_ceil(64) as usize;
        self.dirty.clear();
        self.dirty.resize(words, 0);
        const CHUNK: usize = 1 << 20;
        let dst = self.shadow.bytes_mut();
        let mut at = 0;
        while at < size {
            let n = CHUNK.min(size - at);
            mem.read(at as u64, &mut dst[at..at + n]);
            at += n;
        }
    }

    /// Turns the memory comparison on or off (see [`LockstepOptions::compare_memory`]).
    pub fn set_compare_memory(&mut self, on: bool) {
        self.opts.compare_memory = on;
    }

    /// Compares `mem` (side A) with side B's memory: all of it, or (`full`
    /// false, at the end of a `run_until`, which started from equal memories)
    /// the pages either side wrote. The first differing byte either way.
    fn compare_memory(&mut self, mem: &dyn DeviceMemory, full: bool) {
        if !self.opts.compare_memory {
            return;
        }
        let size = mem.size().min(self.shadow.size());
        if full {
            self.compare_range(mem, 0, size);
            return;
        }
        // Runs of consecutive dirty pages, in address order.
        let pages = size.div_ceil(PAGE);
        let dirty = |p: u64| {
            self.dirty
                .get((p / 64) as usize)
                .is_some_and(|w| w >> (p % 64) & 1 != 0)
        };
        let mut runs = Vec::new();
        let mut p = 0;
        while p < pages {
            if self.dirty.get((p / 64) as usize) == Some(&0) {
                p = (p / 64 + 1) * 64;
                continue;
            }
            if !dirty(p) {
                p += 1;
                continue;
            }
            let start = p;
            while p < pages && dirty(p) {
                p += 1;
            }
            runs.push((start * PAGE, (p * PAGE).min(size)));
        }
        for (from, to) in runs {
            if self.compare_range(mem, from, to) {
                return;
            }
        }
    }

    /// Compares `from..to` of both memories; true on a difference (reported).
    fn compare_range(&mut self, mem: &dyn DeviceMemory, from: u64, to: u64) -> bool {
        const CHUNK: u64 = 1 << 20;
        let mut buf = vec![0u8; CHUNK.min(to - from) as usize];
        let mut at = from;
        while at < to {
            let n = CHUNK.min(to - at) as usize;
            mem.read(at, &mut buf[..n]);
            let b = &self.shadow.bytes()[at as usize..at as usize + n];
            if buf[..n] != *b {
                if let Some(k) = (0..n).find(|&k| buf[k] != b[k]) {
                    let (va, vb) = (buf[k], b[k]);
                    self.diverge(
                        self.a.cycle(),
                        "memory".into(),
                        "memory".into(),
                        DivergenceKind::Memory {
                            addr: at + k as u64,
                            a: va,
                            b: vb,
                        },
                    );
                    return true;
                }
            }
            at += n as u64;
        }
        false
    }

    /// Compares the final state: simulates one more cycle on both sides (a
    /// fault raised by an MMIO write is stamped with the next cycle by the
    /// model and shown on the RTL's event ports in that cycle), then every
    /// pending event, then memory.
    pub fn finish(&mut self, mem: &mut dyn DeviceMemory) -> Result<(), Box<Divergence>> {
        if self.divergence.is_none() {
            let next = self.a.cycle().saturating_add(1);
            self.run_until(mem, next, false);
        }
        if self.divergence.is_none() {
            let upto = self.a.cycle().max(self.b.cycle()).saturating_add(1);
            self.compare_until(upto);
        }
        if self.divergence.is_none() && self.shadow.size() == mem.size() {
            self.compare_memory(mem, true);
        }
        match &self.divergence {
            Some(d) => Err(d.clone()),
            None => Ok(()),
        }
    }
}

impl<A: Observed, B: Observed> Device for Lockstep<A, B> {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        let va = self.a.mmio_read(offset);
        let vb = self.b.mmio_read(offset);
        if va != vb && self.divergence.is_none() {
            // Events of the cycles already simulated come first.
            let now = self.a.cycle();
            self.compare_until(now);
            self.diverge(
                now,
                "mmio".into(),
                format!(
                    "read of {}",
                    regs::by_offset(offset).map_or("an unmapped offset", |r| r.name)
                ),
                DivergenceKind::MmioRead {
                    offset,
                    a: va,
                    b: vb,
                },
            );
        }
        va
    }

    fn mmio_write(&mut self, offset: u32, value: u32) {
        self.a.mmio_write(offset, value);
        self.b.mmio_write(offset, value);
        if self.writes.len() == WRITES_SHOWN {
            self.writes.pop_front();
        }
        self.writes.push_back((self.a.cycle(), offset, value));
        self.write_count += 1;
    }

    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        if self.divergence.is_some() {
            return RunExit::Cycle;
        }
        self.sync_shadow(mem);
        let mut exit = RunExit::Cycle;
        while self.divergence.is_none() {
            let now = self.a.cycle();
            if now >= cycle {
                exit = RunExit::Cycle;
                break;
            }
            let target = cycle.min(now.saturating_add(self.opts.chunk.max(1)));
            let ea = self.a.run_until(
                &mut Noted {
                    inner: &mut *mem,
                    pages: &mut self.dirty,
                },
                target,
                stop_on_irq,
            );
            let stop = self.a.cycle();
            let eb = self.b.run_until(
                &mut Noted {
                    inner: &mut self.shadow,
                    pages: &mut self.dirty,
                },
                stop,
                stop_on_irq,
            );
            let (ca, cb) = (self.a.cycle(), self.b.cycle());
            self.compare_until(ca.min(cb));
            if self.divergence.is_some() {
                break;
            }
            if ca != cb || ea != eb {
                self.diverge(
                    ca.min(cb),
                    "irq".into(),
                    "stop".into(),
                    DivergenceKind::Cycle { a: ca, b: cb },
                );
                break;
            }
            let (ia, ib) = (self.a.irq_pending(), self.b.irq_pending());
            if ia != ib {
                self.diverge(
                    ca.saturating_sub(1),
                    "irq".into(),
                    "irq line".into(),
                    DivergenceKind::Irq { a: ia, b: ib },
                );
                break;
            }
            if let Some(f) = self.progress.as_mut() {
                f(ca);
            }
            if ea == RunExit::Irq {
                exit = RunExit::Irq;
                break;
            }
        }
        if self.divergence.is_none() {
            self.compare_memory(mem, false);
        }
        exit
    }

    fn irq_pending(&self) -> bool {
        self.a.irq_pending()
    }

    fn cycle(&self) -> u64 {
        self.a.cycle()
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [na, nb] = &self.names;
        let w = na.len().max(nb.len());
        writeln!(
            f,
            "DIVERGENCE at cycle {}: unit {}, {}",
            self.cycle, self.unit, self.event_kind
        )?;
        match &self.kind {
            DivergenceKind::Events { a, b, first } => {
                let show = |ev: Option<&Event>| ev.map_or("(nothing)".to_string(), describe);
                writeln!(f, "  first difference:")?;
                writeln!(f, "    {na:>w$}: {}", show(a.get(*first)))?;
                writeln!(f, "    {nb:>w$}: {}", show(b.get(*first)))?;
                for (name, evs) in [(na, a), (nb, b)] {
                    writeln!(f, "  {name} events in cycle {}:", self.cycle)?;
                    if evs.is_empty() {
                        writeln!(f, "      (none)")?;
                    }
                    for (k, e) in evs.iter().enumerate() {
                        let mark = if k == *first { ">>" } else { "  " };
                        writeln!(f, "    {mark}{}", describe(e))?;
                    }
                }
            }
            DivergenceKind::MmioRead { offset, a, b } => {
                let name = regs::by_offset(*offset).map_or("?", |r| r.name);
                writeln!(
                    f,
                    "  MMIO read of {name} (offset {offset:#05x}) after cycle {}:",
                    self.cycle.saturating_sub(1)
                )?;
                writeln!(f, "    {na:>w$}: {a:#010x} ({a})")?;
                writeln!(f, "    {nb:>w$}: {b:#010x} ({b})")?;
            }
            DivergenceKind::Irq { a, b } => {
                writeln!(f, "  interrupt line after the cycle:")?;
                writeln!(f, "    {na:>w$}: {}", *a as u8)?;
                writeln!(f, "    {nb:>w$}: {}", *b as u8)?;
            }
            DivergenceKind::Cycle { a, b } => {
                writeln!(
                    f,
                    "  the two sides stopped (interrupt) at different cycles:"
                )?;
                writeln!(f, "    {na:>w$}: {a}")?;
                writeln!(f, "    {nb:>w$}: {b}")?;
            }
            DivergenceKind::Memory { addr, a, b } => {
                writeln!(
                    f,
                    "  device memory differs; first differing byte at {addr:#x}:"
                )?;
                writeln!(f, "    {na:>w$}: {a:#04x}")?;
                writeln!(f, "    {nb:>w$}: {b:#04x}")?;
            }
            DivergenceKind::Contract { what } => {
                writeln!(f, "  {nb} broke the port contract (docs/rtl.md): {what}")?;
            }
        }
        match &self.in_flight {
            Some(d) => writeln!(f, "  in flight on {} ({na}): {d}", self.unit)?,
            None => writeln!(f, "  in flight on {} ({na}): nothing", self.unit)?,
        }
        if !self.queued.is_empty() {
            writeln!(f, "  queued for {}:", self.unit)?;
            for q in &self.queued {
                writeln!(f, "    {q}")?;
            }
        }
        writeln!(
            f,
            "  last {} matching events (cycle: event):",
            self.recent.len()
        )?;
        for (c, e) in &self.recent {
            writeln!(f, "    {c:>8}: {}", describe(e))?;
        }
        if !self.writes.is_empty() {
            writeln!(
                f,
                "  last {} of {} MMIO writes (cycle: register = value):",
                self.writes.len(),
                self.write_count
            )?;
            for &(c, off, v) in &self.writes {
                let name = regs::by_offset(off).map_or("?", |r| r.name);
                writeln!(f, "    {c:>8}: {name} = {v:#x} ({v})")?;
            }
        }
        for t in &self.traces {
            writeln!(f, "  trace: {}", t.display())?;
        }
        Ok(())
    }
}

/// The usual pair: the model against a Verilated variant, both recording events.
pub type ModelVsRtl = Lockstep<ModelDevice<Vec<(u64, Event)>>, RtlDevice<Vec<(u64, Event)>>>;

/// Makes the usual pair for `cfg` (the RTL variant matching it, or `variant` by
/// name; the model then runs the variant's configuration).
pub fn model_vs_rtl(
    cfg: &NpuConfig,
    variant: Option<&str>,
    vcd: Option<&std::path::Path>,
    opts: LockstepOptions,
) -> Result<ModelVsRtl, crate::RtlError> {
    let rtl = match (variant, vcd) {
        (v, Some(p)) => RtlDevice::with_vcd(cfg, v, Vec::new(), p)?,
        (Some(v), None) => RtlDevice::with_variant(v, cfg, Vec::new())?,
        (None, None) => RtlDevice::with_sink(cfg, Vec::new())?,
    };
    let model = ModelDevice::with_sink(rtl.config(), Vec::new());
    Ok(Lockstep::new(model, rtl, opts))
}
