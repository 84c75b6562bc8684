//! `npukit cosim`: run a workload, a hand-written program, the hand-written
//! corpus or constrained-random programs on the model and the Verilated RTL in
//! lockstep; stop at the first divergence with a report (and both sides'
//! Perfetto traces), exit non-zero.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use npukit_rtl::corpus::{self, Case, CosimError};
use npukit_rtl::lockstep::model_vs_rtl;
use npukit_rtl::{variant, LockstepOptions};
use npukit_sim::NpuConfig;

/// What `npukit cosim` was asked to do.
#[derive(Debug)]
pub struct CosimArgs {
    pub input: Option<PathBuf>,
    pub config: NpuConfig,
    pub variant: Option<String>,
    pub random: bool,
    pub corpus: bool,
    pub seed: u64,
    pub count: u64,
    pub vcd: Option<PathBuf>,
    pub out: PathBuf,
    pub mem_bytes: u64,
    pub max_cycles: u64,
}

/// Why the command failed: a divergence (report already printed) or an error.
#[derive(Debug)]
pub enum CosimFailure {
    Diverged,
    Error(anyhow::Error),
}

impl From<anyhow::Error> for CosimFailure {
    fn from(e: anyhow::Error) -> Self {
        CosimFailure::Error(e)
    }
}

/// The most recent events of each side kept for the Perfetto traces written on
/// a divergence (a long workload makes tens of millions).
const TRACE_EVENTS: usize = 1_000_000;

fn cases(a: &CosimArgs, cfg: &NpuConfig) -> Result<Vec<Case>> {
    if a.random {
        return Ok((a.seed..a.seed.saturating_add(a.count))
            .map(|s| corpus::random(cfg, s))
            .collect());
    }
    if a.corpus {
        return Ok(corpus::handwritten(cfg));
    }
    let path = a.input.as_deref();
    let is_asm = path.is_some_and(|p| p.extension().is_some_and(|x| x == "s" || x == "asm"));
    if let (true, Some(p)) = (is_asm, path) {
        let src = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let prog =
            npukit_abi::asm::assemble(&src).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        // The ring goes at the top of memory, out of the program's way (a
        // program longer than the largest ring is refilled through it).
        let entries = npukit_sim::run::ring_entries(prog.len(), cfg.cmdproc.max_ring);
        let ring_bytes = entries as u64 * npukit_abi::DESC_BYTES as u64;
        let mem = a.mem_bytes.max(4096).next_multiple_of(4096);
        if ring_bytes > mem {
            bail!(
                "{}: a ring of {} descriptors does not fit in --mem-bytes {mem}",
                p.display(),
                prog.len()
            );
        }
        let mut c = corpus::workload(
            &p.display().to_string(),
            prog.descs(),
            &[],
            mem - ring_bytes,
            mem,
        );
        c.max_cycles = a.max_cycles;
        c.expect = corpus::Expect::Any;
        return Ok(vec![c]);
    }
    let (w, name) = match path {
        Some(p) => (npukit_compiler::load_workload(p)?, p.display().to_string()),
        None => (
            npukit_compiler::builtin_example(),
            "built-in example (workloads/mlp-small.json)".to_string(),
        ),
    };
    let c = npukit_compiler::compile(&w, cfg)?;
    let mut case = corpus::workload(&name, c.program.descs(), &c.image, c.ring_base, c.mem_bytes);
    case.max_cycles = a.max_cycles;
    Ok(vec![case])
}

fn spinner() -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} lockstep: {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb
}

/// The cycles the model alone needs for `case` (fast: the model skips quiet
/// cycles), when it runs to completion; sizes the progress bar of a long run.
fn model_cycles(case: &Case, cfg: &NpuConfig) -> Option<u64> {
    match corpus::model_alone(case, cfg) {
        Ok(o) if o.result.is_ok() => Some(o.cycles),
        _ => None,
    }
}

