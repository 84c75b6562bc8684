//! Malformed workloads and impossible configurations give clear errors that
//! name the problem.

mod common;

use common::cfg;
use npukit_compiler::{
    compile, load_workload, parse_workload, read_output, CompileError, Workload,
};
use npukit_sim::{NpuConfig, VecMemory};

/// A valid two-layer workload with `layer2` spliced in as the second layer and
/// `input` as the input object.
fn with(input: &str, layer2: &str) -> String {
    format!(
        r#"{{"name": "t", "batch": 4,
            "input": {input},
            "layers": [
              {{"op": "dense", "name": "fc1", "out_features": 256,
                "weights": {{"random": {{"seed": 1}}}}, "output": {{"scale": 0.5}}}},
              {layer2}
            ]}}"#
    )
}

const INPUT: &str = r#"{"name": "x", "features": 8, "data": {"random": {"seed": 9}}}"#;
const FC2: &str = r#"{"op": "dense", "name": "fc2", "out_features": 3,
    "weights": {"random": {"seed": 2}}, "output": {"scale": 0.5}}"#;

fn err(json: &str) -> String {
    match parse_workload(json) {
        Ok(_) => panic!("accepted: {json}"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "`{msg}` does not mention `{p}`");
    }
}

#[test]
fn the_template_is_valid() {
    let w: Workload = parse_workload(&with(INPUT, FC2)).unwrap();
    assert_eq!(w.graph().layers().unwrap().len(), 2);
}

#[test]
fn in_features_mismatch_names_the_layer() {
    let fc2 = FC2.replace(
        r#""out_features": 3"#,
        r#""in_features": 300, "out_features": 3"#,
    );
    assert_eq!(
        err(&with(INPUT, &fc2)),
        "layer fc2: in_features 300 does not match the previous layer's 256 outputs"
    );
    let fc1_in = with(INPUT, FC2).replace(
        r#""name": "fc1", "out_features": 256"#,
        r#""name": "fc1", "in_features": 9, "out_features": 256"#,
    );
    assert_eq!(
        err(&fc1_in),
        "layer fc1: in_features 9 does not match the input x's 8 features"
    );
}

#[test]
fn missing_fields_are_named() {
    let fc2 = FC2.replace(r#""out_features": 3,"#, "");
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "missing field `out_features`"],
    );
    let fc2 = FC2.replace(r#", "output": {"scale": 0.5}"#, "");
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "missing field `output`"],
    );
    let fc2 = FC2.replace(r#""weights": {"random": {"seed": 2}}, "#, "");
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "missing field `weights`"],
    );
    let input = INPUT.replace(r#""features": 8, "#, "");
    assert_mentions(
        &err(&with(&input, FC2)),
        &["input", "missing field `features`"],
    );
    let no_batch = with(INPUT, FC2).replace(r#""batch": 4,"#, "");
    assert_mentions(&err(&no_batch), &["missing field `batch`"]);
    let fc2 = FC2.replace(r#"{"scale": 0.5}"#, r#"{"zero_point": 1}"#);
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "missing field `scale`"],
    );
}

#[test]
fn unknown_fields_and_ops_are_named() {
    let fc2 = FC2.replace("out_features", "out_featurez");
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "unknown field `out_featurez`"],
    );
    let fc2 = FC2.replace(r#""op": "dense""#, r#""op": "conv""#);
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "unknown op `conv`"],
    );
}

#[test]
fn wrong_shapes_are_named() {
    let fc2 = FC2.replace(r#"{"random": {"seed": 2}}"#, "[1, 2, 3, 4, 5]");
    assert_eq!(
        err(&with(INPUT, &fc2)),
        "layer fc2: weights has 5 values, expected 256 x 3 = 768"
    );
    let fc2 = r#"{"op": "dense", "name": "fc2", "out_features": 3, "in_features": 2,
        "weights": [[1, 2, 3], [4, 5]], "output": {"scale": 0.5}}"#;
    assert_mentions(
        &err(&with(INPUT, fc2)),
        &["layer fc2", "weights[1] has 2 values, expected 3"],
    );
    let fc2 = FC2.replace(r#""output""#, r#""bias": [1, 2], "output""#);
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "bias has 2 values, expected 3"],
    );
    let input = INPUT.replace(r#"{"random": {"seed": 9}}"#, "[1, 2, 3]");
    assert_mentions(
        &err(&with(&input, FC2)),
        &["input x", "data has 3 values, expected 4 x 8 = 32"],
    );
}

