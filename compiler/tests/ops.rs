//! Every graph operation (convolutions of every kind, pooling, add, concat,
//! flatten) compiles, runs on the model and matches the CPU reference bit for
//! bit, on square and non-square arrays and small local memories.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod common;

use common::*;
use npukit_compiler::parse_workload;
use npukit_sim::NpuConfig;

/// A graph workload with input `shape` (`[n, h, w, c]` or `[n, features]`) and the given nodes.
fn net(name: &str, shape: &[usize], zp: i32, nodes: &[String], outputs: &[&str]) -> String {
    format!(
        r#"{{"name": "{name}",
           "input": {{"name": "x", "shape": {shape:?}, "quant": {{"scale": 0.05, "zero_point": {zp}}},
                      "data": {{"random": {{"seed": 7}}}}}},
           "nodes": [{}], "outputs": {outputs:?}}}"#,
        nodes.join(",")
    )
}

/// A conv node; output scale chosen so outputs spread over int8.
#[allow(clippy::too_many_arguments)]
fn conv(
    name: &str,
    input: &str,
    cin: usize,
    cout: usize,
    k: [usize; 2],
    stride: usize,
    pad: [usize; 4],
    dil: usize,
    groups: usize,
    act: &str,
    seed: u64,
) -> String {
    let window = (k[0] * k[1] * cin / groups) as f64;
    // acc std ~ sqrt(window) * 74 (input) * 20 (weights) * 0.05 * 0.01
    let out_scale = window.sqrt() * 74.0 * 20.0 * 0.05 * 0.01 / 40.0;
    format!(
        r#"{{"op": "conv2d", "name": "{name}", "input": "{input}", "out_channels": {cout},
            "kernel": {k:?}, "stride": {stride}, "padding": {pad:?}, "dilation": {dil}, "groups": {groups},
            "weights": {{"random": {{"seed": {seed}, "range": [-35, 35]}}}}, "weight_quant": {{"scale": 0.01}},
            "bias": {{"random": {{"seed": {}, "range": [-3000, 3000]}}}},
            "output": {{"scale": {out_scale}, "zero_point": -5}}, "activation": "{act}"}}"#,
        seed + 1
    )
}

fn configs() -> Vec<(&'static str, NpuConfig)> {
    vec![
        ("16x16", NpuConfig::default()),
        ("8x8", cfg(8, 8, 64 << 10, 16 << 10)),
        ("4x8-small", cfg(4, 8, 8 << 10, 2 << 10)),
        ("8x4", cfg(8, 4, 32 << 10, 8 << 10)),
    ]
}

fn check_all(json: &str) {
    let w = parse_workload(json).unwrap_or_else(|e| panic!("{e}"));
    // The outputs are not degenerate (all saturated or all one value).
    for (name, t) in npukit_compiler::reference(&w).unwrap() {
        let mut v = t.to_i32();
        v.sort_unstable();
        v.dedup();
        assert!(
            v.len() >= 5,
            "{}: output {name} has only {} distinct values",
            w.name,
            v.len()
        );
    }
    for (name, c) in configs() {
        let (cc, out) = run_and_check(&w, &c);
        println!(
            "{} on {name}: {} descriptors, {} cycles",
            w.name,
            cc.program.len(),
            out.cycles
        );
    }
}

#[test]
fn convolutions_of_every_shape() {
    let cases: Vec<(
        &str,
        [usize; 4],
        usize,
        [usize; 2],
        usize,
        [usize; 4],
        usize,
        usize,
    )> = vec![
        // name, input, cout, kernel, stride, pads, dilation, groups
        ("3x3-pad1", [1, 9, 7, 20], 24, [3, 3], 1, [1, 1, 1, 1], 1, 1),
        ("3x3-s2", [1, 11, 10, 16], 17, [3, 3], 2, [1, 1, 1, 1], 1, 1),
        ("1x1", [1, 6, 5, 40], 33, [1, 1], 1, [0; 4], 1, 1),
        ("1x1-s2", [1, 7, 8, 12], 10, [1, 1], 2, [0; 4], 1, 1),
        (
            "7x7-s2-rgb",
            [1, 20, 18, 3],
            16,
            [7, 7],
            2,
            [3, 3, 3, 3],
            1,
            1,
        ),
        ("5x3-asym", [1, 8, 9, 5], 6, [5, 3], 1, [2, 0, 1, 1], 1, 1),
        ("dilated", [1, 10, 10, 8], 8, [3, 3], 1, [2, 2, 2, 2], 2, 1),
        ("groups2", [1, 6, 6, 12], 20, [3, 3], 1, [1, 1, 1, 1], 1, 2),
        (
            "depthwise",
            [1, 8, 8, 24],
            24,
            [3, 3],
            1,
            [1, 1, 1, 1],
            1,
            24,
        ),
        (
            "depthwise-s2",
            [1, 9, 9, 19],
            19,
            [3, 3],
            2,
            [1, 1, 1, 1],
            1,
            19,
        ),
        ("batch2", [2, 5, 6, 9], 11, [3, 3], 1, [1, 1, 1, 1], 1, 1),
    ];
    for (i, (name, shape, cout, k, s, p, d, g)) in cases.into_iter().enumerate() {
        let c = conv(
            "c",
            "x",
            shape[3],
            cout,
            k,
            s,
            p,
            d,
            g,
            "relu",
            10 + i as u64,
        );
        check_all(&net(name, &shape, -3, &[c], &["c"]));
    }
}

