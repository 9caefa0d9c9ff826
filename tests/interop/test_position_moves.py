"""When Kafka moves a partition's position (docs/architecture.md "When Kafka
moves a position"), against the embedded broker over real TCP: a topic
recreated under the daemon's checkpoint is read from its new start and
counted once; offsets retention deleted before the daemon got there are
counted as skipped, to the offset."""
import re

import qos_tables
from conftest import qos
from test_daemon import Broker, run

DAY_MS = 86_400_000
START = 1_767_225_600_000


def produced(result):
    return int(re.search(r"produced (\d+) messages", result.stdout + result.stderr).group(1))


def test_a_topic_recreated_under_the_checkpoint_is_read_from_its_new_start(tmp_path):
    """The daemon's checkpoint is ahead of every partition's new log: its
    records were skipped as already counted. Now each partition is read from
    offset 0 and the tables equal the replays of both topics' beacons."""
    a = ["--seed", "41", "--sessions", "500", "--start-ms", START]
    b = ["--seed", "42", "--sessions", "100", "--start-ms", START + DAY_MS]
    for name, gen in (("a", a), ("b", b)):
        qos("generate", *gen, "--out", tmp_path / f"{name}.ndjson")
        qos("replay", tmp_path / f"{name}.ndjson", "--sink", tmp_path / f"replay-{name}", "--quiet")
    expected = qos_tables.load(tmp_path / "replay-a")
    from_b = qos_tables.load(tmp_path / "replay-b")
    assert not set(expected) & {k for k in from_b if len(k) > 1}, "the two days share no window"
    for k, v in from_b.items():
        expected[k] = sorted(expected.get(k, []) + v) if len(k) == 1 else v

    sink = tmp_path / "sink"
    first = Broker(partitions=4)
    try:
        qos("generate", *a, "--kafka", first.address, "--rate", "max")
        r = run(first, sink, "recreated", "--until-caught-up", "--instance", "rc")
        assert "caught up" in r.stderr
    finally:
        first.stop()
    # The same topic again, new and shorter: every partition's log ends below the checkpoint.
    second = Broker(partitions=4)
    try:
        qos("generate", *b, "--kafka", second.address, "--rate", "max")
        # Another broker process is another cluster id: run on anyway.
        r = run(second, sink, "recreated", "--until-caught-up", "--instance", "rc", "--accept-state-loss")
    finally:
        second.stop()
    restarts = [l for l in r.stderr.splitlines() if "restarts at offset 0, below its next offset" in l]
    assert len(restarts) == 4 and all("level=error" in l for l in restarts), r.stderr
    assert "DATA LOSS" not in r.stderr, r.stderr
    problems = qos_tables.diff(qos_tables.load(sink), expected)
    assert not problems, "\n".join(problems)


def test_offsets_deleted_by_retention_are_counted_as_skipped(tmp_path):
    """The embedded broker keeps about 5 MiB per partition: a day of beacons
    sent while the daemon is away pushes the log's start past its
    checkpoint. The restart says which offsets were never read and how many,
    and reads everything from the log's new start."""
    sink = tmp_path / "sink"
    uncompressed = ["--kafka-property", "compression.codec=none", "--rate", "max"]
    broker = Broker(partitions=1)
    try:
        first = produced(qos("generate", "--seed", "43", "--sessions", "300", "--start-ms", START,
                             "--kafka", broker.address, *uncompressed))
        r = run(broker, sink, "retention", "--until-caught-up", "--instance", "rt")
        assert f"{first} messages" in r.stderr, r.stderr
        later = produced(qos("generate", "--seed", "44", "--sessions", "1500", "--start-ms", START + DAY_MS,
                             "--kafka", broker.address, *uncompressed))
        r = run(broker, sink, "retention", "--until-caught-up", "--instance", "rt")
    finally:
        broker.stop()
    loss = [l for l in r.stderr.splitlines() if "DATA LOSS: partition beacons[0]" in l]
    assert len(loss) == 1 and "level=error" in loss[0], r.stderr
    m = re.search(r"offsets (\d+) to (\d+) \((\d+)\) were never read", loss[0])
    assert m, loss[0]
    start, last, skipped = map(int, m.groups())
    assert start == first and skipped == last - start + 1 and 0 < skipped < later, loss[0]
    read = int(re.search(r"stopped after checkpoint epoch \d+: (\d+) messages", r.stderr).group(1))
    assert read + skipped == later, r.stderr
