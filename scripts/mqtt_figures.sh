#!/usr/bin/env bash
# Connects per minute in issue 15's reproductions 1 and 2, for one binary:
#   1. two agents with one node id (so one client id) on one broker;
#   2. one agent, with a 100 KB message retained on one of its /set topics.
# Each runs for a minute (MAJORTOM_FIGURES_SECONDS) on the default
# keepalive against a fresh mosquitto on a free loopback port, and counts
# the agents' "connected to MQTT broker" lines. Not part of the test suite
# (the e2e tests in tests/e2e/mqtt_defences.rs check the same bounds in
# 20 s); the figures are in docs/PERFORMANCE.md.
#
#   scripts/mqtt_figures.sh [BINARY [PROTOCOL]]
#
# BINARY defaults to target/debug/majortom; PROTOCOL ("5" or "3.1.1") sets
# mqtt.protocol (leave it out for a binary from before the key existed).
# Needs mosquitto and amqtt_pub (scripts/test.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

BIN=${1:-target/debug/majortom}
PROTOCOL=${2:-}
WINDOW=${MAJORTOM_FIGURES_SECONDS:-60}
AMQTT_PUB=${MAJORTOM_AMQTT_PUB:-$HOME/.cache/majortom/amqtt-venv/bin/amqtt_pub}
[ -x "$BIN" ] || die "no binary at $BIN (cargo build first)"
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || die "mosquitto is missing (apt-get install mosquitto)"
[ -x "$AMQTT_PUB" ] || die "amqtt_pub is missing at $AMQTT_PUB (scripts/test.sh installs amqtt)"
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

dir=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_broker: a fresh mosquitto; sets $port.
start_broker() {
    port=$(free_port)
    printf 'user root\npersistence false\nlistener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$dir/mosquitto-$port.conf"
    "$MOSQUITTO" -c "$dir/mosquitto-$port.conf" >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    die "mosquitto did not start on $port"
}

# start_agent NAME NODE: an agent with node id NODE, logging to NAME.log.
start_agent() {
    local name=$1 node=$2 protocol_line=""
    [ -n "$PROTOCOL" ] && protocol_line="protocol = \"$PROTOCOL\""
    cat >"$dir/$name.toml" <<EOF
[node]
id = "$node"
[mqtt]
host = "127.0.0.1"
port = $port
$protocol_line
[web]
enabled = false
[system]
interval_s = 3600
[gpio]
state_file = "$dir/$name-state/outputs.json"
EOF
    mkdir -p "$dir/$name-state"
    MAJORTOM_LOG=info "$BIN" run --config "$dir/$name.toml" 2>"$dir/$name.log" &
    pids+=($!)
}

connects() {
    grep -c "connected to MQTT broker" "$dir/$1.log" || true
}

say "reproduction 1: two agents with one client id, ${WINDOW} s ($BIN${PROTOCOL:+, MQTT $PROTOCOL})"
start_broker
start_agent first twin
sleep 1
start_agent second twin
sleep "$WINDOW"
echo "connects in ${WINDOW} s: first $(connects first), second $(connects second)"
grep -h -m1 "another client uses client id" "$dir/first.log" "$dir/second.log" | head -1 || echo "(no line names the clash)"

say "reproduction 2: a 100 KB message retained on a /set topic, ${WINDOW} s"
start_broker
head -c 102400 /dev/zero | tr '\0' 'x' | "$AMQTT_PUB" --url "mqtt://127.0.0.1:$port" -t majortom/poison/junk/set -r -q 1 -s >/dev/null 2>&1 \
    || die "amqtt_pub could not publish the 100 KB message"
start_agent poisoned poison
sleep "$WINDOW"
echo "connects in ${WINDOW} s: $(connects poisoned)"
