//! The exact CPU reference executor: runs the lowered layers (see
//! [`crate::quant`]) with the NPU's integer semantics — int8 x int8 products
//! summed with wrapping int32 arithmetic, the folded bias, and the activation
//! unit's requantisation ([`npukit_sim::act::requantize`]) — independently of any
//! tiling. Every NPU run is compared with it bit for bit.

use crate::graph::Graph;
use crate::quant::{lower, LoweredLayer, LoweredOutput};
use crate::tensor::Tensor;
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

/// Runs the whole graph; returns the graph outputs as (name, tensor).
pub fn run_graph(graph: &Graph) -> Result<Vec<(String, Tensor)>, CompileError> {
    graph.check_shapes()?;
    let lowered = lower(graph)?;
    let mut x = graph.input()?.data.clone();
    let mut last = None;
    for l in &lowered {
        let y = run_layer(l, &x);
        if let crate::tensor::TensorData::I8(v) = &y.data {
            x = v.clone();
        }
        last = Some(y);
    }
    let out = graph.outputs()?;
    let y = last.ok_or_else(|| CompileError::Internal("graph without layers".into()))?;
    Ok(vec![(out[0].name.clone(), y)])
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
}
