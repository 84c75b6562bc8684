//! The activation unit: requantisation (ACT) and the element-wise ops (ADD, MAX),
//! `cols` lanes wide (one lane per array column).
//!
//! Timing (docs/timing.md, rules C2-C3): ACT on a rows x cols block completes
//! `rows * ceil(cols / lanes) + 2` cycles after issue; ADD and MAX on `len`
//! elements `ceil(len / lanes) + 2` cycles after issue (2 = read and write stages).
//!
//! Requantisation, exactly: `x = sat32(acc + bias)`; `p = x * multiplier` (64-bit);
//! `r = floor((p + 2^(shift-1)) / 2^shift)` (rounds half up; `r = p` when shift is
//! 0); `y = clamp(r + zero_point, lo, 127)` with `lo = zero_point` under ReLU and
//! -128 otherwise. With `PER_CHANNEL` the multiplier and shift of column `j`
//! come from the table entry at accumulator address `qtab + 8 * j` (shift =
//! bits 7:0 of its second word). `r` is exact for every shift 0..=255: a
//! descriptor's own shift is at most 62, but a table's is data and is not
//! checked; since `|p| <= 2^62`, shifts of 64 and more give `r = 0`.

use npukit_abi::desc::{Act, Add, Max, QuantEntry, QTAB_ENTRY_BYTES};

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

/// The rounding right shift `floor((p + 2^(shift-1)) / 2^shift)`, exact for
/// any shift (`p` itself for 0).
pub fn round_shift(p: i64, shift: u8) -> i64 {
    match shift {
        0 => p,
        // No overflow: |p| <= 2^62 for any product of two i32.
        1..=62 => (p + (1i64 << (shift - 1))) >> shift,
        // 2^62 + 2^62 needs one more bit.
        63 => ((p as i128 + (1i128 << 62)) >> 63) as i64,
        // p + 2^(shift-1) lies in (0, 2^shift) for every |p| <= 2^62.
        _ => 0,
    }
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
    let r = round_shift(x * multiplier as i64, shift);
    let lo = if relu { zero_point as i64 } else { -128 };
    (r.saturating_add(zero_point as i64)).clamp(lo, 127) as i8
}

/// The multiplier and shift of output column `j` of an ACT.
fn column_scale(mem: &LocalMem, op: &Act, j: usize) -> (i32, u8) {
    match op.qtab {
        None => (op.multiplier, op.shift),
        Some(q) => {
            let a = q as usize + QTAB_ENTRY_BYTES as usize * j;
            let e = QuantEntry {
                multiplier: mem.acc_get(a),
                shift: mem.acc_get(a + 4) as u32,
            };
            (e.multiplier, e.effective_shift())
        }
    }
}

pub fn act(mem: &mut LocalMem, op: &Act) {
    let (rows, cols) = (op.rows as usize, op.cols as usize);
    for j in 0..cols {
        let bias = op.bias.map_or(0, |b| mem.acc_get(b as usize + 4 * j));
        let (multiplier, shift) = column_scale(mem, op, j);
        for i in 0..rows {
            let acc = mem.acc_get(op.src as usize + 4 * (i * cols + j));
            let y = requantize(acc, bias, multiplier, shift, op.zero_point, op.relu);
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

    /// The rounding shift against a reference in i128 arithmetic, for every
    /// shift a table can hold, at the extremes of the product.
    #[test]
    fn round_shift_is_exact_for_every_shift() {
        let ps = [
            0i64,
            1,
            -1,
            3,
            -3,
            1 << 62,
            -(1 << 62) + (1 << 31),
            (i32::MAX as i64) * (i32::MAX as i64),
            (i32::MIN as i64) * (i32::MAX as i64),
            123_456_789_012,
            -987_654_321_098,
        ];
        for s in 0..=255u8 {
            for &p in &ps {
                let want = if s == 0 {
                    p as i128
                } else {
                    // floor division by 2^s in i128 (s <= 126 fits; larger gives 0 or -1
                    // by sign, and the sum is always positive then).
                    let sum = p as i128 + (1i128 << (s.min(126) - 1));
                    if s > 126 {
                        0
                    } else {
                        sum >> s
                    }
                };
                assert_eq!(round_shift(p, s) as i128, want, "p={p} s={s}");
            }
        }
        assert_eq!(round_shift(1 << 62, 63), 1);
        assert_eq!(round_shift((1 << 62) - 1, 63), 0);
        assert_eq!(round_shift(-(1 << 62) + (1 << 31), 63), 0);
        // Large shifts leave only the zero point.
        assert_eq!(requantize(i32::MIN, 0, i32::MIN, 200, -5, false), -5);
        assert_eq!(requantize(-7, 0, 1, 64, 9, true), 9);
    }

    #[test]
    fn per_channel_act_uses_each_columns_entry() {
        let mut mem = LocalMem::new(64, 256);
        // 2 x 3 accumulators at 0, table at 64 (3 entries), bias at 96.
        let acc = [100, -100, 7, 1000, 50, -7];
        for (i, v) in acc.iter().enumerate() {
            mem.acc_set(4 * i, *v);
        }
        let tab = [
            QuantEntry {
                multiplier: 1,
                shift: 1,
            },
            QuantEntry {
                multiplier: 3,
                shift: 0xFFFF_FF00,
            }, // bits 7:0 = 0
            QuantEntry {
                multiplier: -2,
                shift: 300,
            }, // bits 7:0 = 44
        ];
        for (j, e) in tab.iter().enumerate() {
            mem.acc[64 + 8 * j..72 + 8 * j].copy_from_slice(&e.to_bytes());
        }
        for j in 0..3 {
            mem.acc_set(96 + 4 * j, j as i32);
        }
        let op = Act {
            src: 0,
            dst: 8,
            bias: Some(96),
            rows: 2,
            cols: 3,
            zero_point: 1,
            qtab: Some(64),
            ..Default::default()
        };
        act(&mut mem, &op);
        let want: Vec<u8> = (0..6)
            .map(|k| {
                let (i, j) = (k / 3, k % 3);
                let _ = i;
                let (m, s) = (tab[j].multiplier, tab[j].shift as u8);
                requantize(acc[k], j as i32, m, s, 1, false) as u8
            })
            .collect();
        assert_eq!(&mem.spad[8..14], &want[..]);
        // Column 0: (100 + 0) * 1 >> 1 = 50 (+1); column 1: (-100 + 1) * 3 = -297 -> -128.
        assert_eq!(mem.spad[8] as i8, 51);
        assert_eq!(mem.spad[9] as i8, -128);
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