#[test]
fn values_out_of_range_are_named() {
    let fc2 = r#"{"op": "dense", "name": "fc2", "out_features": 1, "in_features": 256,
        "weights": {"random": {"seed": 1}}, "output": {"scale": 0.5}}"#;
    let w = with(INPUT, fc2).replace(r#""features": 8,"#, r#""features": 2,"#);
    let w = w.replace(
        r#""name": "fc1", "out_features": 256,
                "weights": {"random": {"seed": 1}}"#,
        r#""name": "fc1", "out_features": 256, "weights": {"random": {"seed": 1, "range": [-300, 0]}}"#,
    );
    assert_mentions(&err(&w), &["layer fc1", "random range [-300, 0]", "int8"]);
    let fc2 = r#"{"op": "dense", "name": "fc2", "out_features": 1, "in_features": 1,
        "weights": [200], "output": {"scale": 0.5}}"#;
    let w = with(INPUT, fc2).replace(r#""out_features": 256"#, r#""out_features": 1"#);
    assert_mentions(
        &err(&w),
        &["layer fc2", "weights[0] = 200 is out of the int8 range"],
    );
}

#[test]
fn bad_zero_points_and_scales_are_named() {
    let input = INPUT.replace(
        r#""features": 8"#,
        r#""features": 8, "quant": {"scale": 1, "zero_point": 200}"#,
    );
    assert_eq!(
        err(&with(&input, FC2)),
        "input x: zero_point 200 is out of the int8 range -128..=127"
    );
    let fc2 = FC2.replace(r#"{"scale": 0.5}"#, r#"{"scale": 0.5, "zero_point": -129}"#);
    assert_eq!(
        err(&with(INPUT, &fc2)),
        "layer fc2: output zero_point -129 is out of the int8 range -128..=127"
    );
    let fc2 = FC2.replace(
        r#""output""#,
        r#""weight_quant": {"scale": 0.1, "zero_point": 3}, "output""#,
    );
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "weight zero_point 3", "symmetric"],
    );
    let fc2 = FC2.replace(r#"{"scale": 0.5}"#, r#"{"scale": 0}"#);
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "output scale 0 must be a positive number"],
    );
    let fc2 = FC2.replace(r#"{"scale": 0.5}"#, r#"{"scale": 1e-12}"#);
    assert_mentions(&err(&with(INPUT, &fc2)), &["layer fc2", "too large"]);
}

