//! The sweep file (`SWEEP.toml`, docs/explore.md) and its expansion into points.
//!
//! A sweep is a base hardware configuration, a list of workloads and a list of
//! axes. An axis sets one configuration field by its dotted name
//! (`array.rows`, `dram.bytes_per_cycle`, `array.dataflow`, ...) to each of its
//! values, or several fields together (`fields = ["array.rows", "array.cols"]`
//! with `values = [[8, 8], [16, 32]]`). The points are the cartesian product of
//! the axes (the first axis varies slowest) times the workloads (innermost).
//!
//! Every point's configuration is resolved and validated before anything runs:
//! a field the hardware configuration does not have, or a value it rejects, is
//! an error naming the field (and the point).

use std::path::{Path, PathBuf};

use npukit_compiler::Workload;
use npukit_sim::NpuConfig;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::ExploreError;

/// Default limit of simulated cycles per point.
pub const DEFAULT_MAX_CYCLES: u64 = 2_000_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    name: Option<String>,
    description: Option<String>,
    base: Option<PathBuf>,
    workloads: Vec<PathBuf>,
    max_cycles: Option<u64>,
    #[serde(default)]
    axis: Vec<AxisFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AxisFile {
    field: Option<String>,
    fields: Option<Vec<String>>,
    values: Vec<toml::Value>,
}

/// One axis: the fields it sets together and, per step, their values.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub fields: Vec<String>,
    pub values: Vec<Vec<toml::Value>>,
}

/// A workload of the sweep.
#[derive(Debug, Clone)]
pub struct SweepWorkload {
    pub name: String,
    pub path: PathBuf,
    pub workload: Workload,
    /// SHA-256 of the file's bytes (part of every point's cache key).
    pub hash: String,
}

/// One point: a resolved configuration and a workload.
#[derive(Debug, Clone)]
pub struct Point {
    /// Position in the whole sweep (0-based, the order of [`Sweep::points`]).
    pub index: usize,
    /// Index into [`Sweep::workloads`].
    pub workload: usize,
    /// The axis settings of this point, `(dotted field, value)`, in axis order.
    pub settings: Vec<(String, toml::Value)>,
    pub config: NpuConfig,
}

/// A parsed sweep.
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    pub base: NpuConfig,
    pub workloads: Vec<SweepWorkload>,
    pub axes: Vec<Axis>,
    pub max_cycles: u64,
    pub points: Vec<Point>,
}

