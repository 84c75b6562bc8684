//! Driver-side trace events, stamped with the device clock so that they sit on
//! the same timeline as the hardware events the model emits: a user sees their
//! SUBMIT, the ring pushes it became, the descriptors executing, and the
//! interrupt that completed the job.
//!
//! With tracing on ([`crate::Options::trace`]), the model is built with a sink
//! that records every hardware [`Event`] into the same log, in order.

use std::sync::{Arc, Mutex};

use npukit_sim::{Event, EventSink};

/// What the driver did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimEvent {
    /// An ioctl returned (`errno` 0 on success).
    Ioctl {
        ctx: u32,
        name: &'static str,
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
