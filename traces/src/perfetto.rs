//! Chrome/Perfetto trace-event JSON (`{"traceEvents": [...]}`), as loaded by
//! ui.perfetto.dev, Perfetto's trace processor and chrome://tracing.
//!
//! Layout: one process `npu` (pid 1) with one thread per unit, in this order:
//!
//! | tid | track        | contents |
//! |-----|--------------|----------|
//! | 1   | cmd          | NOP and FENCE slices (Dispatch to Complete); FENCE instants |
//! | 2   | load         | LOAD slices (Issue to Complete) |
//! | 3   | compute      | MATMUL, ACT, ADD, MAX slices |
//! | 4   | store        | STORE slices |
//! | 5   | memory port  | `busy` slices: maximal spans with a request in flight |
//!
//! A descriptor slice (`"ph":"X"`) is named by its mnemonic; its args hold the
//! ring index, the disassembled text, the decoded fields, and the raw cycles
//! (`cycle`, `end_cycle`, `cycles`, `dispatch_cycle`). Timestamps are µs at the
//! configured clock (`ts = cycle / clock.freq_mhz`).
//!
//! Counters (`"ph":"C"`; Perfetto names each track `"<name> <arg>"`), sampled at
//! the end of each cycle in which they change:
//! `<unit> queue`/`depth` (dispatched, not issued), `memory`/`outstanding`
//! (MemReq +1, MemResp -1), `tokens <queue>`/`count`, and `MAC`/`utilisation`
//! (while a MATMUL runs: `m*k*n / (rows*cols*cycles)`; 0 otherwise).
//!
//! Instants (`"ph":"i"`): `FENCE seq=N` on the cmd track, `IRQ` (process scope),
//! and `ERROR <code>` (global scope).
//!
//! Events are written one per line in a fixed order (metadata, descriptor
//! slices by start, memory-port slices, then counters and instants by cycle), so
//! the output is deterministic and diffs well.

use std::collections::BTreeMap;
use std::io::{self, Write};

use npukit_abi::asm::disassemble_one;
use npukit_abi::desc::{deps, Op};
use npukit_abi::Descriptor;
use npukit_sim::{Engine, Event, MemKind, NpuConfig, TokenQueue};

use crate::json::{Obj, J};
use crate::replay::{by_cycle, eng, slices, tok, Replay, Slice};

/// Process id of the NPU.
pub const PID: u64 = 1;
/// Thread id of the memory-port track.
pub const MEMORY_TID: u64 = 5;
/// Name of the memory-port track.
pub const MEMORY_TRACK: &str = "memory port";

/// Thread id of an engine's track (1 to 4, in [`Engine::ALL`] order).
pub fn tid(e: Engine) -> u64 {
    eng(e) as u64 + 1
}

/// Writes `events` (as recorded by a `Vec<(u64, Event)>` sink) as trace-event JSON.
pub fn write_perfetto(
    events: &[(u64, Event)],
    cfg: &NpuConfig,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut w = EventWriter::new(out, cfg);
    w.begin()?;
    metadata(&mut w)?;
    let all = slices(events);
    // MAC utilisation of each compute slice, by issue cycle (one issue per cycle).
    let mut util = BTreeMap::new();
    for s in &all {
        w.slice(s, cfg)?;
        if s.unit == Engine::Compute {
            util.insert(s.start, mac_utilisation(s, cfg));
        }
    }
    memory_port(&mut w, events)?;
    levels(&mut w, events, &util)?;
    w.end()
}

/// Useful MACs per PE-cycle over the slice: `m*k*n / (rows*cols*cycles)` for a
/// MATMUL, 0 for anything else.
pub fn mac_utilisation(s: &Slice, cfg: &NpuConfig) -> f64 {
    match s.desc.map(|d| d.op) {
        Some(Op::Matmul(m)) if s.cycles() > 0 => {
            let macs = m.m as f64 * m.k as f64 * m.n as f64;
            macs / (cfg.peak_macs_per_cycle() as f64 * s.cycles() as f64)
        }
        _ => 0.0,
    }
}

