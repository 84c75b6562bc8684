//! Lowering: graph nodes to *kernels*, the units the code generator tiles.
//!
//! * A dense/matmul layer and a convolution become [`Gemm`]s:
//!   `Y[P x N] = A[P x K] W[K x N]` with `P` the output pixels, `K` the kernel
//!   window (`kh * kw * channels`), `N` the output channels. `A` is never
//!   materialised: its panels are gathered from the input tensor by strided
//!   LOADs, one K chunk at a time ([`Chunk`]: one kernel position and up to
//!   `rows` channels, or — when the input has fewer channels than the array has
//!   rows — several horizontally adjacent kernel positions of all channels).
//!   A dense layer is the 1x1 convolution of a 1x1 image; a dense layer after a
//!   flatten is the convolution whose kernel is the whole image.
//! * Grouped convolutions are cut into *super-groups* of `cols / (out channels
//!   per group)` groups; each super-group is one dense GEMM with block-diagonal
//!   weights (zeros outside its groups), so a depthwise convolution fills the
//!   array's columns with channels instead of using one column.
//! * A matmul of two tensors becomes one [`Gemm`] per head whose weights are
//!   the second tensor ([`TensorWeights`]), gathered from device memory at run
//!   time instead of pre-tiled into the image.
//! * Pooling, add and concat become [`PoolK`], [`AddK`], [`CopyK`].
//!
//! Every tensor lives in device memory as `[ceil(c / pb)][pixels][pb]`
//! (channel panels of `pb = min(c, rows)` channels; graph outputs use one
//! panel, i.e. plain NHWC).

use petgraph::graph::NodeIndex;

use crate::codegen::Im2col;
use crate::graph::{Activation, Graph, Node, PoolKind, Shape};
use crate::quant::{
    add_requant, avg_requant, conv_requant, lower_layer, tensor_matmul_requant, FixedMultiplier,
    LoweredOutput, Quant, Requant,
};
use crate::tensor::DType;
use crate::CompileError;

/// A tensor of the lowered program.
#[derive(Debug, Clone)]
pub(crate) struct TensorDef {
    pub shape: Shape,
    pub dims: Vec<usize>,
    pub dtype: DType,
    pub quant: Quant,
    /// The graph input.
    pub input: bool,
    /// Graph output names that read it.
    pub outputs: Vec<String>,
    /// Stored transposed (`[c][pixels]` row-major) because its only readers
    /// are matmuls `A B^T` that take it as `B`: their weight blocks are then
    /// plain 2-D LOADs, and the producer's STOREs do the transposing.
    pub transposed: bool,
    /// The graph input stored space-to-depth for its only reader, a stride-2
    /// convolution of few channels: `shape` is `n x h/2 x w/2 x 4c`, channel
    /// `(ry * 2 + rx) * c + ch` of pixel `(y, x)` is input pixel
    /// `(2y + ry, 2x + rx)` channel `ch` (`dims` stay the graph's).
    pub space_to_depth: bool,
    /// The graph input stored as the windows of its only reader, a
    /// convolution of fewer channels than the array has rows (see
    /// [`crate::codegen::Im2col`]): `shape` is `n x oh x ow x (kh kw c)`, and
    /// the convolution is a pointwise GEMM on it (`dims` stay the graph's).
    pub im2col: Option<Im2col>,
    /// Stored phase-split because every reader is a stride-2 convolution:
    /// four tensors `n x h/2 x w/2 x c` one after the other, phase
    /// `(y % 2) * 2 + x % 2` holding pixel `(y, x)` at `(y / 2, x / 2)`, so
    /// that each kernel position of a stride-2 window reads one phase with
    /// stride 1 (2-D transfers instead of one DMA row per output pixel). The
    /// writers' STOREs scatter their tiles into the phases.
    pub phase_split: bool,
}

/// The spatial geometry of a gather: input `n x h x w`, output `oh x ow`,
/// kernel, stride, dilation, top/left padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geo {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sy: usize,
    pub sx: usize,
    pub dy: usize,
    pub dx: usize,
    pub pt: usize,
    pub pl: usize,
}

