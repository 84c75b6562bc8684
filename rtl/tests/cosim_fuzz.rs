//! Lockstep (model vs RTL) on fuzzed programs (`corpus::fuzz`): random
//! descriptors of every opcode with random fields and flags, and junk words;
//! they complete or halt with any error, and both sides must agree event for
//! event (memory is not compared: such programs race). 40 seeds per variant;
//! `NPUKIT_COSIM_SEED` / `NPUKIT_COSIM_COUNT` (per variant) run others.

mod common;

use npukit_rtl::corpus;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

#[test]
fn fuzzed_programs_in_lockstep() {
    let seed = env_u64("NPUKIT_COSIM_SEED", 1);
    let count = env_u64("NPUKIT_COSIM_COUNT", 40);
    common::run_on_all_variants("fuzzed programs", |cfg| {
        (seed..seed + count).map(|s| corpus::fuzz(cfg, s)).collect()
    });
}
