//! Simulating one point: compile the workload for the point's configuration,
//! run it on the cycle-accurate model, check the outputs against the CPU
//! reference bit for bit, and keep every counter, the per-layer cycle breakdown
//! and the local-memory traffic of the program.
//!
//! Everything in a [`SimResult`] depends only on the configuration, the
//! workload and the code of the model and compiler (the cache key, see
//! [`crate::cache`]); the energy model and the estimates are derived from it
//! afterwards, so changing the energy table re-simulates nothing.

use std::collections::BTreeMap;

use npukit_abi::desc::Op;
use npukit_compiler::profile::{LayerTime, Profiler};
use npukit_compiler::{Compiled, Tensor, Workload};
use npukit_sim::run;
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};
use serde::{Deserialize, Serialize};

use crate::estimate::{self, Folds};

/// One layer's measured figures. The layer's span runs from the first dispatch
/// of one of its descriptors to the last completion; spans of consecutive
/// layers can overlap (the next layer's first loads start early).
/// The span's cycles are split three ways:
/// * `compute_cycles`: the compute unit executes one of the layer's descriptors;
/// * `memory_stall_cycles`: it does not, while a LOAD or STORE of the layer moves data;
/// * `dependency_stall_cycles`: neither: the layer waits on tokens, dispatch,
///   or other layers' work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerFigures {
    pub name: String,
    pub descriptors: usize,
    pub first_cycle: u64,
    pub last_cycle: u64,
    pub cycles: u64,
    pub macs: u64,
    /// Bytes the layer's LOADs and STOREs move (from the compiler's schedule).
    pub dram_bytes: u64,
    pub compute_cycles: u64,
    pub memory_stall_cycles: u64,
    pub dependency_stall_cycles: u64,
    /// The layer's MATMULs at their unoverlapped latency under each array
    /// option of rule C1 (see [`crate::estimate`]).
    pub folds: Folds,
}

/// Local-memory and array traffic of the program, counted from its descriptors
/// (every descriptor runs exactly once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// MATMUL descriptors: one weight fold each.
    pub folds: u64,
    /// Rows streamed by all MATMULs (the sum of their `m`).
    pub matmul_rows: u64,
    pub spad_read_bytes: u64,
    pub spad_write_bytes: u64,
    pub acc_read_bytes: u64,
    pub acc_write_bytes: u64,
    /// Elements the activation unit processes (ACT, ADD, MAX).
    pub act_elements: u64,
    /// Descriptor bytes fetched from device memory.
    pub fetch_bytes: u64,
}

impl Traffic {
    /// Counts a program's traffic.
    pub fn of(descs: &[npukit_abi::Descriptor]) -> Traffic {
        let mut t = Traffic {
            fetch_bytes: (descs.len() * npukit_abi::DESC_BYTES) as u64,
            ..Traffic::default()
        };
        for d in descs {
            match &d.op {
                // A LOAD writes local memory, a STORE reads it.
                Op::Load(x) | Op::Store(x) => {
                    let slot = match (matches!(d.op, Op::Load(_)), x.acc) {
                        (true, true) => &mut t.acc_write_bytes,
                        (true, false) => &mut t.spad_write_bytes,
                        (false, true) => &mut t.acc_read_bytes,
                        (false, false) => &mut t.spad_read_bytes,
                    };
                    *slot += x.rows as u64 * x.row_bytes as u64;
                }
                Op::Matmul(m) => {
                    let (m_, k, n) = (m.m as u64, m.k as u64, m.n as u64);
                    t.folds += 1;
                    t.matmul_rows += m_;
                    t.spad_read_bytes += m_ * k + k * n;
                    t.acc_write_bytes += 4 * m_ * n;
                    if m.accumulate {
                        t.acc_read_bytes += 4 * m_ * n;
                    }
                }
                Op::Act(a) => {
                    let e = a.rows as u64 * a.cols as u64;
                    let cols = a.cols as u64;
                    t.act_elements += e;
                    t.acc_read_bytes += 4 * e;
                    if a.bias.is_some() {
                        t.acc_read_bytes += 4 * cols;
                    }
                    if a.qtab.is_some() {
                        t.acc_read_bytes += npukit_abi::desc::QTAB_ENTRY_BYTES as u64 * cols;
                    }
                    t.spad_write_bytes += e;
                }
                Op::Add(a) => {
                    let e = a.len as u64;
                    t.act_elements += e;
                    t.spad_read_bytes += 2 * e;
                    t.acc_write_bytes += 4 * e;
                    if a.accumulate {
                        t.acc_read_bytes += 4 * e;
                    }
                }
                Op::Max(m) => {
                    let e = m.len as u64;
                    t.act_elements += e;
                    t.spad_read_bytes += 2 * e;
                    t.spad_write_bytes += e;
                }
                Op::Nop | Op::Fence(_) => {}
            }
        }
        t
    }
}