#[test]
fn pooling_add_concat_flatten() {
    let c1 = conv("c1", "x", 10, 12, [3, 3], 1, [1, 1, 1, 1], 1, 1, "relu", 1);
    let c2 = conv("c2", "x", 10, 12, [1, 1], 1, [0; 4], 1, 1, "none", 2);
    let nodes = vec![
        c1,
        c2,
        r#"{"op": "add", "name": "sum", "inputs": ["c1", "c2"], "output": {"scale": 0.06, "zero_point": 2}, "activation": "relu"}"#.to_string(),
        r#"{"op": "maxpool", "name": "mp", "input": "sum", "kernel": 3, "stride": 2, "padding": 1}"#.to_string(),
        r#"{"op": "avgpool", "name": "ap", "input": "c2", "kernel": 2, "stride": 2, "output": {"scale": 0.03, "zero_point": -1}}"#.to_string(),
        r#"{"op": "avgpool", "name": "ap2", "input": "sum", "kernel": 3, "stride": 2, "padding": 1, "count_include_pad": true, "output": {"scale": 0.06, "zero_point": 2}}"#.to_string(),
        r#"{"op": "concat", "name": "cat", "inputs": ["mp", "ap2", "mp"]}"#.to_string(),
        r#"{"op": "global_avgpool", "name": "gap", "input": "cat", "output": {"scale": 0.02, "zero_point": 0}}"#.to_string(),
        r#"{"op": "flatten", "name": "flat", "input": "ap"}"#.to_string(),
        r#"{"op": "dense", "name": "fc", "input": "flat", "out_features": 13, "weights": {"random": {"seed": 5, "range": [-30, 30]}}, "weight_quant": {"scale": 0.01}, "output": {"scale": 0.2, "zero_point": 0}}"#.to_string(),
        r#"{"op": "flatten", "name": "gflat", "input": "gap"}"#.to_string(),
        r#"{"op": "dense", "name": "fc2", "input": "gflat", "out_features": 7, "weights": {"random": {"seed": 6, "range": [-30, 30]}}, "weight_quant": {"scale": 0.01}, "bias": [1, 2, 3, 4, 5, 6, 7], "output": {"dtype": "int32"}}"#.to_string(),
    ];
    check_all(&net(
        "mixed",
        &[1, 8, 9, 10],
        4,
        &nodes,
        &["fc", "fc2", "cat"],
    ));
}

/// Tensors whose every reader is a stride-2 convolution are stored
/// phase-split by their writers (a GEMM, an add, a concat), and those readers
/// gather them with 2-D transfers; everything stays bit-exact on every array,
/// every loop strategy too.
#[test]
fn phase_split_intermediates() {
    let add = |name: &str, a: &str, b: &str| {
        format!(
            r#"{{"op": "add", "name": "{name}", "inputs": ["{a}", "{b}"], "output": {{"scale": 0.08, "zero_point": 3}}, "activation": "relu"}}"#
        )
    };
    let nodes = vec![
        // GEMM writer, depthwise 3x3/2 reader.
        conv("e", "x", 10, 24, [1, 1], 1, [0; 4], 1, 1, "relu", 1),
        conv("dw", "e", 24, 24, [3, 3], 2, [1, 1, 1, 1], 1, 24, "relu", 2),
        // Add writer, 3x3/2 and 1x1/2 readers.
        conv("a1", "x", 10, 24, [3, 3], 1, [1, 1, 1, 1], 1, 1, "none", 3),
        conv("a2", "x", 10, 24, [1, 1], 1, [0; 4], 1, 1, "none", 4),
        add("sum", "a1", "a2"),
        conv("s3", "sum", 24, 9, [3, 3], 2, [1, 1, 1, 1], 1, 1, "relu", 5),
        conv("s1", "sum", 24, 9, [1, 1], 2, [0; 4], 1, 1, "none", 6),
        // Concat writer, a 2x2/2 reader without padding.
        conv("f1", "x", 10, 8, [1, 1], 1, [0; 4], 1, 1, "relu", 7),
        conv("f2", "x", 10, 16, [1, 1], 1, [0; 4], 1, 1, "relu", 8),
        r#"{"op": "concat", "name": "cat", "inputs": ["f1", "f2"]}"#.to_string(),
        conv("c2", "cat", 24, 7, [2, 2], 2, [0; 4], 1, 1, "relu", 9),
    ];
    let json = net(
        "phases",
        &[1, 10, 12, 10],
        -2,
        &nodes,
        &["dw", "s3", "s1", "c2"],
    );
    check_all(&json);
    let w = parse_workload(&json).unwrap();
    let c = npukit_compiler::compile(&w, &NpuConfig::default()).unwrap();
    for l in &c.layers {
        if ["dw", "s3", "s1", "c2"].contains(&l.name.as_str()) {
            assert!(!l.row_gathers, "{} is row-gathered", l.name);
        }
    }
    assert!(check_all_strategies(&w, &NpuConfig::default()) >= 2);
}

