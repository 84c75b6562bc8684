//! Compiles `csrc/preload.c` (the variadic open/ioctl interposers) with the
//! system C compiler and links it into the cdylib only - never into the rlib,
//! so Rust programs using the shim's API do not interpose their own libc calls.
//! A version script exports the interposed names next to rustc's own list.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const EXPORTS: &[&str] = &[
    "open",
    "open64",
    "openat",
    "openat64",
    "__open_2",
    "__open64_2",
    "__openat_2",
    "ioctl",
    "mmap",
    "mmap64",
    "munmap",
    "close",
    "fopen",
    "fopen64",
    "fclose",
];

fn main() {
    println!("cargo:rerun-if-changed=csrc/preload.c");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let obj = out.join("npukit_preload.o");
    let cc = env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-c",
            "-fPIC",
            "-O2",
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
        ])
        .arg("csrc/preload.c")
        .arg("-o")
        .arg(&obj)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{cc} failed on csrc/preload.c ({s})"),
        Err(e) => panic!("cannot run the C compiler {cc:?} for csrc/preload.c: {e}"),
    }
    let map = out.join("npukit_preload.map");
    let list: String = EXPORTS.iter().map(|s| format!("{s}; ")).collect();
    if let Err(e) = std::fs::write(&map, format!("{{ global: {list}}};\n")) {
        panic!("cannot write {}: {e}", map.display());
    }
    println!("cargo:rustc-cdylib-link-arg={}", obj.display());
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,--version-script={}",
        map.display()
    );
    println!("cargo:rustc-cdylib-link-arg=-ldl");
}
