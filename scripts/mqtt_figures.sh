#!/usr/bin/env bash
# The figures of issue 15's MQTT reproductions, for one binary:
#   1.  two agents with one node id (so one client id) on one broker:
#       connects in a minute;
#   2.  one agent with a 100 KB message retained on one of its /set
#       topics: connects in a minute;
#   10. 20 TOGGLEs for a relay queued at QoS 1 in the agent's session
#       while it was stopped for 35 s (longer than the default
#       mqtt.command_max_age_s, 30): how many switched the relay once it
#       was back.
# 1 and 2 run for a minute (MAJORTOM_FIGURES_SECONDS) on the default
# keepalive, each against a fresh mosquitto on a free loopback port, and
# count the agents' "connected to MQTT broker" lines; 10 counts the
# relay's "output set" lines after the restart. Not part of the test suite
# (tests/e2e/mqtt_defences.rs checks the same behaviour in shorter
# windows); the figures are in docs/PERFORMANCE.md.
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

# write_config NAME NODE: NAME.toml, an agent with node id NODE, a
# simulated relay and marker, and its state in NAME-state/.
write_config() {
    local name=$1 node=$2 protocol_line=""
    [ -n "$PROTOCOL" ] && protocol_line="protocol = \"$PROTOCOL\""
    mkdir -p "$dir/$name-state"
    cat >"$dir/$name.toml" <<TOML
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
backend = "sim"
state_file = "$dir/$name-state/outputs.json"
[[outputs]]
name = "relay"
pin = 27
[[outputs]]
name = "marker"
pin = 22
TOML
}

# start_agent NAME LOG: runs NAME.toml, logging to LOG.log; sets $agent.
start_agent() {
    MAJORTOM_LOG=info "$BIN" run --config "$dir/$1.toml" 2>"$dir/$2.log" &
    agent=$!
    pids+=("$agent")
}

# wait_log LOG PATTERN: waits up to 30 s for PATTERN in LOG.log.
wait_log() {
    for _ in $(seq 300); do
        grep -q "$2" "$dir/$1.log" 2>/dev/null && return 0
        sleep 0.1
    done
    die "no \"$2\" in $1.log within 30 s"
}

publish() {
    "$AMQTT_PUB" --url "mqtt://127.0.0.1:$port" -q 1 "$@" >/dev/null 2>&1 || die "amqtt_pub could not publish to $port"
}

# switches LOG OUTPUT: how many times OUTPUT was set, in LOG.log.
switches() {
    grep "output set" "$dir/$1.log" | grep -c "output=\"\?$2\"\?\( \|$\)" || true
}

connects() {
    grep -c "connected to MQTT broker" "$dir/$1.log" || true
}

say "reproduction 1: two agents with one client id, ${WINDOW} s ($BIN${PROTOCOL:+, MQTT $PROTOCOL})"
start_broker
write_config first twin
write_config second twin
start_agent first first
wait_log first "connected to MQTT broker"
start_agent second second
sleep "$WINDOW"
echo "connects in ${WINDOW} s: first $(connects first), second $(connects second)"
grep -h -m1 "another client uses client id" "$dir/first.log" "$dir/second.log" | head -1 || echo "(no line names the clash)"

say "reproduction 2: a 100 KB message retained on a /set topic, ${WINDOW} s"
start_broker
head -c 102400 /dev/zero | tr '\0' 'x' | publish -t majortom/poison/junk/set -r -s
write_config poisoned poison
start_agent poisoned poisoned
sleep "$WINDOW"
echo "connects in ${WINDOW} s: $(connects poisoned)"

STALE=20
OUTAGE=35
say "reproduction 10 (MQTT half): $STALE TOGGLEs queued while the agent was stopped for ${OUTAGE} s"
start_broker
write_config stale stale
start_agent stale before
wait_log before "connected to MQTT broker"
kill -TERM "$agent"
wait "$agent" 2>/dev/null || true
stopped=$SECONDS
printf "TOGGLE\n%.0s" $(seq "$STALE") | publish -t majortom/stale/relay/set -l
sleep $((OUTAGE - (SECONDS - stopped)))
echo "outage: $((SECONDS - stopped)) s"
start_agent stale after
wait_log after "connected to MQTT broker"
# A live command after what the broker kept: under 3.1.1 one sent before
# the agent's fence counts as kept, so send until one lands.
for _ in $(seq 30); do
    publish -t majortom/stale/marker/set -m ON
    [ "$(switches after marker)" -gt 0 ] && break
    sleep 1
done
[ "$(switches after marker)" -gt 0 ] || die "no live command switched the marker"
echo "stale TOGGLEs that switched the relay: $(switches after relay) of $STALE"