/// The graph input of a convolution of few channels is stored as its windows
/// (im2col): the convolution is a pointwise GEMM, not row-gathered; writing
/// a tensor in the graph's coordinates and reading it back gives it again,
/// each element read from a byte of its own.
#[test]
fn im2col_input() {
    let nodes = vec![conv(
        "c",
        "x",
        2,
        12,
        [3, 3],
        1,
        [1, 1, 1, 1],
        1,
        1,
        "relu",
        1,
    )];
    let json = net("im2col", &[1, 9, 11, 2], 5, &nodes, &["c"]);
    check_all(&json);
    let w = parse_workload(&json).unwrap();
    let c = npukit_compiler::compile(&w, &NpuConfig::default()).unwrap();
    assert!(!c.layers[0].row_gathers);
    let p = &c.inputs[0];
    let win = p.im2col.expect("stored im2col");
    assert_eq!((win.kernel, win.out, win.pad), ([3, 3], [9, 11], 5));
    assert_eq!(p.bytes(), 9 * 11 * 9 * 2);
    let seen = input_round_trip(&c, p);
    assert!(seen.iter().all(|&a| a >= p.addr && a < p.addr + p.bytes()));
}

/// A 2x2/2 convolution of 3 channels reads its input space-to-depth (one K
/// chunk of 12 channels, as many as im2col would take, on a smaller input),
/// a pointwise GEMM; the input round-trips through write_tensor, one byte
/// per element.
#[test]
fn space_to_depth_input() {
    let nodes = vec![conv("c", "x", 3, 10, [2, 2], 2, [0; 4], 1, 1, "relu", 1)];
    let json = net("s2d", &[1, 8, 10, 3], 5, &nodes, &["c"]);
    check_all(&json);
    let w = parse_workload(&json).unwrap();
    let c = npukit_compiler::compile(&w, &NpuConfig::default()).unwrap();
    assert!(!c.layers[0].row_gathers);
    let p = &c.inputs[0];
    assert!(p.space_to_depth && p.im2col.is_none(), "{p:?}");
    let seen = input_round_trip(&c, p);
    assert_eq!(p.bytes(), seen.len() as u64);
}

/// A dense node on a matrix, output zero point `zp`.
fn dense(name: &str, input: &str, n: usize, out_scale: f64, zp: i32, seed: u64) -> String {
    format!(
        r#"{{"op": "dense", "name": "{name}", "input": "{input}", "out_features": {n},
            "weights": {{"random": {{"seed": {seed}, "range": [-30, 30]}}}}, "weight_quant": {{"scale": 0.01}},
            "bias": {{"random": {{"seed": {}, "range": [-2000, 2000]}}}},
            "output": {{"scale": {out_scale}, "zero_point": {zp}}}}}"#,
        seed + 1
    )
}

/// Matmuls of two tensors: attention-shaped (per head, `Q K^T` with `K`
/// stored transposed by its producer, then `P V`), a plain one whose second
/// operand is the graph input, and a residual add whose output is a graph
/// output (one panel) while its inputs are panelled.
#[test]
fn matmul_of_two_tensors() {
    let nodes = vec![
        dense("q", "x", 36, 0.12, 0, 1),
        dense("k", "x", 36, 0.12, 0, 3),
        dense("v", "x", 36, 0.12, 0, 5),
        r#"{"op": "matmul", "name": "s", "inputs": ["q", "k"], "heads": 3, "transpose_b": true,
            "output": {"scale": 0.3, "zero_point": 0}, "activation": "relu"}"#
            .to_string(),
        r#"{"op": "matmul", "name": "ctx", "inputs": ["s", "v"], "heads": 3,
            "output": {"scale": 0.8, "zero_point": 0}}"#
            .to_string(),
        dense("o", "ctx", 40, 0.08, 0, 7),
        r#"{"op": "add", "name": "res", "inputs": ["x", "o"], "output": {"scale": 0.09, "zero_point": 0}}"#
            .to_string(),
        dense("q2", "x", 24, 0.12, 0, 9),
        r#"{"op": "matmul", "name": "qx", "inputs": ["q2", "x"],
            "output": {"scale": 0.5, "zero_point": 0}}"#
            .to_string(),
    ];
    let json = net("attention", &[24, 40], 0, &nodes, &["res", "qx", "s"]);
    check_all(&json);
    let w = parse_workload(&json).unwrap();
    assert!(check_all_strategies(&w, &cfg(8, 8, 16 << 10, 4 << 10)) >= 2);
}

