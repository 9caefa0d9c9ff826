#!/usr/bin/env python3
"""`make soak` (part of `make bench`, never `make test` / CI): real-time
traffic with hostile parts, to show that the daemon's memory, checkpoint size
and open files stay flat.

Runs `qos broker`, `qos generate --kafka --rate RATE --malformed-fraction 0.05
--future-fraction 0.02 --warm-start-ms WARM` (paced by event time: no beacon
ahead of the clock except the injected future ones; the warm start sends
steady-state traffic from the first second instead of a 20-minute build-up
while the first sessions start, after scripting the warm-up's sessions for
a minute or two) and `qos run`, then, from the daemon's first checkpoint,
runs SOAK_SECONDS of wall time. Every SOAK_SAMPLE_SECONDS it samples the daemon's RSS (/proc/PID/status
VmRSS; VmHWM, its peak, at the end), its CPU time (/proc/PID/stat utime + stime), the size of its newest checkpoint manifest (<sink>/_qos/manifests/,
which holds every partition's state) and its open file descriptors
(/proc/PID/fd). After SIGTERM it checks that the `rejects` table holds every
beacon the daemon counted as rejected.

Reported: the slope of each series over the second half of the run (least
squares; the first half is warm-up: open sessions and the checkpoint grow until sessions
started before the run have ended and time-outs close the rest), per minute, written to bench/results/soak.md. Flat means a slope that is small
against the level (see the table's "relative" column).

Environment: SOAK_SECONDS (default 600), SOAK_RATE (default 20000),
SOAK_SAMPLE_SECONDS (default 10), SOAK_PARTITIONS (default 6),
SOAK_WARM_START_MS (default 1200000), QOS_BIN (default the release build),
SOAK_OUT (default bench/results/soak.md)."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
QOS = os.environ.get("QOS_BIN", str(ROOT / ".build" / "release" / "qos"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
RATE = int(os.environ.get("SOAK_RATE", "20000"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE_SECONDS", "10"))
PARTITIONS = int(os.environ.get("SOAK_PARTITIONS", "6"))
WARM_MS = int(os.environ.get("SOAK_WARM_START_MS", "1200000"))
OUT = Path(os.environ.get("SOAK_OUT", str(ROOT / "bench" / "results" / "soak.md")))
MALFORMED = 0.05
FUTURE = 0.02


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib(pid):
    """The process's peak resident memory so far (/proc/PID/status VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    """User + system CPU time of the process so far (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def newest_manifest_kib(sink):
    files = [p for p in Path(sink, "_qos", "manifests").rglob("*.manifest")]
    if not files:
        return 0.0
    return max(files, key=lambda p: (p.stat().st_mtime_ns, p.name)).stat().st_size / 1024


