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
