#!/usr/bin/env bash
# Runs ensure-deps.sh's trials as a fresh machine would see them: in a private mount namespace
# where every optional package (a Recommends or Suggests) of what Warden installs is hidden, so a
# machine that once installed, say, ipxe-qemu (QEMU's NIC ROMs) cannot hide a step that only
# works because of it. Nothing is uninstalled: the files are masked for this one run.
#
# Usage: scripts/fresh-machine-check.sh            (part of `make test`)
#        scripts/fresh-machine-check.sh --inside   (used by itself inside the namespace)
#
# How: the packages Warden installs (ensure-deps.sh --packages) and everything they depend on
# make the set it needs; every installed package that set only recommends or suggests is to be
# hidden. Each directory holding such files gets an overlay whose upper layer has a whiteout for
# each of them, so they are absent (not empty) and every other file stays as it is. Needs root or
# unprivileged user namespaces; without either it says so and runs the trials unmasked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'fresh-machine: %s\n' "$*"; }

# The installed packages a fresh machine would not have: named as a Recommends or Suggests of
# Warden's packages or of what they pull in (leaving out the base system's own packages, whose
# recommendations came with the machine), of priority optional, and needed (Depends) by nothing
# installed.
optional_packages() {
    local packages closure own
    mapfile -t packages < <(bash scripts/ensure-deps.sh --packages)
    closure=$(apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "${packages[@]}" 2>/dev/null |
        grep -v '^ ' | sed 's/:.*//' | sort -u)
    # shellcheck disable=SC2086 # one package name per word
    # (dpkg-query fails for the virtual packages in the list; the others are still printed.)
    own=$({ dpkg-query -W -f='${Package} ${Priority}\n' $closure 2>/dev/null || true; } |
        awk '$2 != "required" && $2 != "important" && $2 != "standard" { print $1 }')
    # shellcheck disable=SC2086
    apt-cache depends --installed --no-depends --no-pre-depends --no-conflicts --no-breaks \
        --no-replaces --no-enhances $own 2>/dev/null |
        sed -n 's/^ *\(Recommends\|Suggests\): *//p' | tr -d '<>' | sed 's/:.*//' | sort -u |
        comm -23 - <(printf '%s\n' "$closure") |
        while read -r package; do
            [[ $(dpkg-query -W -f='${Status} ${Priority}' "$package" 2>/dev/null) == *" installed optional" ]] ||
                continue
            apt-cache rdepends --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
                --no-replaces --no-enhances "$package" 2>/dev/null | tail -n +3 | grep -q . ||
                echo "$package"
        done
}

if [[ ${1:-} != --inside ]]; then
    if ! command -v apt-cache >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian machine (no apt-cache/dpkg-query): running the trials as they are"
        exec bash scripts/ensure-deps.sh
    fi
    mapfile -t hidden < <(optional_packages)
    if [[ ${#hidden[@]} -eq 0 ]]; then
        say "no optional package of Warden's tools is installed: this machine is as fresh as it gets"
        exec bash scripts/ensure-deps.sh
    fi
    say "hiding ${#hidden[@]} optional package(s) for this run: ${hidden[*]}"
    export FRESH_MACHINE_HIDE="${hidden[*]}"
    if [[ $(id -u) -eq 0 ]] && unshare -m true 2>/dev/null; then
        exec unshare -m --propagation private bash "$0" --inside
    elif unshare -rm true 2>/dev/null; then
        exec unshare -rm --propagation private bash "$0" --inside
    fi
    say "cannot make a mount namespace here (needs root or user namespaces): running the trials unmasked"
    exec bash scripts/ensure-deps.sh
fi

# --- Inside the namespace: mask the files, then run the trials. -------------------------------
scratch=$(mktemp -d)
mount -t tmpfs none "$scratch"
read -ra packages <<<"${FRESH_MACHINE_HIDE:?}"
count=0
declare -A whiteouts
for package in "${packages[@]}"; do
    while read -r path; do
        # Files and symbolic links to files; directories (and links to them, such as /lib on a
        # merged-/usr system) are never masked, only the package's files in them.
        if [[ (-L $path || -f $path) && ! -d $path ]]; then
            directory=$(realpath -- "$(dirname -- "$path")")
            whiteouts[$directory]+="$(basename -- "$path")"$'\n'
            count=$((count + 1))
        fi
    done < <(dpkg-query -L "$package" 2>/dev/null)
done
# One overlay per topmost directory: a directory below one already overlaid gets its whiteouts in
# that overlay's upper layer (overlays do not stack more than two deep). Parents come first. An
# overlay shows its lower directory as the filesystem has it, without what is mounted below it
# (say, a tmpfs already hiding a folder): such mounts are kept aside and mounted again on top.
mapfile -t directories < <(printf '%s\n' "${!whiteouts[@]}" | awk -F/ '{ print NF "\t" $0 }' |
    sort -n | cut -f2-)
mapfile -t mount_points < <(awk '{ print $5 }' /proc/self/mountinfo)
# The mount points strictly below $1 (each once; mountinfo escapes spaces as \040, which no
# packaged path Warden hides contains).
mounts_below() {
    local point
    for point in "${mount_points[@]}"; do
        [[ $point == "$1"/* ]] && echo "$point"
    done | sort -u
}
declare -A upper_of
mounts=()
for directory in "${directories[@]}"; do
    top=
    for mount_point in "${mounts[@]}"; do
        [[ $directory == "$mount_point"/* ]] && top=$mount_point && break
    done
    if [[ -z $top ]]; then
        top=$directory
        mounts+=("$top")
        upper_of[$top]=$scratch/${#mounts[@]}
        mkdir -p "${upper_of[$top]}/upper" "${upper_of[$top]}/work"
    fi
    upper=${upper_of[$top]}/upper${directory#"$top"}
    mkdir -p "$upper"
    while IFS= read -r name; do
        [[ -n $name && ! -e $upper/$name ]] && mknod "$upper/$name" c 0 0
    done <<<"${whiteouts[$directory]}"
done
for top in "${mounts[@]}"; do
    mapfile -t below < <(mounts_below "$top")
    kept=()
    for point in "${below[@]}"; do
        keep=$scratch/kept/${#kept[@]}-$(basename -- "$top")
        mkdir -p "$keep"
        mount --rbind "$point" "$keep"
        kept+=("$point" "$keep")
    done
    mount -t overlay overlay \
        -o "lowerdir=$top,upperdir=${upper_of[$top]}/upper,workdir=${upper_of[$top]}/work" "$top"
    for ((i = 0; i < ${#kept[@]}; i += 2)); do
        mount --rbind "${kept[i + 1]}" "${kept[i]}"
    done
done
say "hidden: $count files in ${#whiteouts[@]} directories (${#mounts[@]} overlays)"
for package in "${packages[@]}"; do
    while read -r path; do
        if [[ (-L $path || -e $path) && ! -d $path ]]; then
            echo "fresh-machine: could not hide $path (of $package)" >&2
            exit 1
        fi
    done < <(dpkg-query -L "$package" 2>/dev/null)
done
bash scripts/ensure-deps.sh
