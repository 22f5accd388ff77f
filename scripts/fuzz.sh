#!/usr/bin/env bash
# Runs cargo-fuzz targets for a while and prints executions and crashes per target (make fuzz,
# through each fuzzed crate's fuzz/run.sh).
#
# Usage: scripts/fuzz.sh FUZZ_DIR SECONDS_PER_TARGET TARGET...   (MAX_LEN=N: longest input;
# TIMEOUT=S: an input that takes longer than S seconds is a failure, as a crash is)
# Needs cargo-fuzz (installed from crates.io when missing). The machine's rustup toolchain is
# stable, so the nightly flags cargo-fuzz passes are unlocked with RUSTC_BOOTSTRAP=1. New
# inputs that grow coverage are added to FUZZ_DIR/corpus/<target>/ (review before committing);
# a crash leaves its input in FUZZ_DIR/artifacts/<target>/ and makes this script exit 1.
set -euo pipefail
cd "$1"
seconds=$2
shift 2
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
options=(-max_total_time="$seconds")
if [[ -n ${MAX_LEN:-} ]]; then
    options+=(-max_len="$MAX_LEN")
fi
if [[ -n ${TIMEOUT:-} ]]; then
    options+=(-timeout="$TIMEOUT")
fi
status=0
for target in "$@"; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if cargo fuzz run "$target" "corpus/$target" -- "${options[@]}" >"$log" 2>&1; then
        crashes=0
    else
        crashes=1
        status=1
    fi
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -n 1 || true)
    echo "fuzz: $target: ${seconds}s, ${runs:-?} executions, $crashes crashes"
    if [[ $crashes -ne 0 ]]; then
        tail -n 30 "$log"
    fi
    rm -f "$log"
done
exit "$status"
