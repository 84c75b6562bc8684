//! The `npukit` command as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn npukit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_npukit"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("npukit-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn run_builtin_example_writes_checked_outputs() {
    let out = tmp("run");
    let o = npukit()
        .args(["run", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("reference check  PASS"), "{stdout}");
    assert!(stdout.contains("MAC utilisation"), "{stdout}");
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).expect("stats.json"))
            .expect("stats.json is JSON");
    let cycles = stats["cycles"].as_u64().expect("cycles");
    assert!(cycles > 0);
    assert!(
        stdout.contains(&format!("cycles           {cycles} ")),
        "{stdout}"
    );
    assert_eq!(stats["layers"].as_array().map(Vec::len), Some(3));
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("trace.json")).expect("trace.json"))
            .expect("trace.json is JSON");
    assert!(trace["traceEvents"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    let vcd = std::fs::read_to_string(out.join("trace.vcd")).expect("trace.vcd");
    assert!(vcd.contains("$enddefinitions"));
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn run_with_a_named_config_and_no_trace() {
    let out = tmp("run4");
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/8x32.toml");
    let o = npukit()
        .args(["run", "--no-trace", "--config", cfg, "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("8x32 array"), "{stdout}");
    assert!(!out.join("trace.json").exists());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn bad_inputs_get_one_clear_line() {
    let d = tmp("bad");
    let w = d.join("broken.json");
    std::fs::write(&w, "{ not json").expect("write");
    let o = npukit().arg("run").arg(&w).output().expect("runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken.json") && err.starts_with("npukit: error:"),
        "{err}"
    );

    let c = d.join("bad.toml");
    std::fs::write(&c, "[array]\nrows = 0\n").expect("write");
    let o = npukit()
        .args(["info", "--config"])
        .arg(&c)
        .output()
        .expect("runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("array.rows"), "{err}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn asm_disasm_round_trip() {
    let d = tmp("asm");
    let src = d.join("p.s");
    std::fs::write(
        &src,
        "LOAD local=0 dram=0x1000 rows=4 row_bytes=16 signal_next\n\
         MATMUL a=0 w=0x100 out=0 m=4 k=16 n=16 wait_prev\n\
         FENCE seq=3 irq\n",
    )
    .expect("write");
    let o = npukit().arg("asm").arg(&src).output().expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::metadata(d.join("p.bin")).expect("p.bin").len(),
        3 * 32
    );
    let o = npukit()
        .arg("disasm")
        .arg(d.join("p.bin"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines().count() == 3 && text.contains("MATMUL") && text.contains("wait_prev"),
        "{text}"
    );
    let o = npukit()
        .args([
            "asm",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/4x4.toml"),
        ])
        .arg(&src)
        .output()
        .expect("runs");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("k = 16"));
    std::fs::remove_dir_all(&d).ok();
}
