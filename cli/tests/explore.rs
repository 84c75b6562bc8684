//! `npukit explore` as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn npukit(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_npukit"));
    c.args(args);
    c.args(paths);
    c.output().expect("runs")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("npukit-cli-explore-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn sweep(dir: &Path, axes: &str) -> PathBuf {
    let w = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workloads/mlp-small.json");
    let p = dir.join("sweep.toml");
    std::fs::write(
        &p,
        format!("name = \"cli\"\nworkloads = [\"{}\"]\n{axes}", w.display()),
    )
    .expect("write");
    p
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn explore_writes_everything_then_resumes_from_the_cache() {
    let d = tmp("run");
    let s = sweep(&d, "[[axis]]\nfield = \"array.rows\"\nvalues = [8, 16]\n");
    let out = d.join("out");
    let o = npukit(&["explore"], &[&s, Path::new("--out"), &out]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("2 points: 2 simulated, 0 from the cache, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("## mlp-small"), "{stdout}");
    for f in [
        "results.csv",
        "results.json",
        "summary.md",
        "report.html",
        "plots/roofline.png",
    ] {
        assert!(out.join(f).is_file(), "{f} not written");
    }
    let o = npukit(&["explore"], &[&s, Path::new("--out"), &out]);
    let (stdout, _) = text(&o);
    assert!(
        stdout.contains("2 points: 0 simulated, 2 from the cache"),
        "{stdout}"
    );

    // Shards through the command line, merged.
    for k in ["1/2", "2/2"] {
        let o = npukit(
            &["explore", "--shard", k],
            &[&s, Path::new("--out"), &d.join(k.replace('/', "of"))],
        );
        assert!(o.status.success(), "{:?}", text(&o));
    }
    let merged = d.join("merged");
    let o = npukit(
        &["explore", "merge"],
        &[
            &d.join("1of2"),
            &d.join("2of2"),
            Path::new("--out"),
            &merged,
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(
        std::fs::read(merged.join("results.csv")).unwrap(),
        std::fs::read(out.join("results.csv")).unwrap()
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn explore_bad_inputs_get_one_clear_line() {
    let d = tmp("bad");
    let s = sweep(&d, "[[axis]]\nfield = \"array.banana\"\nvalues = [1]\n");
    let o = npukit(&["explore"], &[&s]);
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(stderr.contains("`array.banana` is not a field"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let good = sweep(&d, "");
    let o = npukit(&["explore", "--shard", "3/2"], &[&good]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("--shard `3/2`"), "{:?}", text(&o));

    let e = d.join("energy.toml");
    std::fs::write(&e, "name = \"x\"\n").unwrap();
    let o = npukit(
        &["explore", "--energy"],
        &[&e, &good, Path::new("--out"), &d.join("o")],
    );
    let (_, stderr) = text(&o);
    assert!(!o.status.success());
    assert!(
        stderr.contains("energy.toml") && stderr.contains("missing field"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&d).ok();
}
