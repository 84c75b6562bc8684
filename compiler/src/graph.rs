//! The graph IR: a petgraph [`DiGraph`] whose nodes are operations and whose
//! edges are tensors (shape, element type, quantisation).
//!
//! Every tensor is int8 (int32 only as the output of a last dense/matmul
//! layer) and has the shape `[n, h, w, c]` (NHWC); a matrix `[rows, features]`
//! is `[rows, 1, 1, features]` shown as 2-D. The graph is a DAG: one
//! [`Node::Input`], operations, and one or more [`Node::Output`]s. An edge's
//! `port` says which input of its consumer it is (an `add` has two, a `concat`
//! any number). [`Graph::check_shapes`] is the shape-check pass: it infers
//! every node's output from its inputs ([`infer`]) and names the node at fault.
//!
//! Operations:
//! * [`Layer`]: dense/gemm (`x W + b`) and matmul (`A B`) on matrices;
//! * [`TensorMatmul`]: the product of two runtime tensors (`A B` or `A B^T`),
//!   optionally per head (attention's `Q K^T` and `P V`);
//! * [`Conv`]: 2-D convolution with stride, padding, dilation and groups
//!   (depthwise when `groups` equals the channels), fused ReLU/ReLU6;
//! * [`Pool`]: max and average pooling, global average pooling;
//! * [`AddNode`]: element-wise add of two tensors with requantisation;
//! * [`ConcatNode`]: concatenation along channels;
//! * [`FlattenNode`]: `[n, h, w, c]` to `[n, h * w * c]` (NHWC order).

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::quant::Quant;
use crate::tensor::DType;
use crate::CompileError;

/// A tensor shape, NHWC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub const fn matrix(rows: usize, cols: usize) -> Shape {
        Shape {
            n: rows,
            h: 1,
            w: 1,
            c: cols,
        }
    }

    pub const fn nhwc(n: usize, h: usize, w: usize, c: usize) -> Shape {
        Shape { n, h, w, c }
    }

    /// Pixels (rows of the `[pixels, channels]` view).
    pub const fn rows(&self) -> usize {
        self.n * self.h * self.w
    }

    pub const fn elems(&self) -> usize {
        self.rows() * self.c
    }
}

/// The network input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputNode {
    pub name: String,
    pub shape: Shape,
    /// Shown (and read back) as `[n, c]` rather than `[n, h, w, c]`.
    pub matrix: bool,
    pub quant: Quant,
    /// The values, NHWC row-major.
    pub data: Vec<i8>,
}

impl InputNode {
    /// The features of a matrix input (compatibility with chain workloads).
    pub fn features(&self) -> usize {
        self.shape.c
    }
}

/// Which workload-level operation a layer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `dense` / `gemm`: `x W + b`, requantised (or int32).
    Dense,
    /// `matmul`: `A B`, no bias.
    Matmul,
}

/// What a layer outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputKind {
    /// int8, requantised to these parameters.
    Int8(Quant),
    /// int32 accumulators, in units of `input scale * weight scale`.
    Int32,
}

impl OutputKind {
    pub fn dtype(&self) -> DType {
        match self {
            OutputKind::Int8(_) => DType::I8,
            OutputKind::Int32 => DType::I32,
        }
    }
}

/// A dense/gemm or matmul layer: `y[M x N] = x[M x K] W[K x N] (+ b)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub name: String,
    pub kind: LayerKind,
    pub in_features: usize,
    pub out_features: usize,
    /// `in_features x out_features` int8, row-major (`w[k][n]`).
    pub weights: Vec<i8>,
    /// Symmetric: the zero point is always 0.
    pub weight_quant: Quant,
    /// `out_features` int32 values in units of `input scale * weight scale`.
    pub bias: Option<Vec<i32>>,
    pub output: OutputKind,
    pub relu: bool,
}

/// The product of two runtime tensors (neither is a constant), requantised to
/// int8: `heads` independent products side by side. Port 0 is `A`
/// `[M, heads * K]`, port 1 is `B`:
/// * `transpose_b = false`: `B` is `[K, heads * N]`, head `h` computes
///   `A[:, hK..(h+1)K] B[:, hN..(h+1)N]`;
/// * `transpose_b = true`: `B` is `[N, heads * K]`, head `h` computes
///   `A[:, hK..(h+1)K] B[:, hK..(h+1)K]^T`.
///
/// The output is `[M, heads * N]`, head `h` in columns `hN..(h+1)N`. Both
/// inputs must have zero point 0: the MAC array has no way to subtract a
/// runtime zero point (it would need the runtime row and column sums).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMatmul {
    pub name: String,
    pub heads: usize,
    pub transpose_b: bool,
    pub output: Quant,
    pub relu: bool,
}

