//! Which device sits under the shim: the cycle-accurate model, the Verilated
//! RTL (`npukit_rtl::RtlDevice`), or both in lockstep (`npukit_rtl::Lockstep`).
//!
//! Chosen by `NPUKIT_BACKEND=model|rtl|lockstep` (default `model`), with the
//! hardware configuration from the TOML file named by `NPUKIT_CONFIG`
//! (default: the built-in default configuration). The RTL backends need a
//! checked-in RTL variant matching that configuration (`rtl/generated/
//! variants.json`: 4x4, 8x8, 16x16; `[dram]` and `[clock]` may differ), or one
//! named by `NPUKIT_RTL_VARIANT`, and a build of the shim with the RTL in it
//! (feature `rtl`, which `cargo test` turns on; Verilator installed).

use std::path::PathBuf;

use npukit_rtl::lockstep::{model_vs_rtl, ModelVsRtl};
use npukit_rtl::{variant, LockstepOptions, RtlDevice, RtlError};
use npukit_sim::{Device, DeviceMemory, EventSink, ModelDevice, NpuConfig, NullSink, RunExit};

use crate::trace::LogSink;
use crate::uapi::platform;

/// A device backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The cycle-accurate model (`npukit_sim::ModelDevice`).
    Model,
    /// The Verilated RTL (`npukit_rtl::RtlDevice`).
    Rtl,
    /// Model and RTL compared cycle by cycle (`npukit_rtl::Lockstep`).
    Lockstep,
}

/// Why no device could be made.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("NPUKIT_BACKEND={0:?} is not one of model, rtl, lockstep")]
    Unknown(String),
    #[error(
        "backend {0} is not available in this build of npukit-shim: it was built without \
         the RTL. Build it with `cargo build -p npukit-shim --features rtl` (`cargo test` \
         does this by itself); Verilator must be installed (`apt-get install -y verilator`)"
    )]
    NotAvailable(&'static str),
    #[error(
        "backend {0} is not available: npukit-rtl was built without Verilator, so no RTL \
         variant can run. Install it (`apt-get install -y verilator`) and rebuild the shim \
         with `--features rtl`: cargo picks the new `verilator` up by itself"
    )]
    NoVerilator(&'static str),
    #[error(
        "backend {backend}: {error}; the configuration came from {config}. Set NPUKIT_CONFIG \
         to a configuration of a variant (configs/4x4.toml, configs/8x8.toml, \
         configs/default.toml) or name one with NPUKIT_RTL_VARIANT"
    )]
    NoVariant {
        backend: &'static str,
        config: String,
        // Boxed: the variant-matching report is large, and every fallible
        // shim call carries this error type.
        error: Box<RtlError>,
    },
    #[error("backend {backend}: {error}")]
    Rtl {
        backend: &'static str,
        error: Box<RtlError>,
    },
    #[error("hardware configuration: {0}")]
    Config(#[from] npukit_sim::ConfigError),
}

impl BackendError {
    fn from_rtl(backend: Backend, error: RtlError) -> Self {
        let b = backend.name();
        match error {
            RtlError::FeatureOff => BackendError::NotAvailable(b),
            RtlError::NoVerilator => BackendError::NoVerilator(b),
            e @ RtlError::NoMatch { .. } => BackendError::NoVariant {
                backend: b,
                config: match std::env::var("NPUKIT_CONFIG") {
                    Ok(p) if !p.is_empty() => format!("NPUKIT_CONFIG={p}"),
                    _ => "the built-in default or Options::config".into(),
                },
                error: Box::new(e),
            },
            error => BackendError::Rtl {
                backend: b,
                error: Box::new(error),
            },
        }
    }
}

/// A device as the driver holds it: a [`Device`] that may be moved between
/// threads, and that can say when its results can no longer be trusted.
pub trait BackendDevice: Device + Send {
    /// `Some(report)` once the device is lost: the lockstep pair after its
    /// first divergence (the report), the RTL after it broke the port
    /// contract. The driver then fails the running job and every later one
    /// (`DRM_NPUKIT_ERR_LOST`) and prints the report to stderr.
    fn lost(&self) -> Option<String> {
        None
    }

