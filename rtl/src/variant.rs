//! The checked-in RTL variants (`rtl/generated/variants.json`) and which of
//! them this build of the crate could Verilate.

use npukit_sim::{Dataflow, NpuConfig};

use crate::error::RtlError;
use crate::ffi::Api;

/// What one variant fixes: everything of an [`NpuConfig`] but `[dram]` and
/// `[clock]`, which live in the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantInfo {
    /// Module prefix and file stem, e.g. `npu_8x8`.
    pub name: &'static str,
    /// The Verilog file it was built from.
    pub file: &'static str,
    pub rows: u64,
    pub cols: u64,
    pub spad_bytes: u64,
    pub acc_bytes: u64,
    pub beat_bytes: u64,
    pub fetch_depth: u64,
    pub queue_depth: u64,
    pub max_ring: u64,
    /// `array.dataflow`.
    pub dataflow: Dataflow,
    /// `array.weight_double_buffer`.
    pub weight_double_buffer: bool,
    /// A deliberately injected fault (for testing the checker), if any. Such a
    /// variant is never chosen for a configuration, only by name.
    pub fault: Option<&'static str>,
}

impl VariantInfo {
    /// `(config field, variant value, config value)` for every field a variant
    /// fixes (the dataflow as its index in [`Dataflow::ALL`], the flag as 0/1).
    pub fn fields(&self, cfg: &NpuConfig) -> [(&'static str, u64, u64); 10] {
        let df = |d: Dataflow| Dataflow::ALL.iter().position(|&x| x == d).unwrap_or(0) as u64;
        [
            ("array.rows", self.rows, cfg.array.rows as u64),
            ("array.cols", self.cols, cfg.array.cols as u64),
            (
                "memory.spad_bytes",
                self.spad_bytes,
                cfg.memory.spad_bytes as u64,
            ),
            (
                "memory.acc_bytes",
                self.acc_bytes,
                cfg.memory.acc_bytes as u64,
            ),
            ("dma.beat_bytes", self.beat_bytes, cfg.dma.beat_bytes as u64),
            (
                "cmdproc.fetch_depth",
                self.fetch_depth,
                cfg.cmdproc.fetch_depth as u64,
            ),
            (
                "cmdproc.queue_depth",
                self.queue_depth,
                cfg.cmdproc.queue_depth as u64,
            ),
            (
                "cmdproc.max_ring",
                self.max_ring,
                cfg.cmdproc.max_ring as u64,
            ),
            ("array.dataflow", df(self.dataflow), df(cfg.array.dataflow)),
            (
                "array.weight_double_buffer",
                self.weight_double_buffer as u64,
                cfg.array.weight_double_buffer as u64,
            ),
        ]
    }

    /// The first field in which `cfg` differs from this variant: (field,
    /// variant value, config value), values as written in a config file.
    pub fn first_difference(&self, cfg: &NpuConfig) -> Option<(&'static str, String, String)> {
        let shown = |f: &str, v: u64| match f {
            "array.dataflow" => format!("\"{}\"", Dataflow::ALL[v as usize % 2]),
            "array.weight_double_buffer" => (v != 0).to_string(),
            _ => v.to_string(),
        };
        self.fields(cfg)
            .into_iter()
            .find(|(_, v, c)| v != c)
            .map(|(f, v, c)| (f, shown(f, v), shown(f, c)))
    }

    /// `cfg` with every field this variant fixes set to the variant's value.
    pub fn apply(&self, cfg: &NpuConfig) -> NpuConfig {
        let mut c = cfg.clone();
        c.array.rows = self.rows as u32;
        c.array.cols = self.cols as u32;
        c.memory.spad_bytes = self.spad_bytes as u32;
        c.memory.acc_bytes = self.acc_bytes as u32;
        c.dma.beat_bytes = self.beat_bytes as u32;
        c.cmdproc.fetch_depth = self.fetch_depth as u32;
        c.cmdproc.queue_depth = self.queue_depth as u32;
        c.cmdproc.max_ring = self.max_ring as u32;
        c.array.dataflow = self.dataflow;
        c.array.weight_double_buffer = self.weight_double_buffer;
        c
    }
}

/// A variant and, if it was built, its functions (else why not).
#[derive(Debug)]
pub(crate) struct VariantEntry {
    pub info: VariantInfo,
    pub api: Result<Api, &'static str>,
}

mod table {
    include!(concat!(env!("OUT_DIR"), "/variants.rs"));
}

/// Every variant described by variants.json, built or not.
pub fn all() -> impl Iterator<Item = &'static VariantInfo> {
    table::VARIANTS.iter().map(|e| &e.info)
}