impl TensorMatmul {
    /// `(k, n)` of one head for inputs `a` and `b`.
    pub fn head_dims(&self, a: &TensorInfo, b: &TensorInfo) -> (usize, usize) {
        let h = self.heads.max(1);
        if self.transpose_b {
            (a.shape.c / h, b.shape.n)
        } else {
            (a.shape.c / h, b.shape.c / h)
        }
    }
}

/// A fused activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `min(max(x, 0), 6)`: the activation unit clamps at the zero point and
    /// at 127, so this needs an output scale where 6.0 quantises to 127 or above.
    Relu6,
}

/// A 2-D convolution on an NHWC tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub name: String,
    pub out_channels: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sy, sx]`.
    pub stride: [usize; 2],
    /// `[dy, dx]`.
    pub dilation: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub groups: usize,
    /// `[groups][kh][kw][in_channels / groups][out_channels / groups]`, int8.
    pub weights: Vec<i8>,
    /// Symmetric weight scales: one (per tensor) or `out_channels` (per channel).
    pub weight_scales: Vec<f64>,
    /// `out_channels` int32 values in units of `input scale * weight scale`.
    pub bias: Option<Vec<i32>>,
    pub output: Quant,
    pub act: Activation,
}

/// Pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

/// Max or average pooling (global: the kernel is the whole input).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    pub name: String,
    pub kind: PoolKind,
    pub global: bool,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub pads: [usize; 4],
    /// Average pooling: padded positions count in the divisor (they add the
    /// zero point, i.e. real 0). Without it, average pooling takes no padding.
    pub count_include_pad: bool,
    /// Average pooling's output quantisation (max pooling keeps its input's).
    pub output: Option<Quant>,
}

/// Element-wise `a + b`, requantised to `output`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddNode {
    pub name: String,
    pub output: Quant,
    pub act: Activation,
}

/// Concatenation along channels; every input has the same quantisation.
#[derive(Debug, Clone, PartialEq)]
pub struct ConcatNode {
    pub name: String,
}

/// `[n, h, w, c]` to `[n, h * w * c]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FlattenNode {
    pub name: String,
}

/// A graph output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputNode {
    pub name: String,
}

/// An operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Input(InputNode),
    Layer(Layer),
    TensorMatmul(TensorMatmul),
    Conv(Conv),
    Pool(Pool),
    Add(AddNode),
    Concat(ConcatNode),
    Flatten(FlattenNode),
    Output(OutputNode),
}

impl Node {
    pub fn name(&self) -> &str {
        match self {
            Node::Input(n) => &n.name,
            Node::Layer(n) => &n.name,
            Node::TensorMatmul(n) => &n.name,
            Node::Conv(n) => &n.name,
            Node::Pool(n) => &n.name,
            Node::Add(n) => &n.name,
            Node::Concat(n) => &n.name,
            Node::Flatten(n) => &n.name,
            Node::Output(n) => &n.name,
        }
    }

    /// The operation's name in workload files.
    pub fn op(&self) -> &'static str {
        match self {
            Node::Input(_) => "input",
            Node::Layer(l) => match l.kind {
                LayerKind::Dense => "dense",
                LayerKind::Matmul => "matmul",
            },
            Node::TensorMatmul(_) => "matmul",
            Node::Conv(_) => "conv2d",
            Node::Pool(p) => match (p.kind, p.global) {
                (PoolKind::Max, _) => "maxpool",
                (PoolKind::Avg, false) => "avgpool",
                (PoolKind::Avg, true) => "global_avgpool",
            },
            Node::Add(_) => "add",
            Node::Concat(_) => "concat",
            Node::Flatten(_) => "flatten",
            Node::Output(_) => "output",
        }
    }

    /// Multiply-accumulates of the operation (0 for data movement).
    pub fn macs(&self, inputs: &[&TensorInfo], out: &TensorInfo) -> u64 {
        match self {
            Node::Layer(l) => (out.shape.rows() * l.in_features * l.out_features) as u64,
            Node::TensorMatmul(t) => match inputs {
                [a, b] => {
                    let (k, n) = t.head_dims(a, b);
                    (out.shape.rows() * k * n * t.heads) as u64
                }
                _ => 0,
            },
            Node::Conv(c) => {
                let cin = inputs.first().map_or(0, |t| t.shape.c);
                (out.shape.elems() * c.kernel[0] * c.kernel[1] * cin / c.groups.max(1)) as u64
            }
            _ => 0,
        }
    }
}

