//! The exact CPU reference executor: runs the graph node by node on NHWC
//! tensors with the NPU's integer semantics — int8 x int8 products summed with
//! wrapping int32 arithmetic, the folded bias, and the activation unit's
//! requantisation ([`npukit_sim::act::requantize`]) — directly from the graph,
//! independently of lowering and tiling (no chunks, no super-groups, no panels).
//! Every NPU run is compared with it bit for bit.

use std::collections::HashMap;

use petgraph::graph::NodeIndex;

use crate::graph::{Activation, Conv, Graph, Node, Pool, PoolKind, Shape, TensorMatmul};
use crate::quant::{
    add_requant, avg_requant, conv_requant, lower_layer, tensor_matmul_requant, LoweredLayer,
    LoweredOutput, Quant,
};
use crate::tensor::{Tensor, TensorData};
use crate::CompileError;

/// `acc[m][n] = sum_k x[m][k] * w[k][n]`, wrapping int32.
pub fn matmul_i32(x: &[i8], w: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
    let mut acc = vec![0i32; m * n];
    for i in 0..m {
        let row = &mut acc[i * n..(i + 1) * n];
        for kk in 0..k {
            let a = x[i * k + kk] as i32;
            if a == 0 {
                continue;
            }
            let wrow = &w[kk * n..(kk + 1) * n];
            for (r, &b) in row.iter_mut().zip(wrow) {
                *r = r.wrapping_add(a * b as i32);
            }
        }
    }
    acc
}

/// One lowered layer on an int8 input (`m x k`, row-major).
pub fn run_layer(l: &LoweredLayer, x: &[i8]) -> Tensor {
    let acc = matmul_i32(x, &l.weights, l.m, l.k, l.n);
    let bias = |j: usize| l.bias.as_ref().map_or(0, |b| b[j]);
    let shape = vec![l.m, l.n];
    match l.output {
        LoweredOutput::Int8(rq) => Tensor::i8(
            shape,
            acc.iter()
                .enumerate()
                .map(|(i, &a)| rq.apply(a, bias(i % l.n)))
                .collect(),
        ),
        LoweredOutput::Int32 => Tensor::i32(
            shape,
            acc.iter()
                .enumerate()
                .map(|(i, &a)| a.wrapping_add(bias(i % l.n)))
                .collect(),
        ),
    }
}

fn err(node: &str, m: String) -> CompileError {
    CompileError::Layer {
        layer: node.to_string(),
        message: m,
    }
}

/// The input padded with `pad` on every side it needs: `[n][h + pt + pb][w + pl + pr][c]`.
fn padded(x: &[i8], s: Shape, pads: [usize; 4], pad: i8) -> (Vec<i8>, usize, usize) {
    let (hp, wp) = (s.h + pads[0] + pads[2], s.w + pads[1] + pads[3]);
    let mut out = vec![pad; s.n * hp * wp * s.c];
    for n in 0..s.n {
        for y in 0..s.h {
            let src = ((n * s.h + y) * s.w) * s.c;
            let dst = ((n * hp + y + pads[0]) * wp + pads[1]) * s.c;
            out[dst..dst + s.w * s.c].copy_from_slice(&x[src..src + s.w * s.c]);
        }
    }
    (out, hp, wp)
}

