#!/usr/bin/env bash
# Builds the PD binaries of the given crates for the bare-metal seL4 target and links them
# against libmicrokit (used by `make` / `make qemu`; needs an SDK).
#
# Usage: scripts/build-pds.sh CRATE...
# Environment (set by the Makefile):
#   MICROKIT_BOARD_DIR  $MICROKIT_SDK/board/$MICROKIT_BOARD/$MICROKIT_CONFIG (include/, lib/)
#   LINK_SCRIPT         the SDK's microkit.ld
#   TARGET, CARGO_TARGET_DIR, PROFILE (release|dev)
#   WARDEN_CC, WARDEN_AR  the cross C compiler and archiver for the libmicrokit shim
#   PD_FEATURES         optional cargo features, e.g. demo-driver/crash-once
#
# Toolchain as in scripts/check-target.sh (rustup nightly with rust-src, else Debian's rustc
# with RUSTC_BOOTSTRAP=1). The link: rust-lld with microkit.ld, --gc-sections (without it all of
# core is kept), and _start (libmicrokit's crt0) as a root so that libmicrokit.a is pulled in.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${MICROKIT_BOARD_DIR:?set MICROKIT_BOARD_DIR (the Makefile does)}"
: "${LINK_SCRIPT:?set LINK_SCRIPT (the Makefile does)}"
target=${TARGET:-aarch64-unknown-none}
profile=${PROFILE:-release}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/aarch64}
export MICROKIT_BOARD_DIR

cross_tools=("${WARDEN_CC:-aarch64-linux-gnu-gcc}" "${WARDEN_AR:-aarch64-linux-gnu-ar}")
missing_cross_tools() {
    local tool
    for tool in "${cross_tools[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || echo "$tool"
    done
}
if [[ -n $(missing_cross_tools) && $(id -u) -eq 0 && -z ${WARDEN_CC:-} ]]; then
    echo "build-pds: installing Debian's gcc-aarch64-linux-gnu (the libmicrokit shim's compiler)"
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=900 update
    DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=900 install -y \
        --no-install-recommends gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu
fi
if [[ -n $(missing_cross_tools) ]]; then
    echo "build-pds: missing: $(missing_cross_tools | tr '\n' ' ')" >&2
    echo "build-pds: install Debian's gcc-aarch64-linux-gnu, or set CROSS_CC / CROSS_AR to an aarch64 C compiler and archiver." >&2
    exit 1
fi

# shellcheck source=scripts/target-toolchain.sh
source scripts/target-toolchain.sh

cargo metadata --format-version 1 >/dev/null
packages=()
for crate in "$@"; do
    packages+=(-p "$crate")
done
flags="\"-Clink-arg=-T$LINK_SCRIPT\", \"-Clink-arg=--gc-sections\", \"-Clink-arg=--undefined=_start\""
"${target_cargo[@]}" build --locked --profile "$profile" "${packages[@]}" --bins --target "$target" \
    ${PD_FEATURES:+--features "$PD_FEATURES"} "${build_std[@]}" --config "target.$target.rustflags = [$flags]"