/// What one point's simulation produced. `error` is set when the point could
/// not be run (the workload does not fit the configuration, the device faulted,
/// the result differs from the reference); the other fields are then empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimResult {
    pub error: Option<String>,
    pub cycles: u64,
    /// Every performance counter by register name (`PERF_CYCLES`, ...).
    pub counters: BTreeMap<String, u64>,
    pub descriptors: usize,
    pub layers: Vec<LayerFigures>,
    pub traffic: Traffic,
}

impl SimResult {
    fn failed(message: String) -> SimResult {
        SimResult {
            error: Some(message),
            ..SimResult::default()
        }
    }

    /// A counter by register name (0 when absent).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }
}

/// Each layer's figures from the compiler's per-layer profiler (the sink
/// `npukit run` uses too).
fn layer_figures(c: &Compiled, times: &[LayerTime], folds: &[Folds]) -> Vec<LayerFigures> {
    c.layers
        .iter()
        .zip(times)
        .zip(folds)
        .enumerate()
        .map(|(li, ((l, t), f))| {
            let cycles = t.last - t.dispatched.min(t.last);
            LayerFigures {
                name: l.name.clone(),
                descriptors: c
                    .desc_layer
                    .iter()
                    .filter(|o| **o == Some(li as u32))
                    .count(),
                first_cycle: t.dispatched.min(t.last),
                last_cycle: t.last,
                cycles,
                macs: l.macs,
                dram_bytes: l.dram_bytes,
                compute_cycles: t.unit_busy,
                memory_stall_cycles: t.active - t.unit_busy,
                dependency_stall_cycles: cycles.saturating_sub(t.active),
                folds: *f,
            }
        })
        .collect()
}

/// Compares every output with the reference; the error names the first difference.
fn check(c: &Compiled, mem: &VecMemory, reference: &[(String, Tensor)]) -> Result<(), String> {
    for (name, want) in reference {
        let got = npukit_compiler::read_output(c, mem, name).map_err(|e| e.to_string())?;
        if got.shape != want.shape {
            return Err(format!(
                "output `{name}`: NPU shape {:?}, reference {:?}",
                got.shape, want.shape
            ));
        }
        if let Some((i, g, w)) = got.first_difference(want) {
            return Err(format!(
                "output `{name}` differs from the CPU reference at element {i}: NPU {g}, reference {w}"
            ));
        }
    }
    Ok(())
}

