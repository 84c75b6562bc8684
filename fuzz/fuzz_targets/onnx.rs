//! The ONNX importer (compiler/src/onnx/, a hand-written protobuf reader):
//! any bytes import into a workload or give a `CompileError` naming the
//! problem (never a panic, never a hang, never an allocation the file's size
//! does not justify). The seeds are the checked-in models under
//! workloads/onnx/ (scripts/fuzz.sh passes that folder as a corpus), so most
//! inputs are mutations of real models: wrong field numbers, lengths, dims,
//! data types, attributes, missing or extra nodes. A model that imports goes
//! through [`npukit_fuzz::check_workload`] as a JSON workload does: it
//! compiles or fails with an error, the program validates, and a small one
//! runs on the model bit-exact against the CPU reference.
//!
//! Mutations are mostly structural ([`npukit_fuzz::proto`]: the input is
//! read as protobuf fields, changed as a tree and written back with correct
//! lengths), so that mutated models get past the wire format into the
//! importer; one in four is libFuzzer's byte-level mutation.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use npukit_compiler::onnx::parse_onnx;

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    npukit_fuzz::proto::mutate(data, size, max_size, seed)
});

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = parse_onnx(data, "fuzz") {
        npukit_fuzz::check_workload(&w);
    }
});