    /// Whether a device that checks itself compares device memory (the
    /// lockstep pair does, per slice, by default). A host whose memory is
    /// written by someone else while the device runs (the guest CPU behind
    /// `npukit-ivshmem`) turns it off: such writes would read as divergences.
    fn set_compare_memory(&mut self, _on: bool) {}
}

impl<S: EventSink + Send> BackendDevice for ModelDevice<S> {}

/// A device from an [`crate::DeviceFactory`].
pub(crate) struct Plain(pub Box<dyn Device + Send>);

impl Device for Plain {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.0.mmio_read(offset)
    }
    fn mmio_write(&mut self, offset: u32, value: u32) {
        self.0.mmio_write(offset, value)
    }
    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        self.0.run_until(mem, cycle, stop_on_irq)
    }
    fn irq_pending(&self) -> bool {
        self.0.irq_pending()
    }
    fn cycle(&self) -> u64 {
        self.0.cycle()
    }
}

impl BackendDevice for Plain {}

/// The Verilated RTL, movable between threads.
struct Rtl<S: EventSink>(RtlDevice<S>);

// SAFETY: `RtlDevice` is not `Send` only because it owns a raw pointer to its
// Verilated model (a C++ object made by rtl/csrc/wrapper.cpp, with its own
// `VerilatedContext`). That object has no affinity to the thread that created
// it: the model is Verilated single-threaded (`threads() == 1`, no worker
// pool), it keeps no per-thread state between calls (each `eval` sets the
// thread-local task id it uses and drains its message queue before
// returning; the design has no `$display`/`$finish`), and the one check that
// a model stays on its creating thread (`VerilatedAssertOneThread`) exists
// only in `VL_DEBUG` builds, which rtl/build.rs does not make. What it must
// not see is two calls at once, and the shim guarantees that: the device
// lives inside `Core`, which only `Shim`'s mutex reaches, so every call into
// the model is made by the one thread holding the lock (`mt.c` runs six
// threads on it in the tests). The pointer is owned (freed once, in
// `RtlDevice`'s Drop) and never shared.
unsafe impl<S: EventSink + Send> Send for Rtl<S> {}

impl<S: EventSink> Device for Rtl<S> {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.0.mmio_read(offset)
    }
    fn mmio_write(&mut self, offset: u32, value: u32) {
        self.0.mmio_write(offset, value)
    }
    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        self.0.run_until(mem, cycle, stop_on_irq)
    }
    fn irq_pending(&self) -> bool {
        self.0.irq_pending()
    }
    fn cycle(&self) -> u64 {
        self.0.cycle()
    }
}

impl<S: EventSink + Send> BackendDevice for Rtl<S> {
    fn lost(&self) -> Option<String> {
        let v = self.0.violations();
        let first = v.first()?;
        Some(format!(
            "the RTL ({}) broke the port contract of docs/rtl.md {} time(s); first at \
             cycle {}: {}",
            self.0.variant().name,
            v.len(),
            first.cycle,
            first.what
        ))
    }
}

/// The model and the RTL in lockstep, movable between threads. When tracing,
/// the model's events, once compared, go to the trace log.
struct Pair {
    ls: ModelVsRtl,
    sink: Option<LogSink>,
    forwarded: usize,
}

// SAFETY: `Lockstep` is not `Send` because of its `RtlDevice` (see `Rtl`
// above: the Verilated model may move between threads as long as one thread
// at a time calls it, which the shim's mutex guarantees) and of its optional
// progress callback, which the shim never sets. The model side and the
// shadow memory are plain data.
unsafe impl Send for Pair {}

impl Pair {
    fn forward(&mut self) {
        if let Some(s) = self.sink.as_mut() {
            let all = self.ls.all_events()[0];
            for (c, e) in &all[self.forwarded.min(all.len())..] {
                s.event(*c, e.clone());
            }
            self.forwarded = all.len();
        }
    }
}

