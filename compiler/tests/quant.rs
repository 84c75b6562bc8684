//! The fixed-point requantisation against the float definitions ONNX uses
//! (QLinearConv/QLinearMatMul/QLinearAdd, DequantizeLinear -> op ->
//! QuantizeLinear): `y = saturate(round_half_even(real) + zy)`. The NPU rounds
//! half up and uses a 31-bit multiplier (16-bit input multipliers for add);
//! the results differ by at most one quantisation step, and agree exactly
//! away from ties (tested exhaustively over the int8 inputs for random scales).
#![allow(clippy::unwrap_used)]

use npukit_compiler::quant::{add_requant, quantize_multiplier, Quant, Requant};
use npukit_compiler::workload::random_values;

fn onnx_round(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 {
        2.0 * (x / 2.0).round()
    } else {
        r
    }
}

fn sat(x: f64) -> i32 {
    x.clamp(-128.0, 127.0) as i32
}

#[test]
fn add_is_within_one_step_of_qlinearadd() {
    let r = random_values(3, 1, 1_000_000, 300);
    let mut exact = 0u64;
    let mut total = 0u64;
    for t in 0..100 {
        let sa = r[3 * t] as f64 * 1e-7;
        let sb = r[3 * t + 1] as f64 * 1e-7;
        let sy = (sa + sb) * (0.3 + r[3 * t + 2] as f64 * 1e-6);
        let (za, zb, zy) = (
            (t as i32 % 7) * 9 - 30,
            -(t as i32 % 5) * 11,
            (t as i32 % 3) * 20 - 128,
        );
        let (ma, mb, mut rq) = add_requant(
            Quant {
                scale: sa,
                zero_point: za,
            },
            Quant {
                scale: sb,
                zero_point: zb,
            },
            Quant {
                scale: sy,
                zero_point: zy,
            },
        )
        .unwrap();
        rq.relu = false;
        for a in -128..=127i32 {
            for b in -128..=127i32 {
                let acc = (a - za) * ma as i32 + (b - zb) * mb as i32;
                let npu = rq.apply(acc, 0) as i32;
                let float =
                    sat(onnx_round((sa * (a - za) as f64 + sb * (b - zb) as f64) / sy) + zy as f64);
                assert!(
                    (npu - float).abs() <= 1,
                    "sa {sa} sb {sb} sy {sy} a {a} b {b}: {npu} vs {float}"
                );
                exact += u64::from(npu == float);
                total += 1;
            }
        }
    }
    // Differences are the rare near-ties, not a bias.
    assert!(exact as f64 / total as f64 > 0.99, "{exact} of {total}");
}

#[test]
fn conv_requantisation_is_within_one_step_of_qlinearconv() {
    let r = random_values(5, 1, 1_000_000, 200);
    for t in 0..100 {
        let real = r[2 * t] as f64 * 1e-9 + 1e-6;
        let zy = (t as i32 % 11) * 20 - 100;
        let fm = quantize_multiplier(real).unwrap();
        let rq = Requant {
            multiplier: fm.multiplier,
            shift: fm.shift,
            zero_point: zy as i8,
            relu: false,
        };
        let bias = r[2 * t + 1] as i32 - 500_000;
        for k in 0..20_000i32 {
            let acc = (k - 10_000) * 97 * (t as i32 + 1);
            let npu = rq.apply(acc, bias) as i32;
            let float = sat(onnx_round((acc as f64 + bias as f64) * real) + zy as f64);
            assert!(
                (npu - float).abs() <= 1,
                "real {real} acc {acc}: {npu} vs {float}"
            );
        }
    }
}
