//! Property test: random networks on random array shapes and memory sizes run
//! bit-exact against the reference, with every loop strategy.

mod common;

use common::*;
use npukit_compiler::{compile_with, parse_workload, CompileError, CompileOptions, Strategy};
use proptest::prelude::*;

fn strategy() -> impl proptest::strategy::Strategy<Value = Strategy> {
    prop_oneof![
        Just(Strategy::Auto),
        Just(Strategy::NOuterResident),
        Just(Strategy::NOuterStreamed),
        Just(Strategy::KOuter),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_networks_are_bit_exact(
        rows in 1u32..=12,
        cols in 1u32..=12,
        spad_tiles in 2u32..40,
        acc_rows in 1u32..64,
        batch in 1usize..=40,
        dims in proptest::collection::vec(1usize..=48, 2..=4),
        relu in any::<bool>(),
        zp in -128i32..=127,
        gemm in any::<bool>(),
        strat in strategy(),
        lookahead in 0usize..=3,
        seed in 0u64..1000,
    ) {
        let spad = (rows * cols * spad_tiles).max(rows * cols + 64);
        let acc = (cols * 4 * acc_rows).max(cols * 4);
        let c = cfg(rows, cols, spad, acc);
        let json = if gemm {
            gemm_json("prop-gemm", batch, dims[0], dims[1], None, seed)
        } else {
            mlp_json("prop-mlp", batch, &dims, relu, zp, seed)
        };
        let w = parse_workload(&json).unwrap();
        let opts = CompileOptions { strategy: strat, lookahead };
        match compile_with(&w, &c, &opts) {
            Err(CompileError::Tiling { .. }) => {
                return Err(TestCaseError::reject("does not fit"));
            }
            Err(e) => panic!("{e}"),
            Ok(_) => {}
        }
        run_and_check_with(&w, &c, &opts);
    }
}
