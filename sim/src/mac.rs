//! The MAC array: `rows` x `cols` int8 x int8 -> int32 processing elements.
//! A MATMUL computes `OUT[M x N] (+)= A[M x K] * W[K x N]` with K <= rows and
//! N <= cols under both dataflows; only its timing differs (docs/timing.md,
//! rule C1):
//!
//! * weight-stationary (C1a): K weight rows are shifted in, M activation rows
//!   stream through with a skew of one cycle per row and column, and partial
//!   sums flow down into the accumulator memory: `2R + C + M - 2` cycles;
//! * weight-stationary with a second weight bank (C1b): the weight load may
//!   start before the MATMUL issues, `max(1, R - lead) + R + C + M - 2` cycles
//!   where `lead` is how many cycles before the issue the load started;
//! * output-stationary (C1c): `ceil(M / R)` output tiles every `max(R, C)`
//!   cycles, `ceil(M / R) * max(R, C) + R + C + 1` cycles.
//!
//! The data result is computed in bulk at completion.

use npukit_abi::desc::Matmul;

use crate::config::{ArrayParams, Dataflow};
use crate::spad::LocalMem;

/// C1a: cycles from issue to completion of a weight-stationary MATMUL
/// streaming `m` rows (no weight double-buffering).
pub fn matmul_latency(rows: u32, cols: u32, m: u32) -> u64 {
    2 * rows as u64 + cols as u64 + m as u64 - 2
}

/// C1b: latency of a weight-stationary MATMUL with weight double-buffering
/// whose weight load started `lead` cycles before its issue (0: in its issue
/// cycle). `lead >= rows - 1` hides the load completely: `R + C + M - 1`.
pub fn matmul_latency_db(rows: u32, cols: u32, m: u32, lead: u64) -> u64 {
    let r = rows as u64;
    r.saturating_sub(lead).max(1) + r + cols as u64 + m as u64 - 2
}

/// C1c: latency of an output-stationary MATMUL streaming `m` rows.
pub fn matmul_latency_os(rows: u32, cols: u32, m: u32) -> u64 {
    let (r, c) = (rows as u64, cols as u64);
    (m as u64).div_ceil(r) * r.max(c) + r + c + 1
}

/// C1 for an array configuration: the latency of a MATMUL streaming `m` rows
/// whose weight load (double-buffering only) started `lead` cycles before it
/// issued; `lead` is ignored without double-buffering.
pub fn fold_latency(a: &ArrayParams, m: u32, lead: u64) -> u64 {
    match (a.dataflow, a.weight_double_buffer) {
        (Dataflow::OutputStationary, _) => matmul_latency_os(a.rows, a.cols, m),
        (Dataflow::WeightStationary, true) => matmul_latency_db(a.rows, a.cols, m, lead),
        (Dataflow::WeightStationary, false) => matmul_latency(a.rows, a.cols, m),
    }
}

/// Useful multiply-accumulates of a MATMUL.
pub fn matmul_macs(op: &Matmul) -> u64 {
    op.m as u64 * op.k as u64 * op.n as u64
}

/// `OUT[M x N] (+)= A[M x K] * W[K x N]`, int8 inputs, int32 wrapping accumulation.
///
/// W is widened to int16 once per MATMUL (an int8 product fits int16 exactly), so the inner loop over a row of W is
/// a plain multiply-add the compiler vectorises (the model's hot spot on
/// compute-bound runs).
pub fn matmul(mem: &mut LocalMem, op: &Matmul) {
    let (m, k, n) = (op.m as usize, op.k as usize, op.n as usize);
    if n == 0 {
        return;
    }
    let (a0, w0, out0) = (op.a as usize, op.w as usize, op.out as usize);
    // int8 x int8 fits int16 exactly (|product| <= 2^14).
    let w: Vec<i16> = mem.spad[w0..w0 + k * n]
        .iter()
        .map(|&v| v as i8 as i16)
        .collect();
    let mut row = vec![0i32; n];
    for i in 0..m {
        row.fill(0);
        let a = &mem.spad[a0 + i * k..a0 + (i + 1) * k];
        for (&av, wr) in a.iter().zip(w.chunks_exact(n)) {
            let av = av as i8 as i16;
            for (r, &wv) in row.iter_mut().zip(wr) {
                *r = r.wrapping_add((av * wv) as i32);
            }
        }
        let out = &mut mem.acc[out0 + i * n * 4..out0 + (i + 1) * n * 4];
        for (o, &v) in out.chunks_exact_mut(4).zip(&row) {
            let v = if op.accumulate {
                i32::from_le_bytes([o[0], o[1], o[2], o[3]]).wrapping_add(v)
            } else {
                v
            };
            o.copy_from_slice(&v.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_formula() {
        // 16x16 array streaming 16 rows: 16 + 15 + 15 + 16.
        assert_eq!(matmul_latency(16, 16, 16), 62);
        assert_eq!(matmul_latency(4, 8, 1), 2 * 4 + 8 + 1 - 2);
        // Double-buffered: no lead is C1a; a lead of R - 1 or more hides the load.
        for lead in 0..20 {
            let want = 16u64.saturating_sub(lead).max(1) + 16 + 16 + 16 - 2;
            assert_eq!(matmul_latency_db(16, 16, 16, lead), want);
        }
        assert_eq!(matmul_latency_db(16, 16, 16, 0), 62);
        assert_eq!(matmul_latency_db(16, 16, 16, 15), 16 + 16 + 16 - 1);
        // Output-stationary 16x16, 16 rows: one tile of 16 cycles, + 16 + 16 + 1.
        assert_eq!(matmul_latency_os(16, 16, 16), 49);
        assert_eq!(matmul_latency_os(16, 16, 17), 2 * 16 + 33);
        assert_eq!(matmul_latency_os(4, 8, 1), 8 + 4 + 8 + 1);
    }

    #[test]
    fn small_product() {
        let mut mem = LocalMem::new(64, 64);
        // A = [[1, -2], [3, 4]] ; W = [[5, 6, 7], [-128, 1, 0]]
        mem.spad[0..4].copy_from_slice(&[1, (-2i8) as u8, 3, 4]);
        mem.spad[16..22].copy_from_slice(&[5, 6, 7, 128, 1, 0]);
        let op = Matmul {
            a: 0,
            w: 16,
            out: 0,
            m: 2,
            k: 2,
            n: 3,
            accumulate: false,
        };
        matmul(&mut mem, &op);
        let got: Vec<i32> = (0..6).map(|i| mem.acc_get(4 * i)).collect();
        assert_eq!(got, vec![5 + 256, 6 - 2, 7, 15 - 512, 18 + 4, 21]);
        matmul(
            &mut mem,
            &Matmul {
                accumulate: true,
                ..op
            },
        );
        assert_eq!(mem.acc_get(0), 2 * (5 + 256));
    }
}