fn conv(
    c: &Conv,
    x: &[i8],
    s: Shape,
    out: Shape,
    zx: i32,
    q: crate::quant::Quant,
) -> Result<Vec<i8>, String> {
    let mut cr = conv_requant(c, q, s.c)?;
    cr.requant.relu = c.act != Activation::None;
    let (xp, hp, wp) = padded(x, s, c.pads, zx as i8);
    let g = c.groups;
    let (cin_g, cout_g) = (s.c / g, c.out_channels / g);
    let [kh, kw] = c.kernel;
    let mut y = vec![0i8; out.elems()];
    let mut acc = vec![0i32; cout_g];
    for n in 0..s.n {
        for oy in 0..out.h {
            for ox in 0..out.w {
                let opix = ((n * out.h + oy) * out.w + ox) * out.c;
                for grp in 0..g {
                    acc.iter_mut().for_each(|a| *a = 0);
                    for ky in 0..kh {
                        let iy = oy * c.stride[0] + ky * c.dilation[0];
                        for kx in 0..kw {
                            let ix = ox * c.stride[1] + kx * c.dilation[1];
                            let xpix = ((n * hp + iy) * wp + ix) * s.c + grp * cin_g;
                            let wbase = ((grp * kh + ky) * kw + kx) * cin_g * cout_g;
                            for ci in 0..cin_g {
                                let a = xp[xpix + ci] as i32;
                                let wrow =
                                    &c.weights[wbase + ci * cout_g..wbase + (ci + 1) * cout_g];
                                for (r, &b) in acc.iter_mut().zip(wrow) {
                                    *r = r.wrapping_add(a * b as i32);
                                }
                            }
                        }
                    }
                    for (j, &a) in acc.iter().enumerate() {
                        let co = grp * cout_g + j;
                        y[opix + co] = cr.channel(co).apply(a, cr.bias[co]);
                    }
                }
            }
        }
    }
    Ok(y)
}

/// A matmul of two tensors, head by head, straight from its definition.
fn tensor_matmul(
    t: &TensorMatmul,
    a: &[i8],
    b: &[i8],
    (sa, sb): (Shape, Shape),
    (qa, qb): (Quant, Quant),
) -> Result<Vec<i8>, String> {
    let rq = tensor_matmul_requant(qa, qb, t)?;
    let h = t.heads;
    let m = sa.rows();
    let k = sa.c / h;
    let n = if t.transpose_b { sb.rows() } else { sb.c / h };
    let cols = n * h;
    let mut y = vec![0i8; m * cols];
    for hd in 0..h {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0i32;
                for kk in 0..k {
                    let x = a[i * sa.c + hd * k + kk] as i32;
                    let w = if t.transpose_b {
                        b[j * sb.c + hd * k + kk]
                    } else {
                        b[kk * sb.c + hd * n + j]
                    } as i32;
                    acc = acc.wrapping_add(x * w);
                }
                y[i * cols + hd * n + j] = rq.apply(acc, 0);
            }
        }
    }
    Ok(y)
}

fn pool(
    p: &Pool,
    x: &[i8],
    s: Shape,
    out: Shape,
    xq: crate::quant::Quant,
    yq: crate::quant::Quant,
) -> Result<Vec<i8>, String> {
    let (kernel, stride, pads) = if p.global {
        ([s.h, s.w], [1, 1], [0; 4])
    } else {
        (p.kernel, p.stride, p.pads)
    };
    let pad = match p.kind {
        PoolKind::Max => -128,
        PoolKind::Avg => xq.zero_point as i8,
    };
    let rq = match p.kind {
        PoolKind::Avg => Some(avg_requant(xq, yq, kernel[0] * kernel[1])?),
        PoolKind::Max => None,
    };
    let (xp, hp, wp) = padded(x, s, pads, pad);
    let mut y = vec![0i8; out.elems()];
    for n in 0..s.n {
        for oy in 0..out.h {
            for ox in 0..out.w {
                for ch in 0..s.c {
                    let mut mx = i8::MIN;
                    let mut sum = 0i32;
                    for ky in 0..kernel[0] {
                        for kx in 0..kernel[1] {
                            let (iy, ix) = (oy * stride[0] + ky, ox * stride[1] + kx);
                            let v = xp[((n * hp + iy) * wp + ix) * s.c + ch];
                            mx = mx.max(v);
                            sum = sum.wrapping_add(v as i32 - xq.zero_point);
                        }
                    }
                    y[((n * out.h + oy) * out.w + ox) * s.c + ch] = match rq {
                        Some(r) => r.apply(sum, 0),
                        None => mx,
                    };
                }
            }
        }
    }
    Ok(y)
}

