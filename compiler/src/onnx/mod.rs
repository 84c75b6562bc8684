//! ONNX import: quantised models in QDQ form (QuantizeLinear/DequantizeLinear
//! around Conv, MatMul, Gemm, Add, AveragePool, GlobalAveragePool) or with
//! QLinearConv/QLinearMatMul, plus MaxPool, Relu, Clip, Reshape, Flatten,
//! Concat. ONNX tensors are NCHW; the graph IR is NHWC, so weights are
//! reordered (and a dense layer after a flatten of an image gets its rows
//! permuted from CHW to HWC order). uint8 tensors become int8 by subtracting
//! 128 from values and zero points (the same real numbers).
//!
//! A float model (a Conv/MatMul/Gemm reading a tensor that no
//! DequantizeLinear produced), an unsupported op, or a malformed or truncated
//! file is an error naming the node (or the byte offset).
//!
//! ONNX models carry no input data: the input is seeded random int8 values
//! (`random_values(1, -128, 127, ..)`), as in a JSON workload.

mod wire;

use std::collections::HashMap;

use crate::graph::{
    Activation, AddNode, ConcatNode, Conv, FlattenNode, GraphBuilder, InputNode, Layer, LayerKind,
    Node, OutputKind, Pool, PoolKind, Shape, TensorMatmul,
};
use crate::quant::Quant;
use crate::workload::{random_values, Workload};
use crate::CompileError;

use wire::dtype;
pub use wire::{parse_model, WireError};

/// The ops the importer understands.
pub const SUPPORTED_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "Conv",
    "MatMul",
    "Gemm",
    "Add",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Relu",
    "Clip",
    "Reshape",
    "Flatten",
    "Concat",
    "Identity",
];

/// A constant: values, dims, element type.
#[derive(Debug, Clone)]
struct Const {
    vals: Vec<f64>,
    dims: Vec<i64>,
    dtype: i64,
}

/// A dequantized constant (weights, biases).
#[derive(Debug, Clone)]
struct ConstDq {
    ints: Vec<i64>,
    dims: Vec<i64>,
    scales: Vec<f64>,
    zps: Vec<i64>,
    dtype: i64,
}

#[derive(Debug, Clone)]
enum PendingOp {
    Conv(Box<Conv>, String),
    Dense(Box<Layer>, String),
    Add(Box<AddNode>, String, String),
    Pool(Box<Pool>, String),
    /// A MatMul of two activations.
    TensorMatmul(Box<TensorMatmul>, String, String),
}

/// What an ONNX tensor name stands for.
#[derive(Debug, Clone)]
enum Value {
    /// The float graph input (its name), not yet quantized.
    FloatInput(String),
    /// An int8 IR tensor (quantized values).
    Q(String),
    /// The float value of an int8 IR tensor.
    Dq(String),
    /// A float op result awaiting QuantizeLinear.
    Pending(PendingOp, Activation),
    Const(Const),
    ConstDq(ConstDq),
}

/// Stride, dilation, pads (top, left, bottom, right), groups.
type ConvAttrs = ([usize; 2], [usize; 2], [usize; 4], usize);
/// Kernel, stride, pads.
type PoolAttrs = ([usize; 2], [usize; 2], [usize; 4]);

struct Importer {
    b: Option<GraphBuilder>,
    vals: HashMap<String, Value>,
    /// IR tensor -> (c, h, w) when it is a flatten of an NCHW image (rows in
    /// ONNX order c, h, w; in the IR h, w, c).
    flat_chw: HashMap<String, (usize, usize, usize)>,
}

fn err(n: &wire::Node, m: impl Into<String>) -> CompileError {
    let name = if n.name.is_empty() {
        n.outputs.first().cloned().unwrap_or_default()
    } else {
        n.name.clone()
    };
    CompileError::Invalid {
        context: format!("ONNX node {name} ({})", n.op_type),
        message: m.into(),
    }
}

fn attr_ints(n: &wire::Node, name: &str, default: &[i64]) -> Vec<i64> {
    n.attr(name).map_or(default.to_vec(), |a| a.ints.clone())
}

fn attr_int(n: &wire::Node, name: &str, default: i64) -> i64 {
    n.attr(name).and_then(|a| a.i).unwrap_or(default)
}

/// A matmul of two activations named `name` (one head, `B` not transposed),
/// output quantisation still to be set.
fn tensor_matmul(name: &str) -> TensorMatmul {
    TensorMatmul {
        name: name.to_string(),
        heads: 1,
        transpose_b: false,
        output: Quant::default(),
        relu: false,
    }
}

