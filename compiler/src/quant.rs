//! Quantisation: per-tensor affine parameters, the float -> fixed-point
//! multiplier conversion, and the lowering of a layer to the integer form both
//! the NPU program and the CPU reference execute.
//!
//! A quantised tensor stores `q` (int8) for the real value `scale * (q - zero_point)`.
//! A dense layer `y = x W + b` with input `(sx, zx)`, symmetric weights
//! `(sw, 0)`, int32 bias `b` in units of `sx * sw`, and output `(sy, zy)` becomes,
//! per output element,
//!
//! ```text
//! acc   = sum_k x[m][k] * w[k][n]                 (int8 x int8 -> int32, wrapping)
//! b'[n] = b[n] - zx * sum_k w[k][n]               (bias folded with the input zero point)
//! y     = requantize(acc, b'[n], multiplier, shift, zy, relu)
//! ```
//!
//! where `requantize` is the activation unit's formula
//! ([`npukit_sim::act::requantize`]: saturate `acc + b'` to int32, multiply by
//! `multiplier` in 64 bits, rounding right shift by `shift` (half up), add `zy`,
//! clamp to `[zy if relu else -128, 127]`), and `(multiplier, shift)` is
//! [`quantize_multiplier`] of `sx * sw / sy`. An int32 output skips the
//! requantisation: `y = b'[n] + acc` (wrapping), in units of `sx * sw`.

use crate::graph::{Graph, Layer, OutputKind};
use crate::CompileError;

/// Per-tensor affine quantisation: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quant {
    pub scale: f64,
    pub zero_point: i32,
}

impl Default for Quant {
    fn default() -> Self {
        Quant {
            scale: 1.0,
            zero_point: 0,
        }
    }
}

/// A real multiplier in the activation unit's fixed-point form: it stands for
/// `multiplier * 2^-shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedMultiplier {
    pub multiplier: i32,
    pub shift: u8,
}

impl FixedMultiplier {
    /// The real value the pair stands for.
    pub fn to_f64(self) -> f64 {
        self.multiplier as f64 * (-(self.shift as f64)).exp2()
    }
}

/// The largest shift the activation unit takes.
pub const MAX_SHIFT: u8 = 62;

/// Converts a positive real multiplier to `(multiplier, shift)` with
/// `multiplier * 2^-shift ~= real`, as precisely as the activation unit allows.
///
/// The conversion, exactly (all steps are exact in f64 except the one rounding):
/// 1. write `real = q * 2^e` with `q` in `[0.5, 1)` (frexp);
/// 2. `multiplier = round(q * 2^31)` (round half away from zero), so
///    `multiplier` is in `[2^30, 2^31]`; if it is `2^31`, halve it and add 1 to `e`;
/// 3. `shift = 31 - e`.
/// 4. If `shift > 62` (real below about `2^-31`), use `shift = 62` and
///    `multiplier = round(real * 2^62)`, losing precision; a multiplier that
///    rounds to 0 is an error (every output would be the zero point).
///
/// `real` must be finite and positive; `shift < 0` (real of `2^31` or more) is
/// an error. The relative error of the result is below `2^-31` in the normal range.
pub fn quantize_multiplier(real: f64) -> Result<FixedMultiplier, String> {
    if !real.is_finite() || real <= 0.0 {
        return Err(format!(
            "requantisation multiplier {real} must be a positive finite number"
        ));
    }
    if !real.is_normal() {
        return Err(format!(
            "requantisation multiplier {real:e} is too small to represent"
        ));
    }
    // frexp: real = q * 2^e, q in [0.5, 1).
    let bits = real.to_bits();
    let biased = ((bits >> 52) & 0x7FF) as i32;
    let e = biased - 1022;
    let q = f64::from_bits((bits & !(0x7FFu64 << 52)) | (1022u64 << 52));
    debug_assert!((0.5..1.0).contains(&q));
    let mut m = (q * 2f64.powi(31)).round() as i64;
    let mut e = e;
    if m == 1i64 << 31 {
        m /= 2;
        e += 1;
    }
    let shift = 31 - e;
    if shift < 0 {
        return Err(format!(
            "requantisation multiplier {real} is too large (at most 2^31 - 1)"
        ));
    }
    if shift > MAX_SHIFT as i32 {
        let m = (real * 2f64.powi(MAX_SHIFT as i32)).round() as i64;
        if m == 0 {
            return Err(format!(
                "requantisation multiplier {real:e} is too small (below 2^-63): every output would be the zero point"
            ));
        }
        return Ok(FixedMultiplier {
            multiplier: m as i32,
            shift: MAX_SHIFT,
        });
    }
    Ok(FixedMultiplier {
        multiplier: m as i32,
        shift: shift as u8,
    })
}

