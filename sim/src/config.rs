//! The hardware configuration: one serde struct, nested per block, loaded from TOML.
//! Every field has a unit and a default; [`NpuConfig::validate`] names the field
//! at fault. Missing fields take their defaults; unknown fields are an error.

use serde::{Deserialize, Serialize};

pub use crate::dram::DramParams;

/// A configuration problem, naming the field (`array.rows`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config field `{field}` = {value}: {problem}")]
    Field {
        field: &'static str,
        value: String,
        problem: String,
    },
    #[error("config: {0}")]
    Parse(String),
    #[error("config file {path}: {message}")]
    Io { path: String, message: String },
}

fn bad(field: &'static str, value: impl ToString, problem: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field,
        value: value.to_string(),
        problem: problem.into(),
    }
}

/// How the MAC array moves data (docs/timing.md, rule C1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dataflow {
    /// Weights held in the PEs, activation rows streamed through (rule C1a/C1b).
    #[default]
    WeightStationary,
    /// Output elements held in the PEs, A and W both streamed (rule C1c).
    OutputStationary,
}

impl Dataflow {
    pub const ALL: [Dataflow; 2] = [Dataflow::WeightStationary, Dataflow::OutputStationary];

    /// The name used in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Dataflow::WeightStationary => "weight-stationary",
            Dataflow::OutputStationary => "output-stationary",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl std::fmt::Display for Dataflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The MAC array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArrayParams {
    /// Processing-element rows: the reduction depth K of one fold. Default 16.
    pub rows: u32,
    /// Processing-element columns: output columns N of one fold, and the lanes of
    /// the activation unit. Default 16.
    pub cols: u32,
    /// `"weight-stationary"` (default) or `"output-stationary"`.
    pub dataflow: Dataflow,
    /// A second weight bank per PE: the next MATMUL's weights shift in while
    /// the current one streams (weight-stationary only). Default false.
    pub weight_double_buffer: bool,
}

impl Default for ArrayParams {
    fn default() -> Self {
        ArrayParams {
            rows: 16,
            cols: 16,
            dataflow: Dataflow::WeightStationary,
            weight_double_buffer: false,
        }
    }
}

/// On-chip memories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalMemParams {
    /// Scratchpad (int8) size in bytes. Default 256 KiB.
    pub spad_bytes: u32,
    /// Accumulator memory (int32) size in bytes. Default 64 KiB.
    pub acc_bytes: u32,
}

impl Default for LocalMemParams {
    fn default() -> Self {
        LocalMemParams {
            spad_bytes: 256 << 10,
            acc_bytes: 64 << 10,
        }
    }
}

/// The DMA engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DmaParams {
    /// Width of one memory-port beat in bytes: a power of two, 8 to 64. Default 32.
    pub beat_bytes: u32,
}

impl Default for DmaParams {
    fn default() -> Self {
        DmaParams { beat_bytes: 32 }
    }
}

/// The command processor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CmdParams {
    /// Descriptors fetched ahead of dispatch (fetch buffer entries). Default 4.
    pub fetch_depth: u32,
    /// Depth of each unit queue (load, compute, store) in descriptors. Default 8.
    pub queue_depth: u32,
    /// Largest command ring in descriptors: a power of two >= 2. Default 4096.
    pub max_ring: u32,
}

impl Default for CmdParams {
    fn default() -> Self {
        CmdParams {
            fetch_depth: 4,
            queue_depth: 8,
            max_ring: 4096,
        }
    }
}

/// The clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockParams {
    /// Clock frequency in MHz; used only to convert cycles to time. Default 1000.
    pub freq_mhz: u32,
}

impl Default for ClockParams {
    fn default() -> Self {
        ClockParams { freq_mhz: 1000 }
    }
}

/// The whole NPU configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct NpuConfig {
    pub array: ArrayParams,
    pub memory: LocalMemParams,
    pub dma: DmaParams,
    pub dram: DramParams,
    pub cmdproc: CmdParams,
    pub clock: ClockParams,
}

