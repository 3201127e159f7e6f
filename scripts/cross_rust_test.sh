#!/usr/bin/env bash
# Which Rust cross/build.sh picks (cross/rust.sh) and how it runs cargo,
# tried on stand-ins: a fake rustup with fake toolchains, a fake Debian
# Rust, and a fake cargo that writes down how it was called instead of
# building. It checks the choice for each combination of what is installed
# and of MAJORTOM_CROSS_RUST, and that the rustup and Debian routes run
# cargo with the same arguments and flags.
#
# Why stand-ins: here rustup cannot download rust-src, so no real rustup
# toolchain can build for ARM; the real Debian route is what the suite's
# ARM build takes. Run by scripts/test.sh; takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok - %s\n' "$1"; }
not_ok() { failed=$((failed + 1)); printf 'not ok - %s\n%s\n' "$1" "$2" >&2; }

# make_rust DIR yes|no: a stand-in Rust in DIR/bin, with or without the std
# source. Its rustc reports DIR as its sysroot; its cargo writes its
# arguments and the environment that matters to $RECORD, and an empty
# "binary" where the real one would land.
make_rust() {
    local dir=$1 with_source=$2
    mkdir -p "$dir/bin"
    cat >"$dir/bin/rustc" <<EOF
#!/bin/sh
case "\$1" in
    --print) echo "$dir" ;;
    *) echo "rustc 9.99.0 (stand-in in $dir)" ;;
esac
EOF
    cat >"$dir/bin/cargo" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && { echo "cargo 9.99.0 (stand-in)"; exit 0; }
{
    echo "cargo: $0"
    echo "args: $*"
    echo "RUSTC: $RUSTC"
    echo "RUSTC_BOOTSTRAP: $RUSTC_BOOTSTRAP"
    echo "RUSTUP_TOOLCHAIN: ${RUSTUP_TOOLCHAIN:-}"
    echo "SOURCE_DATE_EPOCH: ${SOURCE_DATE_EPOCH:-}"
    env | grep '_RUSTFLAGS=' | sort
} >"$RECORD"
target=$(echo "$*" | sed 's/.*--target \([^ ]*\).*/\1/')
mkdir -p "target/arm/$target/release"
: >"target/arm/$target/release/majortom"
EOF
    chmod +x "$dir/bin/rustc" "$dir/bin/cargo"
    if [ "$with_source" = yes ]; then
        mkdir -p "$dir/lib/rustlib/src/rust/library"
        : >"$dir/lib/rustlib/src/rust/library/Cargo.lock"
    fi
}

# The stand-in rustup answers `rustup which --toolchain NAME rustc` for the
# toolchains under $work/rustup/toolchains, like the real one.
mkdir -p "$work/rustup-bin" "$work/rustup/toolchains"
cat >"$work/rustup-bin/rustup" <<EOF
#!/bin/sh
[ "\$1" = which ] && [ "\$2" = --toolchain ] || { echo "stand-in rustup: unexpected \$*" >&2; exit 2; }
bin="$work/rustup/toolchains/\$3/bin/\$4"
[ -x "\$bin" ] || { echo "error: toolchain '\$3' is not installed" >&2; exit 1; }
echo "\$bin"
EOF
chmod +x "$work/rustup-bin/rustup"

# setup NIGHTLY DEBIAN [BETA]: each yes (with the std source), no (without)
# or absent.
setup() {
    rm -rf "$work/rustup/toolchains" "$work/debian"
    mkdir -p "$work/rustup/toolchains"
    [ "$1" = absent ] || make_rust "$work/rustup/toolchains/nightly" "$1"
    [ "$2" = absent ] || make_rust "$work/debian" "$2"
    [ "${3:-absent}" = absent ] || make_rust "$work/rustup/toolchains/beta" "$3"
}

BASE_PATH=/usr/bin:/bin
# choose WANTED [no-rustup]: runs find_cross_rust as cross/build.sh does and
# prints what it chose, or "none", or "died: <message>".
choose() {
    local path="$work/rustup-bin:$BASE_PATH"
    [ "${2:-}" = no-rustup ] && path=$BASE_PATH
    (
        export PATH=$path MAJORTOM_CROSS_RUST=$1 MAJORTOM_CROSS_DEBIAN_BIN=$work/debian/bin
        . scripts/lib.sh
        . cross/rust.sh
        if find_cross_rust; then echo "$CROSS_RUST"; else echo none; fi
    ) 2>&1 | sed -n 's/^error: /died: /p; /^[^e]/p' | sed '/^$/d'
}

# equals NAME EXPECTED ACTUAL
equals() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "  expected: $2
  got:      $3"; fi
}

# check NAME EXPECTED ACTUAL: EXPECTED is a prefix of ACTUAL.
check() {
    case "$3" in
        "$2"*) ok "$1" ;;
        *) not_ok "$1" "  expected: $2...
  got:      $3" ;;
    esac
}

setup yes yes
check "auto: rustup's nightly with rust-src wins over Debian's" "rustup toolchain nightly" "$(choose auto)"
check "MAJORTOM_CROSS_RUST=debian picks Debian's even beside a usable nightly" "Debian's rustc-web" "$(choose debian)"
setup no yes
check "auto: a nightly without rust-src is passed over for Debian's" "Debian's rustc-web" "$(choose auto)"
check "asked for, a nightly without rust-src is an error that says how to add it" \
    "died: the rustup toolchain nightly has no std source: rustup component add rust-src --toolchain nightly" "$(choose nightly)"
check "asked for, a toolchain that is not installed is an error that says how to install it" \
    "died: MAJORTOM_CROSS_RUST=stable: no such rustup toolchain: rustup toolchain install stable --component rust-src" "$(choose stable)"
