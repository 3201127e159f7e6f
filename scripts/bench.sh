#!/usr/bin/env bash
# What majortom costs on this machine, beside the agents users run today
# (issue 7; docs/PERFORMANCE.md has the method and the last full run).
# From a clean clone: installs what it needs (apt: mosquitto, collectd-core,
# prometheus-node-exporter, wrk, valgrind; PyPI, in a virtualenv: mqtt-io and
# matplotlib), builds the static binaries (cross/build.sh: the three Pi
# targets and x86_64 musl), runs benches/footprint, then writes the tables
# and the plot.
#
#   scripts/bench.sh              # about 6 minutes after the builds
#   scripts/bench.sh --publish    # also copies the plot to docs/rss.png
#
# Output: target/bench/footprint.json (raw), target/bench/report.md
# (tables), target/bench/rss.png. Not part of scripts/test.sh.
# MAJORTOM_BENCH_QUICK=1 runs short windows, to try the bench itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PUBLISH=0
for arg in "$@"; do
    case "$arg" in
        --publish) PUBLISH=1 ;;
        *) echo "usage: scripts/bench.sh [--publish]" >&2; exit 2 ;;
    esac
done

VENV=${MAJORTOM_BENCH_VENV:-$HOME/.cache/majortom/bench-venv}
MQTT_IO_VERSION=2.7.0

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# apt: package → a file it installs. Installing collectd-core or
# node-exporter may try to start their services; this bench starts its own
# instances with its own configs and ports and never uses those.
need=()
check() { [ -e "$2" ] || need+=("$1"); }
check mosquitto /usr/sbin/mosquitto
check collectd-core /usr/sbin/collectd
check libmosquitto1 /usr/lib/x86_64-linux-gnu/libmosquitto.so.1
check prometheus-node-exporter /usr/bin/prometheus-node-exporter
check wrk /usr/bin/wrk
check valgrind /usr/bin/valgrind
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    apt_get_install "${need[@]}"
fi

if ! "$VENV/bin/python" -c "import importlib.metadata as m, matplotlib; assert m.version('mqtt-io') == '$MQTT_IO_VERSION'" 2>/dev/null; then
    say "creating $VENV with mqtt-io $MQTT_IO_VERSION and matplotlib (PyPI)"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check "mqtt-io==$MQTT_IO_VERSION" matplotlib \
        || die "pip could not install mqtt-io and matplotlib"
fi

say "static binaries (cross/build.sh): the Pi targets and x86_64 musl"
# A binary over the 2.0 MB budget fails cross/build.sh (and the test suite);
# here it is a result to report, so carry on.
cross/build.sh arm-unknown-linux-musleabihf armv7-unknown-linux-musleabihf aarch64-unknown-linux-musl \
    x86_64-unknown-linux-musl || say "cross/build.sh failed (over budget?); the sizes table shows what was built"
[ -x target/arm/x86_64-unknown-linux-musl/release/majortom ] || die "no static x86_64 binary was built"

say "benches/footprint"
MAJORTOM_BENCH_VENV="$VENV" \
    MAJORTOM_BENCH_MUSL="$PWD/target/arm/x86_64-unknown-linux-musl/release/majortom" \
    cargo bench --locked --bench footprint

say "the fleet: memory with 64 nodes known (scripts/fleet_rss.py, static x86_64 build)"
scripts/fleet_rss.py "$PWD/target/arm/x86_64-unknown-linux-musl/release/majortom" | tee target/bench/fleet_rss.txt

say "report"
"$VENV/bin/python" scripts/bench_report.py target/bench/footprint.json target/bench
if [ "$PUBLISH" -eq 1 ]; then
    cp target/bench/rss.png docs/rss.png
    say "copied target/bench/rss.png to docs/rss.png"
fi
cat target/bench/report.md
