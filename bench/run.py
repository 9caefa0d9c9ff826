#!/usr/bin/env python3
"""`make bench`: end-to-end `qos replay` throughput on a generated input and
the micro-benchmarks, printed as one table and written to
bench/results/latest.md. Numbers are from this machine; nothing here runs
in `make test`.

Environment: BENCH_BEACONS (default 2_000_000), QOS_BIN (default the
release build), BENCH_RUNS (default 3, median reported after a warm-up)."""
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QOS = os.environ.get("QOS_BIN", str(ROOT / ".build" / "release" / "qos"))
BEACONS = int(os.environ.get("BENCH_BEACONS", "2000000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
DAEMON_BEACONS = int(os.environ.get("BENCH_DAEMON_BEACONS", "5000000"))


def run(args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def timed(args, log=None):
    """Wall seconds, CPU seconds (user+sys) and peak RSS (MiB) of one child
    run; its stderr goes to `log` (a path) when given."""
    err = open(log, "w") if log else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen([str(a) for a in args], stdout=subprocess.DEVNULL, stderr=err)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if log:
        err.close()
    if status != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed ({status})" + (f": {open(log).read()[-500:]}" if log else ""))
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu})"


def main():
    work = Path(tempfile.mkdtemp(prefix="qos-bench-"))
    try:
        data = work / "beacons.ndjson"
        sessions = max(1, BEACONS // 74)
        run([QOS, "generate", "--seed", "1", "--sessions", sessions, "--rate", "20000", "--explicit-geo", "--out", data])
        lines = sum(1 for _ in open(data, "rb"))
        size_mb = data.stat().st_size / 1_048_576
        rows = []
        results = []
        timed([QOS, "replay", data, "--sink", work / "warm", "--quiet"])
        for i in range(RUNS):
            shutil.rmtree(work / "out", ignore_errors=True)
            results.append(timed([QOS, "replay", data, "--sink", work / "out", "--quiet"]))
        wall = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        rss = max(r[2] for r in results)
        rows.append(("qos replay (all tables)", wall, lines / wall, lines / cpu, size_mb / wall, rss))
        rows.append(daemon(work))
        micro = [line.split("\t") for line in run([QOS, "bench", "--tsv"]).stdout.splitlines()]
        report(lines, size_mb, rows, micro)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon(work):
    """Catch-up: DAEMON_BEACONS already in the embedded broker (64 partitions:
    the mock keeps 5 MiB per partition), consumed by `qos run --until-caught-up`."""
    port = free_port()
    broker = subprocess.Popen([QOS, "broker", "--port", str(port), "--partitions", "64"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening" in broker.stdout.readline()
        sessions = max(1, DAEMON_BEACONS // 74)
        run([QOS, "generate", "--seed", "2", "--sessions", sessions, "--kafka", f"127.0.0.1:{port}", "--rate", "max"])
        log = work / "run.log"
        wall, cpu, rss = timed([QOS, "run", "--brokers", f"127.0.0.1:{port}", "--sink", work / "daemon",
                                "--until-caught-up", "--metrics-port", "off", "--group", "bench"], log=log)
        text = open(log).read()
        consumed = int(text.split(" messages, accepted")[0].rsplit(" ", 1)[1])
        latency = text.split("window latency ")[1].split(" over")[0]
        print(f"daemon: {consumed} beacons in {wall:.1f} s; window latency {latency}")
        return (f"qos run catch-up ({consumed:,} beacons in the embedded broker; window latency {latency})",
                wall, consumed / wall, consumed / cpu, 0, rss)
    finally:
        broker.terminate()
        broker.wait(10)


def report(lines, size_mb, rows, micro):
    out = [f"# VideoQoS benchmarks", "",
           f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
           f"- machine: {machine()}",
           f"- input: {lines} beacons, {size_mb:.0f} MB NDJSON (qos generate --seed 1)", "",
           "| job | wall s (median) | beacons/s | beacons per CPU-second | MB/s | peak RSS MiB |",
           "|---|---|---|---|---|---|"]
    for name, wall, bps, bpcpu, mbps, rss in rows:
        mb = f"{mbps:.0f}" if mbps else "—"
        out.append(f"| {name} | {wall:.2f} | {bps:,.0f} | {bpcpu:,.0f} | {mb} | {rss:.0f} |")
    out += ["", "| micro-benchmark | ops/s | note |", "|---|---|---|"]
    for name, ops, note in micro:
        out.append(f"| {name} | {int(ops):,} | {note} |")
    text = "\n".join(out) + "\n"
    print(text)
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "latest.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