impl Geo {
    /// A dense layer over an `n x h x w` image: one output pixel per image,
    /// the kernel is the whole image (`h = w = 1` for a matrix).
    pub fn dense(n: usize, h: usize, w: usize) -> Geo {
        Geo {
            n,
            h,
            w,
            oh: 1,
            ow: 1,
            kh: h,
            kw: w,
            sy: 1,
            sx: 1,
            dy: 1,
            dx: 1,
            pt: 0,
            pl: 0,
        }
    }

    /// Output pixels.
    pub fn p(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// A 1x1, stride-1, unpadded window: output pixel `p` reads input pixel `p`.
    pub fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sy == 1
            && self.sx == 1
            && self.pt == 0
            && self.pl == 0
            && self.oh == self.h
            && self.ow == self.w
    }
}

/// One K chunk of a GEMM's A operand: kernel row `ky`, kernel columns
/// `kx .. kx + nkx` (`nkx > 1` only when the chunk takes all `cg` channels of
/// adjacent pixels), input channels `c0 .. c0 + w / nkx`; `w` columns of A
/// starting at `k0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub k0: usize,
    pub w: usize,
    pub ky: usize,
    pub kx: usize,
    pub nkx: usize,
    pub c0: usize,
}

/// GEMM weights that are a runtime tensor `t` (the second operand of a matmul
/// of two tensors): `W[k][n] = t[k][col0 + n]`, or, `transposed`,
/// `W[k][n] = t[n][col0 + k]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TensorWeights {
    pub t: usize,
    pub col0: usize,
    pub transposed: bool,
}

/// A GEMM kernel (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Gemm {
    pub x: usize,
    pub y: usize,
    /// First output channel of `y` this GEMM writes.
    pub col0: usize,
    pub geo: Geo,
    pub chunks: Vec<Chunk>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// `k x n` int8, rows in chunk order (empty with `tensor_weights`).
    pub weights: Vec<i8>,
    /// The weights are this runtime tensor, not constants.
    pub tensor_weights: Option<TensorWeights>,
    pub bias: Option<Vec<i32>>,
    pub output: LoweredOutput,
    /// Per-output-channel requantisation (ACT `PER_CHANNEL`): the multiplier
    /// and shift of each of the `n` columns; the output's own multiplier and
    /// shift are then 0.
    pub qtab: Option<Vec<FixedMultiplier>>,
    /// The value of padded input positions (the input zero point).
    pub pad: i8,
    /// `x` is stored phase-split ([`TensorDef::phase_split`]): the stride-2
    /// window reads each kernel position from one phase with stride 1.
    pub x_phases: bool,
}

/// Max or average pooling over one tensor.
#[derive(Debug, Clone)]
pub(crate) struct PoolK {
    pub x: usize,
    pub y: usize,
    pub geo: Geo,
    pub kind: PoolKind,
    pub pad: i8,
    pub zx: i8,
    /// Average pooling: the requantisation of the window sum.
    pub requant: Option<Requant>,
}

/// `y = requant((a - za) * ma + (b - zb) * mb)`.
#[derive(Debug, Clone)]
pub(crate) struct AddK {
    pub a: usize,
    pub b: usize,
    pub y: usize,
    pub za: i8,
    pub zb: i8,
    pub ma: i16,
    pub mb: i16,
    pub requant: Requant,
}

/// Copy all channels of `x` into channels `col0..` of `y`.
#[derive(Debug, Clone)]
pub(crate) struct CopyK {
    pub x: usize,
    pub y: usize,
    pub col0: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Kernel {
    Gemm(Gemm),
    Pool(PoolK),
    Add(AddK),
    Copy(CopyK),
}

impl Kernel {
    /// Tensors read and the tensor written.
    pub fn reads(&self) -> Vec<usize> {
        match self {
            Kernel::Gemm(g) => match g.tensor_weights {
                Some(w) => vec![g.x, w.t],
                None => vec![g.x],
            },
            Kernel::Pool(p) => vec![p.x],
            Kernel::Add(a) => vec![a.a, a.b],
            Kernel::Copy(c) => vec![c.x],
        }
    }

