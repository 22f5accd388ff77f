#!/usr/bin/env bash
# System test of `make sim`: runs system.xml on the host platform (QEMU virt's board, modelled)
# and checks the story it tells: the board's tree loaded, drivers registering, the virtio-mmio
# bus adding children in its probe, the disk checked by the client, entropy, the time, then
# the shell on the console (the tree, a device, the time, entropy, unbinding the boot disk's
# transport and binding it again), then hot-plugging a second disk and unplugging it, with
# nothing leaked. Then the Odroid C4's system on its modelled board: the Meson UART driver as
# the shell's console.
#
# Usage: scripts/sim-test.sh [debug|release]   (default release; builds the binaries first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=${1:-release}
flag=()
[[ $profile == release ]] && flag=(--release)
cargo build --workspace --bins "${flag[@]}"
host="target/$profile/warden-host"
work=$(mktemp -d)
trap 'if [[ -n ${SIM_TEST_KEEP:-} ]]; then cp "$work/log" "$SIM_TEST_KEEP" 2>/dev/null; fi; rm -rf "$work"' EXIT
log=$work/log
bash scripts/board-dtb.sh qemu_virt_aarch64 "$work/board.dtb"
truncate -s 1M "$work/disk.img"
truncate -s 2M "$work/second.img"
control=$work/control.sock
failures=0
checks=0
fail() {
    echo "sim-test: FAILED: $*"
    failures=$((failures + 1))
}
# Waits (up to 15 s) for a line of the log matching the extended regex $1 (for the $2-th such
# line, if given).
wait_for() {
    local count=${2:-1}
    for _ in $(seq 150); do
        [[ $(grep -cE -- "$1" "$log") -ge $count ]] && return 0
        sleep 0.1
    done
    fail "timed out waiting for: $1"
    return 1
}
# Waits until the last `tree` the shell printed is whole: as many device lines after its
# header as the header counts. (The console writes long output a piece per turn of its event
# loop, so a line typed sooner is echoed into the middle of it, as on any terminal.)
wait_tree_whole() {
    for _ in $(seq 150); do
        tr -d '\r' <"$log" | awk '
            /^\[console\] device tree: [0-9]+ devices/ { want = $4; seen = 0; next }
            want && /^\[console\] +[0-9]+:[0-9]+ / { seen++ }
            END { exit !(want && seen >= want) }' && return 0
        sleep 0.1
    done
    fail "timed out waiting for the whole tree"
    return 1
}
# Types a line on the console, waits for its echo after the prompt, then for the shell's
# answer (the $3-th line matching regex $2, if given).
typed=0
# The handle the host bridge's driver gave the root port at $1 (the order the drivers start
# in decides the numbers).
port_handle() {
    grep -oE "pci: $1 \[1b36:000c\] class 060400: added child [0-9]+:[0-9]+" "$log" | head -n 1 \
        | grep -oE '[0-9]+:[0-9]+$' || echo '(none)'
}
type_line() {
    echo "$1" >&3
    typed=$((typed + 1))
    wait_for '^\[console\] warden> ' "$typed" && wait_for "$2" "${3:-1}"
}

# The console's input: the shell's commands once everything is up, then nothing until the run
# ends.
mkfifo "$work/console"
"$host" run system.xml --board "$work/board.dtb" --virtio "blk=$work/disk.img" --virtio rng \
    --control "$control" --trace "$work/trace.json" --timeout 45 <"$work/console" >"$log" 2>&1 &
launcher=$!
exec 3>"$work/console"