/// Whether the crate was built with Verilator (at least one variant runs).
pub fn verilator_available() -> bool {
    cfg!(npukit_verilator)
}

/// The variants this build can run.
pub fn built() -> impl Iterator<Item = &'static VariantInfo> {
    table::VARIANTS
        .iter()
        .filter(|e| e.api.is_ok())
        .map(|e| &e.info)
}

fn entry_api(e: &'static VariantEntry) -> Result<(&'static VariantInfo, Api), RtlError> {
    match e.api {
        Ok(api) => Ok((&e.info, api)),
        Err(_) if cfg!(npukit_no_verilator_feature) => Err(RtlError::FeatureOff),
        Err(_) if !verilator_available() => Err(RtlError::NoVerilator),
        Err(log) => Err(RtlError::NotBuilt {
            name: e.info.name,
            log: log.to_string(),
        }),
    }
}

fn check_table() -> Result<(), RtlError> {
    if cfg!(npukit_no_verilator_feature) {
        return Err(RtlError::FeatureOff);
    }
    if let Some(e) = table::TABLE_ERROR {
        return Err(RtlError::NoVariants(e.to_string()));
    }
    if table::VARIANTS.is_empty() {
        return Err(RtlError::NoVariants(
            "rtl/generated/variants.json was missing when npukit-rtl was built".into(),
        ));
    }
    Ok(())
}

/// The variant named `name` (faulty ones included).
pub(crate) fn by_name(name: &str) -> Result<(&'static VariantInfo, Api), RtlError> {
    check_table()?;
    let e = table::VARIANTS
        .iter()
        .find(|e| e.info.name == name)
        .ok_or_else(|| RtlError::UnknownVariant {
            name: name.to_string(),
            known: all().map(|v| v.name).collect::<Vec<_>>().join(", "),
        })?;
    entry_api(e)
}

/// The (fault-free) variant whose fixed fields all equal `cfg`'s.
pub fn matching(cfg: &NpuConfig) -> Result<&'static VariantInfo, RtlError> {
    find(cfg).map(|e| &e.info)
}

fn find(cfg: &NpuConfig) -> Result<&'static VariantEntry, RtlError> {
    check_table()?;
    let sound = || table::VARIANTS.iter().filter(|e| e.info.fault.is_none());
    if let Some(e) = sound().find(|e| e.info.first_difference(cfg).is_none()) {
        return Ok(e);
    }
    // Name the first differing field of the closest variant: the one that
    // agrees on the longest prefix of fields (array shape first), then on the
    // most fields in all; of equals, the first listed.
    let closeness = |e: &VariantEntry| {
        let fields = e.info.fields(cfg);
        let prefix = fields.iter().take_while(|(_, v, c)| v == c).count();
        let agree = fields.iter().filter(|(_, v, c)| v == c).count();
        std::cmp::Reverse((prefix, agree))
    };
    let best = sound()
        .min_by_key(|e| closeness(e))
        .ok_or_else(|| RtlError::NoVariants("variants.json lists only faulty variants".into()))?;
    let (field, has, want) =
        best.info
            .first_difference(cfg)
            .unwrap_or(("?", String::new(), String::new()));
    Err(RtlError::NoMatch {
        field,
        want,
        closest: best.info.name,
        has,
        known: sound().map(|e| e.info.name).collect::<Vec<_>>().join(", "),
    })
}

/// The variant for `cfg` and its functions.
pub(crate) fn for_config(cfg: &NpuConfig) -> Result<(&'static VariantInfo, Api), RtlError> {
    entry_api(find(cfg)?)
}