setup absent yes
check "auto without rustup at all: Debian's" "Debian's rustc-web" "$(choose auto no-rustup)"
check "a rustup toolchain asked for without rustup is an error" "died: MAJORTOM_CROSS_RUST=nightly names a rustup toolchain, but rustup is not installed" "$(choose nightly no-rustup)"
setup no no yes
check "MAJORTOM_CROSS_RUST names any rustup toolchain with rust-src" "rustup toolchain beta" "$(choose beta)"
check "auto with neither usable: nothing (build.sh then installs Debian's)" "none" "$(choose auto)"
check "asked for Debian's without its std source: an error naming the packages" \
    "died: MAJORTOM_CROSS_RUST=debian, but $work/debian/bin has no cargo and rustc with the std source: apt-get install rustc-web cargo-web rust-web-src" "$(choose debian)"

# Both routes through the real cross/build.sh, in a copy of the scripts (the
# stand-in cargo writes its "binary" there), with a stand-in zig venv.
mkdir -p "$work/repo/cross" "$work/repo/scripts" "$work/venv/bin"
cp cross/build.sh cross/rust.sh "$work/repo/cross/"
cp scripts/lib.sh "$work/repo/scripts/"
printf '#!/bin/sh\necho "cargo-zigbuild 0.24.0"\n' >"$work/venv/bin/cargo-zigbuild"
printf '#!/bin/sh\nexit 0\n' >"$work/venv/bin/python3"
chmod +x "$work/venv/bin/cargo-zigbuild" "$work/venv/bin/python3"
# build WANTED RECORD: cross/build.sh for armv6 with MAJORTOM_CROSS_RUST=WANTED.
build() {
    PATH="$work/rustup-bin:$BASE_PATH" MAJORTOM_CROSS_RUST=$1 MAJORTOM_CROSS_DEBIAN_BIN=$work/debian/bin \
        MAJORTOM_CROSS_VENV=$work/venv CARGO_HOME=$work/cargo-home RECORD=$2 RUSTFLAGS=--from-outside SOURCE_DATE_EPOCH=1700000000 \
        "$work/repo/cross/build.sh" arm-unknown-linux-musleabihf >"$2.log" 2>&1
}
setup yes yes
if build nightly "$work/rustup.rec" && build debian "$work/debian.rec"; then
    ok "cross/build.sh runs to the end on both routes"
    check "the rustup route runs the toolchain's own cargo" "cargo: $work/rustup/toolchains/nightly/bin/cargo" "$(sed -n 1p "$work/rustup.rec")"
    check "the rustup route runs the toolchain's own rustc" "RUSTC: $work/rustup/toolchains/nightly/bin/rustc" "$(grep ^RUSTC: "$work/rustup.rec")"
    check "the rustup route pins rustup's proxies to the toolchain" "RUSTUP_TOOLCHAIN: nightly" "$(grep ^RUSTUP_TOOLCHAIN "$work/rustup.rec")"
    check "the Debian route runs Debian's cargo" "cargo: $work/debian/bin/cargo" "$(sed -n 1p "$work/debian.rec")"
    equals "the Debian route leaves rustup's proxies alone" "RUSTUP_TOOLCHAIN: " "$(grep ^RUSTUP_TOOLCHAIN "$work/debian.rec")"
    # Apart from which cargo, which rustc and where the std source is, the
    # two routes must run cargo the same way.
    normalise() {
        sed -e '/^cargo: /d' -e '/^RUSTC: /d' -e '/^RUSTUP_TOOLCHAIN: /d' \
            -e "s#$work/rustup/toolchains/nightly/lib/rustlib/src/rust=#SYSROOT/lib/rustlib/src/rust=#" \
            -e "s#$work/debian/lib/rustlib/src/rust=#SYSROOT/lib/rustlib/src/rust=#" "$1"
    }
    if diff <(normalise "$work/rustup.rec") <(normalise "$work/debian.rec") >"$work/diff"; then
        ok "both routes pass the same cargo arguments and RUSTFLAGS"
    else
        not_ok "both routes pass the same cargo arguments and RUSTFLAGS" "$(cat "$work/diff")"
    fi
    equals "SOURCE_DATE_EPOCH is kept from cargo (it would rebuild ring when it changes)" "SOURCE_DATE_EPOCH: " \
        "$(grep ^SOURCE_DATE_EPOCH "$work/debian.rec")"
    check "RUSTFLAGS from outside are dropped" "CARGO_TARGET_ARM_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS=-C link-self-contained=no" \
        "$(grep _RUSTFLAGS= "$work/debian.rec")"
    check "the std source, cargo's home and the checkout are remapped, in that order" \
        "CARGO_TARGET_ARM_UNKNOWN_LINUX_MUSLEABIHF_RUSTFLAGS=-C link-self-contained=no -C force-unwind-tables=no -Zlocation-detail=none -C llvm-args=-enable-machine-outliner=always -Zunstable-options -Cpanic=immediate-abort --remap-path-prefix=$work/debian/lib/rustlib/src/rust=/rust --remap-path-prefix=$work/cargo-home=/cargo --remap-path-prefix=$(cd "$work/repo" && pwd -P)=/majortom" \
        "$(grep _RUSTFLAGS= "$work/debian.rec")"
    check "the arguments" "args: zigbuild --release --locked --target arm-unknown-linux-musleabihf -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size --target-dir target/arm" \
        "$(grep ^args: "$work/debian.rec")"
else
    not_ok "cross/build.sh runs to the end on both routes" "$(cat "$work"/*.log)"
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