status=0
if wait_for 'client: flushed; disk check done' && wait_for 'console: pl011-console bound' \
    && wait_for 'bring-up done; device tree \(51 devices, 39 bound\)' \
    && wait_for "^\\[console\\] Warden shell"; then
    type_line 'time' '^\[console\] 20[0-9]{2}-' || true
    type_line 'random 8' '^\[console\] 8 random bytes: ' || true
    type_line 'tree' '^\[console\]   45:0 fixed-clock' || true
    wait_tree_whole || true
    type_line 'device 34' '^\[console\]   driver: ' || true
    type_line 'frobnicate' "unknown command 'frobnicate'" || true
    # Unbind the boot disk's transport: its child (the disk) goes first; bind it again: the bus
    # driver's probe adds the disk again and virtio-blk binds it.
    type_line 'unbind 34' 'unbind 34:0 \(virtio,mmio\) accepted \(request [0-9]+\)' || true
    wait_for '^\[console\] unbind 34:0 \(virtio,mmio\): done' || true
    wait_for 'transport 34:0 let go' || true
    type_line 'tree' '^\[console\] device tree: ' 2 || true
    wait_tree_whole || true
    bus_driver=$(grep -oE 'driver:     virtio-mmio \(driver [0-9]+:[0-9]+' "$log" | head -n 1 \
        | grep -oE '[0-9]+:[0-9]+$' || echo '(none)')
    type_line "bind 34 $bus_driver" 'bind 34:0 \(virtio,mmio\) to driver [0-9]+:[0-9]+: done' || true
    wait_for 'blk: disk [0-9]+:[0-9]+ at 0xa003e00' 2 || true
    wait_for "\\(virtio,device2\\) bound to driver 'virtio-blk'" 2 || true
    # Binding a bound device says to which driver it is bound.
    type_line "bind 39 $bus_driver" 'already bound to' || true
    # Hot-plug a second disk, then unplug it; the shell prints the manager's events for the
    # plug as they come, four of them.
    type_line 'events 4' '^\[console\] events: the next 4' || true
    "$host" control "$control" plug "blk=$work/second.img" >>"$work/control.log" 2>&1 \
        || fail "plug refused: $(cat "$work/control.log")"
    if wait_for 'at 0xa000000: 4096 sectors' && wait_for "\\(virtio,device2\\) bound to driver 'virtio-blk'" 3; then
        "$host" control "$control" unplug 0xa000000 >>"$work/control.log" 2>&1 \
            || fail "unplug refused: $(cat "$work/control.log")"
        wait_for 'device id 2 -> 0' || true
        wait_for 'device 3:0 \(virtio,mmio\) bound to driver' 3 || true
    fi
    # PCIe hot-plug into root port 00:01.0's slot: the port's driver adds the card as the
    # port's child; its attention button (QEMU's device_del) removes it and powers the slot
    # off, which ejects it; plugged again; then pulled out (a surprise removal).
    "$host" control "$control" plug pci "blk=$work/second.img" >>"$work/control.log" 2>&1 \
        || fail "plug pci refused: $(cat "$work/control.log")"
    port1=$(port_handle 00:01.0)
    if wait_for "added child [0-9]+:[0-9]+ \\(pci1af4,1042\\) under $port1"; then
        "$host" control "$control" unplug pci 1 >>"$work/control.log" 2>&1 \
            || fail "unplug pci refused: $(cat "$work/control.log")"
        wait_for 'manager: device [0-9]+:[0-9]+ \(pci1af4,1042\) removed' || true
        wait_for 'bound to driver .pci-bridge.' 4 || true
        "$host" control "$control" plug pci "blk=$work/second.img" >>"$work/control.log" 2>&1 \
            || fail "plug pci again refused: $(cat "$work/control.log")"
        wait_for "added child [0-9]+:[0-9]+ \\(pci1af4,1042\\) under $port1" 2 || true
        "$host" control "$control" pull pci 1 >>"$work/control.log" 2>&1 \
            || fail "pull pci refused: $(cat "$work/control.log")"
        wait_for 'manager: device [0-9]+:[0-9]+ \(pci1af4,1042\) removed' 2 || true
        wait_for 'bound to driver .pci-bridge.' 6 || true
    fi
    "$host" control "$control" unplug pci 1 >"$work/refused-pci.log" 2>&1 \
        && fail "unplugging an empty PCIe slot was accepted"
    # The PCI disk serving the client: plugged once more, the boot disk's transport let go of,
    # so the PCI disk is the driver's first and the client checks it (its image's block 1 is
    # read below); the boot disk bound again and the card ejected: the client checks the boot
    # disk once more.
    truncate -s 3M "$work/pci.img"
    "$host" control "$control" plug pci "blk=$work/pci.img" >>"$work/control.log" 2>&1 \
        || fail "plug pci (the client's disk) refused: $(cat "$work/control.log")"
    if wait_for "bound to driver 'virtio-blk-pci'" 3; then
        type_line 'unbind 34' 'unbind 34:0 \(virtio,mmio\) accepted \(request [0-9]+\)' 2 || true
        wait_for 'client: the driver serves another disk now; checking it' || true
        wait_for 'client: flushed; disk check done' 2 || true
        # An entropy source on PCI, in slot 2: not taken while the virtio-mmio one serves;
        # that one's transport let go of, a rescan binds the PCI one first (the transport is
        # bound again and its entropy source found, not taken), and the shell's random bytes
        # come through it; unplugged, a rescan binds the virtio-mmio one again.
        "$host" control "$control" plug pci rng >>"$work/control.log" 2>&1 \
            || fail "plug pci rng refused: $(cat "$work/control.log")"
        wait_for 'rng: device [0-9]+:[0-9]+ not taken: entropy source' || true
        type_line 'unbind 33' 'unbind 33:0 \(virtio,mmio\): done' || true
        type_line 'rescan' '^\[console\] rescan: done' || true
        wait_for 'rng: entropy source [0-9]+:[0-9]+ bound \(virtio-pci\)' || true
        type_line 'random 8' '^\[console\] 8 random bytes: ' 2 || true
        "$host" control "$control" unplug pci 2 >>"$work/control.log" 2>&1 \
            || fail "unplug pci 2 refused: $(cat "$work/control.log")"
        wait_for 'rng: entropy source removed' 2 || true
        type_line 'rescan' '^\[console\] rescan: done' 2 || true
        wait_for "\\(virtio,device4\\) bound to driver 'virtio-rng'" 2 || true
        # The rescan above bound the boot disk's transport again too: the boot disk is back.
        wait_for "\\(virtio,device2\\) bound to driver 'virtio-blk'" 4 || true
        "$host" control "$control" unplug pci 1 >>"$work/control.log" 2>&1 \
            || fail "unplug pci (the client's disk) refused: $(cat "$work/control.log")"
        wait_for 'client: flushed; disk check done' 3 || true
    fi
    # The tree as the shell sees it once the unplugged disk is gone: as before the plug.
    type_line 'tree' '^\[console\] device tree: ' 3 || true
    wait_tree_whole || true
    # The tree as Graphviz DOT, rendered below.
    type_line 'tree --dot' '^\[console\] \}\r?$' || true
    # The shell's commands from Linux, through the control socket: typed on the console (the
    # shell asks the manager), the answer is what the shell printed up to its prompt.
    "$host" control "$control" device 34 >"$work/control-device.log" 2>&1 \
        || fail "control device 34 failed: $(cat "$work/control-device.log")"
    typed=$((typed + 1))
    "$host" control "$control" stats >"$work/control-stats.log" 2>&1 \
        || fail "control stats failed: $(cat "$work/control-stats.log")"
    typed=$((typed + 1))
    "$host" control "$control" unplug 0xa000000 >"$work/refused.log" 2>&1 \
        && fail "unplugging an empty transport was accepted"
    # Power management of a subtree, children first on the way down and parents first on
    # the way up; then the empty transport removed through its driver's remove.
    type_line 'suspend 34' 'suspend 34:0 \(virtio,mmio\): done' || true
    wait_for 'manager: device 34:0 \(virtio,mmio\) suspended' || true
    disk=$(grep -oE 'blk: disk [0-9]+:[0-9]+ at 0xa003e00' "$log" | tail -n 1 \
        | grep -oE '[0-9]+:[0-9]+' | head -n 1 || echo '(none)')
    type_line "resume $disk" 'refused: ParentSuspended' || true
    type_line 'resume 34' 'resume 34:0 \(virtio,mmio\): done' || true
    wait_for 'manager: device [0-9]+:[0-9]+ \(virtio,device2\) resumed' || true
    type_line 'suspend all' 'suspend all: done' || true
    wait_for 'manager: device 45:0 \(fixed-clock\) suspended' || true
    type_line 'resume all' 'resume all: done' || true
    wait_for 'manager: device [0-9]+:[0-9]+ \(virtio,device2\) resumed' 2 || true
    type_line 'remove 3' 'remove 3:0 \(virtio,mmio\): done' || true
    wait_for 'manager: device 3:0 \(virtio,mmio\) removed' || true
    wait_for '^\[console\] event: ' 4 || true
    type_line 'stats' '^\[console\] events: [0-9]+ queued for clients, [0-9]+ lost' || true
    # The manager's trace ring: the last records, the remove's callbacks and its completion.
    type_line 'trace 6' '^\[console\] trace: the manager.s last 6 of [0-9]+ records' || true
    # Last, the whole system shut down, children first.
    type_line 'shutdown' '^\[console\] shutdown: done' || true
    wait_for 'manager: device 45:0 \(fixed-clock\) shut down' || true
