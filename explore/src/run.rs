//! Running a sweep: the points not in the cache are simulated in parallel on
//! all cores (rayon) behind a progress bar (indicatif); then the results and
//! the report are written.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::cache::{self, Cache};
use crate::energy::EnergyTable;
use crate::plot;
use crate::report::{self, Summary};
use crate::results::{self, Results, Row, Shard};
use crate::simulate::{self, SimResult};
use crate::sweep::Sweep;
use crate::ExploreError;

/// What to run and where to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub out: PathBuf,
    /// Where finished points are kept; `OUT/cache` when `None`.
    pub cache: Option<PathBuf>,
    pub shard: Option<Shard>,
    pub energy: EnergyTable,
    /// Worker threads; all cores when `None`.
    pub jobs: Option<usize>,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub results: Results,
    pub summary: Summary,
    /// Files written.
    pub written: Vec<PathBuf>,
    /// The Markdown summary (also in `summary.md`).
    pub markdown: String,
}

/// Runs a sweep (or one shard of it) and writes everything into `opts.out`.
pub fn run(sweep: &Sweep, opts: &Options) -> Result<Outcome, ExploreError> {
    let cache = Cache::new(&opts.cache.clone().unwrap_or_else(|| opts.out.join("cache")))?;
    let points: Vec<_> = sweep
        .points
        .iter()
        .filter(|p| opts.shard.is_none_or(|s| s.holds(p.index)))
        .collect();
    let keys: Vec<String> = points
        .iter()
        .map(|p| {
            cache::key(
                &p.config,
                &sweep.workloads[p.workload].hash,
                sweep.max_cycles,
            )
        })
        .collect();
    let cached: Vec<Option<SimResult>> = keys.iter().map(|k| cache.get(k)).collect();
    let todo: Vec<usize> = (0..points.len()).filter(|&i| cached[i].is_none()).collect();

    // The CPU reference of each workload that has points to simulate, once.
    let needed: Vec<bool> = (0..sweep.workloads.len())
        .map(|w| todo.iter().any(|&i| points[i].workload == w))
        .collect();
    let references = sweep
        .workloads
        .iter()
        .zip(&needed)
        .map(|(w, &n)| {
            if n {
                npukit_compiler::reference(&w.workload).map_err(ExploreError::from)
            } else {
                Ok(vec![])
            }
        })
        .collect::<Result<Vec<_>, _>>()?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .build()
        .map_err(|e| ExploreError::Internal(e.to_string()))?;
    let pb = if opts.progress && !todo.is_empty() {
        let pb = ProgressBar::new(todo.len() as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {bar:30} {pos}/{len} points simulated [{elapsed} < {eta}] {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let simulated = AtomicUsize::new(0);
    let fresh: Vec<(usize, Result<SimResult, ExploreError>)> = pool.install(|| {
        todo.par_iter()
            .map(|&i| {
                let p = points[i];
                let w = &sweep.workloads[p.workload];
                pb.set_message(format!("{} {}", w.name, sweep.label(p)));
                let r = simulate::simulate(
                    &w.workload,
                    &references[p.workload],
                    &p.config,
                    sweep.max_cycles,
                );
                simulated.fetch_add(1, Ordering::Relaxed);
                let stored = cache.put(&keys[i], &r).map(|()| r);
                pb.inc(1);
                (i, stored)
            })
            .collect()
    });
    pb.finish_and_clear();
    let mut sims = cached;
    for (i, r) in fresh {
        sims[i] = Some(r?);
    }

    let mut rows: Vec<Row> = points
        .iter()
        .zip(keys)
        .zip(sims)
        .map(|((p, k), s)| results::row(sweep, p, k, s.unwrap_or_default(), &opts.energy))
        .collect();
    results::mark_pareto(&mut rows);
    let res = Results {
        tool: cache::tool_version(),
        sweep: sweep.name.clone(),
        description: sweep.description.clone(),
        sweep_id: sweep.id(),
        points_total: sweep.points.len(),
        workloads: sweep.workloads.iter().map(|w| w.name.clone()).collect(),
        axes: sweep.axes.iter().flat_map(|a| a.fields.clone()).collect(),
        shard: opts.shard,
        energy_table: opts.energy.clone(),
        rows,
    };
    let simulated = simulated.load(Ordering::Relaxed);
    let summary = Summary {
        simulated,
        cached: points.len() - simulated,
        failed: res.rows.iter().filter(|r| !r.ok()).count(),
    };
    write(&res, &summary, &opts.out)
}

/// Joins shard folders into one and writes the whole sweep's outputs.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Outcome, ExploreError> {
    let parts = dirs
        .iter()
        .map(|d| Results::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let res = results::merge(parts)?;
    let summary = Summary {
        simulated: 0,
        cached: 0,
        failed: res.rows.iter().filter(|r| !r.ok()).count(),
    };
    write(&res, &summary, out)
}

fn write_file(path: PathBuf, bytes: &[u8], written: &mut Vec<PathBuf>) -> Result<(), ExploreError> {
    std::fs::write(&path, bytes).map_err(|e| ExploreError::io(&path, e))?;
    written.push(path);
    Ok(())
}

/// Writes results.json, results.csv, summary.md, report.html and plots/*.png.
pub fn write(res: &Results, summary: &Summary, out: &Path) -> Result<Outcome, ExploreError> {
    std::fs::create_dir_all(out).map_err(|e| ExploreError::io(out, e))?;
    let mut written = vec![];
    write_file(
        out.join("results.json"),
        res.to_json().as_bytes(),
        &mut written,
    )?;
    write_file(
        out.join("results.csv"),
        results::to_csv(res).as_bytes(),
        &mut written,
    )?;
    let md = report::markdown(res, summary);
    write_file(out.join("summary.md"), md.as_bytes(), &mut written)?;
    let plots = report::plots(res);
    let svgs = plots
        .par_iter()
        .map(plot::svg)
        .collect::<Result<Vec<_>, _>>()?;
    write_file(
        out.join("report.html"),
        report::html(res, &plots, &svgs, summary).as_bytes(),
        &mut written,
    )?;
    let dir = out.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| ExploreError::io(&dir, e))?;
    let pngs = plots
        .par_iter()
        .map(|p| {
            let f = dir.join(format!("{}.png", p.id));
            plot::png(p, &f).map(|()| f)
        })
        .collect::<Result<Vec<_>, _>>()?;
    written.extend(pngs);
    Ok(Outcome {
        results: res.clone(),
        summary: *summary,
        written,
        markdown: md,
    })
}
