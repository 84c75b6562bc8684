//! First-order estimates of a point's cycles, shown beside the measured cycles
//! with their ratio, so users see where the cycle model departs from them.
//!
//! For a layer computing `y[M x N] = x[M x K] W[K x N]` on an `R x C` array:
//! * weight-stationary: `ceil(K/R) * ceil(N/C)` folds of `2R + C + M - 2`
//!   cycles each (each fold loads an `R x C` weight tile, then streams all `M`
//!   rows through it; rule C1 of docs/timing.md with the whole of `M` in one fold);
//! * weight-stationary with double-buffered weights: `R` for the first weight
//!   load, then the same folds at `R + C + M - 1` cycles each (the next fold's
//!   weights shift in while the current one streams);
//! * output-stationary: `ceil(M/R) * ceil(N/C)` folds of `2R + C + K - 2`
//!   cycles (each fold keeps an `R x C` output tile in place while `K` steps of
//!   activations and weights stream through);
//! * roofline: `max(MACs / (R * C), DRAM bytes / bytes_per_cycle)`, the bound
//!   of peak compute and peak bandwidth, with the layer's MACs and DRAM bytes as
//!   the compiler schedules them (every layer).
//!
//! The workload's estimate is the sum over its layers. None of them charges
//! for tiling `M` to fit the accumulator, dependency waits, the memory latency
//! or the fixed port priority; the measured/estimate ratio shows how much these
//! cost (a ratio below 1 shows what overlapping, e.g. double-buffered weights,
//! wins over the estimate's serial folds).

use npukit_compiler::Workload;
use npukit_sim::NpuConfig;
use serde::{Deserialize, Serialize};

use crate::simulate::SimResult;

/// A matrix product `[M x K] x [K x N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gemm {
    pub m: u64,
    pub k: u64,
    pub n: u64,
}

