//! ONNX files that crashed the importer or were wrongly accepted, found by
//! the `onnx` fuzz target (fuzz/fuzz_targets/onnx.rs) or seen while writing
//! it (docs/reliability.md, "What they found"), rebuilt by hand: each must
//! now be a clear error naming the problem (or, for the Identity, import). The files are written with a small
//! protobuf encoder (field numbers from onnx.proto, as compiler/src/onnx/wire.rs).
#![allow(clippy::unwrap_used)]

use npukit_compiler::onnx::parse_onnx;

/// A protobuf message being written.
#[derive(Default, Clone)]
struct Msg(Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Msg {
    fn int(mut self, field: u32, v: i64) -> Msg {
        varint(&mut self.0, (field as u64) << 3);
        varint(&mut self.0, v as u64);
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Msg {
        varint(&mut self.0, (field as u64) << 3 | 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(self, field: u32, s: &str) -> Msg {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Msg) -> Msg {
        self.bytes(field, &m.0)
    }
    fn float(mut self, field: u32, f: f32) -> Msg {
        varint(&mut self.0, (field as u64) << 3 | 5);
        self.0.extend_from_slice(&f.to_le_bytes());
        self
    }
}

const FLOAT: i64 = 1;
const INT8: i64 = 3;

/// TensorProto: name 8, dims 1, data_type 2, raw_data 9.
fn tensor(name: &str, dtype: i64, dims: &[i64], raw: &[u8]) -> Msg {
    let mut t = Msg::default().str(8, name).int(2, dtype);
    for &d in dims {
        t = t.int(1, d);
    }
    if raw.is_empty() {
        t
    } else {
        t.bytes(9, raw)
    }
}

fn scalar_f32(name: &str, v: f32) -> Msg {
    tensor(name, FLOAT, &[], &v.to_le_bytes())
}

/// AttributeProto: name 1, i 3 / ints 8.
fn attr_ints(name: &str, v: &[i64]) -> Msg {
    v.iter()
        .fold(Msg::default().str(1, name), |a, &x| a.int(8, x))
}

/// NodeProto: input 1, output 2, name 3, op_type 4, attribute 5.
fn node(op: &str, ins: &[&str], out: &str, attrs: &[Msg]) -> Msg {
    let mut n = Msg::default();
    for i in ins {
        n = n.str(1, i);
    }
    n = n.str(2, out).str(3, out).str(4, op);
    for a in attrs {
        n = n.msg(5, a.clone());
    }
    n
}

/// ValueInfoProto with a tensor type of `elem` and these dims.
fn value_info(name: &str, elem: i64, dims: &[i64]) -> Msg {
    let shape = dims
        .iter()
        .fold(Msg::default(), |s, &d| s.msg(1, Msg::default().int(1, d)));
    let tt = Msg::default().int(1, elem).msg(2, shape);
    Msg::default()
        .str(1, name)
        .msg(2, Msg::default().msg(1, tt))
}

/// ModelProto (ir_version 1, graph 7, opset_import 8) around a GraphProto
/// (node 1, initializer 5, input 11, output 12).
fn model(inputs: &[Msg], inits: &[Msg], nodes: &[Msg], outputs: &[&str]) -> Vec<u8> {
    let mut g = Msg::default().str(2, "g");
    for n in nodes {
        g = g.msg(1, n.clone());
    }
    for t in inits {
        g = g.msg(5, t.clone());
    }
    for i in inputs {
        g = g.msg(11, i.clone());
    }
    for o in outputs {
        g = g.msg(12, value_info(o, INT8, &[]));
    }
    Msg::default()
        .int(1, 8)
        .msg(7, g)
        .msg(8, Msg::default().int(2, 13))
        .0
}

fn err(bytes: &[u8]) -> String {
    match parse_onnx(bytes, "fuzzed") {
        Ok(_) => panic!("the model was accepted"),
        Err(e) => e.to_string(),
    }
}

/// A QDQ dense layer: float input `x` [1, 8] quantized (`xq`), dequantized
/// (`xd`), times int8 weights `w` [8, 4] dequantized (`wd`), requantized
/// as `y`. The tests break one piece of it.
fn qdq_dense() -> (Vec<Msg>, Vec<Msg>) {
    let inits = vec![scalar_f32("s", 0.5), tensor("w", INT8, &[8, 4], &[1; 32])];
    let nodes = vec![
        node("QuantizeLinear", &["x", "s"], "xq", &[]),
        node("DequantizeLinear", &["xq", "s"], "xd", &[]),
        node("DequantizeLinear", &["w", "s"], "wd", &[]),
        node("MatMul", &["xd", "wd"], "m", &[]),
        node("QuantizeLinear", &["m", "s"], "y", &[]),
    ];
    (inits, nodes)
}

fn input(dims: &[i64]) -> Vec<Msg> {
    vec![value_info("x", FLOAT, dims)]
}

#[test]
fn the_encoder_writes_a_model_the_importer_reads() {
    // A sanity check of the test's own encoder: the unbroken model imports.
    let (inits, nodes) = qdq_dense();
    let m = model(&input(&[1, 8]), &inits, &nodes, &["y"]);
    let w = parse_onnx(&m, "ok").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.graph().input().unwrap().shape.c, 8);
    let _ = (attr_ints("pads", &[0]), Msg::default().float(2, 1.0));
}

#[test]
fn an_empty_scale_tensor_is_an_error_not_a_division_by_zero() {
    // Weights dequantized with a scale tensor of no values (dims [0]): the
    // bias loop took `j % scales.len()`.
    let (mut inits, mut nodes) = qdq_dense();
    inits.push(tensor("empty", FLOAT, &[0], &[]));
    nodes[2] = node("DequantizeLinear", &["w", "empty"], "wd", &[]);
    let e = err(&model(&input(&[1, 8]), &inits, &nodes, &["y"]));
    assert!(
        e.contains("ONNX node wd (DequantizeLinear)") && e.contains("0 scales and 1 zero points"),
        "{e}"
    );
}

#[test]
fn dims_that_overflow_or_are_negative_are_errors() {
    // An initializer whose dims multiply past usize (and one with a negative
    // dim that made a loop run to usize::MAX): the element count overflowed.
    for dims in [&[1 << 40, 1 << 40, 1 << 40][..], &[-1, 8]] {
        let (mut inits, nodes) = qdq_dense();
        inits[1] = tensor("w", INT8, dims, &[]);
        let e = err(&model(&input(&[1, 8]), &inits, &nodes, &["y"]));
        assert!(
            e.contains("ONNX initializer w") && e.contains("a negative dimension, or more than"),
            "{e}"
        );
    }
}

#[test]
fn an_input_too_large_for_any_memory_is_an_error() {
    // [1, 2^40]: the random input data was allocated.
    let (inits, nodes) = qdq_dense();
    let e = err(&model(&input(&[1, 1 << 40]), &inits, &nodes, &["y"]));
    assert!(e.contains("ONNX input x") && e.contains("more than"), "{e}");
}

#[test]
fn an_identity_of_the_float_input_quantizes_like_the_input() {
    let (inits, mut nodes) = qdq_dense();
    nodes[0] = node("QuantizeLinear", &["xi", "s"], "xq", &[]);
    nodes.insert(0, node("Identity", &["x"], "xi", &[]));
    let m = model(&input(&[1, 8]), &inits, &nodes, &["y"]);
    let r = parse_onnx(&m, "identity");
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn a_concat_of_nothing_before_the_input_is_quantized_is_an_error() {
    let (inits, mut nodes) = qdq_dense();
    nodes.insert(0, node("Concat", &[], "c", &[]));
    let e = err(&model(&input(&[1, 8]), &inits, &nodes, &["y"]));
    assert!(
        e.contains("ONNX node c") && e.contains("before the graph input is quantized"),
        "{e}"
    );
}

#[test]
fn int32_weights_are_refused_not_truncated() {
    let (mut inits, nodes) = qdq_dense();
    let raw: Vec<u8> = (0..32i32).flat_map(|i| (300 * i).to_le_bytes()).collect();
    inits[1] = tensor("w", 6, &[8, 4], &raw);
    let e = err(&model(&input(&[1, 8]), &inits, &nodes, &["y"]));
    assert!(
        e.contains("ONNX node m (MatMul)") && e.contains("int32"),
        "{e}"
    );
}
