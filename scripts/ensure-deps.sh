#!/usr/bin/env bash
# Checks (and, as root, installs) the toolchains Warden's build needs: rustup stable with rustfmt/clippy, Debian's rustc/cargo/rust-src/rust-lld, QEMU and dtc.
#
# Idempotent and fast when everything is present (file tests, `--version` calls and a few
# seconds of trial runs). Being on PATH is not enough: each tool is then run the way Warden runs
# it (a trial), because a tool can be installed and still fail at what Warden asks of it — QEMU
# without an optional ROM its default NIC wants, say. The trials run again in `make test` with
# the optional packages hidden (scripts/fresh-machine-check.sh).
# Host builds use the rustup stable toolchain (preinstalled on every machine; its components
# cannot be downloaded here). The aarch64 bare-metal check (`make check-target`) needs a
# toolchain with the standard library's source for `-Zbuild-std`; rustup cannot download
# rust-src here, so it comes from Debian's rustc-web/cargo-web/rust-web-src (rustc and cargo
# at /usr/bin, source under /usr/lib/rustlib/src/rust) plus /usr/bin/rust-lld, a symlink to
# lld-22 shipped by rust-web-llvm. rust-web-llvm is only a Recommends of rustc-web, so with
# --no-install-recommends it has to be named explicitly.
set -euo pipefail

readonly APT_PACKAGES=(rustc-web rust-web-src cargo-web lld-22 rust-web-llvm)
# The board tools: QEMU dumps the QEMU virt DTB (and boots the image), dtc compiles the Odroid C4's,
# Graphviz renders the shell's `tree --dot` (sim-test, make tree-svg).
readonly BOARD_PACKAGES=(qemu-system-arm device-tree-compiler graphviz)

# `ensure-deps.sh --packages`: the Debian packages this script installs, one per line (read by
# fresh-machine-check.sh; build-pds.sh adds the cross compiler for an image).
if [[ ${1:-} == --packages ]]; then
    printf '%s\n' "${APT_PACKAGES[@]}" "${BOARD_PACKAGES[@]}"
    exit 0
fi
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly DEBIAN_RUSTC=/usr/bin/rustc
readonly DEBIAN_CARGO=/usr/bin/cargo
readonly RUST_LLD=/usr/bin/rust-lld

say() { printf 'deps: %s\n' "$*"; }
warn() { printf 'deps: %s\n' "$*" >&2; }
indent() { while IFS= read -r line; do printf '  %s\n' "$line"; done <<<"$1"; }

# apt-get install PACKAGE... (as root), waiting rather than failing if another apt/dpkg run
# holds the lock.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local apt_opts=(-o DPkg::Lock::Timeout=900 -q)
    apt-get "${apt_opts[@]}" update
    apt-get "${apt_opts[@]}" install -y --no-install-recommends "$@"
}

# Where -Zbuild-std looks for the library source: <sysroot>/lib/rustlib/src/rust/library.
rust_src_dir() {
    local sysroot=/usr
    if [[ -x $DEBIAN_RUSTC ]]; then
        sysroot=$("$DEBIAN_RUSTC" --print sysroot 2>/dev/null || echo /usr)
    fi
    printf '%s/lib/rustlib/src/rust/library\n' "$sysroot"
}

# Prints one line per missing piece of the Debian toolchain; prints nothing when complete.
missing_debian_toolchain() {
    [[ -x $DEBIAN_RUSTC ]] || echo "$DEBIAN_RUSTC (package rustc-web)"
    [[ -x $DEBIAN_CARGO ]] || echo "$DEBIAN_CARGO (package cargo-web)"
    local src
    src=$(rust_src_dir)
    [[ -f $src/core/src/lib.rs && -f $src/alloc/src/lib.rs ]] \
        || echo "rust-src at $src (package rust-web-src)"
    [[ -x $RUST_LLD ]] || echo "$RUST_LLD (packages rust-web-llvm, lld-22)"
}

status=0

# --- 1. Host toolchain (rustup stable): cargo, rustc, rustfmt, clippy. ---------------------
if ! command -v cargo >/dev/null 2>&1; then
    warn "MISSING: cargo is not on PATH (expected the rustup stable toolchain in ~/.cargo/bin)."
    warn "  fix: install rustup's stable toolchain, or add \$HOME/.cargo/bin to PATH"
    status=1
else
    say "host cargo: $(cargo --version)"
    # component SUBCOMMAND USE: `cargo SUBCOMMAND --version` answers, or says how to get it.
    component() {
        local version
        if version=$(cargo "$1" --version 2>/dev/null); then
            say "host $1: $version"
        else
            warn "MISSING: $1 (needed by '$2')."
            warn "  fix: rustup component add ${1/fmt/rustfmt}"
            status=1
        fi
    }
    component fmt "cargo fmt --all -- --check"
    component clippy "cargo clippy --workspace --all-targets"
fi

