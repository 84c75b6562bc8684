//! First-order estimates of a point's cycles, shown beside the measured cycles
//! with their ratio, so users see where the cycle model departs from them.
//!
//! * **Fold estimate**: the compute unit's MATMULs (folds) of the compiled
//!   program, one after the other, each at its latency by rule C1 of
//!   docs/timing.md — the model's own formulas ([`npukit_sim::mac`]) — and
//!   nothing else. Dense and matmul layers, and conv layers (lowered to
//!   MATMULs over kernel positions and K chunks), all count: the folds are
//!   read from the compiler's program, not re-derived from layer shapes. Per
//!   array option, for a fold streaming `M` rows on an `R x C` array:
//!   * weight-stationary (C1a): `2R + C + M - 2`;
//!   * weight-stationary with double-buffered weights (C1b): a fold that
//!     follows another fold on the compute unit has its weights shifted in
//!     during that fold's stream (the load's lead covers it): `R + C + M - 1`;
//!     the first fold of a run of folds (after an ACT, ADD or MAX, which block
//!     the weight loader by C1b condition 3) pays C1a's `2R + C + M - 2`;
//!   * output-stationary (C1c): `ceil(M / R) * max(R, C) + R + C + 1`.
//! * **Roofline bound**: per layer `max(MACs / (R * C), DRAM bytes /
//!   bytes_per_cycle)` with the layer's MACs and DRAM bytes as the compiler
//!   schedules them, summed over the layers.
//!
//! Neither charges for the ACT, ADD and MAX descriptors the compute unit also
//! runs, the DMA's latency and per-descriptor costs, the port arbitration
//! (M1's fixed priority), or folds waiting on tokens; the measured/estimate
//! ratio shows how much these cost (docs/explore.md).

use npukit_abi::desc::Op;
use npukit_compiler::Compiled;
use npukit_sim::config::ArrayParams;
use npukit_sim::mac::fold_latency;
use npukit_sim::{Dataflow, NpuConfig};
use serde::{Deserialize, Serialize};

use crate::simulate::SimResult;

/// Unoverlapped fold cycles of a layer (or a program) under each array option
/// of rule C1, for the point's array shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folds {
    /// MATMUL descriptors.
    pub count: u64,
    pub weight_stationary: u64,
    pub weight_stationary_double_buffered: u64,
    pub output_stationary: u64,
}

impl Folds {
    /// The estimate of the configuration's own option.
    pub fn of(&self, a: &ArrayParams) -> u64 {
        match (a.dataflow, a.weight_double_buffer) {
            (Dataflow::OutputStationary, _) => self.output_stationary,
            (Dataflow::WeightStationary, true) => self.weight_stationary_double_buffered,
            (Dataflow::WeightStationary, false) => self.weight_stationary,
        }
    }

    fn add(&mut self, o: &Folds) {
        self.count += o.count;
        self.weight_stationary += o.weight_stationary;
        self.weight_stationary_double_buffered += o.weight_stationary_double_buffered;
        self.output_stationary += o.output_stationary;
    }
}

/// The array options of rule C1 on `rows x cols`.
fn options(rows: u32, cols: u32) -> [ArrayParams; 3] {
    let a = |dataflow, weight_double_buffer| ArrayParams {
        rows,
        cols,
        dataflow,
        weight_double_buffer,
    };
    [
        a(Dataflow::WeightStationary, false),
        a(Dataflow::WeightStationary, true),
        a(Dataflow::OutputStationary, false),
    ]
}

