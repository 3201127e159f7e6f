#!/usr/bin/env bash
# The property tests of tests/props/ with many cases: the config parser, MQTT
# command payloads and topics, and HTTP requests through the router.
#
#   scripts/fuzz.sh              100 000 cases per property
#   scripts/fuzz.sh 1000000      more
#   MAJORTOM_FUZZ_SEED=<hex> scripts/fuzz.sh   replays a failure (the seed is
#                                printed with it)
#
# Built optimised, but with overflow checks, debug assertions and unwinding
# kept, in its own target directory so the normal builds stay cached.
# Prints each property's case count and time, then the total.
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${1:-100000}
export MAJORTOM_FUZZ_CASES=$cases
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/fuzz}
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_OPT_LEVEL=2
export CARGO_PROFILE_RELEASE_PANIC=unwind
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_PROFILE_RELEASE_STRIP=false

printf '==> building the property tests (%s)\n' "$CARGO_TARGET_DIR"
cargo test --locked --release --test props --no-run

printf '==> %s cases per property\n' "$cases"
started=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One property per thread on each core; output shows as each finishes.
cargo test --locked --release --test props -- --nocapture 2>&1 | tee "$log" | grep -E '^(property|  |test result|---- |thread )' || true
if ! grep -q '^test result: ok' "$log"; then
    printf '\n==> FAILED; the full output:\n' >&2
    cat "$log" >&2
    exit 1
fi
printf '==> all properties held: %s cases each, %s s in all\n' "$cases" "$(($(date +%s) - started))"
exit 0
