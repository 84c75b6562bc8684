//! Helpers shared by the hw tests: a reproducible generator and the Verilator
//! lint every block's generated Verilog must pass.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The project's lint: `verilator --lint-only -Wall -Wno-DECLFILENAME
/// -Wno-WIDTH` on `file`. `Err` holds the first diagnostics when Verilator
/// fails or reports any warning or error.
pub fn verilator_lint_file(file: &Path) -> Result<(), String> {
    let out = Command::new("verilator")
        .args(["--lint-only", "-Wall", "-Wno-DECLFILENAME", "-Wno-WIDTH"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run verilator ({e}): apt-get install -y verilator"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && !log.contains("%Warning") && !log.contains("%Error") {
        return Ok(());
    }
    let first: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with('%'))
        .take(10)
        .collect();
    Err(format!("{}:\n{}", file.display(), first.join("\n")))
}

/// Lints `verilog` (a block's generated Verilog) through a scratch file named
/// after `tag`.
pub fn verilator_lint(verilog: &str, tag: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("npukit-hw-lint-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{tag}.v"));
    std::fs::write(&path, verilog).unwrap();
    let r = verilator_lint_file(&path);
    let _ = std::fs::remove_dir_all(&dir);
    r
}

/// Runs a rust-hdl block's logic until nothing changes (its simulator, at
/// most 200 passes).
pub fn settle<B: rust_hdl::prelude::Block>(uut: &mut B) {
    assert!(
        rust_hdl::prelude::simulate(uut, 200),
        "the block did not settle"
    );
}

/// A block the tests clock by hand: its `clock` input.
pub trait Clocked: rust_hdl::prelude::Block {
    fn clock(
        &mut self,
    ) -> &mut rust_hdl::prelude::Signal<rust_hdl::prelude::In, rust_hdl::prelude::Clock>;
}

/// One clock cycle: a rising and a falling edge, settled after each.
pub fn edge<B: Clocked>(uut: &mut B) {
    uut.clock().next = true.into();
    settle(uut);
    uut.clock().next = false.into();
    settle(uut);
}

/// A fresh scratch directory for `test`'s case `name` (unique per process).
pub fn scratch(test: &str, name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("npukit-{test}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `bytes` as little-endian 32-bit words in hex, space-separated (the last
/// word zero-padded): how the trace files of the Verilated testbenches
/// spell wide values.
pub fn hex_words(bytes: &[u8]) -> String {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            format!("{:x}", u32::from_le_bytes(w))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Builds the C++ testbench `tb.cpp` in `dir` with Verilator against the
/// Verilog file `verilog` there (top module `top`), runs it on
/// `dir/trace.txt` and checks that it replayed all `cycles` cycles without a
/// difference (`what` names the case and the two sides in a failure); then
/// removes `dir`.
pub fn replay_on_verilator(dir: &Path, verilog: &str, cycles: usize, what: &str) {
    let build = Command::new("verilator")
        .current_dir(dir)
        .args([
            "--cc",
            "--exe",
            "--build",
            "-O1",
            "-Wno-WIDTH",
            "-Wno-fatal",
            "--top-module",
            "top",
            verilog,
            "tb.cpp",
            "-o",
            "tb",
        ])
        .output()
        .expect("verilator is installed");
    assert!(
        build.status.success(),
        "verilator build failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let run = Command::new(dir.join("obj_dir").join("tb"))
        .arg(dir.join("trace.txt"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{what} differ: {out}");
    assert!(out.contains(&format!("ok {cycles} cycles")), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}
