#!/usr/bin/env bash
# `make tree-svg`: runs system.xml on the host platform (QEMU virt's board, modelled), asks
# the shell for `tree --dot` once bring-up is done, and renders it with Graphviz to
# build/tree.svg (and build/tree.dot).
#
# Usage: scripts/tree-svg.sh [OUTPUT.svg]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-build/tree.svg}
cargo build --workspace --bins --release
host=target/release/warden-host
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bash scripts/board-dtb.sh qemu_virt_aarch64 "$work/board.dtb"
truncate -s 1M "$work/disk.img"
mkfifo "$work/console"
"$host" run system.xml --board "$work/board.dtb" --virtio "blk=$work/disk.img" --virtio rng \
    --timeout 30 <"$work/console" >"$work/log" 2>&1 &
launcher=$!
exec 3>"$work/console"
waited() {
    for _ in $(seq 200); do
        grep -qE -- "$1" "$work/log" && return 0
        sleep 0.1
    done
    echo "tree-svg: timed out waiting for: $1" >&2
    return 1
}
ok=yes
if waited 'bring-up done' && waited '^\[console\] Warden shell'; then
    echo 'tree --dot' >&3
    waited '^\[console\] \}' || ok=no
else
    ok=no
fi
kill -TERM "$launcher" 2>/dev/null || true
wait "$launcher" 2>/dev/null || true
exec 3>&-
if [[ $ok != yes ]]; then
    tail -n 30 "$work/log" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
scripts/dot-from-log.sh "$work/log" >"${out%.svg}.dot"
dot -Tsvg "${out%.svg}.dot" -o "$out"
echo "tree-svg: $(grep -c 'fillcolor=' "${out%.svg}.dot") devices drawn: $out (from ${out%.svg}.dot)"
