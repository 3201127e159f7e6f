#!/bin/sh
# A stand-in for systemctl, for `majortom update --root DIR` in the e2e
# tests (tests/e2e/update.rs names it in MAJORTOM_ROOT_SYSTEMCTL). It runs the
# installed binary the way majortom.service would, and answers `show` the
# way systemd does for a Type=notify unit: `activating (start)` until the
# process reports that it runs (through --ready-file, where systemd would
# get READY=1), then `active (running)`, and `failed` once it has exited.
# Nothing restarts it on failure (NRestarts stays 0).
#
#   systemctl --root=DIR restart [--no-block] majortom.service
#   systemctl --root=DIR show -p PROPS majortom.service
#   systemctl --root=DIR reset-failed majortom.service
#   systemctl --root=DIR stop majortom.service
#
# Every call is logged to DIR/run/fake-systemd/calls.
set -eu

root=
case "${1:-}" in
    --root=*) root=${1#--root=}; shift ;;
    *) echo "fake systemctl: needs --root=DIR first (got: $*)" >&2; exit 2 ;;
esac
state="$root/run/fake-systemd"
mkdir -p "$state"
echo "$*" >>"$state/calls"
verb=${1:-}

# The pid of the service's process if it still runs (a zombie has ended).
running_pid() {
    [ -f "$state/pid" ] || return 1
    pid=$(cat "$state/pid")
    [ -r "/proc/$pid/stat" ] || return 1
    # The state is the third field, after "pid (comm)".
    status=$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)
    [ "$status" != Z ] || return 1
    echo "$pid"
}

stop() {
    if pid=$(running_pid); then
        kill -TERM "$pid" 2>/dev/null || true
        tries=0
        while running_pid >/dev/null && [ $tries -lt 100 ]; do
            sleep 0.05
            tries=$((tries + 1))
        done
        if running_pid >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$state/pid" "$state/ready.json" "$state/started"
}

case "$verb" in
    restart)
        stop
        # The unit's ExecStart, below the root; its output goes to a log (a
        # pipe held open by it would keep our caller waiting).
        "$root/usr/local/bin/majortom" run --config "$root/etc/majortom/majortom.toml" \
            --ready-file "$state/ready.json" </dev/null >>"$state/log" 2>&1 &
        echo $! >"$state/pid"
        echo started >"$state/started"
        ;;
    stop)
        stop
        ;;
    reset-failed)
        ;;
    show)
        if pid=$(running_pid); then
            if [ -f "$state/ready.json" ] && grep -q "\"pid\":$pid[,}]" "$state/ready.json"; then
                printf 'ActiveState=active\nSubState=running\n'
            else
                printf 'ActiveState=activating\nSubState=start\n'
            fi
            printf 'ExecMainPID=%s\nNRestarts=0\nResult=success\n' "$pid"
        elif [ -f "$state/started" ]; then
            printf 'ActiveState=failed\nSubState=failed\nExecMainPID=0\nNRestarts=0\nResult=exit-code\n'
        else
            printf 'ActiveState=inactive\nSubState=dead\nExecMainPID=0\nNRestarts=0\nResult=success\n'
        fi
        ;;
    *)
        echo "fake systemctl: $verb is not faked" >&2
        exit 1
        ;;
esac
