#!/usr/bin/env bash
# Runs the board parser's fuzz target for a while (make fuzz): scripts/fuzz.sh on this folder,
# with blobs up to 64 KiB (the real boards' trees are ~7 KB; room to grow them).
#
# Usage: components/lib/board/fuzz/run.sh [SECONDS]   (default 20)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAX_LEN=65536 exec bash "$here/../../../../scripts/fuzz.sh" "$here" "${1:-20}" board_walk