    pub fn writes(&self) -> usize {
        match self {
            Kernel::Gemm(g) => g.y,
            Kernel::Pool(p) => p.y,
            Kernel::Add(a) => a.y,
            Kernel::Copy(c) => c.y,
        }
    }
}

/// A graph operation and its kernels.
#[derive(Debug, Clone)]
pub(crate) struct LoweredNode {
    pub name: String,
    pub op: &'static str,
    pub kernels: Vec<Kernel>,
}

/// The lowered program.
#[derive(Debug, Clone)]
pub(crate) struct Lowered {
    pub tensors: Vec<TensorDef>,
    pub nodes: Vec<LoweredNode>,
    pub input: usize,
    /// (output name, tensor).
    pub outputs: Vec<(String, usize)>,
}

/// The channel panel width of a tensor: `min(c, rows)`, or `c` for a graph
/// output (plain NHWC).
pub(crate) fn panel_width(t: &TensorDef, rows: usize) -> usize {
    if !t.outputs.is_empty() || t.dtype == DType::I32 {
        t.shape.c
    } else {
        t.shape.c.min(rows)
    }
}

/// Whether convolution `c` on an input of shape `x` reads it space-to-depth
/// (see [`TensorDef::space_to_depth`]): stride 2, no dilation or groups, a
/// window of at least 2x2, even height and width, and 4x the channels within
/// one K chunk of the array's `rows`.
fn space_to_depth_fits(c: &crate::graph::Conv, x: Shape, rows: usize) -> bool {
    c.stride == [2, 2]
        && c.dilation == [1, 1]
        && c.groups == 1
        && c.kernel[0] >= 2
        && c.kernel[1] >= 2
        && x.h.is_multiple_of(2)
        && x.w.is_multiple_of(2)
        && 4 * x.c <= rows
}

/// Whether convolution `c` from an input of shape `x` to one of shape `y`
/// reads it im2col (see [`TensorDef::im2col`]), and how: no groups, a window
/// of more than one pixel, fewer channels than `rows` (the gathers would move
/// a few bytes per output pixel), every input pixel in some window (so each
/// element has a place to be written to and read back from), and the windows
/// at most 16 times the input's bytes.
fn im2col_fits(
    c: &crate::graph::Conv,
    x: Shape,
    y: Shape,
    zero_point: i8,
    rows: usize,
) -> Option<Im2col> {
    let w = Im2col {
        out: [y.h, y.w],
        kernel: c.kernel,
        stride: c.stride,
        dilation: c.dilation,
        pads: [c.pads[0], c.pads[1]],
        pad: zero_point,
    };
    let k = c.kernel[0] * c.kernel[1];
    let fits = c.groups == 1
        && k > 1
        && x.c < rows
        && y.h * y.w * k <= 16 * x.h * x.w
        && (0..x.h).all(|v| w.covering(0, v).is_some())
        && (0..x.w).all(|v| w.covering(1, v).is_some());
    fits.then_some(w)
}

/// K chunks of convolution `c` on input `x` read space-to-depth.
fn space_to_depth_chunks(c: &crate::graph::Conv, x: Shape, rows: usize) -> usize {
    let (_, kh) = space_to_depth_dim(c.pads[0], c.kernel[0]);
    let (_, kw) = space_to_depth_dim(c.pads[1], c.kernel[1]);
    let geo = Geo {
        n: 1,
        h: 1,
        w: 1,
        oh: 1,
        ow: 1,
        kh,
        kw,
        sy: 1,
        sx: 1,
        dy: 1,
        dx: 1,
        pt: 0,
        pl: 0,
    };
    chunks(&geo, 0, 4 * x.c, (4 * x.c).min(rows), rows).len()
}

/// A stride-2 window of `k` taps with `p` leading padding, on the
/// space-to-depth grid: its leading padding and taps.
fn space_to_depth_dim(p: usize, k: usize) -> (usize, usize) {
    let p2 = p.div_ceil(2);
    let last = (k as i64 - 1 - p as i64).div_euclid(2);
    (p2, (last + p2 as i64 + 1).max(1) as usize)
}

fn act_relu(a: Activation) -> bool {
    a != Activation::None
}

/// K chunks of a window over channels `cbase .. cbase + cg` of an input with
/// panels of `pb` channels, for an array of `rows` rows.
fn chunks(geo: &Geo, cbase: usize, cg: usize, pb: usize, rows: usize) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut k0 = 0;
    let whole_panel = cg == pb && cbase.is_multiple_of(pb);
    if cg < rows && whole_panel && geo.dx == 1 && geo.kw > 1 {
        let per = rows / cg;
        for ky in 0..geo.kh {
            let mut kx = 0;
            while kx < geo.kw {
                let nkx = per.min(geo.kw - kx);
                out.push(Chunk {
                    k0,
                    w: nkx * cg,
                    ky,
                    kx,
                    nkx,
                    c0: cbase,
                });
                k0 += nkx * cg;
                kx += nkx;
            }
        }
        return out;
    }
    for ky in 0..geo.kh {
        for kx in 0..geo.kw {
            let mut c = cbase;
            while c < cbase + cg {
                let panel_end = (c / pb + 1) * pb;
                let end = (cbase + cg).min(panel_end).min(c + rows);
                out.push(Chunk {
                    k0,
                    w: end - c,
                    ky,
                    kx,
                    nkx: 1,
                    c0: c,
                });
                k0 += end - c;
                c = end;
            }
        }
    }
    out
}