fi
kill -TERM "$launcher" 2>/dev/null || true
wait "$launcher" || status=$?
exec 3>&-
cat "$log"
echo "--- control socket answers:"
cat "$work/control.log" "$work/refused.log" 2>/dev/null || true

# Counts a check: it passes (saying $1) when the command after $2 succeeds, else fails
# saying $2.
verdict() {
    local what=$1 failure=$2
    shift 2
    checks=$((checks + 1))
    if "$@"; then
        echo "sim-test: ok: $what"
    else
        fail "$failure"
    fi
}
in_log() { grep -qE -- "$1" "$log"; }
not_in_log() { ! in_log "$1"; }
# Passes when a line of the log matches $1.
expect() { verdict "$1" "missing: $1" in_log "$1"; }
# Passes when no line of the log matches $1; $2 says what that shows.
absent() { verdict "$2" "not so: $2" not_in_log "$1"; }
# The board's tree, from QEMU's own DTB.
expect 'manager: board device tree loaded: 46 devices'
expect 'manager:   [0-9]+:0 arm,pl061 @0x9030000 irq 39 -> \(unbound\)'
# Drivers registering; the bus driver's __device_add while its probe holds the transport.
for name in pl011-console pl031-rtc virtio-mmio pci-host-ecam pci-bridge virtio-blk virtio-blk-pci virtio-rng; do
    expect "manager: driver PD [0-9] registers '$name'"
