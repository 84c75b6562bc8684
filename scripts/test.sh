#!/usr/bin/env bash
# The whole npukit test suite: formatting, lints, and every test of every crate.
# Installs the system packages the tests need when they are missing (needs root),
# and says what it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc)
command -v c++ >/dev/null 2>&1 || need_pkgs+=(g++)
# Verilator builds the checked-in RTL (rtl/generated/*.v) for the lockstep
# co-simulation tests (rtl/tests/cosim_*.rs, cli/tests/cosim.rs).
command -v verilator >/dev/null 2>&1 || need_pkgs+=(verilator make)
# Headless Chromium renders the explorer's report.html (explore/tests/browser.rs);
# a TrueType font draws the text of its PNG plots.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "npukit test: installing missing system packages: ${need_pkgs[*]}"
    echo "npukit test: (gcc/g++: C header checks and the Verilated RTL; verilator, make: RTL co-simulation;"
    echo "npukit test:  chromium: renders the explorer's report in a test; fonts-dejavu-core: text of its PNG plots)"
    apt-get update -qq && apt-get install -y -qq "${need_pkgs[@]}"
fi

echo "npukit test: cargo fmt --check"
cargo fmt --all --check
echo "npukit test: cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "npukit test: cargo clippy of the npukit command with the device server (feature serve)"
cargo clippy -p npukit --features serve --all-targets --quiet -- -D warnings
echo "npukit test: cargo fmt --check of the fuzz targets (fuzz/, a workspace of its own)"
(cd fuzz && cargo fmt --check)
echo "npukit test: firmware ABI builds without std"
cargo build --quiet -p npukit-abi --no-default-features
echo "npukit test: cargo test --workspace"
cargo test --workspace
# The kernel module (kmd/) in a QEMU guest against the model, with the shim's
# C tests: installs QEMU and the rest when missing and downloads Debian's
# kernel packages (once; cached in ~/.cache/npukit-guest). docs/kernel.md.
if [ "${NPUKIT_SKIP_GUEST:-0}" = 1 ]; then
    echo "npukit test: NPUKIT_SKIP_GUEST=1: the QEMU guest test is skipped"
else
    echo "npukit test: the kernel module in a QEMU guest (scripts/guest-test.sh)"
    # The model (16x16) and, with the RTL the test build put into the server,
    # the model and the RTL in lockstep (4x4).
    NPUKIT_IVSHMEM="$PWD/target/debug/npukit-ivshmem" \
        NPUKIT_GUEST_BACKENDS="model lockstep:configs/4x4.toml" bash scripts/guest-test.sh
fi
# Coverage-guided fuzzing (fuzz/, a workspace of its own): every target for
# FUZZ_SECONDS (default 25) from the checked-in seeds, then the planted-bug
# check. Installs cargo-fuzz from crates.io when it is missing (and says so).
# docs/reliability.md.
if [ "${NPUKIT_SKIP_FUZZ:-0}" = 1 ]; then
    echo "npukit test: NPUKIT_SKIP_FUZZ=1: fuzzing is skipped"
else
    echo "npukit test: fuzzing (scripts/fuzz.sh)"
    bash scripts/fuzz.sh
fi
