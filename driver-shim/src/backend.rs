//! Which device sits under the shim: the model now; the RTL and the lockstep
//! pair plug in through the same [`Device`] trait once `npukit-rtl` provides
//! them (this build returns [`BackendError::NotAvailable`] for those).
//!
//! Chosen by `NPUKIT_BACKEND=model|rtl|lockstep` (default `model`), with the
//! hardware configuration from the TOML file named by `NPUKIT_CONFIG`
//! (default: the built-in default configuration).

use std::path::PathBuf;

use npukit_sim::{Device, ModelDevice, NpuConfig};

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
    #[error("backend {0} is not available in this build of npukit-shim (it needs npukit-rtl)")]
    NotAvailable(&'static str),
    #[error("hardware configuration: {0}")]
    Config(#[from] npukit_sim::ConfigError),
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

    /// A fresh device of this kind.
    pub fn open(self, cfg: &NpuConfig) -> Result<Box<dyn Device + Send>, BackendError> {
        self.open_traced(cfg, None)
    }

    /// A fresh device whose hardware events go to `sink`, when given.
    pub fn open_traced(
        self,
        cfg: &NpuConfig,
        sink: Option<LogSink>,
    ) -> Result<Box<dyn Device + Send>, BackendError> {
        cfg.validate()?;
        match (self, sink) {
            (Backend::Model, None) => Ok(Box::new(ModelDevice::new(cfg))),
            (Backend::Model, Some(s)) => Ok(Box::new(ModelDevice::with_sink(cfg, s))),
            (Backend::Rtl | Backend::Lockstep, _) => Err(BackendError::NotAvailable(self.name())),
        }
    }
}

/// The hardware configuration named by `NPUKIT_CONFIG`, or the default.
pub fn config_from_env() -> Result<NpuConfig, BackendError> {
    match std::env::var_os("NPUKIT_CONFIG") {
        Some(p) if !p.is_empty() => Ok(NpuConfig::load(&PathBuf::from(p))?),
        _ => Ok(NpuConfig::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_availability() {
        assert_eq!(Backend::parse("model").unwrap(), Backend::Model);
        assert_eq!(Backend::parse("").unwrap(), Backend::Model);
        assert!(matches!(
            Backend::parse("fpga"),
            Err(BackendError::Unknown(_))
        ));
        let cfg = NpuConfig::default();
        let e = Backend::parse("rtl").unwrap().open(&cfg).err().unwrap();
        assert!(e.to_string().contains("not available in this build"), "{e}");
        assert!(Backend::Lockstep.open(&cfg).is_err());
        assert!(Backend::Model.open(&cfg).is_ok());
    }
}