done
expect 'added child [0-9]+:0 \(virtio,device2\) under 34:0 \(__device_add, parent locked by its probe\)'
expect 'added child [0-9]+:0 \(virtio,device4\) under 33:0 \(__device_add'
expect 'blk: disk [0-9]+:0 at 0xa003e00: 2048 sectors of 512 bytes \(1024 KiB\), 2 DMA pages in use; serving the block client'
# The client's story.
expect "blk: serving an sDDF block client \\(64 requests at once\\) beside Warden's protocol"
expect "client: the disk is ready \\(sDDF's block protocol: 256 blocks of 4096 bytes, sectors of 512, serial 'warden-blk', 64 requests at once\\); reading block 0"
expect 'client: block 0 read: '
expect "client: block 1 read back: all 4096 bytes match the pattern \\(verified, sDDF's block protocol\\)"
expect 'client: 16 random bytes from virtio-rng: [0-9a-f]{32}$'
expect 'client: the PL031 says it is 20[0-9][0-9]-[0-9]{2}-[0-9]{2}T'
# The shell, on the console.
expect "^\\[console\\] Warden shell: 'help' lists the commands\\.\r?$"
expect '^\[console\] 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z \([0-9]+ s since 1970, from the real-time clock\)'
expect '^\[console\] 8 random bytes: [0-9a-f]{16}\r?$'
expect '^\[console\] device tree: 51 devices, 39 bound'
expect '^\[console\]     [0-9]+:0 virtio,device2 @0xa003e00 irq 79 -> virtio-blk'
expect '^\[console\]   39:0 arm,pl011 @0x9000000 irq 33 -> pl011-console'
expect '^\[console\]   driver:     virtio-mmio \(driver [0-9]+:[0-9]+, PD 3\)'
expect "^\\[console\\] unknown command 'frobnicate' \\(try 'help'\\)"
expect 'manager: client on channel 16 asks to unbind device 34:0 \(virtio,mmio\)'
expect '^\[console\] device tree: 50 devices, 37 bound'
expect '^\[console\]   34:0 virtio,mmio @0xa003e00 irq 79 -> \(unbound\)'
expect 'manager: client on channel 16 asks to bind device 34:0 \(virtio,mmio\) to driver'
expect "^\\[console\\] error: the device is already bound to pl011-console \\(driver [0-9]+:[0-9]+, PD 1\\); 'unbind' it first"
# One line per change to the tree (no tree printout after each).
expect "manager: device [0-9]+:0 \\(virtio,device2\\) unbound from 'virtio-blk'"
expect 'manager: device [0-9]+:0 \(virtio,device2\) removed'
expect "manager: device 34:0 \\(virtio,mmio\\) unbound from 'virtio-mmio'"
expect 'manager: client on channel 16 asks to suspend device 34:0 \(virtio,mmio\) and its subtree'
expect '^\[console\] error: the manager refused: ParentSuspended'
expect 'manager: client on channel 16 asks to resume the whole system'
expect 'manager: device 3:0 \(virtio,mmio\) removed'
# Requests wait for their outcome; events as they come.
expect '^\[console\] (warden> )?unbind 34:0 \(virtio,mmio\) accepted \(request [0-9]+\)'
expect '^\[console\] unbind 34:0 \(virtio,mmio\): done'
expect 'manager: client on channel 16 subscribes to events 0x7fe'
expect '^\[console\] event: device [0-9]+:[0-9]+ added'
expect '^\[console\] event: device [0-9]+:[0-9]+ bound to driver [0-9]+:[0-9]+'
expect '^\[console\] manager: [0-9]+ events, [1-9][0-9]* probes, [1-9][0-9]* binds, [0-9]+ walk restarts \([0-9]+ pairs skipped\), [1-9][0-9]* callbacks \(0 in flight, at most [1-9][0-9]*\), [0-9]+ deferred, [1-9][0-9]* requests completed'
expect '^\[console\] supervision: 0 restarts, 0 driver PDs quarantined'
expect '^\[console\] events: [1-9][0-9]* queued for clients, 0 lost'
expect '^\[console\] trace: the manager.s last 6 of 64 records \(sequence [0-9]+ to [0-9]+\):'
expect '^\[console\] +[0-9]+\.[0-9]{6} s  end   remove device [0-9]+: Ok'
expect '^\[console\] +[0-9]+\.[0-9]{6} s  (begin|end  ) (remove|unbind|probe|remove device|suspend|resume) [0-9]+'
expect 'manager: client on channel 16 asks to shut the system down'
expect 'manager: device 0:0 \(arm,psci-1.0\) shut down'
# A subtree suspends children first and resumes parents first: the disk's line before its
# transport's on the way down, after it on the way up (the first of each, from 'suspend 34'
# and 'resume 34').
checks=$((checks + 1))
first_line() { grep -nE "$1" "$log" | head -n 1 | cut -d: -f1 || true; }
disk_down=$(first_line 'manager: device [0-9]+:[0-9]+ \(virtio,device2\) suspended')
transport_down=$(first_line 'manager: device 34:0 \(virtio,mmio\) suspended')
disk_up=$(first_line 'manager: device [0-9]+:[0-9]+ \(virtio,device2\) resumed')
transport_up=$(first_line 'manager: device 34:0 \(virtio,mmio\) resumed')
if [[ -n $disk_down && -n $transport_down && -n $disk_up && -n $transport_up ]] \
    && ((disk_down < transport_down && transport_up < disk_up)); then
    echo "sim-test: ok: suspend took the disk down before its transport, resume brought it up after"
else
    fail "power order wrong or missing (disk down ${disk_down:-?}, transport down ${transport_down:-?}, transport up ${transport_up:-?}, disk up ${disk_up:-?})"
fi
checks=$((checks + 1))
if [[ $(grep -c 'device tree (' "$log") -eq 1 ]]; then
    echo "sim-test: ok: the manager printed its whole tree once, at the end of bring-up"
else
    fail "the manager printed its tree $(grep -c 'device tree (' "$log") times"