/// Runs the whole graph; returns the graph outputs as (name, tensor), in the
/// order of the graph's output nodes.
pub fn run_graph(graph: &Graph) -> Result<Vec<(String, Tensor)>, CompileError> {
    graph.check_shapes()?;
    let order = graph.order()?;
    let mut vals: HashMap<NodeIndex, Tensor> = HashMap::new();
    let mut outs = Vec::new();
    for &i in &order {
        let node = &graph.graph[i];
        let name = node.name();
        let ins = graph.inputs_of(i);
        let prods = graph.producers_of(i);
        let data = |k: usize| -> &[i8] {
            match &vals[&prods[k]].data {
                TensorData::I8(v) => v,
                TensorData::I32(_) => &[],
            }
        };
        let out = graph.output_of(i).cloned();
        let dims = out.as_ref().map(|o| o.dims()).unwrap_or_default();
        let t = match node {
            Node::Input(inp) => Tensor::i8(dims, inp.data.clone()),
            Node::Output(_) => {
                let mut t = vals[&prods[0]].clone();
                t.shape = ins[0].dims();
                outs.push((name.to_string(), t));
                continue;
            }
            Node::Layer(l) => {
                let ll = lower_layer(l, graph.batch, ins[0].quant)?;
                let mut t = run_layer(&ll, data(0));
                t.shape = dims;
                t
            }
            Node::TensorMatmul(t) => {
                let y = tensor_matmul(
                    t,
                    data(0),
                    data(1),
                    (ins[0].shape, ins[1].shape),
                    (ins[0].quant, ins[1].quant),
                )
                .map_err(|m| err(name, m))?;
                Tensor::i8(dims, y)
            }
            Node::Conv(c) => {
                let o = out.as_ref().expect("checked: a conv has an output");
                let y = conv(
                    c,
                    data(0),
                    ins[0].shape,
                    o.shape,
                    ins[0].quant.zero_point,
                    ins[0].quant,
                )
                .map_err(|m| err(name, m))?;
                Tensor::i8(dims, y)
            }
            Node::Pool(p) => {
                let o = out.as_ref().expect("checked: a pool has an output");
                let y = pool(p, data(0), ins[0].shape, o.shape, ins[0].quant, o.quant)
                    .map_err(|m| err(name, m))?;
                Tensor::i8(dims, y)
            }
            Node::Add(a) => {
                let (qa, qb) = (ins[0].quant, ins[1].quant);
                let (ma, mb, mut rq) = add_requant(qa, qb, a.output).map_err(|m| err(name, m))?;
                rq.relu = a.act != Activation::None;
                let y = data(0)
                    .iter()
                    .zip(data(1))
                    .map(|(&x, &z)| {
                        let acc = (x as i32 - qa.zero_point) * ma as i32
                            + (z as i32 - qb.zero_point) * mb as i32;
                        rq.apply(acc, 0)
                    })
                    .collect();
                Tensor::i8(dims, y)
            }
            Node::Concat(_) => {
                let o = out.as_ref().expect("checked: a concat has an output");
                let pixels = o.shape.rows();
                let mut y = Vec::with_capacity(o.shape.elems());
                for p in 0..pixels {
                    for (k, t) in ins.iter().enumerate() {
                        let c = t.shape.c;
                        y.extend_from_slice(&data(k)[p * c..(p + 1) * c]);
                    }
                }
                Tensor::i8(dims, y)
            }
            Node::Flatten(_) => Tensor::i8(dims, data(0).to_vec()),
        };
        vals.insert(i, t);
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_by_hand() {
        // [[1, -2], [3, 4]] x [[5, 6, 7], [-128, 1, 0]]
        let x = [1, -2, 3, 4];
        let w = [5, 6, 7, -128, 1, 0];
        assert_eq!(
            matmul_i32(&x, &w, 2, 2, 3),
            vec![5 + 256, 6 - 2, 7, 15 - 512, 18 + 4, 21]
        );
    }

    #[test]
    fn accumulation_wraps() {
        // 2^17 products of (-128 * -128) = 2^14 each -> 2^31 wraps to i32::MIN.
        let k = 1 << 17;
        let x = vec![-128i8; k];
        let w = vec![-128i8; k];
        assert_eq!(matmul_i32(&x, &w, 1, k, 1), vec![i32::MIN]);
    }

    #[test]
    fn padding_by_hand() {
        let s = Shape::nhwc(1, 1, 2, 1);
        let (p, hp, wp) = padded(&[5, 6], s, [1, 0, 0, 1], 9);
        assert_eq!((hp, wp), (2, 3));
        assert_eq!(p, vec![9, 9, 9, 5, 6, 9]);
    }
}