/// A dequantized constant: one scale (and zero point) or one per slice of
/// axis 0, every scale positive. (Found by the `onnx` fuzz target: an empty
/// scale or zero-point tensor divided by zero.)
fn const_dq(
    n: &wire::Node,
    c: &Const,
    scales: Vec<f64>,
    zps: Vec<i64>,
) -> Result<ConstDq, CompileError> {
    if scales.is_empty() || !(zps.len() == 1 || zps.len() == scales.len()) {
        return Err(err(
            n,
            format!(
                "{} scales and {} zero points: expected one of each, or as many zero points as scales",
                scales.len(),
                zps.len()
            ),
        ));
    }
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(err(n, format!("scale {s} must be positive")));
    }
    Ok(ConstDq {
        ints: c.vals.iter().map(|&v| v as i64).collect(),
        dims: c.dims.clone(),
        scales,
        zps,
        dtype: c.dtype,
    })
}

/// Weights must be int8 or uint8 values. (Seen while writing the `onnx` fuzz target:
/// int32 weights were truncated to int8 without a word.)
fn int8_weights(n: &wire::Node, dt: i64) -> Result<(), CompileError> {
    if dt == dtype::INT8 || dt == dtype::UINT8 {
        Ok(())
    } else {
        Err(err(
            n,
            format!(
                "its weights are {}: int8 or uint8 weights only",
                dtype::name(dt)
            ),
        ))
    }
}

/// int8 from an int8 or uint8 ONNX value.
fn to_i8(v: i64, dt: i64) -> i64 {
    if dt == dtype::UINT8 {
        v - 128
    } else {
        v
    }
}

