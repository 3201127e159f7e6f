#!/usr/bin/env bash
# Checks that the release archives are reproducible: builds again from a
# copy of the tree at another path and compares bytes with dist/ (which
# cross/dist.sh wrote before; scripts/test.sh runs both).
#
#   scripts/reproducible.sh
#   MAJORTOM_REPRO_TARGET=T    the target built again (default: armv6)
#
# What is built again, and why not everything: a second clean build of all
# four targets costs about 12 minutes on 2 cores, too much for a suite that
# must stay well under 30. So:
#   - ONE target is built again from nothing (std, every crate, ring's C
#     code, the link) from a copy of the tree at another path, with cargo's
#     home at another path (the crates' sources unpacked anew there), into
#     a fresh target dir: every path that could leak into the binary
#     differs, so equal bytes show that the build does not depend on where
#     it runs (the --remap-path-prefix flags of cross/rust.sh);
#   - the three other binaries are copied into the copy, and the archive
#     step runs again there, for all four: equal archives and SHA256SUMS
#     show that the packaging (sorted entries, owners, modes, mtimes, gzip
#     header) is reproducible too.
# The four targets share the compiler, the flags and the pipeline, so one
# stands for the others; what only another target's build would do
# differently is not covered. Takes about one target's clean build.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

TARGETS=(arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl x86_64-unknown-linux-musl)
rebuilt=${MAJORTOM_REPRO_TARGET:-arm-unknown-linux-musleabihf}
case " ${TARGETS[*]} " in
    *" $rebuilt "*) ;;
    *) die "MAJORTOM_REPRO_TARGET=$rebuilt is not one of ${TARGETS[*]}" ;;
esac
[ -f dist/SHA256SUMS ] || die "dist/ has no SHA256SUMS: run cross/dist.sh first"
# The copy is no git checkout: give it the first build's timestamp.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) || die "not a git checkout: set SOURCE_DATE_EPOCH as for cross/dist.sh"
fi
export SOURCE_DATE_EPOCH

start=$(date +%s)
work=$(mktemp -d /tmp/majortom-reproducible.XXXXXX)
keep=0
trap '[ "$keep" -eq 1 ] || rm -rf "$work"' EXIT
copy=$work/another/path/majortom
mkdir -p "$copy"
tar --create --exclude=./target --exclude=./dist --exclude=./.git . | tar --extract --directory="$copy"

# Cargo's home elsewhere: the downloaded index and .crate files are shared
# (no network needed), their sources are unpacked anew under the new path.
cargo_home=${CARGO_HOME:-$HOME/.cargo}
mkdir -p "$work/cargo-home/registry"
for shared in index cache; do
    [ -d "$cargo_home/registry/$shared" ] && ln -s "$cargo_home/registry/$shared" "$work/cargo-home/registry/$shared"
done

for target in "${TARGETS[@]}"; do
    [ "$target" = "$rebuilt" ] && continue
    mkdir -p "$copy/target/arm/$target/release"
    cp target/arm/"$target"/release/majortom "$copy/target/arm/$target/release/majortom"
done

say "building $rebuilt again in $copy (cargo's home: $work/cargo-home)"
(cd "$copy" && CARGO_HOME=$work/cargo-home cross/build.sh "$rebuilt")
first=target/arm/$rebuilt/release/majortom
second=$copy/target/arm/$rebuilt/release/majortom
if ! cmp "$first" "$second"; then
    keep=1
    die "$rebuilt: the binary built at another path differs from $first (kept: $second; compare with diffoscope)"
fi

(cd "$copy" && cross/dist.sh --no-build)
status=0
diff <(cd dist && ls) <(cd "$copy/dist" && ls) || { echo "dist/ and the copy's dist/ hold other files" >&2; status=1; }
for file in dist/*; do
    cmp "$file" "$copy/$file" || status=1
done
if [ "$status" -ne 0 ]; then
    keep=1
    die "the archives built again differ (kept in $copy/dist; the binaries were equal, so the packaging is at fault)"
fi
say "reproducible: $rebuilt built again at another path gave the same binary, and all $(($(find dist -type f | wc -l))) files of dist/ came out the same ($(($(date +%s) - start)) s)"
