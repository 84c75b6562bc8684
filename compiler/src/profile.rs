//! Per-layer timing of a compiled program, measured from the device's events
//! as they happen: an [`EventSink`] that keeps a few counters per layer, not
//! the events (so a ResNet-sized run needs no memory for them), and optionally
//! the first `trace_cap` events for traces. `npukit run` and `npukit explore`
//! both take their per-layer figures from it.
//!
//! Events name ring slots, which repeat when the ring is smaller than the
//! program (refilled by [`npukit_sim::run::RingRun`]) and can be refilled
//! while a descriptor read from them still waits in a unit's queue. So the
//! profiler does not read slots at all: the command processor dispatches in
//! program order, each unit issues in its queue's order and runs one
//! descriptor at a time, so the n-th dispatch is program index n, an issue is
//! the oldest dispatched descriptor of its unit, and a completion is the
//! unit's running one (NOP and FENCE complete on the command processor, the
//! latest it dispatched).

use std::collections::VecDeque;

use npukit_abi::Opcode;
use npukit_sim::event::{Engine, Event, EventSink};

/// Measured figures of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerTime {
    /// First cycle one of its descriptors was dispatched to a unit's queue.
    pub dispatched: u64,
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
    /// Cycles the compute unit spent on any of its descriptors (also MAX:
    /// pooling, and the one-byte relays that carry a token).
    pub unit_busy: u64,
    /// Cycles in which the compute unit, the load unit or the store unit
    /// executed one of its descriptors (at least `unit_busy`).
    pub active: u64,
}

/// The execution units that run descriptors from a queue.
const UNITS: [Engine; 3] = [Engine::Load, Engine::Compute, Engine::Store];

fn unit_slot(e: Engine) -> Option<usize> {
    UNITS.iter().position(|u| *u == e)
}

/// The per-layer event sink (see the module docs).
#[derive(Debug, Clone)]
pub struct Profiler {
    desc_layer: Vec<Option<u32>>,
    /// Descriptors dispatched so far (the next dispatch's program index).
    dispatched: usize,
    queued: [VecDeque<usize>; 3],
    /// The descriptor each unit runs: (program index, issue cycle).
    running: [Option<(usize, u64)>; 3],
    /// The command processor's latest NOP or FENCE.
    cmd: Option<usize>,
    /// Cycle of the previous event (the units' state is constant in between).
    now: u64,
    t: Vec<LayerTime>,
    seen: Vec<bool>,
    cfirst: Vec<u64>,
    /// Events kept for traces (the first `trace_cap`).
    pub trace: Vec<(u64, Event)>,
    trace_cap: usize,
    /// Events not kept because the trace was full.
    pub dropped: u64,
}

impl Profiler {
    /// For a program with `desc_layer` (as [`crate::Compiled::desc_layer`]),
    /// `layers` layers, run through a ring of `ring` entries (any size: the
    /// profiler does not depend on it); keeps up to `trace_cap` events.
    pub fn new(desc_layer: &[Option<u32>], layers: usize, _ring: u32, trace_cap: usize) -> Self {
        Profiler {
            desc_layer: desc_layer.to_vec(),
            dispatched: 0,
            queued: Default::default(),
            running: [None; 3],
            cmd: None,
            now: 0,
            t: vec![
                LayerTime {
                    dispatched: u64::MAX,
                    first: u64::MAX,
                    ..LayerTime::default()
                };
                layers
            ],
            seen: vec![false; layers],
            cfirst: vec![u64::MAX; layers],
            trace: Vec::new(),
            trace_cap,
            dropped: 0,
        }
    }

    fn layer(&self, index: usize) -> Option<usize> {
        self.desc_layer
            .get(index)
            .copied()
            .flatten()
            .map(|l| l as usize)
    }

    /// Charges the cycles since the previous event to the layers whose
    /// descriptors ran in them.
    fn advance(&mut self, cycle: u64) {
        let dt = cycle.saturating_sub(self.now);
        self.now = self.now.max(cycle);
        if dt == 0 {
            return;
        }
        let mut charged = [usize::MAX; 3];
        for (u, r) in self.running.iter().enumerate() {
            let Some(l) = r.and_then(|(i, _)| self.layer(i)) else {
                continue;
            };
            if UNITS[u] == Engine::Compute {
                self.t[l].unit_busy += dt;
            }
            if !charged.contains(&l) {
                charged[u] = l;
                self.t[l].active += dt;
            }
        }
    }

    /// The figures of every layer, in layer order.
    pub fn layers(&self) -> Vec<LayerTime> {
        let start = self
            .t
            .iter()
            .map(|t| t.first)
            .min()
            .filter(|&f| f != u64::MAX)
            .unwrap_or(0);
        let mut end = start;
        self.t
            .iter()
            .zip(&self.seen)
            .map(|(t, &seen)| {
                if !seen {
                    return LayerTime::default();
                }
                let cycles = t.last.saturating_sub(end);
                end = end.max(t.last);
                LayerTime {
                    dispatched: t.dispatched.min(t.first),
                    cycles,
                    ..*t
                }
            })
            .collect()
    }

    fn issued(&mut self, l: usize, cycle: u64, compute: bool) {
        self.seen[l] = true;
        self.t[l].first = self.t[l].first.min(cycle);
        if compute {
            self.cfirst[l] = self.cfirst[l].min(cycle);
        }
    }

