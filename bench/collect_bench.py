#!/usr/bin/env python3
"""`make bench`, collector part: `qos collect` throughput and latency on
loopback with `wrk` (Debian), into the embedded broker. Each request posts a
batch of BENCH_COLLECT_BATCH beacons (default 50) as one JSON array, over
keep-alive connections. Two runs: as fast as it goes (throughput), then
paced at half the goal of 50 000 beacons/s per core (each of 5 connections
waits between requests with wrk's `delay()`, as Debian's wrk has no `wrk2`
rate flag; the table gives the rate reached), whose latency percentiles are
what a client sees below saturation. Results: bench/results/collect.md.

Environment: QOS_BIN (default the release build), BENCH_COLLECT_SECONDS (10),
BENCH_COLLECT_BATCH (50), BENCH_COLLECT_THREADS (collector event loops,
default 1: the goal is per core)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QOS = os.environ.get("QOS_BIN") or str(ROOT / ".build" / "release" / "qos")
SECONDS = int(os.environ.get("BENCH_COLLECT_SECONDS", "10"))
BATCH = int(os.environ.get("BENCH_COLLECT_BATCH", "50"))
THREADS = os.environ.get("BENCH_COLLECT_THREADS", "1")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HALF_GOAL = 25_000   # beacons/s: half the 50 000 per core of the goal


def wrk(port, body_file, connections, threads=1, delay_ms=None):
    script = Path(body_file).with_suffix(".lua")
    script.write_text(
        (f'delay = function() return {delay_ms} end\n' if delay_ms else '') +
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        'done = function(summary, latency, requests)\n'
        '  io.write(string.format("JSON {\\"requests\\":%d,\\"non2xx\\":%d,\\"p50\\":%d,\\"p99\\":%d,\\"seconds\\":%f}\\n",\n'
        '    summary.requests, summary.errors.status, latency:percentile(50), latency:percentile(99), summary.duration / 1e6))\n'
        'end\n')
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{SECONDS}s", "--latency",
                          "-s", str(script), f"http://127.0.0.1:{port}/v1/beacons"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))


def main():
    if not shutil.which("wrk"):
        sys.exit("collect bench: wrk not found — apt-get install wrk (make deps-bench does)")
    if not Path(QOS).exists():
        sys.exit(f"collect bench: {QOS} not found — make release")
    tmp = Path(tempfile.mkdtemp(prefix="qos-collect-bench-"))
    bport = free_port()
    broker = subprocess.Popen([QOS, "broker", "--port", str(bport), "--partitions", "6"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert "listening" in broker.stdout.readline()
    port = free_port()
    collector = subprocess.Popen([QOS, "collect", "--brokers", f"127.0.0.1:{bport}", "--host", "127.0.0.1",
                                  "--port", str(port), "--threads", THREADS, "--rate", "0", "--buffer", "1000000"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert "listening" in collector.stderr.readline()
    try:
        t0 = 1767225600000
        batch = [{"event": "heartbeat", "ts": t0 + i, "session_id": f"bench-{i % 997}", "seq": i,
                  "played_ms": 10000, "bitrate_kbps": 3000, "video_id": "v-1", "cdn": "cdnA"} for i in range(BATCH)]
        body = tmp / "batch.json"
        body.write_text(json.dumps(batch))
        full = wrk(port, body, connections=64, threads=2)
        # 5 connections, each waiting a fifth less than 5 / (HALF_GOAL / BATCH) s
        # between requests (a request takes time of its own): at least the target.
        half = wrk(port, body, connections=5, threads=1, delay_ms=max(1, int(0.8 * 5 * 1000 * BATCH / HALF_GOAL)))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        failed = int(re.search(r"^qos_collect_kafka_failed_total (\d+)", metrics, re.M).group(1))
    finally:
        collector.terminate()
        collector.wait(60)
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    rate = lambda r: r["requests"] * BATCH / r["seconds"]
    lines = [
        "# qos collect on loopback (wrk → collector → embedded broker)",
        "",
        f"Batches of {BATCH} beacons per POST, keep-alive, {THREADS} collector event-loop thread(s), "
        f"{SECONDS} s per run, {os.cpu_count()} cores shared with wrk and the broker. Binary: {QOS}.",
        "",
        "| run | connections | requests/s | beacons/s | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r, c in [("saturated", full, 64), (f"paced at ≥ {HALF_GOAL} beacons/s", half, 5)]:
        lines.append(f"| {name} | {c} | {r['requests'] / r['seconds']:.0f} | {rate(r):.0f} | "
                     f"{r['p50'] / 1000:.2f} | {r['p99'] / 1000:.2f} | {r['non2xx']} |")
    lines += ["", f"Kafka delivery failures: {failed}.", ""]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / "collect.md"
    out.write_text(text)


if __name__ == "__main__":
    main()
