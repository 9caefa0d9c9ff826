#!/usr/bin/env python3
"""`make bench`, object storage: the same jobs with a local sink and with an
s3:// sink on moto (a real S3 API on loopback, docs/object-storage.md).

- publish throughput: `qos replay` of one generated input to a directory
  and to s3://, wall time (median of BENCH_RUNS), files and MiB published
  per second;
- per-epoch overhead: `qos run --until-caught-up` on the embedded broker,
  checkpointing every second, to a directory and to s3://; the difference
  in wall time divided by the epochs committed (staging PUTs, the
  conditional manifest PUT, COPY + DELETE per file, ledger).

moto is a Python server: its per-request cost dominates, so the numbers
bound what the sink adds on a slow store, not what S3 or MinIO would give.
Writes bench/results/s3-sink.md. Environment: QOS_BIN (default the release
build), BENCH_S3_BEACONS (default 500_000), BENCH_RUNS (default 3)."""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QOS = os.environ.get("QOS_BIN", str(ROOT / ".build" / "release" / "qos"))
BEACONS = int(os.environ.get("BENCH_S3_BEACONS", "500000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
MOTO = ROOT / ".venv" / "bin" / "moto_server"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(args, env=None):
    t = time.monotonic()
    r = subprocess.run([QOS, *map(str, args)], capture_output=True, text=True, env=env, check=True)
    return time.monotonic() - t, r


def main():
    if not MOTO.exists():
        sys.exit("bench/s3_sink.py: moto_server is not in .venv — run `make deps`")
    work = Path(tempfile.mkdtemp(prefix="qos-s3-bench-"))
    port = free_port()
    moto = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        from pyarrow.fs import S3FileSystem
        S3FileSystem(access_key="bench", secret_key="bench", region="us-east-1", endpoint_override=f"127.0.0.1:{port}",
                     scheme="http", allow_bucket_creation=True).create_dir("bench")
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                   AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        sessions = max(100, BEACONS // 80)
        gen = ["--seed", "7", "--sessions", sessions, "--rate", "max", "--start-ms", "1767225600000"]
        data = work / "beacons.ndjson"
        subprocess.run([QOS, "generate", *map(str, gen), "--out", data], check=True, capture_output=True)
        lines = sum(1 for _ in open(data, "rb"))
        rows = []
        local_t, s3_t = [], []
        for i in range(RUNS):
            t, _ = timed(["replay", data, "--sink", work / f"local{i}", "--quiet"])
            local_t.append(t)
            t, _ = timed(["replay", data, "--sink", f"s3://bench/replay{i}", "--quiet"], env=env)
            s3_t.append(t)
        files = [p for p in (work / "local0").rglob("*.parquet")]
        mib = sum(p.stat().st_size for p in files) / 2**20
        for name, ts in (("local directory", local_t), ("s3:// (moto)", s3_t)):
            t = statistics.median(ts)
            rows.append(f"| qos replay → {name} | {t:.2f} | {lines / t / 1000:.0f} | {len(files) / t:.0f} | {mib / t:.1f} |")
        # Per-epoch overhead of the daemon.
        broker_port = free_port()
        broker = subprocess.Popen([QOS, "broker", "--port", str(broker_port), "--partitions", "3"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert "listening" in broker.stdout.readline()
        try:
            subprocess.run([QOS, "generate", *map(str, gen), "--kafka", f"127.0.0.1:{broker_port}"], check=True, capture_output=True)
            epochs = {}
            walls = {}
            for name, sink, e in (("local", work / "daemon", None), ("s3", "s3://bench/daemon", env)):
                t, r = timed(["run", "--brokers", f"127.0.0.1:{broker_port}", "--group", f"bench-{name}", "--sink", sink,
                              "--idle-timeout", "2s", "--metrics-port", "0", "--checkpoint-interval", "1s",
                              "--checkpoint-min-interval", "1s", "--until-caught-up"], env=e)
                m = re.search(r"checkpoint epoch (\d+)", r.stderr)
                epochs[name], walls[name] = int(m.group(1)) if m else 0, t
        finally:
            broker.terminate()
            broker.wait(10)
        per_epoch = (walls["s3"] - walls["local"]) / max(1, epochs["s3"])
        text = f"""# Object storage sink (bench/s3_sink.py)

{lines} beacons, {len(files)} files ({mib:.1f} MiB) per replay; median of {RUNS} runs; moto on loopback
(a Python server: an upper bound on what the sink adds, not S3's or MinIO's speed). Binary: {QOS}.

| job | wall s | k beacons/s | files/s | MiB/s |
|---|---|---|---|---|
{chr(10).join(rows)}

`qos run --until-caught-up`, checkpoint every 1 s: local {walls['local']:.2f} s ({epochs['local']} epochs),
s3:// {walls['s3']:.2f} s ({epochs['s3']} epochs): **{per_epoch * 1000:.0f} ms per epoch** added by the
object store (staging PUTs, conditional manifest PUT, COPY + DELETE per file, ledger PUT).
"""
        out = ROOT / "bench" / "results" / "s3-sink.md"
        out.write_text(text)
        print(text)
    finally:
        moto.kill()  # moto ignores SIGTERM
        moto.wait()
        subprocess.run(["rm", "-rf", str(work)])


if __name__ == "__main__":
    main()