/// A tensor on an edge.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Shape,
    /// A 2-D `[n, c]` tensor (dense layers, flatten).
    pub matrix: bool,
    pub dtype: DType,
    /// For int32 tensors: scale `input scale * weight scale`, zero point 0.
    pub quant: Quant,
}

impl TensorInfo {
    /// The shape as shown and read back: `[n, c]` or `[n, h, w, c]`.
    pub fn dims(&self) -> Vec<usize> {
        let s = self.shape;
        if self.matrix {
            vec![s.n, s.c]
        } else {
            vec![s.n, s.h, s.w, s.c]
        }
    }
}

/// An edge: the tensor, and which input of its consumer it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub port: usize,
    pub tensor: TensorInfo,
}

/// A network.
#[derive(Debug, Clone)]
pub struct Graph {
    pub graph: DiGraph<Node, Edge>,
    /// Rows (`n`) of every tensor.
    pub batch: usize,
}

fn layer_err(layer: &str, message: String) -> CompileError {
    CompileError::Layer {
        layer: layer.to_string(),
        message,
    }
}

/// Output extent of a window: `(in + pads - dilation * (k - 1) - 1) / stride + 1`.
fn out_dim(
    what: &str,
    input: usize,
    pad: usize,
    k: usize,
    s: usize,
    d: usize,
) -> Result<usize, String> {
    let span = d * (k - 1) + 1;
    if input + pad < span {
        return Err(format!(
            "the {what} window ({span} with dilation) is larger than the padded input ({})",
            input + pad
        ));
    }
    Ok((input + pad - span) / s + 1)
}

fn check_window(
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pads: [usize; 4],
) -> Result<(), String> {
    if kernel.contains(&0) || stride.contains(&0) || dilation.contains(&0) {
        return Err(format!(
            "kernel {kernel:?}, stride {stride:?} and dilation {dilation:?} must be at least 1"
        ));
    }
    if kernel
        .iter()
        .chain(&stride)
        .chain(&dilation)
        .any(|&v| v > 64)
        || pads.iter().any(|&p| p > 64)
    {
        return Err("kernel, stride, dilation and padding are limited to 64".into());
    }
    Ok(())
}

fn activation_quant_check(act: Activation, q: Quant) -> Result<(), String> {
    if act == Activation::Relu6 {
        let six = (6.0 / q.scale).round() + q.zero_point as f64;
        if six < 127.0 {
            return Err(format!(
                "relu6 needs an output scale where 6.0 quantises to 127 or above (the activation unit \
                 clamps at the zero point and at 127); with scale {} and zero point {} it is {six}",
                q.scale, q.zero_point
            ));
        }
    }
    Ok(())
}