    fn completed(&mut self, l: usize, cycle: u64, compute_issue: Option<u64>) {
        let t = &mut self.t[l];
        t.last = t.last.max(cycle);
        if let Some(issue) = compute_issue {
            t.compute_busy += cycle - issue;
            t.compute_span = t.compute_span.max(cycle - self.cfirst[l].min(cycle));
        }
    }
}

/// MATMUL, ACT and ADD: a layer's work (MAX is also the one-byte relay that
/// only carries a token).
fn is_work(unit: Engine, opcode: Opcode) -> bool {
    unit == Engine::Compute && matches!(opcode, Opcode::Matmul | Opcode::Act | Opcode::Add)
}

impl EventSink for Profiler {
    fn event(&mut self, cycle: u64, event: Event) {
        self.advance(cycle);
        match &event {
            Event::Dispatch { unit, .. } => {
                let i = self.dispatched;
                self.dispatched += 1;
                match unit_slot(*unit) {
                    Some(u) => self.queued[u].push_back(i),
                    None => self.cmd = Some(i),
                }
                if let Some(l) = self.layer(i) {
                    let t = &mut self.t[l];
                    t.dispatched = t.dispatched.min(cycle);
                    if unit_slot(*unit).is_none() {
                        // NOP and FENCE start when dispatched.
                        self.issued(l, cycle, false);
                    }
                }
            }
            Event::Issue { unit, opcode, .. } => {
                if let Some(u) = unit_slot(*unit) {
                    if let Some(i) = self.queued[u].pop_front() {
                        self.running[u] = Some((i, cycle));
                        if let Some(l) = self.layer(i) {
                            self.issued(l, cycle, is_work(*unit, *opcode));
                        }
                    }
                }
            }
            Event::Complete { unit, opcode, .. } => {
                let done = match unit_slot(*unit) {
                    Some(u) => self.running[u].take(),
                    None => self.cmd.take().map(|i| (i, cycle)),
                };
                if let Some((i, issue)) = done {
                    if let Some(l) = self.layer(i) {
                        let work = is_work(*unit, *opcode).then_some(issue);
                        self.completed(l, cycle, work);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use npukit_abi::desc::Op;
    use npukit_sim::run::{ring_entries, run_program};
    use npukit_sim::{act, mac, ModelDevice, NpuConfig, VecMemory};

    /// Each layer's compute-unit cycles from the timing rules (C1a, C2, C3):
    /// its MATMULs, ACTs and ADDs, one at a time.
    fn busy_from_rules(c: &crate::Compiled, cfg: &NpuConfig) -> Vec<u64> {
        let (r, cols) = (cfg.array.rows, cfg.array.cols);
        let mut busy = vec![0; c.layers.len()];
        for (d, l) in c.program.descs().iter().zip(&c.desc_layer) {
            let cy = match &d.op {
                Op::Matmul(m) => mac::matmul_latency(r, cols, m.m as u32),
                Op::Act(a) => act::act_latency(cols, a),
                Op::Add(a) => act::elementwise_latency(cols, a.len),
                _ => 0,
            };
            if let Some(l) = l {
                busy[*l as usize] += cy;
            }
        }
        busy
    }

    fn profile(cfg: &NpuConfig) -> (crate::Compiled, Vec<LayerTime>, u64) {
        let w = crate::builtin_example();
        let c = crate::compile(&w, cfg).unwrap();
        let mut mem = VecMemory::new(c.mem_bytes as usize);
        crate::load_image(&c, &mut mem).unwrap();
        let ring = ring_entries(c.program.len(), cfg.cmdproc.max_ring);
        let p = Profiler::new(&c.desc_layer, c.layers.len(), ring, 0);
        let mut dev = ModelDevice::with_sink(cfg, p);
        let out = run_program(&mut dev, &mut mem, c.ring_base, c.program.descs(), 1 << 30).unwrap();
        (c, dev.into_sink().layers(), out.counters.cycles)
    }

    /// The per-layer compute figures do not depend on the ring size: with a
    /// ring far smaller than the program (refilled while it runs, so events
    /// name reused slots) every layer keeps exactly its own compute cycles.
    #[test]
    fn small_rings_keep_every_layers_compute() {
        for max_ring in [4096, 64, 16, 8] {
            let mut cfg = NpuConfig::default();
            cfg.cmdproc.max_ring = max_ring;
            let (c, times, cycles) = profile(&cfg);
            assert!(max_ring > 64 || c.program.len() > 2 * max_ring as usize);
            let want = busy_from_rules(&c, &cfg);
            let got: Vec<u64> = times.iter().map(|t| t.compute_busy).collect();
            assert_eq!(got, want, "max_ring {max_ring}");
            assert_eq!(
                times.iter().map(|t| t.cycles).sum::<u64>(),
                times.iter().map(|t| t.last).max().unwrap() - times[0].first,
                "max_ring {max_ring}"
            );
            for t in &times {
                assert!(
                    t.last <= cycles && t.compute_span >= t.compute_busy,
                    "{t:?}"
                );
                assert!(t.compute_busy > 0 && t.unit_busy >= t.compute_busy, "{t:?}");
                assert!(
                    t.active >= t.unit_busy && t.active <= t.last - t.dispatched,
                    "{t:?}"
                );
            }
        }
    }
}
