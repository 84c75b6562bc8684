//! The workload JSON importer: any text parses into a workload or gives a
//! `CompileError` (never a panic, never an allocation the input's size does
//! not justify). A workload that parses goes through
//! [`npukit_fuzz::check_workload`]: it compiles for a 4x4 NPU or fails with
//! an error; a compiled program passes the ABI's own validation, and a small
//! one runs on the model and matches the CPU reference bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npukit_compiler::parse_workload;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(w) = parse_workload(text) {
        npukit_fuzz::check_workload(&w);
    }
});
