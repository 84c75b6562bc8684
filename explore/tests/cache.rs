//! Resumability: a finished sweep re-run simulates nothing and writes the same
//! results; a changed point is simulated again; the energy table is applied
//! without re-simulating.

mod common;

use common::*;

#[test]
fn rerunning_a_finished_sweep_simulates_nothing() {
    let d = tmp("rerun");
    let s = sweep(&d, SMALL);
    let out = d.join("out");
    let first = npukit_explore::run(&s, &options(&out, None)).unwrap();
    assert_eq!(first.summary.simulated, 8);
    assert_eq!(first.summary.cached, 0);
    assert_eq!(first.summary.failed, 0, "{}", first.markdown);
    let json = read(&out.join("results.json"));
    let csv = read(&out.join("results.csv"));

    let again = npukit_explore::run(&s, &options(&out, None)).unwrap();
    assert_eq!(again.summary.simulated, 0);
    assert_eq!(again.summary.cached, 8);
    assert_eq!(read(&out.join("results.json")), json);
    assert_eq!(read(&out.join("results.csv")), csv);

    // One more axis value: only its points are simulated.
    let s2 = sweep(
        &d,
        &SMALL.replace("values = [8, 16]", "values = [8, 16, 32]"),
    );
    let grown = npukit_explore::run(&s2, &options(&out, None)).unwrap();
    assert_eq!(grown.summary.simulated, 4);
    assert_eq!(grown.summary.cached, 8);

    // Another energy table: nothing simulated, energies scale.
    let mut o = options(&out, None);
    o.energy.energy_scale = 2.0;
    let scaled = npukit_explore::run(&s, &o).unwrap();
    assert_eq!(scaled.summary.simulated, 0);
    for (a, b) in first.results.rows.iter().zip(&scaled.results.rows) {
        assert_eq!(a.sim, b.sim);
        let (ea, eb) = (a.derived.energy.total_nj, b.derived.energy.total_nj);
        assert!(ea > 0.0 && (eb - 2.0 * ea).abs() < 1e-9 * eb, "{ea} {eb}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn results_hold_every_counter_and_consistent_figures() {
    let d = tmp("figures");
    let s = sweep(&d, SMALL);
    let out = d.join("out");
    let o = npukit_explore::run(&s, &options(&out, None)).unwrap();
    let csv = read(&out.join("results.csv"));
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for c in npukit_abi::regs::PERF_COUNTERS {
        let name = npukit_abi::regs::by_offset(*c).unwrap().name;
        assert!(head.contains(&name), "{name} missing from {head:?}");
    }
    assert_eq!(csv.lines().count(), 1 + 8);
    for r in &o.results.rows {
        assert_eq!(r.sim.cycles, r.sim.counter("PERF_CYCLES"));
        let x = &r.derived.estimates;
        // The roofline bound is a lower bound of the cycle model.
        assert!(x.roofline_ratio >= 1.0, "{r:?}");
        assert!((x.fold_ratio - r.sim.cycles as f64 / x.fold_cycles as f64).abs() < 1e-12);
        // The fold estimate leaves out only costs (docs/explore.md).
        assert!(x.folds.count > 0 && x.fold_ratio >= 1.0, "{r:?}");
        assert!(r.derived.energy.total_nj > 0.0 && r.derived.area.total_mm2 > 0.0);
    }
    // More bandwidth never makes a run slower here, and a bigger array costs area.
    let rows = &o.results.rows;
    let find = |w: &str, n: u32, bw: u32| {
        rows.iter()
            .find(|r| {
                r.workload == w && r.config.array.rows == n && r.config.dram.bytes_per_cycle == bw
            })
            .unwrap()
    };
    for w in ["mlp-small", "gemm-rect"] {
        assert!(find(w, 8, 16).sim.cycles <= find(w, 8, 8).sim.cycles);
        assert!(find(w, 16, 8).derived.area.total_mm2 > find(w, 8, 8).derived.area.total_mm2);
    }
    assert!(rows.iter().any(|r| r.derived.pareto));
    std::fs::remove_dir_all(&d).ok();
}
