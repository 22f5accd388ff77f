#!/usr/bin/env bash
# The QEMU virt machine Warden runs on, defined once: the DTB the device manager embeds is dumped
# from exactly the machine `make qemu` boots, and `make test` boots it for a moment to show the
# options work on this machine.
#
# Usage:
#   scripts/qemu-virt.sh dtb OUT.dtb          dump the machine's device tree (compact, no random
#                                             properties: the same QEMU gives the same bytes)
#   scripts/qemu-virt.sh boot IMAGE DISK [QEMU OPTION...]
#                                             boot a Microkit image (`make qemu`)
#   scripts/qemu-virt.sh trial                boot the same machine, devices and disk with a
#                                             branch-to-self for two seconds: exit 0 if QEMU ran
# QEMU_SYSTEM overrides the binary (default qemu-system-aarch64).
#
# The machine has no NIC (`-nic none`): Warden drives none, and QEMU's default NIC needs a
# firmware ROM (efi-virtio.rom, Debian's ipxe-qemu, only a Recommends of qemu-system-arm) that a
# fresh machine installed with --no-install-recommends lacks. `dtb-randomness=off` keeps the
# rng-seed and kaslr-seed QEMU would put in /chosen out of the tree, so the blob (and the
# device manager built from it) is the same at every build.
set -euo pipefail

qemu=${QEMU_SYSTEM:-qemu-system-aarch64}

die() {
    echo "error: qemu-virt.sh: $*" >&2
    exit 1
}

# The machine: every option that shapes its device tree (`-machine` is kept apart so that `dtb`
# can add dumpdtb= to it).
machine_options=virt,virtualization=on,dtb-randomness=off
board=(-cpu cortex-a53 -m size=2G -nographic -nic none -global virtio-mmio.force-legacy=false)
machine=(-machine "$machine_options" "${board[@]}")

# The devices `make qemu` adds: the disk the block client checks and an entropy source (they sit
# behind virtio-mmio transports that are in the tree whether or not a device is plugged in), and
# two PCIe root ports with hot-plug slots 1 and 2 at 00:01.0 and 00:02.0 (PCI devices are not in
# the device tree: the host bridge's driver finds them). With QMP=SOCKET, QEMU's monitor
# listens there (QMP), so a script can plug a card into a slot and take it out:
# `device_add virtio-blk-pci,bus=slot1,drive=…` / `device_del`.
devices() {
    local disk=$1
    printf '%s\n' -drive "file=$disk,if=none,format=raw,id=disk0" \
        -device virtio-blk-device,drive=disk0 -device virtio-rng-device \
        -device pcie-root-port,id=slot1,chassis=1,slot=1,bus=pcie.0,addr=1 \
        -device pcie-root-port,id=slot2,chassis=2,slot=2,bus=pcie.0,addr=2
    if [[ -n ${QMP:-} ]]; then
        printf '%s\n' -qmp "unix:$QMP,server=on,wait=off"
    fi
}

need_qemu() {
    command -v "$qemu" >/dev/null 2>&1 ||
        die "$qemu not found: install the Debian package qemu-system-arm (or set QEMU_SYSTEM to the binary)"
}

case ${1:-} in
dtb)
    [[ $# -eq 2 ]] || die "usage: qemu-virt.sh dtb OUT.dtb"
    need_qemu
    command -v dtc >/dev/null 2>&1 || die "dtc not found: install the Debian package device-tree-compiler"
    out=$2
    raw=$(mktemp "$out.raw.XXXXXX")
    trap 'rm -f -- "$raw" "$raw.log"' EXIT
    # `dumpdtb` writes the tree into a 1 MiB blob; dtc packs it to its ~7 KB of content.
    "$qemu" -machine "$machine_options,dumpdtb=$raw" "${board[@]}" >/dev/null 2>"$raw.log" || {
        cat -- "$raw.log" >&2
        die "$qemu failed to dump the device tree of the virt machine (options: ${machine[*]})"
    }
    dtc -q -I dtb -O dtb -o "$out" "$raw" || die "dtc could not pack the blob $qemu dumped"
    ;;
boot)
    [[ $# -ge 3 ]] || die "usage: qemu-virt.sh boot IMAGE DISK [QEMU OPTION...]"
    need_qemu
    image=$2 disk=$3
    shift 3
    [[ -f $image ]] || die "no system image at $image"
    mapfile -t device_args < <(devices "$disk")
    exec "$qemu" "${machine[@]}" -serial mon:stdio \
        -device "loader,file=$image,addr=0x70000000,cpu-num=0" "${device_args[@]}" "$@"
    ;;
trial)
    need_qemu
    work=$(mktemp -d)
    trap 'rm -rf -- "$work"' EXIT
    # `b .` (0x14000000): the CPU spins where the loader would start the Microkit image.
    printf '\x00\x00\x00\x14' >"$work/spin.img"
    truncate -s 1M "$work/disk.img"
    mapfile -t device_args < <(devices "$work/disk.img")
    status=0
    timeout 2 "$qemu" "${machine[@]}" -serial none -monitor none \
        -device "loader,file=$work/spin.img,addr=0x70000000,cpu-num=0" "${device_args[@]}" \
        </dev/null >"$work/log" 2>&1 || status=$?
    # 124: still running when the timeout stopped it, which is what a booted machine does.
    if [[ $status -ne 124 ]]; then
        cat -- "$work/log" >&2
        die "$qemu did not boot make qemu's machine (exit $status; options: ${machine[*]} ${device_args[*]})"
    fi
    ;;
*)
    die "usage: qemu-virt.sh dtb OUT.dtb | boot IMAGE DISK [OPTION...] | trial"
    ;;
esac