impl Device for Pair {
    fn mmio_read(&mut self, offset: u32) -> u32 {
        self.ls.mmio_read(offset)
    }
    fn mmio_write(&mut self, offset: u32, value: u32) {
        self.ls.mmio_write(offset, value)
    }
    fn run_until(&mut self, mem: &mut dyn DeviceMemory, cycle: u64, stop_on_irq: bool) -> RunExit {
        let exit = self.ls.run_until(mem, cycle, stop_on_irq);
        self.forward();
        exit
    }
    fn irq_pending(&self) -> bool {
        self.ls.irq_pending()
    }
    fn cycle(&self) -> u64 {
        self.ls.cycle()
    }
}

impl BackendDevice for Pair {
    fn set_compare_memory(&mut self, on: bool) {
        self.ls.set_compare_memory(on);
    }

    fn lost(&self) -> Option<String> {
        self.ls.divergence().map(|d| {
            format!(
                "lockstep: the model and the RTL ({}) diverged\n{d}",
                self.ls.b().variant().name
            )
        })
    }
}

impl Backend {
    pub fn parse(s: &str) -> Result<Self, BackendError> {
        match s.trim() {
            "" | "model" => Ok(Backend::Model),
            "rtl" => Ok(Backend::Rtl),
            "lockstep" => Ok(Backend::Lockstep),
            other => Err(BackendError::Unknown(other.to_string())),
        }
    }

    /// From `NPUKIT_BACKEND` (unset means the model).
    pub fn from_env() -> Result<Self, BackendError> {
        Self::parse(&std::env::var("NPUKIT_BACKEND").unwrap_or_default())
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Model => "model",
            Backend::Rtl => "rtl",
            Backend::Lockstep => "lockstep",
        }
    }

    /// The `DRM_NPUKIT_PARAM_PLATFORM` value.
    pub fn platform(self) -> u64 {
        match self {
            Backend::Model => platform::MODEL,
            Backend::Rtl => platform::RTL,
            Backend::Lockstep => platform::LOCKSTEP,
        }
    }

    /// The configuration this backend runs for `cfg`: `cfg` itself, except
    /// that the RTL backends with a variant named take its fixed fields
    /// (everything but `[dram]` and `[clock]`).
    pub fn resolve_config(
        self,
        cfg: &NpuConfig,
        rtl_variant: Option<&str>,
    ) -> Result<NpuConfig, BackendError> {
        match (self, rtl_variant) {
            (Backend::Model, _) | (_, None) => Ok(cfg.clone()),
            (_, Some(name)) => variant::all()
                .find(|v| v.name == name)
                .map(|v| v.apply(cfg))
                .ok_or_else(|| {
                    BackendError::from_rtl(
                        self,
                        RtlError::UnknownVariant {
                            name: name.to_string(),
                            known: variant::all()
                                .map(|v| v.name)
                                .collect::<Vec<_>>()
                                .join(", "),
                        },
                    )
                }),
        }
    }

    /// A fresh device of this kind.
    pub fn open(self, cfg: &NpuConfig) -> Result<Box<dyn BackendDevice>, BackendError> {
        self.open_traced(cfg, None, None)
    }

    /// A fresh device whose hardware events go to `sink`, when given; the RTL
    /// backends run the variant named `rtl_variant`, else the one matching
    /// `cfg`.
    pub fn open_traced(
        self,
        cfg: &NpuConfig,
        rtl_variant: Option<&str>,
        sink: Option<LogSink>,
    ) -> Result<Box<dyn BackendDevice>, BackendError> {
        cfg.validate()?;
        let rtl = |e| BackendError::from_rtl(self, e);
        Ok(match (self, sink) {
            (Backend::Model, None) => Box::new(ModelDevice::new(cfg)),
            (Backend::Model, Some(s)) => Box::new(ModelDevice::with_sink(cfg, s)),
            (Backend::Rtl, sink) => match (rtl_variant, sink) {
                (None, None) => Box::new(Rtl(RtlDevice::with_sink(cfg, NullSink).map_err(rtl)?)),
                (None, Some(s)) => Box::new(Rtl(RtlDevice::with_sink(cfg, s).map_err(rtl)?)),
                (Some(v), None) => {
                    Box::new(Rtl(RtlDevice::with_variant(v, cfg, NullSink).map_err(rtl)?))
                }
                (Some(v), Some(s)) => {
                    Box::new(Rtl(RtlDevice::with_variant(v, cfg, s).map_err(rtl)?))
                }
            },
            (Backend::Lockstep, sink) => {
                let opts = LockstepOptions {
                    // The model's events go to the trace once compared.
                    keep_events: sink.is_some(),
                    ..LockstepOptions::default()
                };
                let ls = model_vs_rtl(cfg, rtl_variant, None, opts).map_err(rtl)?;
                Box::new(Pair {
                    ls,
                    sink,
                    forwarded: 0,
                })
            }
        })
    }
}

