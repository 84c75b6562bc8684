//! The checked-in Verilog (`rtl/generated/`) is what the generator makes now,
//! and every file passes Verilator's lint with no warning.

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const REGEN: &str =
    "regenerate with `cargo run -p npukit-hw --bin npukit-hwgen` and commit rtl/generated/";

#[test]
fn generated_files_are_fresh() {
    let files = npukit_hw::gen::all_files(&root()).unwrap();
    let dir = root().join("rtl/generated");
    let mut stale = Vec::new();
    for (name, text) in &files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(old) if &old == text => {}
            Ok(_) => stale.push(format!("{name} differs")),
            Err(e) => stale.push(format!("{name}: {e}")),
        }
    }
    // no leftover files from earlier variants
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !files.iter().any(|(n, _)| *n == name) {
            stale.push(format!("{name} is not generated any more"));
        }
    }
    assert!(
        stale.is_empty(),
        "rtl/generated is stale ({}); {REGEN}",
        stale.join(", ")
    );
}

#[test]
fn variants_json_lists_every_file() {
    let json = std::fs::read_to_string(root().join("rtl/generated/variants.json")).unwrap();
    for (name, cfg, fault) in npukit_hw::gen::VARIANTS {
        assert!(
            json.contains(&format!("\"name\": \"{name}\"")),
            "{name} ({cfg})"
        );
        if let Some(f) = fault {
            assert!(
                json.contains(&format!("\"fault\": \"{}\"", f.name())),
                "{name}"
            );
        }
    }
}

#[test]
fn verilator_lint_is_clean() {
    let ok = Command::new("verilator").arg("--version").output();
    assert!(
        ok.is_ok_and(|o| o.status.success()),
        "verilator is not installed: apt-get install -y verilator"
    );
    let dir = root().join("rtl/generated");
    let mut failures = Vec::new();
    for (name, _, _) in npukit_hw::gen::VARIANTS {
        let file = dir.join(format!("{name}.v"));
        if let Err(log) = common::verilator_lint_file(&file) {
            failures.push(log);
        }
    }
    assert!(
        failures.is_empty(),
        "Verilator lint:\n{}",
        failures.join("\n")
    );
}
