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

/// Columns per block of the data path in [`matmul_with`].
const LANES: usize = 8;

/// `OUT[M x N] (+)= A[M x K] * W[K x N]`, int8 inputs, int32 wrapping accumulation.
pub fn matmul(mem: &mut LocalMem, op: &Matmul) {
    matmul_with(mem, op, &mut MatmulBuf::default());
}

/// [`matmul`] with reusable buffers for the widened operands (the model keeps
/// one, so a MATMUL allocates nothing once the buffers have grown).
///
/// Operands are widened to int16 once per MATMUL (an int8 product fits int16
/// exactly). W is cut into blocks of [`LANES`] columns, zero-padded past `N`,
/// with the rows of each pair `2p, 2p + 1` interleaved column by column (row
/// `K` is zero when `K` is odd); each output block is summed over the pairs in
/// registers, two products per lane and step (the shape of SSE2's
/// multiply-add of int16 pairs). This is the model's hot spot on compute-bound
/// runs.
pub fn matmul_with(mem: &mut LocalMem, op: &Matmul, buf: &mut MatmulBuf) {
    let (m, k, n) = (op.m as usize, op.k as usize, op.n as usize);
    if n == 0 || k == 0 {
        if k == 0 && !op.accumulate {
            // An empty sum: zero outputs.
            let out0 = op.out as usize;
            mem.acc[out0..out0 + m * n * 4].fill(0);
        }
        return;
    }
    let (a0, w0, out0) = (op.a as usize, op.w as usize, op.out as usize);
    let nb = n.div_ceil(LANES);
    let kp = k.div_ceil(2);
    let spad = &mem.spad;
    // w[b * kp + p][2 * j + h] = W[2p + h][b * LANES + j], zero outside W.
    let w = &mut buf.w;
    w.clear();
    w.resize(nb * kp, [0; 2 * LANES]);
    for (b, wb) in w.chunks_exact_mut(kp).enumerate() {
        let (c0, cn) = (b * LANES, LANES.min(n - b * LANES));
        for (kk, dst) in (0..k).step_by(2).zip(wb) {
            let r0 = &spad[w0 + kk * n + c0..][..cn];
            for (d, &v) in dst.chunks_exact_mut(2).zip(r0) {
                d[0] = v as i8 as i16;
            }
            if kk + 1 < k {
                let r1 = &spad[w0 + (kk + 1) * n + c0..][..cn];
                for (d, &v) in dst.chunks_exact_mut(2).zip(r1) {
                    d[1] = v as i8 as i16;
                }
            }
        }
    }
    let a = &mut buf.a;
    a.clear();
    a.resize(kp, 0);
    let row = &mut buf.row;
    row.clear();
    row.resize(nb * LANES, 0);
    for i in 0..m {
        // This row of A in pairs, widened (the last one padded with zero).
        let arow = &spad[a0 + i * k..a0 + (i + 1) * k];
        let pairs = arow.chunks_exact(2);
        if let (Some(&v), Some(d)) = (pairs.remainder().first(), a.last_mut()) {
            *d = pack_pair(v, 0);
        }
        for (d, p) in a.iter_mut().zip(pairs) {
            *d = pack_pair(p[0], p[1]);
        }
        for (wb, rb) in w.chunks_exact(kp).zip(row.chunks_exact_mut(LANES)) {
            rb.copy_from_slice(&block_sum(a, wb));
        }
        let out = &mut mem.acc[out0 + i * n * 4..out0 + (i + 1) * n * 4];
        if op.accumulate {
            for (o, &v) in out.chunks_exact_mut(4).zip(row.iter()) {
                let v = i32::from_le_bytes([o[0], o[1], o[2], o[3]]).wrapping_add(v);
                o.copy_from_slice(&v.to_le_bytes());
            }
        } else {
            for (o, &v) in out.chunks_exact_mut(4).zip(row.iter()) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// Two int8 values of A widened to int16 and packed into one 32-bit word
/// (`lo` in bits 15:0), as SSE2's multiply-add of int16 pairs takes them.
#[inline]
fn pack_pair(lo: u8, hi: u8) -> u32 {
    (lo as i8 as i16 as u16 as u32) | (hi as i8 as i16 as u16 as u32) << 16
}

/// One block of [`LANES`] output columns of one row of A (`a`, in packed
/// pairs): the sum over the row pairs of the block `w`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn block_sum(a: &[u32], w: &[[i16; 2 * LANES]]) -> [i32; LANES] {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_loadu_si128, _mm_madd_epi16, _mm_set1_epi32, _mm_setzero_si128,
        _mm_storeu_si128,
    };
    let mut sum = [0i32; LANES];
    // SAFETY: SSE2 is part of the x86_64 baseline, so every intrinsic here
    // is available; the loads read the 32 bytes of one `wp`, the stores
    // write the 32 bytes of `sum` (unaligned forms).
    unsafe {
        let mut lo = _mm_setzero_si128();
        let mut hi = _mm_setzero_si128();
        for (&ap, wp) in a.iter().zip(w) {
            let pair = _mm_set1_epi32(ap as i32);
            let p = wp.as_ptr().cast::<__m128i>();
            // Lane j: a[2p] * W[2p][j] + a[2p + 1] * W[2p + 1][j] (exact).
            lo = _mm_add_epi32(lo, _mm_madd_epi16(pair, _mm_loadu_si128(p)));
            hi = _mm_add_epi32(hi, _mm_madd_epi16(pair, _mm_loadu_si128(p.add(1))));
        }
        let p = sum.as_mut_ptr().cast::<__m128i>();
        _mm_storeu_si128(p, lo);
        _mm_storeu_si128(p.add(1), hi);
    }
    sum
}

/// One block of [`LANES`] output columns (portable form of the SSE2 one).
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn block_sum(a: &[u32], w: &[[i16; 2 * LANES]]) -> [i32; LANES] {
    let mut sum = [0i32; LANES];
    for (&ap, wp) in a.iter().zip(w) {
        let (a0, a1) = (ap as u16 as i16 as i32, (ap >> 16) as u16 as i16 as i32);
        for (j, s) in sum.iter_mut().enumerate() {
            let p = a0 * wp[2 * j] as i32 + a1 * wp[2 * j + 1] as i32;
            *s = s.wrapping_add(p);
        }
    }
    sum
}

/// Scratch space of [`matmul_with`].
#[derive(Debug, Clone, Default)]
pub struct MatmulBuf {
    w: Vec<[i16; 2 * LANES]>,
    a: Vec<u32>,
    row: Vec<i32>,
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

    /// The blocked data path against the definition, on random shapes.
    #[test]
    fn blocked_matches_definition() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut rnd = |bound: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % bound
        };
        let mut buf = MatmulBuf::default();
        for _ in 0..200 {
            let (m, k, n) = (1 + rnd(20), 1 + rnd(33), 1 + rnd(40));
            let op = Matmul {
                a: rnd(64) as u32,
                w: 1024 + rnd(64) as u32,
                out: 4 * rnd(64) as u32,
                m: m as u16,
                k: k as u16,
                n: n as u16,
                accumulate: rnd(2) == 1,
            };
            let mut mem = LocalMem::new(4096, 16384);
            mem.spad.iter_mut().for_each(|b| *b = rnd(256) as u8);
            mem.acc.iter_mut().for_each(|b| *b = rnd(256) as u8);
            let mut want = mem.clone();
            let (m, k, n) = (m as usize, k as usize, n as usize);
            for i in 0..m {
                for j in 0..n {
                    let mut s = 0i32;
                    for kk in 0..k {
                        let a = want.spad_i8(op.a as usize + i * k + kk) as i32;
                        let w = want.spad_i8(op.w as usize + kk * n + j) as i32;
                        s = s.wrapping_add(a * w);
                    }
                    let o = op.out as usize + 4 * (i * n + j);
                    let prev = if op.accumulate { want.acc_get(o) } else { 0 };
                    want.acc_set(o, prev.wrapping_add(s));
                }
            }
            matmul_with(&mut mem, &op, &mut buf);
            assert_eq!(mem, want, "{op:?}");
        }
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
