#!/usr/bin/env bash
# Runs every protocol fuzz target for a while (make fuzz); prints executions and crashes per target.
#
# Usage: components/lib/protocol/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
# Needs cargo-fuzz (installed from crates.io when missing). The machine's rustup toolchain is
# stable, so the nightly flags cargo-fuzz passes are unlocked with RUSTC_BOOTSTRAP=1. New
# inputs that grow coverage are added to corpus/<target>/ (review before committing); a crash
# leaves its input in artifacts/<target>/ and makes this script exit 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
status=0
for target in decode_message decode_call hostile_producer; do
    mkdir -p "corpus/$target"
    log=$(mktemp)
    if cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
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
