"""qos run against the embedded broker over real TCP, with qos as separate
processes: end to end, crashes (SIGKILL), rebalance, bad input, operator
errors. Each compares the daemon's tables with `qos replay` of the same
beacons, value for value (qos_tables merges each window's files)."""
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import qos_tables
from conftest import qos, qos_bin

GEN = ["--seed", "17", "--sessions", "2800", "--rate", "2000", "--start-ms", "1767225600000",
       "--duplicate-fraction", "0.01", "--malformed-fraction", "0.002"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, partitions=6, topics=("beacons",)):
        self.port = free_port()
        self.proc = subprocess.Popen([qos_bin(), "broker", "--port", str(self.port), "--partitions", str(partitions),
                                      *[a for t in topics for a in ("--topic", t)]],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        assert "listening" in line, line
        self.address = f"127.0.0.1:{self.port}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A broker holding the generated beacons, and the replay of the same beacons."""
    base = tmp_path_factory.mktemp("daemon")
    broker = Broker()
    qos("generate", *GEN, "--kafka", broker.address, "--rate", "max")
    data = base / "beacons.ndjson"
    qos("generate", *GEN, "--out", data)
    lines = sum(1 for _ in open(data, "rb"))
    assert lines > 190_000
    qos("replay", data, "--sink", base / "replay", "--quiet")
    expected = qos_tables.load(base / "replay")
    yield broker, expected, base
    broker.stop()


def wait_for_line(proc, needle, seconds=120):
    """Reads a daemon's stderr until a line holds `needle`; returns the lines read."""
    head = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        head.append(line)
        if not line or needle in line:
            break
    assert any(needle in l for l in head), "".join(head)
    return head


def run(broker, sink, group, *extra, check=True, timeout=600, env=None):
    return qos("run", "--brokers", broker.address, "--group", group, "--sink", sink,
               "--idle-timeout", "2s", "--metrics-port", "0", *extra, check=check, timeout=timeout, env=env)


def assert_same(sink, expected):
    got = qos_tables.load(sink)
    problems = qos_tables.diff(got, expected)
    assert not problems, "\n".join(problems)


def test_end_to_end_equals_replay(loaded):
    broker, expected, base = loaded
    r = run(broker, base / "e2e", "e2e", "--until-caught-up")
    assert "caught up" in r.stderr
    assert_same(base / "e2e", expected)
    rejects = Counter(row["reason"] for row in pq.read_table(base / "e2e" / "rejects").to_pylist())
    assert sum(rejects.values()) > 100 and len(rejects) >= 5


def visible_counts_no_beacon_twice(sink, expected):
    """Right after a kill: no session row twice, and no additive number of
    any group above its final value (a double count would exceed it)."""
    got = qos_tables.load(sink)
    rows = got.get(("sessions",), [])
    assert len(rows) == len(set(rows)), "a session row is visible twice"
    assert Counter(rows) - Counter(expected[("sessions",)]) == Counter(), "a session row that should not exist"
    for key, values in got.items():
        if len(key) == 1:
            continue
        want = expected.get(key, {})
        for col, v in values.items():
            if isinstance(v, int) and v > want.get(col, 0):
                raise AssertionError(f"{key} {col}: visible {v} > final {want.get(col, 0)}")


def compaction_in_progress(sink):
    """A compaction holds its hour directory's lease from before its staging
    until after its swap (README "Late data and compaction")."""
    return any((sink / "_qos" / "compact").glob("*.lease"))


def test_sigkill_at_random_instants_loses_and_duplicates_nothing(loaded):
    """10 kills: at random instants, and every other one as soon as a
    compaction is in progress (1-minute windows and a low --compact-files make
    them frequent; the hidden --test-compaction-pause-ms widens each around
    its swap). Compared with a replay at the same window."""
    broker, _, base = loaded
    qos("replay", base / "beacons.ndjson", "--sink", base / "replay1m", "--window", "1m", "--quiet")
    expected = qos_tables.load(base / "replay1m")
    sink = base / "crash"
    rng = random.Random(20261125)
    during = 0
    for i in range(10):
        p = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "crash", "--sink", str(sink),
                              "--idle-timeout", "2s", "--checkpoint-interval", "1s", "--metrics-port", "0",
                              "--window", "1m", "--compact-files", "3", "--late-flush-interval", "1s",
                              "--test-compaction-pause-ms", "300",
                              # A killed member leaves the group after this (the mock broker waits for it).
                              "--kafka", "session.timeout.ms=6000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i % 2 == 1:
            deadline = time.time() + 60
            time.sleep(rng.uniform(0.5, 1.5))
            while not compaction_in_progress(sink) and time.time() < deadline:
                time.sleep(0.01)
        else:
            time.sleep(rng.uniform(1.0, 4.0))
        during += compaction_in_progress(sink)
        p.send_signal(signal.SIGKILL)
        p.wait()
        visible_counts_no_beacon_twice(sink, expected)
    assert during >= 3, f"only {during} kills landed during a compaction"
    run(broker, sink, "crash", "--until-caught-up", "--window", "1m")
    assert_same(sink, expected)
    leftovers = [p for p in sink.rglob("*.parquet") if "_staging" in str(p)]
    assert not leftovers
    # Every killed compaction was finished or rolled back by a later start.
    unfinished = [p.name for p in (sink / "_qos" / "compact").iterdir() if p.name != "trash"]
    assert not unfinished, unfinished


def test_rebalance_two_instances_equal_one(loaded):
    broker, expected, base = loaded
    sink = base / "rebalance"
    a = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "rb", "--sink", str(sink),
                          "--idle-timeout", "2s", "--instance", "a", "--metrics-port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    b = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "rb", "--sink", str(sink),
                          "--idle-timeout", "2s", "--instance", "b", "--until-caught-up", "--metrics-port", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    a.send_signal(signal.SIGTERM)
    _, a_err = a.communicate(timeout=30)
    assert a.returncode == 0, a_err
    assert "revoked" in a_err or "stopped" in a_err
    _, b_err = b.communicate(timeout=600)
    assert b.returncode == 0 and "caught up" in b_err, b_err
    assert "assigned" in b_err
    assert_same(sink, expected)


def test_two_groups_on_one_sink_stop_instead_of_counting_twice(loaded):
    """Two daemons in different --groups on one sink each read every
    partition: before the sink's fence (docs/architecture.md "Fencing")
    every number came out twice. Now the one that checkpoints second stops
    with one line, and the tables end equal to the replay. Local sink only:
    both start at once on an empty sink and create its identity
    (`_qos/sink-id`) conditionally, which moto, unlike S3, does not decide
    atomically (CheckpointTests.daemonsStartedAtOnceOnAnEmptySinkShareOneIdentity)."""
    broker, expected, base = loaded
    sink = base / "two-groups"
    procs = {g: subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", g, "--sink", str(sink),
                                  "--idle-timeout", "2s", "--instance", g, "--checkpoint-interval", "1s",
                                  "--metrics-port", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for g in ("tg1", "tg2")}
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and all(p.poll() is None for p in procs.values()):
            time.sleep(0.2)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        errs = {g: p.communicate(timeout=60)[1] for g, p in procs.items()}
    # One stops; both, when their checkpoints crossed in the same moment
    # (each withdraws its own).
    stopped = [g for g, p in procs.items() if p.returncode == 1]
    assert stopped, {g: (p.returncode, errs[g][-600:]) for g, p in procs.items()}
    for g in stopped:
        lines = [l for l in errs[g].splitlines() if l.startswith("qos: error")]
        assert len(lines) == 1 and "two processes are reading it into one sink" in lines[0], errs[g]
    for g in set(procs) - set(stopped):
        assert procs[g].returncode == 0, errs[g]
    r = run(broker, sink, "tg1", "--instance", "tg-final", "--until-caught-up")
    assert "caught up" in r.stderr
    assert_same(sink, expected)


def test_one_process_per_instance_id_on_a_sink(loaded):
    """Two processes with one --instance on one sink overwrote each other's
    manifests (same epoch numbers), and the restart counted half the beacons
    twice. The second process is refused now, in one line; once the first
    stops, the id is free and the tables end equal to the replay."""
    broker, expected, base = loaded
    sink = base / "one-instance"
    a = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "oi", "--sink", str(sink),
                          "--idle-timeout", "2s", "--instance", "same", "--metrics-port", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(a, "consuming")
        b = run(broker, sink, "oi", "--instance", "same", "--until-caught-up", check=False, timeout=120)
        lines = [l for l in b.stderr.splitlines() if l.startswith("qos: error")]
        assert b.returncode == 1 and len(lines) == 1 and "already running" in lines[0], b.stderr
        # Nor may a compaction swap hour directories under it.
        c = qos("reaggregate", "--sink", sink, "--all-tables", "--compact", check=False, timeout=120)
        lines = [l for l in c.stderr.splitlines() if l.startswith("qos: error")]
        assert c.returncode == 1 and len(lines) == 1 and "qos run is running on sink" in lines[0], c.stderr
    finally:
        a.send_signal(signal.SIGTERM)
        _, err = a.communicate(timeout=60)
    assert a.returncode == 0, err
    r = run(broker, sink, "oi", "--instance", "same", "--until-caught-up")
    assert "caught up" in r.stderr
    assert_same(sink, expected)
    assert not list((sink / "_qos" / "instances").iterdir()), "a stopped daemon leaves no lock file"


def test_operator_errors_are_one_line(loaded, tmp_path):
    broker, _, _ = loaded
    cases = [
        (["run", "--brokers", f"127.0.0.1:{free_port()}", "--sink", tmp_path / "o"], "cannot reach"),
        (["run", "--brokers", broker.address, "--topic", "nope", "--sink", tmp_path / "o"], "does not exist"),
        (["run", "--brokers", broker.address, "--sink", "/proc/qos-sink"], "sink"),
        (["run", "--brokers", broker.address, "--sink", tmp_path / "o", "--kafka", "no.such.property=1"], "no.such.property"),
    ]
    config = tmp_path / "bad.yaml"
    config.write_text("brokers: localhost:9092\nwindw: 2m\n")
    cases.append((["run", "--config", config, "--sink", tmp_path / "o"], "windw"))
    # The config file and the environment are read: a topic named only there is used.
    good = tmp_path / "good.yaml"
    good.write_text(f"brokers: {broker.address}\ntopic: from-config\nkafka:\n  client.id: qos-test\n")
    cases.append((["run", "--config", good, "--sink", tmp_path / "o"], "'from-config' does not exist"))
    for args, needle in cases:
        r = qos(*args, "--metrics-port", "off", check=False, timeout=60)
        assert r.returncode != 0, args
        lines = [l for l in r.stderr.splitlines() if l.startswith("qos: error")]
        assert len(lines) == 1 and needle in lines[0], (args, r.stderr)
    env = dict(os.environ, QOS_TOPIC="from-env", QOS_BROKERS=broker.address)
    r = subprocess.run([qos_bin(), "run", "--config", good, "--sink", str(tmp_path / "o"), "--metrics-port", "off"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "'from-env' does not exist" in r.stderr, r.stderr


def test_disk_full_sink_fails_cleanly_and_resumes_exactly_once(loaded, tmp_path):
    """The sink's filesystem fills up mid-run (a 512 KiB tmpfs): the daemon
    stops with one line naming the file and the cause, nothing partial is
    visible, and once there is room again a restart finishes with the tables
    of the fault-free replay — nothing lost, nothing counted twice. Needs
    root to mount the tmpfs (skipped otherwise)."""
    broker, expected, _ = loaded
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        sink = mnt / "sink"
        r = run(broker, sink, "diskfull", "--until-caught-up", check=False)
        assert r.returncode != 0, r.stderr
        lines = [l for l in r.stderr.splitlines() if l.startswith("qos: error")]
        assert len(lines) == 1 and "No space left on device" in lines[0], r.stderr
        visible_counts_no_beacon_twice(sink, expected)
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
        r = run(broker, sink, "diskfull", "--until-caught-up")
        assert "caught up" in r.stderr
        assert_same(sink, expected)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_broker_outage_is_waited_out(tmp_path):
    """The broker goes down for 10 s mid-run: the daemon logs it, waits,
    resumes, and the output equals the fault-free replay."""
    broker = Broker()
    try:
        gen = ["--seed", "23", "--sessions", "900", "--rate", "2000", "--start-ms", "1767225600000"]
        qos("generate", *gen, "--kafka", broker.address, "--rate", "max")
        qos("generate", *gen, "--out", tmp_path / "in.ndjson")
        qos("replay", tmp_path / "in.ndjson", "--sink", tmp_path / "replay", "--quiet")
        sink = tmp_path / "outage"
        p = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "outage", "--sink", str(sink),
                              "--idle-timeout", "2s", "--until-caught-up", "--metrics-port", "off"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # The outage starts once the daemon owns its partitions (a fixed sleep
        # lost that race on a loaded machine and the daemon never met the outage).
        head = wait_for_line(p, "assigned partitions")
        broker.signal(signal.SIGUSR1)
        time.sleep(10)
        broker.signal(signal.SIGUSR2)
        _, err = p.communicate(timeout=600)
        err = "".join(head) + err
        assert p.returncode == 0, err
        assert "kafka:" in err and "retrying" in err, err
        assert_same(sink, qos_tables.load(tmp_path / "replay"))
    finally:
        broker.stop()


def test_healthz_answers_beside_idle_and_slow_clients(tmp_path):
    """A Kubernetes liveness probe must not fail because other clients hold
    connections open: 200 idle connections and one that sends its request a
    byte at a time leave /healthz and /metrics answering (within 5 s, the
    bound of a default probe)."""
    import urllib.request
    broker = Broker(partitions=1)
    p = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "probe", "--sink", str(tmp_path / "o"),
                          "--idle-timeout", "2s", "--checkpoint-interval", "1s", "--metrics-port", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    held = []
    try:
        port = None
        for _ in range(50):
            line = p.stderr.readline()
            if "/healthz on 127.0.0.1:" in line:
                port = int(line.split("127.0.0.1:")[1].split('"')[0])
                break
        assert port, "no metrics port logged"
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(200)]
        slow = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(slow)
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                assert r.status == 200 and r.read() == b"ok\n"
            slow.sendall(b"a")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.status == 200
        for _ in range(60):  # the first checkpoint comes after the partition assignment
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                if b"qos_interned_strings{interner=\"dimensions\"}" in r.read():
                    break
            time.sleep(0.5)
        else:
            raise AssertionError("no interner gauge in /metrics after 30 s")
    finally:
        for s in held:
            s.close()
        p.terminate()
        p.wait(30)
        broker.stop()


def test_poison_beacons_are_rejected_and_the_daemon_keeps_running(tmp_path, new_sink):
    """Beacons whose numbers overflowed the engine's sums (README "Numeric
    safety") among valid traffic of the same sessions: `qos run` must not
    trap (it did, at the same offset after every restart), the poison must
    be reject rows, and everything else must count as `qos replay` counts it.
    On a local directory and on s3:// (the rejects table is in the sink)."""
    data = tmp_path / "valid.ndjson"
    qos("generate", "--seed", "23", "--sessions", "40", "--start-ms", "1767225600000", "--out", data)
    lines = data.read_text().splitlines()
    assert 2000 < len(lines) < 10_000
    poisoned = []
    for n, line in enumerate(lines):
        poisoned.append(line)
        if n in (len(lines) // 3, len(lines) // 2):
            b = json.loads(line)
            base = {"ts": b["ts"], "session_id": b["session_id"]}
            poisoned.append(json.dumps({"event": "heartbeat", **base, "played_ms": 9000000000000000000, "bitrate_kbps": 3000}))
            poisoned.append(json.dumps({"event": "bitrate_change", **base, "played_ms": 1000, "bitrate_kbps": 4000000000000000000}))
            poisoned.append(json.dumps({"event": "segment", **base, "bytes": 5000000000000000000, "download_ms": 100}))
    data = tmp_path / "poisoned.ndjson"
    data.write_text("\n".join(poisoned) + "\n")
    qos("replay", data, "--sink", tmp_path / "replay", "--quiet")
    broker = Broker(partitions=3)
    try:
        qos("generate", "--kafka", broker.address, "--input", data, "--rate", "max")
        sink = new_sink("daemon")
        r = run(broker, sink.address, "poison", "--until-caught-up", env=sink.env)
    finally:
        broker.stop()
    assert r.returncode == 0 and "caught up" in r.stderr
    reasons = Counter(row["reason"] for row in sink.table("rejects").to_pylist())
    assert reasons == {"invalid_value:played_ms": 2, "invalid_value:bitrate_kbps": 2, "invalid_value:bytes": 2}
    problems = qos_tables.diff(sink.load(), qos_tables.load(tmp_path / "replay"))
    assert not problems, "\n".join(problems)


def test_beacons_and_cdn_logs_topics_in_one_daemon_equal_their_replays(tmp_path, new_sink):
    """--topic beacons --topic cdnlogs:edgecast: one consumer group, one
    pipeline; the beacon tables equal a replay of the beacons and cdn_edge a
    replay of the CDN log records (each topic checkpointed on its own). On a
    local directory and on s3:// (cdn_edge is in the sink)."""
    gen = ["--seed", "23", "--sessions", "600", "--rate", "2000", "--start-ms", "1767225600000",
           "--slow-pop", "fastly/ams", "--duplicate-fraction", "0.01"]
    broker = Broker(partitions=3, topics=("beacons", "cdnlogs"))
    try:
        qos("generate", *gen, "--kafka", broker.address, "--rate", "max")
        qos("generate", *gen, "--kafka", broker.address, "--rate", "max", "--cdn-logs", "edgecast")
        qos("generate", *gen, "--out", tmp_path / "beacons.ndjson")
        qos("generate", *gen, "--cdn-logs", "edgecast", "--out", tmp_path / "cdn.ndjson")
        qos("replay", tmp_path / "beacons.ndjson", "--sink", tmp_path / "replay", "--quiet")
        qos("replay", "--format", "edgecast", tmp_path / "cdn.ndjson", "--sink", tmp_path / "replay-cdn", "--quiet")
        sink = new_sink("daemon")
        r = run(broker, sink.address, "two-topics", "--topic", "beacons", "--topic", "cdnlogs:edgecast",
                "--until-caught-up", env=sink.env)
        assert "assigned partitions beacons[0, 1, 2] cdnlogs[0, 1, 2]" in r.stderr, r.stderr
        got = sink.load()
        want = qos_tables.load(tmp_path / "replay")
        cdn = {k: v for k, v in qos_tables.load(tmp_path / "replay-cdn", tables=["cdn_edge"]).items() if k[0] == "cdn_edge"}
        assert len(cdn) > 20, "the CDN replay wrote cdn_edge"
        want.update(cdn)
        problems = qos_tables.diff(got, want)
        assert not problems, "\n".join(problems)
        # Each topic's partitions are checkpointed under their own name.
        manifests = [f for f in sink.files("_qos/manifests") if f.endswith(".manifest")]
        assert manifests
    finally:
        broker.stop()


def test_librdkafka_sizes_zstd_message_sets_with_the_programs_function():
    """The qos binary exports its ZSTD_getFrameContentSize and the dynamic
    linker binds librdkafka's calls to it, not to libzstd's: without that,
    librdkafka 2.0.x decompresses each zstd message set up to three times
    (docs/architecture.md "Kafka: zstd message sets"). Seen through glibc's
    own report of its symbol bindings, of the binary CI built."""
    r = subprocess.run([qos_bin(), "--help"], env={**os.environ, "LD_DEBUG": "bindings"},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    bindings = [line for line in r.stderr.splitlines()
                if "librdkafka" in line.split(" to ")[0] and "`ZSTD_getFrameContentSize'" in line]
    assert bindings, "librdkafka's ZSTD_getFrameContentSize binding not reported"
    for line in bindings:
        target = line.split(" to ")[1].split(" [")[0]
        assert os.path.samefile(target, qos_bin()), line
