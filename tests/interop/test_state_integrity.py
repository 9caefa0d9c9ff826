"""Faults of the daemon's state and sink, as separate qos processes against
the embedded broker (README "The daemon": state and sink integrity): lost
or corrupt checkpoints, another Kafka cluster, a sink deleted under a
running daemon, a second demo into the first one's output. Each must be
refused with one line naming the file or condition and the fix, never
counted twice in silence — on a local directory and on s3:// alike
(docs/object-storage.md "Tests")."""
import signal
import subprocess
import time

import pytest
import qos_tables
from conftest import qos, qos_bin
from test_daemon import Broker

GEN = ["--seed", "29", "--sessions", "900", "--rate", "2000", "--start-ms", "1767225600000"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    base = tmp_path_factory.mktemp("state")
    broker = Broker()
    qos("generate", *GEN, "--kafka", broker.address, "--rate", "max")
    qos("generate", *GEN, "--out", base / "in.ndjson")
    qos("replay", base / "in.ndjson", "--sink", base / "replay", "--quiet")
    yield broker, qos_tables.load(base / "replay"), base
    broker.stop()


def run(broker, sink, *extra, check=False):
    """qos run to `sink` (a conftest LocalSink or S3Sink) until caught up."""
    return qos("run", "--brokers", broker.address, "--group", f"g-{sink.name}", "--sink", sink.address,
               "--idle-timeout", "2s", "--metrics-port", "off", "--until-caught-up", *extra, check=check, timeout=300,
               env=sink.env)


def error_line(r):
    lines = [l for l in r.stderr.splitlines() if l.startswith("qos: error")]
    assert r.returncode != 0 and len(lines) == 1, (r.returncode, r.stderr)
    return lines[0]


def manifests(sink):
    """The sink's manifests, oldest first (relative paths)."""
    rels = [r for r in sink.files("_qos/manifests") if r.endswith(".manifest")]
    return sorted(rels, key=lambda r: (sink.mtime(r), r))


def completed_sink(loaded, new_sink, name):
    broker, expected, _ = loaded
    sink = new_sink(name)
    r = run(broker, sink)
    assert r.returncode == 0, r.stderr
    assert not qos_tables.diff(sink.load(), expected)
    return sink


# Each runs on a local directory and on s3:// (conftest `storage`).

def test_deleted_newest_manifest_is_refused_then_accepted_once(loaded, new_sink):
    broker, _, _ = loaded
    sink = completed_sink(loaded, new_sink, "lost-manifest")
    sink.delete(manifests(sink)[-1])
    line = error_line(run(broker, sink))
    assert "--accept-state-loss" in line and "sequence" in line and "newest manifest" in line, line
    assert sink.display("_qos/ledger/") in line, line
    r = run(broker, sink, "--accept-state-loss")
    assert r.returncode == 0 and "accepting state loss" in r.stderr, r.stderr
    # Needed once: the state now covers the sink again.
    r = run(broker, sink)
    assert r.returncode == 0, r.stderr


def test_deleted_state_directory_is_refused_then_accepted(loaded, new_sink):
    broker, _, _ = loaded
    sink = completed_sink(loaded, new_sink, "lost-qos")
    sink.delete_tree("_qos")
    line = error_line(run(broker, sink))
    assert "no checkpoint state" in line and "--accept-state-loss" in line and f"(e.g. '{sink.address}/" in line, line
    r = run(broker, sink, "--accept-state-loss")
    assert r.returncode == 0 and "accepting state loss" in r.stderr, r.stderr


def test_flipped_byte_in_a_manifest_is_refused_naming_it(loaded, new_sink):
    broker, _, _ = loaded
    sink = completed_sink(loaded, new_sink, "flipped")
    newest = manifests(sink)[-1]
    data = bytearray(sink.read(newest))
    data[len(data) // 2] ^= 0x10
    sink.write(newest, bytes(data))
    line = error_line(run(broker, sink))
    assert sink.display(newest) in line and "CRC32C mismatch" in line and "move it away" in line, line


def test_other_kafka_cluster_is_refused(loaded, new_sink):
    broker, _, _ = loaded
    sink = completed_sink(loaded, new_sink, "cluster")
    other = Broker()
    try:
        line = error_line(run(other, sink))
        assert "Kafka cluster" in line and "--accept-state-loss" in line and sink.display("_qos") in line, line
    finally:
        other.stop()


def test_sink_deleted_under_running_daemon_stops_it(loaded, new_sink):
    broker, _, _ = loaded
    sink = new_sink("deleted")
    p = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", sink.name, "--sink", sink.address,
                          "--idle-timeout", "2s", "--checkpoint-interval", "1s", "--metrics-port", "off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=sink.env)
    try:
        deadline = time.monotonic() + 120
        while not [f for f in sink.files("overall") if f.endswith(".parquet")]:
            assert time.monotonic() < deadline and p.poll() is None, "no output"
            time.sleep(0.2)
        sink.delete_tree()
        try:
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=30)
            pytest.fail(f"the daemon kept running with its sink deleted:\n{err}")
        line = error_line(subprocess.CompletedProcess(p.args, p.returncode, "", err))
        assert "was deleted" in line and sink.address in line, line
    finally:
        if p.poll() is None:
            p.kill()


def test_second_demo_starts_from_a_clean_sink(tmp_path):
    sink = tmp_path / "demo"
    args = ["demo", "--sink", sink, "--duration", "8", "--rate", "300", "--speed", "100", "--partitions", "2"]
    first = qos(*args, timeout=120)
    assert list(sink.glob("overall/**/*.parquet")), first.stdout
    second = qos(*args, timeout=120)
    assert "clearing the previous demo's output" in second.stdout, second.stdout + second.stderr
    # A directory the demo did not write is refused, not cleared.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    line = error_line(qos("demo", "--sink", foreign, "--duration", "1", check=False, timeout=60))
    assert "did not write" in line and (foreign / "keep.txt").exists(), line
