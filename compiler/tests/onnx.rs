//! ONNX import: the quantised models under workloads/onnx/ (made by
//! tools/make_onnx.py, per-tensor and per-channel) compile and run bit-exact; a float model, an
//! unsupported op, a truncated file and inconsistent shapes are clear errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{cfg, input_round_trip, run_and_check};
use npukit_abi::desc::Op;
use npukit_compiler::graph::Node;
use npukit_compiler::onnx::parse_onnx;
use npukit_compiler::{load_workload, parse_workload};
use npukit_sim::NpuConfig;

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../workloads/onnx")
        .join(format!("{name}.onnx"))
}

fn ops(w: &npukit_compiler::Workload) -> Vec<&'static str> {
    let g = w.graph();
    g.ops()
        .unwrap()
        .into_iter()
        .map(|i| g.graph[i].op())
        .collect()
}

#[test]
fn qdq_model_imports_and_runs_bit_exact() {
    let w = load_workload(&path("qdq-cnn")).unwrap_or_else(|e| panic!("{e}"));
    let o = ops(&w);
    for op in [
        "conv2d",
        "maxpool",
        "add",
        "concat",
        "avgpool",
        "global_avgpool",
        "flatten",
        "dense",
    ] {
        assert!(o.contains(&op), "{op} missing from {o:?}");
    }
    // The Clip(0, 6) after the depthwise conv became its fused ReLU6.
    let g = w.graph();
    let dw = g
        .graph
        .node_weights()
        .find_map(|n| match n {
            Node::Conv(c) if c.groups > 1 => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(dw.groups, 16);
    assert_eq!(dw.act, npukit_compiler::graph::Activation::Relu6);
    for c in [NpuConfig::default(), cfg(8, 8, 64 << 10, 16 << 10)] {
        run_and_check(&w, &c);
    }
}

/// Per-output-channel weight scales (a QLinearConv with a per-axis weight
/// scale, a QDQ Conv with weights and bias dequantized per axis) lower to
/// PER_CHANNEL ACTs and run bit-exact against the reference, which
/// requantises each channel with its own multiplier.
#[test]
fn per_channel_model_imports_and_runs_bit_exact() {
    let w = load_workload(&path("per-channel")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ops(&w), vec!["conv2d", "conv2d"]);
    let scales: Vec<Vec<f64>> = w
        .graph()
        .graph
        .node_weights()
        .filter_map(|n| match n {
            Node::Conv(c) => Some(c.weight_scales.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(scales.iter().map(Vec::len).collect::<Vec<_>>(), [8, 20]);
    assert!(scales.iter().all(|s| s.iter().any(|&v| v != s[0])));
    for c in [NpuConfig::default(), cfg(4, 8, 16 << 10, 4 << 10)] {
        let (compiled, _) = run_and_check(&w, &c);
        let acts: Vec<_> = compiled
            .program
            .descs()
            .iter()
            .filter_map(|d| match d.op {
                Op::Act(a) => Some(a),
                _ => None,
            })
            .collect();
        assert!(!acts.is_empty());
        assert!(
            acts.iter()
                .all(|a| a.qtab.is_some() && a.multiplier == 0 && a.shift == 0),
            "{acts:?}"
        );
    }
}

/// qlinear.onnx's first layer is a 3x3/2 QLinearConv on 3 channels: on 16x16
/// its input is stored im2col (2 K chunks; space-to-depth would take 4).
/// Writing a tensor in the graph's coordinates and reading it back gives the
/// same tensor, and every element is read from a byte of its own.
#[test]
fn an_im2col_input_round_trips_through_write_tensor() {
    let w = load_workload(&path("qlinear")).unwrap_or_else(|e| panic!("{e}"));
    let c = npukit_compiler::compile(&w, &NpuConfig::default()).unwrap();
    let p = &c.inputs[0];
    assert!(p.im2col.is_some() && !p.space_to_depth, "{p:?}");
    let seen = input_round_trip(&c, p);
    assert!(seen.iter().all(|&a| a >= p.addr && a < p.addr + p.bytes()));
}

#[test]
fn qlinear_model_imports_and_runs_bit_exact() {
    let w = load_workload(&path("qlinear")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ops(&w), vec!["conv2d", "maxpool", "flatten", "matmul"]);
    // uint8 activations become int8: zero point 128 -> 0, 100 -> -28.
    let input = w.graph().input().unwrap();
    assert_eq!(input.quant.zero_point, 0);
    for c in [NpuConfig::default(), cfg(4, 8, 16 << 10, 4 << 10)] {
        run_and_check(&w, &c);
    }
}

#[test]
fn matmul_of_two_activations_imports_and_runs_bit_exact() {
    let w = load_workload(&path("matmul2")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ops(&w), vec!["matmul", "matmul", "matmul"]);
    // A constant-weight layer, then QLinearMatMul and QDQ MatMul (+ Relu) of
    // two activations, both the IR's matmul of two tensors.
    let tm: Vec<_> = w
        .graph()
        .graph
        .node_weights()
        .filter_map(|n| match n {
            Node::TensorMatmul(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tm.len(), 2);
    assert!(!tm[0].relu && tm[1].relu, "{tm:?}");
    assert_eq!(tm[1].output.scale, 2.5f32 as f64);
    for (name, t) in npukit_compiler::reference(&w).unwrap() {
        let mut v = t.to_i32();
        v.sort_unstable();
        v.dedup();
        assert!(v.len() >= 20, "output {name}: {} distinct values", v.len());
    }
    for c in [
        NpuConfig::default(),
        cfg(8, 8, 64 << 10, 16 << 10),
        cfg(4, 8, 16 << 10, 4 << 10),
    ] {
        run_and_check(&w, &c);
    }
}

fn err_of(name: &str) -> String {
    match load_workload(&path(name)) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_float_model_is_refused_naming_the_node() {
    let e = err_of("float-cnn");
    assert!(
        e.contains("float model") && e.contains("conv") && e.contains("Conv"),
        "{e}"
    );
    assert!(e.contains("float-cnn.onnx"), "{e}");
}

#[test]
fn an_unsupported_op_is_refused_naming_op_and_node() {
    let e = err_of("unsupported-op");
    assert!(
        e.contains("op Sigmoid is not supported") && e.contains("ONNX node sigmoid"),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_files_are_errors_never_panics() {
    let bytes = std::fs::read(path("qdq-cnn")).unwrap();
    // Every prefix: an error (or, at a message boundary, a smaller model that
    // fails for what it lacks), never a panic.
    let mut truncated = 0;
    for len in 0..bytes.len() {
        if let Err(e) = parse_onnx(&bytes[..len], "cut") {
            truncated += usize::from(e.to_string().contains("truncated"));
        }
    }
    assert!(
        truncated > bytes.len() / 2,
        "{truncated} of {}",
        bytes.len()
    );
    let e = parse_onnx(&bytes[..bytes.len() / 2], "half")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("ONNX file") && e.contains("truncated") && e.contains("at byte"),
        "{e}"
    );
    // Flipped bytes.
    for i in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[i] ^= 0xA5;
        let _ = parse_onnx(&b, "flipped");
    }
    let e = parse_onnx(b"not an onnx file at all", "text")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ONNX file"), "{e}");
}

#[test]
fn inconsistent_shapes_are_named() {
    let base = |nodes: &str| {
        format!(
            r#"{{"name": "bad", "input": {{"name": "x", "shape": [1, 6, 6, 4], "data": {{"random": {{"seed": 1}}}}}},
               "nodes": [{nodes}], "outputs": ["y"]}}"#
        )
    };
    let conv = |name: &str, input: &str, k: usize, s: usize| {
        format!(
            r#"{{"op": "conv2d", "name": "{name}", "input": "{input}", "out_channels": 4, "kernel": {k}, "stride": {s},
                "weights": {{"random": {{"seed": 2}}}}, "output": {{"scale": 1.0}}}}"#
        )
    };
    // Adding a 6x6 and a 3x3 map.
    let j = base(&format!(
        r#"{},{},{{"op": "add", "name": "y", "inputs": ["a", "b"], "output": {{"scale": 1.0}}}}"#,
        conv("a", "x", 1, 1),
        conv("b", "x", 1, 2)
    ));
    let e = parse_workload(&j).unwrap_err().to_string();
    assert!(
        e.contains("layer y") && e.contains("different shapes") && e.contains("[1, 6, 6, 4]"),
        "{e}"
    );
    // Wrong weight count.
    let j = base(
        r#"{"op": "conv2d", "name": "y", "out_channels": 4, "kernel": 3, "weights": [1, 2, 3], "output": {"scale": 1.0}}"#,
    );
    let e = parse_workload(&j).unwrap_err().to_string();
    assert!(
        e.contains("node y") && e.contains("weights has 3 values, expected 36 x 4 = 144"),
        "{e}"
    );
    // A kernel larger than the padded input.
    let j = base(&conv("y", "x", 9, 1));
    let e = parse_workload(&j).unwrap_err().to_string();
    assert!(
        e.contains("layer y") && e.contains("larger than the padded input"),
        "{e}"
    );
    // Dense on an image without flatten; concat of different sizes; unknown input.
    let j = base(
        r#"{"op": "dense", "name": "y", "out_features": 3, "weights": {"random": {"seed": 1}}, "output": {"scale": 1.0}}"#,
    );
    let e = parse_workload(&j).unwrap_err().to_string();
    assert!(e.contains("y") && e.contains("flatten"), "{e}");
    let j = base(&format!(
        r#"{},{{"op": "concat", "name": "y", "inputs": ["x", "a"]}}"#,
        conv("a", "x", 1, 2)
    ));
    let e = parse_workload(&j).unwrap_err().to_string();
    assert!(
        e.contains("layer y") && e.contains("differ in more than the channels"),
        "{e}"
    );
    let j = base(r#"{"op": "maxpool", "name": "y", "input": "nope", "kernel": 2}"#);
    let e = parse_workload(&j).unwrap_err().to_string();
    assert!(e.contains("node y") && e.contains("nope"), "{e}");
}
