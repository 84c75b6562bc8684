//! `npukit cosim` as a user runs it: a program in lockstep, random programs,
//! the broken variant caught with a report, a configuration no variant matches.

use std::path::PathBuf;
use std::process::{Command, Output};

fn npukit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_npukit"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("npukit-cosim-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

const PROGRAM: &str = "\
LOAD   local=0 dram=0x1000 rows=4 row_bytes=16
LOAD   local=256 dram=0x2000 rows=4 row_bytes=4 signal_next
MATMUL a=0 w=256 out=0 m=4 k=4 n=4 wait_prev signal_next
STORE  local=0 dram=0x3000 rows=4 row_bytes=16 acc wait_prev
FENCE  seq=1 irq
";

/// True when this build has the RTL; otherwise checks the command says how to get it.
fn rtl_or_explains(o: &Output) -> bool {
    if npukit_rtl::variant::verilator_available() {
        return true;
    }
    let t = text(o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("apt-get install -y verilator") || t.contains("--features cosim"),
        "{t}"
    );
    false
}

#[test]
fn broken_variant_diverges_with_a_report_and_traces() {
    let dir = tmp("broken");
    let prog = dir.join("p.s");
    std::fs::write(&prog, PROGRAM).unwrap();
    let out = dir.join("out");
    let o = npukit()
        .args(["cosim", "--variant", "npu_4x4_offbyone", "--out"])
        .arg(&out)
        .arg(&prog)
        .output()
        .expect("runs");
    if !rtl_or_explains(&o) {
        return;
    }
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("DIVERGENCE at cycle"), "{t}");
    assert!(t.contains(", Dispatch"), "{t}");
    assert!(t.contains("last "), "{t}");
    let report = std::fs::read_to_string(out.join("divergence.txt")).unwrap();
    assert!(report.contains("DIVERGENCE at cycle"), "{report}");
    for side in ["model", "rtl"] {
        let json = std::fs::read(out.join(format!("{side}.trace.json"))).unwrap();
        npukit_traces::read::read_perfetto(&json).unwrap();
    }
}

#[test]
fn program_and_random_programs_in_lockstep() {
    let dir = tmp("ok");
    let prog = dir.join("p.s");
    std::fs::write(&prog, PROGRAM).unwrap();
    let cfg = root().join("configs/4x4.toml");
    let vcd = dir.join("rtl.vcd");
    let o = npukit()
        .args(["cosim", "--config"])
        .arg(&cfg)
        .arg("--vcd")
        .arg(&vcd)
        .arg("--out")
        .arg(dir.join("out"))
        .arg(&prog)
        .output()
        .expect("runs");
    if !rtl_or_explains(&o) {
        return;
    }
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("no divergence"), "{t}");
    assert!(t.contains("completed in"), "{t}");
    let v = std::fs::read_to_string(&vcd).unwrap();
    assert!(v.contains("$enddefinitions"), "VCD written");

    let o = npukit()
        .args([
            "cosim", "--random", "--seed", "5", "--count", "3", "--config",
        ])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("out2"))
        .output()
        .expect("runs");
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("3 program(s) on npu_4x4"), "{t}");
}

#[test]
fn a_config_no_variant_matches_is_refused_naming_the_field() {
    let o = npukit()
        .args(["cosim", "--config"])
        .arg(root().join("configs/32x32.toml"))
        .output()
        .expect("runs");
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    if npukit_rtl::variant::verilator_available() {
        assert!(t.contains("`array.rows` = 32"), "{t}");
    }
}

/// The number after `key` in `text` (digits only, up to the next non-digit).
fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[test]
fn a_workload_longer_than_the_ring_is_refilled_and_takes_npukit_runs_cycles() {
    // mlp-mnist on 4x4: 21,804 descriptors through the 4096-entry ring.
    let dir = tmp("long");
    let cfg = root().join("configs/4x4.toml");
    let w = root().join("workloads/mlp-mnist.json");
    let o = npukit()
        .args(["cosim", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("out"))
        .arg(&w)
        .output()
        .expect("runs");
    if !rtl_or_explains(&o) {
        return;
    }
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("no divergence"), "{t}");
    let refills = number_after(&t, "ring refills").unwrap_or(0);
    assert!(refills > 4, "{t}");
    let cosim_cycles = number_after(&t, "completed in").expect("cycles");
    let o = npukit()
        .args(["run", "--no-trace", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(dir.join("run"))
        .arg(&w)
        .output()
        .expect("runs");
    let r = text(&o);
    assert!(o.status.success(), "{r}");
    assert_eq!(number_after(&r, "  cycles"), Some(cosim_cycles), "{t}\n{r}");
}