fn metadata<W: Write>(w: &mut EventWriter<'_, W>) -> io::Result<()> {
    let meta = |name: &'static str, tid: u64, args: Obj| {
        Obj::new()
            .with("name", name)
            .with("ph", "M")
            .with("pid", PID)
            .with("tid", tid)
            .with("args", args)
    };
    w.event(meta("process_name", 0, Obj::new().with("name", "npu")))?;
    w.event(meta(
        "process_sort_index",
        0,
        Obj::new().with("sort_index", 0u64),
    ))?;
    let tracks = Engine::ALL
        .iter()
        .map(|&e| (tid(e), e.name()))
        .chain([(MEMORY_TID, MEMORY_TRACK)]);
    for (t, name) in tracks {
        w.event(meta("thread_name", t, Obj::new().with("name", name)))?;
        w.event(meta(
            "thread_sort_index",
            t,
            Obj::new().with("sort_index", t),
        ))?;
    }
    Ok(())
}

/// The memory-port track: one `busy` slice per maximal span of cycles with a
/// request in flight (from the first request to the response that empties the
/// port), with request counts by kind and requester. One slice per beat would
/// swamp the viewer.
fn memory_port<W: Write>(w: &mut EventWriter<'_, W>, events: &[(u64, Event)]) -> io::Result<()> {
    #[derive(Default)]
    struct Span {
        start: u64,
        reqs: u64,
        by_kind: [u64; 5],
        by_who: [u64; 4],
    }
    let kinds = [
        MemKind::Fetch,
        MemKind::Pte,
        MemKind::Read,
        MemKind::Write,
        MemKind::FenceWrite,
    ];
    let kind_names = ["fetch", "pte", "read", "write", "fence_write"];
    let emit = |w: &mut EventWriter<'_, W>, s: &Span, end: u64, done: bool| {
        let mut args = Obj::new()
            .with("cycle", s.start)
            .with("end_cycle", end)
            .with("requests", s.reqs);
        for (n, c) in kind_names.iter().zip(s.by_kind) {
            args.push(n, c);
        }
        for (e, c) in Engine::ALL.iter().zip(s.by_who) {
            args.push(e.name(), c);
        }
        if !done {
            args.push("unfinished", true);
        }
        w.complete("busy", "memory", MEMORY_TID, s.start, end, args)
    };
    let mut r = Replay::default();
    let mut open: Option<Span> = None;
    let mut last = 0;
    for (c, group) in by_cycle(events) {
        last = c;
        for (_, e) in group {
            r.apply(c, e);
            if let Event::MemReq { who, kind, .. } = *e {
                let s = open.get_or_insert_with(|| Span {
                    start: c,
                    ..Span::default()
                });
                s.reqs += 1;
                s.by_who[eng(who)] += 1;
                if let Some(k) = kinds.iter().position(|&k| k == kind) {
                    s.by_kind[k] += 1;
                }
            }
        }
        if r.outstanding == 0 {
            if let Some(s) = open.take() {
                emit(w, &s, c, true)?;
            }
        }
    }
    if let Some(s) = open.take() {
        emit(w, &s, last, false)?;
    }
    Ok(())
}