/// `Q K^T` whose `K` projection has many K groups and N chunks, so that its
/// transposing STOREs, deferred over later steps, meet steps that reuse the
/// int8 staging they read (k-outer with N groups on 4x8: fails without the
/// flush of ed5e5dd).
#[test]
fn matmul_of_two_tensors_every_strategy() {
    let nodes = [
        dense("q", "x", 48, 0.25, 0, 1),
        dense("k", "x", 48, 0.25, 0, 3),
        r#"{"op": "matmul", "name": "s", "inputs": ["q", "k"], "heads": 2, "transpose_b": true,
            "output": {"scale": 0.5, "zero_point": 0}}"#
            .to_string(),
    ];
    let json = net("qk", &[40, 384], 0, &nodes, &["s"]);
    let w = parse_workload(&json).unwrap();
    for c in [cfg(8, 8, 8 << 10, 2 << 10), cfg(4, 8, 4 << 10, 2 << 10)] {
        assert!(check_all_strategies(&w, &c) >= 4);
    }
}

/// A matmul of two tensors that the NPU cannot run is a clear error naming
/// the node: a zero point other than 0, a transposed operand the graph does
/// not write (the input), heads that do not divide, shapes that do not
/// multiply, weights given.
#[test]
fn matmul_of_two_tensors_errors() {
    let net = |zp: i32, nodes: &[String]| net("bad", &[8, 12], zp, nodes, &["y"]);
    let mm = |extra: &str| {
        format!(
            r#"{{"op": "matmul", "name": "y", "inputs": ["q", "x"], {extra} "output": {{"scale": 0.5, "zero_point": 0}}}}"#
        )
    };
    let err = |j: String| match parse_workload(&j) {
        Ok(_) => panic!("accepted: {j}"),
        Err(e) => e.to_string(),
    };
    let q = dense("q", "x", 12, 0.1, 0, 1);
    let e = err(net(3, &[q.clone(), mm(r#""transpose_b": true,"#)]));
    assert!(e.contains("layer y") && e.contains("zero point 3"), "{e}");
    let e = err(net(0, &[q.clone(), mm(r#""transpose_b": true,"#)]));
    assert!(
        e.contains("layer y") && e.contains("stored transposed") && e.contains("graph input"),
        "{e}"
    );
    let e = err(net(0, &[q.clone(), mm(r#""heads": 5,"#)]));
    assert!(e.contains("layer y") && e.contains("heads 5"), "{e}");
    let e = err(net(0, &[q.clone(), mm("")]));
    assert!(
        e.contains("layer y") && e.contains("do not multiply"),
        "{e}"
    );
    let e = err(net(0, &[q.clone(), mm(r#""weights": [1, 2],"#)]));
    assert!(
        e.contains("node y") && e.contains("takes no weights"),
        "{e}"
    );
    // B of A B^T must be written by the graph and read by such matmuls only.
    let k = dense("k", "x", 12, 0.1, 0, 3);
    let qk = r#"{"op": "matmul", "name": "y", "inputs": ["q", "k"], "transpose_b": true,
                 "output": {"scale": 0.5, "zero_point": 0}}"#;
    let add = r#"{"op": "add", "name": "z", "inputs": ["k", "q"], "output": {"scale": 0.1}}"#;
    let j =
        net(0, &[q.clone(), k.clone(), qk.into(), add.into()]).replace(r#"["y"]"#, r#"["y", "z"]"#);
    let e = err(j);
    assert!(
        e.contains("layer y") && e.contains("another operation reads it"),
        "{e}"
    );
    let j = net(0, &[q.clone(), k.clone(), qk.into()]).replace(r#"["y"]"#, r#"["y", "k"]"#);
    let e = err(j);
    assert!(e.contains("layer y") && e.contains("graph output"), "{e}");
    // Without those, the same graph is accepted.
    assert!(parse_workload(&net(0, &[q, k, qk.into()])).is_ok());
}
