//! Lockstep (model vs RTL) on every error path: decode errors, range errors,
//! translation faults, BAD_RING, deadlock, watchdog, token overflow; on 4x4,
//! 8x8 and 16x16. The model must halt with the code the case names (checked
//! by `corpus::run`), and the RTL must agree event for event.

mod common;

use npukit_rtl::corpus::{self, Expect};

#[test]
fn every_error_path_in_lockstep() {
    common::run_on_all_variants("error paths", |cfg| {
        corpus::handwritten(cfg)
            .into_iter()
            .filter(|c| matches!(c.expect, Expect::Error(_)))
            .collect()
    });
}