/// Counters and instants, in cycle order.
fn levels<W: Write>(
    w: &mut EventWriter<'_, W>,
    events: &[(u64, Event)],
    util: &BTreeMap<u64, f64>,
) -> io::Result<()> {
    const UNITS: [Engine; 3] = [Engine::Load, Engine::Compute, Engine::Store];
    let queue_names = ["load queue", "compute queue", "store queue"];
    let token_names = [
        "tokens load->compute",
        "tokens compute->load",
        "tokens compute->store",
        "tokens store->compute",
    ];
    debug_assert!(TokenQueue::ALL
        .iter()
        .zip(token_names)
        .all(|(q, n)| n.ends_with(q.name())));

    #[derive(Clone, Copy, PartialEq)]
    struct Levels {
        queues: [u64; 3],
        outstanding: u64,
        tokens: [u64; 4],
        mac: f64,
    }
    let sample = |r: &Replay| Levels {
        queues: UNITS.map(|u| r.queue_depth(u) as u64),
        outstanding: r.outstanding,
        tokens: TokenQueue::ALL.map(|q| r.tokens[tok(q)] as u64),
        mac: r.running[eng(Engine::Compute)]
            .and_then(|j| util.get(&j.start).copied())
            .unwrap_or(0.0),
    };
    let emit = |w: &mut EventWriter<'_, W>, c: u64, now: &Levels, prev: Option<&Levels>| {
        for (i, name) in queue_names.into_iter().enumerate() {
            if prev.is_none_or(|p| p.queues[i] != now.queues[i]) {
                w.counter(name, "depth", c, now.queues[i].into())?;
            }
        }
        if prev.is_none_or(|p| p.outstanding != now.outstanding) {
            w.counter("memory", "outstanding", c, now.outstanding.into())?;
        }
        for (i, name) in token_names.into_iter().enumerate() {
            if prev.is_none_or(|p| p.tokens[i] != now.tokens[i]) {
                w.counter(name, "count", c, now.tokens[i].into())?;
            }
        }
        if prev.is_none_or(|p| p.mac != now.mac) {
            w.counter("MAC", "utilisation", c, now.mac.into())?;
        }
        io::Result::Ok(())
    };

    let mut r = Replay::default();
    // Every track starts at 0 at cycle 0 (at once with cycle 0's events, if any).
    let mut prev = None;
    if events.first().is_none_or(|e| e.0 > 0) {
        let zero = sample(&r);
        emit(w, 0, &zero, None)?;
        prev = Some(zero);
    }
    for (c, group) in by_cycle(events) {
        for (_, e) in group {
            r.apply(c, e);
            instant(w, c, e)?;
        }
        let now = sample(&r);
        if prev != Some(now) {
            emit(w, c, &now, prev.as_ref())?;
            prev = Some(now);
        }
    }
    Ok(())
}

fn instant<W: Write>(w: &mut EventWriter<'_, W>, c: u64, e: &Event) -> io::Result<()> {
    match *e {
        Event::Fence { index, seq } => w.instant(
            format!("FENCE seq={seq}"),
            "t",
            tid(Engine::Cmd),
            c,
            Obj::new()
                .with("index", index)
                .with("seq", seq)
                .with("cycle", c),
        ),
        Event::Irq { status } => w.instant(
            "IRQ".into(),
            "p",
            tid(Engine::Cmd),
            c,
            Obj::new()
                .with("status", format!("{status:#x}"))
                .with("fence", status & npukit_abi::regs::IRQ_FENCE != 0)
                .with("error", status & npukit_abi::regs::IRQ_ERROR != 0)
                .with("cycle", c),
        ),
        Event::Error { code, index, addr } => w.instant(
            format!("ERROR {}", code.c_name()),
            "g",
            tid(Engine::Cmd),
            c,
            Obj::new()
                .with("code", code as u32)
                .with("name", code.c_name())
                .with("doc", code.doc())
                .with("index", index)
                .with("addr", format!("{addr:#x}"))
                .with("cycle", c),
        ),
        _ => Ok(()),
    }
}

/// The descriptor as slice args: dependency flags and the decoded fields, named
/// as in the `Op` structs.
pub fn descriptor_fields(d: &Descriptor) -> serde_json::Value {
    serde_json::to_value(desc_fields(d)).unwrap_or_default()
}

