//! The graph form of the JSON workload format (docs/workloads.md, "Graphs"):
//! an input, a list of named nodes each reading earlier nodes by name, and
//! the graph outputs. Tensors are given inline or as seeded random values,
//! materialised at load time.

use serde::Deserialize;
use serde_json::Value;

use crate::graph::{
    Activation, AddNode, ConcatNode, Conv, FlattenNode, GraphBuilder, InputNode, Layer, LayerKind,
    Node, OutputKind, Pool, PoolKind, Shape, TensorMatmul,
};
use crate::quant::{lower, Quant};
use crate::tensor::DType;
use crate::workload::{
    check_dim, int32_values, int8_values, invalid, quant, scale, QuantSpec, Workload,
};
use crate::CompileError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input: Value,
    nodes: Vec<Value>,
    outputs: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    #[serde(default = "crate::workload::default_input_name")]
    name: String,
    shape: Vec<usize>,
    #[serde(default)]
    quant: Option<QuantSpec>,
    data: Value,
}

/// An int or a list of ints.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Ints {
    One(usize),
    Many(Vec<usize>),
}

impl Ints {
    fn pair(&self, ctx: &str, what: &str) -> Result<[usize; 2], CompileError> {
        match self {
            Ints::One(v) => Ok([*v, *v]),
            Ints::Many(v) if v.len() == 2 => Ok([v[0], v[1]]),
            Ints::Many(v) => Err(invalid(
                ctx,
                format!("{what} has {} values, expected 1 or 2", v.len()),
            )),
        }
    }

