//! Lockstep (model vs RTL) on the hand-written programs that complete: every
//! opcode, a double-buffered token pipeline, translation, several DRAM
//! timings; on every sound variant (common::VARIANTS).

mod common;

use npukit_rtl::corpus::{self, Expect};

#[test]
fn every_opcode_in_lockstep() {
    common::run_on_all_variants("hand-written programs", |cfg| {
        corpus::handwritten(cfg)
            .into_iter()
            .filter(|c| c.expect == Expect::Complete)
            .collect()
    });
}
