//! Driver-side trace events, stamped with the device clock so that they sit on
//! the same timeline as the hardware events the model emits: a user sees their
//! SUBMIT, the ring pushes it became, the descriptors executing, and the
//! interrupt that completed the job.
//!
//! With tracing on ([`crate::Options::trace`]), the model is built with a sink
//! that records every hardware [`Event`] into the same log, in order.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use npukit_sim::{Event, EventSink, NpuConfig};

/// What the driver did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimEvent {
    /// An ioctl returned (`errno` 0 on success).
    Ioctl {
        ctx: u32,
        name: &'static str,
        /// Device cycle when the ioctl was entered (the event's cycle is its return).
        start: u64,
        errno: i32,
        /// The job sequence number for SUBMIT, WAIT and JOB_STATS, else 0.
        seq: u64,
    },
    /// A job left the queue and went onto the device.
    JobStart {
        ctx: u32,
        seq: u64,
        job: u64,
        descs: u32,
    },
    /// Descriptors `first..first+count` of a job were copied into the ring
    /// (the last one may be the driver's FENCE, index = the job's length).
    RingPush {
        job: u64,
        first: u32,
        count: u32,
        tail: u32,
    },
    /// An interrupt was taken (the `IRQ_STATUS` bits).
    Irq { status: u32 },
    /// A job finished.
    JobEnd {
        /// Device cycle when the job started.
        start: u64,
        ctx: u32,
        seq: u64,
        job: u64,
        status: u32,
        error_code: u32,
        fault_addr: u64,
    },
    /// The driver reset the device.
    Reset { reason: &'static str },
    /// A scripted fault fired or was armed.
    Fault { job: u64, what: String },
}

/// One entry of the combined timeline.
#[derive(Debug, Clone)]
pub enum TraceEvent {
    Shim(ShimEvent),
    Hw(Event),
}

/// The combined timeline: `(cycle, event)` in the order things happened.
pub type TraceLog = Arc<Mutex<Vec<(u64, TraceEvent)>>>;

/// The model's sink: appends hardware events to the shared log.
#[derive(Debug, Clone)]
pub struct LogSink(pub TraceLog);

impl EventSink for LogSink {
    fn event(&mut self, cycle: u64, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push((cycle, TraceEvent::Hw(event)));
        }
    }
}

/// Hardware events with their cycles.
pub type HwEvents = Vec<(u64, Event)>;
/// Driver events with their cycles.
pub type ShimEvents = Vec<(u64, ShimEvent)>;

/// Splits a log into the hardware events (for `npukit-traces` writers) and
/// the driver events.
pub fn split(log: &[(u64, TraceEvent)]) -> (HwEvents, ShimEvents) {
    let mut hw = Vec::new();
    let mut sw = Vec::new();
    for (c, e) in log {
        match e {
            TraceEvent::Hw(h) => hw.push((*c, h.clone())),
            TraceEvent::Shim(s) => sw.push((*c, s.clone())),
        }
    }
    (hw, sw)
}

/// Process id of the driver's tracks in the Perfetto output (the NPU is pid 1).
pub const DRIVER_PID: u64 = 2;
/// Thread id of the driver-wide track; context N is `DRIVER_TID + N`.
pub const DRIVER_TID: u64 = 100;

fn esc(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// Writes the combined timeline as Perfetto / Chrome trace-event JSON: the
/// hardware tracks exactly as `npukit_traces::write_perfetto` writes them (pid
/// 1), plus a `driver` process (pid 2) with a track for the driver (resets,
/// interrupts, ring pushes, faults) and one per context (its ioctls as slices
/// from entry to return, its jobs as slices from start to end). Timestamps are
/// µs at the configured clock, as for the hardware.
pub fn write_perfetto(
    log: &[(u64, TraceEvent)],
    cfg: &NpuConfig,
    out: &mut impl Write,
) -> io::Result<()> {
    let (hw, sw) = split(log);
    let mut buf = Vec::new();
    npukit_traces::write_perfetto(&hw, cfg, &mut buf)?;
    let tail = b"\n]}\n";
    if !buf.ends_with(tail) {
        return Err(io::Error::other("unexpected end of the hardware trace"));
    }
    buf.truncate(buf.len() - tail.len());
    out.write_all(&buf)?;
    let mhz = cfg.clock.freq_mhz.max(1) as f64;
    let us = |c: u64| c as f64 / mhz;
    let mut ev = |s: String| -> io::Result<()> { write!(out, ",\n{s}") };
    ev(format!(
        r#"{{"ph":"M","pid":{DRIVER_PID},"tid":0,"name":"process_name","args":{{"name":"driver"}}}}"#
    ))?;
    ev(format!(
        r#"{{"ph":"M","pid":{DRIVER_PID},"tid":{DRIVER_TID},"name":"thread_name","args":{{"name":"driver"}}}}"#
    ))?;
    let mut named = std::collections::BTreeSet::new();
    for (cycle, e) in &sw {
        let ctx_of = |ctx: u32| DRIVER_TID + ctx as u64;
        if let ShimEvent::Ioctl { ctx, .. } | ShimEvent::JobStart { ctx, .. } = e {
            if named.insert(*ctx) {
                ev(format!(
                    r#"{{"ph":"M","pid":{DRIVER_PID},"tid":{},"name":"thread_name","args":{{"name":"context {ctx}"}}}}"#,
                    ctx_of(*ctx)
                ))?;
            }
        }
        let instant = |name: String, args: String| {
            format!(
                r#"{{"ph":"i","s":"t","pid":{DRIVER_PID},"tid":{DRIVER_TID},"ts":{},"name":"{}","args":{{{args}}}}}"#,
                us(*cycle),
                esc(&name)
            )
        };
        match e {
            ShimEvent::Ioctl {
                ctx,
                name,
                start,
                errno,
                seq,
            } => ev(format!(
                r#"{{"ph":"X","pid":{DRIVER_PID},"tid":{},"ts":{},"dur":{},"name":"{name}","args":{{"errno":{errno},"seq":{seq},"cycle":{start},"end_cycle":{cycle}}}}}"#,
                ctx_of(*ctx),
                us(*start),
                us(cycle - start)
            ))?,
            ShimEvent::JobStart { .. } => {}
            ShimEvent::JobEnd {
                start,
                ctx,
                seq,
                job,
                status,
                error_code,
                fault_addr,
            } => ev(format!(
                r#"{{"ph":"X","pid":{DRIVER_PID},"tid":{},"ts":{},"dur":{},"name":"job {job} (seq {seq})","args":{{"status":{status},"error_code":{error_code},"fault_addr":{fault_addr},"cycle":{start},"end_cycle":{cycle}}}}}"#,
                ctx_of(*ctx),
                us(*start),
                us(cycle - start)
            ))?,
            ShimEvent::RingPush {
                job,
                first,
                count,
                tail,
            } => ev(instant(
                format!("ring push job {job} [{first}..{}]", first + count),
                format!(r#""tail":{tail}"#),
            ))?,
            ShimEvent::Irq { status } => ev(instant(
                format!("IRQ {status:#x}"),
                format!(r#""status":{status}"#),
            ))?,
            ShimEvent::Reset { reason } => ev(instant(format!("reset: {reason}"), String::new()))?,
            ShimEvent::Fault { job, what } => {
                ev(instant(format!("fault job {job}: {what}"), String::new()))?
            }
        }
    }
    writeln!(out, "\n]}}")
}