/// Compiles, simulates and checks one point.
pub fn simulate(
    w: &Workload,
    reference: &[(String, Tensor)],
    cfg: &NpuConfig,
    max_cycles: u64,
) -> SimResult {
    let c = match npukit_compiler::compile(w, cfg) {
        Ok(c) => c,
        Err(e) => return SimResult::failed(format!("compile: {e}")),
    };
    if c.mem_bytes > cfg.dram.size_bytes {
        return SimResult::failed(format!(
            "the workload needs {} bytes of device memory; dram.size_bytes is {}",
            c.mem_bytes, cfg.dram.size_bytes
        ));
    }
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    if let Err(e) = npukit_compiler::load_image(&c, &mut mem) {
        return SimResult::failed(format!("load image: {e}"));
    }
    let ring = run::ring_entries(c.program.len(), cfg.cmdproc.max_ring);
    let profiler = Profiler::new(&c.desc_layer, c.layers.len(), ring, 0);
    let mut dev = ModelDevice::with_sink(cfg, profiler);
    let out = match run::run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        max_cycles,
    ) {
        Ok(o) => o,
        Err(e) => return SimResult::failed(format!("run: {e}")),
    };
    if let Err(e) = check(&c, &mem, reference) {
        return SimResult::failed(format!("wrong result: {e}"));
    }
    let times = dev.into_sink().layers();
    SimResult {
        error: None,
        cycles: out.counters.cycles,
        counters: out
            .counters
            .named()
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
        descriptors: c.program.len(),
        layers: layer_figures(&c, &times, &estimate::program_folds(&c, cfg)),
        traffic: Traffic::of(c.program.descs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The breakdown adds up, and its compute part equals the compute unit's busy
    /// counter when layers do not share the compute unit.
    #[test]
    fn builtin_example_breakdown_is_consistent() {
        let mut small_ring = NpuConfig::default();
        small_ring.cmdproc.max_ring = 16;
        for cfg in [NpuConfig::default(), small_ring] {
            breakdown_is_consistent(&cfg);
        }
    }

    /// With `cfg.cmdproc.max_ring` below the program's length the ring is
    /// refilled and events name ring slots, not program indices.
    fn breakdown_is_consistent(cfg: &NpuConfig) {
        let cfg = cfg.clone();
        let w = npukit_compiler::builtin_example();
        let r = npukit_compiler::reference(&w).unwrap();
        let s = simulate(&w, &r, &cfg, 10_000_000);
        assert_eq!(s.error, None);
        assert_eq!(s.layers.len(), 3);
        let mut compute = 0;
        for l in &s.layers {
            assert_eq!(
                l.compute_cycles + l.memory_stall_cycles + l.dependency_stall_cycles,
                l.cycles,
                "{l:?}"
            );
            assert!(
                l.compute_cycles > 0 && l.last_cycle <= s.cycles,
                "{l:?} {} {}",
                s.cycles,
                cfg.cmdproc.max_ring
            );
            compute += l.compute_cycles;
        }
        assert_eq!(compute, s.counter("PERF_COMPUTE_BUSY"));
        assert_eq!(
            s.counter("PERF_MACS"),
            s.layers.iter().map(|l| l.macs).sum::<u64>()
        );
        let c = npukit_compiler::compile(&w, &cfg).unwrap();
        let matmuls = c
            .program
            .descs()
            .iter()
            .filter(|d| matches!(d.op, Op::Matmul(_)))
            .count();
        assert_eq!(s.traffic.folds, matmuls as u64);
        // Every byte a LOAD brings in is written to local memory.
        assert_eq!(
            s.counter("PERF_DMA_RD_BYTES"),
            c.program
                .descs()
                .iter()
                .map(|d| match d.op {
                    Op::Load(x) => x.rows as u64 * x.row_bytes as u64,
                    _ => 0,
                })
                .sum::<u64>()
        );
    }

    #[test]
    fn a_workload_that_does_not_fit_is_an_error_result() {
        let w = npukit_compiler::builtin_example();
        let r = npukit_compiler::reference(&w).unwrap();
        // A scratchpad smaller than one weight tile (programs longer than
        // the ring are fine: the ring is refilled).
        let mut cfg = NpuConfig::default();
        cfg.memory.spad_bytes = 256;
        let s = simulate(&w, &r, &cfg, 10_000_000);
        assert!(
            s.error.as_deref().is_some_and(|e| e.contains("scratchpad")),
            "{s:?}"
        );
    }
}
