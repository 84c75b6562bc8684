//! The result cache: one JSON file per finished point, named by a hash of
//! everything its result depends on — the resolved configuration, the workload
//! file's bytes, the cycle limit, the tool's version and a fingerprint of the
//! model's and compiler's source code (`build.rs`). Re-running a finished sweep
//! therefore simulates nothing, and any change to the model re-simulates
//! everything. Files are written atomically (temporary file, then rename), so an
//! interrupted sweep leaves only whole entries behind.

use std::path::{Path, PathBuf};

use npukit_sim::NpuConfig;

use crate::simulate::SimResult;
use crate::sweep::sha256_hex;
use crate::ExploreError;

/// The version of npukit and the fingerprint of the simulation code.
pub fn tool_version() -> String {
    format!(
        "npukit {} code {}",
        env!("CARGO_PKG_VERSION"),
        env!("NPUKIT_EXPLORE_CODE_HASH")
    )
}

/// The cache key of a point.
pub fn key(cfg: &NpuConfig, workload_hash: &str, max_cycles: u64) -> String {
    sha256_hex(&[
        tool_version().as_bytes(),
        cfg.to_toml().as_bytes(),
        workload_hash.as_bytes(),
        &max_cycles.to_le_bytes(),
    ])
}

/// A folder of cached results.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(dir: &Path) -> Result<Cache, ExploreError> {
        std::fs::create_dir_all(dir).map_err(|e| ExploreError::io(dir, e))?;
        Ok(Cache {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The cached result, if there is a readable one (an unreadable entry is
    /// treated as missing and overwritten by the next run).
    pub fn get(&self, key: &str) -> Option<SimResult> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn put(&self, key: &str, r: &SimResult) -> Result<(), ExploreError> {
        let p = self.path(key);
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let bytes = serde_json::to_vec(r).map_err(|e| ExploreError::Internal(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| ExploreError::io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| ExploreError::io(&p, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_config_workload_and_limit() {
        let a = NpuConfig::default();
        let mut b = a.clone();
        b.dram.latency += 1;
        let k = key(&a, "w", 10);
        assert_eq!(k, key(&a, "w", 10));
        assert_ne!(k, key(&b, "w", 10));
        assert_ne!(k, key(&a, "v", 10));
        assert_ne!(k, key(&a, "w", 11));
    }

    #[test]
    fn entries_round_trip_and_garbage_is_a_miss() {
        let d = std::env::temp_dir().join(format!("npukit-cache-{}", std::process::id()));
        let c = Cache::new(&d).unwrap();
        let r = SimResult {
            cycles: 42,
            ..SimResult::default()
        };
        assert_eq!(c.get("k"), None);
        c.put("k", &r).unwrap();
        assert_eq!(c.get("k"), Some(r));
        std::fs::write(d.join("bad.json"), "{ not json").unwrap();
        assert_eq!(c.get("bad"), None);
        std::fs::remove_dir_all(&d).ok();
    }
}