impl NpuConfig {
    /// Parses TOML and validates.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: NpuConfig = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse(m) => ConfigError::Io {
                path: path.display().to_string(),
                message: m,
            },
            other => other,
        })
    }

    /// The resolved configuration as TOML (every field, defaults included).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every field; the error names the first field at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let a = &self.array;
        for (f, v) in [("array.rows", a.rows), ("array.cols", a.cols)] {
            if v == 0 || v > 256 {
                return Err(bad(f, v, "must be 1 to 256"));
            }
        }
        if a.weight_double_buffer && a.dataflow != Dataflow::WeightStationary {
            return Err(bad(
                "array.weight_double_buffer",
                true,
                format!(
                    "weight double-buffering needs dataflow = \"weight-stationary\" (dataflow is \"{}\")",
                    a.dataflow
                ),
            ));
        }
        let tile = a.rows * a.cols;
        let m = &self.memory;
        if m.spad_bytes < tile {
            return Err(bad(
                "memory.spad_bytes",
                m.spad_bytes,
                format!(
                    "scratchpad smaller than one {}x{} weight tile ({tile} bytes)",
                    a.rows, a.cols
                ),
            ));
        }
        if m.acc_bytes < a.cols * 4 || !m.acc_bytes.is_multiple_of(4) {
            return Err(bad(
                "memory.acc_bytes",
                m.acc_bytes,
                format!(
                    "must be a multiple of 4 holding at least one row of {} int32",
                    a.cols
                ),
            ));
        }
        let b = self.dma.beat_bytes;
        if !b.is_power_of_two() || !(8..=64).contains(&b) {
            return Err(bad(
                "dma.beat_bytes",
                b,
                "must be a power of two from 8 to 64",
            ));
        }
        self.dram.validate()?;
        let c = &self.cmdproc;
        if c.fetch_depth == 0 || c.fetch_depth > 64 {
            return Err(bad("cmdproc.fetch_depth", c.fetch_depth, "must be 1 to 64"));
        }
        if c.queue_depth == 0 || c.queue_depth > 256 {
            return Err(bad(
                "cmdproc.queue_depth",
                c.queue_depth,
                "must be 1 to 256",
            ));
        }
        if !c.max_ring.is_power_of_two() || c.max_ring < 2 || c.max_ring > 1 << 20 {
            return Err(bad(
                "cmdproc.max_ring",
                c.max_ring,
                "must be a power of two from 2 to 1048576",
            ));
        }
        if self.clock.freq_mhz == 0 {
            return Err(bad("clock.freq_mhz", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// The descriptor limits of this configuration.
    pub fn limits(&self) -> npukit_abi::Limits {
        npukit_abi::Limits {
            rows: self.array.rows,
            cols: self.array.cols,
            spad_bytes: self.memory.spad_bytes,
            acc_bytes: self.memory.acc_bytes,
        }
    }

    /// The `CAPS` register value of a device with this configuration.
    pub fn caps(&self) -> u32 {
        use npukit_abi::caps;
        let dataflow = match self.array.dataflow {
            Dataflow::WeightStationary => caps::WEIGHT_STATIONARY,
            Dataflow::OutputStationary => caps::OUTPUT_STATIONARY,
        };
        let wdb = if self.array.weight_double_buffer {
            caps::WEIGHT_DOUBLE_BUFFER
        } else {
            0
        };
        caps::TRANSLATION
            | caps::FENCE_WRITEBACK
            | caps::WATCHDOG
            | caps::ELEMENTWISE
            | caps::PER_CHANNEL_ACT
            | dataflow
            | wdb
    }

    /// Peak multiply-accumulates per cycle (every PE busy).
    pub fn peak_macs_per_cycle(&self) -> u64 {
        self.array.rows as u64 * self.array.cols as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: ConfigError) -> &'static str {
        match e {
            ConfigError::Field { field, .. } => field,
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = NpuConfig::default();
        c.validate().unwrap();
        assert_eq!(NpuConfig::from_toml(&c.to_toml()).unwrap(), c);
        assert_eq!(NpuConfig::from_toml("").unwrap(), c);
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = NpuConfig::from_toml("[array]\nrows = 0\n").unwrap_err();
        assert_eq!(field_of(e), "array.rows");
        let e = NpuConfig::from_toml("[array]\nrows = 32\ncols = 32\n[memory]\nspad_bytes = 512\n")
            .unwrap_err();
        assert!(e.to_string().contains("memory.spad_bytes"), "{e}");
        assert!(e.to_string().contains("weight tile"), "{e}");
        let e = NpuConfig::from_toml("[cmdproc]\nmax_ring = 100\n").unwrap_err();
        assert_eq!(field_of(e), "cmdproc.max_ring");
        let e = NpuConfig::from_toml("[dma]\nbeat_bytes = 24\n").unwrap_err();
        assert_eq!(field_of(e), "dma.beat_bytes");
        let e = NpuConfig::from_toml("[dram]\nlatency = 0\n").unwrap_err();
        assert_eq!(field_of(e), "dram.latency");
    }

    #[test]
    fn dataflow_options() {
        let c = NpuConfig::from_toml("[array]\ndataflow = \"output-stationary\"\n").unwrap();
        assert_eq!(c.array.dataflow, Dataflow::OutputStationary);
        assert!(!c.array.weight_double_buffer);
        assert_eq!(NpuConfig::from_toml(&c.to_toml()).unwrap(), c);
        let c = NpuConfig::from_toml("[array]\nweight_double_buffer = true\n").unwrap();
        assert_eq!(c.array.dataflow, Dataflow::WeightStationary);
        assert!(c.array.weight_double_buffer);
        let e = NpuConfig::from_toml(
            "[array]\ndataflow = \"output-stationary\"\nweight_double_buffer = true\n",
        )
        .unwrap_err();
        assert_eq!(field_of(e.clone()), "array.weight_double_buffer");
        assert!(e.to_string().contains("weight-stationary"), "{e}");
        let e = NpuConfig::from_toml("[array]\ndataflow = \"row-stationary\"\n").unwrap_err();
        assert!(e.to_string().contains("dataflow"), "{e}");
        assert!(e.to_string().contains("output-stationary"), "{e}");
        for d in Dataflow::ALL {
            assert_eq!(Dataflow::from_name(d.name()), Some(d));
        }
    }

    #[test]
    fn unknown_fields_rejected() {
        let e = NpuConfig::from_toml("[array]\nrowz = 4\n").unwrap_err();
        assert!(e.to_string().contains("rowz"), "{e}");
    }
}
