"""What scripts/fleet_rss.py and scripts/sse_rss.py share: a free loopback
port, waiting for a condition, and an agent's memory from /proc."""

import socket
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, check, timeout=30.0, step=0.05):
    """`check()`'s first true value, polled every `step` s; exits the
    script naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    sys.exit(f"timed out waiting for {what}")


def status_kib(pid):
    """VmRSS, RssAnon and RssFile of `pid`, in KiB (/proc/PID/status)."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0])
    return fields
