#!/usr/bin/env bash
# Prints the last Graphviz graph the shell printed (`tree --dot`) in a host-platform run's log:
# the console's lines from `digraph warden {` to `}`, without their `[console] ` prefix (other
# PDs' lines printed meanwhile are not the graph's).
#
# Usage: scripts/dot-from-log.sh LOG
set -euo pipefail
log=${1:?usage: scripts/dot-from-log.sh LOG}
tr -d '\r' <"$log" | awk '
    /^\[console\] digraph warden \{$/ { graph = ""; inside = 1 }
    inside && /^\[console\] / { line = $0; sub(/^\[console\] /, "", line); graph = graph line "\n" }
    inside && /^\[console\] \}$/ { inside = 0; last = graph }
    END { if (last == "") exit 1; printf "%s", last }
'
