//! The results of a sweep: a row per point with every counter, the per-layer
//! figures, the energy and area breakdowns and the first-order estimates;
//! written as `results.json` (everything, and what merging shards needs) and
//! `results.csv` (one flat line per point).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use npukit_sim::NpuConfig;
use serde::{Deserialize, Serialize};

use crate::energy::{AreaBreakdown, EnergyBreakdown, EnergyTable};
use crate::estimate::{self, Estimates};
use crate::simulate::SimResult;
use crate::sweep::{dataflow, show_value, Point, Sweep};
use crate::ExploreError;

/// Which slice of a sweep a results file holds (`--shard K/N`, 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl Shard {
    /// Parses `K/N` (1 <= K <= N).
    pub fn parse(s: &str) -> Result<Shard, ExploreError> {
        let bad = || ExploreError::Usage(format!("--shard `{s}`: expected K/N with 1 <= K <= N"));
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }

    /// Whether point `index` belongs to this shard (round robin).
    pub fn holds(&self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

/// Figures derived from a point's simulation result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Derived {
    pub time_us: f64,
    pub macs_per_cycle: f64,
    pub mac_utilisation: f64,
    /// MACs per byte moved between device memory and the NPU (LOAD + STORE).
    pub arithmetic_intensity: f64,
    pub energy: EnergyBreakdown,
    pub area: AreaBreakdown,
    pub estimates: Estimates,
    /// On the workload's latency-area Pareto front.
    pub pareto: bool,
}

/// One point's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub index: usize,
    pub workload: String,
    /// The short label of the point's settings (see [`Sweep::label`]).
    pub label: String,
    /// The axis settings, `dotted field -> value`.
    pub settings: Vec<(String, String)>,
    pub dataflow: String,
    pub config: NpuConfig,
    /// The cache key (see [`crate::cache::key`]).
    pub key: String,
    pub sim: SimResult,
    pub derived: Derived,
}

impl Row {
    pub fn ok(&self) -> bool {
        self.sim.error.is_none()
    }
    /// `rows x cols`.
    pub fn shape(&self) -> String {
        format!("{}x{}", self.config.array.rows, self.config.array.cols)
    }
}

/// Builds a point's row (with `pareto` false; see [`mark_pareto`]).
pub fn row(sweep: &Sweep, p: &Point, key: String, sim: SimResult, table: &EnergyTable) -> Row {
    let cfg = &p.config;
    let w = &sweep.workloads[p.workload];
    let df = dataflow(cfg);
    let derived = if sim.error.is_none() {
        let cy = sim.cycles.max(1) as f64;
        let macs = sim.counter("PERF_MACS") as f64;
        let bytes = (sim.counter("PERF_DMA_RD_BYTES") + sim.counter("PERF_DMA_WR_BYTES")) as f64;
        Derived {
            time_us: sim.cycles as f64 / cfg.clock.freq_mhz as f64,
            macs_per_cycle: macs / cy,
            mac_utilisation: macs / (cy * cfg.peak_macs_per_cycle() as f64),
            arithmetic_intensity: if bytes > 0.0 { macs / bytes } else { 0.0 },
            energy: table.energy(cfg, &sim),
            area: table.area(cfg),
            estimates: estimate::estimate(cfg, &sim),
            pareto: false,
        }
    } else {
        Derived {
            area: table.area(cfg),
            ..Derived::default()
        }
    };
    Row {
        index: p.index,
        workload: w.name.clone(),
        label: sweep.label(p),
        settings: p
            .settings
            .iter()
            .map(|(f, v)| (f.clone(), show_value(v)))
            .collect(),
        dataflow: df,
        config: cfg.clone(),
        key,
        sim,
        derived,
    }
}

/// Marks each workload's latency-area Pareto front (rows in error are never on it).
pub fn mark_pareto(rows: &mut [Row]) {
    let mut by_workload: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        by_workload.entry(r.workload.clone()).or_default().push(i);
    }
    for idx in by_workload.values() {
        let pts: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| {
                let r = &rows[i];
                if r.ok() {
                    (r.derived.area.total_mm2, r.derived.time_us)
                } else {
                    (f64::NAN, f64::NAN)
                }
            })
            .collect();
        for (&i, on) in idx.iter().zip(crate::pareto::front(&pts)) {
            rows[i].derived.pareto = on;
        }
    }
}

/// Everything in `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub tool: String,
    pub sweep: String,
    pub description: String,
    /// See [`Sweep::id`].
    pub sweep_id: String,
    pub points_total: usize,
    pub workloads: Vec<String>,
    /// Axis fields, in order.
    pub axes: Vec<String>,
    /// `None` for a whole sweep (or a merge of all its shards).
    pub shard: Option<Shard>,
    pub energy_table: EnergyTable,
    pub rows: Vec<Row>,
}

impl Results {
    pub fn read(dir: &Path) -> Result<Results, ExploreError> {
        let p = dir.join("results.json");
        let bytes = std::fs::read(&p).map_err(|e| ExploreError::io(&p, e))?;
        serde_json::from_slice(&bytes).map_err(|e| ExploreError::Results {
            path: p.display().to_string(),
            message: e.to_string(),
        })
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The rows of one workload, in point order.
    pub fn rows_of<'a>(&'a self, workload: &'a str) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| r.workload == workload)
    }
}

