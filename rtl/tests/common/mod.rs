//! Shared helpers of the lockstep tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use npukit_rtl::corpus::{self, Case};
use npukit_rtl::{variant, LockstepOptions, RtlError};
use npukit_sim::NpuConfig;

/// The sound variants every lockstep test runs on.
pub const VARIANTS: [&str; 9] = [
    "npu_4x4",
    "npu_8x8",
    "npu_16x16",
    "npu_4x4_beat8",
    "npu_4x4_beat64",
    "npu_4x4_os",
    "npu_8x8_os",
    "npu_4x4_wdb",
    "npu_8x8_wdb",
];

/// Fails the test, saying how to get Verilator, when the crate was built without it.
pub fn require_rtl() {
    if !variant::verilator_available() {
        panic!(
            "these lockstep tests need the Verilated RTL: {}",
            RtlError::NoVerilator
        );
    }
}

/// The default configuration with `name`'s fixed fields.
pub fn config_of(name: &str) -> NpuConfig {
    let v = variant::all()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("variant {name} is not in rtl/generated/variants.json"));
    v.apply(&NpuConfig::default())
}

/// Runs every case on `name` in lockstep with the model; returns one failure
/// report per failing case (the full divergence report).
pub fn run_cases(name: &str, cases: &[Case]) -> Vec<String> {
    let cfg = config_of(name);
    let mut failures = Vec::new();
    for case in cases {
        match corpus::cosim(case, &cfg, Some(name), LockstepOptions::default()) {
            // Something was compared: every case makes events.
            Ok(o) if o.events > 0 && o.cycles > 0 => {}
            Ok(o) => failures.push(format!(
                "--- {name} / {}: nothing compared ({o:?})",
                case.name
            )),
            Err(e) => failures.push(format!("--- {name} / {}:\n{e}", case.name)),
        }
    }
    failures
}

/// Asserts no failures, printing every report (the first in full).
pub fn assert_all_pass(what: &str, total: usize, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let mut msg = format!(
        "{what}: {} of {total} lockstep runs diverged or failed\n",
        failures.len()
    );
    for f in failures {
        msg.push_str(f);
        msg.push('\n');
    }
    panic!("{msg}");
}

/// Runs `cases(cfg)` on every sound variant.
pub fn run_on_all_variants(what: &str, cases: impl Fn(&NpuConfig) -> Vec<Case>) {
    require_rtl();
    let mut failures = Vec::new();
    let mut total = 0;
    for name in VARIANTS {
        let c = cases(&config_of(name));
        total += c.len();
        failures.extend(run_cases(name, &c));
    }
    assert_all_pass(what, total, &failures);
}
