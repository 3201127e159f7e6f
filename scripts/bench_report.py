#!/usr/bin/env python3
"""Turns target/bench/footprint.json (benches/footprint) into markdown
tables (report.md) and a plot of RSS over time (rss.png).

    scripts/bench_report.py target/bench/footprint.json target/bench

scripts/bench.sh runs it with the bench's virtualenv (matplotlib).
"""

import json
import sys
from pathlib import Path

TARGETS = {
    "rss_mib": 3.0,
    "cpu_percent": 0.03,
    "start_ms": 50.0,
    "edge_p99_us": 1000,
    "state_rps": 20000,
    "load_rss_mib": 6.0,
    "arm_bytes": 2_000_000,
}

# The bench's sleepers (benches/footprint/agents.rs): floors of the CPU
# column, not agents; kept out of the plot.
SLEEPER_LABELS = {
    "sleeper": " (sleeps 1 s in a loop: the price of a wake-up a second)",
    "sleeper-3": " (3 threads, each sleeps 1 s in a loop: the floor of majortom's config)",
}


def fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def verdict(ok):
    return "met" if ok else "**missed**"


def report(data):
    steady = data["steady"]
    main = data["options"]["main_build"]
    base = steady[main]
    start = data.get("start", {})
    out = []
    m = data["machine"]
    out.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, {m['os']}. Load average (1, 5, 15 min) at the start "
        f"{' '.join(data['loadavg']['start'].split()[:3])}, at the end {' '.join(data['loadavg']['end'].split()[:3])}."
    )
    out.append("")
    out.append(
        "| agent | RSS MiB | PSS MiB | CPU % of a core | wake-ups a second | first MQTT message, ms (median of 5) "
        "| RSS × majortom | CPU × majortom |"
    )
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    order = [main] + sorted(k for k in steady if k != main)
    for name in order:
        s = steady[name]
        first = start.get(name, {}).get("median_ms")
        label = name + SLEEPER_LABELS.get(name, "")
        out.append(
            f"| {label} | {fmt(s['rss_mib'])} | {fmt(s['pss_mib'])} | {fmt(s['cpu_percent'], 3)} "
            f"| {fmt(s.get('wakeups_per_s'), 1)} | {fmt(first, 1)} | {s['rss_mib'] / base['rss_mib']:.1f} "
            f"| {s['cpu_percent'] / base['cpu_percent']:.1f} |"
        )
    out.append("")
    out.append("| HTTP load (wrk -t2 -c20) | req/s | p50 ms | p99 ms | RSS before → max MiB | CPU % |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for h in data["http"]:
        w = h["wrk"]
        path = w["url"].split("/", 3)[3]
        non2xx = f" ({w['non_2xx']} non-2xx)" if w["non_2xx"] else ""
        out.append(
            f"| {h['agent']} `/{path}` | {w['requests_per_s']:.0f}{non2xx} | {fmt(w['p50_ms'])} "
            f"| {fmt(w['p99_ms'])} | {fmt(h['rss_before_mib'])} → {fmt(h['rss_max_mib'])} "
            f"| {h['cpu_percent']:.0f} |"
        )
    out.append("")
    out.append("| 50 dashboards (`/api/events`) | served | refused (503) | RSS before → with → after MiB | CPU % |")
    out.append("| --- | ---: | ---: | ---: | ---: |")
    for name, s in data["sse"].items():
        out.append(
            f"| {name} | {s['served']} (+1 already open) | {s['refused_503']} "
            f"| {fmt(s['rss_before_mib'])} → {fmt(s['rss_mib'])} → {fmt(s['rss_after_close_mib'])} "
            f"| {s['cpu_percent']:.3f} |"
        )
    out.append("")
    out.append("| edge → MQTT (1000 edges) | p50 µs | p99 µs | max µs | floor p50 µs | floor p99 µs |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, e in data["edge"].items():
        out.append(
            f"| {name} | {e['p50_us']} | {e['p99_us']} | {e['max_us']} "
            f"| {e.get('floor_p50_us', '–')} | {e.get('floor_p99_us', '–')} |"
        )
    out.append("")
    cg = data["callgrind"]
    out.append(
        f"Callgrind ({main}): {cg['instructions_short']} instructions for {cg['cycles_short']} cycles, "
        f"{cg['instructions_long']} for {cg['cycles_long']}: **{cg['per_cycle']} instructions per cycle**."
    )
    out.append("")
    out.append("| binary (stripped) | bytes | MB |")
    out.append("| --- | ---: | ---: |")
    for target, size in data["sizes_bytes"].items():
        out.append(f"| {target} | {fmt(size)} | {fmt(size / 1e6 if size else None)} |")
    out.append("")

    # Targets (issue 7).
    state = [h for h in data["http"] if h["agent"] == main and h["wrk"]["url"].endswith("/api/state")]
    rps = state[0]["wrk"]["requests_per_s"] if state else float("nan")
    load_rss = state[0]["rss_max_mib"] if state else float("nan")
    edge = data["edge"].get(main, {})
    arm = [v for k, v in data["sizes_bytes"].items() if not k.startswith("x86_64") and v]
    first = start.get(main, {}).get("median_ms", float("nan"))
    rows = [
        ("steady RSS (x86_64 musl)", "≤ 3 MiB", f"{base['rss_mib']:.2f} MiB", base["rss_mib"] <= TARGETS["rss_mib"]),
        ("CPU at 1 s", "≤ 0.03 %", f"{base['cpu_percent']:.3f} %", base["cpu_percent"] <= TARGETS["cpu_percent"]),
        ("start → first message", "≤ 50 ms", f"{first:.1f} ms", first <= TARGETS["start_ms"]),
        ("edge → MQTT p99", "≤ 1 ms", f"{edge.get('p99_us', 0) / 1000:.2f} ms", edge.get("p99_us", 1e9) <= TARGETS["edge_p99_us"]),
        (
            "edge → MQTT p99 less the floor's p99 (the agent's share)",
            "≤ 1 ms",
            f"{(edge.get('p99_us', 0) - edge.get('floor_p99_us', 0)) / 1000:.2f} ms",
            edge.get("p99_us", 1e9) - edge.get("floor_p99_us", 0) <= TARGETS["edge_p99_us"],
        ),
        ("`GET /api/state`", "≥ 20 000 req/s", f"{rps:.0f} req/s", rps >= TARGETS["state_rps"]),
        ("RSS under that load", "≤ 6 MiB", f"{load_rss:.2f} MiB", load_rss <= TARGETS["load_rss_mib"]),
        ("ARM binaries", "≤ 2.0 MB", ", ".join(f"{v / 1e6:.2f}" for v in arm) + " MB", bool(arm) and max(arm) <= TARGETS["arm_bytes"]),
    ]
    out.append("| target | wanted | measured | |")
    out.append("| --- | --- | --- | --- |")
    for what, wanted, got, ok in rows:
        out.append(f"| {what} | {wanted} | {got} | {verdict(ok)} |")
    out.append("")
    return "\n".join(out)


def plot(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_all, ax_small) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {
        "majortom-musl": "tab:blue",
        "majortom-glibc": "tab:cyan",
        "collectd": "tab:green",
        "mqtt-io": "tab:red",
        "node-exporter": "tab:orange",
    }
    for name, s in sorted(data["steady"].items()):
        if name in SLEEPER_LABELS:
            continue
        t = [p[0] for p in s["samples"]]
        rss = [p[1] / 1024 for p in s["samples"]]
        label = name + (" (idle, HTTP only)" if name == "node-exporter" else "")
        ax_all.plot(t, rss, label=label, color=colors.get(name))
        if s["rss_mib"] < 8:
            ax_small.plot(t, rss, label=name, color=colors.get(name))
    ax_small.axhline(TARGETS["rss_mib"], color="grey", linestyle="--", linewidth=1, label="target (3 MiB)")
    ax_all.set_title("RSS over the steady phase")
    ax_small.set_title("the small ones")
    for ax in (ax_all, ax_small):
        ax.set_xlabel("seconds since start")
        ax.set_ylabel("RSS, MiB")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    m = data["machine"]
    fig.suptitle(
        f"Each agent publishing to mosquitto every 1 s — {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    source, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(source.read_text())
    (out_dir / "report.md").write_text(report(data))
    plot(data, out_dir / "rss.png")
    print(f"wrote {out_dir / 'report.md'} and {out_dir / 'rss.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