/// A value as shown in labels and tables: strings without quotes.
pub fn show_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn err(path: &Path, message: impl Into<String>) -> ExploreError {
    ExploreError::Sweep {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The names of the fields of a configuration table, for error messages.
fn known_fields(t: &toml::Table) -> String {
    t.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Sets the field with dotted name `field` in a resolved configuration (as a
/// TOML table with every field present). The field must already exist: the
/// error names it and lists the fields its table does have.
pub fn set_field(
    root: &mut toml::Table,
    field: &str,
    value: toml::Value,
) -> Result<(), ExploreError> {
    let unknown = |known: String| ExploreError::UnknownField {
        field: field.to_string(),
        known,
    };
    let parts: Vec<&str> = field.split('.').collect();
    let (last, path) = parts
        .split_last()
        .ok_or_else(|| unknown(known_fields(root)))?;
    let mut table = root;
    for p in path {
        let keys = known_fields(table);
        table = match table.get_mut(*p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(unknown(keys)),
        };
    }
    match table.get_mut(*last) {
        Some(slot) if !slot.is_table() => {
            *slot = value;
            Ok(())
        }
        _ => Err(unknown(known_fields(table))),
    }
}

/// Reads a configuration field by dotted name, if the configuration has it.
pub fn get_field(cfg: &NpuConfig, field: &str) -> Option<toml::Value> {
    let v = toml::Value::try_from(cfg).ok()?;
    field.split('.').try_fold(v, |v, p| v.get(p).cloned())
}

/// The MAC array's dataflow (`array.dataflow`) by its configuration name.
pub fn dataflow(cfg: &NpuConfig) -> String {
    cfg.array.dataflow.name().to_string()
}

/// Whether weights are double-buffered (`array.weight_double_buffer`).
pub fn weight_double_buffer(cfg: &NpuConfig) -> bool {
    cfg.array.weight_double_buffer
}

fn config_table(cfg: &NpuConfig) -> Result<toml::Table, ExploreError> {
    match toml::Value::try_from(cfg) {
        Ok(toml::Value::Table(t)) => Ok(t),
        _ => Err(ExploreError::Internal(
            "the configuration does not serialise to a TOML table".into(),
        )),
    }
}

/// `base` with the settings applied, validated.
pub fn resolve(
    base: &NpuConfig,
    settings: &[(String, toml::Value)],
) -> Result<NpuConfig, ExploreError> {
    let mut t = config_table(base)?;
    for (f, v) in settings {
        set_field(&mut t, f, v.clone())?;
    }
    let text = toml::to_string(&t).map_err(|e| ExploreError::Internal(e.to_string()))?;
    NpuConfig::from_toml(&text).map_err(|e| ExploreError::Config {
        settings: settings
            .iter()
            .map(|(f, v)| format!("{f}={}", show_value(v)))
            .collect::<Vec<_>>()
            .join(" "),
        message: e.to_string(),
    })
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Sweep {
    /// Reads and checks a sweep file; relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Sweep, ExploreError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(path, e.to_string()))?;
        Self::parse(&text, path)
    }

    /// Parses a sweep; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Sweep, ExploreError> {
        let f: SweepFile = toml::from_str(text).map_err(|e| err(path, e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let base = match &f.base {
            Some(b) => NpuConfig::load(&dir.join(b)).map_err(|e| err(path, e.to_string()))?,
            None => NpuConfig::default(),
        };
        if f.workloads.is_empty() {
            return Err(err(
                path,
                "`workloads` is empty: name at least one workload file",
            ));
        }
        let mut workloads: Vec<SweepWorkload> = vec![];
        for w in &f.workloads {
            let p = dir.join(w);
            let bytes =
                std::fs::read(&p).map_err(|e| err(path, format!("{}: {e}", p.display())))?;
            let workload = npukit_compiler::load_workload(&p)?;
            if workloads.iter().any(|o| o.name == workload.name) {
                return Err(err(
                    path,
                    format!("two workloads are named `{}`", workload.name),
                ));
            }
            workloads.push(SweepWorkload {
                name: workload.name.clone(),
                path: p,
                workload,
                hash: sha256_hex(&[&bytes]),
            });
        }
        let mut axes = vec![];
        for (i, a) in f.axis.iter().enumerate() {
            let fields = match (&a.field, &a.fields) {
                (Some(f), None) => vec![f.clone()],
                (None, Some(fs)) if !fs.is_empty() => fs.clone(),
                _ => {
                    return Err(err(
                        path,
                        format!("axis {}: give exactly one of `field` or `fields`", i + 1),
                    ))
                }
            };
            if a.values.is_empty() {
                return Err(err(path, format!("axis `{}`: no values", fields.join(","))));
            }
            let values = a
                .values
                .iter()
                .map(|v| match (fields.len(), v) {
                    (1, v) => Ok(vec![v.clone()]),
                    (n, toml::Value::Array(vs)) if vs.len() == n => Ok(vs.clone()),
                    (n, v) => Err(err(
                        path,
                        format!(
                            "axis `{}`: value {v} is not a list of {n} values",
                            fields.join(",")
                        ),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            axes.push(Axis { fields, values });
        }
        let all: Vec<&String> = axes.iter().flat_map(|a| &a.fields).collect();
        for (i, f) in all.iter().enumerate() {
            if all[..i].contains(f) {
                return Err(err(path, format!("field `{f}` is set by two axes")));
            }
        }
        let mut sweep = Sweep {
            name: f.name.unwrap_or_else(|| {
                path.file_stem()
                    .map_or("sweep".into(), |s| s.to_string_lossy().into_owned())
            }),
            description: f.description.unwrap_or_default(),
            path: path.to_path_buf(),
            base,
            workloads,
            axes,
            max_cycles: f.max_cycles.unwrap_or(DEFAULT_MAX_CYCLES),
            points: vec![],
        };
        sweep.points = sweep.expand().map_err(|e| match e {
            ExploreError::UnknownField { .. } | ExploreError::Config { .. } => {
                err(path, e.to_string())
            }
            other => other,
        })?;
        Ok(sweep)
    }

    /// Every point, in order: the axes' cartesian product (first axis slowest),
    /// workloads innermost.
    fn expand(&self) -> Result<Vec<Point>, ExploreError> {
        let mut combos: Vec<Vec<(String, toml::Value)>> = vec![vec![]];
        for a in &self.axes {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    a.values.iter().map(move |vs| {
                        let mut c = c.clone();
                        c.extend(a.fields.iter().cloned().zip(vs.iter().cloned()));
                        c
                    })
                })
                .collect();
        }
        let mut points = vec![];
        for settings in combos {
            let config = resolve(&self.base, &settings)?;
            for w in 0..self.workloads.len() {
                points.push(Point {
                    index: points.len(),
                    workload: w,
                    settings: settings.clone(),
                    config: config.clone(),
                });
            }
        }
        Ok(points)
    }

    /// An identity of the whole sweep (points, configurations, workloads): shards
    /// can be merged only when they agree on it.
    pub fn id(&self) -> String {
        let mut text = String::new();
        for p in &self.points {
            text.push_str(&self.workloads[p.workload].hash);
            text.push('\n');
            text.push_str(&p.config.to_toml());
            text.push('\n');
        }
        sha256_hex(&[text.as_bytes(), &self.max_cycles.to_le_bytes()])
    }

    /// A short label of a point's settings, e.g. `8x8 OS` (see [`settings_label`]).
    pub fn label(&self, p: &Point) -> String {
        let fields: Vec<String> = self.axes.iter().flat_map(|a| a.fields.clone()).collect();
        let settings: Vec<(String, String)> = p
            .settings
            .iter()
            .map(|(f, v)| (f.clone(), show_value(v)))
            .collect();
        let l = settings_label(&settings, &fields, true);
        if l.is_empty() {
            "base".into()
        } else {
            l
        }
    }
}

/// A short label of axis settings (`dotted field`, value): the array shape as
/// `RxC` when both dimensions are set (with `shape`; without it the dimensions
/// are left out), `array.dataflow` as `WS` or `OS`, `array.weight_double_buffer`
/// as `DB` when true (nothing when false), and any other field as the last
/// part of its name (the whole name where two of `fields` would clash) `=value`.
pub fn settings_label(settings: &[(String, String)], fields: &[String], shape: bool) -> String {
    let short = |f: &str| f.rsplit('.').next().unwrap_or(f).to_string();
    let clash = |f: &str| fields.iter().filter(|g| short(g) == short(f)).count() > 1;
    let get = |name: &str| settings.iter().find(|(f, _)| f == name).map(|(_, v)| v);
    let mut parts = vec![];
    let dims = (get("array.rows"), get("array.cols"));
    if let (true, (Some(r), Some(c))) = (shape, dims) {
        parts.push(format!("{r}x{c}"));
    }
    for (f, v) in settings {
        let dim = f == "array.rows" || f == "array.cols";
        if dim && (!shape || dims.0.is_some() && dims.1.is_some()) {
            continue;
        }
        match (f.as_str(), v.as_str()) {
            ("array.dataflow", "weight-stationary") => parts.push("WS".into()),
            ("array.dataflow", "output-stationary") => parts.push("OS".into()),
            ("array.weight_double_buffer", "true") => parts.push("DB".into()),
            ("array.weight_double_buffer", "false") => {}
            _ => {
                let name = if clash(f) { f.clone() } else { short(f) };
                parts.push(format!("{name}={v}"));
            }
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workloads_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/x.toml")
    }

    #[test]
    fn axes_expand_in_order_with_workloads_innermost() {
        let s = Sweep::parse(
            r#"
            workloads = ["mlp-small.json", "gemm-128.json"]
            [[axis]]
            fields = ["array.rows", "array.cols"]
            values = [[4, 4], [8, 16]]
            [[axis]]
            field = "dram.bytes_per_cycle"
            values = [8, 32]
            "#,
            &workloads_dir(),
        )
        .unwrap();
        assert_eq!(s.points.len(), 2 * 2 * 2);
        let p = &s.points[2];
        assert_eq!(
            (
                p.workload,
                p.config.array.rows,
                p.config.dram.bytes_per_cycle
            ),
            (0, 4, 32)
        );
        let p = &s.points[5];
        assert_eq!(
            (
                p.workload,
                p.config.array.rows,
                p.config.array.cols,
                p.config.dram.bytes_per_cycle
            ),
            (1, 8, 16, 8)
        );
        assert_eq!(s.label(p), "8x16 bytes_per_cycle=8");
        let f = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let fields: Vec<String> = [
            "array.rows",
            "array.dataflow",
            "array.weight_double_buffer",
            "dram.latency",
            "x.latency",
        ]
        .map(String::from)
        .to_vec();
        let set = f(&[
            ("array.rows", "8"),
            ("array.dataflow", "output-stationary"),
            ("array.weight_double_buffer", "false"),
            ("dram.latency", "9"),
        ]);
        assert_eq!(
            settings_label(&set, &fields, true),
            "rows=8 OS dram.latency=9"
        );
        assert_eq!(settings_label(&set, &fields, false), "OS dram.latency=9");
        let set = f(&[("array.weight_double_buffer", "true")]);
        assert_eq!(settings_label(&set, &fields, true), "DB");
        assert!(s.points.iter().enumerate().all(|(i, p)| p.index == i));
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = Sweep::parse(
            "workloads = [\"mlp-small.json\"]\n[[axis]]\nfield = \"array.flavour\"\nvalues = [1]\n",
            &workloads_dir(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`array.flavour`") && e.contains("rows"), "{e}");
        let e = Sweep::parse(
            "workloads = [\"mlp-small.json\"]\n[[axis]]\nfield = \"nosuch.rows\"\nvalues = [1]\n",
            &workloads_dir(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`nosuch.rows`") && e.contains("array"), "{e}");
    }

    #[test]
    fn bad_values_name_the_field_and_point() {
        let e = Sweep::parse(
            "workloads = [\"mlp-small.json\"]\n[[axis]]\nfield = \"array.rows\"\nvalues = [8, 0]\n",
            &workloads_dir(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("array.rows=0") && e.contains("must be 1 to 256"),
            "{e}"
        );
        let e = Sweep::parse(
            "workloads = [\"mlp-small.json\"]\n[[axis]]\nfield = \"array.rows\"\nvalues = [\"big\"]\n",
            &workloads_dir(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rows"), "{e}");
        let e = Sweep::parse(
            "workloads = [\"mlp-small.json\"]\n[[axis]]\nfields = [\"array.rows\", \"array.cols\"]\nvalues = [8]\n",
            &workloads_dir(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a list of 2 values"), "{e}");
    }

    #[test]
    fn missing_workload_is_named() {
        let e = Sweep::parse("workloads = [\"nope.json\"]\n", &workloads_dir())
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.json"), "{e}");
    }
}
