#!/usr/bin/env bash
# Instructions per stats cycle of one binary, by the method of the bench's
# callgrind phase (benches/footprint/callgrind.rs) without the rest of the
# bench: the realistic config (MQTT on, system and the two sensors at 1 s,
# 8 sim inputs, 4 outputs, the dashboard on with no client, the real /proc),
# run under `valgrind --tool=callgrind` until a subscriber has seen N
# `uptime` states, then SIGTERM; per cycle = (I(N2) - I(N1)) / (N2 - N1).
#
#   scripts/callgrind_cycle.sh BINARY [N1 N2]     # default 5 25
#
# Needs valgrind, mosquitto and mosquitto_sub (apt: valgrind, mosquitto,
# mosquitto-clients).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "$1")
n1=${2:-5}
n2=${3:-25}

work=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker=$!
sleep 0.5

# The bench's sensor root: the real /proc, the DS18B20 and IIO fixtures.
mkdir -p "$work/root"
ln -s /proc "$work/root/proc"
cp -r tests/fixtures/sysroot/w1/. tests/fixtures/sysroot/iio/. "$work/root/"

run() {
    local cycles=$1 node="callgrind_$1_$$"
    local config="$work/$node.toml"
    {
        printf '[node]\nid = "%s"\nname = "Bench %s"\n\n' "$node" "$node"
        printf '[mqtt]\nhost = "127.0.0.1"\nport = %s\n\n' "$port"
        printf '[web]\nbind = "127.0.0.1"\nport = 0\ntoken = "e2e-test-token"\n\n'
        printf '[system]\ninterval_s = 1\nroot = "%s"\n\n' "$work/root"
        printf '[gpio]\nbackend = "sim"\nstate_file = "%s"\nauto_ds18b20 = false\n' "$work/$node-outputs.json"
        n=0
        for pin in 17 18 22 23 24 25 26 27; do
            printf '\n[[inputs]]\nname = "input_%s"\npin = %s\npull = "down"\ndebounce_ms = 0\n' $n $pin
            n=$((n + 1))
        done
        n=0
        for pin in 5 6 13 19; do
            printf '\n[[outputs]]\nname = "output_%s"\npin = %s\n' $n $pin
            n=$((n + 1))
        done
        printf '\n[[sensors]]\nkind = "ds18b20"\nname = "garden"\nid = "28-0316a2795cff"\ninterval_s = 1\n'
        printf '\n[[sensors]]\nkind = "iio"\nname = "living"\ndevice = "dht11"\ninterval_s = 1\n'
    } >"$config"
    mosquitto_sub -h 127.0.0.1 -p "$port" -t "majortom/$node/uptime/state" -C "$cycles" >/dev/null &
    local sub=$!
    sleep 0.3
    MAJORTOM_LOG=info valgrind --tool=callgrind --quiet --callgrind-out-file="$work/$node.out" \
        "$binary" run --config "$config" 2>"$work/$node.log" &
    local agent=$!
    wait "$sub"
    kill -TERM "$agent"
    wait "$agent" || true
    grep -E '^(totals|summary):' "$work/$node.out" | head -1 | awk '{print $2}'
}

i1=$(run "$n1")
i2=$(run "$n2")
echo "binary: $binary"
echo "instructions: $i1 for $n1 cycles, $i2 for $n2 cycles"
echo "per cycle: $(((i2 - i1) / (n2 - n1)))"
