//! Lockstep (model vs RTL) on constrained-random programs (`corpus::random`):
//! 70 fixed seeds per variant, on every sound variant (common::VARIANTS: 630 programs).
//! `NPUKIT_COSIM_SEED=S` starts from another seed, `NPUKIT_COSIM_COUNT=N`
//! runs N programs per variant.

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
fn random_programs_in_lockstep() {
    let seed = env_u64("NPUKIT_COSIM_SEED", 1);
    let count = env_u64("NPUKIT_COSIM_COUNT", 70);
    common::run_on_all_variants("random programs", |cfg| {
        (seed..seed + count)
            .map(|s| corpus::random(cfg, s))
            .collect()
    });
}
