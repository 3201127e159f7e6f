#!/usr/bin/env bash
# CPU time per system-stats round of one binary: the agent with only the
# system source (the real /proc, every 10 ms), no MQTT, the dashboard on
# with no client, for SECONDS; the process's CPU time from
# /proc/PID/schedstat (nanoseconds, user + kernel) over the window, divided
# by the rounds the window holds (SECONDS / 0.01: an upper bound on the
# rounds run, so on a busy machine this errs low, alike for every build).
#
#   scripts/cpu_per_sample.sh BINARY [SECONDS]     # default 30
set -euo pipefail
binary=$(realpath "$1")
seconds=${2:-30}
work=$(mktemp -d)
trap 'kill "$agent" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/root"
ln -s /proc "$work/root/proc"
cat >"$work/majortom.toml" <<EOF
[node]
id = "cpu_per_sample"

[mqtt]
enabled = false

[web]
bind = "127.0.0.1"
port = 0

[system]
interval_s = 0.01
root = "$work/root"

[gpio]
backend = "sim"
auto_ds18b20 = false
EOF
"$binary" run --config "$work/majortom.toml" --ready-file "$work/ready" 2>"$work/log" &
agent=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
[ -s "$work/ready" ] || { cat "$work/log"; exit 1; }
sleep 2 # past start-up and the first rounds
cpu() { awk '{print $1}' "/proc/$agent/schedstat"; }
before=$(cpu)
sleep "$seconds"
after=$(cpu)
rounds=$((seconds * 100))
echo "binary: $binary"
echo "cpu: $(((after - before) / 1000)) µs over $seconds s, $rounds rounds: $(((after - before) / rounds)) ns per round"
