#!/usr/bin/env bash
# Builds each given no_std crate for the bare-metal seL4 target with -Zbuild-std (used by `make check-target`).
#
# Usage: scripts/check-target.sh CRATE[+FEATURE,...]...
# (`demo-driver+crash-once`: the crate built again with those features.)
# Each crate's library is built (compiled to machine code); a crate with PD binaries also has
# its binaries checked (`cargo check --bins`: everything but the final link, which needs the
# SDK's libmicrokit.a and is done by `make` with MICROKIT_SDK).
# Environment:
#   TARGET            target triple (default aarch64-unknown-none)
#   CARGO_TARGET_DIR  where to build (default target/aarch64, away from the host build)
#   TARGET_RUSTFLAGS  space-separated rustflags for target units only (default -Dwarnings;
#                     cargo gives the standard library's units --cap-lints allow, so they are
#                     unaffected; set it empty to allow warnings)
#
# Toolchain: see scripts/target-toolchain.sh.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 CRATE..." >&2
    exit 2
fi

target=${TARGET:-aarch64-unknown-none}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/aarch64}
read -ra rustflags <<<"${TARGET_RUSTFLAGS--Dwarnings}"
# shellcheck source=scripts/target-toolchain.sh
source "$(dirname "${BASH_SOURCE[0]}")/target-toolchain.sh"

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

# The binary targets of a workspace crate (PD crates have one; libraries none).
bins_of() {
    cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == sys.argv[1]:
        print(" ".join(t["name"] for t in package["targets"] if "bin" in t["kind"]))
' "$1"
}

# One build per crate: features are then resolved for that crate alone, so a crate that only
# builds thanks to features another crate enables is caught.
for argument in "$@"; do
    crate=${argument%%+*}
    features=()
    [[ $argument == *+* ]] && features=(--features "${argument#*+}")
    echo "check-target: building $argument for $target"
    if ! "${target_cargo[@]}" build --locked -p "$crate" "${features[@]}" --lib --target "$target" \
        "${build_std[@]}" "${flags_config[@]}"; then
        echo "check-target: $crate does not build for $target (see above)." >&2
        echo "check-target: if cargo says the lock file needs updating or cannot be parsed, run 'cargo generate-lockfile' with the host cargo and make sure Cargo.lock's version is one the target toolchain's cargo reads." >&2
        exit 1
    fi
    if [[ -n $(bins_of "$crate") ]]; then
        echo "check-target: checking the PD binaries of $crate for $target"
        if ! "${target_cargo[@]}" check --locked -p "$crate" "${features[@]}" --bins --target "$target" \
            "${build_std[@]}" "${flags_config[@]}"; then
            echo "check-target: the binaries of $crate do not compile for $target (see above)." >&2
            exit 1
        fi
    fi
done
echo "check-target: OK: $* build for $target"
