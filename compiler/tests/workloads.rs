//! The example workloads under workloads/ compile and run bit-exact on the
//! default 16x16 configuration.

mod common;

use std::path::{Path, PathBuf};

use common::run_and_check;
use npukit_compiler::{builtin_example, load_workload, BUILTIN_EXAMPLE_JSON};
use npukit_sim::NpuConfig;

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads")
        .join(format!("{name}.json"))
}

fn check(name: &str) {
    let w = load_workload(&path(name)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.name, name);
    let cfg = NpuConfig::default();
    let (c, out) = run_and_check(&w, &cfg);
    let peak = cfg.peak_macs_per_cycle() as f64;
    println!(
        "{name}: {} descriptors ({} relays), {} cycles, {} MACs, MAC utilisation {:.1}%",
        c.program.len(),
        c.relays,
        out.cycles,
        c.macs(),
        100.0 * c.macs() as f64 / (out.cycles as f64 * peak)
    );
    for l in &c.layers {
        println!(
            "  {}: descs {:?}, {} MACs, {} DRAM bytes, {}",
            l.name,
            l.descs,
            l.macs,
            l.dram_bytes,
            l.tiling.map(|t| t.to_string()).unwrap_or_default()
        );
    }
}

#[test]
fn mlp_small() {
    check("mlp-small");
}

#[test]
fn mlp_mnist() {
    check("mlp-mnist");
}

#[test]
fn gemm_128() {
    check("gemm-128");
}

#[test]
fn gemm_rect() {
    check("gemm-rect");
}

#[test]
fn builtin_example_is_mlp_small() {
    let text = std::fs::read_to_string(path("mlp-small")).unwrap();
    assert_eq!(text, BUILTIN_EXAMPLE_JSON);
    let w = builtin_example();
    assert_eq!(w.name, "mlp-small");
    assert_eq!(w.graph().layers().unwrap().len(), 3);
}
