#!/usr/bin/env python3
"""What 64 known nodes cost the agent in memory (issue 18).

Starts a real mosquitto on a free loopback port and a real majortom
(the binary given, default target/release/majortom) with the fleet on;
once it sees itself on the broker and has served /api/fleet, reads
VmRSS and RssAnon from /proc/PID/status. Then publishes 63 simulated
nodes' retained status and info (full-size payloads, as an agent on a Pi
sends them) on one MQTT connection, waits until /api/fleet lists 64 nodes,
sends every node a second, different info (a table that has churned),
serves /api/fleet again and reads the figures again.

    scripts/fleet_rss.py [BINARY]

Prints one line per reading and the difference; run it a few times.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from agent_memory import free_port, status_kib as status, wait

NODES = 63  # plus the agent itself: 64, the table's limit


def info(n, round_):
    return json.dumps(
        {
            "version": "0.1.0" if n % 7 else "0.0.9",
            "name": f"Simulated Pi number {n}",
            "model": "Raspberry Pi 4 Model B Rev 1.4",
            "url": f"http://192.168.10.{n + 10}:8080/",
            "uptime_s": 86_400 + n * 17 + round_,
            "cpu_temp_c": 45.5 + n % 10 + round_ / 10,
            "throttled": n % 13 == 0,
            "under_voltage": n % 11 == 0,
            "disk_pct": 40.0 + n % 55,
            "mem_pct": 20.0 + n % 30 + round_,
            "time": int(time.time()),
        },
        separators=(",", ":"),
    )


def mqtt_string(text):
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def packet(kind, body):
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (128 if length else 0)])
        if not length:
            return bytes([kind]) + encoded + body


class Publisher:
    """A minimal MQTT 3.1.1 client: retained QoS 0 messages on one
    connection, then DISCONNECT (the broker handles them in order)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        connect = mqtt_string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + mqtt_string("fleet-rss")
        self.sock.sendall(packet(0x10, connect))
        assert self.sock.recv(4)[:1] == b"\x20", "CONNACK"

    def publish(self, topic, payload):
        self.sock.sendall(packet(0x31, mqtt_string(topic) + payload.encode()))

    def close(self):
        self.sock.sendall(packet(0xE0, b""))
        self.sock.close()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/majortom"
    work = tempfile.mkdtemp(prefix="fleet-rss-")
    port = free_port()
    with open(f"{work}/mosquitto.conf", "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", f"{work}/mosquitto.conf"], stderr=subprocess.DEVNULL)
    config = f"""[node]
id = "rss"
[mqtt]
host = "127.0.0.1"
port = {port}
[web]
bind = "127.0.0.1"
port = 0
[gpio]
state_file = "{work}/outputs.json"
"""
    with open(f"{work}/majortom.toml", "w") as f:
        f.write(config)
    ready = f"{work}/ready.json"
    agent = subprocess.Popen(
        [binary, "run", "--config", f"{work}/majortom.toml", "--ready-file", ready],
        stderr=subprocess.DEVNULL,
    )
    try:
        web = wait("the agent", lambda: os.path.exists(ready) and json.load(open(ready)).get("web"))

        def fleet():
            with urllib.request.urlopen(f"http://{web}/api/fleet") as r:
                return json.load(r)

        wait("the agent on the broker", lambda: any(n["id"] == "rss" and n["online"] for n in fleet()["nodes"]))
        time.sleep(3)  # the first samples and publications settle
        fleet()
        before = status(agent.pid)
        print(f"1 node:   {before}")
        publisher = Publisher(port)
        for round_ in (0, 1):
            for n in range(NODES):
                publisher.publish(f"majortom/sim-{n:02}/status", "online")
                publisher.publish(f"majortom/sim-{n:02}/info", info(n, round_))
        publisher.close()
        wait(
            "64 nodes with their second info",
            lambda: len([n for n in fleet()["nodes"] if n["info"] and n["info"]["uptime_s"] % 17 != 0 or n["id"] == "rss"]) == 64,
        )
        nodes = fleet()
        assert len(nodes["nodes"]) == 64, len(nodes["nodes"])
        time.sleep(1)
        fleet()
        after = status(agent.pid)
        print(f"64 nodes: {after}")
        print("difference (KiB): " + ", ".join(f"{k} {after[k] - before[k]:+d}" for k in before))
        print(f"/api/fleet with 64 nodes: {len(json.dumps(nodes))} bytes")
    finally:
        agent.terminate()
        agent.wait()
        broker.terminate()
        broker.wait()


if __name__ == "__main__":
    main()