#[test]
fn type_errors_are_named() {
    let fc2 = FC2
        .replace(r#"{"scale": 0.5}"#, r#"{"dtype": "int32"}"#)
        .replace(r#""op": "dense""#, r#""op": "dense", "relu": true"#);
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "relu needs an int8 output"],
    );
    let fc2 = FC2
        .replace(r#""output""#, r#""bias": [1, 2, 3], "output""#)
        .replace("dense", "matmul");
    assert_mentions(
        &err(&with(INPUT, &fc2)),
        &["layer fc2", "matmul layer has no bias"],
    );
    // An int32 output cannot feed another layer.
    let w = with(INPUT, FC2).replace(
        r#""name": "fc1", "out_features": 256,
                "weights": {"random": {"seed": 1}}, "output": {"scale": 0.5}"#,
        r#""name": "fc1", "out_features": 256, "weights": {"random": {"seed": 1}}, "output": {"dtype": "int32"}"#,
    );
    assert_mentions(&err(&w), &["layer fc2", "its input fc1 is int32"]);
    let w = with(INPUT, FC2).replace(r#""name": "fc1""#, r#""name": "x""#);
    assert_mentions(&err(&w), &["x", "used twice"]);
}

#[test]
fn syntax_errors_say_where() {
    let e = parse_workload("{\"name\": \"t\",\n \"batch\": }").unwrap_err();
    assert!(matches!(e, CompileError::Json(_)), "{e:?}");
    assert_mentions(&e.to_string(), &["line 2"]);
    let e = parse_workload(r#"{"name": "t", "batch": -1, "input": {}, "layers": []}"#).unwrap_err();
    assert_mentions(&e.to_string(), &["-1"]);
    let e =
        parse_workload(&with(INPUT, FC2).replace(r#""batch": 4"#, r#""batch": 0"#)).unwrap_err();
    assert_mentions(&e.to_string(), &["batch 0"]);
}

#[test]
fn files_are_named() {
    let e = load_workload(std::path::Path::new("/nonexistent/w.json")).unwrap_err();
    assert!(matches!(e, CompileError::Io { .. }), "{e:?}");
    assert_mentions(&e.to_string(), &["/nonexistent/w.json"]);
    let dir = std::env::temp_dir().join(format!("npukit-compiler-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("bad.json");
    let fc2 = FC2.replace(
        r#""out_features": 3"#,
        r#""in_features": 300, "out_features": 3"#,
    );
    std::fs::write(&p, with(INPUT, &fc2)).unwrap();
    let e = load_workload(&p).unwrap_err().to_string();
    assert!(e.starts_with(&p.display().to_string()), "{e}");
    assert_mentions(&e, &["layer fc2: in_features 300"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn compile_err(w: &Workload, c: &NpuConfig) -> CompileError {
    match compile(w, c) {
        Ok(p) => panic!("compiled to {} descriptors", p.program.len()),
        Err(e) => e,
    }
}

#[test]
fn configurations_that_cannot_hold_a_tile_are_named() {
    let w =
        parse_workload(&with(INPUT, FC2).replace(r#""features": 8"#, r#""features": 64"#)).unwrap();
    // 16x16 array: one weight tile alone is 256 bytes; the scratchpad is 256.
    let e = compile_err(&w, &cfg(16, 16, 256, 1024));
    assert!(matches!(e, CompileError::Tiling { .. }), "{e:?}");
    assert_mentions(
        &e.to_string(),
        &["layer fc1", "smallest tile", "scratchpad"],
    );
    // Device memory too small for the tensors.
    let mut c = NpuConfig::default();
    c.dram.size_bytes = 4096;
    let e = compile_err(&w, &c);
    assert!(matches!(e, CompileError::MemoryTooSmall { .. }), "{e:?}");
}

#[test]
fn unknown_outputs_and_small_memories_are_errors() {
    let w = parse_workload(&with(INPUT, FC2)).unwrap();
    let c = compile(&w, &NpuConfig::default()).unwrap();
    let mem = VecMemory::new(c.mem_bytes as usize);
    let e = read_output(&c, &mem, "nope").unwrap_err();
    assert_eq!(e.to_string(), "no output tensor named `nope`");
    let mut small = VecMemory::new(4096);
    let e = npukit_compiler::load_image(&c, &mut small).unwrap_err();
    assert!(matches!(e, CompileError::MemoryTooSmall { .. }), "{e:?}");
}

#[test]
fn a_tensor_too_large_for_any_memory_is_an_error_not_an_allocation() {
    // Found by the `workload` fuzz target (fuzz/): every dimension is within
    // MAX_DIM, but 2^20 x 2^20 elements were allocated (8 TiB).
    let big_input = r#"{"name": "x", "features": 1048576, "data": {"random": {"seed": 9}}}"#;
    let json = format!(
        r#"{{"name": "t", "batch": 1048576, "input": {big_input},
            "layers": [{{"op": "matmul", "out_features": 4, "weights": {{"random": {{"seed": 2}}}}}}]}}"#
    );
    assert_mentions(
        &err(&json),
        &["input x", "data", "1048576 x 1048576", "67108864"],
    );
    let big_weights = with(
        INPUT,
        r#"{"op": "matmul", "name": "fc2", "in_features": 256, "out_features": 1048576,
            "weights": {"random": {"seed": 2}}}"#,
    );
    assert_mentions(
        &err(&big_weights),
        &["layer fc2", "weights", "256 x 1048576"],
    );
    // Small inputs and weights, but a layer output of batch x out_features.
    let wide_out = r#"{"name": "t", "batch": 1048576,
        "input": {"name": "x", "features": 1, "data": {"random": {"seed": 9}}},
        "layers": [{"op": "matmul", "name": "wide", "out_features": 65, "weights": {"random": {"seed": 2}}}]}"#;
    assert_mentions(&err(wide_out), &["layer wide", "output", "1048576 x 65"]);
}
