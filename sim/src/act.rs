//! The activation unit: requantisation (ACT) and the element-wise ops (ADD, MAX),
//! `cols` lanes wide (one lane per array column).
//!
//! Timing (docs/timing.md, rules C2-C3): ACT on a rows x cols block completes
//! `rows * ceil(cols / lanes) + 2` cycles after issue; ADD and MAX on `len`
//! elements `ceil(len / lanes) + 2` cycles after issue (2 = read and write stages).
//!
//! Requantisation, exactly: `x = sat32(acc + bias)`; `p = x * multiplier` (64-bit);
//! `r = (p + 2^(shift-1)) >> shift` (arithmetic shift, rounds half up; `r = p` when
//! shift is 0); `y = clamp(r + zero_point, lo, 127)` with `lo = zero_point` under
//! ReLU and -128 otherwise.

use npukit_abi::desc::{Act, Add, Max};

use crate::spad::LocalMem;

/// Pipeline stages of the activation unit beyond one cycle per lane group.
pub const ACT_PIPELINE: u64 = 2;

fn groups(n: u64, lanes: u32) -> u64 {
    n.div_ceil(lanes as u64)
}

pub fn act_latency(lanes: u32, op: &Act) -> u64 {
    op.rows as u64 * groups(op.cols as u64, lanes) + ACT_PIPELINE
}

pub fn elementwise_latency(lanes: u32, len: u32) -> u64 {
    groups(len as u64, lanes) + ACT_PIPELINE
}

/// One requantised value (see the module docs).
pub fn requantize(
    acc: i32,
    bias: i32,
    multiplier: i32,
    shift: u8,
    zero_point: i8,
    relu: bool,
) -> i8 {
    let x = (acc as i64 + bias as i64).clamp(i32::MIN as i64, i32::MAX as i64);
    let p = x * multiplier as i64;
    let r = if shift == 0 {
        p
    } else {
        (p + (1i64 << (shift - 1))) >> shift
    };
    let lo = if relu { zero_point as i64 } else { -128 };
    (r.saturating_add(zero_point as i64)).clamp(lo, 127) as i8
}

pub fn act(mem: &mut LocalMem, op: &Act) {
    let (rows, cols) = (op.rows as usize, op.cols as usize);
    for i in 0..rows {
        for j in 0..cols {
            let acc = mem.acc_get(op.src as usize + 4 * (i * cols + j));
            let bias = op.bias.map_or(0, |b| mem.acc_get(b as usize + 4 * j));
            let y = requantize(acc, bias, op.multiplier, op.shift, op.zero_point, op.relu);
            mem.spad[op.dst as usize + i * cols + j] = y as u8;
        }
    }
}

pub fn add(mem: &mut LocalMem, op: &Add) {
    for i in 0..op.len as usize {
        let a = (mem.spad_i8(op.a as usize + i) as i32 - op.a_zp as i32) * op.a_mult as i32;
        let b = (mem.spad_i8(op.b as usize + i) as i32 - op.b_zp as i32) * op.b_mult as i32;
        let addr = op.dst as usize + 4 * i;
        let v = if op.accumulate {
            mem.acc_get(addr).wrapping_add(a + b)
        } else {
            a + b
        };
        mem.acc_set(addr, v);
    }
}

pub fn max(mem: &mut LocalMem, op: &Max) {
    for i in 0..op.len as usize {
        let v = mem
            .spad_i8(op.a as usize + i)
            .max(mem.spad_i8(op.b as usize + i));
        mem.spad[op.dst as usize + i] = v as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requantize_rounds_half_up_and_saturates() {
        // 3 * 1 >> 1 = 1.5 -> 2 ; -3 >> 1 = -1.5 -> -1 (half up)
        assert_eq!(requantize(3, 0, 1, 1, 0, false), 2);
        assert_eq!(requantize(-3, 0, 1, 1, 0, false), -1);
        assert_eq!(requantize(1000, 0, 1, 0, 0, false), 127);
        assert_eq!(requantize(-1000, 0, 1, 0, 0, false), -128);
        assert_eq!(requantize(-5, 0, 1, 0, 3, true), 3);
        assert_eq!(requantize(i32::MAX, i32::MAX, i32::MIN, 62, 0, false), -1);
        // bias saturates before the multiply
        assert_eq!(requantize(i32::MAX, 1, 1, 31, 0, false), 1);
    }

    #[test]
    fn latencies() {
        let op = Act {
            rows: 3,
            cols: 17,
            ..Default::default()
        };
        assert_eq!(act_latency(16, &op), 3 * 2 + 2);
        assert_eq!(elementwise_latency(16, 32), 4);
        assert_eq!(elementwise_latency(16, 33), 5);
    }
}
