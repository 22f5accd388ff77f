#!/usr/bin/env bash
# Runs the board parser's fuzz target for a while (make fuzz); prints executions and crashes.
#
# Usage: components/lib/board/fuzz/run.sh [SECONDS]   (default 20)
# Needs cargo-fuzz (installed from crates.io when missing); RUSTC_BOOTSTRAP=1 unlocks the
# nightly flags it passes. Inputs that grow coverage are added to corpus/board_walk/ (review
# before committing); a crash leaves its input in artifacts/board_walk/ and exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds=${1:-20}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
target=board_walk
mkdir -p "corpus/$target"
log=$(mktemp)
status=0
# Blobs up to 64 KiB: the real boards' trees (7 KB) and room to grow them.
if cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -max_len=65536 >"$log" 2>&1; then
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
exit "$status"
