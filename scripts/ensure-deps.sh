#!/usr/bin/env bash
# Checks (and, as root, installs) the toolchains Warden's build needs: rustup stable with rustfmt/clippy, Debian's rustc/cargo/rust-src/rust-lld.
#
# Idempotent and fast when everything is present (only file tests and `--version` calls).
# Host builds use the rustup stable toolchain (preinstalled on every machine; its components
# cannot be downloaded here). The aarch64 bare-metal check (`make check-target`) needs a
# toolchain with the standard library's source for `-Zbuild-std`; rustup cannot download
# rust-src here, so it comes from Debian's rustc-web/cargo-web/rust-web-src (rustc and cargo
# at /usr/bin, source under /usr/lib/rustlib/src/rust) plus /usr/bin/rust-lld, a symlink to
# lld-22 shipped by rust-web-llvm. rust-web-llvm is only a Recommends of rustc-web, so with
# --no-install-recommends it has to be named explicitly.
set -euo pipefail

readonly APT_PACKAGES=(rustc-web rust-web-src cargo-web lld-22 rust-web-llvm)
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
    if ! fmt_version=$(cargo fmt --version 2>/dev/null); then
        warn "MISSING: rustfmt (needed by 'cargo fmt --all -- --check')."
        warn "  fix: rustup component add rustfmt"
        status=1
    else
        say "host rustfmt: $fmt_version"
    fi
    if ! clippy_version=$(cargo clippy --version 2>/dev/null); then
        warn "MISSING: clippy (needed by 'cargo clippy --workspace --all-targets')."
        warn "  fix: rustup component add clippy"
        status=1
    else
        say "host clippy: $clippy_version"
    fi
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
readonly BOARD_PACKAGES=(qemu-system-arm device-tree-compiler)
missing_board_tools() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || echo "qemu-system-aarch64 (package qemu-system-arm)"
    command -v dtc >/dev/null 2>&1 || echo "dtc (package device-tree-compiler)"
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
fi

if [[ $status -ne 0 ]]; then
    warn "some dependencies are missing (see above)."
    exit "$status"
fi
say "all dependencies present."
