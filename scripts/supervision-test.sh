#!/usr/bin/env bash
# System tests of supervision: each of the eight ways a driver PD could take a device, a driver
# or a data path away for good, in system.xml on the host platform with one hostile PD in a
# driver PD's place (`warden-host run --program PD=PROGRAM`, programs of drivers/demo's
# `hostile` module) or one fault injected through the control socket. Each case checks what
# survives; the crash loop prints its restarts and log lines per second.
#
#   1 hang         a probe never answered: stopped at its deadline, restarted, quarantined after
#                  5; the device shows it; 40 rescans all answered; retry runs it again
#   2 crash loop   panics in every probe, and in init: backoff, then quarantine
#   3 corrupt slot the manager skips it and reads on: the same ring answers a remove
#   4 blk restart  the client's blocks verified across 8 kills of the blk driver (the soak)
#   5 NoSpace      one PD may not fill the driver table; four may: a driver refused for a full
#                  table registers once there is room
#   6 authority    an impostor claims the console, the clock, the disk: refused; its child flood
#                  stops at its quota; the rightful drivers rebind after their restarts
#   7 log flood    20,000 refused calls: a few lines a second and "… N more like this"
#   8 manager dies the run stops at once, says why and exits 3
#   9 notify flood a driver notifies its peer (the manager) in a tight loop: the shell's `time`
#                  (shell -> RTC driver) and the block client (client -> blk driver) keep
#                  answering (the shell's p99 printed against the 50 ms goal, checked against
#                  max(50 ms, 3x the same run without the flood); the client's oldest request
#                  p99 <= 50 ms), and the launcher's memory stays flat
#
# Usage: scripts/supervision-test.sh [debug|release]   (default release; builds first)
set -euo pipefail
# A run that ended early closes the console FIFO: its writes fail (the checks say so) instead
# of killing the script.
trap "" PIPE
cd "$(dirname "${BASH_SOURCE[0]}")/.."
profile=${1:-release}
flag=()
[[ $profile == release ]] && flag=(--release)
cargo build --workspace --bins "${flag[@]}"
host="target/$profile/warden-host"
work=$(mktemp -d)
launcher=
cleanup() {
    [[ -n $launcher ]] && kill -TERM "$launcher" 2>/dev/null && wait "$launcher" 2>/dev/null
    [[ -n ${KEEP:-} ]] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
bash scripts/board-dtb.sh qemu_virt_aarch64 "$work/board.dtb"
truncate -s 1M "$work/disk.img"
failures=0
passed=0
fail() {
    echo "supervision-test: FAILED: $*"
    failures=$((failures + 1))
}
ok() {
    echo "supervision-test: ok: $*"
    passed=$((passed + 1))
}
# want N: is case N to run (ONLY="3 6" runs cases 3 and 6; unset: all)?
want() {
    [[ -z ${ONLY:-} || " $ONLY " == *" $1 "* ]]
}
check() {
    if eval "$2"; then ok "$1"; else fail "$1"; fi
}

# start NAME [run options…]: system.xml with the console on a FIFO (fd 3) and a control socket.
start() {
    name=$1
    shift
    log=$work/$name.log
    control=$work/$name.sock
    mkfifo "$work/$name.console"
    "$host" run system.xml --board "$work/board.dtb" --virtio "blk=$work/disk.img" --virtio rng \
        --control "$control" --timeout 120 "$@" <"$work/$name.console" >"$log" 2>&1 &
    launcher=$!
    exec 3>"$work/$name.console"
    typed=0
    started=$(date +%s.%N)
}
# stop: ends the run; its status is in $status.
stop() {
    status=0
    kill -TERM "$launcher" 2>/dev/null || true
    wait "$launcher" || status=$?
    launcher=
    exec 3>&-
}
# count REGEX: lines of the log matching it.
count() {
    grep -cE -- "$1" "$log" || true
}
# wait_for REGEX [N [SECONDS]]: waits for the N-th line matching REGEX (default 1, 15 s).
wait_for() {
    local n=${2:-1} tries=$((${3:-15} * 20))
    for _ in $(seq "$tries"); do
        [[ $(count "$1") -ge $n ]] && return 0
        sleep 0.05
    done
    fail "$name: timed out waiting for: $1 (${n}x)"
    return 1
}
# type_line LINE REGEX [N]: types on the console, waits for the echo and the answer.
type_line() {
    echo "$1" >&3
    typed=$((typed + 1))
    wait_for '^\[console\] warden> ' "$typed" && wait_for "$2" "${3:-1}"
}
inject() {
    "$host" control "$control" inject "$1" "$2" >/dev/null || fail "$name: inject $1 $2 refused"
}
booted() {
    wait_for 'bring-up done' 1 20 && wait_for '^\[console\] Warden shell' 1 20
}
show() {
    echo "--- $name: the run's log (manager and driver lines; the virtio-mmio transports left out):"
    grep -vE "manager:   |virtio,mmio\\) (un)?bound|^\\[console\\]   " "$log" | tail -n "${1:-80}"  || true
}

# --- 1: a probe that is never answered ------------------------------------------------------
if want 1; then
start hang --program rtc_driver=hostile_hang
if booted; then
    wait_for 'driver PD 2 has not answered its probe callback after [0-9]+ ms \(its deadline: 500 ms\); stopping it' || true
    wait_for 'driver PD 2 failed 5 times in a row: quarantined' 1 20 || true
    type_line 'device 38' '^\[console\]   driver:     \(unbound; its driver.s PD 2 quarantined after 5 failures in a row' || true
    # Requests on the locked-then-freed device, and many of them: every one is answered
    # (typed one at a time: the console does not promise to keep up with a paste).
    for n in $(seq 40); do
        type_line rescan '^\[console\] (warden> )?rescan: done' "$n" || break
    done
    type_line 'tree' "38:0 arm,pl031 @0x9010000 irq 34 -> \\(unbound; PD 2 quarantined after 5 failures in a row\\)" || true
    # (The tree's last lines may still be on their way when the prompt comes: the answer can
    # follow a prompt on its line.)
    type_line 'pd 2' '^\[console\] (warden> )?driver PD 2: quarantined after 5 failures in a row' || true
    restarts=$(count 'restarting driver PD 2')
    type_line 'retry 2' '^\[console\] driver PD 2 restarted' || true
    wait_for 'restarting driver PD 2' $((restarts + 1)) || true
    wait_for 'hostile: probe of 38:0: never answering' 6 || true
fi
stop
show 40
check "hang: the hung probe was stopped at its deadline (500 ms, seen within 100 ms of it)" \
    "[[ \$(count 'has not answered its probe callback after 5[0-9]{2} ms') -ge 5 && \$(count 'has not answered its probe callback after') -eq \$(count 'has not answered its probe callback after 5[0-9]{2} ms') ]]"
check "hang: after 5 failures in a row the PD is quarantined and the device says so" \
    "[[ \$(count 'quarantined after 5 failures in a row') -ge 2 ]]"
check "hang: 40 rescans behind the hung device were all answered, none refused NoSpace" \
    "[[ \$(count 'rescan: done') -ge 40 && \$(count 'NoSpace') -eq 0 ]]"
check "hang: 'retry 2' restarted the quarantined PD" \
    "[[ \$(count 'hostile: probe of 38:0: never answering') -ge 6 ]]"
fi

# --- 2: a crash loop, in probe and in init --------------------------------------------------
if want 2; then
for program in hostile_panic hostile_panic_init; do
    start "$program" --program "rtc_driver=$program"
    booted || true
    sleep 2
    at_2=$(count 'restarting driver PD 2')
    lines_2=$(wc -l <"$log")
    sleep 10
    at_12=$(count 'restarting driver PD 2')
    lines_12=$(wc -l <"$log")
    quarantined=$(count 'driver PD 2 failed 5 times in a row: quarantined')
    type_line 'retry 2' '^\[console\] driver PD 2 restarted' || true
    wait_for 'restarting driver PD 2' $((at_12 + 1)) || true
    stop
    show 12
    rate=$(awk "BEGIN { printf \"%.2f\", ($at_12 - $at_2) / 10 }")
    lines=$(awk "BEGIN { printf \"%.1f\", ($lines_12 - $lines_2) / 10 }")
    echo "supervision: crash loop ($program): $at_12 restarts in the first 12 s, $rate restarts/s from 2 s to 12 s, $lines log lines/s (all PDs), quarantined: $quarantined"
    # Over all 12 s (a loop without backoff or quarantine restarts ~80 times a second).
    check "crash loop ($program): at most 1 restart a second after the first few (and 5 in the first 12 s)" \
        "awk 'BEGIN { exit !($rate <= 1 && $at_12 <= 5) }'"
    check "crash loop ($program): quarantined after 5 failures, and 'retry' runs it again" \
        "[[ $quarantined -ge 1 && \$(count 'restarting driver PD 2') -gt $at_12 ]]"
    check "crash loop ($program): fewer than 20 log lines a second" \
        "awk 'BEGIN { exit !($lines < 20) }'"
done
fi

# --- 3: a corrupt slot on a driver's ring ---------------------------------------------------
if want 3; then
start corrupt
if booted; then
    inject corrupt rtc_driver
    wait_for 'driver PD 2 wrote a slot of 4096 bytes; skipped \(1 so far\)' || true
    # The remove callback's answer comes back on the same ring.
    type_line 'unbind 38' 'unbind 38:0 \(arm,pl031\): done' || true
    wait_for "device 38:0 \\(arm,pl031\\) unbound from 'pl031-rtc'" || true
    rtc=$(grep -oE "driver PD 2 registers 'pl031-rtc' on the platform bus: driver [0-9]+:[0-9]+" "$log" \
        | tail -n 1 | grep -oE '[0-9]+:[0-9]+$' || echo '0:0')
    type_line "bind 38 $rtc" 'bind 38:0 \(arm,pl031\) to driver [0-9]+:[0-9]+: done' || true
    wait_for "device 38:0 \\(arm,pl031\\) bound to driver 'pl031-rtc'" 2 || true
    # After a restart the rings start afresh, and a corrupt slot is skipped again.
    inject kill rtc_driver
    wait_for "device 38:0 \\(arm,pl031\\) bound to driver 'pl031-rtc'" 3 || true
    inject corrupt rtc_driver
    wait_for 'driver PD 2 wrote a slot of 4096 bytes; skipped \(2 so far\)' || true
    type_line 'time' '^\[console\] 20[0-9]{2}-' || true
fi
stop
show 30
check "corrupt slot: skipped, and the ring read on (the driver's remove answer arrived, in time)" \
    "[[ \$(count \"device 38:0 \\\\(arm,pl031\\\\) unbound from 'pl031-rtc'\") -ge 1 && \$(count 'driver PD 2 has not answered') -eq 0 ]]"
check "corrupt slot: after the driver's restart its ring is read again" \
    "[[ \$(count 'skipped \(2 so far\)') -ge 1 && \$(count '^\[console\] 20[0-9]{2}-') -ge 1 ]]"
fi

# --- 4: the blk driver restarts under a client that verifies its data -----------------------
if want 4; then
name=blk
log=$work/blk.log
if "$host" soak system.xml --board "$work/board.dtb" --virtio "blk=$work/disk.img" --virtio rng \
    --faults 8 --only-pds blk_driver --only-faults kill,hang,panic --seed 4 --verbose >"$log" 2>&1; then
    soaked=yes
else
    soaked=no
fi
cat "$log"
check "blk restart: 8 faults of the blk driver, the client's blocks verified after each, none lost" \
    "[[ $soaked == yes ]] && grep -qE '^soak: 8 faults injected .* 8 recovered, 0 requests lost, 0 data mismatches' \"$log\""
fi

# --- 5: registration refused for a full table, then room -------------------------------------
if want 5; then
# Four table fillers, in the places of every driver PD but the RTC's and the PCI host bridge's:
# each may hold 4 drivers (Config::drivers_per_pd), and 16 fill the table, which holds the RTC
# driver and the PCI host bridge's two already: 13 places for 4 fillers of 4, so at least one
# reaches its quota before the table is full (which, depends on who runs first). They start
# filling a second after they start, when the RTC driver has registered.
start nospace --program uart_driver=hostile_table_filler --program virtio_mmio_driver=hostile_table_filler \
    --program blk_driver=hostile_table_filler --program rng_driver=hostile_table_filler
wait_for "driver PD 2 registers 'pl031-rtc'" 1 20 || true
wait_for 'hostile: registered [0-9]+ more drivers \([0-9]+ in all\); then the manager answered NotPermitted' 1 20 || true
wait_for 'hostile: registered [0-9]+ more drivers \([0-9]+ in all\); then the manager answered NoSpace' 1 20 || true
inject kill rtc_driver
wait_for "driver: the manager's driver table is full; registering again when it has room" || true
inject kill rng_driver
wait_for "driver PD 2 registers 'pl031-rtc' on the platform bus" 2 || true
wait_for "device 38:0 \\(arm,pl031\\) bound to driver 'pl031-rtc'" 2 || true
stop
show 30
check "NoSpace: one PD may hold 4 drivers (refused OverQuota past them)" \
    "[[ \$(count \"refused driver PD [1345]'s registration of 'filler-[0-9]+': OverQuota\") -ge 1 ]]"
check "NoSpace: a driver refused for a full table heard it, and registered once there was room" \
    "[[ \$(count \"registering again when it has room\") -ge 1 && \$(count \"driver PD 2 registers 'pl031-rtc'\") -ge 2 && \$(count \"device 38:0 \\\\(arm,pl031\\\\) bound to driver 'pl031-rtc'\") -ge 2 ]]"
fi

# --- 6: an impostor ---------------------------------------------------------------------------
if want 6; then
start impostor --program rng_driver=hostile_impostor
if booted; then
    wait_for 'hostile: added [0-9]+ children under' || true
    inject kill blk_driver
    inject kill uart_driver
    inject kill rtc_driver
    wait_for "\\(virtio,device2\\) bound to driver 'virtio-blk'" 2 || true
    wait_for "device 39:0 \\(arm,pl011\\) bound to driver 'pl011-console'" 2 || true
    wait_for "device 38:0 \\(arm,pl031\\) bound to driver 'pl031-rtc'" 2 || true
    type_line 'time' '^\[console\] 20[0-9]{2}-' || true
fi
stop
show 30
check "authority: the impostor may not register for the console or the clock" \
    "[[ \$(count \"hostile: registered 'impostor-arm-pl011' for arm,pl011: NotPermitted\") -eq 1 && \$(count \"hostile: registered 'impostor-arm-pl031' for arm,pl031: NotPermitted\") -eq 1 ]]"
disk=$(grep -oE 'blk: disk [0-9]+:[0-9]+ at 0xa003e00' "$log" | head -n 1 | grep -oE '[0-9]+:[0-9]+' || echo none)
check "authority: the rightful drivers rebind after their restarts; the impostor binds nothing of theirs" \
    "[[ \$(count \"device (38:0|39:0|$disk) .* bound to driver 'impostor\") -eq 0 && \$(count \"device $disk \\\\(virtio,device2\\\\) bound to driver 'virtio-blk'\") -ge 2 && \$(count \"device 39:0 \\\\(arm,pl011\\\\) bound to driver 'pl011-console'\") -ge 2 ]]"
check "authority: its children, however deep, stop at the PD's quota (32), refused OverQuota" \
    "[[ \$(count 'hostile: added 32 children under [0-9]+:[0-9]+ with one and the same window; then the manager answered NotPermitted') -eq 1 && \$(count \"refused driver PD 5's child: OverQuota\") -ge 1 && \$(count \"refused driver PD 5's child: NoSpace\") -eq 0 ]]"
check "authority: the impostor may not register for the PCI host bridge nor learn its description" \
    "[[ \$(count \"hostile: registered 'impostor-pci-host-ecam-generic' for pci-host-ecam-generic: NotPermitted\") -eq 1 && \$(count 'hostile: asked 128 devices for their PCI host bridge: given 0, refused') -eq 1 ]]"
check "authority: children forged with forwarded windows are refused (outside the parent: NotPermitted; more than the windows: Malformed)" \
    "[[ \$(count 'hostile: a child with the ECAM forwarded: Err\\(NotPermitted\\)') -ge 1 && \$(count 'hostile: a child with more forwarded windows than windows: Err\\(Malformed\\)') -ge 1 ]]"
check "authority: the fake disks over the entropy device are not taken for disks" \
    "[[ \$(count 'blk: device [0-9]+:[0-9]+ is said to be a block device, but its transport holds a EntropySource; not mine') -ge 1 && \$(count 'blk: disk [0-9]+:[0-9]+ at 0xa003c00') -eq 0 ]]"
fi

# --- 7: a driver floods the manager's log ----------------------------------------------------
if want 7; then
start flood --program rng_driver=hostile_log_flood
if booted; then
    wait_for 'hostile: 10,000 malformed calls' || true
    sleep 12
fi
elapsed=$(awk "BEGIN { printf \"%d\", $(date +%s.%N) - $started + 1 }")
stop
show 20
flooded=$(count 'manager: (malformed call from|refused) driver PD 5|driver PD 5 lets go')
held=$(grep -oE 'driver PD 5: … [0-9,]+ more like this' "$log" | grep -oE '[0-9,]+ more' \
    | tr -d ', more' | awk '{ sum += $1 } END { print sum + 0 }' || true)
echo "supervision: log flood: over $elapsed s the flooding PD's refusals gave $flooded lines; $held more were summed up"
check "log flood: at most 5 of its lines a second (and 1 summary), the rest summed up" \
    "[[ $flooded -le $((elapsed * 6)) && $held -ge 1000 ]]"
fi

# --- 8: the manager dies ----------------------------------------------------------------------
if want 8; then
start death
if booted; then
    inject kill device_manager
    for _ in $(seq 100); do
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.05
    done
fi
stop
show 5
check "manager death: the run stopped with exit status 3 and said why" \
    "[[ $status -eq 3 ]] && grep -q \"'device_manager' faulted (UserException) and has no parent: no PD can restart it, so the system stopped\" \"$log\""
fi

# --- 9: a driver floods its peer with notifications -------------------------------------------
# answer_ms LINE REGEX: types LINE and prints how long (ms) the console took to print one more
# line matching REGEX (5000 if none came in 5 s).
answer_ms() {
    # The log is read from its size before the line is typed, by one `tail -f` (inotify), and
    # matched in bash, timed by $EPOCHREALTIME (digits only: the locale's decimal mark is
    # dropped): the clock starts once tail is reading (it first prints the log's last byte),
    # and no process is started while it runs, so the figure is the system's, not the time this
    # script takes to fork on a busy machine.
    local size t0 line tailer now answered=5000
    size=$(stat -c %s "$log")
    # -s: where inotify is missing, tail looks every 2 ms instead of every second.
    exec 4< <(exec tail -s 0.002 -c +"$((size > 0 ? size : 1))" -f "$log")
    tailer=$!
    ((size > 0)) && read -r -N 1 -t 5 -u 4 _ || true
    t0=${EPOCHREALTIME//[!0-9]/}
    echo "$1" >&3
    while now=${EPOCHREALTIME//[!0-9]/} && ((now - t0 < 5000000)) \
        && IFS= read -r -t "$(((5000000 - (now - t0)) / 1000000 + 1))" -u 4 line; do
        if [[ $line =~ $2 ]]; then
            answered=$(((${EPOCHREALTIME//[!0-9]/} - t0) / 1000))
            break
        fi
    done
    exec 4<&-
    kill "$tailer" 2>/dev/null || true
    echo "$((answered > 5000 ? 5000 : answered))"
}
# percentile P: the P-th percentile of the numbers on standard input.
percentile() {
    sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int((NR - 1) * p / 100) + 1; print (NR ? v[i] : 0) }'
}
# The client's progress lines: blocks verified so far, and the oldest request's age (ms).
client_verified() {
    grep -oE 'soak-client: [0-9]+ verified' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0
}
if want 9; then
samples=40
start notify_base --program client=soak_client
base_times=()
if booted && wait_for 'soak-client: [1-9][0-9]* verified'; then
    base_verified=$(client_verified)
    base_start=$(date +%s.%N)
    for _ in $(seq "$samples"); do
        base_times+=("$(answer_ms time '^\[console\] 20[0-9]{2}-')")
        sleep 0.05
    done
    base_blocks=$(awk "BEGIN { printf \"%d\", ($(client_verified) - $base_verified) / ($(date +%s.%N) - $base_start) }")
fi
stop
start notify_flood --program rng_driver=hostile_notify_flood --program client=soak_client
flood_times=()
if booted && wait_for 'hostile: 100000 notifications so far' 1 20 \
    && wait_for 'soak-client: [1-9][0-9]* verified'; then
    rss_before=$(awk '/^VmRSS/ { print $2 }' "/proc/$launcher/status")
    verified_before=$(client_verified)
    progress_before=$(count 'soak-client: ')
    notified_before=$(count 'hostile: [0-9]+ notifications so far')
    window_start=$(date +%s.%N)
    for _ in $(seq "$samples"); do
        flood_times+=("$(answer_ms time '^\[console\] 20[0-9]{2}-')")
        sleep 0.05
    done
    sleep 2
    window=$(awk "BEGIN { print $(date +%s.%N) - $window_start }")
    rss_after=$(awk '/^VmRSS/ { print $2 }' "/proc/$launcher/status")
    verified_after=$(client_verified)
    notified=$((($(count 'hostile: [0-9]+ notifications so far') - notified_before) * 100000))
    oldest_p99=$(tail -n +1 "$log" | grep -E 'soak-client: ' | tail -n +"$((progress_before + 1))" \
        | grep -oE 'oldest outstanding [0-9]+ ms' | grep -oE '[0-9]+' | percentile 99)
fi
stop
show 12
base_p50=$(printf '%s\n' "${base_times[@]:-5000}" | percentile 50)
base_p99=$(printf '%s\n' "${base_times[@]:-5000}" | percentile 99)
flood_p50=$(printf '%s\n' "${flood_times[@]:-5000}" | percentile 50)
flood_p99=$(printf '%s\n' "${flood_times[@]:-5000}" | percentile 99)
window=${window:-1}
rate=$(awk "BEGIN { printf \"%d\", ${notified:-0} / $window }")
blocks=$(awk "BEGIN { printf \"%d\", (${verified_after:-0} - ${verified_before:-0}) / $window }")
grown=$((${rss_after:-0} - ${rss_before:-0}))
# A run that failed early leaves some figures unset: each check then fails, it does not break.
rate=${rate:-0} blocks=${blocks:-0} oldest_p99=${oldest_p99:-5000}
goal=$([[ $flood_p99 -le 50 ]] && echo "meets the 50 ms goal" || echo "MISSES the 50 ms goal")
echo "supervision: notify flood: ${notified:-0} notifications in ${window%.*} s (${rate}/s) to the manager; shell time p50 ${flood_p50} ms p99 ${flood_p99} ms over $samples [$goal] (without the flood: p50 ${base_p50} ms p99 ${base_p99} ms); client ${blocks} blocks/s verified (without the flood: ${base_blocks:-?}), oldest outstanding p99 ${oldest_p99} ms; launcher RSS ${rss_before:-?} -> ${rss_after:-?} kB"
check "notify flood: the flood ran (at least 100,000 notifications a second)" "[[ $rate -ge 100000 ]]"
# Against the same run without the flood (a timed test would measure the machine): the flood may
# cost the shell at most 3 times its p99 (before the fast path it cost seconds).
check "notify flood: the shell's time answered, p99 ${flood_p99} ms against ${base_p99} ms without the flood" \
    "[[ ${#flood_times[@]} -eq $samples && $flood_p99 -le $((base_p99 * 3 > 50 ? base_p99 * 3 : 50)) ]]"
check "notify flood: the block client kept verifying, oldest request p99 <= 50 ms" \
    "[[ $blocks -gt 0 && $oldest_p99 -le 50 ]]"
check "notify flood: the launcher's memory stayed flat (grew ${grown} kB, at most 1024)" "[[ -n '${rss_before:-}' && $grown -le 1024 ]]"
fi

echo "supervision-test: $passed passed, $failures failed"
[[ $failures -eq 0 ]]
