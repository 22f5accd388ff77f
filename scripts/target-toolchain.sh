# shellcheck shell=bash
# Sourced by check-target.sh and build-pds.sh: chooses the toolchain for the bare-metal target and
# sets `target_cargo` (the cargo command line) and `build_std` (the -Zbuild-std flags).
#
# A rustup nightly with rust-src if there is one (`cargo +nightly`); otherwise Debian's
# rustc/cargo (/usr/bin, installed by scripts/ensure-deps.sh) with RUSTC_BOOTSTRAP=1 — the only
# way on a machine where rustup cannot download rust-src. Debian's rustc reports sysroot /usr,
# so cargo finds the library source for -Zbuild-std at /usr/lib/rustlib/src/rust/library (a
# symlink into /usr/src/rustc-<version>, from rust-web-src) with no extra setting.
build_std=("-Zbuild-std=core,alloc,compiler_builtins" "-Zbuild-std-features=compiler-builtins-mem")

have_nightly_rust_src() {
    command -v rustup >/dev/null 2>&1 || return 1
    rustup toolchain list 2>/dev/null | grep -q '^nightly' || return 1
    rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'
}

if have_nightly_rust_src; then
    echo "target toolchain: toolchain: rustup nightly (with rust-src)"
    target_cargo=(env -u RUSTC -u RUSTC_BOOTSTRAP cargo +nightly)
else
    for tool in /usr/bin/rustc /usr/bin/cargo; do
        if [[ ! -x $tool ]]; then
            echo "target toolchain: $tool is missing; run 'make deps' (installs Debian's rustc-web, cargo-web, rust-web-src, lld-22)." >&2
            exit 1
        fi
    done
    src="$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library"
    if [[ ! -f $src/core/src/lib.rs ]]; then
        echo "target toolchain: the standard library source is missing at $src; run 'make deps' (package rust-web-src)." >&2
        exit 1
    fi
    echo "target toolchain: toolchain: $(/usr/bin/rustc --version) + $(/usr/bin/cargo --version), RUSTC_BOOTSTRAP=1"
    echo "target toolchain: build-std source: $src -> $(readlink -f "$src")"
    target_cargo=(env RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo)
fi

