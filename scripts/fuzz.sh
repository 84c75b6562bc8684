#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) for a bounded time:
# every target in fuzz/ for FUZZ_SECONDS seconds (default 25), starting from
# the checked-in seed corpora (fuzz/corpus/TARGET; the `onnx` target also
# starts from the models in workloads/onnx/); new inputs go to
# fuzz/target/corpus-run (not checked in). A crash, a hang (-timeout) or an
# allocation past -rss_limit_mb fails the run and leaves the input in
# fuzz/artifacts/TARGET. Then the planted-bug check: a build whose descriptor
# validation skips one bounds check (feature `planted-bug`) must be caught by
# the `model` target within PLANTED_SECONDS (default 120).
#
# Installs cargo-fuzz from crates.io when it is missing (and says so). Only
# the stable toolchain exists here; cargo-fuzz passes -Z flags to rustc, which
# RUSTC_BOOTSTRAP=1 allows. docs/reliability.md explains the targets.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${FUZZ_SECONDS:-25}"
planted_secs="${PLANTED_SECONDS:-120}"
targets=(${FUZZ_TARGETS:-decode model workload onnx ioctl ioctl_server})

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "npukit fuzz: cargo-fuzz is missing; installing it from crates.io (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# Release code with debug assertions (overflow checks on); no sanitizer:
# the targets are safe Rust apart from the shim's checked copies, and the
# CI budget is small.
flags=(-O -a --sanitizer none)
libfuzzer=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

echo "npukit fuzz: building the targets"
cargo fuzz build "${flags[@]}"

for t in "${targets[@]}"; do
    work="target/corpus-run/$t"
    mkdir -p "$work" "artifacts/$t"
    seeds=("corpus/$t")
    if [ "$t" = onnx ]; then
        seeds+=(../workloads/onnx)
    fi
    echo "npukit fuzz: $t for ${secs} s"
    log="target/fuzz-$t.log"
    if ! cargo fuzz run "${flags[@]}" "$t" "$work" "${seeds[@]}" -- \
        -max_total_time="$secs" "${libfuzzer[@]}" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "npukit fuzz: target $t FAILED (input kept in fuzz/artifacts/$t)"
        exit 1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
    echo "npukit fuzz: $t: $runs inputs in ${secs} s, coverage $cov edges, no crash"
done

echo "npukit fuzz: the planted bug (model without MATMUL's accumulator range check), at most ${planted_secs} s"
planted="target/planted"
rm -rf "$planted"
mkdir -p "$planted/corpus" "$planted/artifacts"
cargo fuzz build "${flags[@]}" --features planted-bug model
log="target/fuzz-planted.log"
if cargo fuzz run "${flags[@]}" --features planted-bug model "$planted/corpus" corpus/model -- \
    -max_total_time="$planted_secs" "${libfuzzer[@]}" -artifact_prefix="$planted/artifacts/" >"$log" 2>&1; then
    tail -n 20 "$log"
    echo "npukit fuzz: FAILED: the fuzzer did not find the planted bug in ${planted_secs} s"
    exit 1
fi
if ! grep -q "index out of bounds\|out of range for slice" "$log"; then
    tail -n 40 "$log"
    echo "npukit fuzz: FAILED: the planted-bug run failed, but not on the accumulator bounds"
    exit 1
fi
found=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
echo "npukit fuzz: the planted bug was found after $found inputs: $(grep -m1 -o "panicked at [^ ]*" "$log" || true)"
# The normal build again, so that the next run does not start from the bug.
cargo fuzz build "${flags[@]}" model
echo "npukit fuzz: all targets ran without a crash"
# The plain closing line test runners are read by: every target, and the planted bug.
echo "fuzz: $(( ${#targets[@]} + 1 )) passed, 0 failed"
