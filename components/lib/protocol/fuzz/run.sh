#!/usr/bin/env bash
# Runs every protocol fuzz target for a while (make fuzz): scripts/fuzz.sh on this folder.
#
# Usage: components/lib/protocol/fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../../../scripts/fuzz.sh" "$here" "${1:-20}" \
    decode_message decode_call hostile_producer