fn desc_fields(d: &Descriptor) -> Obj {
    let o = Obj::new();
    match d.op {
        Op::Nop => o,
        Op::Load(x) | Op::Store(x) => o
            .with("local", x.local)
            .with("dram", x.dram)
            .with("rows", x.rows)
            .with("row_bytes", x.row_bytes)
            .with("dram_stride", x.dram_stride)
            .with("local_stride", x.local_stride)
            .with("acc", x.acc),
        Op::Matmul(x) => o
            .with("a", x.a)
            .with("w", x.w)
            .with("out", x.out)
            .with("m", x.m)
            .with("k", x.k)
            .with("n", x.n)
            .with("accumulate", x.accumulate),
        Op::Act(x) => {
            let mut o = o.with("src", x.src).with("dst", x.dst);
            if let Some(b) = x.bias {
                o.push("bias", b);
            }
            let o = o.with("rows", x.rows).with("cols", x.cols);
            let mut o = match x.qtab {
                Some(q) => o.with("qtab", q),
                None => o.with("multiplier", x.multiplier).with("shift", x.shift),
            };
            o.push("zero_point", x.zero_point);
            o.with("relu", x.relu)
        }
        Op::Add(x) => o
            .with("a", x.a)
            .with("b", x.b)
            .with("dst", x.dst)
            .with("len", x.len)
            .with("a_zp", x.a_zp)
            .with("b_zp", x.b_zp)
            .with("a_mult", x.a_mult)
            .with("b_mult", x.b_mult)
            .with("accumulate", x.accumulate),
        Op::Max(x) => o
            .with("a", x.a)
            .with("b", x.b)
            .with("dst", x.dst)
            .with("len", x.len),
        Op::Fence(x) => {
            let mut o = o.with("seq", x.seq);
            if let Some(a) = x.writeback {
                o.push("writeback", a);
            }
            o.with("irq", x.irq)
        }
    }
}

fn dep_names(d: u8) -> J {
    J::Arr(
        deps::ALL
            .iter()
            .filter(|f| d & f.1 != 0)
            .map(|f| J::from(f.0))
            .collect(),
    )
}

/// Writes trace events one per line, comma-separated, inside the top-level object.
struct EventWriter<'a, W: Write> {
    out: &'a mut W,
    freq_mhz: f64,
    cfg: &'a NpuConfig,
    first: bool,
}

impl<'a, W: Write> EventWriter<'a, W> {
    fn new(out: &'a mut W, cfg: &'a NpuConfig) -> Self {
        EventWriter {
            out,
            freq_mhz: cfg.clock.freq_mhz.max(1) as f64,
            cfg,
            first: true,
        }
    }

    fn us(&self, cycle: u64) -> f64 {
        cycle as f64 / self.freq_mhz
    }

    fn begin(&mut self) -> io::Result<()> {
        let c = self.cfg;
        let other = Obj::new()
            .with("generator", "npukit-traces")
            .with("clock_mhz", c.clock.freq_mhz)
            .with("array_rows", c.array.rows)
            .with("array_cols", c.array.cols)
            .with("beat_bytes", c.dma.beat_bytes)
            .with("dram_latency", c.dram.latency)
            .with("dram_bytes_per_cycle", c.dram.bytes_per_cycle);
        write!(self.out, "{{\"displayTimeUnit\":\"ns\",\"otherData\":")?;
        serde_json::to_writer(&mut *self.out, &other)?;
        write!(self.out, ",\"traceEvents\":[")
    }

    fn end(&mut self) -> io::Result<()> {
        writeln!(self.out, "\n]}}")
    }

