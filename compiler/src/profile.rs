//! Per-layer timing of a compiled program, measured from the device's events
//! as they happen: an [`EventSink`] that keeps a few counters per layer, not
//! the events (so a ResNet-sized run needs no memory for them), and optionally
//! the first `trace_cap` events for traces.
//!
//! Events name ring slots; with a ring smaller than the program (refilled by
//! [`npukit_sim::run::RingRun`]) a slot is mapped back to the program index
//! nearest the newest one seen, which is exact because at most a ring's worth
//! of descriptors is ever in flight.

use npukit_abi::Opcode;
use npukit_sim::event::{Engine, Event, EventSink};

/// Measured figures of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerTime {
    /// First cycle any of its descriptors issued.
    pub first: u64,
    /// Last completion of any of its descriptors.
    pub last: u64,
    /// Cycles the layer adds to the run: from the previous layers' last
    /// completion (or the start) to its own (0 when it ends earlier). The
    /// layers' cycles add up to the run's.
    pub cycles: u64,
    /// From its first MATMUL, ACT or ADD issue to the last one's completion.
    pub compute_span: u64,
    /// Cycles the compute unit spent on its MATMULs, ACTs and ADDs.
    pub compute_busy: u64,
}

/// The per-layer event sink (see the module docs).
#[derive(Debug, Clone)]
pub struct Profiler {
    ring: i64,
    hi: i64,
    desc_layer: Vec<Option<u32>>,
    first: Vec<u64>,
    last: Vec<u64>,
    cfirst: Vec<u64>,
    clast: Vec<u64>,
    busy: Vec<u64>,
    compute_issue: u64,
    /// Events kept for traces (the first `trace_cap`).
    pub trace: Vec<(u64, Event)>,
    trace_cap: usize,
    /// Events not kept because the trace was full.
    pub dropped: u64,
}

impl Profiler {
    /// For a program with `desc_layer` (as [`crate::Compiled::desc_layer`]),
    /// `layers` layers, run through a ring of `ring` entries; keeps up to
    /// `trace_cap` events.
    pub fn new(desc_layer: &[Option<u32>], layers: usize, ring: u32, trace_cap: usize) -> Self {
        Profiler {
            ring: ring as i64,
            hi: -1,
            desc_layer: desc_layer.to_vec(),
            first: vec![u64::MAX; layers],
            last: vec![0; layers],
            cfirst: vec![u64::MAX; layers],
            clast: vec![0; layers],
            busy: vec![0; layers],
            compute_issue: 0,
            trace: Vec::new(),
            trace_cap,
            dropped: 0,
        }
    }

    fn program_index(&mut self, slot: u32) -> usize {
        let lo = self.hi - self.ring / 2;
        let p = lo + (slot as i64 - lo).rem_euclid(self.ring);
        self.hi = self.hi.max(p);
        p.max(0) as usize
    }

    /// The figures of every layer, in layer order.
    pub fn layers(&self) -> Vec<LayerTime> {
        let mut end = 0u64;
        let mut start = self.first.iter().copied().min().unwrap_or(0);
        if start == u64::MAX {
            start = 0;
        }
        end = end.max(start);
        (0..self.first.len())
            .map(|i| {
                let seen = self.first[i] != u64::MAX;
                let last = self.last[i];
                let cycles = if seen { last.saturating_sub(end) } else { 0 };
                if seen {
                    end = end.max(last);
                }
                let compute_span = if self.cfirst[i] == u64::MAX {
                    0
                } else {
                    self.clast[i] - self.cfirst[i]
                };
                LayerTime {
                    first: if seen { self.first[i] } else { 0 },
                    last,
                    cycles,
                    compute_span,
                    compute_busy: self.busy[i],
                }
            })
            .collect()
    }
}

impl EventSink for Profiler {
    fn event(&mut self, cycle: u64, event: Event) {
        match &event {
            Event::Issue { unit, index, .. } | Event::Complete { unit, index, .. } => {
                let p = self.program_index(*index);
                if let Some(Some(l)) = self.desc_layer.get(p) {
                    let l = *l as usize;
                    let issue = matches!(event, Event::Issue { .. });
                    // MATMUL, ACT and ADD: the layer's work (MAX is also the
                    // one-byte relay that only carries a token).
                    let compute = *unit == Engine::Compute
                        && matches!(
                            event,
                            Event::Issue {
                                opcode: Opcode::Matmul | Opcode::Act | Opcode::Add,
                                ..
                            } | Event::Complete {
                                opcode: Opcode::Matmul | Opcode::Act | Opcode::Add,
                                ..
                            }
                        );
                    if issue {
                        self.first[l] = self.first[l].min(cycle);
                        if compute {
                            self.cfirst[l] = self.cfirst[l].min(cycle);
                            self.compute_issue = cycle;
                        }
                    } else {
                        self.last[l] = self.last[l].max(cycle);
                        if compute {
                            self.clast[l] = self.clast[l].max(cycle);
                            self.busy[l] += cycle - self.compute_issue;
                        }
                    }
                }
            }
            Event::Dispatch { index, .. } => {
                self.program_index(*index);
            }
            _ => {}
        }
        if self.trace.len() < self.trace_cap {
            self.trace.push((cycle, event));
        } else {
            self.dropped += 1;
        }
    }
}
