#!/usr/bin/env bash
# Builds each given no_std crate for the bare-metal seL4 target with -Zbuild-std (used by `make check-target`).
#
# Usage: scripts/check-target.sh CRATE...
# Environment:
#   TARGET            target triple (default aarch64-unknown-none)
#   CARGO_TARGET_DIR  where to build (default target/aarch64, away from the host build)
#   TARGET_RUSTFLAGS  space-separated rustflags for target units only (default -Dwarnings;
#                     cargo gives the standard library's units --cap-lints allow, so they are
#                     unaffected; set it empty to allow warnings)
#
# Toolchain: a rustup nightly with rust-src if there is one (`cargo +nightly`); otherwise
# Debian's rustc/cargo (/usr/bin, installed by scripts/ensure-deps.sh) with RUSTC_BOOTSTRAP=1.
# Debian's rustc reports sysroot /usr, so cargo finds the library source for -Zbuild-std at
# /usr/lib/rustlib/src/rust/library (a symlink into /usr/src/rustc-<version>, from
# rust-web-src) with no extra setting: neither __CARGO_TESTS_ONLY_SRC_ROOT nor --sysroot is
# needed. The standard library's own crates.io dependencies are fetched by cargo as usual.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CRATE..." >&2
    exit 2
fi

target=${TARGET:-aarch64-unknown-none}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/aarch64}
read -ra rustflags <<<"${TARGET_RUSTFLAGS--Dwarnings}"
build_std=("-Zbuild-std=core,alloc,compiler_builtins" "-Zbuild-std-features=compiler-builtins-mem")

have_nightly_rust_src() {
    command -v rustup >/dev/null 2>&1 || return 1
    rustup toolchain list 2>/dev/null | grep -q '^nightly' || return 1
    rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'
}

if have_nightly_rust_src; then
    echo "check-target: toolchain: rustup nightly (with rust-src)"
    target_cargo=(env -u RUSTC -u RUSTC_BOOTSTRAP cargo +nightly)
else
    for tool in /usr/bin/rustc /usr/bin/cargo; do
        if [[ ! -x $tool ]]; then
            echo "check-target: $tool is missing; run 'make deps' (installs Debian's rustc-web, cargo-web, rust-web-src, lld-22)." >&2
            exit 1
        fi
    done
    src="$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library"
    if [[ ! -f $src/core/src/lib.rs ]]; then
        echo "check-target: the standard library source is missing at $src; run 'make deps' (package rust-web-src)." >&2
        exit 1
    fi
    echo "check-target: toolchain: $(/usr/bin/rustc --version) + $(/usr/bin/cargo --version), RUSTC_BOOTSTRAP=1"
    echo "check-target: build-std source: $src -> $(readlink -f "$src")"
    target_cargo=(env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo)
fi

# Cargo.lock belongs to the host toolchain (rustup stable), which writes it during
# `cargo test`. Let that cargo create or refresh it first, so the target build can run with
# --locked and never rewrites it with a different cargo.
cargo metadata --format-version 1 >/dev/null

# Target-only rustflags as a cargo --config TOML array (host units such as proc-macros and
# build scripts don't get them when --target is given).
flags_config=()
if [[ ${#rustflags[@]} -gt 0 ]]; then
    toml=$(printf '"%s", ' "${rustflags[@]}")
    flags_config=(--config "target.$target.rustflags = [${toml%, }]")
fi

# One build per crate: features are then resolved for that crate alone, so a crate that only
# builds thanks to features another crate enables is caught.
for crate in "$@"; do
    echo "check-target: building $crate for $target"
    if ! "${target_cargo[@]}" build --locked -p "$crate" --target "$target" \
        "${build_std[@]}" "${flags_config[@]}"; then
        echo "check-target: $crate does not build for $target (see above)." >&2
        echo "check-target: if cargo says the lock file needs updating or cannot be parsed, run 'cargo generate-lockfile' with the host cargo and make sure Cargo.lock's version is one the target toolchain's cargo reads." >&2
        exit 1
    fi
done
echo "check-target: OK: $* build for $target"