fi
# The run's trace, in Chrome's format (Perfetto opens it), checked: every slice ends,
# timestamps rise on every track, every probe names its device and driver, every flow joins a
# request to its callbacks.
checks=$((checks + 1))
if "$host" trace-check "$work/trace.json" >"$work/trace-check.log" 2>&1 \
    && grep -qE '^trace: [0-9]+ slices on [0-9]+ tracks, [1-9][0-9]* probes, [1-9][0-9]* flows through [1-9][0-9]* callbacks' "$work/trace-check.log"; then
    echo "sim-test: ok: $(cat "$work/trace-check.log")"
    mkdir -p build
    cp "$work/trace.json" build/trace.json
else
    fail "the run's trace: $(cat "$work/trace-check.log")"
fi
# The shell's commands through the control socket print what the shell printed, nothing else.
checks=$((checks + 1))
if [[ $(head -n 1 "$work/control-device.log") == 'device 34:0' ]] \
    && grep -qE '^  driver:     virtio-mmio \(driver [0-9]+:[0-9]+, PD 3\)$' "$work/control-device.log" \
    && ! grep -q 'warden>' "$work/control-device.log"; then
    echo "sim-test: ok: control SOCKET device 34 printed the shell's answer"
else
    fail "control SOCKET device 34 printed: $(cat "$work/control-device.log")"
fi
checks=$((checks + 1))
if grep -qE '^manager: [0-9]+ events, ' "$work/control-stats.log" \
    && grep -qE '^events: [0-9]+ queued for clients, 0 lost$' "$work/control-stats.log"; then
    echo "sim-test: ok: control SOCKET stats printed the manager's counters"
else
    fail "control SOCKET stats printed: $(cat "$work/control-stats.log")"
fi
# The disk's unbinding comes before its transport's: $1 the transport's handle, $2 head (the
# first) or tail (the last), $3 what is checked.
disk_removed_first() {
    checks=$((checks + 1))
    local child transport
    child=$(grep -nE "device [0-9]+:[0-9]+ \\(virtio,device2\\) unbound from 'virtio-blk'" "$log" | "$2" -n 1 | cut -d: -f1 || true)
    transport=$(grep -nE "device $1 \\(virtio,mmio\\) unbound from 'virtio-mmio'" "$log" | "$2" -n 1 | cut -d: -f1 || true)
    if [[ -n $child && -n $transport && $child -lt $transport ]]; then
        echo "sim-test: ok: $3"
    else
        fail "not so: $3"
    fi
}
disk_removed_first 34:0 head "the shell's unbind of the transport removed the disk first"
checks=$((checks + 1))
if [[ $(grep -cE 'added child [0-9]+:[0-9]+ \(virtio,device2\) under 34:0' "$log") -ge 2 \
    && $(grep -cE 'blk: disk [0-9]+:[0-9]+ at 0xa003e00: 2048 sectors' "$log") -ge 2 ]]; then
    echo "sim-test: ok: after the shell's bind the disk is back and bound to virtio-blk"
else
    fail "after the shell's bind the disk did not come back"
fi
# The final tree with its bindings.
expect 'manager:     [0-9]+:0 virtio,device2 @0xa003e00 irq 79 -> virtio-blk'
expect 'manager:     [0-9]+:0 virtio,device4 @0xa003c00 irq 78 -> virtio-rng'
expect 'manager:   [0-9]+:0 arm,pl011 @0x9000000 irq 33 -> pl011-console'
expect 'manager:   [0-9]+:0 arm,pl031 @0x9010000 irq 34 -> pl031-rtc'
# Hot-plug: added, bound; unplug: the child removed before the transport; nothing leaked.
expect 'virtio-mmio: hot-plug at the transport with irq 48: device id 0 -> 2'
expect 'added child [0-9]+:0 \(virtio,device2\) under 3:0 \(__device_add'
expect 'blk: disk [0-9]+:0 at 0xa000000: 4096 sectors of 512 bytes \(2048 KiB\), 4 DMA pages in use$'
expect 'virtio-mmio: hot-plug at the transport with irq 48: device id 2 -> 0'
expect 'blk: disk [0-9]+:0 removed \(2 DMA pages in use\)'
expect 'virtio-mmio: transport 3:0 let go \(its child was removed first\)'
checks=$((checks + 1))
if grep -q '^error: the transport at 0xa000000 is empty' "$work/refused.log" 2>/dev/null; then
    echo "sim-test: ok: unplugging the empty transport was refused with a clear error"
else
    fail "unplugging the empty transport: $(cat "$work/refused.log" 2>/dev/null)"
