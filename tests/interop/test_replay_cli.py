"""qos replay as a user runs it: determinism, atomic files, bad inputs."""
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
from conftest import qos, qos_bin


def tree(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_replay_twice_is_byte_identical(generated, tmp_path):
    qos("replay", generated, "--sink", tmp_path / "a", "--quiet")
    qos("replay", generated, "--sink", tmp_path / "b", "--quiet")
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a and a == b


def test_replay_twice_is_byte_identical_at_a_group_cap(tmp_path):
    """Two processes (each with its own session-table hash secret, so its own
    bucket order) write the same files when a flush creates groups for
    concurrent plays and the group cap sends some of them to __other__: 20
    sessions play in the first window and send nothing after it, so the
    second window has no group of theirs until its flush counts them as
    concurrent plays; with room for 4 more groups, which 4 videos get rows
    must not depend on the bucket order (docs/architecture.md "Keys from
    anyone")."""
    t0 = 1_767_225_600_000
    lines = []
    for i in range(20):
        sid = f"idle-{i:02d}-{(i * 7919) % 1000:03d}"
        lines.append({"event": "view_start", "ts": t0 + i, "session_id": sid, "seq": 1, "video_id": f"v-{i:02d}"})
        lines.append({"event": "play_start", "ts": t0 + 1000 + i, "session_id": sid, "seq": 2})
    for k in range(60):  # one session that keeps the clock moving for 10 minutes
        lines.append({"event": "heartbeat", "ts": t0 + 2000 + 10_000 * k, "session_id": "clock", "seq": k + 1,
                      "video_id": "bg", "played_ms": 10_000})
    lines.sort(key=lambda b: b["ts"])
    src = tmp_path / "idle.ndjson"
    src.write_text("".join(json.dumps(b) + "\n" for b in lines))
    for name in ("a", "b", "c"):
        out = qos("replay", src, "--sink", tmp_path / name, "--group-cap", "5", "--quiet").stdout
        # The cap is reported, not only visible as __other__ rows (SPEC §2: overflow is counted).
        assert "group cap reached in " in out and "window tables" in out, out
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a and a == b == c
    video = pq.ParquetDataset(tmp_path / "a" / "video").read().to_pydict()
    second = [v for v, s in zip(video["video_id"], video["window_start"]) if s.timestamp() * 1000 == t0 + 120_000]
    assert "__other__" in second and len([v for v in second if v.startswith("v-")]) == 4, second


def test_zstd_input_equals_plain(generated, tmp_path):
    """Same rows from a .zst of the same input (names and sources differ only by the input name)."""
    zst = tmp_path / "in.ndjson.zst"
    subprocess.run(["zstd", "-q", "-o", zst, generated], check=True)
    dumps = []
    for name, src in (("z", zst), ("p", generated)):
        qos("replay", src, "--sink", tmp_path / name, "--json-dump", tmp_path / f"{name}.json", "--quiet")
        rows = []
        for line in (tmp_path / f"{name}.json").read_text().splitlines():
            f = json.loads(line)
            f["path"] = f["path"].rsplit("_", 1)[0]
            f["columns"].pop("source", None)
            rows.append(json.dumps(f, sort_keys=True))
        dumps.append(sorted(rows))
    assert len(dumps[0]) > 100 and dumps[0] == dumps[1]


def test_killed_replay_leaves_no_partial_visible_file(tmp_path):
    big = tmp_path / "big.ndjson"
    qos("generate", "--seed", "11", "--sessions", "3000", "--rate", "100", "--out", big)
    for delay in (0.3, 0.8, 1.5):
        sink = tmp_path / f"k{delay}"
        p = subprocess.Popen([qos_bin(), "replay", big, "--sink", sink, "--quiet"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        visible = [f for f in sink.rglob("*.parquet") if not f.name.startswith(".")]
        for f in visible:
            pq.read_metadata(f)  # every visible file is complete
        assert all(f.name.startswith(".") for f in sink.rglob("*.tmp"))


def error_lines(stderr):
    """The error lines of a failed run (informational lines such as the geo
    notice may precede them); there must be exactly one, and no trace."""
    assert "Fatal error" not in stderr and "Stack dump" not in stderr
    return [l for l in stderr.splitlines() if l.startswith("qos: error")]


def test_missing_file_is_one_line_error(tmp_path):
    r = qos("replay", tmp_path / "nope.ndjson", "--sink", tmp_path / "o", check=False)
    assert r.returncode != 0
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and "nope.ndjson" in lines[0]


def test_truncated_zstd_is_one_line_error(generated, tmp_path):
    zst = tmp_path / "t.ndjson.zst"
    subprocess.run(["zstd", "-q", "-o", zst, generated], check=True)
    data = zst.read_bytes()
    zst.write_bytes(data[: len(data) // 2])
    r = qos("replay", zst, "--sink", tmp_path / "o", check=False)
    lines = error_lines(r.stderr)
    assert r.returncode != 0 and len(lines) == 1 and "truncated" in lines[0]


def test_bad_enrichment_files_are_one_line_errors(tmp_path):
    """Not a MaxMind DB, not uap-core's regexes: one line naming the file,
    what is wrong and the fix — once (the regexes' message said its first
    half twice)."""
    one = tmp_path / "one.ndjson"
    one.write_text('{"event":"view_start","ts":1764560000000,"session_id":"a"}\n')
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a mapping\n")
    for flag, needle in [("--geoip-db", "MaxMind"), ("--ua-regexes", "not a YAML mapping")]:
        r = qos("replay", one, "--sink", tmp_path / "o", flag, bad, check=False)
        lines = error_lines(r.stderr)
        assert r.returncode != 0 and len(lines) == 1 and needle in lines[0], r.stderr
        assert lines[0].count(str(bad)) == 1, lines[0]


def test_binary_garbage_becomes_rejects(tmp_path):
    junk = tmp_path / "junk.ndjson"
    junk.write_bytes(os.urandom(200_000))
    r = qos("replay", junk, "--sink", tmp_path / "o", "--quiet")
    assert "rejected" in r.stdout
    rejects = pq.read_table(tmp_path / "o" / "rejects").to_pylist()
    assert len(rejects) > 100 and all(len(x["payload"]) <= 4096 for x in rejects)


def test_unwritable_sink_is_one_line_error(generated, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = qos("replay", generated, "--sink", blocker / "sub", check=False)
    lines = error_lines(r.stderr)
    assert r.returncode != 0 and len(lines) == 1 and ("sink" in lines[0] or "directory" in lines[0])


def test_replay_config_file_and_environment_equal_flags(generated, tmp_path):
    """qos replay reads the daemon's config file and QOS_* environment: the
    same settings given as flags, in a file or in the environment write the
    same bytes; a key replay has no use for (brokers) is accepted, a bad value
    is one line naming the key, its origin and the expected form."""
    qos("replay", generated, "--sink", tmp_path / "flags", "--window", "10m", "--zstd-level", "0", "--quiet")
    cfg = tmp_path / "qos.yaml"
    cfg.write_text(f"sink: {tmp_path / 'file'}\nwindow: 10m\nzstd_level: 0\nbrokers: kafka:9092\n")
    qos("replay", generated, "--config", cfg, "--quiet")
    env = dict(os.environ, QOS_WINDOW="10m", QOS_ZSTD_LEVEL="0", QOS_SINK=str(tmp_path / "env"))
    subprocess.run([qos_bin(), "replay", str(generated), "--quiet"], check=True, capture_output=True, env=env)
    flags = tree(tmp_path / "flags")
    assert flags and tree(tmp_path / "file") == flags and tree(tmp_path / "env") == flags
    assert flags != tree_of_default(generated, tmp_path)  # the settings did change the output
    bad = dict(os.environ, QOS_ZSTD_LEVEL="fast")
    r = subprocess.run([qos_bin(), "replay", str(generated), "--sink", str(tmp_path / "bad")],
                       capture_output=True, text=True, env=bad)
    lines = error_lines(r.stderr)
    assert r.returncode != 0 and lines == [
        "qos: error: zstd_level: 'fast' (from environment variable QOS_ZSTD_LEVEL) is not an integer from 0 (uncompressed) to 22"]


def tree_of_default(generated, tmp_path):
    qos("replay", generated, "--sink", tmp_path / "default", "--quiet")
    return tree(tmp_path / "default")