/// The fold estimates of a sequence of compute descriptors on `rows x cols`,
/// with the layer (index below `layers`) each belongs to; `None` is charged
/// to no layer. Descriptors other than compute ones are skipped (they do not
/// run on the compute unit).
pub fn folds<'a>(
    ops: impl IntoIterator<Item = (&'a Op, Option<usize>)>,
    layers: usize,
    rows: u32,
    cols: u32,
) -> Vec<Folds> {
    let [ws, db, os] = options(rows, cols);
    let mut out = vec![Folds::default(); layers];
    // Whether the compute unit's previous descriptor was a MATMUL.
    let mut after_fold = false;
    for (op, layer) in ops {
        match op {
            Op::Matmul(m) => {
                // Back to back: the weight loader started on this fold's
                // weights at least R - 1 cycles before it issued.
                let lead = if after_fold { rows as u64 } else { 0 };
                let f = Folds {
                    count: 1,
                    weight_stationary: fold_latency(&ws, m.m as u32, 0),
                    weight_stationary_double_buffered: fold_latency(&db, m.m as u32, lead),
                    output_stationary: fold_latency(&os, m.m as u32, 0),
                };
                if let Some(l) = layer.and_then(|l| out.get_mut(l)) {
                    l.add(&f);
                }
                after_fold = true;
            }
            Op::Act(_) | Op::Add(_) | Op::Max(_) => after_fold = false,
            _ => {}
        }
    }
    out
}

/// The fold estimates of every layer of a compiled program on `cfg`'s array.
pub fn program_folds(c: &Compiled, cfg: &NpuConfig) -> Vec<Folds> {
    let ops = c
        .program
        .descs()
        .iter()
        .zip(&c.desc_layer)
        .map(|(d, l)| (&d.op, l.map(|l| l as usize)));
    folds(ops, c.layers.len(), cfg.array.rows, cfg.array.cols)
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
    /// The program's folds under every option (for comparing them).
    pub folds: Folds,
    pub roofline_cycles: f64,
    /// The fold estimate of the point's own array option.
    pub fold_cycles: u64,
    /// Measured cycles / `fold_cycles` (0 without folds).
    pub fold_ratio: f64,
    /// Measured cycles / `roofline_cycles` (at least 1 unless the model is wrong).
    pub roofline_ratio: f64,
}