fi
disk_removed_first 3:0 tail "the unplugged disk was removed before its transport"
# The PCIe host bridge: enumerated, its root ports added under it and bound to the bridge
# driver of the same PD; a card plugged into slot 1 is the port's child, placed in the slot's
# reserved window, removed by the attention button (the slot then powered off) and by a pull.
expect 'pci: host bridge at 0x4010000000: buses 0-255, 3 functions, 3 apertures'
expect 'manager:   37:0 pci-host-ecam-generic @0x4010000000 irq 35 -> pci-host-ecam'
expect 'manager:     [0-9]+:0 pci1b36,000c @0x4010008000 irq 36 -> pci-bridge'
expect 'manager:     [0-9]+:0 pci1b36,000c @0x4010010000 irq 37 -> pci-bridge'
port1=$(port_handle 00:01.0)
port2=$(port_handle 00:02.0)
expect 'pci: slot at 00:01.0: a card arrived \(1 functions\)'
expect 'pci: 01:00.0 \[1af4:1042\] class 010000: added child'
expect 'pci: slot at 00:01.0: attention button: removing the card'
expect 'pci: slot at 00:01.0: the card is gone'
checks=$((checks + 1))
# Three cards in slot 1 (plugged, ejected; plugged, pulled; plugged, used, ejected): each
# added under the port and removed, and the removals were the manager's and the driver's.
if [[ $(grep -cE "added child [0-9]+:[0-9]+ \\(pci1af4,1042\\) under $port1 " "$log") -eq 3 \
    && $(grep -cE 'manager: device [0-9]+:[0-9]+ \(pci1af4,1042\) removed' "$log") -eq 3 \
    && $(grep -cE 'blk: disk [0-9]+:[0-9]+ removed' "$log") -ge 3 ]]; then
    echo "sim-test: ok: three PCI cards were added under their root port and removed"
else
    fail "the PCI cards were not added and removed three times under root port $port1"
fi
expect 'pci: 02:00.0 \[1af4:1044\] class ff0000: added child [0-9]+:[0-9]+; BAR1 0x10200000\+0x1000; BAR4 0x8000200000\+0x4000'
expect "added child [0-9]+:[0-9]+ \\(pci1af4,1044\\) under $port2 "
expect 'rng: entropy source [0-9]+:[0-9]+ bound \(virtio-pci\)'
expect "manager: device [0-9]+:[0-9]+ \\(pci1af4,1044\\) removed"
expect 'blk: disk [0-9]+:[0-9]+ at 0x4010100000 \(virtio-pci\): 6144 sectors of 512 bytes'
expect "manager: device [0-9]+:[0-9]+ \\(pci1af4,1042\\) bound to driver 'virtio-blk-pci'"
checks=$((checks + 1))
written=$(od -An -tx1 -j 4096 -N 4 "$work/pci.img" 2>/dev/null | tr -d ' \n')
if [[ $written == a5a2abb0 && $(grep -c 'client: block 1 read back: all 4096 bytes match' "$log") -eq 3 ]]; then
    echo "sim-test: ok: the client checked the PCI disk (its image's block 1 holds the pattern) and then the boot disk again"
else
    fail "the client's check of the PCI disk: block 1 of its image holds '$written', $(grep -c 'client: block 1 read back: all 4096 bytes match' "$log") checks verified"
fi
checks=$((checks + 1))
if grep -q '^error: PCIe slot 1 is empty' "$work/refused-pci.log" 2>/dev/null; then
    echo "sim-test: ok: unplugging an empty PCIe slot was refused with a clear error"
else
    fail "unplugging an empty PCIe slot: $(cat "$work/refused-pci.log" 2>/dev/null)"
fi
checks=$((checks + 1))
if [[ $(grep -E '^\[console\] device tree: ' "$log" | tail -n 1) == *"51 devices, 39 bound"* ]]; then
    echo "sim-test: ok: after the unplugs the tree is as before the plugs (51 devices, 39 bound)"
else
    fail "after the unplug the tree differs: $(grep -E '^\[console\] device tree: ' "$log" | tail -n 1)"
fi
# What the client wrote reached the disk image (through the virtio-blk model).
checks=$((checks + 1))
written=$(od -An -tx1 -j 4096 -N 4 "$work/disk.img" | tr -d ' \n')
if [[ $written == a5a2abb0 ]]; then
    echo "sim-test: ok: block 1 of the image holds the client's pattern ($written…)"
else
    fail "block 1 of the image holds $written, not the client's pattern a5a2abb0…"
fi
checks=$((checks + 1))
if [[ $status -ne 0 ]]; then
    fail "warden-host exited with $status"
