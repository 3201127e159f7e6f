# Finds the Rust that cross/build.sh builds with, and the flags it passes.
# Sourced by cross/build.sh (and by scripts/test_cross_rust.sh, which runs
# it on stand-in commands); it runs nothing itself.
#
# The ARM builds rebuild the standard library for each target
# (-Zbuild-std), so they need a Rust whose std source is installed. Two
# kinds qualify, and both build with the same flags:
#   - a rustup toolchain with the `rust-src` component (nightly by default):
#     GitHub's runners, and any distribution with rustup;
#   - Debian 12's `rustc-web`, `cargo-web` and `rust-web-src` packages
#     (bookworm-security), where rustup cannot download components.
#
# MAJORTOM_CROSS_RUST picks one: `debian`, or the name of a rustup toolchain
# (`nightly`, `nightly-2026-05-01`, a `rustup toolchain link`ed one). Unset
# or `auto`: rustup's `nightly` if it has rust-src, else Debian's.
# MAJORTOM_CROSS_DEBIAN_BIN is where Debian's cargo and rustc are
# (/usr/bin; the stand-in tests point it elsewhere).

DEBIAN_RUST_BIN=${MAJORTOM_CROSS_DEBIAN_BIN:-/usr/bin}

# _std_source_in SYSROOT: true when SYSROOT holds the standard library's
# source where -Zbuild-std looks for it.
_std_source_in() {
    [ -f "$1/lib/rustlib/src/rust/library/Cargo.lock" ]
}

# _try_rustup TOOLCHAIN: the toolchain's bin directory and sysroot when it
# is installed and has rust-src. Never installs anything (rustup would try
# to download a missing toolchain, which fails where rustup is offline).
_try_rustup() {
    local toolchain=$1 rustc sysroot
    command -v rustup >/dev/null || return 1
    rustc=$(RUSTUP_AUTO_INSTALL=0 rustup which --toolchain "$toolchain" rustc 2>/dev/null) || return 1
    sysroot=$("$rustc" --print sysroot 2>/dev/null) || return 1
    _std_source_in "$sysroot" || return 1
    CROSS_RUST="rustup toolchain $toolchain"
    CROSS_RUST_TOOLCHAIN=$toolchain
    CROSS_RUST_BIN=$(dirname "$rustc")
    CROSS_RUST_SYSROOT=$sysroot
}

_try_debian() {
    local sysroot
    [ -x "$DEBIAN_RUST_BIN/cargo" ] && [ -x "$DEBIAN_RUST_BIN/rustc" ] || return 1
    sysroot=$("$DEBIAN_RUST_BIN/rustc" --print sysroot 2>/dev/null) || return 1
    _std_source_in "$sysroot" || return 1
    CROSS_RUST="Debian's rustc-web"
    CROSS_RUST_TOOLCHAIN=
    CROSS_RUST_BIN=$DEBIAN_RUST_BIN
    CROSS_RUST_SYSROOT=$sysroot
}

# find_cross_rust: sets CROSS_RUST (for messages), CROSS_RUST_TOOLCHAIN (the
# rustup toolchain, empty for Debian's), CROSS_RUST_BIN (the directory whose
# cargo and rustc build) and CROSS_RUST_SYSROOT. Returns 1 when nothing
# usable is installed and nothing was asked for (the caller may then install
# Debian's packages); dies when the Rust asked for is not usable.
find_cross_rust() {
    local wanted=${MAJORTOM_CROSS_RUST:-auto}
    case "$wanted" in
        auto)
            _try_rustup nightly || _try_debian
            ;;
        debian)
            _try_debian || die "MAJORTOM_CROSS_RUST=debian, but $DEBIAN_RUST_BIN has no cargo and rustc with the std source: apt-get install rustc-web cargo-web rust-web-src (Debian 12, bookworm-security)"
            ;;
        *)
            command -v rustup >/dev/null || die "MAJORTOM_CROSS_RUST=$wanted names a rustup toolchain, but rustup is not installed (https://rustup.rs)"
            RUSTUP_AUTO_INSTALL=0 rustup which --toolchain "$wanted" rustc >/dev/null 2>&1 \
                || die "MAJORTOM_CROSS_RUST=$wanted: no such rustup toolchain: rustup toolchain install $wanted --component rust-src"
            _try_rustup "$wanted" || die "the rustup toolchain $wanted has no std source: rustup component add rust-src --toolchain $wanted"
            ;;
    esac
}

# cross_rustflags: the flags for every target, the same whichever Rust
# builds. Needs find_cross_rust first (for the sysroot) and the repository
# root as the working directory.
#
# zig brings musl's start files; Rust's self-contained copies clash. With
# panic=abort nothing unwinds, so no unwind tables: on aarch64 .eh_frame and
# its index were 350 KB of a 2.1 MB binary. Panics keep their message but
# not their source location (-Zlocation-detail=none: 67 KB on armv6).
# LLVM's machine outliner turns repeated instruction sequences into shared
# functions everywhere, not only in the few it picks by default: 90 KB
# (5 %) off armv6.
# panic=immediate-abort: a panic (always a bug: nothing from outside is
# unwrapped) stops the process at once, without printing its message, and
# systemd restarts it; the panic machinery and every message go (92 KB on
# armv6), which is what let issues 15 to 18 fit the 2.0 MB budget.
#
# The --remap-path-prefix flags make the build independent of where it
# runs: the checkout, cargo's home (crates' sources) and the std source
# get fixed names, so a build elsewhere gives the same bytes (cross/dist.sh;
# scripts/test.sh checks it). rustc applies the last prefix that matches.
cross_rustflags() {
    local source_dir cargo_home
    source_dir=$(pwd -P)
    cargo_home=${CARGO_HOME:-$HOME/.cargo}
    case "$source_dir$cargo_home$CROSS_RUST_SYSROOT" in
        *[[:space:]]*) die "a path with white space cannot be passed in RUSTFLAGS: $source_dir, $cargo_home, $CROSS_RUST_SYSROOT" ;;
    esac
    printf '%s' "-C link-self-contained=no -C force-unwind-tables=no -Zlocation-detail=none" \
        " -C llvm-args=-enable-machine-outliner=always -Zunstable-options -Cpanic=immediate-abort" \
        " --remap-path-prefix=$CROSS_RUST_SYSROOT/lib/rustlib/src/rust=/rust" \
        " --remap-path-prefix=$cargo_home=/cargo" \
        " --remap-path-prefix=$source_dir=/majortom"
}
