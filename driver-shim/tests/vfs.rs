//! The device's sysfs and debugfs files from Rust.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;

use npukit_shim::uapi::{err, status};
use npukit_shim::vfs;

#[test]
fn sysfs_and_debugfs_contents() {
    let s = shim();
    assert_eq!(
        vfs::read(&s, "/sys/class/accel/accel0/dev").unwrap(),
        "261:0\n"
    );
    assert_eq!(
        vfs::read(&s, "/sys/class/accel/accel0/device/array_cols").unwrap(),
        "16\n"
    );
    assert_eq!(
        vfs::read(&s, "/sys/class/accel/accel0/device/abi_version").unwrap(),
        format!("{}.{}\n", npukit_abi::ABI_MAJOR, npukit_abi::ABI_MINOR)
    );
    assert!(vfs::read(&s, "/sys/class/accel/accel0/nope").is_none());
    assert!(vfs::read(&s, "/etc/passwd").is_none());
    let regs = vfs::read(&s, "/sys/kernel/debug/accel/0/regs").unwrap();
    assert!(
        regs.lines()
            .any(|l| l.contains("ID") && l.ends_with("0x4e50554b")),
        "{regs}"
    );
    assert_eq!(regs.lines().count(), npukit_abi::regs::REGISTERS.len());

    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 1);
    g.submit(&f);
    let st = vfs::read(&s, "/sys/kernel/debug/accel/0/status").unwrap();
    assert!(
        st.contains("contexts: 1") && st.contains("running: job 1 (context"),
        "{st}"
    );
}

#[test]
fn fault_inject_adds_faults_and_rejects_bad_scripts() {
    let s = shim_with(|o| o.watchdog_cycles = 10_000);
    assert!(vfs::write_faults(&s, "1:melt").is_err());
    assert_eq!(vfs::write_faults(&s, "1:hang # first job\n").unwrap(), 1);
    assert_eq!(vfs::read(&s, vfs::FAULT_INJECT).unwrap(), "1:hang+0\n");
    let f = s.open().unwrap();
    let g = Gemm::new(&f, 8, 16, 16, 2);
    let w = f.wait_job(g.submit(&f), 30 * SEC).unwrap();
    assert_eq!((w.status, w.error_code), (status::ABORTED, err::HANG));
}