impl Importer {
    fn get(&self, n: &wire::Node, i: usize) -> Result<&Value, CompileError> {
        let name = n
            .inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err(n, format!("input {i} is missing")))?;
        self.vals.get(name).ok_or_else(|| {
            err(
                n,
                format!("reads `{name}`, which no earlier node or initializer produces"),
            )
        })
    }

    fn opt(&self, n: &wire::Node, i: usize) -> Option<&Value> {
        n.inputs
            .get(i)
            .filter(|s| !s.is_empty())
            .and_then(|s| self.vals.get(s))
    }

    fn quant_of(&self, t: &str) -> Quant {
        self.b
            .as_ref()
            .and_then(|b| b.tensor(t))
            .map_or(Quant::default(), |t| t.quant)
    }

    fn shape_of(&self, t: &str) -> Shape {
        self.b
            .as_ref()
            .and_then(|b| b.tensor(t))
            .map_or(Shape::matrix(1, 1), |t| t.shape)
    }

    /// A scalar scale and zero point (inputs `si`, `zi`) as IR quantisation.
    fn scalar_quant(&self, n: &wire::Node, si: usize, zi: usize) -> Result<Quant, CompileError> {
        let s = match self.get(n, si)? {
            Value::Const(c) if c.vals.len() == 1 => c.vals[0],
            Value::Const(_) => {
                return Err(err(
                    n,
                    "per-axis quantisation of activations is not supported",
                ))
            }
            _ => return Err(err(n, format!("input {si} (scale) must be a constant"))),
        };
        let z = match self.opt(n, zi) {
            None => 0,
            Some(Value::Const(c)) if c.vals.len() == 1 => to_i8(c.vals[0] as i64, c.dtype),
            Some(_) => {
                return Err(err(
                    n,
                    format!("input {zi} (zero point) must be a scalar constant"),
                ))
            }
        };
        if !(s.is_finite() && s > 0.0) {
            return Err(err(n, format!("scale {s} must be positive")));
        }
        if !(-128..=127).contains(&z) {
            return Err(err(n, format!("zero point {z} is out of range")));
        }
        Ok(Quant {
            scale: s,
            zero_point: z as i32,
        })
    }

    /// The weights of a QLinear op: inputs 3 (values), 4 (scale), 5 (zero point).
    fn qlinear_weights(&self, n: &wire::Node) -> Result<ConstDq, CompileError> {
        let wq = match self.get(n, 3)? {
            Value::Const(c) => c.clone(),
            _ => {
                return Err(err(
                    n,
                    "input 3 (weights) must be a constant or a quantized activation",
                ))
            }
        };
        let scales = match self.get(n, 4)? {
            Value::Const(c) => c.vals.clone(),
            _ => return Err(err(n, "the weight scale must be a constant")),
        };
        let zps = match self.opt(n, 5) {
            Some(Value::Const(c)) => c.vals.iter().map(|&v| v as i64).collect(),
            _ => vec![0],
        };
        int8_weights(n, wq.dtype)?;
        let w = const_dq(n, &wq, scales, zps)?;
        if w.zps.iter().any(|&z| to_i8(z, w.dtype) != 0) {
            return Err(err(
                n,
                "weights with a zero point other than 0 (asymmetric) are not supported",
            ));
        }
        Ok(w)
    }

    /// A float-world input that must be the dequantized value of an IR tensor.
    fn dq_input(&self, n: &wire::Node, i: usize) -> Result<String, CompileError> {
        match self.get(n, i)? {
            Value::Dq(t) => Ok(t.clone()),
            Value::FloatInput(_) | Value::Const(_) | Value::Pending(..) => Err(err(
                n,
                format!(
                    "reads the float tensor `{}`, which is not dequantized from int8: a float model \
                     (npukit runs quantised models: QDQ or QLinear ops)",
                    n.inputs[i]
                ),
            )),
            Value::Q(_) => Err(err(n, format!("reads the quantized tensor `{}` directly; expected a DequantizeLinear", n.inputs[i]))),
            Value::ConstDq(_) => Err(err(n, format!("input {i} is a constant, expected an activation"))),
        }
    }

    fn weights(&self, n: &wire::Node, i: usize) -> Result<ConstDq, CompileError> {
        match self.get(n, i)? {
            Value::ConstDq(c) => {
                int8_weights(n, c.dtype)?;
                if c.zps.iter().any(|&z| to_i8(z, c.dtype) != 0) {
                    return Err(err(n, "weights with a zero point other than 0 (asymmetric) are not supported"));
                }
                Ok(c.clone())
            }
            Value::Const(c) if c.dtype == dtype::FLOAT || c.dtype == dtype::DOUBLE => Err(err(
                n,
                format!("its weights `{}` are float: a float model (quantise it to QDQ or QLinear form)", n.inputs[i]),
            )),
            _ => Err(err(n, format!("input {i} (weights) must be a dequantized int8 constant"))),
        }
    }

    /// int32 bias in units of `sx * sw` from a dequantized int32 or a float constant.
    fn bias(
        &self,
        n: &wire::Node,
        i: usize,
        unit: &[f64],
        cout: usize,
    ) -> Result<Option<Vec<i32>>, CompileError> {
        let Some(v) = self.opt(n, i) else {
            return Ok(None);
        };
        let real: Vec<f64> = match v {
            Value::ConstDq(c) => c
                .ints
                .iter()
                .enumerate()
                .map(|(j, &q)| (q - c.zps[j % c.zps.len()]) as f64 * c.scales[j % c.scales.len()])
                .collect(),
            Value::Const(c) if c.dtype == dtype::INT32 => {
                return Ok(Some(c.vals.iter().map(|&x| x as i32).collect()))
            }
            Value::Const(c) => c.vals.clone(),
            _ => return Err(err(n, "the bias must be a constant")),
        };
        if real.len() != cout {
            return Err(err(
                n,
                format!("bias has {} values, expected {cout}", real.len()),
            ));
        }
        real.iter()
            .enumerate()
            .map(|(j, &r)| {
                let q = (r / unit[j % unit.len()]).round();
                if q.abs() > i32::MAX as f64 {
                    Err(err(n, format!("bias[{j}] does not fit int32")))
                } else {
                    Ok(q as i32)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn ensure_input(&mut self, name: &str, dims: &[i64], q: Quant) -> Result<(), CompileError> {
        let ctx = || format!("ONNX input {name}");
        if self.b.is_some() {
            // Quantized again: one IR input, so only with the same parameters.
            let have = self.quant_of(name);
            if (have.scale / q.scale - 1.0).abs() > 1e-6 || have.zero_point != q.zero_point {
                return Err(CompileError::Invalid {
                    context: ctx(),
                    message: format!(
                        "is quantized twice, with scale {} zero point {} and scale {} zero point {}",
                        have.scale, have.zero_point, q.scale, q.zero_point
                    ),
                });
            }
            return Ok(());
        }
        let d: Vec<usize> = dims.iter().map(|&x| x.max(1) as usize).collect();
        // (Seen while writing the `onnx` fuzz target: the random data of a [1, 2^40]
        // input was allocated.)
        let max = crate::workload::MAX_ELEMENTS;
        if d.iter()
            .try_fold(1usize, |a, &x| a.checked_mul(x))
            .is_none_or(|e| e > max)
        {
            return Err(CompileError::Invalid {
                context: ctx(),
                message: format!("shape {dims:?} has more than {max} elements"),
            });
        }
        let (shape, matrix) = match d[..] {
            [n, c, h, w] => (Shape::nhwc(n, h, w, c), false),
            [n, f] => (Shape::matrix(n, f), true),
            _ => {
                return Err(CompileError::Invalid {
                    context: ctx(),
                    message: format!("shape {dims:?} must be [n, c, h, w] or [n, features]"),
                })
            }
        };
        let data = random_values(1, -128, 127, shape.elems())
            .into_iter()
            .map(|v| v as i8)
            .collect();
        self.b = Some(GraphBuilder::new(InputNode {
            name: name.to_string(),
            shape,
            matrix,
            quant: q,
            data,
        })?);
        Ok(())
    }

    fn conv_attrs(&self, n: &wire::Node, kh: usize, kw: usize) -> Result<ConvAttrs, CompileError> {
        let ap = n
            .attr("auto_pad")
            .and_then(|a| a.s.clone())
            .unwrap_or_default();
        if !ap.is_empty() && ap != b"NOTSET" {
            return Err(err(
                n,
                format!(
                    "auto_pad {} is not supported (give explicit pads)",
                    String::from_utf8_lossy(&ap)
                ),
            ));
        }
        let ks = attr_ints(n, "kernel_shape", &[kh as i64, kw as i64]);
        if ks != [kh as i64, kw as i64] {
            return Err(err(
                n,
                format!("kernel_shape {ks:?} does not match the weights"),
            ));
        }
        let s = attr_ints(n, "strides", &[1, 1]);
        let d = attr_ints(n, "dilations", &[1, 1]);
        let p = attr_ints(n, "pads", &[0, 0, 0, 0]);
        let g = attr_int(n, "group", 1);
        if s.len() != 2
            || d.len() != 2
            || p.len() != 4
            || s.iter().chain(&d).chain(&p).any(|&v| v < 0)
            || g < 1
        {
            return Err(err(
                n,
                "only 2-D convolutions with non-negative strides, dilations, pads and group >= 1",
            ));
        }
        Ok((
            [s[0] as usize, s[1] as usize],
            [d[0] as usize, d[1] as usize],
            [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize],
            g as usize,
        ))
    }

    /// A Conv from ONNX weights `[cout][cin/g][kh][kw]`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &self,
        n: &wire::Node,
        name: &str,
        w: &ConstDq,
        sx: f64,
        bias_in: usize,
        out: Quant,
    ) -> Result<Conv, CompileError> {
        let [cout, cin_g, kh, kw] = match w.dims[..] {
            [a, b, c, d] => [a as usize, b as usize, c as usize, d as usize],
            _ => {
                return Err(err(
                    n,
                    format!("weights of shape {:?}, expected 4-D", w.dims),
                ))
            }
        };
        let (stride, dilation, pads, groups) = self.conv_attrs(n, kh, kw)?;
        if cout % groups != 0 {
            return Err(err(
                n,
                format!("group {groups} does not divide the {cout} output channels"),
            ));
        }
        let cout_g = cout / groups;
        let mut wt = vec![0i8; w.ints.len()];
        for co in 0..cout {
            let (g, j) = (co / cout_g, co % cout_g);
            for ci in 0..cin_g {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let src = ((co * cin_g + ci) * kh + ky) * kw + kx;
                        let dst = (((g * kh + ky) * kw + kx) * cin_g + ci) * cout_g + j;
                        wt[dst] = to_i8(w.ints[src], w.dtype) as i8;
                    }
                }
            }
        }
        let scales = if w.scales.len() == 1 {
            vec![w.scales[0]]
        } else {
            w.scales.clone()
        };
        let unit: Vec<f64> = scales.iter().map(|s| s * sx).collect();
        Ok(Conv {
            name: name.to_string(),
            out_channels: cout,
            kernel: [kh, kw],
            stride,
            dilation,
            pads,
            groups,
            weights: wt,
            weight_scales: scales,
            bias: self.bias(n, bias_in, &unit, cout)?,
            output: out,
            act: Activation::None,
        })
    }

    /// A dense layer from `[k][n]` weights (`trans`: given as `[n][k]`) on IR tensor `x`.
    #[allow(clippy::too_many_arguments)]
    fn dense(
        &self,
        n: &wire::Node,
        name: &str,
        x: &str,
        w: &ConstDq,
        trans: bool,
        bias_in: Option<usize>,
        out: OutputKind,
    ) -> Result<Layer, CompileError> {
        let (k, nn) = match (&w.dims[..], trans) {
            (&[a, b], false) => (a as usize, b as usize),
            (&[a, b], true) => (b as usize, a as usize),
            _ => {
                return Err(err(
                    n,
                    format!("weights of shape {:?}, expected 2-D", w.dims),
                ))
            }
        };
        if w.scales.len() != 1 {
            return Err(err(
                n,
                "per-channel weight scales on MatMul/Gemm are not supported",
            ));
        }
        let xs = self.shape_of(x);
        if xs.c != k {
            return Err(err(
                n,
                format!(
                    "its input has {} features, the weights {k} rows (inconsistent shapes)",
                    xs.c
                ),
            ));
        }
        // Rows in the IR's order: a flatten of an image is HWC, ONNX's CHW.
        let row = |r: usize| -> usize {
            match self.flat_chw.get(x) {
                Some(&(c, h, ww)) => {
                    let (ch, rest) = (r % c, r / c);
                    ch * h * ww + rest
                }
                None => r,
            }
        };
        let mut wt = vec![0i8; k * nn];
        for r in 0..k {
            let src_r = row(r);
            for j in 0..nn {
                let src = if trans { j * k + src_r } else { src_r * nn + j };
                wt[r * nn + j] = to_i8(w.ints[src], w.dtype) as i8;
            }
        }
        let sx = self.quant_of(x).scale;
        let bias = match bias_in {
            Some(i) => self.bias(n, i, &[sx * w.scales[0]], nn)?,
            None => None,
        };
        Ok(Layer {
            name: name.to_string(),
            kind: if bias.is_some() {
                LayerKind::Dense
            } else {
                LayerKind::Matmul
            },
            in_features: k,
            out_features: nn,
            weights: wt,
            weight_quant: Quant {
                scale: w.scales[0],
                zero_point: 0,
            },
            bias,
            output: out,
            relu: false,
        })
    }

    /// Adds a node reading IR tensors; returns the IR tensor name (the node's).
    fn add(&mut self, node: Node, ins: &[&str]) -> Result<String, CompileError> {
        let name = node.name().to_string();
        // A node that reads no IR tensor (a Concat of nothing) can come
        // before the input is quantized. (Seen while writing the `onnx` fuzz target.)
        let Some(b) = self.b.as_mut() else {
            return Err(CompileError::Invalid {
                context: format!("ONNX node {name}"),
                message: "comes before the graph input is quantized and reads none of it".into(),
            });
        };
        b.add(node, ins)?;
        Ok(name)
    }

    fn pool_attrs(n: &wire::Node) -> Result<PoolAttrs, CompileError> {
        let k = attr_ints(n, "kernel_shape", &[]);
        let s = attr_ints(n, "strides", &[1, 1]);
        let p = attr_ints(n, "pads", &[0, 0, 0, 0]);
        if k.len() != 2
            || s.len() != 2
            || p.len() != 4
            || k.iter().chain(&s).chain(&p).any(|&v| v < 0)
        {
            return Err(err(
                n,
                "only 2-D pooling with kernel_shape, strides and pads",
            ));
        }
        if attr_int(n, "ceil_mode", 0) != 0 {
            return Err(err(n, "ceil_mode 1 is not supported"));
        }
        if attr_ints(n, "dilations", &[1, 1]) != [1, 1] {
            return Err(err(n, "dilated pooling is not supported"));
        }
        Ok((
            [k[0] as usize, k[1] as usize],
            [s[0] as usize, s[1] as usize],
            [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize],
        ))
    }

    fn node(
        &mut self,
        n: &wire::Node,
        inputs: &HashMap<String, Vec<i64>>,
    ) -> Result<(), CompileError> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            return Err(err(
                n,
                format!(
                    "op {}::{} is not supported (only the default ONNX domain)",
                    n.domain, n.op_type
                ),
            ));
        }
        let out = n
            .outputs
            .first()
            .cloned()
            .ok_or_else(|| err(n, "has no output"))?;
        let v = match n.op_type.as_str() {
            "QuantizeLinear" => {
                let q = self.scalar_quant(n, 1, 2)?;
                match self.get(n, 0)?.clone() {
                    Value::FloatInput(x) => {
                        // `x`, not this node's input name: that may be an
                        // Identity of the input. (Seen while writing the `onnx` fuzz
                        // target: the dims were looked up under that name.)
                        self.ensure_input(&x, &inputs[&x], q)?;
                        Value::Q(x)
                    }
                    Value::Pending(op, act) => {
                        let node = match op {
                            PendingOp::Conv(mut c, x) => {
                                c.output = q;
                                c.act = act;
                                (Node::Conv(*c), vec![x])
                            }
                            PendingOp::Dense(mut l, x) => {
                                if act == Activation::Relu6 {
                                    return Err(err(
                                        n,
                                        "Clip(0, 6) after MatMul/Gemm is not supported",
                                    ));
                                }
                                l.output = OutputKind::Int8(q);
                                l.relu = act == Activation::Relu;
                                (Node::Layer(*l), vec![x])
                            }
                            PendingOp::Add(mut a, x, y) => {
                                a.output = q;
                                a.act = act;
                                (Node::Add(*a), vec![x, y])
                            }
                            PendingOp::TensorMatmul(mut t, x, y) => {
                                if act == Activation::Relu6 {
                                    return Err(err(n, "Clip(0, 6) after MatMul is not supported"));
                                }
                                t.output = q;
                                t.relu = act == Activation::Relu;
                                (Node::TensorMatmul(*t), vec![x, y])
                            }
                            PendingOp::Pool(mut p, x) => {
                                if act != Activation::None {
                                    return Err(err(
                                        n,
                                        "an activation after pooling is not supported",
                                    ));
                                }
                                p.output = Some(q);
                                (Node::Pool(*p), vec![x])
                            }
                        };
                        let refs: Vec<&str> = node.1.iter().map(String::as_str).collect();
                        Value::Q(self.add(node.0, &refs)?)
                    }
                    Value::Dq(t) => {
                        let have = self.quant_of(&t);
                        if (have.scale / q.scale - 1.0).abs() > 1e-6
                            || have.zero_point != q.zero_point
                        {
                            return Err(err(
                                n,
                                format!(
                                    "requantises `{t}` from scale {} zero point {} to scale {} zero point {}; \
                                     a requantisation that no Conv/Gemm/Add/pool does is not supported",
                                    have.scale, have.zero_point, q.scale, q.zero_point
                                ),
                            ));
                        }
                        Value::Q(t)
                    }
                    _ => return Err(err(n, "quantizes something that is not an activation")),
                }
            }
            "DequantizeLinear" => match self.get(n, 0)?.clone() {
                Value::Q(t) => {
                    let q = self.scalar_quant(n, 1, 2)?;
                    let have = self.quant_of(&t);
                    if (have.scale / q.scale - 1.0).abs() > 1e-6 || have.zero_point != q.zero_point
                    {
                        return Err(err(n, format!("dequantizes `{t}` with other parameters than it was quantized with")));
                    }
                    Value::Dq(t)
                }
                Value::Const(c) => {
                    let scales = match self.get(n, 1)? {
                        Value::Const(s) => s.vals.clone(),
                        _ => return Err(err(n, "the scale must be a constant")),
                    };
                    let zps = match self.opt(n, 2) {
                        Some(Value::Const(z)) => z.vals.iter().map(|&v| v as i64).collect(),
                        None => vec![0],
                        Some(_) => return Err(err(n, "the zero point must be a constant")),
                    };
                    if scales.len() > 1 && attr_int(n, "axis", 1) != 0 {
                        return Err(err(
                            n,
                            "per-axis scales are supported on axis 0 (output channels) only",
                        ));
                    }
                    Value::ConstDq(const_dq(n, &c, scales, zps)?)
                }
                _ => {
                    return Err(err(
                        n,
                        "dequantizes something that is neither quantized nor a constant",
                    ))
                }
            },
            "Identity" => self.get(n, 0)?.clone(),
            "Conv" => {
                let x = self.dq_input(n, 0)?;
                let w = self.weights(n, 1)?;
                let sx = self.quant_of(&x).scale;
                let c = self.conv(n, &out, &w, sx, 2, Quant::default())?;
                Value::Pending(PendingOp::Conv(Box::new(c), x), Activation::None)
            }
            "QLinearConv" => {
                let Value::Q(x) = self.get(n, 0)?.clone() else {
                    return Err(err(n, "input 0 must be a quantized activation"));
                };
                let w = self.qlinear_weights(n)?;
                let y = self.scalar_quant(n, 6, 7)?;
                let sx = self.quant_of(&x).scale;
                let c = self.conv(n, &out, &w, sx, 8, y)?;
                Value::Q(self.add(Node::Conv(c), &[&x])?)
            }
            "MatMul" if matches!(self.get(n, 1)?, Value::Dq(_)) => {
                let a = self.dq_input(n, 0)?;
                let b = self.dq_input(n, 1)?;
                let t = tensor_matmul(&out);
                Value::Pending(PendingOp::TensorMatmul(Box::new(t), a, b), Activation::None)
            }
            "MatMul" | "Gemm" => {
                let x = self.dq_input(n, 0)?;
                let w = self.weights(n, 1)?;
                let (trans, bias) = if n.op_type == "Gemm" {
                    if attr_int(n, "transA", 0) != 0 {
                        return Err(err(n, "transA is not supported"));
                    }
                    let one = |a: &str| n.attr(a).and_then(|a| a.f).unwrap_or(1.0);
                    if one("alpha") != 1.0 || one("beta") != 1.0 {
                        return Err(err(n, "alpha and beta other than 1 are not supported"));
                    }
                    (attr_int(n, "transB", 0) != 0, Some(2))
                } else {
                    (false, None)
                };
                let l = self.dense(n, &out, &x, &w, trans, bias, OutputKind::Int32)?;
                Value::Pending(PendingOp::Dense(Box::new(l), x), Activation::None)
            }
            "QLinearMatMul" if matches!(self.get(n, 3)?, Value::Q(_)) => {
                let (Value::Q(a), Value::Q(b)) = (self.get(n, 0)?.clone(), self.get(n, 3)?.clone())
                else {
                    return Err(err(n, "input 0 must be a quantized activation"));
                };
                let y = self.scalar_quant(n, 6, 7)?;
                let t = TensorMatmul {
                    output: y,
                    ..tensor_matmul(&out)
                };
                Value::Q(self.add(Node::TensorMatmul(t), &[&a, &b])?)
            }
            "QLinearMatMul" => {
                let Value::Q(x) = self.get(n, 0)?.clone() else {
                    return Err(err(n, "input 0 must be a quantized activation"));
                };
                let w = self.qlinear_weights(n)?;
                let y = self.scalar_quant(n, 6, 7)?;
                let l = self.dense(n, &out, &x, &w, false, None, OutputKind::Int8(y))?;
                Value::Q(self.add(Node::Layer(l), &[&x])?)
            }
            "Relu" | "Clip" => {
                let act = if n.op_type == "Relu" {
                    Activation::Relu
                } else {
                    let bound = |i: usize, attr: &str| -> Result<Option<f64>, CompileError> {
                        if let Some(Value::Const(c)) = self.opt(n, i) {
                            return Ok(c.vals.first().copied());
                        }
                        Ok(n.attr(attr).and_then(|a| a.f).map(|f| f as f64))
                    };
                    match (bound(1, "min")?, bound(2, "max")?) {
                        (Some(lo), Some(hi)) if lo == 0.0 && hi == 6.0 => Activation::Relu6,
                        (Some(0.0), None) => Activation::Relu,
                        (lo, hi) => {
                            return Err(err(n, format!("Clip({lo:?}, {hi:?}) is not supported: only Clip(0, 6) (ReLU6) and Clip(0) (ReLU)")))
                        }
                    }
                };
                match self.get(n, 0)?.clone() {
                    Value::Pending(op, Activation::None) if !matches!(op, PendingOp::Pool(..)) => Value::Pending(op, act),
                    _ => {
                        return Err(err(
                            n,
                            "an activation is supported only right after a Conv, Gemm, MatMul or Add (fused into its requantisation)",
                        ))
                    }
                }
            }
            "Add" => {
                let a = self.dq_input(n, 0)?;
                let b = self.dq_input(n, 1)?;
                let node = AddNode {
                    name: out.clone(),
                    output: Quant::default(),
                    act: Activation::None,
                };
                Value::Pending(PendingOp::Add(Box::new(node), a, b), Activation::None)
            }
            "MaxPool" => {
                if n.outputs.len() > 1 && !n.outputs[1].is_empty() {
                    return Err(err(n, "the Indices output is not supported"));
                }
                let (kernel, stride, pads) = Self::pool_attrs(n)?;
                let (x, dq) = match self.get(n, 0)?.clone() {
                    Value::Dq(t) => (t, true),
                    Value::Q(t) => (t, false),
                    _ => return Err(err(
                        n,
                        "reads a float tensor that is not dequantized from int8 (a float model)",
                    )),
                };
                let p = Pool {
                    name: out.clone(),
                    kind: PoolKind::Max,
                    global: false,
                    kernel,
                    stride,
                    pads,
                    count_include_pad: false,
                    output: None,
                };
                let t = self.add(Node::Pool(p), &[&x])?;
                if dq {
                    Value::Dq(t)
                } else {
                    Value::Q(t)
                }
            }
            "AveragePool" | "GlobalAveragePool" => {
                let x = self.dq_input(n, 0)?;
                let global = n.op_type == "GlobalAveragePool";
                let (kernel, stride, pads) = if global {
                    ([1, 1], [1, 1], [0; 4])
                } else {
                    Self::pool_attrs(n)?
                };
                let p = Pool {
                    name: out.clone(),
                    kind: PoolKind::Avg,
                    global,
                    kernel,
                    stride,
                    pads,
                    count_include_pad: attr_int(n, "count_include_pad", 0) != 0,
                    output: None,
                };
                Value::Pending(PendingOp::Pool(Box::new(p), x), Activation::None)
            }
            "Flatten" | "Reshape" => {
                let (x, dq) = match self.get(n, 0)?.clone() {
                    Value::Dq(t) => (t, true),
                    Value::Q(t) => (t, false),
                    _ => return Err(err(
                        n,
                        "reads a float tensor that is not dequantized from int8 (a float model)",
                    )),
                };
                let s = self.shape_of(&x);
                if n.op_type == "Flatten" {
                    if attr_int(n, "axis", 1) != 1 {
                        return Err(err(n, "only axis 1 is supported"));
                    }
                } else {
                    let target = match self.get(n, 1)? {
                        Value::Const(c) => c.vals.iter().map(|&v| v as i64).collect::<Vec<_>>(),
                        _ => return Err(err(n, "the shape must be a constant")),
                    };
                    let total = (s.h * s.w * s.c) as i64;
                    let flat = target.len() == 2
                        && (target[0] == s.n as i64 || target[0] == 0)
                        && (target[1] == -1 || target[1] == total);
                    if !flat {
                        return Err(err(n, format!("Reshape to {target:?} is not supported (only flattening to [n, -1])")));
                    }
                }
                if s.h * s.w > 1 && s.c > 1 {
                    self.flat_chw.insert(out.clone(), (s.c, s.h, s.w));
                }
                let t = self.add(Node::Flatten(FlattenNode { name: out.clone() }), &[&x])?;
                if dq {
                    Value::Dq(t)
                } else {
                    Value::Q(t)
                }
            }
            "Concat" => {
                let axis = attr_int(n, "axis", 1);
                let mut ts = Vec::new();
                let mut dq = None;
                for i in 0..n.inputs.len() {
                    let (t, d) = match self.get(n, i)?.clone() {
                        Value::Dq(t) => (t, true),
                        Value::Q(t) => (t, false),
                        _ => {
                            return Err(err(n, "reads a tensor that is not a quantized activation"))
                        }
                    };
                    let rank4 = !self
                        .b
                        .as_ref()
                        .and_then(|b| b.tensor(&t))
                        .is_some_and(|t| t.matrix);
                    if !(axis == 1 || (rank4 && axis == -3) || (!rank4 && axis == -1)) {
                        return Err(err(
                            n,
                            format!("axis {axis} is not supported (only the channel axis 1)"),
                        ));
                    }
                    if dq.is_some_and(|x| x != d) {
                        return Err(err(n, "mixes quantized and dequantized inputs"));
                    }
                    dq = Some(d);
                    ts.push(t);
                }
                let refs: Vec<&str> = ts.iter().map(String::as_str).collect();
                let t = self.add(Node::Concat(ConcatNode { name: out.clone() }), &refs)?;
                if dq == Some(true) {
                    Value::Dq(t)
                } else {
                    Value::Q(t)
                }
            }
            other => {
                return Err(err(
                    n,
                    format!(
                        "op {other} is not supported (supported: {})",
                        SUPPORTED_OPS.join(", ")
                    ),
                ))
            }
        };
        self.vals.insert(out, v);
        Ok(())
    }
}