/// Joins shards of one sweep into the whole: the shards must come from the
/// same sweep (same points, configurations, workloads and tool), hold no point
/// twice and together hold every point.
pub fn merge(parts: Vec<Results>) -> Result<Results, ExploreError> {
    let bad = |m: String| ExploreError::Merge(m);
    let mut it = parts.into_iter();
    let mut all = it.next().ok_or_else(|| bad("nothing to merge".into()))?;
    for p in it {
        if p.sweep_id != all.sweep_id {
            return Err(bad(format!(
                "shard {} is from another sweep (`{}`, id {}) than `{}` (id {})",
                p.shard.map_or("?".into(), |s| format!("{}/{}", s.k, s.n)),
                p.sweep,
                &p.sweep_id[..12.min(p.sweep_id.len())],
                all.sweep,
                &all.sweep_id[..12.min(all.sweep_id.len())]
            )));
        }
        if p.tool != all.tool {
            return Err(bad(format!(
                "shards were made by different tools: `{}` and `{}`",
                all.tool, p.tool
            )));
        }
        if p.energy_table != all.energy_table {
            return Err(bad("shards used different energy tables".into()));
        }
        all.rows.extend(p.rows);
    }
    all.rows.sort_by_key(|r| r.index);
    for w in all.rows.windows(2) {
        if w[0].index == w[1].index {
            return Err(bad(format!(
                "point {} ({} {}) is in two shards",
                w[0].index, w[0].workload, w[0].label
            )));
        }
    }
    let missing: Vec<String> = (0..all.points_total)
        .filter(|i| all.rows.binary_search_by_key(i, |r| r.index).is_err())
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "{} of {} points are missing (a shard was not given or not finished): points {}",
            missing.len(),
            all.points_total,
            missing.join(", ")
        )));
    }
    all.shard = None;
    mark_pareto(&mut all.rows);
    Ok(all)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `results.csv`: a header and a line per point; every counter as a column.
pub fn to_csv(r: &Results) -> String {
    let counters: Vec<String> = r
        .rows
        .iter()
        .find(|x| x.ok())
        .map(|x| x.sim.counters.keys().cloned().collect())
        .unwrap_or_default();
    let mut head: Vec<String> = vec!["index".into(), "workload".into()];
    head.extend(r.axes.iter().cloned());
    head.extend(
        [
            "rows",
            "cols",
            "dataflow",
            "status",
            "cycles",
            "time_us",
            "macs_per_cycle",
            "mac_utilisation",
            "arithmetic_intensity",
        ]
        .map(String::from),
    );
    head.extend(counters.iter().cloned());
    head.extend(
        [
            "energy_mac_nj",
            "energy_array_registers_nj",
            "energy_scratchpad_nj",
            "energy_accumulator_nj",
            "energy_activation_nj",
            "energy_dram_nj",
            "energy_total_nj",
            "area_mac_array_mm2",
            "area_scratchpad_mm2",
            "area_accumulator_mm2",
            "area_activation_mm2",
            "area_control_mm2",
            "area_total_mm2",
            "folds",
            "est_weight_stationary_cycles",
            "est_weight_stationary_double_buffered_cycles",
            "est_output_stationary_cycles",
            "est_roofline_cycles",
            "est_fold_cycles",
            "fold_ratio",
            "roofline_ratio",
            "pareto",
        ]
        .map(String::from),
    );
    let mut s = head.join(",");
    s.push('\n');
    for row in &r.rows {
        let d = &row.derived;
        let e = &d.energy;
        let a = &d.area;
        let x = &d.estimates;
        let mut f: Vec<String> = vec![row.index.to_string(), csv_field(&row.workload)];
        for ax in &r.axes {
            let v = row
                .settings
                .iter()
                .find(|(k, _)| k == ax)
                .map_or("", |(_, v)| v);
            f.push(csv_field(v));
        }
        f.push(row.config.array.rows.to_string());
        f.push(row.config.array.cols.to_string());
        f.push(row.dataflow.clone());
        f.push(csv_field(row.sim.error.as_deref().map_or("ok", |e| e)));
        f.push(row.sim.cycles.to_string());
        for v in [
            d.time_us,
            d.macs_per_cycle,
            d.mac_utilisation,
            d.arithmetic_intensity,
        ] {
            f.push(format!("{v}"));
        }
        for c in &counters {
            f.push(row.sim.counter(c).to_string());
        }
        for v in [
            e.mac_nj,
            e.array_registers_nj,
            e.scratchpad_nj,
            e.accumulator_nj,
            e.activation_nj,
            e.dram_nj,
            e.total_nj,
            a.mac_array_mm2,
            a.scratchpad_mm2,
            a.accumulator_mm2,
            a.activation_mm2,
            a.control_mm2,
            a.total_mm2,
        ] {
            f.push(format!("{v}"));
        }
        f.push(x.folds.count.to_string());
        f.push(x.folds.weight_stationary.to_string());
        f.push(x.folds.weight_stationary_double_buffered.to_string());
        f.push(x.folds.output_stationary.to_string());
        f.push(format!("{}", x.roofline_cycles));
        f.push(x.fold_cycles.to_string());
        for v in [x.fold_ratio, x.roofline_ratio] {
            f.push(format!("{v}"));
        }
        f.push(d.pareto.to_string());
        let _ = writeln!(s, "{}", f.join(","));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_partition() {
        assert!(Shard::parse("0/2").is_err());
        assert!(Shard::parse("3/2").is_err());
        assert!(Shard::parse("x").is_err());
        let shards: Vec<Shard> = (1..=3)
            .map(|k| Shard::parse(&format!("{k}/3")).unwrap())
            .collect();
        for i in 0..20 {
            assert_eq!(shards.iter().filter(|s| s.holds(i)).count(), 1);
        }
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
