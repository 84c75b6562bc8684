//! Sharded runs merged equal the unsharded run, byte for byte; merging refuses
//! incomplete, overlapping or foreign shards with a clear error.

mod common;

use common::*;
use npukit_explore::Shard;

#[test]
fn sharded_and_merged_equals_unsharded() {
    let d = tmp("shards");
    let s = sweep(&d, SMALL);
    let whole = d.join("whole");
    npukit_explore::run(&s, &options(&whole, None)).unwrap();
    let mut dirs = vec![];
    for k in 1..=3 {
        let out = d.join(format!("shard{k}"));
        let shard = Shard { k, n: 3 };
        let o = npukit_explore::run(&s, &options(&out, Some(shard))).unwrap();
        assert!(o.results.rows.iter().all(|r| shard.holds(r.index)));
        assert_eq!(o.summary.simulated, o.results.rows.len());
        dirs.push(out);
    }
    let merged = d.join("merged");
    let m = npukit_explore::merge(&dirs, &merged).unwrap();
    assert_eq!(m.results.rows.len(), 8);
    for f in ["results.json", "results.csv", "report.html"] {
        assert!(
            read(&whole.join(f)) == read(&merged.join(f)),
            "{f} of the merged shards differs from the unsharded run"
        );
    }

    let e = npukit_explore::merge(&dirs[..2], &d.join("m2"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing") && e.contains("points"), "{e}");
    let twice = vec![
        dirs[0].clone(),
        dirs[1].clone(),
        dirs[2].clone(),
        dirs[0].clone(),
    ];
    let e = npukit_explore::merge(&twice, &d.join("m3"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("in two shards"), "{e}");
    let other = sweep(&tmp("shards-other"), &SMALL.replace("[8, 16]", "[8, 32]"));
    let o = d.join("other");
    npukit_explore::run(&other, &options(&o, Some(Shard { k: 1, n: 3 }))).unwrap();
    let e = npukit_explore::merge(&[o, dirs[1].clone(), dirs[2].clone()], &d.join("m4"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("another sweep"), "{e}");
    let e = npukit_explore::merge(&[d.join("nothing-here")], &d.join("m5"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("results.json"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}