/// The hardware configuration named by `NPUKIT_CONFIG`, or the default.
pub fn config_from_env() -> Result<NpuConfig, BackendError> {
    match std::env::var_os("NPUKIT_CONFIG") {
        Some(p) if !p.is_empty() => Ok(NpuConfig::load(&PathBuf::from(p))?),
        _ => Ok(NpuConfig::default()),
    }
}

/// The RTL variant named by `NPUKIT_RTL_VARIANT`, if any.
pub fn rtl_variant_from_env() -> Option<String> {
    std::env::var("NPUKIT_RTL_VARIANT")
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_open() {
        assert_eq!(Backend::parse("model").unwrap(), Backend::Model);
        assert_eq!(Backend::parse("").unwrap(), Backend::Model);
        assert!(matches!(
            Backend::parse("fpga"),
            Err(BackendError::Unknown(_))
        ));
        let cfg = NpuConfig::default();
        assert!(Backend::Model.open(&cfg).is_ok());
        // `cargo test` builds the shim with the RTL (dev-dependency feature).
        assert!(variant::verilator_available(), "{}", RtlError::NoVerilator);
        assert!(Backend::Rtl.open(&cfg).is_ok());
        assert!(Backend::Lockstep.open(&cfg).is_ok());
    }

    #[test]
    fn a_build_without_the_rtl_says_how_to_get_it() {
        let e = BackendError::from_rtl(Backend::Rtl, RtlError::FeatureOff).to_string();
        assert!(
            e.contains("backend rtl is not available in this build"),
            "{e}"
        );
        assert!(e.contains("--features rtl"), "{e}");
        let e = BackendError::from_rtl(Backend::Lockstep, RtlError::NoVerilator).to_string();
        assert!(e.contains("backend lockstep"), "{e}");
        assert!(e.contains("apt-get install -y verilator"), "{e}");
    }

    #[test]
    fn a_configuration_without_a_variant_names_the_field() {
        let mut cfg = NpuConfig::default();
        cfg.memory.spad_bytes *= 2;
        for b in [Backend::Rtl, Backend::Lockstep] {
            let e = b.open(&cfg).err().unwrap().to_string();
            assert!(
                e.contains("no RTL variant matches the configuration"),
                "{e}"
            );
            assert!(e.contains("`memory.spad_bytes`"), "{e}");
            assert!(e.contains("npu_16x16"), "{e}");
        }
    }

    #[test]
    fn a_named_variant_sets_the_fixed_fields() {
        let cfg = NpuConfig::default();
        let c = Backend::Rtl.resolve_config(&cfg, Some("npu_4x4")).unwrap();
        assert_eq!((c.array.rows, c.array.cols), (4, 4));
        assert_eq!(c.dram, cfg.dram);
        assert_eq!(
            Backend::Model
                .resolve_config(&cfg, Some("npu_4x4"))
                .unwrap()
                .array
                .rows,
            16
        );
        let e = Backend::Lockstep
            .resolve_config(&cfg, Some("npu_3x3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown RTL variant `npu_3x3`"), "{e}");
        assert!(e.contains("npu_8x8"), "{e}");
    }
}
