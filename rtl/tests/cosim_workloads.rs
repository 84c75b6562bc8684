//! Lockstep (model vs RTL) on the compiled example workloads
//! (`workloads/*.json`) that fit each variant, on every sound variant.

mod common;

use npukit_rtl::corpus;

/// Workloads whose model run is at most this many cycles are run in lockstep
/// (the RTL steps every cycle).
const MAX_MODEL_CYCLES: u64 = 3_000_000;

#[test]
fn compiled_workloads_in_lockstep() {
    common::require_rtl();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workloads in {}", dir.display());
    let mut failures = Vec::new();
    let mut ran = 0;
    for name in common::VARIANTS {
        let cfg = common::config_of(name);
        for f in &files {
            let w = npukit_compiler::load_workload(f).unwrap();
            let Ok(c) = npukit_compiler::compile(&w, &cfg) else {
                continue;
            };
            // The lockstep corpus writes the ring once (no refill): only
            // programs that fit the largest ring.
            if c.program.len() >= cfg.cmdproc.max_ring as usize {
                continue;
            }
            // Only what the model finishes quickly enough.
            let mut mem = npukit_sim::VecMemory::new(c.mem_bytes as usize);
            npukit_compiler::load_image(&c, &mut mem).unwrap();
            let mut m = npukit_sim::ModelDevice::new(&cfg);
            let Ok(out) = npukit_sim::run::run_program(
                &mut m,
                &mut mem,
                c.ring_base,
                c.program.descs(),
                MAX_MODEL_CYCLES,
            ) else {
                continue;
            };
            assert!(out.cycles > 0);
            let label = format!("{}", f.file_name().unwrap().to_string_lossy());
            let case = corpus::workload(
                &label,
                c.program.descs(),
                &c.image,
                c.ring_base,
                c.mem_bytes,
            );
            ran += 1;
            failures.extend(common::run_cases(name, &[case]));
        }
    }
    assert!(ran >= 3, "only {ran} workload runs fit the variants");
    common::assert_all_pass("compiled workloads", ran, &failures);
}
