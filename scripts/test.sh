#!/usr/bin/env bash
# The whole test suite, from a clean clone: installs what the tests need
# (through apt when missing, and from PyPI into virtualenvs), then checks the
# workflows, builds the static binaries and the release archives (twice, in
# part: reproducibility), and runs the format check, clippy and every test.
# Fails loudly when something it needs cannot be had; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# apt_install PACKAGE COMMAND...: installs PACKAGE unless every COMMAND exists.
apt_install() {
    local package=$1; shift
    local missing=0
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing=1
    done
    [ "$missing" -eq 0 ] && return 0
    apt_get_install "$package"
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || die "$package installed but \`$cmd\` is still missing"
    done
}

say "checking tools"
command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy is missing: rustup component add clippy"
apt_install mosquitto mosquitto
# The install tests run systemd's own tools offline on a temporary root;
# systemd-analyze, systemctl and systemd-sysusers all come with `systemd`.
apt_install systemd systemd-analyze systemctl systemd-sysusers
apt_install qemu-user-static qemu-arm-static qemu-aarch64-static
apt_install binutils readelf
apt_install prometheus promtool
apt_install openssl openssl
# The install tests evaluate the polkit rule `install` writes in node.
apt_install nodejs node
# The browser tests drive Debian's headless Chromium through chromedriver.
apt_install chromium chromium
apt_install chromium-driver chromedriver
# The node-id tests run the agent under a factory host name in a UTS
# namespace of its own (`unshare --uts`, as root).
apt_install util-linux unshare
# The emulated Raspberry Pi (tests/e2e/emulated_pi.rs): QEMU's raspi3b
# machine, and cpio for its initramfs.
apt_install qemu-system-arm qemu-system-aarch64
apt_install cpio cpio

say "emulated Pi: Debian's arm64 kernel and busybox (scripts/emulated-pi.sh)"
MAJORTOM_EMULATED_PI=$(scripts/emulated-pi.sh) || die "could not fetch the emulated Pi's kernel and busybox"
export MAJORTOM_EMULATED_PI

python3 -c 'import venv, ensurepip' 2>/dev/null || apt_get_install python3-venv

say "GitHub workflows against GitHub's schema (check-jsonschema)"
# check-jsonschema carries a copy of the workflow schema (no network needed
# at check time); installed from PyPI into a virtualenv of its own.
CHECK_JSONSCHEMA_VERSION=0.39.0
TOOLS_VENV=${MAJORTOM_TOOLS_VENV:-$HOME/.cache/majortom/tools-venv}
if ! "$TOOLS_VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q "$CHECK_JSONSCHEMA_VERSION"; then
    python3 -m venv "$TOOLS_VENV" || die "python3 -m venv $TOOLS_VENV failed"
    "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" \
        || die "pip could not install check-jsonschema $CHECK_JSONSCHEMA_VERSION: the workflows cannot be checked"
fi
workflows=(.github/workflows/ci.yml .github/workflows/release.yml)
"$TOOLS_VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "${workflows[@]}" \
    || die "a workflow does not match GitHub's schema"
# The check must be able to fail: a job whose steps are not a list is refused.
broken=$(mktemp --suffix=.yml)
printf 'on: push\njobs:\n  test:\n    runs-on: ubuntu-24.04\n    steps: ./scripts/test.sh\n' >"$broken"
if "$TOOLS_VENV/bin/check-jsonschema" --builtin-schema vendor.github-workflows "$broken" >/dev/null 2>&1; then
    die "check-jsonschema accepted a broken workflow: the check above proves nothing"
fi
rm -f "$broken"

say "amqtt, an MQTT 3.1.1-only broker (PyPI)"
# The agent speaks MQTT 5 and falls back to 3.1.1 when a broker refuses 5;
# mosquitto takes 5, so the fallback is tested against amqtt, installed
# into a virtualenv of its own. The e2e tests find it through
# $MAJORTOM_AMQTT and fail (never skip) without it.
AMQTT_VERSION=0.12.1
AMQTT_VENV=${MAJORTOM_AMQTT_VENV:-$HOME/.cache/majortom/amqtt-venv}
if ! "$AMQTT_VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('amqtt') != '$AMQTT_VERSION')" 2>/dev/null; then
    python3 -m venv "$AMQTT_VENV" || die "python3 -m venv $AMQTT_VENV failed"
    "$AMQTT_VENV/bin/pip" install -q --disable-pip-version-check "amqtt==$AMQTT_VERSION" \
        || die "pip could not install amqtt $AMQTT_VERSION: the fallback to MQTT 3.1.1 cannot be tested"
fi
export MAJORTOM_AMQTT="$AMQTT_VENV/bin/amqtt"
[ -x "$MAJORTOM_AMQTT" ] || die "amqtt $AMQTT_VERSION installed, but $MAJORTOM_AMQTT is missing"

say "cross/build.sh's choice of Rust, on stand-ins (scripts/cross_rust_test.sh)"
scripts/cross_rust_test.sh

say "release archives (cross/dist.sh)"
# Builds the static binaries (cross/build.sh: the three Pi targets, checked
# by the `arm` tests below, and x86_64 musl), then the archives in dist/,
# checked by the `dist` tests below.
cross/dist.sh

say "reproducible archives (scripts/reproducible.sh), beside fmt, clippy and the test build"
# One target built again from nothing at another path, and every archive
# made again there; the script says why not all four. Most of its time is
# one single-threaded LTO step, so it runs beside the checks and the test
# build below (its own copy and target dir: no lock shared), and the tests
# start only once it has passed: they are timed, and want the cores.
repro_log=$(mktemp)
scripts/reproducible.sh >"$repro_log" 2>&1 &
repro=$!
trap 'kill "$repro" 2>/dev/null || true' EXIT

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

say "building the tests"
cargo test --locked --no-run

say "waiting for scripts/reproducible.sh"
if ! wait "$repro"; then
    cat "$repro_log" >&2
    die "scripts/reproducible.sh failed (its output is above)"
fi
cat "$repro_log"
trap - EXIT

say "cargo test"
# The end-to-end tests mostly wait on brokers and timers, so run more of them
# at once than there are cores.
# --include-ignored runs the tests that need the ARM binaries and the
# archives built above.
cargo test --locked -- --include-ignored --test-threads "${MAJORTOM_TEST_THREADS:-6}"

say "all checks passed"
