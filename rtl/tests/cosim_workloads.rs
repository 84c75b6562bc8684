//! Lockstep (model vs RTL) on the compiled example workloads
//! (`workloads/*.json`). A program longer than the command ring is refilled as
//! the device consumes it (`corpus::run`, through the model's own driver loop),
//! so every workload can run; which ones run where is a question of time only
//! (docs/cosim.md has the table):
//!
//! * every workload whose model run is at most [`MAX_MODEL_CYCLES`], on every
//!   sound variant;
//! * the transformer block on 16x16, 9.4 rings long (its own test, so that the
//!   two test threads run it beside the first);
//! * `-- --ignored`: every workload on 4x4, 8x8 and 16x16, ResNet-18
//!   included (estimated from the rates: about 20 minutes on a quiet machine,
//!   over an hour on a loaded one; for release checks, not CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use npukit_rtl::corpus::{self, CaseOutcome};
use npukit_rtl::LockstepOptions;

/// Workloads whose model run is at most this many cycles run in lockstep on
/// every sound variant (the RTL steps every cycle).
const MAX_MODEL_CYCLES: u64 = 3_000_000;

fn workloads() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workloads in {}", dir.display());
    files
}

/// A compiled workload on `variant` and the model's cycles through
/// `npukit_sim::run::run_program` (what `npukit run` does).
struct Compiled {
    label: String,
    c: npukit_compiler::Compiled,
    model_cycles: u64,
}

/// Why a workload was not compiled and run on the model.
enum NotRun {
    /// The model took longer than the limit: left out for time only.
    TooLong(String),
    /// It did not load, compile or run: a failure.
    Failed(String),
}

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotRun::TooLong(s) | NotRun::Failed(s) => f.write_str(s),
        }
    }
}

/// Compiles `file` for `variant` and runs it on the model, for at most
/// `max_cycles`; why not, if it does not compile, fails or takes longer.
fn compile(variant: &str, file: &Path, max_cycles: u64) -> Result<Compiled, NotRun> {
    let cfg = common::config_of(variant);
    let label = file.file_name().unwrap().to_string_lossy().to_string();
    let w = npukit_compiler::load_workload(file)
        .map_err(|e| NotRun::Failed(format!("{label}: {e}")))?;
    let c =
        npukit_compiler::compile(&w, &cfg).map_err(|e| NotRun::Failed(format!("{label}: {e}")))?;
    let mut mem = npukit_sim::VecMemory::new(c.mem_bytes as usize);
    npukit_compiler::load_image(&c, &mut mem)
        .map_err(|e| NotRun::Failed(format!("{label}: {e}")))?;
    let mut m = npukit_sim::ModelDevice::new(&cfg);
    let out =
        npukit_sim::run::run_program(&mut m, &mut mem, c.ring_base, c.program.descs(), max_cycles)
            .map_err(|e| {
                let why = format!("{label} on the model: {e}");
                match e {
                    npukit_sim::run::RunError::Timeout { .. } => NotRun::TooLong(why),
                    _ => NotRun::Failed(why),
                }
            })?;
    Ok(Compiled {
        label,
        c,
        model_cycles: out.cycles,
    })
}