/// The workload's layers as matrix products, in order, by name.
pub fn gemms(w: &Workload) -> Vec<(String, Gemm)> {
    let g = w.graph();
    g.layers()
        .map(|ls| {
            ls.into_iter()
                .map(|(l, _)| {
                    (
                        l.name.clone(),
                        Gemm {
                            m: g.batch as u64,
                            k: l.in_features as u64,
                            n: l.out_features as u64,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn div_up(a: u64, b: u64) -> u64 {
    a.div_ceil(b.max(1))
}

/// Weight-stationary fold estimate of one product.
pub fn weight_stationary(g: Gemm, rows: u64, cols: u64) -> u64 {
    div_up(g.k, rows) * div_up(g.n, cols) * (2 * rows + cols + g.m - 2)
}

/// Weight-stationary estimate with a second weight bank: each fold's weights
/// shift in while the previous fold streams, so only the first load shows:
/// `R + folds * (R + C + M - 1)` (docs/timing.md C1b, back-to-back folds).
pub fn weight_stationary_double_buffered(g: Gemm, rows: u64, cols: u64) -> u64 {
    rows + div_up(g.k, rows) * div_up(g.n, cols) * (rows + cols + g.m - 1)
}

/// Output-stationary fold estimate of one product.
pub fn output_stationary(g: Gemm, rows: u64, cols: u64) -> u64 {
    div_up(g.m, rows) * div_up(g.n, cols) * (2 * rows + cols + g.k - 2)
}

/// Roofline bound (cycles) of `macs` and `bytes`.
pub fn roofline(macs: u64, bytes: u64, cfg: &NpuConfig) -> f64 {
    let compute = macs as f64 / cfg.peak_macs_per_cycle() as f64;
    let memory = bytes as f64 / cfg.dram.bytes_per_cycle as f64;
    compute.max(memory)
}

/// The estimates of one point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimates {
    pub weight_stationary_cycles: u64,
    pub weight_stationary_double_buffered_cycles: u64,
    pub output_stationary_cycles: u64,
    pub roofline_cycles: f64,
    /// The fold estimate of the point's own dataflow (and weight buffering);
    /// 0 when the workload has layers the fold formulas do not cover.
    pub fold_cycles: u64,
    /// Measured cycles / `fold_cycles`.
    pub fold_ratio: f64,
    /// Measured cycles / `roofline_cycles` (at least 1 unless the model is wrong).
    pub roofline_ratio: f64,
}

/// Estimates for a point, with `dataflow` the point's `array.dataflow` and
/// `double_buffer` its `array.weight_double_buffer`. The roofline bound covers
/// every layer the program measured; the fold formulas cover the layers
/// [`gemms`] knows the dimensions of, and are left at 0 (no estimate) unless
/// that is every layer with MACs.
pub fn estimate(
    gemms: &[(String, Gemm)],
    cfg: &NpuConfig,
    dataflow: &str,
    double_buffer: bool,
    r: &SimResult,
) -> Estimates {
    let (rows, cols) = (cfg.array.rows as u64, cfg.array.cols as u64);
    let mac_layers: Vec<&str> = r
        .layers
        .iter()
        .filter(|l| l.macs > 0)
        .map(|l| l.name.as_str())
        .collect();
    let known: Vec<Gemm> = mac_layers
        .iter()
        .filter_map(|n| gemms.iter().find(|(g, _)| g == n).map(|(_, g)| *g))
        .collect();
    let complete = known.len() == mac_layers.len();
    let sum = |f: fn(Gemm, u64, u64) -> u64| {
        if complete {
            known.iter().map(|g| f(*g, rows, cols)).sum()
        } else {
            0
        }
    };
    let ws = sum(weight_stationary);
    let wsdb = sum(weight_stationary_double_buffered);
    let os = sum(output_stationary);
    let roof = r
        .layers
        .iter()
        .map(|l| roofline(l.macs, l.dram_bytes, cfg))
        .sum::<f64>();
    let fold = if dataflow == "output-stationary" {
        os
    } else if double_buffer {
        wsdb
    } else {
        ws
    };
    let ratio = |est: f64| {
        if est > 0.0 {
            r.cycles as f64 / est
        } else {
            0.0
        }
    };
    Estimates {
        weight_stationary_cycles: ws,
        weight_stationary_double_buffered_cycles: wsdb,
        output_stationary_cycles: os,
        roofline_cycles: roof,
        fold_cycles: fold,
        fold_ratio: ratio(fold as f64),
        roofline_ratio: ratio(roof),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_formulas() {
        let g = Gemm {
            m: 16,
            k: 256,
            n: 128,
        };
        // 16 x 8 folds of 2*16 + 16 + 16 - 2 = 62 cycles.
        assert_eq!(weight_stationary(g, 16, 16), 16 * 8 * 62);
        // One load of 16, then 128 folds of 16 + 16 + 16 - 1 = 47 cycles.
        assert_eq!(
            weight_stationary_double_buffered(g, 16, 16),
            16 + 16 * 8 * 47
        );
        // 1 x 8 folds of 32 + 16 + 256 - 2 = 302 cycles.
        assert_eq!(output_stationary(g, 16, 16), 8 * 302);
        // Ragged edges count whole folds.
        assert_eq!(
            weight_stationary(Gemm { m: 1, k: 17, n: 1 }, 16, 16),
            2 * (32 + 16 + 1 - 2)
        );
    }

    #[test]
    fn roofline_takes_the_higher_bound() {
        let cfg = NpuConfig::default(); // 256 MAC/cycle, 16 B/cycle
        assert_eq!(roofline(256 * 100, 16 * 10, &cfg), 100.0);
        assert_eq!(roofline(256, 16 * 10, &cfg), 10.0);
    }

    #[test]
    fn no_fold_estimate_for_layers_without_dimensions() {
        use crate::simulate::LayerFigures;
        let layer = |name: &str, macs| LayerFigures {
            name: name.into(),
            descriptors: 1,
            first_cycle: 0,
            last_cycle: 1,
            cycles: 1,
            macs,
            dram_bytes: 1600,
            compute_cycles: 1,
            memory_stall_cycles: 0,
            dependency_stall_cycles: 0,
        };
        let cfg = NpuConfig::default();
        let g = vec![(
            "a".to_string(),
            Gemm {
                m: 16,
                k: 16,
                n: 16,
            },
        )];
        let mut r = SimResult {
            cycles: 500,
            layers: vec![layer("a", 4096), layer("pool", 0)],
            ..SimResult::default()
        };
        let e = estimate(&g, &cfg, "weight-stationary", false, &r);
        assert_eq!(e.fold_cycles, 2 * 16 + 16 + 16 - 2);
        // Both layers in the roofline: 1600 bytes at 16 B/cycle each.
        assert_eq!(e.roofline_cycles, 200.0);
        r.layers.push(layer("conv", 100));
        let e = estimate(&g, &cfg, "weight-stationary", false, &r);
        assert_eq!((e.fold_cycles, e.fold_ratio), (0, 0.0));
        assert_eq!(e.roofline_cycles, 300.0);
    }

    #[test]
    fn workload_layers_become_gemms() {
        let g = gemms(&npukit_compiler::builtin_example());
        let dims: Vec<_> = g.iter().map(|(_, g)| (g.m, g.k, g.n)).collect();
        assert_eq!(dims, vec![(16, 256, 128), (16, 128, 64), (16, 64, 10)]);
    }
}
