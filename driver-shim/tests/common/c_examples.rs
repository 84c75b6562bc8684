//! Building the C examples and running them under LD_PRELOAD.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cdylib cargo built next to this test binary.
pub fn preload_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        let p = dir.join("libnpukit_shim.so");
        if p.exists() {
            return p;
        }
    }
    panic!("libnpukit_shim.so not found near {}", exe.display());
}

/// Compiles `examples/c/<name>.c` into the test's temp folder.
pub fn build_example(name: &str) -> PathBuf {
    build_c("examples/c", name)
}

/// Compiles `<dir>/<name>.c` (a folder of this crate) into the test's temp
/// folder, with the examples' and the C tests' headers on the include path.
pub fn build_c(dir: &str, name: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-examples");
    std::fs::create_dir_all(&out).unwrap();
    // Tests run in parallel: each build gets its own file.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let exe = out.join(format!("{name}-{}-{n}", std::process::id()));
    let src = manifest().join(dir).join(format!("{name}.c"));
    let r = Command::new("cc")
        .args([
            "-std=gnu11",
            "-O1",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pthread",
        ])
        .arg("-I")
        .arg(manifest().join("include"))
        .arg("-I")
        .arg(manifest().join("../firmware-abi/include"))
        .arg("-I")
        .arg(manifest().join("examples/c"))
        .arg("-I")
        .arg(manifest().join("tests/c"))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("cc must be installed");
    assert!(
        r.status.success(),
        "cc {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&r.stderr)
    );
    exe
}

pub fn run_preloaded(exe: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(exe);
    c.env("LD_PRELOAD", preload_lib());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}
