#!/usr/bin/env bash
# Builds fully static majortom binaries for the Raspberry Pi without Docker:
# a Rust with the standard library's source rebuilds std for each target
# with -Zbuild-std, and zig (through cargo-zigbuild) links against musl.
# That Rust is a rustup toolchain with `rust-src` (nightly by default) or
# Debian 12's rustc-web packages; both build with the same flags
# (cross/rust.sh, cross/README.md). Installs what it needs when missing:
# apt packages (Debian's Rust only when no rustup toolchain qualifies), and
# a virtualenv with ziglang + cargo-zigbuild from PyPI.
#
#   cross/build.sh [TARGET...]     default: all three Pi targets
#
#   MAJORTOM_CROSS_RUST=debian|<rustup toolchain>   which Rust (default: auto)
#   MAJORTOM_CROSS_VENV=DIR        the zig virtualenv (~/.cache/majortom/cross-venv)
#
# Also builds x86_64-unknown-linux-musl the same way when named (the
# benchmark's static x86_64 binary, scripts/bench.sh, and the x86_64
# release archive, cross/dist.sh); the size budget applies to the Pi
# targets only.
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
# shellcheck source=cross/rust.sh
. cross/rust.sh

for target in "${TARGETS[@]}"; do
    case " ${ALL_TARGETS[*]} ${EXTRA_TARGETS[*]} " in
        *" $target "*) ;;
        *) die "unknown target $target (expected one of ${ALL_TARGETS[*]} ${EXTRA_TARGETS[*]})" ;;
    esac
done

need_apt=()
command -v readelf >/dev/null || need_apt+=(binutils)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if ! find_cross_rust; then
    # Neither rustup's nightly with rust-src nor Debian's Rust: on Debian,
    # bring Debian's (rustup cannot download components on every machine).
    # Do not add armhf/arm64 as dpkg architectures: that breaks apt on
    # Debian's mirrors here.
    command -v apt-get >/dev/null || die "no Rust with the std source: rustup toolchain install nightly --component rust-src (see cross/README.md)"
    need_apt+=(rustc-web cargo-web rust-web-src)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    apt_get_install "${need_apt[@]}"
fi
[ -n "${CROSS_RUST_BIN:-}" ] || find_cross_rust \
    || die "rustc-web, cargo-web and rust-web-src installed, yet no cargo and rustc with the std source in $DEBIAN_RUST_BIN"

if ! "$VENV/bin/cargo-zigbuild" --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION" \
    || ! "$VENV/bin/python3" -c "import ziglang" 2>/dev/null; then
    say "creating $VENV with ziglang $ZIGLANG_VERSION and cargo-zigbuild $ZIGBUILD_VERSION (PyPI)"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION" \
        || die "pip could not install ziglang/cargo-zigbuild"
fi

# The chosen cargo and rustc first on PATH (cargo-zigbuild runs `cargo`
# from PATH), and named outright for cargo. A target dir of their own keeps
# their artefacts apart from the host toolchain's (tests, clippy).
export PATH="$VENV/bin:$CROSS_RUST_BIN:$PATH"
export RUSTC="$CROSS_RUST_BIN/rustc"
if [ -n "$CROSS_RUST_TOOLCHAIN" ]; then
    export RUSTUP_TOOLCHAIN=$CROSS_RUST_TOOLCHAIN # any rustup proxy agrees
fi
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
# cc (ring's build script) reruns when SOURCE_DATE_EPOCH changes, and with
# it ring, rustls and majortom, minutes per target. Nothing in the
# binaries depends on it (cross/dist.sh uses it for the archives), so
# without it every build, with or without dist.sh, finds target/arm fresh.
unset SOURCE_DATE_EPOCH
# -Zbuild-std and -Z flags on Debian's stable compiler; a no-op on nightly.
export RUSTC_BOOTSTRAP=1
say "$CROSS_RUST: $(cargo --version), $(rustc --version)"

for target in "${TARGETS[@]}"; do
    var="CARGO_TARGET_$(echo "$target" | tr 'a-z-' 'A-Z_')_RUSTFLAGS"
    export "$var=$(cross_rustflags)"
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
