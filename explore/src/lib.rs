//! npukit design-space exploration: `npukit explore SWEEP.toml` (docs/explore.md).
//!
//! ```text
//! SWEEP.toml --Sweep::load--> points (config x workload, every config validated)
//!   --run: cache hit? else compile + simulate + check (rayon, progress bar)--> SimResult per point
//!   --results::row: energy/area table, first-order estimates, Pareto front--> Results
//!   --write--> results.json, results.csv, summary.md, report.html (inline SVG), plots/*.png
//! ```
//!
//! * [`sweep`]: the sweep file, dotted configuration field names, point expansion.
//! * [`simulate`]: one point on the cycle-accurate model, the per-layer breakdown.
//! * [`cache`]: finished points by hash of configuration, workload and tool.
//! * [`energy`]: the energy and area table (`configs/energy-area.toml`) and model.
//! * [`estimate`]: the weight- and output-stationary fold formulas and the roofline bound.
//! * [`pareto`]: the latency-area Pareto front.
//! * [`results`]: rows, results.json / results.csv, shards and merging.
//! * [`report`], [`plot`]: the plots (plotters), report.html and summary.md.
//! * [`run`](mod@run): running a sweep in parallel and writing everything.

use std::path::Path;

pub mod cache;
pub mod energy;
pub mod estimate;
pub mod pareto;
pub mod plot;
pub mod report;
pub mod results;
pub mod run;
pub mod simulate;
pub mod sweep;

pub use energy::EnergyTable;
pub use results::{Results, Row, Shard};
pub use run::{merge, run, Options, Outcome};
pub use sweep::Sweep;

/// Everything that can go wrong in a sweep; each names what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error("sweep {path}: {message}")]
    Sweep { path: String, message: String },
    #[error(
        "`{field}` is not a field of the hardware configuration (its table has: {known}); \
         names are dotted, e.g. array.rows, dram.bytes_per_cycle"
    )]
    UnknownField { field: String, known: String },
    #[error("point {settings}: {message}")]
    Config { settings: String, message: String },
    #[error("{0}")]
    Compile(#[from] npukit_compiler::CompileError),
    #[error("energy/area table: {0}")]
    EnergyTable(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: not a results file of npukit explore: {message}")]
    Results { path: String, message: String },
    #[error("merge: {0}")]
    Merge(String),
    #[error("{0}")]
    Usage(String),
    #[error("plots: {0}")]
    Font(String),
    #[error("plot `{0}`: {1}")]
    Plot(String, String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ExploreError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> ExploreError {
        ExploreError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
