//! `npukit explore`: design-space sweeps (npukit-explore, docs/explore.md).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use npukit_explore::{EnergyTable, Options, Outcome, Shard, Sweep};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExploreArgs {
    #[command(subcommand)]
    cmd: Option<ExploreCmd>,
    /// The sweep (TOML): base configuration, workloads, axes (docs/explore.md).
    sweep: Option<PathBuf>,
    /// Output folder for results.csv, results.json, summary.md, report.html, plots/.
    #[arg(long, default_value = "npukit-out/explore")]
    out: PathBuf,
    /// Run only shard K of N (1-based, round robin over the points).
    #[arg(long)]
    shard: Option<String>,
    /// Energy and area table (TOML); configs/energy-area.toml when omitted.
    #[arg(long)]
    energy: Option<PathBuf>,
    /// Cache of finished points; OUT/cache when omitted.
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Worker threads; all cores when omitted.
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Subcommand, Debug)]
enum ExploreCmd {
    /// Join the output folders of the shards of one sweep into the whole.
    Merge {
        /// The shards' output folders.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output folder for the merged results and report.
        #[arg(long, default_value = "npukit-out/explore")]
        out: PathBuf,
    },
}

fn report(o: &Outcome) {
    print!("{}", o.markdown);
    println!(
        "npukit explore: {} points: {} simulated, {} from the cache, {} failed",
        o.results.rows.len(),
        o.summary.simulated,
        o.summary.cached,
        o.summary.failed
    );
    for f in &o.written {
        if f.extension().is_some_and(|e| e != "png") {
            println!("  wrote {}", f.display());
        }
    }
    let pngs = o
        .written
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "png"))
        .count();
    if let Some(dir) = o
        .written
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "png"))
    {
        println!(
            "  wrote {pngs} PNG plots in {}",
            dir.parent()
                .map_or(String::new(), |d| d.display().to_string())
        );
    }
}

pub fn explore(a: &ExploreArgs) -> Result<()> {
    if let Some(ExploreCmd::Merge { dirs, out }) = &a.cmd {
        let o = npukit_explore::merge(dirs, out)?;
        report(&o);
        return Ok(());
    }
    let Some(path) = &a.sweep else {
        bail!("give a sweep file (npukit explore SWEEP.toml) or `npukit explore merge DIR...`");
    };
    let sweep = Sweep::load(path)?;
    let energy = match &a.energy {
        Some(p) => EnergyTable::load(p)?,
        None => EnergyTable::builtin(),
    };
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;
    let opts = Options {
        out: a.out.clone(),
        cache: a.cache.clone(),
        shard,
        energy,
        jobs: a.jobs,
        progress: std::io::stderr().is_terminal(),
    };
    let o = npukit_explore::run(&sweep, &opts)?;
    report(&o);
    Ok(())
}
