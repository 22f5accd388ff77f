#!/usr/bin/env bash
# Runs the system-description parser's fuzz target for a while (make fuzz): scripts/fuzz.sh on
# this folder, with inputs up to 64 KiB and a 2 s timeout per input (parsing is linear in the
# file's size, and a 64 KiB file takes well under a millisecond).
#
# Usage: components/lib/system/fuzz/run.sh [SECONDS]   (default 20)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAX_LEN=65536 TIMEOUT=2 exec bash "$here/../../../../scripts/fuzz.sh" "$here" "${1:-20}" sdf_parse
