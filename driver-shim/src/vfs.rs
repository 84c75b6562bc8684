//! The files a kernel driver would create next to the device node, so that
//! discovery and debugging code works unchanged (read through the LD_PRELOAD
//! library, or from Rust with [`read`]):
//!
//! | path | content |
//! |---|---|
//! | `/sys/class/accel/accel0/dev` | `261:0` (accel major, minor) |
//! | `/sys/class/accel/accel0/device/{platform,abi_version,array_rows,array_cols,clock_mhz,mem_bytes}` | one value each |
//! | `/sys/kernel/debug/accel/0/status` | backend, clock, contexts, queue, running job, memory, ring, watchdog |
//! | `/sys/kernel/debug/accel/0/regs` | every register: offset, name, value |
//! | `/sys/kernel/debug/accel/0/fault_inject` | the fault script; text written to it (a [`crate::fault`] script) is added when the file is closed |

use crate::fault::{self, FaultParseError};
use crate::Shim;

/// The accel character-device major number.
pub const ACCEL_MAJOR: u32 = 261;
pub const SYSFS_DIR: &str = "/sys/class/accel/accel0/";
pub const DEBUGFS_DIR: &str = "/sys/kernel/debug/accel/0/";
/// The file whose writes script faults.
pub const FAULT_INJECT: &str = "/sys/kernel/debug/accel/0/fault_inject";

/// Is `path` one of the files above (or a plausible one under their folders)?
pub fn is_virtual(path: &str) -> bool {
    path.starts_with(SYSFS_DIR) || path.starts_with(DEBUGFS_DIR)
}

/// The content of a virtual file, `None` if there is no such file.
pub fn read(shim: &Shim, path: &str) -> Option<String> {
    if let Some(rel) = path.strip_prefix(SYSFS_DIR) {
        let c = shim.lock();
        let (abi, shape, clock) = c.ident();
        let v = match rel {
            "dev" => format!("{ACCEL_MAJOR}:0"),
            "device/platform" => c.options().backend.name().to_string(),
            "device/abi_version" => format!("{}.{}", abi >> 16, abi & 0xFFFF),
            "device/array_rows" => (shape & 0xFFFF).to_string(),
            "device/array_cols" => (shape >> 16).to_string(),
            "device/clock_mhz" => clock.to_string(),
            "device/mem_bytes" => c.bo_memory().to_string(),
            _ => return None,
        };
        return Some(v + "\n");
    }
    let rel = path.strip_prefix(DEBUGFS_DIR)?;
    let mut c = shim.lock();
    match rel {
        "status" => Some(c.status_text()),
        "regs" => Some(c.regs_text()),
        "fault_inject" => Some(c.faults_text()),
        _ => None,
    }
}

/// Adds the faults in `script` (text written to `fault_inject`).
pub fn write_faults(shim: &Shim, script: &str) -> Result<usize, FaultParseError> {
    let list = fault::parse(script)?;
    let n = list.len();
    for i in list {
        shim.inject(i);
    }
    Ok(n)
}