/// The requantisation of one layer: the ACT descriptor's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: u8,
    pub zero_point: i8,
    pub relu: bool,
}

impl Requant {
    /// One output value: the activation unit's formula, bit for bit.
    pub fn apply(&self, acc: i32, bias: i32) -> i8 {
        npukit_sim::act::requantize(
            acc,
            bias,
            self.multiplier,
            self.shift,
            self.zero_point,
            self.relu,
        )
    }
}

/// What a lowered layer produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoweredOutput {
    /// int8 through the activation unit.
    Int8(Requant),
    /// Raw int32 accumulators (plus the folded bias).
    Int32,
}

/// A layer in the integer form the NPU executes (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct LoweredLayer {
    pub name: String,
    /// Rows (batch), reduction depth (in features), output columns (out features).
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// `k x n` int8, row-major.
    pub weights: Vec<i8>,
    /// The folded bias `b'` (`n` values), or `None` when it is all zero because
    /// the layer has no bias and the input zero point is 0.
    pub bias: Option<Vec<i32>>,
    pub output: LoweredOutput,
}

impl LoweredLayer {
    pub fn macs(&self) -> u64 {
        (self.m * self.k * self.n) as u64
    }
}

/// The folded bias `b'[j] = b[j] - zx * colsums[j]` (`b` all zero when not
/// given), checked to fit int32.
fn fold_bias(
    given: Option<&[i32]>,
    zx: i64,
    colsums: impl IntoIterator<Item = i64>,
) -> Result<Vec<i32>, String> {
    colsums
        .into_iter()
        .enumerate()
        .map(|(j, colsum)| {
            let given = given.map_or(0, |b| b[j] as i64);
            let v = given - zx * colsum;
            i32::try_from(v).map_err(|_| {
                format!(
                    "bias[{j}] folded with the input zero point ({given} - {zx} * {colsum}) overflows int32"
                )
            })
        })
        .collect()
}

/// The fixed-point form of the requantisation multiplier `sx * sw / sy`.
fn scale_multiplier(sx: f64, sw: f64, sy: f64) -> Result<FixedMultiplier, String> {
    quantize_multiplier(sx * sw / sy)
        .map_err(|e| format!("{e} (input scale {sx} * weight scale {sw} / output scale {sy})"))
}

/// Lowers one layer whose input has quantisation `input`.
pub fn lower_layer(
    layer: &Layer,
    batch: usize,
    input: Quant,
) -> Result<LoweredLayer, CompileError> {
    let err = |message: String| CompileError::Layer {
        layer: layer.name.clone(),
        message,
    };
    let (k, n) = (layer.in_features, layer.out_features);
    let zx = input.zero_point as i64;
    let bias = if layer.bias.is_some() || zx != 0 {
        let colsums = (0..n).map(|j| (0..k).map(|i| layer.weights[i * n + j] as i64).sum());
        Some(fold_bias(layer.bias.as_deref(), zx, colsums).map_err(err)?)
    } else {
        None
    };
    let output = match layer.output {
        OutputKind::Int32 => LoweredOutput::Int32,
        OutputKind::Int8(q) => {
            let fm =
                scale_multiplier(input.scale, layer.weight_quant.scale, q.scale).map_err(err)?;
            LoweredOutput::Int8(Requant {
                multiplier: fm.multiplier,
                shift: fm.shift,
                zero_point: q.zero_point as i8,
                relu: layer.relu,
            })
        }
    };
    Ok(LoweredLayer {
        name: layer.name.clone(),
        m: batch,
        k,
        n,
        weights: layer.weights.clone(),
        bias,
        output,
    })
}

/// Lowers every layer of a (shape-checked) graph, in chain order.
pub fn lower(graph: &Graph) -> Result<Vec<LoweredLayer>, CompileError> {
    graph
        .layers()?
        .into_iter()
        .map(|(layer, input)| lower_layer(layer, graph.batch, input.quant))
        .collect()
}

/// A convolution's folded bias (`b'[co] = b[co] - zx * sum of its weights`,
/// one per output channel) and requantisation (`sx * sw / sy`, ReLU not set):
/// one multiplier for the tensor, or one per output channel when the weight
/// scales differ between channels.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvRequant {
    pub bias: Vec<i32>,
    /// Zero point, and (per tensor) the multiplier and shift; with
    /// `per_channel` its multiplier and shift are 0.
    pub requant: Requant,
    /// Per output channel: the multiplier and shift of `sx * sw[co] / sy`.
    pub per_channel: Option<Vec<FixedMultiplier>>,
}

