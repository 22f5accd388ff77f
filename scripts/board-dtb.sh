#!/usr/bin/env bash
# Produces a board's device tree blob, the source of the device manager's initial device tree.
#
# Usage: scripts/board-dtb.sh BOARD OUT.dtb
#   qemu_virt_aarch64  QEMU dumps the DTB of the machine `make qemu` boots (never hand-written:
#                      QEMU's own tree is the truth; scripts/qemu-virt.sh). QEMU_SYSTEM overrides
#                      the binary.
#   odroidc4           dtc compiles platform/odroidc4/board.dts.
# The blob is written to a temporary file beside OUT and renamed, so OUT is either the old file or
# a complete new one, never a half-written blob.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "error: board-dtb.sh: $*" >&2
    exit 1
}

if [ "$#" -ne 2 ]; then
    echo "usage: scripts/board-dtb.sh BOARD OUT.dtb   (BOARD: qemu_virt_aarch64 | odroidc4)" >&2
    exit 2
fi
board=$1
out=$2
[ -n "$out" ] || die "the output path is empty"

out_dir=$(dirname -- "$out")
mkdir -p -- "$out_dir" || die "cannot create the output directory $out_dir"
# Same directory as OUT so that the final mv is a rename on one filesystem (atomic).
partial=$(mktemp "$out_dir/.$(basename -- "$out").XXXXXX")
trap 'rm -f -- "$partial"' EXIT

case "$board" in
qemu_virt_aarch64)
    # The machine `make qemu` boots, defined once in qemu-virt.sh (packed, no random seeds).
    bash "$repo_root/scripts/qemu-virt.sh" dtb "$partial"
    ;;
odroidc4)
    command -v dtc >/dev/null 2>&1 ||
        die "dtc not found: install the Debian package device-tree-compiler"
    dtc -I dts -O dtb -o "$partial" "$repo_root/platform/odroidc4/board.dts" ||
        die "dtc failed to compile platform/odroidc4/board.dts"
    ;;
*)
    die "unknown board '$board' (Warden has qemu_virt_aarch64 and odroidc4)"
    ;;
esac

[ -s "$partial" ] || die "no device tree was produced for $board"
chmod 0644 "$partial"
mv -f -- "$partial" "$out"
trap - EXIT
