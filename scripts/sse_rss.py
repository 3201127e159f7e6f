#!/usr/bin/env python3
"""What 50 open dashboards cost the agent in memory (issue 19).

Starts a real mosquitto on a free loopback port and a real majortom (the
binary given; the bench measures the static x86_64 musl build,
`cross/build.sh x86_64-unknown-linux-musl`) with the bench's realistic
config: MQTT on, system stats and the two fixture sensors (DS18B20, IIO)
every second over the real /proc, 8 simulated inputs, 4 simulated outputs,
the dashboard on a free port. Waits past start-up's settle (`resident.rs`
gives start-up's pages back 15 s after the start), reads the memory, opens
N event streams (`GET /api/events`), each from its own loopback address
(127.0.0.2 on, as the bench's clients do: the agent caps streams per
address), all read continuously on one thread, waits, reads the memory
again, closes them and reads it once more.

    scripts/sse_rss.py BINARY [--clients 50] [--settle 17] [--hold 5] [--rounds 1]
    scripts/sse_rss.py BINARY --massif DIR     # where the heap goes

Memory is VmRSS, RssAnon from /proc/PID/status and Pss from smaps_rollup,
in KiB. With --rounds R the clients open and close R times (what a
long-lived agent sees): the reading "with" is the last round's.

With --massif DIR the agent runs under `valgrind --tool=massif` (use a
glibc build with line tables: CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
CARGO_PROFILE_RELEASE_STRIP=false cargo build --release) and each reading
also writes a detailed heap snapshot, DIR/<reading>.ms (`vgdb
detailed_snapshot`; read it with ms_print). The RSS figures then are
valgrind's, not the agent's.
"""

import argparse
import json
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from agent_memory import free_port, status_kib, wait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def memory(pid):
    fields = status_kib(pid)
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                fields["Pss"] = int(line.split()[1])
    return fields


def show(label, m):
    mib = m["VmRSS"] / 1024
    print(
        f"{label:<22} VmRSS {m['VmRSS']:>5} KiB ({mib:.2f} MiB)  RssAnon {m['RssAnon']:>5}  "
        f"RssFile {m['RssFile']:>5}  Pss {m['Pss']:>5}",
        flush=True,
    )


def config(work, port):
    """The bench's realistic config (benches/footprint/agents.rs)."""
    root = f"{work}/root"
    os.makedirs(root)
    os.symlink("/proc", f"{root}/proc")
    for tree in ("w1", "iio"):
        shutil.copytree(f"{ROOT}/tests/fixtures/sysroot/{tree}", root, dirs_exist_ok=True)
    text = (
        f'[node]\nid = "sse_rss"\nname = "Bench sse_rss"\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f'[web]\nbind = "127.0.0.1"\nport = 0\ntoken = "e2e-test-token"\n\n'
        f'[system]\ninterval_s = 1\nroot = "{root}"\n\n'
        f'[gpio]\nbackend = "sim"\nstate_file = "{work}/outputs.json"\nauto_ds18b20 = false\n'
    )
    for n, pin in enumerate([17, 18, 22, 23, 24, 25, 26, 27]):
        text += f'\n[[inputs]]\nname = "input_{n}"\npin = {pin}\npull = "down"\ndebounce_ms = 0\n'
    for n, pin in enumerate([5, 6, 13, 19]):
        text += f'\n[[outputs]]\nname = "output_{n}"\npin = {pin}\n'
    text += '\n[[sensors]]\nkind = "ds18b20"\nname = "garden"\nid = "28-0316a2795cff"\ninterval_s = 1\n'
    text += '\n[[sensors]]\nkind = "iio"\nname = "living"\ndevice = "dht11"\ninterval_s = 1\n'
    return text


class Dashboards:
    """N connections holding GET /api/events open, read on one thread."""

    def __init__(self, web, count):
        host, port = web.rsplit(":", 1)
        self.selector = selectors.DefaultSelector()
        self.received = {}
        for n in range(count):
            s = socket.socket()
            s.bind((f"127.0.0.{2 + n}", 0))
            s.connect((host, int(port)))
            s.sendall(f"GET /api/events HTTP/1.1\r\nHost: {web}\r\nAccept: text/event-stream\r\n\r\n".encode())
            s.setblocking(False)
            self.received[s] = b""
            self.selector.register(s, selectors.EVENT_READ)

    def pump(self, seconds):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(left):
                data = key.fileobj.recv(65536)
                if data:
                    # Keep the head and a little more: enough to judge.
                    if len(self.received[key.fileobj]) < 4096:
                        self.received[key.fileobj] += data
                else:
                    self.selector.unregister(key.fileobj)

    def served(self):
        ok = [d for d in self.received.values() if d.startswith(b"HTTP/1.1 200") and b"event: snapshot" in d]
        return len(ok)

    def close(self):
        for s in self.received:
            s.close()
        self.selector.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--settle", type=float, default=17.0, help="seconds after start before the first reading")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds the streams stay open before the reading")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--massif", metavar="DIR", help="run under massif; a heap snapshot per reading")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="sse-rss-")
    port = free_port()
    with open(f"{work}/mosquitto.conf", "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", f"{work}/mosquitto.conf"], stderr=subprocess.DEVNULL)
    with open(f"{work}/majortom.toml", "w") as f:
        f.write(config(work, port))
    ready = f"{work}/ready.json"
    env = dict(os.environ, MAJORTOM_LOG="info")
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(name, None)
    wrapper = []
    if args.massif:
        os.makedirs(args.massif, exist_ok=True)
        wrapper = ["valgrind", "--tool=massif", "--vgdb=yes", f"--massif-out-file={args.massif}/massif.out"]

    def reading(label):
        m = memory(agent.pid)
        if args.massif:
            name = label.strip().replace(" ", "_")
            subprocess.run(["vgdb", f"--pid={agent.pid}", "detailed_snapshot", f"{args.massif}/{name}.ms"],
                           check=True, stdout=subprocess.DEVNULL)
        return m

    agent = subprocess.Popen(
        wrapper + [args.binary, "run", "--config", f"{work}/majortom.toml", "--ready-file", ready],
        stderr=open(f"{work}/agent.log", "w"),
        env=env,
    )
    try:
        web = wait("the agent", timeout=120, check=lambda: os.path.exists(ready) and json.load(open(ready)).get("web"))
        time.sleep(args.settle)
        show("before", reading("before"))
        for round_ in range(args.rounds):
            dashboards = Dashboards(web, args.clients)
            dashboards.pump(args.hold)
            served = dashboards.served()
            with_ = reading(f"with {args.clients} streams")
            dashboards.close()
            time.sleep(2)
            after = reading(f"round {round_ + 1} closed")
            print(f"round {round_ + 1}: {served} of {args.clients} served")
            show(f"  with {args.clients} streams", with_)
            show("  2 s after closing", after)
        if served != args.clients:
            sys.exit(f"only {served} of {args.clients} streams were served")
    finally:
        agent.terminate()
        agent.wait()
        broker.terminate()
        broker.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