fi
# The shell's `tree --dot`: one node per device of the tree it showed last, rendered by dot.
checks=$((checks + 1))
if scripts/dot-from-log.sh "$log" >"$work/tree.dot" 2>/dev/null \
    && dot -Tsvg "$work/tree.dot" -o "$work/tree.svg" 2>"$work/dot.err" && grep -q '<svg' "$work/tree.svg"; then
    nodes=$(grep -c 'fillcolor=' "$work/tree.dot")
    edges=$(grep -c ' -> ' "$work/tree.dot")
    shown=$(grep -oE '^\[console\] device tree: [0-9]+ devices' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    if [[ $nodes -eq $shown && $edges -gt 0 ]] && grep -q 'virtio-blk' "$work/tree.dot"; then
        echo "sim-test: ok: tree --dot: $nodes devices, $edges parent links, rendered by dot -Tsvg"
    else
        fail "tree --dot: $nodes nodes and $edges edges for a tree of $shown devices"
    fi
else
    fail "tree --dot: no graph in the log, or dot could not render it: $(cat "$work/dot.err" 2>/dev/null)"
fi

# Runs another system (`start_system NAME XML DTB`: its log $work/NAME.log, its console fd 3)
# and stops it (`stop_system TITLE`: prints its log, without the virtio-mmio transports' lines,
# and fails if the launcher did not exit cleanly).
start_system() {
    log=$work/$1.log
    mkfifo "$work/$1-console"
    "$host" run "$2" --board "$3" --timeout 30 <"$work/$1-console" >"$log" 2>&1 &
    launcher=$!
    exec 3>"$work/$1-console"
    typed=0
}
stop_system() {
    kill -TERM "$launcher" 2>/dev/null || true
    local status=0
    wait "$launcher" || status=$?
    exec 3>&-
    echo "--- $1:"
    grep -v 'virtio-mmio\|virtio,mmio' "$log" || true
    checks=$((checks + 1))
    if [[ $status -ne 0 ]]; then
        fail "warden-host ($1) exited with $status"
    fi
}

# The Odroid C4: platform/odroidc4/system.xml on its board (board.dts, modelled), the manager
# reading the same tree (the launcher names the DTB to it).
bash scripts/board-dtb.sh odroidc4 "$work/odroidc4.dtb"
start_system odroidc4 platform/odroidc4/system.xml "$work/odroidc4.dtb"
if wait_for "^\\[console\\] Warden shell"; then
    type_line 'tree' '^\[console\]       31:0 snps,dwc3' || true
    wait_tree_whole || true
    type_line 'time' '^\[console\] error: ' || true
fi
stop_system "the Odroid C4's system"
expect "manager: board 'Hardkernel ODROID-C4': reading its device tree"
expect 'manager: driver PD 1 registers .meson-uart-console.'
expect 'console: meson-uart-console bound; console output and line input for the shell'
expect '^\[console\]       [0-9]+:0 amlogic,meson-g12a-uart @0xff803000 irq 225 -> meson-uart-console'
expect '^\[console\] error: this system gives the shell no clock'
# An sDDF serial client on the console (platform/qemu_virt_aarch64/sddf_serial.xml, generated
# from systems/qemu_virt_sddf_serial.toml): its greeting reaches the console through sDDF's
# transmit queue, a typed line reaches it through the receive queue and its answer comes back.
start_system sddf-serial platform/qemu_virt_aarch64/sddf_serial.xml "$work/board.dtb"
if wait_for "^\\[console\\] serial-client: hello through sDDF's serial protocol"; then
    echo 'ping sddf' >&3
    wait_for "serial-client: got 'ping sddf'" || true
fi
stop_system "the sDDF serial system"
expect 'console: pl011-console bound; output and input for an sDDF serial client'
expect "^\\[console\\] serial-client: hello through sDDF's serial protocol; type a line"
expect "^\\[console\\] serial-client: got 'ping sddf' \\(9 characters, through sDDF's serial protocol\\)"
# The same system with a hostile sDDF client in the client's place. Each line typed is its
# clock: it flips its transmit queue's tail between impossible (three ways in turn) and sane but
# empty, notifying the console driver 48 times after each flip; after 20 flips (960
# notifications) it puts the tail back and writes a line. The driver refuses the queue with one
# warning (not one each time the queue turns corrupt again), is never restarted, and writes the
# line once the queue is sane.
sed 's/"serial_client.elf"/"hostile_serial_client.elf"/' platform/qemu_virt_aarch64/sddf_serial.xml \
    >"$work/hostile_serial.xml"
start_system hostile-serial "$work/hostile_serial.xml" "$work/board.dtb"
if wait_for 'console: pl011-console bound; output and input for an sDDF serial client' \
    && wait_for 'hostile-serial: waiting for characters'; then
    for _ in $(seq 20); do
        echo 'x' >&3
        sleep 0.2
    done
    wait_for 'hostile-serial: the console still writes' || true
fi
stop_system "the sDDF serial system with a hostile client"
expect 'hostile-serial: 960 notifications over a transmit queue scribbled 10 times sent'
expect '^\[console\] hostile-serial: the console still writes for this client once its queue is sane'
checks=$((checks + 1))
warnings=$(grep -c "transmit queue is corrupt" "$log" || true)
if [[ $warnings -ge 1 && $warnings -le 2 ]]; then
    echo "sim-test: ok: hostile sDDF serial client: the scribbled queue refused with $warnings warning(s), not one per notification"
else
    fail "hostile sDDF serial client: $warnings warnings about the corrupt queue (expected 1, at most 2)"
fi
absent "'uart_driver' faulted|restarting driver PD 1" \
    "hostile sDDF serial client: the console driver was never restarted"
# The system with a hostile administrative client in the shell's place: garbage calls, then a
# subscription to every event and a flood of whole-system suspends and resumes without taking
# an event; each line typed is its clock, on which it takes what is queued. The manager accepts
# at most 8 requests whose completions are not taken (the rest Busy), drops and counts the
# events it has no room for, delivers every completion, and goes on serving.
sed 's/"shell.elf"/"hostile_admin_client.elf"/' system.xml >"$work/hostile_admin.xml"
start_system hostile-admin "$work/hostile_admin.xml" "$work/board.dtb"
if wait_for 'hostile-admin: flooded' && wait_for 'manager: device 0:0 \(arm,psci-1.0\) (suspended|resumed)' 8; then
    for _ in $(seq 40); do
        grep -q 'hostile-admin: every completion came' "$log" && break
        echo 'x' >&3
        sleep 0.25
    done
    wait_for 'hostile-admin: with its completions taken' || true
fi
stop_system "the system with a hostile administrative client"
expect 'hostile-admin: garbage calls answered \[Some\(Malformed\), Some\(Malformed\), Some\(Malformed\), Some\(Malformed\), Some\(NotPermitted\), Some\(NoSuchObject\), Some\((Malformed|NotPermitted)\)\]'
expect 'hostile-admin: flooded: 20 requests without taking an event, 8 accepted, 12 refused Busy'
expect 'hostile-admin: every completion came \(8 of 8 accepted requests\); [0-9]+ events taken, [1-9][0-9]* lost and reported as lost'
expect 'hostile-admin: with its completions taken a request is accepted again; the manager still answers: [0-9]+ devices'
absent "panicked|'device_manager' faulted" "hostile administrative client: the manager never faulted"
# The restart demonstration, as a user runs it: `make sim SYSTEM=restart-demo` (the demo driver
# built with crash-once) until Ctrl-C. Ctrl-C is a SIGINT to the terminal's foreground process
# group: make's own group here, which has no terminal (setsid), so the signal goes to the group.
log=$work/restart-demo.log
mkdir -p "$work/tmp"
TMPDIR=$work/tmp setsid make --no-print-directory sim SYSTEM=restart-demo SIM_PROFILE="$profile" \
    BUILD_DIR="$work/build" </dev/null >"$log" 2>&1 &
make_pid=$!
if wait_for "device [0-9]+:0 \\(arm,pl011\\) bound to driver 'demo-uart'"; then
    sleep 0.5
fi
kill -INT -- "-$make_pid" 2>/dev/null || true
stopped=no
for _ in $(seq 100); do
    if ! kill -0 "$make_pid" 2>/dev/null; then
        stopped=yes
        break
    fi
    sleep 0.1
done
wait "$make_pid" 2>/dev/null || true
echo "--- the restart demonstration (make sim SYSTEM=restart-demo, then Ctrl-C):"
cat "$log"
# The story, in order: the first probe panics (a user exception, label 3), the manager cleans
# up and restarts the driver, the new incarnation registers under a new driver generation and
# binds the PL011. The steps are the manager's lines, which keep their order in the log; lines
# of different PDs come through different pipes and may pass each other, so the driver's panic
# is checked on its own (once, below).
story=(
    "manager: driver PD 1 registers 'demo-uart' on the platform bus: driver 0:0"
    'manager: driver PD 1 faulted \(label 3\); cleaning up'
    'manager: restarting driver PD 1'
    "manager: driver PD 1 registers 'demo-uart' on the platform bus: driver [0-9]+:[1-9][0-9]*"
    "manager: device [0-9]+:0 \\(arm,pl011\\) bound to driver 'demo-uart'"
)
line=0
told=yes
for step in "${story[@]}"; do
    next=$(tail -n "+$((line + 1))" "$log" | grep -nE -m 1 -- "$step" | cut -d: -f1 || true)
    if [[ -z $next ]]; then
        told=no
        fail "the restart demonstration: no '$step' after line $line"
        break
    fi
    line=$((line + next))
done
checks=$((checks + 1))
[[ $told == yes ]] && echo "sim-test: ok: restart demo: fault -> cleanup -> restart -> new driver generation -> bound"
checks=$((checks + 1))
if [[ $(grep -c "deliberate panic" "$log") -eq 1 ]]; then
    echo "sim-test: ok: restart demo: the first probe panicked, and the restarted driver did not crash again"
else
    fail "restart demo: the driver panicked $(grep -c "deliberate panic" "$log") times"
fi
checks=$((checks + 1))
if [[ $stopped == yes ]] && grep -q 'stopping every protection domain\|interrupted' "$log"; then
    echo "sim-test: ok: Ctrl-C stopped make sim"
else
    fail "Ctrl-C did not stop make sim (stopped: $stopped)"
fi
checks=$((checks + 1))
left=$(find "$work/tmp" -mindepth 1 -maxdepth 1 -print -quit)
if [[ -z $left && ! -e $work/build/control.sock ]]; then
    echo "sim-test: ok: after Ctrl-C nothing of the run is left (run directory, control socket)"
else
    fail "after Ctrl-C the run left ${left:-$work/build/control.sock}"
fi

for program in device_manager pl011_driver pl031_driver virtio_mmio_driver pci_host_driver virtio_blk_driver \
    virtio_rng_driver demo_client shell meson_uart_driver demo_driver log_printer serial_client hostile_serial_client hostile_admin_client; do
    checks=$((checks + 1))
    # This checkout's programs only (another Warden may be running on the machine).
    if pgrep -f -- "^$PWD/target/$profile/$program( |\$)" >/dev/null; then
        fail "$program outlived the launcher"
    fi
done
echo "sim-test: $((checks - failures)) passed, $failures failed"
if [[ $failures -ne 0 ]]; then
    # The runs' logs outlive the work directory, for whoever reads the failure.
    mkdir -p build/sim-test
    cp "$work"/log "$work"/*.log build/sim-test/ 2>/dev/null
    echo "sim-test: the runs' logs are in build/sim-test/"
fi
[[ $failures -eq 0 ]]
