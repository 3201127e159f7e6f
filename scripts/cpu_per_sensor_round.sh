#!/usr/bin/env bash
# CPU time per sensor round of one binary: the agent with 10 DS18B20 and 10
# IIO (BME280: three channels, raw and scale files) sensors on the fixture
# trees, each every second, no MQTT, the dashboard on with no client, the
# system source at its default interval; for SECONDS, the CPU time (user +
# kernel, nanoseconds) of all the agent's threads from
# /proc/PID/task/*/schedstat over the window, divided by the sensor rounds
# the window holds (20 × SECONDS). Threads that end within the window are
# not counted; with reads every second neither tokio's blocking pool (10 s
# idle timeout) nor the reading threads end.
#
#   scripts/cpu_per_sensor_round.sh BINARY [SECONDS]     # default 30
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "$1")
seconds=${2:-30}
work=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root"
cp -r tests/fixtures/sysroot/w1/. tests/fixtures/sysroot/iio/. "$work/root/"
ln -s /proc "$work/root/proc"
{
    printf '[node]\nid = "cpu_per_sensor_round"\n[mqtt]\nenabled = false\n'
    printf '[web]\nbind = "127.0.0.1"\nport = 0\n'
    printf '[system]\nroot = "%s"\n' "$work/root"
    printf '[gpio]\nbackend = "sim"\nauto_ds18b20 = false\n'
    for n in $(seq 10); do
        printf '\n[[sensors]]\nkind = "ds18b20"\nname = "w1_%s"\nid = "28-0316a2795cff"\ninterval_s = 1\n' "$n"
        printf '\n[[sensors]]\nkind = "iio"\nname = "iio_%s"\ndevice = "bme280"\ninterval_s = 1\n' "$n"
    done
} >"$work/majortom.toml"
"$binary" run --config "$work/majortom.toml" --ready-file "$work/ready" 2>"$work/log" &
agent=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { cat "$work/log"; exit 1; }
sleep 3 # past start-up and the first rounds
cpu() { cat /proc/"$agent"/task/*/schedstat | awk '{s += $1} END {print s}'; }
threads() { ls /proc/"$agent"/task | wc -l; }
before=$(cpu)
sleep "$seconds"
after=$(cpu)
rounds=$((seconds * 20))
echo "binary: $binary"
echo "threads: $(threads); VmRSS: $(awk '/VmRSS/ {print $2, $3}' /proc/$agent/status)"
echo "cpu: $(((after - before) / 1000)) µs over $seconds s, $rounds sensor rounds: $(((after - before) / rounds)) ns per round"