def open_sessions(port):
    """qos_open_sessions from the daemon's /metrics (nan if unavailable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("qos_open_sessions"):
                    return float(line.split()[-1])
    except OSError:
        pass
    return float("nan")


def slope_per_minute(points):
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((t - mx) ** 2 for t, _ in points)
    sxy = sum((t - mx) * (v - my) for t, v in points)
    return 60 * sxy / sxx if sxx else float("nan")


def stop(proc, sig=signal.SIGTERM, timeout=60):
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if not Path(QOS).exists():
        sys.exit(f"soak: {QOS} not found — run `make release` or set QOS_BIN")
    work = Path(tempfile.mkdtemp(prefix="qos-soak-"))
    sink = work / "sink"
    port = free_port()
    broker = subprocess.Popen([QOS, "broker", "--port", str(port), "--partitions", str(PARTITIONS)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = broker.stdout.readline()
    if "listening" not in line:
        sys.exit(f"soak: broker did not start: {line}")
    address = f"127.0.0.1:{port}"
    # Enough sessions for the whole run (about 70 beacons each).
    sessions = int(RATE * (WARM_MS / 1000 + SECONDS + 300) / 70) + 1000
    gen = subprocess.Popen([QOS, "generate", "--kafka", address, "--rate", str(RATE), "--sessions", str(sessions),
                            "--malformed-fraction", str(MALFORMED), "--future-fraction", str(FUTURE),
                            "--warm-start-ms", str(WARM_MS)],
                           stdout=subprocess.DEVNULL, stderr=open(work / "generate.log", "w"))
    run_log = open(work / "run.log", "w")
    metrics_port = free_port()
    run = subprocess.Popen([QOS, "run", "--brokers", address, "--group", "soak", "--sink", str(sink),
                            "--metrics-port", str(metrics_port)], stdout=run_log, stderr=subprocess.STDOUT)
    print(f"soak: {SECONDS:.0f} s at {RATE} beacons/s (malformed {MALFORMED}, future {FUTURE}), "
          f"{PARTITIONS} partitions, sampling every {SAMPLE:.0f} s; work dir {work}", flush=True)
    samples = []  # (t, rss MiB, manifest KiB, fds, open sessions, CPU s)
    peak = 0.0  # the daemon's peak RSS (MiB) at the last sample: peaks between samples count too
    try:
        # The clock starts with traffic: the daemon's first checkpoint.
        waited = time.monotonic()
        while newest_manifest_kib(sink) == 0:
            if run.poll() is not None or gen.poll() is not None or time.monotonic() - waited > 900:
                sys.exit(f"soak: no traffic reached the daemon; see {work}/*.log")
            time.sleep(1)
        print(f"  traffic after {time.monotonic() - waited:.0f} s (generator warm start)", flush=True)
        start = time.monotonic()
        next_at = start + SAMPLE
        while time.monotonic() - start < SECONDS:
            if run.poll() is not None:
                sys.exit(f"soak: qos run exited early ({run.returncode}); see {work / 'run.log'}")
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += SAMPLE
            t = time.monotonic() - start
            s = (t, rss_mib(run.pid), newest_manifest_kib(sink), open_fds(run.pid), open_sessions(metrics_port),
                 cpu_seconds(run.pid))
            samples.append(s)
            peak = peak_rss_mib(run.pid)
            print(f"  t={s[0]:6.0f} s  rss {s[1]:7.1f} MiB  manifest {s[2]:8.1f} KiB  fds {s[3]}  "
                  f"open sessions {s[4]:.0f}  cpu {s[5]:.1f} s", flush=True)
    finally:
        stop(gen, signal.SIGINT)
        stop(run)
        stop(broker)
    run_log.close()
    log = (work / "run.log").read_text()
    m = re.search(r"(\d+) messages, accepted (\d+), rejected (\d+)", log)
    counted = int(m.group(3)) if m else None
    rows, future_rows = 0, 0
    if (sink / "rejects").exists():
        t = pq.read_table(sink / "rejects", columns=["reason"])
        rows = t.num_rows
        future_rows = sum(1 for r in t.column("reason").to_pylist() if r == "ts_in_future")
    half = [s for s in samples if s[0] >= SECONDS / 2]
    series = [("RSS", "MiB", 1), ("newest manifest", "KiB", 2), ("open fds", "", 3), ("open sessions", "", 4)]
    lines = [
        "# Soak: real-time traffic with malformed and future beacons",
        "",
        f"`make soak` (bench/soak.py) on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{SECONDS:.0f} s at {RATE} beacons/s of event time, {MALFORMED:.0%} malformed, {FUTURE:.0%} "
        f"future (10–60 min ahead), warm start {WARM_MS // 60000} min, {PARTITIONS} partitions, `qos run` sampled every {SAMPLE:.0f} s. "
        "Slopes are least-squares fits over the second half of the run (the first half is warm-up).",
        "",
        "| series | first sample | last sample | slope (2nd half) per min | relative (slope / mean, per min) |",
        "|---|---|---|---|---|",
    ]
    for name, unit, i in series:
        pts = [(s[0], s[i]) for s in half]
        slope = slope_per_minute(pts)
        mean = sum(v for _, v in pts) / len(pts) if pts else float("nan")
        rel = slope / mean if mean else float("nan")
        lines.append(f"| {name} | {samples[0][i]:.1f} {unit} | {samples[-1][i]:.1f} {unit} | "
                     f"{slope:+.2f} {unit} | {rel:+.2%} |")
    c = m.groups() if m else ("?", "?", "?")
    cpu_per_min = slope_per_minute([(s[0], s[5]) for s in half])
    lines += [
        "",
        f"CPU: {cpu_per_min:.2f} CPU-seconds per minute in the second half ({cpu_per_min / 60:.1%} of one core; "
        f"{samples[-1][5]:.1f} s over the sampled run). Peak RSS (VmHWM, the highest between samples too): "
        f"{peak:.1f} MiB.",
        "",
        f"Daemon totals: {c[0]} messages, accepted {c[1]}, rejected {c[2]}. "
        f"`rejects` table after SIGTERM: {rows} rows ({future_rows} `ts_in_future`) — "
        + ("every counted reject written." if counted == rows else "MISMATCH with the count."),
        "",
        "The manifest holds every partition's state: open sessions, and the unwritten windows (their groups and",
        "the rows of sessions closed in them), so it rises between window flushes (every 2 min) and drops at each.",
        "",
        "Samples (s, RSS MiB, newest manifest KiB, fds, open sessions, CPU s):",
        "",
        "```",
        *[f"{s[0]:6.0f} {s[1]:8.1f} {s[2]:9.1f} {s[3]:4d} {s[4]:8.0f} {s[5]:8.1f}" for s in samples],
        "```",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines[6:6 + len(series)]))
    print(lines[7 + len(series)])
    print(lines[9 + len(series)])
    print(f"written to {OUT}")
    if counted != rows:
        sys.exit(1)


if __name__ == "__main__":
    main()
