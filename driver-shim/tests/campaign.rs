//! The fault campaign and the soak run (`src/bin/npukit-campaign.rs`) at the
//! size CI affords: thousands of jobs from three processes and two threads
//! on one served device, with scripted faults and reads of other contexts'
//! BOs; then a soak of mixed operations with the leak checks. The program
//! checks every outcome itself and exits non-zero on any miss; its figures
//! are printed here (`cargo test -- --nocapture`) and checked once more.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_npukit-campaign"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("npukit-campaign {}:\n{stdout}", args.join(" "));
    assert!(
        out.status.success(),
        "npukit-campaign {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout
}

/// The `COUNTS k=v ...` figure `key` of the last summary line.
fn figure(out: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with("COUNTS "))
        .unwrap();
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn fault_campaign_over_processes_and_threads_on_one_device() {
    let out = run(&[
        "faults",
        "--jobs",
        "250",
        "--procs",
        "3",
        "--threads",
        "2",
        "--contexts",
        "2",
        "--seed",
        "7",
    ]);
    let jobs = figure(&out, "jobs");
    assert_eq!(jobs, 5 * 2 * 250, "every job was run and checked");
    assert_eq!(figure(&out, "as_expected"), jobs);
    for bad in [
        "wrong_status",
        "corrupted",
        "lost",
        "cross_context_reads",
        "leaks",
    ] {
        assert_eq!(figure(&out, bad), 0, "{bad}");
    }
    // Every kind of fault was exercised, and foreign reads went across
    // processes, not only across threads.
    for kind in [
        "clean",
        "hang",
        "xlat",
        "data",
        "reset",
        "foreign",
        "foreign_other_process",
    ] {
        assert!(figure(&out, kind) >= 20, "{kind}: {}", figure(&out, kind));
    }
    assert!(out.contains("device usable at the end: yes"));
}

#[test]
fn soak_of_threads_and_processes_leaks_nothing() {
    let out = run(&[
        "soak",
        "--seconds",
        "6",
        "--procs",
        "3",
        "--threads",
        "2",
        "--seed",
        "3",
    ]);
    assert!(figure(&out, "jobs") > 500, "the soak did real work");
    assert!(figure(&out, "closes") > 50);
    for bad in ["failures", "leaks", "fd_leaks"] {
        assert_eq!(figure(&out, bad), 0, "{bad}");
    }
    assert!(out.contains("npukit-campaign: all checks held"));
}