/// The output tensor of `node` given its inputs (in port order): the
/// shape-check of one node. Errors name the node.
pub fn infer(node: &Node, inputs: &[&TensorInfo]) -> Result<TensorInfo, CompileError> {
    let name = node.name();
    let err = |m: String| layer_err(name, m);
    let want_inputs = |k: usize| -> Result<(), CompileError> {
        if inputs.len() != k {
            return Err(err(format!(
                "{} takes {k} input{}, it has {}",
                node.op(),
                if k == 1 { "" } else { "s" },
                inputs.len()
            )));
        }
        Ok(())
    };
    let int8_in = |t: &TensorInfo| -> Result<(), CompileError> {
        if t.dtype != DType::I8 {
            return Err(err(format!(
                "its input {} is {}; {} reads int8 (only the last layer may output int32)",
                t.name,
                t.dtype,
                node.op()
            )));
        }
        Ok(())
    };
    let matrix_in = |t: &TensorInfo| -> Result<(), CompileError> {
        if t.shape.h != 1 || t.shape.w != 1 {
            return Err(err(format!(
                "its input {} is {:?}; a {} layer reads a matrix (flatten it first)",
                t.name,
                t.dims(),
                node.op()
            )));
        }
        Ok(())
    };
    let out = |shape: Shape, matrix: bool, dtype: DType, quant: Quant| TensorInfo {
        name: name.to_string(),
        shape,
        matrix,
        dtype,
        quant,
    };
    match node {
        Node::Input(i) => {
            want_inputs(0)?;
            let ctx = |message: String| CompileError::Invalid {
                context: format!("input {}", i.name),
                message,
            };
            let s = i.shape;
            if s.n == 0 || s.h == 0 || s.w == 0 || s.c == 0 {
                return Err(ctx(format!("shape {s:?} has a zero dimension")));
            }
            if i.data.len() != s.elems() {
                return Err(ctx(if i.matrix {
                    format!(
                        "data has {} values, expected batch {} x features {} = {}",
                        i.data.len(),
                        s.n,
                        s.c,
                        s.elems()
                    )
                } else {
                    format!(
                        "data has {} values, expected {} x {} x {} x {} = {}",
                        i.data.len(),
                        s.n,
                        s.h,
                        s.w,
                        s.c,
                        s.elems()
                    )
                }));
            }
            Ok(out(i.shape, i.matrix, DType::I8, i.quant))
        }
        Node::Layer(l) => {
            want_inputs(1)?;
            let x = inputs[0];
            int8_in(x)?;
            matrix_in(x)?;
            if l.out_features == 0 {
                return Err(err("out_features must be at least 1".into()));
            }
            let want = l.in_features * l.out_features;
            if l.weights.len() != want {
                return Err(err(format!(
                    "weights has {} values, expected in_features {} x out_features {} = {want}",
                    l.weights.len(),
                    l.in_features,
                    l.out_features
                )));
            }
            if let Some(b) = &l.bias {
                if b.len() != l.out_features {
                    return Err(err(format!(
                        "bias has {} values, expected out_features {}",
                        b.len(),
                        l.out_features
                    )));
                }
            }
            if l.relu && l.output == OutputKind::Int32 {
                return Err(err("relu needs an int8 output".into()));
            }
            let quant = match l.output {
                OutputKind::Int8(q) => q,
                OutputKind::Int32 => Quant {
                    scale: x.quant.scale * l.weight_quant.scale,
                    zero_point: 0,
                },
            };
            Ok(out(
                Shape::matrix(x.shape.n, l.out_features),
                true,
                l.output.dtype(),
                quant,
            ))
        }
        Node::TensorMatmul(t) => {
            want_inputs(2)?;
            let (a, b) = (inputs[0], inputs[1]);
            for x in [a, b] {
                int8_in(x)?;
                matrix_in(x)?;
                if x.quant.zero_point != 0 {
                    return Err(err(format!(
                        "its input {} has zero point {}; a matmul of two tensors needs zero point 0 \
                         on both (the MAC array cannot subtract a runtime zero point)",
                        x.name, x.quant.zero_point
                    )));
                }
            }
            let h = t.heads;
            if h == 0 || !a.shape.c.is_multiple_of(h) || !b.shape.c.is_multiple_of(h) {
                return Err(err(format!(
                    "heads {h} must divide the columns of both inputs ({} has {}, {} has {})",
                    a.name, a.shape.c, b.name, b.shape.c
                )));
            }
            let (k, n) = t.head_dims(a, b);
            let bk = if t.transpose_b {
                b.shape.c / h
            } else {
                b.shape.n
            };
            if k != bk {
                return Err(err(format!(
                    "{} {:?} and {} {:?}{} do not multiply: {k} columns per head against {bk} {}",
                    a.name,
                    a.dims(),
                    b.name,
                    b.dims(),
                    if t.transpose_b { " transposed" } else { "" },
                    if t.transpose_b {
                        "columns per head"
                    } else {
                        "rows"
                    }
                )));
            }
            Ok(out(
                Shape::matrix(a.shape.n, n * h),
                true,
                DType::I8,
                t.output,
            ))
        }
        Node::Conv(c) => {
            want_inputs(1)?;
            let x = inputs[0];
            int8_in(x)?;
            check_window(c.kernel, c.stride, c.dilation, c.pads).map_err(err)?;
            let g = c.groups;
            if g == 0
                || !x.shape.c.is_multiple_of(g)
                || !c.out_channels.is_multiple_of(g)
                || c.out_channels == 0
            {
                return Err(err(format!(
                    "groups {g} must divide the input channels {} and the output channels {} (both at least 1)",
                    x.shape.c, c.out_channels
                )));
            }
            let [kh, kw] = c.kernel;
            let want = kh * kw * x.shape.c / g * c.out_channels;
            if c.weights.len() != want {
                return Err(err(format!(
                    "weights has {} values, expected {kh} x {kw} x {} x {} = {want} \
                     (kernel x input channels per group x output channels)",
                    c.weights.len(),
                    x.shape.c / g,
                    c.out_channels
                )));
            }
            if c.weight_scales.len() != 1 && c.weight_scales.len() != c.out_channels {
                return Err(err(format!(
                    "{} weight scales, expected 1 (per tensor) or {} (per output channel)",
                    c.weight_scales.len(),
                    c.out_channels
                )));
            }
            if let Some(b) = &c.bias {
                if b.len() != c.out_channels {
                    return Err(err(format!(
                        "bias has {} values, expected out_channels {}",
                        b.len(),
                        c.out_channels
                    )));
                }
            }
            activation_quant_check(c.act, c.output).map_err(err)?;
            let oh = out_dim(
                "kernel",
                x.shape.h,
                c.pads[0] + c.pads[2],
                kh,
                c.stride[0],
                c.dilation[0],
            )
            .map_err(err)?;
            let ow = out_dim(
                "kernel",
                x.shape.w,
                c.pads[1] + c.pads[3],
                kw,
                c.stride[1],
                c.dilation[1],
            )
            .map_err(err)?;
            Ok(out(
                Shape::nhwc(x.shape.n, oh, ow, c.out_channels),
                false,
                DType::I8,
                c.output,
            ))
        }
        Node::Pool(p) => {
            want_inputs(1)?;
            let x = inputs[0];
            int8_in(x)?;
            let (kernel, stride, pads) = if p.global {
                ([x.shape.h, x.shape.w], [1, 1], [0; 4])
            } else {
                (p.kernel, p.stride, p.pads)
            };
            check_window(kernel, stride, [1, 1], pads).map_err(err)?;
            if pads[0] >= kernel[0]
                || pads[2] >= kernel[0]
                || pads[1] >= kernel[1]
                || pads[3] >= kernel[1]
            {
                return Err(err(format!(
                    "padding {pads:?} must be smaller than the kernel {kernel:?}"
                )));
            }
            let quant = match (p.kind, p.output) {
                (PoolKind::Max, None) => x.quant,
                (PoolKind::Max, Some(q)) if q == x.quant => x.quant,
                (PoolKind::Max, Some(_)) => {
                    return Err(err(
                        "max pooling keeps its input's quantisation (no output scale)".into(),
                    ))
                }
                (PoolKind::Avg, Some(q)) => q,
                (PoolKind::Avg, None) => x.quant,
            };
            if p.kind == PoolKind::Avg && !p.count_include_pad && pads.iter().any(|&v| v > 0) {
                return Err(err(
                    "average pooling with padding is supported with count_include_pad only \
                     (the activation unit divides every output by the same count)"
                        .into(),
                ));
            }
            let oh = out_dim(
                "kernel",
                x.shape.h,
                pads[0] + pads[2],
                kernel[0],
                stride[0],
                1,
            )
            .map_err(err)?;
            let ow = out_dim(
                "kernel",
                x.shape.w,
                pads[1] + pads[3],
                kernel[1],
                stride[1],
                1,
            )
            .map_err(err)?;
            Ok(out(
                Shape::nhwc(x.shape.n, oh, ow, x.shape.c),
                false,
                DType::I8,
                quant,
            ))
        }
        Node::Add(a) => {
            want_inputs(2)?;
            let (x, y) = (inputs[0], inputs[1]);
            int8_in(x)?;
            int8_in(y)?;
            if x.shape != y.shape {
                return Err(err(format!(
                    "its inputs {} {:?} and {} {:?} have different shapes",
                    x.name,
                    x.dims(),
                    y.name,
                    y.dims()
                )));
            }
            activation_quant_check(a.act, a.output).map_err(err)?;
            Ok(out(x.shape, x.matrix, DType::I8, a.output))
        }
        Node::Concat(_) => {
            if inputs.is_empty() {
                return Err(err("concat needs at least one input".into()));
            }
            let x = inputs[0];
            let mut c = 0;
            for t in inputs {
                int8_in(t)?;
                let s = t.shape;
                if (s.n, s.h, s.w) != (x.shape.n, x.shape.h, x.shape.w) {
                    return Err(err(format!(
                        "its inputs {} {:?} and {} {:?} differ in more than the channels",
                        x.name,
                        x.dims(),
                        t.name,
                        t.dims()
                    )));
                }
                if t.quant != x.quant {
                    return Err(err(format!(
                        "its inputs {} and {} have different quantisation; concat copies bytes and \
                         needs one scale and zero point",
                        x.name, t.name
                    )));
                }
                c += s.c;
            }
            Ok(out(
                Shape::nhwc(x.shape.n, x.shape.h, x.shape.w, c),
                x.matrix,
                DType::I8,
                x.quant,
            ))
        }
        Node::Flatten(_) => {
            want_inputs(1)?;
            let x = inputs[0];
            int8_in(x)?;
            let s = x.shape;
            Ok(out(
                Shape::matrix(s.n, s.h * s.w * s.c),
                true,
                DType::I8,
                x.quant,
            ))
        }
        Node::Output(_) => {
            want_inputs(1)?;
            Ok(inputs[0].clone())
        }
    }
}