impl ConvRequant {
    /// The requantisation of output channel `co`.
    pub fn channel(&self, co: usize) -> Requant {
        match &self.per_channel {
            Some(t) => Requant {
                multiplier: t[co].multiplier,
                shift: t[co].shift,
                ..self.requant
            },
            None => self.requant,
        }
    }
}

/// The [`ConvRequant`] of convolution `c` on an input with quantisation
/// `input` and `cin` channels.
pub fn conv_requant(
    c: &crate::graph::Conv,
    input: Quant,
    cin: usize,
) -> Result<ConvRequant, String> {
    let g = c.groups;
    let (cin_g, cout_g) = (cin / g, c.out_channels / g);
    let window = c.kernel[0] * c.kernel[1] * cin_g;
    let colsums = (0..c.out_channels).map(|co| {
        let base = (co / cout_g) * window * cout_g;
        (0..window)
            .map(|r| c.weights[base + r * cout_g + co % cout_g] as i64)
            .sum()
    });
    let bias = fold_bias(c.bias.as_deref(), input.zero_point as i64, colsums)?;
    let (sx, sy) = (input.scale, c.output.scale);
    let zero_point = c.output.zero_point as i8;
    let sw = &c.weight_scales;
    if sw.iter().all(|&s| s == sw[0]) {
        let fm = scale_multiplier(sx, sw[0], sy)?;
        return Ok(ConvRequant {
            bias,
            requant: Requant {
                multiplier: fm.multiplier,
                shift: fm.shift,
                zero_point,
                relu: false,
            },
            per_channel: None,
        });
    }
    let table = sw
        .iter()
        .enumerate()
        .map(|(co, &s)| {
            scale_multiplier(sx, s, sy).map_err(|e| format!("output channel {co}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ConvRequant {
        bias,
        requant: Requant {
            multiplier: 0,
            shift: 0,
            zero_point,
            relu: false,
        },
        per_channel: Some(table),
    })
}

/// A matmul of two tensors (`a`, `b` with zero point 0, checked by the
/// shape pass): `y = requantize(sum a * b, 0, sa * sb / sy)`.
pub fn tensor_matmul_requant(
    a: Quant,
    b: Quant,
    t: &crate::graph::TensorMatmul,
) -> Result<Requant, String> {
    let real = a.scale * b.scale / t.output.scale;
    let fm = quantize_multiplier(real).map_err(|e| {
        format!(
            "{e} (input scales {} * {} / output scale {})",
            a.scale, b.scale, t.output.scale
        )
    })?;
    Ok(Requant {
        multiplier: fm.multiplier,
        shift: fm.shift,
        zero_point: t.output.zero_point as i8,
        relu: t.relu,
    })
}

/// Average pooling: the window sum of `x - zx` times `sx / (sy * count)`.
pub fn avg_requant(x: Quant, y: Quant, count: usize) -> Result<Requant, String> {
    let real = x.scale / (y.scale * count as f64);
    let fm = quantize_multiplier(real).map_err(|e| {
        format!(
            "{e} (input scale {} / (output scale {} * {count} window elements))",
            x.scale, y.scale
        )
    })?;
    Ok(Requant {
        multiplier: fm.multiplier,
        shift: fm.shift,
        zero_point: y.zero_point as i8,
        relu: false,
    })
}

/// Fixed-point scale of the larger add operand (its multiplier is `2^14`).
pub const ADD_ONE: f64 = 16384.0;

/// The add `y = zy + (sa (a - za) + sb (b - zb)) / sy` in the NPU's integers:
/// `acc = (a - za) * ma + (b - zb) * mb` (ADD, i16 multipliers, the larger
/// operand's ratio scaled to `2^14`), then `requantize(acc)` with the
/// multiplier `max(sa, sb) / (sy * 2^14)` (ACT). Against the float definition
/// (ONNX QLinearAdd, round half to even) it differs by at most one step of the
/// output (tested in `tests/quant.rs`).
pub fn add_requant(a: Quant, b: Quant, y: Quant) -> Result<(i16, i16, Requant), String> {
    let (ra, rb) = (a.scale / y.scale, b.scale / y.scale);
    let rmax = ra.max(rb);
    let ma = (ra / rmax * ADD_ONE).round();
    let mb = (rb / rmax * ADD_ONE).round();
    if ma < 1.0 || mb < 1.0 {
        return Err(format!(
            "input scales {} and {} differ by more than 2^14; the add would ignore one input",
            a.scale, b.scale
        ));
    }
    let fm = quantize_multiplier(rmax / ADD_ONE).map_err(|e| {
        format!(
            "{e} (input scale {} / output scale {})",
            a.scale.max(b.scale),
            y.scale
        )
    })?;
    Ok((
        ma as i16,
        mb as i16,
        Requant {
            multiplier: fm.multiplier,
            shift: fm.shift,
            zero_point: y.zero_point as i8,
            relu: false,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplier_examples() {
        // 0.5 = 0.5 * 2^0 -> 2^30 >> 31
        assert_eq!(
            quantize_multiplier(0.5),
            Ok(FixedMultiplier {
                multiplier: 1 << 30,
                shift: 31
            })
        );
        // 1.0 = 0.5 * 2^1 -> 2^30 >> 30
        assert_eq!(
            quantize_multiplier(1.0),
            Ok(FixedMultiplier {
                multiplier: 1 << 30,
                shift: 30
            })
        );
        // 0.75 * 2^-8: q = 0.75, e = -8 -> 0.75 * 2^31 = 1610612736, shift 31 + 8
        assert_eq!(
            quantize_multiplier(0.75 / 256.0),
            Ok(FixedMultiplier {
                multiplier: 1_610_612_736,
                shift: 39
            })
        );
        // q rounding up to 2^31 renormalises.
        let just_below_one = 1.0 - 2f64.powi(-40);
        assert_eq!(
            quantize_multiplier(just_below_one),
            Ok(FixedMultiplier {
                multiplier: 1 << 30,
                shift: 30
            })
        );
        for real in [1e-3, 0.0123, 0.3, 1.7, 123.456, 1e6] {
            let fm = quantize_multiplier(real).unwrap();
            assert!((fm.to_f64() / real - 1.0).abs() < 1e-9, "{real} {fm:?}");
            assert!(fm.multiplier >= 1 << 30, "{real} {fm:?}");
        }
    }

    #[test]
    fn multiplier_limits() {
        assert!(quantize_multiplier(0.0).is_err());
        assert!(quantize_multiplier(-1.0).is_err());
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(f64::INFINITY).is_err());
        assert!(quantize_multiplier(2f64.powi(31)).is_err());
        let big = quantize_multiplier(2f64.powi(31) - 1.0).unwrap();
        assert_eq!(big.shift, 0);
        // Tiny multipliers fall back to shift 62.
        let tiny = quantize_multiplier(2f64.powi(-40)).unwrap();
        assert_eq!(
            tiny,
            FixedMultiplier {
                multiplier: 1 << 22,
                shift: 62
            }
        );
        assert!(quantize_multiplier(2f64.powi(-70)).is_err());
    }

    #[test]
    fn requantize_by_hand() {
        // multiplier 0.5 (2^30 >> 31): 5 * 0.5 = 2.5 -> 3 (half up), + zp 10 = 13
        let r = Requant {
            multiplier: 1 << 30,
            shift: 31,
            zero_point: 10,
            relu: false,
        };
        assert_eq!(r.apply(5, 0), 13);
        // -5 * 0.5 = -2.5 -> -2 (half up), + 10 = 8
        assert_eq!(r.apply(-5, 0), 8);
        // bias added before scaling: (3 + 4) * 0.5 = 3.5 -> 4, + 10
        assert_eq!(r.apply(3, 4), 14);
        // saturation at 127 and -128
        assert_eq!(r.apply(1000, 0), 127);
        assert_eq!(r.apply(-1000, 0), -128);
        // ReLU clamps at the zero point
        let relu = Requant { relu: true, ..r };
        assert_eq!(relu.apply(-100, 0), 10);
        assert_eq!(relu.apply(7, 0), 14);
        // multiplier 0.75/256: 1000 * 0.0029296875 = 2.9296875 -> 3
        let fm = quantize_multiplier(0.75 / 256.0).unwrap();
        let r = Requant {
            multiplier: fm.multiplier,
            shift: fm.shift,
            zero_point: 0,
            relu: false,
        };
        assert_eq!(r.apply(1000, 0), 3);
        assert_eq!(r.apply(-1000, 0), -3);
        // 512 * 0.0029296875 = 1.5 exactly -> 2 (half up); -1.5 -> -1
        assert_eq!(r.apply(512, 0), 2);
        assert_eq!(r.apply(-512, 0), -1);
    }
}
