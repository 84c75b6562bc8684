//! Shared helpers: compile, run on the model, compare with the reference.
#![allow(dead_code, clippy::unwrap_used)]

use npukit_compiler::{
    compile_with, load_image, read_output, reference, CompileError, CompileOptions, Compiled,
    Strategy, Workload,
};
use npukit_sim::run::{run_program, Outcome};
use npukit_sim::{ModelDevice, NpuConfig, VecMemory};

/// A config with the given array and local memories, other fields default.
pub fn cfg(rows: u32, cols: u32, spad: u32, acc: u32) -> NpuConfig {
    let mut c = NpuConfig::default();
    c.array.rows = rows;
    c.array.cols = cols;
    c.memory.spad_bytes = spad;
    c.memory.acc_bytes = acc;
    c.validate().unwrap();
    c
}

/// Compiles `w` for `cfg`, runs it on the model and checks every output
/// against the reference, bit for bit.
pub fn run_and_check(w: &Workload, cfg: &NpuConfig) -> (Compiled, Outcome) {
    run_and_check_with(w, cfg, &CompileOptions::default())
}

/// Every loop strategy (those that fit) and no software pipelining, each
/// checked bit-exact; returns how many variants ran.
pub fn check_all_strategies(w: &Workload, cfg: &NpuConfig) -> usize {
    let mut ran = 0;
    for strategy in [
        Strategy::Auto,
        Strategy::NOuterResident,
        Strategy::NOuterStreamed,
        Strategy::KOuter,
    ] {
        for lookahead in [2, 0] {
            let opts = CompileOptions {
                strategy,
                lookahead,
            };
            match compile_with(w, cfg, &opts) {
                Err(CompileError::Tiling { .. }) if strategy != Strategy::Auto => continue,
                Err(e) => panic!("{} {opts:?}: {e}", w.name),
                Ok(_) => {}
            }
            run_and_check_with(w, cfg, &opts);
            ran += 1;
        }
    }
    ran
}

/// As [`run_and_check`] with explicit compile options.
pub fn run_and_check_with(
    w: &Workload,
    cfg: &NpuConfig,
    opts: &CompileOptions,
) -> (Compiled, Outcome) {
    let c = compile_with(w, cfg, opts).unwrap_or_else(|e| panic!("{} {opts:?}: {e}", w.name));
    assert_eq!(npukit_compiler::token_balance(c.program.descs()), [0; 4]);
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    load_image(&c, &mut mem).unwrap();
    let mut dev = ModelDevice::new(cfg);
    let out = run_program(
        &mut dev,
        &mut mem,
        c.ring_base,
        c.program.descs(),
        200_000_000,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", w.name));
    assert_eq!(
        dev.tokens(),
        [0; 4],
        "{} {opts:?}: tokens left over",
        w.name
    );
    let want = reference(w).unwrap();
    assert_eq!(want.len(), c.outputs.len());
    for (name, t) in want {
        let got = read_output(&c, &mem, &name).unwrap();
        assert_eq!(got.shape, t.shape, "{}: {name}", w.name);
        if let Some((i, g, r)) = got.first_difference(&t) {
            panic!(
                "{} {opts:?}: output {name} differs at element {i} (row {}, col {}): npu {g}, reference {r}",
                w.name,
                i / t.shape[1],
                i % t.shape[1]
            );
        }
        assert_eq!(got, t);
    }
    assert_eq!(out.counters.macs, c.macs(), "{}", w.name);
    (c, out)
}

/// An MLP workload in JSON: `dims = [in, h1, ..., out]`, seeded random data.
pub fn mlp_json(
    name: &str,
    batch: usize,
    dims: &[usize],
    relu: bool,
    in_zp: i32,
    seed: u64,
) -> String {
    let mut layers = Vec::new();
    for (i, w) in dims.windows(2).enumerate() {
        let last = i + 2 == dims.len();
        let s = seed * 100 + i as u64 * 10;
        // Output scale so outputs spread over the int8 range: acc std is about
        // sqrt(k) * 74 * 74 * 0.02 * 0.005.
        let out_scale = (w[0] as f64).sqrt() * 74.0 * 74.0 * 0.02 * 0.005 / 40.0;
        layers.push(format!(
            r#"{{"op": "dense", "name": "fc{i}", "out_features": {},
               "weights": {{"random": {{"seed": {s}}}}}, "weight_quant": {{"scale": 0.005}},
               "bias": {{"random": {{"seed": {}, "range": [-30000, 30000]}}}},
               "output": {{"scale": {out_scale}, "zero_point": {}}}, "relu": {}}}"#,
            w[1],
            s + 1,
            if relu && !last { -100 } else { 3 },
            relu && !last
        ));
    }
    format!(
        r#"{{"name": "{name}", "batch": {batch},
           "input": {{"name": "x", "features": {}, "quant": {{"scale": 0.02, "zero_point": {in_zp}}},
                      "data": {{"random": {{"seed": {seed}}}}}}},
           "layers": [{}], "output": "y"}}"#,
        dims[0],
        layers.join(",")
    )
}

/// A GEMM workload: A[m x k] x B[k x n], int32 output (or int8 with `out_scale`).
pub fn gemm_json(
    name: &str,
    m: usize,
    k: usize,
    n: usize,
    out_scale: Option<f64>,
    seed: u64,
) -> String {
    let output = match out_scale {
        Some(s) => format!(r#", "output": {{"scale": {s}, "zero_point": -7}}"#),
        None => String::new(),
    };
    format!(
        r#"{{"name": "{name}", "batch": {m},
           "input": {{"name": "a", "features": {k}, "data": {{"random": {{"seed": {seed}}}}}}},
           "layers": [{{"op": "matmul", "name": "mm", "out_features": {n},
                        "weights": {{"random": {{"seed": {}}}}}{output}}}],
           "output": "c"}}"#,
        seed + 1
    )
}

/// Writes a patterned tensor into the graph input `p` of `c` and reads it
/// back (write_tensor / read_output must round-trip); returns the distinct
/// device addresses its elements map to, one per element (asserted), sorted.
pub fn input_round_trip(c: &Compiled, p: &npukit_compiler::TensorPlacement) -> Vec<u64> {
    let n: usize = p.shape.iter().product();
    let t = npukit_compiler::Tensor::i8(
        p.shape.clone(),
        (0..n).map(|i| (i * 7 % 251) as i8).collect(),
    );
    let mut mem = VecMemory::new(c.mem_bytes as usize);
    npukit_compiler::write_tensor(c, &mut mem, &p.name, &t).unwrap();
    assert_eq!(read_output(c, &mem, &p.name).unwrap(), t);
    let mut seen: Vec<u64> = (0..p.rows())
        .flat_map(|r| (0..p.cols()).map(move |col| (r, col)))
        .map(|(r, col)| p.offset(r, col))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), n, "elements sharing an address");
    seen
}