impl Graph {
    /// Builds the chain `input -> layers... -> output`, deriving each edge from
    /// its producer. Nothing is checked here; see [`Graph::check_shapes`].
    pub fn chain(batch: usize, input: InputNode, layers: Vec<Layer>, output: &str) -> Graph {
        let mut g = DiGraph::new();
        let mut info = TensorInfo {
            name: input.name.clone(),
            shape: input.shape,
            matrix: true,
            dtype: DType::I8,
            quant: input.quant,
        };
        let mut prev = g.add_node(Node::Input(input));
        for layer in layers {
            let next = TensorInfo {
                name: layer.name.clone(),
                shape: Shape::matrix(batch, layer.out_features),
                matrix: true,
                dtype: layer.output.dtype(),
                quant: match layer.output {
                    OutputKind::Int8(q) => q,
                    OutputKind::Int32 => Quant {
                        scale: info.quant.scale * layer.weight_quant.scale,
                        zero_point: 0,
                    },
                },
            };
            let node = g.add_node(Node::Layer(layer));
            g.add_edge(
                prev,
                node,
                Edge {
                    port: 0,
                    tensor: info,
                },
            );
            prev = node;
            info = next;
        }
        let out = g.add_node(Node::Output(OutputNode {
            name: output.to_string(),
        }));
        g.add_edge(
            prev,
            out,
            Edge {
                port: 0,
                tensor: info,
            },
        );
        Graph { graph: g, batch }
    }

