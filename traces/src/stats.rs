//! `stats.json`: every counter, the resolved configuration, the workload, and the
//! figures derived from them (units in the field names). Also [`summarize`], the
//! same per-unit figures rebuilt from an event stream, so the two can be
//! cross-checked.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;

use npukit_abi::desc::Op;
use npukit_sim::{Counters, Engine, Event, NpuConfig};

use crate::replay::{eng, slices};

/// One unit's stall cycles by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stalls {
    /// Cycles with a descriptor queued and its wait tokens not available.
    pub token_cycles: u64,
    /// Cycles the unit wanted the memory port and did not get it (`None`: the
    /// unit has no memory port, and no such counter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_cycles: Option<u64>,
}

/// A figure for each of the three execution units.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PerUnit<T> {
    pub load: T,
    pub compute: T,
    pub store: T,
}

/// The report of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStats {
    /// Workload name (caller-supplied).
    pub workload: String,
    /// What the workload is (caller-supplied; may be empty).
    pub description: String,
    /// The resolved configuration the run used.
    pub config: NpuConfig,
    /// Every performance counter, by register name (`PERF_CYCLES`, ...).
    pub counters: BTreeMap<&'static str, u64>,
    /// Simulated cycles (`PERF_CYCLES`).
    pub cycles: u64,
    /// Simulated time at `config.clock.freq_mhz`, µs.
    pub time_us: f64,
    /// Host wall-clock time of the simulation, seconds (caller-supplied).
    pub wall_s: f64,
    /// Simulation speed, simulated cycles per wall-clock second (`None` when the
    /// wall time is zero).
    pub sim_cycles_per_s: Option<f64>,
    /// Useful MACs (`PERF_MACS`).
    pub macs: u64,
    /// `macs / (cycles * rows * cols)`: the fraction of PE-cycles doing useful work.
    pub mac_utilisation: f64,
    /// `macs / cycles`.
    pub macs_per_cycle: f64,
    /// Bytes LOAD read from device memory (`PERF_DMA_RD_BYTES`).
    pub dram_read_bytes: u64,
    /// Bytes STORE wrote to device memory (`PERF_DMA_WR_BYTES`).
    pub dram_write_bytes: u64,
    /// Descriptors completed (`PERF_DESC_DONE`).
    pub descriptors: u64,
    /// Memory-port beats accepted (`PERF_MEM_BEATS`).
    pub mem_beats: u64,
    /// Busy cycles per unit.
    pub busy_cycles: PerUnit<u64>,
    /// Busy cycles / cycles, per unit.
    pub busy_fraction: PerUnit<f64>,
    /// Stall cycles per unit, by cause.
    pub stall_cycles: PerUnit<Stalls>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl RunStats {
    /// Derives the report from a run's counters.
    pub fn new(
        workload: &str,
        description: &str,
        config: &NpuConfig,
        counters: &Counters,
        wall_s: f64,
    ) -> Self {
        let c = counters;
        let cycles = c.cycles;
        let cy = cycles as f64;
        let peak = config.peak_macs_per_cycle() as f64;
        RunStats {
            workload: workload.to_owned(),
            description: description.to_owned(),
            config: config.clone(),
            counters: c.named().into_iter().collect(),
            cycles,
            time_us: cy / config.clock.freq_mhz.max(1) as f64,
            wall_s,
            sim_cycles_per_s: (wall_s > 0.0).then(|| cy / wall_s),
            macs: c.macs,
            mac_utilisation: ratio(c.macs as f64, cy * peak),
            macs_per_cycle: ratio(c.macs as f64, cy),
            dram_read_bytes: c.dma_rd_bytes,
            dram_write_bytes: c.dma_wr_bytes,
            descriptors: c.desc_done,
            mem_beats: c.mem_beats,
            busy_cycles: PerUnit {
                load: c.load_busy,
                compute: c.compute_busy,
                store: c.store_busy,
            },
            busy_fraction: PerUnit {
                load: ratio(c.load_busy as f64, cy),
                compute: ratio(c.compute_busy as f64, cy),
                store: ratio(c.store_busy as f64, cy),
            },
            stall_cycles: PerUnit {
                load: Stalls {
                    token_cycles: c.load_token_stall,
                    mem_cycles: Some(c.load_mem_stall),
                },
                compute: Stalls {
                    token_cycles: c.compute_token_stall,
                    mem_cycles: None,
                },
                store: Stalls {
                    token_cycles: c.store_token_stall,
                    mem_cycles: Some(c.store_mem_stall),
                },
            },
        }
    }
}

