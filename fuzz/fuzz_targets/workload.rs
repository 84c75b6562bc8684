//! The workload JSON importer: any text parses into a workload or gives a
//! `CompileError` (never a panic, never an allocation the input's size does
//! not justify). A workload that parses compiles for a 4x4 NPU or fails
//! with an error; a compiled program passes the ABI's own validation, and
//! a small one runs on the model and matches the CPU reference bit for bit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npukit_compiler::{compile, load_image, parse_workload, read_output, reference};
use npukit_sim::run::run_program;
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(w) = parse_workload(text) else {
        return;
    };
    let mut cfg = NpuConfig::default();
    cfg.array.rows = 4;
    cfg.array.cols = 4;
    cfg.memory.spad_bytes = 16384;
    cfg.memory.acc_bytes = 4096;
    let Ok(c) = compile(&w, &cfg) else {
        return;
    };
    let lim = npukit_abi::Limits {
        rows: 4,
        cols: 4,
        spad_bytes: 16384,
        acc_bytes: 4096,
    };
    if let Err((i, e)) = c.program.validate(&lim) {
        panic!("the compiler emitted an invalid descriptor {i}: {e}");
    }
    if c.macs() > 1 << 16 || c.mem_bytes > 8 << 20 || c.program.len() > 2000 {
        return;
    }
    let want = reference(&w).expect("a workload that compiles has a reference result");
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut mem).expect("the image fits the memory it asked for");
    let mut dev = ModelDevice::new(&cfg);
    run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        50_000_000,
    )
    .unwrap_or_else(|e| panic!("a compiled program failed on the model: {e}"));
    for (name, t) in want {
        let got = read_output(&c, &mem, &name).expect("every reference output is placed");
        assert_eq!(got, t, "output {name} differs from the CPU reference");
    }
});
