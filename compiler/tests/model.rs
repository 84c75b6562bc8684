//! Compiled programs run on the cycle-accurate model and match the CPU
//! reference bit for bit.

mod common;

use common::*;
use npukit_compiler::{builtin_example, parse_workload};
use npukit_sim::NpuConfig;

#[test]
fn builtin_example_runs_bit_exact() {
    let (c, out) = run_and_check(&builtin_example(), &NpuConfig::default());
    println!("{} descriptors, {out:?}", c.program.len());
}
