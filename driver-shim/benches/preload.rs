//! The cost of the driver path, through the LD_PRELOAD library as a C program
//! sees it (`ioctl` on a descriptor of `/dev/accel/accel0`) and through the
//! Rust API:
//!
//! * `preload/get_param`: one GET_PARAM round trip.
//! * `preload/empty_job`: SUBMIT of a one-NOP job and its WAIT (the driver
//!   adds its FENCE; the model runs the two descriptors).
//! * `rust/get_param`, `rust/empty_job`: the same through `npukit_shim::File`.
//!
//! The bench re-executes itself with `LD_PRELOAD` pointing at the cdylib
//! cargo built (`libnpukit_shim.so`), so the `ioctl` calls below are the
//! interposed ones. Run: `cargo bench -p npukit-shim --bench preload`.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use criterion::{criterion_group, Criterion};
use npukit_shim::uapi::{self, BoCreate, GetParam, Submit, Wait};

fn preload_lib() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    [deps, deps.parent()?]
        .iter()
        .map(|d| d.join("libnpukit_shim.so"))
        .find(|p| p.exists())
}

/// Re-executes this bench under LD_PRELOAD unless that is already the case.
fn ensure_preloaded() {
    if std::env::var_os("NPUKIT_BENCH_PRELOADED").is_some() {
        return;
    }
    let Some(lib) = preload_lib() else {
        eprintln!("libnpukit_shim.so not found next to the bench; build the crate first");
        std::process::exit(1);
    };
    let Ok(exe) = std::env::current_exe() else {
        std::process::exit(1);
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("LD_PRELOAD", lib)
        .env("NPUKIT_BENCH_PRELOADED", "1")
        .exec();
    eprintln!("cannot re-execute the bench under LD_PRELOAD: {err}");
    std::process::exit(1);
}

fn ioctl<T>(fd: i32, req: u32, arg: &mut T) -> i32 {
    // SAFETY: arg points to a live uapi struct of the size the request encodes.
    unsafe { libc::ioctl(fd, req as libc::c_ulong, arg as *mut T) }
}

/// A one-NOP command BO; returns its handle.
fn nop_bo(fd: i32) -> u32 {
    let mut c = BoCreate {
        size: 4096,
        ..BoCreate::default()
    };
    assert_eq!(ioctl(fd, uapi::DRM_IOCTL_NPUKIT_BO_CREATE, &mut c), 0);
    // A NOP is all zeros, and new BOs are zeroed: nothing to write.
    c.handle
}

fn bench_preload(c: &mut Criterion) {
    let path = CString::new("/dev/accel/accel0").unwrap_or_default();
    // SAFETY: a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR) };
    assert!(
        fd >= 0,
        "open /dev/accel/accel0 failed: not running under the preload library?"
    );
    let mut g = c.benchmark_group("preload");
    g.bench_function("get_param", |b| {
        let mut p = GetParam {
            param: uapi::param::ARRAY_ROWS,
            ..GetParam::default()
        };
        b.iter(|| {
            assert_eq!(ioctl(fd, uapi::DRM_IOCTL_NPUKIT_GET_PARAM, &mut p), 0);
            p.value
        })
    });
    let cmd = nop_bo(fd);
    g.bench_function("empty_job", |b| {
        b.iter(|| {
            let mut s = Submit {
                cmd_handle: cmd,
                cmd_length: 32,
                ..Submit::default()
            };
            assert_eq!(ioctl(fd, uapi::DRM_IOCTL_NPUKIT_SUBMIT, &mut s), 0);
            let mut w = Wait {
                seq: s.seq,
                timeout_ns: i64::MAX,
                ..Wait::default()
            };
            assert_eq!(ioctl(fd, uapi::DRM_IOCTL_NPUKIT_WAIT, &mut w), 0);
            assert_eq!(w.status, uapi::status::OK);
        })
    });
    g.finish();
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
}

fn bench_rust(c: &mut Criterion) {
    let shim = npukit_shim::Shim::new(npukit_shim::Options::default()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let f = shim.open().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let mut g = c.benchmark_group("rust");
    g.bench_function("get_param", |b| {
        b.iter(|| f.param(uapi::param::ARRAY_ROWS).unwrap_or(0))
    });
    let cmd = f.create_bo(4096, 0).map(|b| b.handle).unwrap_or(0);
    g.bench_function("empty_job", |b| {
        b.iter(|| {
            let seq = f.submit_job(cmd, 0, 32, &[]).unwrap_or(0);
            let w = f.wait_job(seq, i64::MAX / 2).unwrap_or_default();
            assert_eq!(w.status, uapi::status::OK);
        })
    });
    g.finish();
}

criterion_group!(benches, bench_preload, bench_rust);

fn main() {
    ensure_preloaded();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