    fn event(&mut self, e: Obj) -> io::Result<()> {
        self.out
            .write_all(if self.first { b"\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut *self.out, &e)?;
        Ok(())
    }

    fn complete(
        &mut self,
        name: &str,
        cat: &'static str,
        tid: u64,
        start: u64,
        end: u64,
        args: Obj,
    ) -> io::Result<()> {
        let e = Obj::new()
            .with("name", name)
            .with("cat", cat)
            .with("ph", "X")
            .with("pid", PID)
            .with("tid", tid)
            .with("ts", self.us(start))
            .with("dur", self.us(end - start))
            .with("args", args);
        self.event(e)
    }

    fn slice(&mut self, s: &Slice, cfg: &NpuConfig) -> io::Result<()> {
        let mut args = Obj::new().with("index", s.index);
        if let Some(d) = &s.desc {
            args.push("text", disassemble_one(d));
        }
        args.push("cycle", s.start);
        args.push("end_cycle", s.end);
        args.push("cycles", s.cycles());
        if let Some(c) = s.dispatch {
            args.push("dispatch_cycle", c);
        }
        if let Some(d) = &s.desc {
            args.push("deps", dep_names(d.deps));
            args.push("fields", desc_fields(d));
        }
        if s.unit == Engine::Compute {
            args.push("mac_utilisation", mac_utilisation(s, cfg));
        }
        if !s.finished {
            args.push("unfinished", true);
        }
        let name = s.opcode.mnemonic();
        self.complete(name, s.unit.name(), tid(s.unit), s.start, s.end, args)
    }

    fn counter(&mut self, name: &'static str, key: &'static str, c: u64, v: J) -> io::Result<()> {
        let e = Obj::new()
            .with("name", name)
            .with("ph", "C")
            .with("pid", PID)
            .with("ts", self.us(c))
            .with("args", Obj::new().with(key, v));
        self.event(e)
    }

    fn instant(
        &mut self,
        name: String,
        scope: &'static str,
        tid: u64,
        c: u64,
        args: Obj,
    ) -> io::Result<()> {
        let e = Obj::new()
            .with("name", name)
            .with("ph", "i")
            .with("s", scope)
            .with("pid", PID)
            .with("tid", tid)
            .with("ts", self.us(c))
            .with("args", args);
        self.event(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::read_perfetto;

    #[test]
    fn empty_stream_is_a_valid_trace_with_all_tracks() {
        let mut out = Vec::new();
        write_perfetto(&[], &NpuConfig::default(), &mut out).unwrap();
        let p = read_perfetto(&out).unwrap();
        assert_eq!(p.threads.len(), 5);
        assert_eq!(p.slices.len(), 0);
        assert_eq!(p.counters.len(), 9);
    }

    #[test]
    fn timestamps_follow_the_clock() {
        let mut cfg = NpuConfig::default();
        cfg.clock.freq_mhz = 250;
        let ev = vec![
            (
                8,
                Event::Dispatch {
                    unit: Engine::Cmd,
                    index: 0,
                    desc: Descriptor::new(Op::Nop),
                },
            ),
            (
                8,
                Event::Complete {
                    unit: Engine::Cmd,
                    index: 0,
                    opcode: npukit_abi::Opcode::Nop,
                },
            ),
        ];
        let mut out = Vec::new();
        write_perfetto(&ev, &cfg, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let nop = text.lines().find(|l| l.contains("\"NOP\"")).unwrap();
        assert!(nop.contains("\"ts\":0.032,\"dur\":0.0"), "{nop}");
        assert!(nop.contains("\"cycle\":8"), "{nop}");
    }

    #[test]
    fn fields_of_every_opcode() {
        use npukit_abi::desc::{Act, Fence};
        let act = Descriptor::new(Op::Act(Act {
            bias: Some(64),
            rows: 1,
            cols: 1,
            multiplier: -5,
            ..Act::default()
        }));
        let f = descriptor_fields(&act);
        assert_eq!(f["bias"], 64);
        assert_eq!(f["multiplier"], -5);
        let pc = Descriptor::new(Op::Act(Act {
            rows: 1,
            cols: 1,
            qtab: Some(0x80),
            ..Act::default()
        }));
        let f = descriptor_fields(&pc);
        assert_eq!(f["qtab"], 0x80);
        assert!(f.get("multiplier").is_none() && f.get("shift").is_none());
        let fence = Descriptor::new(Op::Fence(Fence::default()));
        assert!(descriptor_fields(&fence).get("writeback").is_none());
    }
}
