#!/usr/bin/env bash
# System test of `make sim`: runs system.xml on the host platform and checks the story it tells.
#
# Usage: scripts/sim-test.sh [debug|release]   (default release; builds the binaries first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=${1:-release}
flag=()
[[ $profile == release ]] && flag=(--release)
cargo build --workspace --bins "${flag[@]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"target/$profile/warden-host" run system.xml --timeout 3 >"$log" 2>&1 || status=$?
cat "$log"
failures=0
expect() {
    if grep -qF -- "$1" "$log"; then
        echo "sim-test: ok: $1"
    else
        echo "sim-test: MISSING: $1"
        failures=$((failures + 1))
    fi
}
expect "[device_manager] manager: board device arm,pl011 at 0x9000000, irq 33"
expect "[demo_driver] driver: registering 'demo-uart' for arm,pl011"
expect "[device_manager] manager: driver PD registers 'demo-uart'"
expect "[device_manager] manager: probing device 0:0 (arm,pl011) with the driver PD"
expect "[demo_driver] driver: probe of device 0:0 (arm,pl011): bound"
expect "[device_manager] manager: driver 0:0 registered, bound to 1 device(s)"
expect "manager:   0:0 arm,pl011 -> demo-uart"
expect "manager:   1:0 arm,pl031 -> (unbound)"
if [[ $status -ne 0 ]]; then
    echo "sim-test: warden-host exited with $status"
    failures=$((failures + 1))
fi
for program in device_manager demo_driver; do
    if pgrep -x "$program" >/dev/null; then
        echo "sim-test: $program outlived the launcher"
        failures=$((failures + 1))
    fi
done
passed=$((8 + 3 - failures))
echo "sim-test: $passed passed, $failures failed"
[[ $failures -eq 0 ]]