/// Writes `stats` as pretty-printed JSON with a trailing newline.
pub fn write_stats_json(stats: &RunStats, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, stats)?;
    writeln!(out)
}

/// One engine's activity as seen in the event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UnitSummary {
    /// Dispatch events.
    pub dispatched: u64,
    /// Issue events (for the command processor, which has none: 0).
    pub issued: u64,
    /// Complete events.
    pub completed: u64,
    /// Sum over completed descriptors of Complete - Issue (Complete - Dispatch for
    /// the command processor): equals the unit's `*_busy` counter when the
    /// stream covers the whole run and nothing is left executing.
    pub busy_cycles: u64,
    /// Descriptors started and not completed when the stream ends.
    pub unfinished: u64,
}

/// Figures rebuilt from an event stream alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EventSummary {
    /// Per engine, in [`Engine::ALL`] order (cmd, load, compute, store).
    pub units: [UnitSummary; 4],
    /// Cycle of the first and last event (0 for an empty stream).
    pub first_cycle: u64,
    pub last_cycle: u64,
    /// Memory-port requests (= `PERF_MEM_BEATS`), and how many were writes.
    pub mem_requests: u64,
    pub mem_writes: u64,
    pub mem_responses: u64,
    /// Useful MACs of the completed MATMULs (= `PERF_MACS`).
    pub macs: u64,
    pub token_pushes: u64,
    pub token_pops: u64,
    pub fences: u64,
    pub irqs: u64,
    pub errors: u64,
}

impl EventSummary {
    /// The summary of one engine.
    pub fn unit(&self, e: Engine) -> &UnitSummary {
        &self.units[eng(e)]
    }

    /// Completed descriptors over all engines (= `PERF_DESC_DONE`).
    pub fn completed(&self) -> u64 {
        self.units.iter().map(|u| u.completed).sum()
    }
}

/// Counts and busy cycles per engine, derived from events.
pub fn summarize(events: &[(u64, Event)]) -> EventSummary {
    let mut s = EventSummary {
        first_cycle: events.first().map_or(0, |e| e.0),
        last_cycle: events.last().map_or(0, |e| e.0),
        ..EventSummary::default()
    };
    for (_, e) in events {
        match *e {
            Event::MemReq { kind, .. } => {
                s.mem_requests += 1;
                s.mem_writes += u64::from(kind.is_write());
            }
            Event::MemResp { .. } => s.mem_responses += 1,
            Event::Dispatch { unit, .. } => s.units[eng(unit)].dispatched += 1,
            Event::Issue { unit, .. } => s.units[eng(unit)].issued += 1,
            Event::Complete { .. } => {}
            Event::TokenPush { .. } => s.token_pushes += 1,
            Event::TokenPop { .. } => s.token_pops += 1,
            Event::Fence { .. } => s.fences += 1,
            Event::Irq { .. } => s.irqs += 1,
            Event::Error { .. } => s.errors += 1,
        }
    }
    for sl in slices(events) {
        let u = &mut s.units[eng(sl.unit)];
        if sl.finished {
            u.completed += 1;
            u.busy_cycles += sl.cycles();
            if let Some(Op::Matmul(m)) = sl.desc.map(|d| d.op) {
                s.macs += npukit_sim::mac::matmul_macs(&m);
            }
        } else {
            u.unfinished += 1;
        }
    }
    s
}