/// Imports an ONNX model (the bytes of a `.onnx` file) as a workload named `name`.
pub fn parse_onnx(bytes: &[u8], name: &str) -> Result<Workload, CompileError> {
    let m = parse_model(bytes).map_err(|e| CompileError::Invalid {
        context: "ONNX file".into(),
        message: format!(
            "{} (at byte {}; the file is truncated or not ONNX)",
            e.message, e.at
        ),
    })?;
    let g = &m.graph;
    let mut imp = Importer {
        b: None,
        vals: HashMap::new(),
        flat_chw: HashMap::new(),
    };
    let mut input_dims = HashMap::new();
    for t in &g.initializers {
        let vals = t.values().map_err(|message| CompileError::Invalid {
            context: format!("ONNX initializer {}", t.name),
            message,
        })?;
        imp.vals.insert(
            t.name.clone(),
            Value::Const(Const {
                vals,
                dims: t.dims.clone(),
                dtype: t.data_type,
            }),
        );
    }
    let real_inputs: Vec<_> = g
        .inputs
        .iter()
        .filter(|i| !imp.vals.contains_key(&i.name))
        .collect();
    let [inp] = real_inputs[..] else {
        return Err(CompileError::Invalid {
            context: "ONNX graph".into(),
            message: format!(
                "has {} inputs; npukit supports exactly one",
                real_inputs.len()
            ),
        });
    };
    let dims: Vec<i64> = inp.dims.iter().map(|d| d.unwrap_or(1)).collect();
    input_dims.insert(inp.name.clone(), dims.clone());
    match inp.elem_type {
        dtype::FLOAT => {
            imp.vals
                .insert(inp.name.clone(), Value::FloatInput(inp.name.clone()));
        }
        t @ (dtype::INT8 | dtype::UINT8) => {
            // A quantized input: its scale comes from the QLinear op that reads it.
            let reader = g.nodes.iter().find(|n| n.inputs.first() == Some(&inp.name));
            let q = match reader {
                Some(n) if n.op_type.starts_with("QLinear") => imp.scalar_quant(n, 1, 2)?,
                _ => {
                    return Err(CompileError::Invalid {
                        context: format!("ONNX input {}", inp.name),
                        message: format!(
                            "a {} input must be read by a QLinear op (which gives its scale)",
                            dtype::name(t)
                        ),
                    })
                }
            };
            imp.ensure_input(&inp.name, &dims, q)?;
            imp.vals
                .insert(inp.name.clone(), Value::Q(inp.name.clone()));
        }
        t => {
            return Err(CompileError::Invalid {
                context: format!("ONNX input {}", inp.name),
                message: format!(
                    "type {} is not supported (float, int8 or uint8)",
                    dtype::name(t)
                ),
            })
        }
    }
    for n in &g.nodes {
        imp.node(n, &input_dims)?;
    }
    let Some(mut b) = imp.b.take() else {
        return Err(CompileError::Invalid {
            context: "ONNX graph".into(),
            message: "its input is never quantized: a float model (npukit runs quantised models: QDQ or QLinear ops)".into(),
        });
    };
    if g.outputs.is_empty() {
        return Err(CompileError::Invalid {
            context: "ONNX graph".into(),
            message: "has no outputs".into(),
        });
    }
    for o in &g.outputs {
        let t =
            match imp.vals.get(&o.name) {
                Some(Value::Q(t) | Value::Dq(t)) => t.clone(),
                Some(Value::Pending(..)) => return Err(CompileError::Invalid {
                    context: format!("ONNX output {}", o.name),
                    message:
                        "is a float result without a QuantizeLinear (npukit computes int8 outputs)"
                            .into(),
                }),
                _ => {
                    return Err(CompileError::Invalid {
                        context: format!("ONNX output {}", o.name),
                        message: "is not produced by the graph".into(),
                    })
                }
            };
        b.output(&o.name, &t)?;
    }
    Workload::from_graph(name, b.finish()?)
}
