//! Fingerprints the code whose behaviour a cached simulation result depends on
//! (firmware ABI, model, compiler, and explore's simulate.rs): a change to any
//! of them changes every cache key, so a stale result is never reused.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut list = vec![here.join("src/simulate.rs")];
    for d in ["../firmware-abi/src", "../sim/src", "../compiler/src"] {
        let dir = here.join(d);
        println!("cargo:rerun-if-changed={}", dir.display());
        files(&dir, &mut list);
    }
    println!("cargo:rerun-if-changed=src/simulate.rs");
    list.sort();
    // FNV-1a, 64 bits, over each file's path (relative) and bytes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for p in &list {
        let rel = p.strip_prefix(&here).unwrap_or(p);
        eat(rel.to_string_lossy().as_bytes());
        eat(&std::fs::read(p).unwrap_or_default());
    }
    println!("cargo:rustc-env=NPUKIT_EXPLORE_CODE_HASH={h:016x}");
}