/// GEMM weights (`k x n`, chunk order) from a function giving the weight of
/// (kernel row, kernel column, input channel relative to the GEMM's first, output column).
fn gemm_weights(
    ch: &[Chunk],
    cbase: usize,
    cg: usize,
    n: usize,
    w: impl Fn(usize, usize, usize, usize) -> i8,
) -> Vec<i8> {
    let k: usize = ch.iter().map(|c| c.w).sum();
    let mut out = vec![0i8; k * n];
    for c in ch {
        for e in 0..c.w {
            let (kx, ci) = if c.nkx > 1 {
                (c.kx + e / cg, e % cg)
            } else {
                (c.kx, c.c0 - cbase + e)
            };
            let row = &mut out[(c.k0 + e) * n..(c.k0 + e + 1) * n];
            for (j, v) in row.iter_mut().enumerate() {
                *v = w(c.ky, kx, ci, j);
            }
        }
    }
    out
}

/// Lowers a shape-checked graph for an array of `rows x cols`.
pub(crate) fn lower_graph(
    graph: &Graph,
    rows: usize,
    cols: usize,
) -> Result<Lowered, CompileError> {
    graph.check_shapes()?;
    let order = graph.order()?;
    let mut tensors: Vec<TensorDef> = Vec::new();
    let mut tid: std::collections::HashMap<NodeIndex, usize> = Default::default();
    let mut nodes = Vec::new();
    let mut outputs = Vec::new();
    let mut input = 0;
    // Every node's output tensor (aliases for flatten of 1x1 images).
    for &i in &order {
        let node = &graph.graph[i];
        match node {
            Node::Output(o) => {
                let src = tid[&graph.producers_of(i)[0]];
                tensors[src].outputs.push(o.name.clone());
                outputs.push((o.name.clone(), src));
                continue;
            }
            Node::Flatten(_) => {
                let x = graph.producers_of(i)[0];
                let xt = graph.inputs_of(i)[0];
                if xt.shape.h * xt.shape.w == 1 {
                    tid.insert(i, tid[&x]);
                    let t = &mut tensors[tid[&x]];
                    t.dims = vec![t.shape.n, t.shape.c];
                    continue;
                }
            }
            _ => {}
        }
        let Some(out) = graph.output_of(i) else {
            continue;
        };
        tid.insert(i, tensors.len());
        if matches!(node, Node::Input(_)) {
            input = tensors.len();
        }
        tensors.push(TensorDef {
            shape: out.shape,
            dims: out.dims(),
            dtype: out.dtype,
            quant: out.quant,
            input: matches!(node, Node::Input(_)),
            outputs: Vec::new(),
            transposed: false,
            space_to_depth: false,
            im2col: None,
            phase_split: false,
        });
    }
    // A stride-2 convolution of few channels on the graph input reads it
    // space-to-depth: a stride-1 window of 4x the channels, gathered with
    // 2-D transfers instead of one DMA row per output pixel.
    for &i in &order {
        if !matches!(graph.graph[i], Node::Input(_)) {
            continue;
        }
        if let [c] = graph.consumers_of(i)[..] {
            let t = &mut tensors[tid[&i]];
            if let Node::Conv(cv) = &graph.graph[c] {
                let ys = graph
                    .output_of(c)
                    .expect("a convolution has an output")
                    .shape;
                let windows = im2col_fits(cv, t.shape, ys, t.quant.zero_point as i8, rows);
                // Both fit: the one with fewer K chunks (folds per tile and
                // N chunk), space-to-depth on a tie (a smaller input).
                let s2d = space_to_depth_fits(cv, t.shape, rows)
                    && windows.is_none_or(|_| {
                        let k = cv.kernel[0] * cv.kernel[1] * t.shape.c;
                        k.div_ceil(rows) >= space_to_depth_chunks(cv, t.shape, rows)
                    });
                if s2d {
                    t.shape = Shape {
                        h: t.shape.h / 2,
                        w: t.shape.w / 2,
                        c: 4 * t.shape.c,
                        ..t.shape
                    };
                    t.space_to_depth = true;
                } else if let Some(w) = windows {
                    t.shape = Shape {
                        h: w.out[0],
                        w: w.out[1],
                        c: w.kernel[0] * w.kernel[1] * t.shape.c,
                        ..t.shape
                    };
                    t.im2col = Some(w);
                }
            }
        }
    }
    let pbs: Vec<usize> = (0..tensors.len())
        .map(|t| panel_width(&tensors[t], rows))
        .collect();
    for &i in &order {
        let node = &graph.graph[i];
        let ins = graph.inputs_of(i);
        let prods = graph.producers_of(i);
        let err = |m: String| CompileError::Layer {
            layer: node.name().to_string(),
            message: m,
        };
        let kernels = match node {
            Node::Input(_) | Node::Output(_) => continue,
            Node::Flatten(_) => {
                if tid.get(&i) == tid.get(&prods[0]) {
                    continue;
                }
                // A flatten of an image is read by its dense consumers directly.
                let cons = graph.consumers_of(i);
                if cons
                    .iter()
                    .any(|&c| !matches!(graph.graph[c], Node::Layer(_)))
                {
                    return Err(err(
                        "a flatten of an image (h x w > 1) can only feed dense layers".into(),
                    ));
                }
                continue;
            }
            Node::Layer(l) => {
                // Reads either a matrix, or (through a flatten) an image.
                let (x, xs) = match &graph.graph[prods[0]] {
                    Node::Flatten(_)
                        if tid.get(&prods[0]) != tid.get(&graph.producers_of(prods[0])[0]) =>
                    {
                        let src = graph.producers_of(prods[0])[0];
                        (tid[&src], graph.inputs_of(prods[0])[0].shape)
                    }
                    _ => (tid[&prods[0]], ins[0].shape),
                };
                let ll = lower_layer(l, graph.batch, ins[0].quant)?;
                let geo = Geo::dense(xs.n, xs.h, xs.w);
                let cg = xs.c;
                let ch = chunks(&geo, 0, cg, pbs[x], rows);
                let n = l.out_features;
                let weights = gemm_weights(&ch, 0, cg, n, |ky, kx, ci, j| {
                    ll.weights[((ky * xs.w + kx) * cg + ci) * n + j]
                });
                vec![Kernel::Gemm(Gemm {
                    x,
                    y: tid[&i],
                    col0: 0,
                    geo,
                    m: xs.n,
                    k: ll.k,
                    n,
                    chunks: ch,
                    weights,
                    tensor_weights: None,
                    bias: ll.bias,
                    output: ll.output,
                    qtab: None,
                    pad: 0,
                    x_phases: false,
                })]
            }
            Node::TensorMatmul(t) => {
                let (a, b) = (tid[&prods[0]], tid[&prods[1]]);
                let rq = tensor_matmul_requant(ins[0].quant, ins[1].quant, t).map_err(err)?;
                let (k, n) = t.head_dims(ins[0], ins[1]);
                let m = ins[0].shape.n;
                let geo = Geo::dense(m, 1, 1);
                (0..t.heads)
                    .map(|h| {
                        let ch = chunks(&geo, h * k, k, pbs[a], rows);
                        Kernel::Gemm(Gemm {
                            x: a,
                            y: tid[&i],
                            col0: h * n,
                            geo,
                            chunks: ch,
                            m,
                            k,
                            n,
                            weights: Vec::new(),
                            tensor_weights: Some(TensorWeights {
                                t: b,
                                col0: if t.transpose_b { h * k } else { h * n },
                                transposed: t.transpose_b,
                            }),
                            bias: None,
                            output: LoweredOutput::Int8(rq),
                            qtab: None,
                            pad: 0,
                            x_phases: false,
                        })
                    })
                    .collect()
            }
            Node::Conv(c) => {
                let x = tid[&prods[0]];
                let xs = ins[0].shape;
                let ys = tensors[tid[&i]].shape;
                let cr = conv_requant(c, ins[0].quant, xs.c).map_err(err)?;
                let (bias, rq) = (&cr.bias, cr.requant);
                // The GEMM of output channels col0 .. col0 + n.
                let conv_gemm = |geo: Geo, ch: Vec<Chunk>, col0: usize, n: usize, weights| {
                    Kernel::Gemm(Gemm {
                        x,
                        y: tid[&i],
                        col0,
                        geo,
                        m: geo.p(),
                        k: ch.iter().map(|c| c.w).sum(),
                        n,
                        chunks: ch,
                        weights,
                        tensor_weights: None,
                        bias: Some(bias[col0..col0 + n].to_vec()),
                        output: LoweredOutput::Int8(Requant {
                            relu: act_relu(c.act),
                            ..rq
                        }),
                        qtab: cr.per_channel.as_ref().map(|t| t[col0..col0 + n].to_vec()),
                        pad: ins[0].quant.zero_point as i8,
                        x_phases: false,
                    })
                };
                if tensors[x].im2col.is_some() {
                    // A pointwise GEMM over the stored windows: column
                    // `(ky * kw + kx) * cin + ci` is weight row
                    // `(ky * kw + kx) * cin + ci` (groups are 1).
                    let (k, n) = (tensors[x].shape.c, c.out_channels);
                    let geo = Geo {
                        n: xs.n,
                        h: ys.h,
                        w: ys.w,
                        oh: ys.h,
                        ow: ys.w,
                        kh: 1,
                        kw: 1,
                        sy: 1,
                        sx: 1,
                        dy: 1,
                        dx: 1,
                        pt: 0,
                        pl: 0,
                    };
                    let ch = chunks(&geo, 0, k, pbs[x], rows);
                    let weights = gemm_weights(&ch, 0, k, n, |_, _, ci, j| c.weights[ci * n + j]);
                    vec![conv_gemm(geo, ch, 0, n, weights)]
                } else if tensors[x].space_to_depth {
                    let (pt, kh) = space_to_depth_dim(c.pads[0], c.kernel[0]);
                    let (pl, kw) = space_to_depth_dim(c.pads[1], c.kernel[1]);
                    let geo = Geo {
                        n: xs.n,
                        h: xs.h / 2,
                        w: xs.w / 2,
                        oh: ys.h,
                        ow: ys.w,
                        kh,
                        kw,
                        sy: 1,
                        sx: 1,
                        dy: 1,
                        dx: 1,
                        pt,
                        pl,
                    };
                    let (cin, n) = (xs.c, c.out_channels);
                    let ch = chunks(&geo, 0, 4 * cin, pbs[x], rows);
                    // Kernel position (ky', kx'), channel (ry * 2 + rx) * cin + ci
                    // of the space-to-depth window is original kernel position
                    // (2 (ky' - pt') + ry + pt, ...), zero outside the kernel.
                    let orig = |k2: usize, r: usize, p2: usize, p: usize, k: usize| {
                        let v = 2 * k2 as i64 + r as i64 - 2 * p2 as i64 + p as i64;
                        (0..k as i64).contains(&v).then_some(v as usize)
                    };
                    let weights = gemm_weights(&ch, 0, 4 * cin, n, |ky2, kx2, ci, j| {
                        let (q, cc) = (ci / cin, ci % cin);
                        match (
                            orig(ky2, q / 2, pt, c.pads[0], c.kernel[0]),
                            orig(kx2, q % 2, pl, c.pads[1], c.kernel[1]),
                        ) {
                            (Some(ky), Some(kx)) => {
                                c.weights[((ky * c.kernel[1] + kx) * cin + cc) * n + j]
                            }
                            _ => 0,
                        }
                    });
                    vec![conv_gemm(geo, ch, 0, n, weights)]
                } else {
                    let geo = Geo {
                        n: xs.n,
                        h: xs.h,
                        w: xs.w,
                        oh: ys.h,
                        ow: ys.w,
                        kh: c.kernel[0],
                        kw: c.kernel[1],
                        sy: c.stride[0],
                        sx: c.stride[1],
                        dy: c.dilation[0],
                        dx: c.dilation[1],
                        pt: c.pads[0],
                        pl: c.pads[1],
                    };
                    let g = c.groups;
                    let cin_g = xs.c / g;
                    let cout_g = c.out_channels / g;
                    // Groups per super-group: fill the array's columns.
                    let sg = if g == 1 {
                        1
                    } else {
                        (cols / cout_g).clamp(1, g)
                    };
                    let [kh, kw] = c.kernel;
                    let mut ks = Vec::new();
                    let mut g0 = 0;
                    while g0 < g {
                        let gs = sg.min(g - g0);
                        let cbase = g0 * cin_g;
                        let cg = gs * cin_g;
                        let n = gs * cout_g;
                        let ch = chunks(&geo, cbase, cg, pbs[x], rows);
                        let weights = gemm_weights(&ch, cbase, cg, n, |ky, kx, ci, j| {
                            let (gi, cig) = (ci / cin_g, ci % cin_g);
                            let (gj, coj) = (j / cout_g, j % cout_g);
                            if gi != gj {
                                return 0;
                            }
                            let grp = g0 + gi;
                            c.weights[(((grp * kh + ky) * kw + kx) * cin_g + cig) * cout_g + coj]
                        });
                        ks.push(conv_gemm(geo, ch, g0 * cout_g, n, weights));
                        g0 += gs;
                    }
                    ks
                }
            }
            Node::Pool(p) => {
                let x = tid[&prods[0]];
                let xs = ins[0].shape;
                let ys = tensors[tid[&i]].shape;
                let (kernel, stride, pads) = if p.global {
                    ([xs.h, xs.w], [1, 1], [0; 4])
                } else {
                    (p.kernel, p.stride, p.pads)
                };
                let geo = Geo {
                    n: xs.n,
                    h: xs.h,
                    w: xs.w,
                    oh: ys.h,
                    ow: ys.w,
                    kh: kernel[0],
                    kw: kernel[1],
                    sy: stride[0],
                    sx: stride[1],
                    dy: 1,
                    dx: 1,
                    pt: pads[0],
                    pl: pads[1],
                };
                let xq = ins[0].quant;
                let (pad, requant) = match p.kind {
                    PoolKind::Max => (-128, None),
                    PoolKind::Avg => {
                        let yq = tensors[tid[&i]].quant;
                        let rq = avg_requant(xq, yq, kernel[0] * kernel[1]).map_err(err)?;
                        (xq.zero_point as i8, Some(rq))
                    }
                };
                vec![Kernel::Pool(PoolK {
                    x,
                    y: tid[&i],
                    geo,
                    kind: p.kind,
                    pad,
                    zx: xq.zero_point as i8,
                    requant,
                })]
            }
            Node::Add(a) => {
                let (qa, qb) = (ins[0].quant, ins[1].quant);
                let (ma, mb, mut rq) = add_requant(qa, qb, a.output).map_err(err)?;
                rq.relu = act_relu(a.act);
                let (ta, tb) = (tid[&prods[0]], tid[&prods[1]]);
                let y = tid[&i];
                if pbs[ta] != pbs[tb] {
                    return Err(err(
                        "an add whose two inputs have different channel layouts (one of them is a \
                         graph output) is not supported"
                            .into(),
                    ));
                }
                vec![Kernel::Add(AddK {
                    a: ta,
                    b: tb,
                    y,
                    za: qa.zero_point as i8,
                    zb: qb.zero_point as i8,
                    ma,
                    mb,
                    requant: rq,
                })]
            }
            Node::Concat(_) => {
                let mut col0 = 0;
                let mut ks = Vec::new();
                for (p, t) in prods.iter().zip(&ins) {
                    ks.push(Kernel::Copy(CopyK {
                        x: tid[p],
                        y: tid[&i],
                        col0,
                    }));
                    col0 += t.shape.c;
                }
                ks
            }
        };
        nodes.push(LoweredNode {
            name: node.name().to_string(),
            op: node.op(),
            kernels,
        });
    }
    // The second operands of `A B^T`: stored transposed, which only works if
    // a kernel of the graph writes them and nothing else reads them.
    for n in &nodes {
        for k in &n.kernels {
            let Kernel::Gemm(Gemm {
                tensor_weights: Some(w),
                ..
            }) = k
            else {
                continue;
            };
            if !w.transposed || tensors[w.t].transposed {
                continue;
            }
            let t = &tensors[w.t];
            let other = nodes.iter().flat_map(|m| &m.kernels).find(|k2| {
                k2.reads().contains(&w.t)
                    && !matches!(k2, Kernel::Gemm(Gemm { x, tensor_weights: Some(w2), .. })
                        if *x != w.t && w2.t == w.t && w2.transposed)
            });
            let why = if t.input {
                Some("it is the graph input".to_string())
            } else if !t.outputs.is_empty() {
                Some("it is a graph output".to_string())
            } else {
                other.map(|_| {
                    "another operation reads it too (only matmuls A B^T may read it)".to_string()
                })
            };
            if let Some(why) = why {
                return Err(CompileError::Layer {
                    layer: n.name.clone(),
                    message: format!(
                        "the transposed operand B of A B^T is stored transposed by the operation \
                         that writes it, and {why}"
                    ),
                });
            }
            tensors[w.t].transposed = true;
        }
    }
    // Phase-split tensors: every reader a stride-2 convolution whose K
    // chunks are one kernel position each (the adjacent positions of a
    // multi-position chunk fall into different phases), every writer a GEMM,
    // an add or a concat (their STOREs go through one path that scatters).
    let fits = |t: usize, d: &TensorDef| {
        if d.input
            || !d.outputs.is_empty()
            || d.transposed
            || d.dtype != DType::I8
            || d.shape.h < 2
            || d.shape.w < 2
            || !d.shape.h.is_multiple_of(2)
            || !d.shape.w.is_multiple_of(2)
        {
            return false;
        }
        let ks = || nodes.iter().flat_map(|n| &n.kernels);
        let mut readers = ks().filter(|k| k.reads().contains(&t)).peekable();
        if readers.peek().is_none() {
            return false;
        }
        let readers_fit = readers.all(|k| match k {
            Kernel::Gemm(g) => {
                g.x == t
                    && g.tensor_weights.is_none()
                    && (g.geo.sy, g.geo.sx, g.geo.dy, g.geo.dx) == (2, 2, 1, 1)
                    && (g.geo.h, g.geo.w) == (d.shape.h, d.shape.w)
                    && g.chunks.iter().all(|c| c.nkx == 1)
            }
            _ => false,
        });
        readers_fit
            && ks()
                .filter(|k| k.writes() == t)
                .all(|k| matches!(k, Kernel::Gemm(_) | Kernel::Add(_) | Kernel::Copy(_)))
    };
    let split: Vec<bool> = tensors
        .iter()
        .enumerate()
        .map(|(t, d)| fits(t, d))
        .collect();
    for (d, &s) in tensors.iter_mut().zip(&split) {
        d.phase_split = s;
    }
    for k in nodes.iter_mut().flat_map(|n| &mut n.kernels) {
        if let Kernel::Gemm(g) = k {
            g.x_phases = split[g.x];
        }
    }
    Ok(Lowered {
        tensors,
        nodes,
        input,
        outputs,
    })
}