# --- 2. Debian toolchain for the aarch64 -Zbuild-std check. ---------------------------------
missing=$(missing_debian_toolchain)
if [[ -n $missing ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        say "installing from Debian (${APT_PACKAGES[*]}) because these are missing:"
        indent "$missing"
        apt_install "${APT_PACKAGES[@]}"
        missing=$(missing_debian_toolchain)
        if [[ -n $missing ]]; then
            warn "MISSING after apt-get install:"
            indent "$missing" >&2
            status=1
        fi
    else
        warn "MISSING (needed by 'make check-target'):"
        indent "$missing" >&2
        warn "  fix (as root): apt-get update && apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}"
        status=1
    fi
fi
if [[ -z $missing ]]; then
    say "debian rustc: $("$DEBIAN_RUSTC" --version)"
    say "debian cargo: $("$DEBIAN_CARGO" --version)"
    say "rust-src: $(rust_src_dir) -> $(readlink -f "$(rust_src_dir)")"
    say "rust-lld: $RUST_LLD -> $(readlink -f "$RUST_LLD")"
fi

# --- 3. Board tools: QEMU dumps the QEMU virt DTB, dtc compiles the Odroid C4's. -------------
# The device manager embeds the board's DTB at build time (scripts/board-dtb.sh), and
# warden-host models the devices it lists, so host builds and tests need these too.
missing_board_tools() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || echo "qemu-system-aarch64 (package qemu-system-arm)"
    command -v dtc >/dev/null 2>&1 || echo "dtc (package device-tree-compiler)"
    command -v dot >/dev/null 2>&1 || echo "dot (package graphviz)"
}
missing=$(missing_board_tools)
if [[ -n $missing ]]; then
    if [[ $(id -u) -eq 0 ]]; then
        say "installing from Debian (${BOARD_PACKAGES[*]}) because these are missing:"
        indent "$missing"
        apt_install "${BOARD_PACKAGES[@]}"
        missing=$(missing_board_tools)
    fi
    if [[ -n $missing ]]; then
        warn "MISSING (needed to build the device manager's board DTB):"
        indent "$missing" >&2
        warn "  fix (as root): apt-get install -y --no-install-recommends ${BOARD_PACKAGES[*]}"
        status=1
    fi
fi
if [[ -z $missing ]]; then
    say "qemu: $(qemu-system-aarch64 --version | head -n 1)"
    say "dtc: $(dtc --version 2>&1 | head -n 1)"
    say "dot: $(dot -V 2>&1 | head -n 1)"
fi

# --- 4. Trials: each tool does what Warden asks of it. ----------------------------------------
trial_dir=$(mktemp -d)
trap 'rm -rf -- "$trial_dir"' EXIT
# trial WHAT FIX COMMAND...: runs COMMAND quietly; on failure shows its output and the fix.
trial() {
    local what=$1 fix=$2
    shift 2
    if "$@" >"$trial_dir/out" 2>&1; then
        say "trial ok: $what"
    else
        warn "FAILED trial: $what"
        indent "$(tail -n 20 "$trial_dir/out")" >&2
        warn "  fix: $fix"
        status=1
    fi
}
# The QEMU virt DTB the device manager embeds: the same bytes at every build, and small. (Run
# as a condition, where `set -e` does not apply: hence the &&.)
dtb_is_reproducible() {
    local size
    bash "$repo_root/scripts/board-dtb.sh" qemu_virt_aarch64 "$trial_dir/again.dtb" &&
        cmp "$trial_dir/virt.dtb" "$trial_dir/again.dtb" &&
        size=$(stat -c %s "$trial_dir/virt.dtb") && echo "$size bytes" && [[ $size -lt 65536 ]]
}
if [[ -x $DEBIAN_RUSTC ]]; then
    trial "Debian rustc knows aarch64-unknown-none" "apt-get install --reinstall ${APT_PACKAGES[*]}" \
        bash -c "'$DEBIAN_RUSTC' --print target-list | grep -qx aarch64-unknown-none"
fi
if [[ -x $RUST_LLD ]]; then
    trial "rust-lld runs (as ld.lld)" "apt-get install --reinstall lld-22 rust-web-llvm" \
        "$RUST_LLD" -flavor gnu --version
fi
if command -v qemu-system-aarch64 >/dev/null 2>&1; then
    trial "QEMU dumps the virt machine's DTB (scripts/board-dtb.sh qemu_virt_aarch64)" \
        "see the QEMU error above; the machine options are in scripts/qemu-virt.sh" \
        bash "$repo_root/scripts/board-dtb.sh" qemu_virt_aarch64 "$trial_dir/virt.dtb"
    trial "two dumps are the same packed blob, under 64 KiB" \
        "the machine options in scripts/qemu-virt.sh must keep random properties out (dtb-randomness=off)" \
        dtb_is_reproducible
    trial "QEMU boots make qemu's machine and devices (scripts/qemu-virt.sh trial)" \
        "see the QEMU error above; the machine options are in scripts/qemu-virt.sh" \
        bash "$repo_root/scripts/qemu-virt.sh" trial
fi
if command -v dtc >/dev/null 2>&1; then
    trial "dtc compiles the Odroid C4's board.dts (scripts/board-dtb.sh odroidc4)" \
        "apt-get install --reinstall device-tree-compiler" \
        bash "$repo_root/scripts/board-dtb.sh" odroidc4 "$trial_dir/odroidc4.dtb"
fi
# The shell's `tree --dot` output has labels with line breaks, filled rounded boxes and a
# monospace font: dot must render that to SVG.
dot_renders() {
    printf '%s\n' 'digraph warden {' '  node [shape=box, style="rounded,filled", fontname="monospace"];' \
        '  "0:0" [label="0:0 linux,dummy-virt\nunbound", fillcolor=lightgrey];' \
        '  "1:0" [label="1:0 arm,pl011\n@0x9000000 irq 33\npl011-console", fillcolor=palegreen];' \
        '  "0:0" -> "1:0";' '}' | dot -Tsvg >"$trial_dir/tree.svg" && grep -q '<svg' "$trial_dir/tree.svg" \
        && grep -q 'irq 33' "$trial_dir/tree.svg"
}
if command -v dot >/dev/null 2>&1; then
    trial "dot renders a device tree to SVG (the shell's tree --dot)" \
        "apt-get install --reinstall graphviz" dot_renders
fi

if [[ $status -ne 0 ]]; then
    warn "some dependencies are missing (see above)."
    exit "$status"
fi
say "all dependencies present."
