#!/usr/bin/env bash
# Builds the release archives: for each Pi target and x86_64, a
# majortom-<version>-<target>.tar.gz holding the static binary, the systemd
# unit and sysusers file, the annotated default config, README, CHANGELOG,
# the licences and a short INSTALL; plus SHA256SUMS. Written under dist/
# (this version's files replace what was there).
#
#   cross/dist.sh [--no-build] [VERSION]
#
# VERSION defaults to Cargo.toml's; another one is refused, since the
# binary reports Cargo.toml's (`majortom --version`). --no-build packages
# the binaries already in target/arm instead of running cross/build.sh
# first (scripts/reproducible.sh uses it).
#
# Reproducible: the same source gives the same bytes. The binaries come
# from cross/build.sh, whose flags remap every build path; the archives
# have their entries sorted, owner and group 0, fixed modes, every mtime
# at SOURCE_DATE_EPOCH (default: the last commit's time) and gzip without
# a name or time stamp. scripts/test.sh builds twice and compares.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

TARGETS=(arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl)

build=1
if [ "${1:-}" = --no-build ]; then
    build=0
    shift
fi
[ $# -le 1 ] || die "usage: cross/dist.sh [--no-build] [VERSION]"

cargo_version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ -n "$cargo_version" ] || die "no version in Cargo.toml's [package]"
version=${1:-$cargo_version}
version=${version#v} # a tag name (v1.2.3) will do
[ "$version" = "$cargo_version" ] \
    || die "version $version, but Cargo.toml says $cargo_version (what \`majortom --version\` prints): bump Cargo.toml first"

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) \
        || die "not a git checkout: set SOURCE_DATE_EPOCH (seconds since 1970) for the archives' timestamps"
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH is not a number of seconds"
export SOURCE_DATE_EPOCH

command -v readelf >/dev/null || apt_get_install binutils
tar --version 2>/dev/null | grep -q 'GNU tar' || die "cross/dist.sh needs GNU tar (--sort=name, --mtime)"

start=$(date +%s)
if [ "$build" -eq 1 ]; then
    cross/build.sh "${TARGETS[@]}"
fi

# expect_machine BINARY TARGET: refuses to package a binary for another CPU
# than the archive's name says (read from its ELF header and, for 32-bit
# ARM, the architecture tag: armv6 and armv7 share the machine type).
expect_machine() {
    local binary=$1 target=$2 machine arch
    machine=$(LC_ALL=C readelf -h "$binary" | sed -n 's/^ *Machine: *//p')
    arch=$(LC_ALL=C readelf -A "$binary" | sed -n 's/^ *Tag_CPU_arch: *//p')
    case "$target:$machine:$arch" in
        arm-*:ARM:v6 | armv7-*:ARM:v7 | aarch64-*:AArch64:* | x86_64-*:"Advanced Micro Devices X86-64":*) ;;
        *) die "$binary is for $machine ${arch:-} , not $target" ;;
    esac
}

mkdir -p dist
rm -f dist/majortom-*.tar.gz dist/SHA256SUMS
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for target in "${TARGETS[@]}"; do
    binary=target/arm/$target/release/majortom
    [ -f "$binary" ] || die "$binary is missing: run cross/build.sh $target (or cross/dist.sh without --no-build)"
    expect_machine "$binary" "$target"
    name=majortom-$version-$target
    dir=$stage/$name
    mkdir "$dir"
    cp "$binary" "$dir/majortom"
    cp systemd/majortom.service systemd/majortom.sysusers README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE "$dir/"
    cp src/config/default.toml "$dir/majortom.toml"
    cp cross/INSTALL "$dir/INSTALL"
    # Modes set outright, whatever the umask or the checkout gave.
    chmod 0755 "$dir" "$dir/majortom"
    find "$dir" -type f ! -name majortom -exec chmod 0644 {} +
    LC_ALL=C tar --create --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime="@$SOURCE_DATE_EPOCH" --directory="$stage" "$name" \
        | gzip -9 --no-name >"dist/$name.tar.gz"
done
(cd dist && LC_ALL=C sha256sum majortom-"$version"-*.tar.gz >SHA256SUMS)

printf '\n%-58s %10s\n' archive bytes
for target in "${TARGETS[@]}"; do
    archive=dist/majortom-$version-$target.tar.gz
    printf '%-58s %10d\n' "$archive" "$(stat -c %s "$archive")"
done
say "dist/ written in $(($(date +%s) - start)) s (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