/// Estimates for a point on `cfg` from its simulation result.
pub fn estimate(cfg: &NpuConfig, r: &SimResult) -> Estimates {
    let mut folds = Folds::default();
    for l in &r.layers {
        folds.add(&l.folds);
    }
    let roof = r
        .layers
        .iter()
        .map(|l| roofline(l.macs, l.dram_bytes, cfg))
        .sum::<f64>();
    let fold = folds.of(&cfg.array);
    let ratio = |est: f64| {
        if est > 0.0 {
            r.cycles as f64 / est
        } else {
            0.0
        }
    };
    Estimates {
        folds,
        roofline_cycles: roof,
        fold_cycles: fold,
        fold_ratio: ratio(fold as f64),
        roofline_ratio: ratio(roof),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npukit_abi::desc::{Act, Matmul};

    fn matmul(m: u16) -> Op {
        Op::Matmul(Matmul {
            a: 0,
            w: 0,
            out: 0,
            m,
            k: 1,
            n: 1,
            accumulate: false,
        })
    }

    fn act() -> Op {
        Op::Act(Act::default())
    }

    /// Hand-computed from C1a, C1b and C1c of docs/timing.md.
    #[test]
    fn fold_formulas_follow_the_timing_rules() {
        // One fold of 16 rows on 16x16.
        let f = folds([(&matmul(16), Some(0))], 1, 16, 16)[0];
        // C1a: 2*16 + 16 + 16 - 2; C1b, nothing before it: the same;
        // C1c: ceil(16/16) * 16 + 16 + 16 + 1.
        assert_eq!(
            f,
            Folds {
                count: 1,
                weight_stationary: 62,
                weight_stationary_double_buffered: 62,
                output_stationary: 49,
            }
        );
        // 8x32, 20 rows: C1a 16 + 32 + 20 - 2 = 66; C1c ceil(20/8) = 3 tiles
        // of max(8, 32) = 32 cycles, + 8 + 32 + 1 = 137.
        let f = folds([(&matmul(20), Some(0))], 1, 8, 32)[0];
        assert_eq!((f.weight_stationary, f.output_stationary), (66, 137));
    }

    /// Double-buffering hides a fold's weight load only behind another fold:
    /// back-to-back folds pay R + C + M - 1, a fold after an ACT pays C1a.
    #[test]
    fn double_buffering_hides_loads_between_folds_only() {
        let (mm, a) = (matmul(16), act());
        let ops = [
            (&mm, Some(0)),
            (&mm, Some(0)),
            (&mm, Some(0)),
            (&a, Some(0)),
            (&mm, Some(1)),
            (&mm, Some(1)),
        ];
        let f = folds(ops, 2, 16, 16);
        // Layer 0: 62 + 47 + 47; layer 1: 62 (after the ACT) + 47.
        assert_eq!(f[0].weight_stationary_double_buffered, 62 + 2 * 47);
        assert_eq!(f[1].weight_stationary_double_buffered, 62 + 47);
        assert_eq!(f[0].weight_stationary, 3 * 62);
        assert_eq!(f[1].output_stationary, 2 * 49);
        assert_eq!((f[0].count, f[1].count), (3, 2));
        // A descriptor of no layer still counts as the compute unit's previous one.
        let f = folds([(&mm, None), (&mm, Some(0))], 1, 16, 16);
        assert_eq!(f[0].weight_stationary_double_buffered, 47);
    }

    #[test]
    fn roofline_takes_the_higher_bound() {
        let cfg = NpuConfig::default(); // 256 MAC/cycle, 16 B/cycle
        assert_eq!(roofline(256 * 100, 16 * 10, &cfg), 100.0);
        assert_eq!(roofline(256, 16 * 10, &cfg), 10.0);
    }

    /// The estimate of a point picks its own option and sums the layers.
    #[test]
    fn point_estimate_uses_its_own_option() {
        use crate::simulate::LayerFigures;
        let layer = |name: &str, macs, folds| LayerFigures {
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
            folds,
        };
        let f = Folds {
            count: 2,
            weight_stationary: 124,
            weight_stationary_double_buffered: 109,
            output_stationary: 98,
        };
        let r = SimResult {
            cycles: 500,
            layers: vec![layer("a", 4096, f), layer("pool", 0, Folds::default())],
            ..SimResult::default()
        };
        let mut cfg = NpuConfig::default();
        let e = estimate(&cfg, &r);
        assert_eq!((e.fold_cycles, e.folds), (124, f));
        assert_eq!(e.fold_ratio, 500.0 / 124.0);
        // Both layers in the roofline: 1600 bytes at 16 B/cycle each.
        assert_eq!(e.roofline_cycles, 200.0);
        assert_eq!(e.roofline_ratio, 2.5);
        cfg.array.weight_double_buffer = true;
        assert_eq!(estimate(&cfg, &r).fold_cycles, 109);
        cfg.array.weight_double_buffer = false;
        cfg.array.dataflow = Dataflow::OutputStationary;
        assert_eq!(estimate(&cfg, &r).fold_cycles, 98);
    }

    /// Conv layers get a fold estimate from the compiler's MATMULs: on the
    /// small CNN every conv and dense layer has folds, and the program's WS
    /// estimate is C1a summed over its MATMUL descriptors.
    #[test]
    fn conv_layers_have_fold_estimates() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/cnn-28.json");
        let w = npukit_compiler::load_workload(&path).unwrap();
        let cfg = NpuConfig::default();
        let c = npukit_compiler::compile(&w, &cfg).unwrap();
        let f = program_folds(&c, &cfg);
        let mut convs = 0;
        for (l, f) in c.layers.iter().zip(&f) {
            if matches!(l.op, "conv2d" | "dense") {
                assert!(f.count > 0 && f.weight_stationary > 0, "{}", l.name);
                convs += (l.op == "conv2d") as usize;
            } else if l.macs == 0 {
                assert_eq!(f.count, 0, "{}", l.name);
            }
        }
        assert!(convs >= 2);
        let want: u64 = c
            .program
            .descs()
            .iter()
            .map(|d| match d.op {
                Op::Matmul(m) => 2 * 16 + 16 + m.m as u64 - 2,
                _ => 0,
            })
            .sum();
        assert_eq!(f.iter().map(|f| f.weight_stationary).sum::<u64>(), want);
    }
}