    /// Padding: `p`, `[ph, pw]` or `[top, left, bottom, right]`.
    fn pads(&self, ctx: &str) -> Result<[usize; 4], CompileError> {
        match self {
            Ints::One(v) => Ok([*v; 4]),
            Ints::Many(v) if v.len() == 2 => Ok([v[0], v[1], v[0], v[1]]),
            Ints::Many(v) if v.len() == 4 => Ok([v[0], v[1], v[2], v[3]]),
            Ints::Many(v) => Err(invalid(
                ctx,
                format!("padding has {} values, expected 1, 2 or 4", v.len()),
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutQuantSpec {
    #[serde(default)]
    dtype: Option<DType>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    zero_point: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSpec {
    op: String,
    name: String,
    #[serde(default)]
    input: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<String>>,
    #[serde(default)]
    out_channels: Option<usize>,
    #[serde(default)]
    out_features: Option<usize>,
    #[serde(default)]
    kernel: Option<Ints>,
    #[serde(default)]
    stride: Option<Ints>,
    #[serde(default)]
    dilation: Option<Ints>,
    #[serde(default)]
    padding: Option<Ints>,
    #[serde(default)]
    groups: Option<usize>,
    #[serde(default)]
    weights: Option<Value>,
    #[serde(default)]
    weight_quant: Option<QuantSpec>,
    #[serde(default)]
    bias: Option<Value>,
    #[serde(default)]
    output: Option<OutQuantSpec>,
    #[serde(default)]
    activation: Option<String>,
    #[serde(default)]
    count_include_pad: bool,
    #[serde(default)]
    heads: Option<usize>,
    #[serde(default)]
    transpose_b: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputRef {
    name: String,
    from: String,
}

fn activation(ctx: &str, a: &Option<String>) -> Result<Activation, CompileError> {
    match a.as_deref() {
        None | Some("none") => Ok(Activation::None),
        Some("relu") => Ok(Activation::Relu),
        Some("relu6") => Ok(Activation::Relu6),
        Some(o) => Err(invalid(
            ctx,
            format!("unknown activation `{o}` (expected none, relu or relu6)"),
        )),
    }
}

fn out_quant(ctx: &str, o: &Option<OutQuantSpec>) -> Result<Option<Quant>, CompileError> {
    let Some(o) = o else { return Ok(None) };
    if o.dtype == Some(DType::I32) {
        return Err(invalid(ctx, "only dense and matmul layers output int32"));
    }
    let Some(s) = o.scale else {
        return Err(invalid(ctx, "output: missing field `scale`"));
    };
    Ok(Some(quant(
        ctx,
        &QuantSpec {
            scale: s,
            zero_point: o.zero_point.unwrap_or(0),
        },
    )?))
}

fn need<T: Copy>(ctx: &str, field: &str, v: Option<T>) -> Result<T, CompileError> {
    v.ok_or_else(|| invalid(ctx, format!("missing field `{field}`")))
}

/// Parses the graph form (a JSON object with `nodes`).
pub(crate) fn parse_graph(v: Value) -> Result<Workload, CompileError> {
    let spec: GraphSpec =
        serde_json::from_value(v).map_err(|e| CompileError::Json(e.to_string()))?;
    let inp: InputSpec =
        serde_json::from_value(spec.input).map_err(|e| invalid("input", e.to_string()))?;
    let ictx = format!("input {}", inp.name);
    let (shape, matrix) = match inp.shape[..] {
        [n, f] => (Shape::matrix(n, f), true),
        [n, h, w, c] => (Shape::nhwc(n, h, w, c), false),
        _ => {
            return Err(invalid(
                &ictx,
                format!(
                    "shape {:?} must be [n, features] or [n, h, w, c] (NHWC)",
                    inp.shape
                ),
            ))
        }
    };
    for (d, what) in [
        (shape.n, "n"),
        (shape.h, "h"),
        (shape.w, "w"),
        (shape.c, "c"),
    ] {
        check_dim(&ictx, what, d)?;
    }
    let iq = match &inp.quant {
        Some(q) => quant(&ictx, q)?,
        None => Quant::default(),
    };
    let data = int8_values(&ictx, "data", &inp.data, shape.rows(), shape.c)?;
    let mut b = GraphBuilder::new(InputNode {
        name: inp.name.clone(),
        shape,
        matrix,
        quant: iq,
        data,
    })?;
    if spec.nodes.is_empty() {
        return Err(invalid("workload", "`nodes` is empty"));
    }
    let mut prev = inp.name.clone();
    for (i, v) in spec.nodes.into_iter().enumerate() {
        let hint = v
            .get("name")
            .and_then(Value::as_str)
            .map_or(format!("node {i}"), |n| format!("node {n}"));
        let ns: NodeSpec = serde_json::from_value(v).map_err(|e| invalid(&hint, e.to_string()))?;
        let ctx = format!("node {}", ns.name);
        let inputs: Vec<String> = match (&ns.input, &ns.inputs) {
            (Some(_), Some(_)) => return Err(invalid(&ctx, "give `input` or `inputs`, not both")),
            (Some(i), None) => vec![i.clone()],
            (None, Some(v)) => v.clone(),
            (None, None) => vec![prev.clone()],
        };
        let x = inputs
            .first()
            .and_then(|n| b.tensor(n))
            .cloned()
            .ok_or_else(|| {
                invalid(
                    &ctx,
                    format!(
                        "reads {:?}; every input must be the graph input or an earlier node",
                        inputs
                    ),
                )
            })?;
        let act = activation(&ctx, &ns.activation)?;
        if (ns.heads.is_some() || ns.transpose_b) && !(ns.op == "matmul" && inputs.len() == 2) {
            return Err(invalid(
                &ctx,
                "`heads` and `transpose_b` belong to a matmul of two tensors (op matmul, `inputs: [a, b]`)",
            ));
        }
        let node = match ns.op.as_str() {
            "matmul" if inputs.len() == 2 => {
                if ns.weights.is_some() || ns.bias.is_some() || ns.out_features.is_some() {
                    return Err(invalid(
                        &ctx,
                        "a matmul of two tensors (`inputs: [a, b]`) takes no weights, bias or out_features",
                    ));
                }
                if act == Activation::Relu6 {
                    return Err(invalid(&ctx, "a matmul takes activation none or relu"));
                }
                let output = out_quant(&ctx, &ns.output)?
                    .ok_or_else(|| invalid(&ctx, "missing field `output` (an int8 scale and zero point)"))?;
                Node::TensorMatmul(TensorMatmul {
                    name: ns.name.clone(),
                    heads: ns.heads.unwrap_or(1),
                    transpose_b: ns.transpose_b,
                    output,
                    relu: act == Activation::Relu,
                })
            }
            "conv2d" | "conv" => {
                let cout = need(&ctx, "out_channels", ns.out_channels)?;
                check_dim(&ctx, "out_channels", cout)?;
                let kernel = ns
                    .kernel
                    .as_ref()
                    .ok_or_else(|| invalid(&ctx, "missing field `kernel`"))?
                    .pair(&ctx, "kernel")?;
                let stride = ns.stride.as_ref().map_or(Ok([1, 1]), |s| s.pair(&ctx, "stride"))?;
                let dilation = ns
                    .dilation
                    .as_ref()
                    .map_or(Ok([1, 1]), |s| s.pair(&ctx, "dilation"))?;
                let pads = ns.padding.as_ref().map_or(Ok([0; 4]), |p| p.pads(&ctx))?;
                let groups = ns.groups.unwrap_or(1);
                if groups == 0 || x.shape.c % groups != 0 || cout % groups != 0 {
                    return Err(invalid(
                        &ctx,
                        format!(
                            "groups {groups} must divide the input channels {} and out_channels {cout}",
                            x.shape.c
                        ),
                    ));
                }
                if kernel.iter().chain(&stride).chain(&dilation).any(|&v| v == 0 || v > 64) {
                    return Err(invalid(
                        &ctx,
                        "kernel, stride and dilation must be 1 to 64",
                    ));
                }
                let rows = kernel[0] * kernel[1] * x.shape.c / groups;
                let weights = int8_values(
                    &ctx,
                    "weights",
                    ns.weights
                        .as_ref()
                        .ok_or_else(|| invalid(&ctx, "missing field `weights`"))?,
                    rows,
                    cout,
                )?;
                let ws = weight_scale(&ctx, &ns.weight_quant)?;
                let bias = ns
                    .bias
                    .as_ref()
                    .map(|bv| int32_values(&ctx, "bias", bv, cout))
                    .transpose()?;
                let output = out_quant(&ctx, &ns.output)?
                    .ok_or_else(|| invalid(&ctx, "missing field `output`"))?;
                Node::Conv(Conv {
                    name: ns.name.clone(),
                    out_channels: cout,
                    kernel,
                    stride,
                    dilation,
                    pads,
                    groups,
                    weights,
                    weight_scales: vec![ws],
                    bias,
                    output,
                    act,
                })
            }
            "dense" | "gemm" | "matmul" => {
                let kind = if ns.op == "matmul" {
                    LayerKind::Matmul
                } else {
                    LayerKind::Dense
                };
                let n = need(&ctx, "out_features", ns.out_features)?;
                check_dim(&ctx, "out_features", n)?;
                let k = x.shape.c;
                let weights = int8_values(
                    &ctx,
                    "weights",
                    ns.weights
                        .as_ref()
                        .ok_or_else(|| invalid(&ctx, "missing field `weights`"))?,
                    k,
                    n,
                )?;
                let ws = weight_scale(&ctx, &ns.weight_quant)?;
                let output = match &ns.output {
                    Some(o) if o.dtype == Some(DType::I32) => OutputKind::Int32,
                    None if kind == LayerKind::Matmul => OutputKind::Int32,
                    o => OutputKind::Int8(
                        out_quant(&ctx, o)?.ok_or_else(|| invalid(&ctx, "missing field `output`"))?,
                    ),
                };
                if act == Activation::Relu6 {
                    return Err(invalid(&ctx, "dense layers take activation none or relu"));
                }
                let bias = match (&ns.bias, kind) {
                    (Some(_), LayerKind::Matmul) => {
                        return Err(invalid(&ctx, "a matmul layer has no bias; use op dense or gemm"))
                    }
                    (Some(bv), _) => Some(int32_values(&ctx, "bias", bv, n)?),
                    (None, _) => None,
                };
                Node::Layer(Layer {
                    name: ns.name.clone(),
                    kind,
                    in_features: k,
                    out_features: n,
                    weights,
                    weight_quant: Quant {
                        scale: ws,
                        zero_point: 0,
                    },
                    bias,
                    output,
                    relu: act == Activation::Relu,
                })
            }
            "maxpool" | "avgpool" | "global_avgpool" => {
                let kind = if ns.op == "maxpool" {
                    PoolKind::Max
                } else {
                    PoolKind::Avg
                };
                let global = ns.op == "global_avgpool";
                let kernel = if global {
                    [1, 1]
                } else {
                    ns.kernel
                        .as_ref()
                        .ok_or_else(|| invalid(&ctx, "missing field `kernel`"))?
                        .pair(&ctx, "kernel")?
                };
                let stride = ns.stride.as_ref().map_or(Ok(kernel), |s| s.pair(&ctx, "stride"))?;
                let pads = ns.padding.as_ref().map_or(Ok([0; 4]), |p| p.pads(&ctx))?;
                Node::Pool(Pool {
                    name: ns.name.clone(),
                    kind,
                    global,
                    kernel,
                    stride,
                    pads,
                    count_include_pad: ns.count_include_pad,
                    output: out_quant(&ctx, &ns.output)?,
                })
            }
            "add" => Node::Add(AddNode {
                name: ns.name.clone(),
                output: out_quant(&ctx, &ns.output)?
                    .ok_or_else(|| invalid(&ctx, "missing field `output`"))?,
                act,
            }),
            "concat" => Node::Concat(ConcatNode {
                name: ns.name.clone(),
            }),
            "flatten" | "reshape" => Node::Flatten(FlattenNode {
                name: ns.name.clone(),
            }),
            other => {
                return Err(invalid(
                    &ctx,
                    format!(
                        "unknown op `{other}` (expected conv2d, dense, gemm, matmul, maxpool, avgpool, \
                         global_avgpool, add, concat or flatten)"
                    ),
                ))
            }
        };
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        b.add(node, &refs)?;
        prev = ns.name;
    }
    if spec.outputs.is_empty() {
        return Err(invalid("workload", "`outputs` is empty"));
    }
    for o in spec.outputs {
        let (name, from) = match o {
            Value::String(s) => (s.clone(), s),
            v => {
                let r: OutputRef = serde_json::from_value(v).map_err(|e| {
                    invalid(
                        "outputs",
                        format!("{e} (expected \"node\" or {{\"name\", \"from\"}})"),
                    )
                })?;
                (r.name, r.from)
            }
        };
        b.output(&name, &from)?;
    }
    let graph = b.finish()?;
    lower(&graph)?;
    crate::lower::lower_graph(&graph, 16, 16)?;
    Ok(Workload {
        name: spec.name,
        description: spec.description,
        graph,
    })
}

fn weight_scale(ctx: &str, q: &Option<QuantSpec>) -> Result<f64, CompileError> {
    match q {
        None => Ok(1.0),
        Some(q) => {
            if q.zero_point != 0 {
                return Err(invalid(
                    ctx,
                    format!(
                        "weight zero_point {} is not supported: weights must be symmetric (zero_point 0)",
                        q.zero_point
                    ),
                ));
            }
            scale(ctx, "weight ", q.scale)
        }
    }
}
