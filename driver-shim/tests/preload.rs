//! The C examples, compiled with `cc -Wall -Wextra -Werror`, run unmodified
//! under `LD_PRELOAD=libnpukit_shim.so` against the model, the Verilated RTL
//! and the two in lockstep: a user-mode driver with a bit-exact GEMM and its
//! error paths, a multi-threaded client and a multi-process client. (`cargo
//! test` builds the library with the RTL, through the dev-dependency on
//! npukit-rtl with its `verilator` feature.)
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::c_examples::*;

fn check(name: &str, expect: &[&str]) {
    check_c("examples/c", name, expect)
}

fn check_c(dir: &str, name: &str, expect: &[&str]) {
    let exe = build_c(dir, name);
    let out = run_preloaded(&exe, &[("NPUKIT_BACKEND", "model")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for e in expect {
        assert!(stdout.contains(e), "{name}: no {e:?} in\n{stdout}");
    }
}

#[test]
fn gemm_driver_runs_bit_exact_under_ld_preload() {
    check(
        "gemm",
        &[
            "16x16 array",
            "platform 0",
            "bit-exact",
            "error paths as documented",
            "ok",
        ],
    );
}

/// The C negative tests (`tests/c/negative.c`), which also run against the
/// kernel module in the QEMU guest (scripts/guest-test.sh): every documented
/// errno, the same program on both drivers.
#[test]
fn c_negative_tests_pass_under_ld_preload() {
    check_c(
        "tests/c",
        "negative",
        &[
            "ok handle_zero_and_unknown_handles",
            "ok an_unfinished_job_is_ebusy_and_a_short_wait_etimedout",
            "12 negative cases as documented",
        ],
    );
}

/// The C recovery test (`tests/c/hang.c`, also run in the guest): a hung
/// job aborted by the watchdog, a reset job aborted, the rest bit-exact.
#[test]
fn c_hang_test_passes_under_ld_preload() {
    check_c(
        "tests/c",
        "hang",
        &[
            "job 2: status 2 error 0x100",
            "job 4: status 2 error 0x101",
            "the other jobs bit-exact",
            "a file closed with its job hung: the next job runs bit-exact",
            "ok",
        ],
    );
}

/// The C isolation test (`tests/c/isolation.c`, also run in the guest):
/// another context's BO faults and stays unchanged; a read-only BO is not
/// written.
#[test]
fn c_isolation_test_passes_under_ld_preload() {
    check_c(
        "tests/c",
        "isolation",
        &[
            "another context's BO: XLAT_FAULT at its address, unchanged",
            "read-only BO: LOAD ok, STORE XLAT_WRITE, unchanged",
            "ok",
        ],
    );
}

/// The C long-job test (`tests/c/long.c`, also run in the guest): a job of
/// 2004 descriptors through a ring of 256.
#[test]
fn c_long_job_test_passes_under_ld_preload() {
    check_c(
        "tests/c",
        "long",
        &[
            "2004 descriptors (ring of 256): bit-exact, 2005 descriptors counted",
            "ok",
        ],
    );
}

#[test]
fn multi_threaded_client() {
    check(
        "mt",
        &["6 threads (2 sharing a file) x 6 jobs bit-exact", "ok"],
    );
}

#[test]
fn multi_process_client() {
    check("mp", &["3 processes bit-exact", "ok"]);
}

#[test]
fn without_the_device_files_pass_through() {
    let exe = build_example("gemm");
    // Without LD_PRELOAD the device does not exist on this machine.
    if !Path::new("/dev/accel/accel0").exists() {
        let out = Command::new(&exe).output().unwrap();
        assert!(!out.status.success());
    }
}

/// Runs `examples/c/<name>` under LD_PRELOAD on `backend`; its stdout.
fn run_on(exe: &Path, backend: &str, env: &[(&str, &str)]) -> String {
    let mut all = vec![("NPUKIT_BACKEND", backend)];
    all.extend_from_slice(env);
    let t = std::time::Instant::now();
    let out = run_preloaded(exe, &all);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{} on {backend} {env:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{} on {backend} {env:?}: {:.1} s",
        exe.display(),
        t.elapsed().as_secs_f64()
    );
    stdout
}

/// The output with the platform number blanked (the one thing that differs).
fn but_platform(s: &str) -> String {
    s.replace("platform 0", "platform _")
        .replace("platform 1", "platform _")
        .replace("platform 2", "platform _")
}

#[test]
fn the_c_example_runs_unmodified_on_the_model_the_rtl_and_in_lockstep() {
    let exe = build_example("gemm");
    let model = run_on(&exe, "model", &[]);
    assert!(
        model.contains("16x16 array") && model.contains("platform 0"),
        "{model}"
    );
    assert!(model.contains("GEMM 24x16x16 bit-exact"), "{model}");
    for (backend, platform) in [("rtl", "platform 1"), ("lockstep", "platform 2")] {
        let out = run_on(&exe, backend, &[]);
        assert!(out.contains(platform), "{backend}: {out}");
        // Bit-exact (checked by the program against its CPU GEMM), the same
        // error paths, the same lines.
        assert_eq!(but_platform(&out), but_platform(&model), "{backend}");
    }
    // The 4x4 variant, chosen by the configuration file.
    let cfg = manifest().join("../configs/4x4.toml");
    let env = [("NPUKIT_CONFIG", cfg.to_str().unwrap())];
    let model = run_on(&exe, "model", &env);
    assert!(model.contains("GEMM 24x4x4 bit-exact"), "{model}");
    for backend in ["rtl", "lockstep"] {
        let out = run_on(&exe, backend, &env);
        assert_eq!(but_platform(&out), but_platform(&model), "{backend} 4x4");
    }
}

#[test]
fn threads_and_scripted_faults_in_lockstep() {
    let cfg = manifest().join("../configs/4x4.toml");
    let cfg = cfg.to_str().unwrap();
    let out = run_on(&build_example("mt"), "lockstep", &[("NPUKIT_CONFIG", cfg)]);
    assert!(out.contains("bit-exact"), "{out}");
    // Hangs and resets are the driver's (FaultDevice), so both sides see them.
    let env = [
        ("NPUKIT_CONFIG", cfg),
        ("NPUKIT_FAULTS", "2:hang 4:reset+30"),
        ("NPUKIT_WATCHDOG_CYCLES", "20000"),
    ];
    let jobs = build_example("jobs");
    let model = run_on(&jobs, "model", &env);
    assert!(model.contains("job 2: aborted error 0x100"), "{model}");
    assert_eq!(run_on(&jobs, "lockstep", &env), model);
}

#[test]
fn a_lockstep_divergence_fails_the_job_loudly() {
    let exe = build_example("gemm");
    let out = run_preloaded(
        &exe,
        &[
            ("NPUKIT_BACKEND", "lockstep"),
            ("NPUKIT_RTL_VARIANT", "npu_4x4_offbyone"),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "npukit-shim: device lost",
        "lockstep: the model and the RTL (npu_4x4_offbyone) diverged",
        "DIVERGENCE at cycle",
        "Dispatch",
        // umd.h's check of the WAIT status: ERROR, DRM_NPUKIT_ERR_LOST.
        "status 1 error 0x103",
    ] {
        assert!(err.contains(want), "no {want:?} in\n{err}");
    }
}

#[test]
fn rtl_with_a_configuration_no_variant_matches_is_a_clear_error() {
    let cfg = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("8x32-rtl.toml");
    std::fs::write(&cfg, "[array]\nrows = 8\ncols = 32\n").unwrap();
    let exe = build_example("gemm");
    for backend in ["rtl", "lockstep"] {
        let out = run_preloaded(
            &exe,
            &[
                ("NPUKIT_BACKEND", backend),
                ("NPUKIT_CONFIG", cfg.to_str().unwrap()),
            ],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "backend {backend}: no RTL variant matches the configuration"
            )),
            "{err}"
        );
        assert!(
            err.contains("the configuration came from NPUKIT_CONFIG="),
            "{err}"
        );
        assert!(
            err.contains("`array.cols` = 32, but the closest variant npu_8x8 has 8"),
            "{err}"
        );
        assert!(
            err.contains("No such device"),
            "open fails with ENODEV: {err}"
        );
    }
    let out = run_preloaded(
        &exe,
        &[("NPUKIT_BACKEND", "rtl"), ("NPUKIT_RTL_VARIANT", "npu_3x3")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown RTL variant `npu_3x3`"), "{err}");
}

#[test]
fn a_different_array_shape_from_npukit_config() {
    let cfg = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("8x32.toml");
    std::fs::write(&cfg, "[array]\nrows = 8\ncols = 32\n").unwrap();
    let exe = build_example("gemm");
    let out = run_preloaded(&exe, &[("NPUKIT_CONFIG", cfg.to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("8x32 array"), "{stdout}");
}

#[test]
fn faults_scripted_by_environment_variable_and_file() {
    let exe = build_example("jobs");
    let want = "job 1: ok error 0 addr 0\n\
                job 2: aborted error 0x100 addr 0\n\
                job 3: ok error 0 addr 0\n\
                job 4: aborted error 0x101 addr 0\n\
                job 5: ok error 0 addr 0\n";
    let out = run_preloaded(
        &exe,
        &[
            ("NPUKIT_FAULTS", "2:hang 4:reset+30"),
            ("NPUKIT_WATCHDOG_CYCLES", "20000"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults.txt");
    std::fs::write(&file, "# hang the second job\n2:hang\n4:reset+30\n").unwrap();
    let at = format!("@{}", file.display());
    let out = run_preloaded(
        &exe,
        &[
            ("NPUKIT_FAULTS", at.as_str()),
            ("NPUKIT_WATCHDOG_CYCLES", "20000"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);

    let out = run_preloaded(&exe, &[("NPUKIT_FAULTS", "2:melt")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"2:melt\": unknown fault kind"), "{err}");
}

#[test]
fn npukit_trace_writes_the_combined_timeline_at_the_last_close() {
    let exe = build_example("jobs");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("preload-trace.json");
    let _ = std::fs::remove_file(&path);
    let out = run_preloaded(&exe, &[("NPUKIT_TRACE", path.to_str().unwrap())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = npukit_traces::read::read_perfetto(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(info.processes.get(&2).map(String::as_str), Some("driver"));
    for n in 1..=5 {
        assert!(
            info.slice_names.contains_key(&format!("job {n} (seq {n})")),
            "{info:?}"
        );
    }
    assert_eq!(info.slice_names.get("SUBMIT"), Some(&5));
    assert!(
        info.slices_on(&["compute"]) >= 5,
        "one MATMUL per job on the NPU tracks"
    );
}

#[test]
fn sysfs_discovery_debugfs_status_and_fault_inject() {
    let exe = build_example("discover");
    let out = run_preloaded(&exe, &[("NPUKIT_WATCHDOG_CYCLES", "20000")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "accel0: 261:0, 16 rows, platform model",
        "job 2: status 2 error 0x100",
        "jobs accepted: 2",
        "faults scripted: 1",
        "ok",
    ] {
        assert!(stdout.contains(want), "no {want:?} in\n{stdout}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fault_inject") && err.contains("2:melt"),
        "{err}"
    );
}

#[test]
fn bad_settings_make_open_fail_with_a_message_naming_them() {
    let exe = build_example("gemm");
    for (var, val, msg) in [
        (
            "NPUKIT_MEM_MB",
            "lots",
            "NPUKIT_MEM_MB=\"lots\": not a whole number",
        ),
        (
            "NPUKIT_BACKEND",
            "fpga",
            "NPUKIT_BACKEND=\"fpga\" is not one of model, rtl, lockstep",
        ),
        ("NPUKIT_CONFIG", "/nonexistent.toml", "/nonexistent.toml"),
    ] {
        let out = run_preloaded(&exe, &[(var, val)]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{var}: {err}");
        assert!(err.contains("No such device"), "{var}: {err}");
    }
}