/// Runs the command; prints the summary or the divergence report.
pub fn cosim(a: &CosimArgs) -> Result<(), CosimFailure> {
    if !variant::verilator_available() {
        let e = match variant::matching(&a.config) {
            Err(e) => e.to_string(),
            Ok(_) => npukit_rtl::RtlError::NoVerilator.to_string(),
        };
        return Err(anyhow::anyhow!("{e}").into());
    }
    // The model runs the variant's configuration (DRAM and clock from --config).
    let info = match &a.variant {
        Some(n) => variant::all().find(|v| v.name == n).with_context(|| {
            format!(
                "unknown RTL variant {n} (known: {})",
                variant::all()
                    .map(|v| v.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => variant::matching(&a.config).map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    let cfg = info.apply(&a.config);
    let cases = cases(a, &cfg)?;
    if cases.is_empty() {
        return Err(anyhow::anyhow!("nothing to run (--count 0?)").into());
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let pb = spinner();
    let start = Instant::now();
    let (mut cycles, mut events, mut refills) = (0u64, 0u64, 0u64);
    let mut last = None;
    let n = cases.len();
    for (i, case) in cases.iter().enumerate() {
        let vcd = a.vcd.as_ref().map(|p| {
            if n == 1 {
                p.clone()
            } else {
                let stem = p
                    .file_stem()
                    .map_or("rtl".into(), |s| s.to_string_lossy().to_string());
                p.with_file_name(format!("{stem}-{}.vcd", case.name))
            }
        });
        let opts = LockstepOptions {
            keep_events: true,
            keep_last: TRACE_EVENTS,
            trace_dir: Some(a.out.clone()),
            ..LockstepOptions::default()
        };
        let mut ls = model_vs_rtl(&case.config(&cfg), Some(info.name), vcd.as_deref(), opts)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let p2 = pb.clone();
        let label = format!("{} ({}/{n})", case.name, i + 1);
        // One program: a bar to the model's cycle count, with the time left.
        let total = if n == 1 {
            pb.set_message(format!("{label}: running the model alone first"));
            pb.tick();
            model_cycles(case, &cfg)
        } else {
            None
        };
        if let Some(t) = total {
            pb.set_style(
                ProgressStyle::with_template(
                    "{spinner} lockstep: {msg} {wide_bar} {pos}/{len} cycles [{elapsed}, ~{eta} left]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            pb.set_length(t.max(1));
            pb.set_message(label.clone());
        }
        let mut shown = Instant::now();
        ls.on_progress(move |c| {
            if shown.elapsed().as_millis() >= 100 {
                shown = Instant::now();
                if total.is_some() {
                    p2.set_position(c);
                } else {
                    p2.set_message(format!("{label}: cycle {c}"));
                    p2.tick();
                }
            }
        });
        match corpus::run(&mut ls, case) {
            Ok(o) => {
                cycles += o.cycles;
                events += o.events;
                refills += o.refills;
                last = Some(o.result);
            }
            Err(CosimError::Diverged(d)) => {
                pb.finish_and_clear();
                ls.b_mut().flush_trace();
                let report = format!("npukit cosim: {} on {} diverged\n{d}", case.name, info.name);
                print!("{report}");
                let path = a.out.join("divergence.txt");
                std::fs::write(&path, &report)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("report written to {}", path.display());
                return Err(CosimFailure::Diverged);
            }
            Err(e) => {
                pb.finish_and_clear();
                return Err(anyhow::anyhow!("{}: {e}", case.name).into());
            }
        }
    }
    pb.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "npukit cosim: {n} program(s) on {} in lockstep with the model: no divergence",
        info.name
    );
    if let (1, Some(r)) = (n, &last) {
        match r {
            Ok(c) => println!("  program           completed in {c} cycles (both sides)"),
            Err(e) => println!("  program           {e} (both sides)"),
        }
    }
    println!("  cycles compared   {cycles}");
    println!("  events matched    {events}");
    if refills > 0 {
        println!(
            "  ring refills      {refills} (the program is longer than the {}-entry ring)",
            info.max_ring
        );
    }
    println!(
        "  wall time         {secs:.2} s ({:.0} cycles/s for model + RTL)",
        cycles as f64 / secs.max(1e-9)
    );
    Ok(())
}
