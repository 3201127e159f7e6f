#!/usr/bin/env bash
# Builds fully static majortom binaries for the Raspberry Pi without Docker:
# Debian's Rust (which ships the standard library's source) rebuilds std for
# each target with -Zbuild-std, and zig (through cargo-zigbuild) links
# against musl. Installs what it needs when missing: apt packages, and a
# virtualenv with ziglang + cargo-zigbuild.
#
#   cross/build.sh [TARGET...]     default: all three Pi targets
#
# Also builds x86_64-unknown-linux-musl the same way when named (the
# benchmark's static x86_64 binary, scripts/bench.sh); the size budget
# applies to the Pi targets only.
#
# Output: target/arm/<target>/release/majortom, and a size table.
# Users with Docker can use `cross` instead (see cross/Cross.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl)
# Accepted when named, never built by default.
EXTRA_TARGETS=(x86_64-unknown-linux-musl)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
VENV=${MAJORTOM_CROSS_VENV:-$HOME/.cache/majortom/cross-venv}
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.0
# The size budget for every binary, stripped, TLS included.
BUDGET_BYTES=2000000

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# Debian's rustc-web/cargo-web (bookworm-security) carry the std source that
# -Zbuild-std needs; rustup cannot download rust-src or ARM std here. Do not
# add armhf/arm64 as dpkg architectures: that breaks apt on this mirror.
need_apt=()
[ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || need_apt+=(rustc-web cargo-web)
[ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rust-web-src)
command -v readelf >/dev/null || need_apt+=(binutils)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt_get_install "${need_apt[@]}"
fi

if ! "$VENV/bin/cargo-zigbuild" --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION" \
    || ! "$VENV/bin/python3" -c "import ziglang" 2>/dev/null; then
    say "creating $VENV with ziglang $ZIGLANG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION (PyPI)"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" \
        || die "pip could not install ziglang/cargo-zigbuild"
fi

# Debian's cargo and rustc first: they have the std source. A target dir of
# their own keeps their artefacts apart from the rustup toolchain's.
export PATH="$VENV/bin:/usr/bin:$PATH"
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS
export RUSTC_BOOTSTRAP=1 # -Zbuild-std on a stable compiler
say "$(cargo --version), $(rustc --version)"

for target in "${TARGETS[@]}"; do
    case "$target" in
        arm-unknown-linux-musleabihf | armv7-unknown-linux-musleabihf | aarch64-unknown-linux-musl) ;;
        x86_64-unknown-linux-musl) ;;
        *) die "unknown target $target (expected one of ${ALL_TARGETS[*]} ${EXTRA_TARGETS[*]})" ;;
    esac
    # zig brings musl's start files; Rust's self-contained copies clash.
    # With panic=abort nothing unwinds, so no unwind tables: on aarch64
    # .eh_frame and its index were 350 KB of a 2.1 MB binary. Panics keep
    # their message but not their source location (-Zlocation-detail=none:
    # 67 KB on armv6).
    var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
    export "$var=-C link-self-contained=no -C force-unwind-tables=no -Zlocation-detail=none"
    say "building $target"
    start=$(date +%s)
    # std without its default features drops the backtrace symbolizer
    # (gimli, addr2line, miniz: about 120 KB) that panic=abort never uses;
    # optimize_for_size picks std's smaller algorithms (41 KB on armv6).
    cargo zigbuild --release --locked --target "$target" \
        -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size --target-dir target/arm
    say "$target built in $(($(date +%s) - start)) s"
done

printf '\n%-34s %10s  %s\n' target bytes MB
status=0
for target in "${TARGETS[@]}"; do
    bin="target/arm/$target/release/majortom"
    [ -f "$bin" ] || die "$bin was not produced"
    size=$(stat -c %s "$bin")
    printf '%-34s %10d  %.2f\n' "$target" "$size" "$(awk -v s="$size" 'BEGIN { print s / 1000000 }')"
    if [[ "$target" != x86_64-* ]] && [ "$size" -gt "$BUDGET_BYTES" ]; then
        printf 'error: %s is over the %d byte budget\n' "$bin" "$BUDGET_BYTES" >&2
        status=1
    fi
done
exit $status
