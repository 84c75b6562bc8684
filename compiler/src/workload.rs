//! The JSON workload format (docs/workloads.md): parsing, checking, and turning
//! a file into a [`Graph`] with every tensor materialised (inline values, or
//! seeded ChaCha8 random values).

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::Value;

use crate::graph::{Graph, InputNode, Layer, LayerKind, OutputKind};
use crate::quant::{lower, Quant};
use crate::tensor::DType;
use crate::CompileError;

/// A parsed, shape-checked workload: a name and its graph.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub description: Option<String>,
    pub(crate) graph: Graph,
}

impl Workload {
    /// The graph IR of the network.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Wraps a graph built in code; runs the same checks as the parser.
    pub fn from_graph(name: &str, graph: Graph) -> Result<Workload, CompileError> {
        graph.check_shapes()?;
        lower(&graph)?;
        crate::lower::lower_graph(&graph, 16, 16)?;
        Ok(Workload {
            name: name.to_string(),
            description: None,
            graph,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadSpec {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(alias = "m")]
    batch: usize,
    input: Value,
    layers: Vec<Value>,
    #[serde(default)]
    output: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSpec {
    #[serde(default = "default_input_name")]
    name: String,
    #[serde(alias = "k")]
    features: usize,
    #[serde(default)]
    quant: Option<QuantSpec>,
    data: Value,
}

pub(crate) fn default_input_name() -> String {
    "input".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuantSpec {
    pub scale: f64,
    #[serde(default)]
    pub zero_point: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerSpec {
    op: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "k")]
    in_features: Option<usize>,
    #[serde(alias = "n")]
    out_features: usize,
    weights: Value,
    #[serde(default)]
    weight_quant: Option<QuantSpec>,
    #[serde(default)]
    bias: Option<Value>,
    #[serde(default)]
    output: Option<OutputSpec>,
    #[serde(default)]
    relu: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputSpec {
    #[serde(default)]
    dtype: Option<DType>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    zero_point: Option<i64>,
}

/// Largest tensor dimension accepted (features, batch).
pub const MAX_DIM: usize = 1 << 20;

/// Most elements one tensor may have (input, weights, a layer's output):
/// dimensions within [`MAX_DIM`] can multiply to 2^40, which no memory
/// holds. (Found by the `workload` fuzz target: the product was allocated.)
pub const MAX_ELEMENTS: usize = 1 << 26;

pub(crate) fn check_elements(
    ctx: &str,
    what: &str,
    rows: usize,
    cols: usize,
) -> Result<usize, CompileError> {
    rows.checked_mul(cols)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            invalid(
                ctx,
                format!("{what}: {rows} x {cols} elements is more than a tensor may have ({MAX_ELEMENTS})"),
            )
        })
}

pub(crate) fn invalid(context: &str, message: impl Into<String>) -> CompileError {
    CompileError::Invalid {
        context: context.to_string(),
        message: message.into(),
    }
}

/// Parses a workload from JSON text, materialises its tensors, builds the
/// graph and runs the shape check and the quantisation lowering, so that every
/// problem is reported here, naming the layer or field at fault.
pub fn parse_workload(json: &str) -> Result<Workload, CompileError> {
    let v: Value = serde_json::from_str(json).map_err(|e| CompileError::Json(e.to_string()))?;
    if v.get("nodes").is_some() {
        return crate::netjson::parse_graph(v);
    }
    let spec: WorkloadSpec =
        serde_json::from_value(v).map_err(|e| CompileError::Json(e.to_string()))?;
    let batch = spec.batch;
    if batch == 0 || batch > MAX_DIM {
        return Err(invalid(
            "workload",
            format!("batch {batch} must be 1 to {MAX_DIM}"),
        ));
    }
    let inp: InputSpec =
        serde_json::from_value(spec.input).map_err(|e| invalid("input", e.to_string()))?;
    let ictx = format!("input {}", inp.name);
    check_dim(&ictx, "features", inp.features)?;
    let iquant = match &inp.quant {
        Some(q) => quant(&ictx, q)?,
        None => Quant::default(),
    };
    let data = int8_values(&ictx, "data", &inp.data, batch, inp.features)?;
    let input = InputNode {
        name: inp.name,
        shape: crate::graph::Shape::matrix(batch, inp.features),
        matrix: true,
        quant: iquant,
        data,
    };
    if spec.layers.is_empty() {
        return Err(invalid(
            "workload",
            "`layers` is empty; a network needs at least one layer",
        ));
    }
    let mut layers = Vec::new();
    let mut prev_out = input.features();
    for (i, v) in spec.layers.into_iter().enumerate() {
        let hint = v
            .get("name")
            .and_then(Value::as_str)
            .map_or(format!("layer {i}"), |n| format!("layer {n}"));
        let ls: LayerSpec = serde_json::from_value(v).map_err(|e| invalid(&hint, e.to_string()))?;
        let name = ls.name.clone().unwrap_or_else(|| format!("layer{i}"));
        let l = layer(&name, ls, prev_out)?;
        check_elements(&format!("layer {name}"), "output", batch, l.out_features)?;
        prev_out = l.out_features;
        layers.push(l);
    }
    let output = spec.output.unwrap_or_else(|| "output".to_string());
    let graph = Graph::chain(batch, input, layers, &output);
    graph.check_shapes()?;
    lower(&graph)?;
    Ok(Workload {
        name: spec.name,
        description: spec.description,
        graph,
    })
}

pub(crate) fn check_dim(ctx: &str, field: &str, v: usize) -> Result<(), CompileError> {
    if v == 0 || v > MAX_DIM {
        return Err(invalid(ctx, format!("{field} {v} must be 1 to {MAX_DIM}")));
    }
    Ok(())
}

pub(crate) fn zero_point(ctx: &str, what: &str, z: i64) -> Result<i32, CompileError> {
    if !(-128..=127).contains(&z) {
        return Err(invalid(
            ctx,
            format!("{what}zero_point {z} is out of the int8 range -128..=127"),
        ));
    }
    Ok(z as i32)
}

pub(crate) fn scale(ctx: &str, what: &str, s: f64) -> Result<f64, CompileError> {
    if !s.is_finite() || s <= 0.0 {
        return Err(invalid(
            ctx,
            format!("{what}scale {s} must be a positive number"),
        ));
    }
    Ok(s)
}

pub(crate) fn quant(ctx: &str, q: &QuantSpec) -> Result<Quant, CompileError> {
    Ok(Quant {
        scale: scale(ctx, "", q.scale)?,
        zero_point: zero_point(ctx, "", q.zero_point)?,
    })
}

fn layer(name: &str, ls: LayerSpec, prev_out: usize) -> Result<Layer, CompileError> {
    let ctx = format!("layer {name}");
    let kind = match ls.op.as_str() {
        "dense" | "gemm" => LayerKind::Dense,
        "matmul" => LayerKind::Matmul,
        other => {
            return Err(invalid(
                &ctx,
                format!("unknown op `{other}` (expected dense, gemm or matmul)"),
            ))
        }
    };
    let k = ls.in_features.unwrap_or(prev_out);
    check_dim(&ctx, "in_features", k)?;
    check_dim(&ctx, "out_features", ls.out_features)?;
    let n = ls.out_features;
    let weight_quant = match &ls.weight_quant {
        Some(q) => {
            if q.zero_point != 0 {
                return Err(invalid(
                    &ctx,
                    format!(
                        "weight zero_point {} is not supported: weights must be symmetric (zero_point 0)",
                        q.zero_point
                    ),
                ));
            }
            Quant {
                scale: scale(&ctx, "weight ", q.scale)?,
                zero_point: 0,
            }
        }
        None => Quant::default(),
    };
    let output = match (&ls.output, kind) {
        (None, LayerKind::Matmul) => OutputKind::Int32,
        (None, LayerKind::Dense) => return Err(invalid(
            &ctx,
            "missing field `output` (the output scale and zero point, or {\"dtype\": \"int32\"})",
        )),
        (Some(o), _) => match o.dtype.unwrap_or(DType::I8) {
            DType::I32 => {
                if o.scale.is_some() || o.zero_point.is_some() {
                    return Err(invalid(
                        &ctx,
                        "an int32 output takes no scale or zero_point (its scale is input scale x weight scale)",
                    ));
                }
                OutputKind::Int32
            }
            DType::I8 => {
                let Some(s) = o.scale else {
                    return Err(invalid(&ctx, "output: missing field `scale`"));
                };
                OutputKind::Int8(Quant {
                    scale: scale(&ctx, "output ", s)?,
                    zero_point: zero_point(&ctx, "output ", o.zero_point.unwrap_or(0))?,
                })
            }
        },
    };
    if ls.relu && output == OutputKind::Int32 {
        return Err(invalid(&ctx, "relu needs an int8 output"));
    }
    let bias = match (&ls.bias, kind) {
        (Some(_), LayerKind::Matmul) => {
            return Err(invalid(
                &ctx,
                "a matmul layer has no bias; use op dense or gemm",
            ))
        }
        (Some(b), _) => Some(int32_values(&ctx, "bias", b, n)?),
        (None, _) => None,
    };
    let weights = int8_values(&ctx, "weights", &ls.weights, k, n)?;
    Ok(Layer {
        name: name.to_string(),
        kind,
        in_features: k,
        out_features: n,
        weights,
        weight_quant,
        bias,
        output,
        relu: ls.relu,
    })
}

/// `{"random": {"seed": S, "range": [lo, hi]}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomSpec {
    seed: u64,
    #[serde(default)]
    range: Option<[i64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RandomWrap {
    random: RandomSpec,
}

/// `count` values in `[lo, hi]` from ChaCha8 seeded with `seed`
/// (`ChaCha8Rng::seed_from_u64`): value `i` is
/// `lo + ((next_u32() as u64 * (hi - lo + 1)) >> 32)`, one `next_u32` per value,
/// in row-major order. (A fixed mapping, so files stay reproducible whatever
/// the `rand` version.)
pub fn random_values(seed: u64, lo: i64, hi: i64, count: usize) -> Vec<i64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let span = (hi - lo + 1) as u64;
    (0..count)
        .map(|_| lo + ((rng.next_u32() as u64 * span) >> 32) as i64)
        .collect()
}

/// Default range of random int32 biases.
pub const BIAS_RANDOM_RANGE: [i64; 2] = [-1024, 1024];

/// Materialises a tensor given inline (flat, or nested rows) or as a random
/// spec, with `rows x cols` values in `[lo, hi]`.
/// An element type's value range and default random range.
struct Elem {
    lo: i64,
    hi: i64,
    default_range: [i64; 2],
    dtype: DType,
}

const INT8: Elem = Elem {
    lo: -128,
    hi: 127,
    default_range: [-128, 127],
    dtype: DType::I8,
};

const INT32: Elem = Elem {
    lo: i32::MIN as i64,
    hi: i32::MAX as i64,
    default_range: BIAS_RANDOM_RANGE,
    dtype: DType::I32,
};

fn values(
    ctx: &str,
    what: &str,
    v: &Value,
    rows: usize,
    cols: usize,
    elem: &Elem,
) -> Result<Vec<i64>, CompileError> {
    let Elem {
        lo,
        hi,
        default_range,
        dtype,
    } = *elem;
    let count = check_elements(ctx, what, rows, cols)?;
    let shape_desc = if rows == 1 {
        format!("{cols}")
    } else {
        format!("{rows} x {cols} = {count}")
    };
    match v {
        Value::Object(_) => {
            let r: RandomWrap = serde_json::from_value(v.clone()).map_err(|e| {
                invalid(
                    ctx,
                    format!("{what}: {e} (expected an array or {{\"random\": {{\"seed\": N}}}})"),
                )
            })?;
            let [a, b] = r.random.range.unwrap_or(default_range);
            if a > b || a < lo || b > hi {
                return Err(invalid(
                    ctx,
                    format!("{what}: random range [{a}, {b}] must be within the {dtype} range [{lo}, {hi}]"),
                ));
            }
            Ok(random_values(r.random.seed, a, b, count))
        }
        Value::Array(items) => {
            let nested = items.iter().any(Value::is_array);
            let mut out = Vec::with_capacity(count);
            let mut push = |x: &Value, at: String| -> Result<(), CompileError> {
                let n = x
                    .as_i64()
                    .ok_or_else(|| invalid(ctx, format!("{what}{at} = {x} is not an integer")))?;
                if n < lo || n > hi {
                    return Err(invalid(
                        ctx,
                        format!("{what}{at} = {n} is out of the {dtype} range [{lo}, {hi}]"),
                    ));
                }
                out.push(n);
                Ok(())
            };
            if nested {
                if items.len() != rows {
                    return Err(invalid(
                        ctx,
                        format!(
                            "{what} has {} rows, expected {rows} ({shape_desc} values)",
                            items.len()
                        ),
                    ));
                }
                for (r, row) in items.iter().enumerate() {
                    let Value::Array(row) = row else {
                        return Err(invalid(ctx, format!("{what}[{r}] is not an array")));
                    };
                    if row.len() != cols {
                        return Err(invalid(
                            ctx,
                            format!("{what}[{r}] has {} values, expected {cols}", row.len()),
                        ));
                    }
                    for (c, x) in row.iter().enumerate() {
                        push(x, format!("[{r}][{c}]"))?;
                    }
                }
            } else {
                if items.len() != count {
                    return Err(invalid(
                        ctx,
                        format!("{what} has {} values, expected {shape_desc}", items.len()),
                    ));
                }
                for (i, x) in items.iter().enumerate() {
                    push(x, format!("[{i}]"))?;
                }
            }
            Ok(out)
        }
        other => Err(invalid(
            ctx,
            format!("{what} = {other} must be an array or {{\"random\": {{\"seed\": N}}}}"),
        )),
    }
}

pub(crate) fn int8_values(
    ctx: &str,
    what: &str,
    v: &Value,
    rows: usize,
    cols: usize,
) -> Result<Vec<i8>, CompileError> {
    let vals = values(ctx, what, v, rows, cols, &INT8)?;
    Ok(vals.into_iter().map(|x| x as i8).collect())
}

pub(crate) fn int32_values(
    ctx: &str,
    what: &str,
    v: &Value,
    n: usize,
) -> Result<Vec<i32>, CompileError> {
    let vals = values(ctx, what, v, 1, n, &INT32)?;
    Ok(vals.into_iter().map(|x| x as i32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_are_reproducible_and_in_range() {
        let a = random_values(7, -128, 127, 1000);
        assert_eq!(a, random_values(7, -128, 127, 1000));
        assert_ne!(a, random_values(8, -128, 127, 1000));
        assert!(a.iter().all(|&x| (-128..=127).contains(&x)));
        assert!(a.contains(&-128) && a.contains(&127));
        let b = random_values(1, -3, 3, 200);
        assert!(b.iter().all(|&x| (-3..=3).contains(&x)));
        assert_eq!(random_values(1, 5, 5, 3), vec![5, 5, 5]);
    }
}
