//! The npukit compiler: from a workload (JSON, docs/workloads.md) to a command
//! stream and a memory image for the NPU, plus the exact CPU reference the NPU's
//! results are compared with, bit for bit.
//!
//! ```text
//! JSON --parse_workload--> Workload (graph IR, shape-checked)
//!      --compile(cfg)-->   Compiled { program, image, ring_base, mem_bytes, outputs, layers }
//!      --load_image / run_program / read_output--> tensors == reference(&workload)
//! ```
//!
//! * [`workload`]: the JSON format, seeded random tensors.
//! * [`graph`]: the graph IR on petgraph and the shape-check pass.
//! * [`quant`]: float scales to fixed-point multiplier/shift, bias folding.
//! * [`tiling`]: tile sizes for the array, scratchpad and accumulator.
//! * [`codegen`]: DRAM layout, steps, descriptors; `sched.rs` derives the
//!   dependency tokens.
//! * [`reference`](mod@reference): the CPU reference executor.
//!
//! ```
//! use npukit_compiler::{builtin_example, compile, load_image, read_output, reference};
//! use npukit_sim::{run::run_program, ModelDevice, NpuConfig, VecMemory};
//!
//! let w = builtin_example();
//! let cfg = NpuConfig::default();
//! let c = compile(&w, &cfg).unwrap();
//! let mut mem = VecMemory::new(c.mem_bytes as usize);
//! load_image(&c, &mut mem).unwrap();
//! let mut dev = ModelDevice::new(&cfg);
//! run_program(&mut dev, &mut mem, c.ring_base, c.program.descs(), 10_000_000).unwrap();
//! for (name, want) in reference(&w).unwrap() {
//!     assert_eq!(read_output(&c, &mem, &name).unwrap(), want);
//! }
//! ```

use std::path::Path;

pub mod codegen;
pub mod graph;
mod lower;
mod netjson;
pub mod onnx;
pub mod profile;
pub mod quant;
pub mod reference;
mod sched;
pub mod tensor;
pub mod tiling;
pub mod workload;

pub use codegen::{
    compile, compile_with, load_image, read_output, write_tensor, CompileOptions, Compiled, Im2col,
    LayerSchedule, TensorPlacement, RING_BASE,
};
pub use graph::Graph;
pub use sched::token_balance;
pub use tensor::{DType, Tensor, TensorData};
pub use tiling::{Strategy, Tiling};
pub use workload::{parse_workload, Workload};

/// Everything that can go wrong between a workload file and a program.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: {source}")]
    InFile {
        path: String,
        source: Box<CompileError>,
    },
    #[error("workload JSON: {0}")]
    Json(String),
    /// A field of the workload is missing, malformed or out of range.
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
    /// A layer is inconsistent (shapes, quantisation).
    #[error("layer {layer}: {message}")]
    Layer { layer: String, message: String },
    #[error("layer {layer} does not fit the NPU ({config}): {message}")]
    Tiling {
        layer: String,
        config: String,
        message: String,
    },
    #[error("no output tensor named `{0}`")]
    UnknownOutput(String),
    #[error("device memory of {size} bytes is smaller than the {needed} bytes needed")]
    MemoryTooSmall { needed: u64, size: u64 },
    #[error("invalid NPU configuration: {0}")]
    Config(String),
    #[error("internal compiler error: {0}")]
    Internal(String),
}

/// Reads and parses a workload file: JSON, or ONNX (by the `.onnx` extension).
pub fn load_workload(path: &Path) -> Result<Workload, CompileError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
    {
        let bytes = std::fs::read(path).map_err(|e| CompileError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let name = path
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        return onnx::parse_onnx(&bytes, &name).map_err(|e| CompileError::InFile {
            path: path.display().to_string(),
            source: Box::new(e),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| CompileError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse_workload(&text).map_err(|e| CompileError::InFile {
        path: path.display().to_string(),
        source: Box::new(e),
    })
}

/// The CPU reference: the graph outputs as (name, tensor), computed with the
/// NPU's exact integer semantics.
pub fn reference(w: &Workload) -> Result<Vec<(String, Tensor)>, CompileError> {
    reference::run_graph(w.graph())
}

/// The text of the built-in example workload (`workloads/mlp-small.json`).
pub const BUILTIN_EXAMPLE_JSON: &str = include_str!("../../workloads/mlp-small.json");

/// The default workload `npukit run` uses when none is given: the mlp-small
/// network (batch 16, 256 -> 128 -> 64 -> 10, ReLU).
pub fn builtin_example() -> Workload {
    parse_workload(BUILTIN_EXAMPLE_JSON).expect("workloads/mlp-small.json is valid (tested)")
}