    /// The nodes in execution order (a topological order that keeps the
    /// order nodes were added in where it can).
    pub fn order(&self) -> Result<Vec<NodeIndex>, CompileError> {
        let bad = |m: String| CompileError::Invalid {
            context: "graph".into(),
            message: m,
        };
        let inputs = self
            .graph
            .node_indices()
            .filter(|&i| matches!(self.graph[i], Node::Input(_)))
            .count();
        if inputs != 1 {
            return Err(bad("needs exactly one input node".into()));
        }
        let n = self.graph.node_count();
        let mut indeg: Vec<usize> = self
            .graph
            .node_indices()
            .map(|i| self.graph.edges_directed(i, Direction::Incoming).count())
            .collect();
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            let ni = NodeIndex::new(i);
            order.push(ni);
            for e in self.graph.edges_directed(ni, Direction::Outgoing) {
                let t = e.target().index();
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    ready.insert(t);
                }
            }
        }
        if order.len() != n {
            return Err(bad("the graph has a cycle".into()));
        }
        if !matches!(self.graph[order[0]], Node::Input(_)) {
            return Err(bad(format!(
                "node {} has no input",
                self.graph[order[0]].name()
            )));
        }
        for &i in &order {
            let node = &self.graph[i];
            let ins = self.graph.edges_directed(i, Direction::Incoming).count();
            let outs = self.graph.edges_directed(i, Direction::Outgoing).count();
            if !matches!(node, Node::Input(_)) && ins == 0 {
                return Err(bad(format!("node {} has no input", node.name())));
            }
            if !matches!(node, Node::Output(_)) && outs == 0 {
                return Err(bad(format!(
                    "the output of node {} is not used (no output node reads it)",
                    node.name()
                )));
            }
        }
        if !order
            .iter()
            .any(|&i| !matches!(self.graph[i], Node::Input(_) | Node::Output(_)))
        {
            return Err(bad("the network has no layer".into()));
        }
        Ok(order)
    }

    /// The tensors `n` reads, in port order.
    pub fn inputs_of(&self, n: NodeIndex) -> Vec<&TensorInfo> {
        let mut e: Vec<&Edge> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| e.weight())
            .collect();
        e.sort_by_key(|e| e.port);
        e.into_iter().map(|e| &e.tensor).collect()
    }

    /// The producers of `n`'s inputs, in port order.
    pub fn producers_of(&self, n: NodeIndex) -> Vec<NodeIndex> {
        let mut e: Vec<(usize, NodeIndex)> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| (e.weight().port, e.source()))
            .collect();
        e.sort_by_key(|e| e.0);
        e.into_iter().map(|e| e.1).collect()
    }

    /// The consumers of `n`'s output.
    pub fn consumers_of(&self, n: NodeIndex) -> Vec<NodeIndex> {
        self.graph
            .edges_directed(n, Direction::Outgoing)
            .map(|e| e.target())
            .collect()
    }

    /// The tensor `n` produces (as its first outgoing edge carries it).
    pub fn output_of(&self, n: NodeIndex) -> Option<&TensorInfo> {
        self.graph
            .edges_directed(n, Direction::Outgoing)
            .next()
            .map(|e| &e.weight().tensor)
    }

    /// The input node.
    pub fn input(&self) -> Result<&InputNode, CompileError> {
        let order = self.order()?;
        match &self.graph[order[0]] {
            Node::Input(i) => Ok(i),
            _ => unreachable!("order() starts at the input"),
        }
    }

    /// The dense/matmul layers in order, each with the tensor it reads.
    pub fn layers(&self) -> Result<Vec<(&Layer, &TensorInfo)>, CompileError> {
        let order = self.order()?;
        Ok(order
            .iter()
            .filter_map(|&i| match &self.graph[i] {
                Node::Layer(l) => Some((l, self.inputs_of(i)[0])),
                _ => None,
            })
            .collect())
    }

    /// Every operation (not input or output) in order.
    pub fn ops(&self) -> Result<Vec<NodeIndex>, CompileError> {
        Ok(self
            .order()?
            .into_iter()
            .filter(|&i| !matches!(self.graph[i], Node::Input(_) | Node::Output(_)))
            .collect())
    }

    /// The graph outputs, each the tensor its output node reads (named after
    /// the output node).
    pub fn outputs(&self) -> Result<Vec<TensorInfo>, CompileError> {
        let order = self.order()?;
        Ok(order
            .iter()
            .filter(|&&i| matches!(self.graph[i], Node::Output(_)))
            .map(|&i| {
                let mut t = self.inputs_of(i)[0].clone();
                t.name = self.graph[i].name().to_string();
                t
            })
            .collect())
    }

    /// The shape-check pass: every edge agrees with what its producer infers
    /// from its own inputs, every parameter has the size its node declares,
    /// names are unique. Errors name the node (or the input) at fault.
    pub fn check_shapes(&self) -> Result<(), CompileError> {
        let order = self.order()?;
        if self.batch == 0 {
            return Err(CompileError::Invalid {
                context: "workload".into(),
                message: "batch must be at least 1".into(),
            });
        }
        let mut names = std::collections::HashSet::new();
        let mut out_names = std::collections::HashSet::new();
        for &i in &order {
            let name = self.graph[i].name();
            // An output may take the name of the tensor it reads.
            let fresh = if matches!(self.graph[i], Node::Output(_))
                && self
                    .producers_of(i)
                    .first()
                    .is_some_and(|&p| self.graph[p].name() == name)
            {
                out_names.insert(name)
            } else {
                names.insert(name)
                    && (!matches!(self.graph[i], Node::Output(_)) || out_names.insert(name))
            };
            if !fresh {
                return Err(CompileError::Invalid {
                    context: format!("node {name}"),
                    message:
                        "the name is used twice (inputs, layers and the output need distinct names)"
                            .into(),
                });
            }
        }
        for &i in &order {
            let node = &self.graph[i];
            let ins = self.inputs_of(i);
            if let (Node::Layer(l), Some(x)) = (node, ins.first()) {
                if x.dtype == DType::I8 && l.in_features != x.shape.c && x.shape.h * x.shape.w == 1
                {
                    let producers = self.producers_of(i);
                    let desc = match &self.graph[producers[0]] {
                        Node::Input(inp) => {
                            format!("the input {}'s {} features", inp.name, inp.shape.c)
                        }
                        Node::Layer(_) => format!("the previous layer's {} outputs", x.shape.c),
                        other => format!("{}'s {} outputs", other.name(), x.shape.c),
                    };
                    return Err(layer_err(
                        &l.name,
                        format!("in_features {} does not match {desc}", l.in_features),
                    ));
                }
            }
            let out = infer(node, &ins)?;
            if out.shape.rows() == 0 || out.shape.c == 0 {
                return Err(layer_err(node.name(), "its output is empty".into()));
            }
            let elems = [out.shape.n, out.shape.h, out.shape.w, out.shape.c]
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d));
            if elems.is_none_or(|e| e > crate::workload::MAX_ELEMENTS) {
                return Err(layer_err(
                    node.name(),
                    format!(
                        "its output {:?} has more elements than a tensor may have ({})",
                        out.dims(),
                        crate::workload::MAX_ELEMENTS
                    ),
                ));
            }
            if let Node::Output(_) = node {
                continue;
            }
            for e in self.graph.edges_directed(i, Direction::Outgoing) {
                let t = &e.weight().tensor;
                if t.shape != out.shape || t.dtype != out.dtype {
                    return Err(layer_err(
                        node.name(),
                        format!(
                            "output tensor {} is {:?} {}, expected {:?} {}",
                            t.name,
                            t.dims(),
                            t.dtype,
                            out.dims(),
                            out.dtype
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Builds a graph node by node by tensor name, inferring every edge (so errors
/// surface at the node that causes them).
#[derive(Debug)]
pub struct GraphBuilder {
    graph: DiGraph<Node, Edge>,
    by_name: std::collections::HashMap<String, (NodeIndex, TensorInfo)>,
    batch: usize,
}

impl GraphBuilder {
    pub fn new(input: InputNode) -> Result<GraphBuilder, CompileError> {
        let info = infer(&Node::Input(input.clone()), &[])?;
        let batch = input.shape.n;
        let mut graph = DiGraph::new();
        let name = input.name.clone();
        let idx = graph.add_node(Node::Input(input));
        let mut by_name = std::collections::HashMap::new();
        by_name.insert(name, (idx, info));
        Ok(GraphBuilder {
            graph,
            by_name,
            batch,
        })
    }

    /// The tensor named `name` so far.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|(_, t)| t)
    }

    /// Adds `node` reading the tensors `inputs` (by producer name); returns its output.
    pub fn add(&mut self, node: Node, inputs: &[&str]) -> Result<TensorInfo, CompileError> {
        let name = node.name().to_string();
        if self.by_name.contains_key(&name) {
            return Err(CompileError::Invalid {
                context: format!("node {name}"),
                message: "the name is used twice (nodes need distinct names)".into(),
            });
        }
        let mut srcs = Vec::new();
        for &i in inputs {
            let (idx, t) = self.by_name.get(i).ok_or_else(|| {
                layer_err(
                    &name,
                    format!("reads `{i}`, which is not the input or an earlier node"),
                )
            })?;
            srcs.push((*idx, t.clone()));
        }
        let refs: Vec<&TensorInfo> = srcs.iter().map(|(_, t)| t).collect();
        let out = infer(&node, &refs)?;
        if out
            .shape
            .n
            .checked_mul(out.shape.h)
            .and_then(|x| x.checked_mul(out.shape.w))
            .and_then(|x| x.checked_mul(out.shape.c))
            .is_none_or(|e| e > crate::workload::MAX_ELEMENTS)
        {
            return Err(layer_err(
                &name,
                format!(
                    "its output {:?} has more elements than a tensor may have ({})",
                    out.dims(),
                    crate::workload::MAX_ELEMENTS
                ),
            ));
        }
        let idx = self.graph.add_node(node);
        for (port, (src, t)) in srcs.into_iter().enumerate() {
            self.graph.add_edge(src, idx, Edge { port, tensor: t });
        }
        self.by_name.insert(name, (idx, out.clone()));
        Ok(out)
    }

    /// Marks the tensor `tensor` as a graph output named `name`.
    pub fn output(&mut self, name: &str, tensor: &str) -> Result<(), CompileError> {
        let (src, t) = self
            .by_name
            .get(tensor)
            .cloned()
            .ok_or_else(|| CompileError::Invalid {
                context: format!("output {name}"),
                message: format!("reads `{tensor}`, which is not the input or a node"),
            })?;
        let idx = self.graph.add_node(Node::Output(OutputNode {
            name: name.to_string(),
        }));
        self.graph.add_edge(src, idx, Edge { port: 0, tensor: t });
        Ok(())
    }

    pub fn finish(self) -> Result<Graph, CompileError> {
        let g = Graph {
            graph: self.graph,
            batch: self.batch,
        };
        g.check_shapes()?;
        Ok(g)
    }
}