/// Runs `w` in lockstep on `variant`; checks the outcome is the model's own
/// run (`npukit run`'s cycles) and that a program longer than the ring was refilled.
fn lockstep(variant: &str, w: &Compiled) -> Result<CaseOutcome, String> {
    let cfg = common::config_of(variant);
    let c = &w.c;
    let case = corpus::workload(
        &w.label,
        c.program.descs(),
        &c.image,
        c.ring_base,
        c.mem_bytes,
    );
    let t = std::time::Instant::now();
    let o = corpus::cosim(&case, &cfg, Some(variant), LockstepOptions::default())
        .map_err(|e| format!("--- {variant} / {}:\n{e}", w.label))?;
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{variant} / {}: {} descriptors, {} cycles, {} events, {} refills in lockstep, {secs:.1} s ({:.0} cycles/s)",
        w.label,
        c.program.len(),
        o.cycles,
        o.events,
        o.refills,
        o.cycles as f64 / secs.max(1e-9)
    );
    let problem = if o.result != Ok(w.model_cycles) {
        Some(format!(
            "lockstep result {:?}, the model alone {} cycles",
            o.result, w.model_cycles
        ))
    } else if (c.program.len() >= cfg.cmdproc.max_ring as usize) != (o.refills > 0) {
        Some(format!(
            "{} descriptors, ring of {}, {} refills",
            c.program.len(),
            cfg.cmdproc.max_ring,
            o.refills
        ))
    } else if o.events == 0 {
        Some("nothing compared".into())
    } else {
        None
    };
    match problem {
        Some(p) => Err(format!("--- {variant} / {}: {p}", w.label)),
        None => Ok(o),
    }
}

#[test]
fn compiled_workloads_in_lockstep() {
    common::require_rtl();
    let files = workloads();
    let mut failures = Vec::new();
    let (mut ran, mut refilled) = (0, 0);
    for name in common::VARIANTS {
        for f in &files {
            // What takes the model longer is not run here (said, and left to
            // the ignored test below); what does not compile or run is a failure.
            let w = match compile(name, f, MAX_MODEL_CYCLES) {
                Ok(w) => w,
                Err(NotRun::TooLong(e)) => {
                    eprintln!("{name}: left out for time: {e}");
                    continue;
                }
                Err(NotRun::Failed(e)) => {
                    failures.push(format!("--- {name}: {e}"));
                    continue;
                }
            };
            ran += 1;
            match lockstep(name, &w) {
                Ok(o) => refilled += (o.refills > 0) as usize,
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(ran >= 3, "only {ran} workload runs fit the variants");
    // mlp-mnist is longer than the ring on the 4x4 and 8x8 variants.
    assert!(refilled >= 5, "only {refilled} runs refilled the ring");
    common::assert_all_pass("compiled workloads", ran, &failures);
}

fn long(variant: &str, file: &str) {
    common::require_rtl();
    let f = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads")
        .join(file);
    let w = compile(variant, &f, u64::MAX).unwrap_or_else(|e| panic!("{variant}: {e}"));
    let o = lockstep(variant, &w).unwrap_or_else(|e| panic!("{e}"));
    let ring = common::config_of(variant).cmdproc.max_ring as usize;
    assert!(
        w.c.program.len() > 3 * ring && o.refills > 3,
        "{variant} / {file}: {} descriptors, {} refills",
        w.c.program.len(),
        o.refills
    );
}

/// A long workload in CI: 38,549 descriptors (9.4 rings), 5.3 M cycles
/// (docs/cosim.md: which workloads run where, and what is left out for time).
#[test]
fn long_workload_transformer_block_on_16x16() {
    long("npu_16x16", "transformer-block.json");
}

/// Every workload on 4x4, 8x8 and 16x16: `cargo test --release -p npukit-rtl
/// --test cosim_workloads -- --ignored --nocapture` (prints each run's rate).
#[test]
#[ignore = "every workload incl. ResNet-18 on three variants: 20 min to over an hour"]
fn every_workload_on_4x4_8x8_16x16() {
    common::require_rtl();
    let only = std::env::var("NPUKIT_COSIM_WORKLOAD").unwrap_or_default();
    let mut failures = Vec::new();
    let mut ran = 0;
    for name in ["npu_4x4", "npu_8x8", "npu_16x16"] {
        for f in workloads() {
            if !f.to_string_lossy().contains(&only) {
                continue;
            }
            let w = match compile(name, &f, u64::MAX) {
                Ok(w) => w,
                Err(e) => {
                    failures.push(format!("--- {name}: {e}"));
                    continue;
                }
            };
            ran += 1;
            if let Err(e) = lockstep(name, &w) {
                failures.push(e);
            }
        }
    }
    common::assert_all_pass("every workload", ran, &failures);
}
