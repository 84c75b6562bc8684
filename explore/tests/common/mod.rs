//! Shared set-up of the explore tests: temporary folders and small sweeps.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use npukit_explore::{EnergyTable, Options, Shard, Sweep};

/// A fresh temporary folder for one test.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("npukit-explore-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A sweep file written into `dir`, with workloads from the repository.
pub fn sweep(dir: &Path, body: &str) -> Sweep {
    let w = root().join("workloads");
    let text = body.replace("WORKLOADS", &w.display().to_string());
    let p = dir.join("sweep.toml");
    std::fs::write(&p, text).expect("write sweep");
    Sweep::load(&p).expect("sweep loads")
}

/// A small sweep: 2 shapes x 2 bandwidths x 2 workloads.
pub const SMALL: &str = r#"
name = "small"
workloads = ["WORKLOADS/mlp-small.json", "WORKLOADS/gemm-rect.json"]
[[axis]]
fields = ["array.rows", "array.cols"]
values = [[8, 8], [16, 16]]
[[axis]]
field = "dram.bytes_per_cycle"
values = [8, 16]
"#;

pub fn options(out: &Path, shard: Option<Shard>) -> Options {
    Options {
        out: out.to_path_buf(),
        cache: None,
        shard,
        energy: EnergyTable::builtin(),
        jobs: None,
        progress: false,
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
