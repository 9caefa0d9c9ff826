"""The cmcd format through the CLI as a user runs it: `qos replay --format
cmcd` of CMCD reports gives the rows the same sessions give as beacon JSON,
`qos generate --format cmcd` replays like the generator's JSON, and `qos run
--topic cmcd:cmcd` equals the replay of the same reports, also when it is
killed and started again (docs/cmcd.md)."""
import random
import re
import signal
import subprocess
import time
from collections import defaultdict
from contextlib import contextmanager

import pyarrow.parquet as pq
import pytest

import qos_tables
from conftest import qos, qos_bin
from test_daemon import Broker, run

T = 1767225600000   # 2026-01-01T00:00:00Z
C = 'sid="s1",cid="movie",st=v,cdn="cdnA"'

# One session (and a short second one) as a CMCD v2 player reports it (event
# and response mode) and as the beacon JSON that means the same, written
# from docs/cmcd.md's mapping.
CMCD = [
    f"{C},ts={T},e=ps,sta=s",
    f"{C},br=(3000;v 128;a),ts={T + 1200},e=ps,sta=p,msd=1200",
    f'{C},br=(3000;v),ts={T + 1500},e=rr,rc=200,ttfb=40,ttlb=180,ot=v,d=4000,url="https://cdn.example/seg1.m4s"',
    f"{C},br=(3000;v),ts={T + 31200},e=t,pt=30000",
    f"{C},br=(3000;v),ts={T + 40000},e=ps,sta=r",
    f"{C},br=(3000;v),ts={T + 42000},e=ps,sta=p",
    f"{C},br=(3000;v),ts={T + 43000},e=rr,rc=503,ttfb=900,ttlb=950,ot=v",
    f"{C},br=(1500;v),ts={T + 50000},e=bc",
    f'{C},br=(1500;v),ts={T + 60000},e=e,ec=("MEDIA_ERR_NETWORK")',
    f"{C},br=(1500;v),ts={T + 70000},e=ps,sta=e",
    f'sid="s2",cid="clip",st=l,ts={T + 5000},e=ps,sta=p,msd=900',
    f'sid="s2",cid="clip",st=l,ts={T + 65000},e=ps,sta=q',
]
J = '"session_id":"s1","video_id":"movie","live":false,"cdn":"cdnA"'
JSON = [
    f'{{"event":"view_start","ts":{T},{J}}}',
    f'{{"event":"play_start","ts":{T + 1200},{J},"bitrate_kbps":3000}}',
    f'{{"event":"segment","ts":{T + 1500},{J},"bitrate_kbps":3000,"played_ms":300,"http_status":200,"ttfb_ms":40,"download_ms":180}}',
    f'{{"event":"heartbeat","ts":{T + 31200},{J},"bitrate_kbps":3000,"played_ms":29700,"playhead_ms":30000}}',
    f'{{"event":"rebuffer_start","ts":{T + 40000},{J},"bitrate_kbps":3000,"played_ms":8800}}',
    f'{{"event":"rebuffer_end","ts":{T + 42000},{J},"bitrate_kbps":3000}}',
    f'{{"event":"segment","ts":{T + 43000},{J},"bitrate_kbps":3000,"played_ms":1000,"http_status":503,"ttfb_ms":900,"download_ms":950}}',
    f'{{"event":"bitrate_change","ts":{T + 50000},{J},"bitrate_kbps":1500,"played_ms":7000}}',
    f'{{"event":"error","ts":{T + 60000},{J},"bitrate_kbps":1500,"played_ms":10000,"error_code":"MEDIA_ERR_NETWORK","fatal":false}}',
    f'{{"event":"view_end","ts":{T + 70000},{J},"bitrate_kbps":1500,"played_ms":10000,"reason":"ended"}}',
    f'{{"event":"view_start","ts":{T + 4100},"session_id":"s2","video_id":"clip","live":true}}',
    f'{{"event":"play_start","ts":{T + 5000},"session_id":"s2","video_id":"clip","live":true}}',
    f'{{"event":"view_end","ts":{T + 65000},"session_id":"s2","video_id":"clip","live":true,"played_ms":60000,"reason":"exit"}}',
]
TABLES = ["overall", "video", "cdn"]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_cmcd_replay_equals_the_same_sessions_as_json(tmp_path):
    qos("replay", "--format", "cmcd", write(tmp_path / "s.cmcd", CMCD), "--sink", tmp_path / "cmcd", "--quiet")
    qos("replay", write(tmp_path / "s.ndjson", JSON), "--sink", tmp_path / "json", "--quiet")
    got = qos_tables.load(tmp_path / "cmcd", tables=TABLES)
    want = qos_tables.load(tmp_path / "json", tables=TABLES)
    assert {k[0] for k in want} == set(TABLES)
    problems = qos_tables.diff(got, want)
    assert not problems, "\n".join(problems)
    overall = [v for k, v in got.items() if k[0] == "overall"]
    total = lambda c: sum(v.get(c, 0) for v in overall)
    assert (total("views"), total("plays"), total("requests"), total("failed_requests")) == (2, 2, 2, 1)
    assert total("playing_ms") == 66800 + 60000 and total("rebuffer_ms") == 2000


def test_a_session_split_across_two_files_continues(tmp_path):
    """qos replay reads its files as one stream: a session whose reports go
    on in the next file is not started again there."""
    qos("replay", "--format", "cmcd", write(tmp_path / "all.cmcd", CMCD), "--sink", tmp_path / "one", "--quiet")
    a, b = write(tmp_path / "a.cmcd", CMCD[:5]), write(tmp_path / "b.cmcd", CMCD[5:])
    qos("replay", "--format", "cmcd", a, b, "--sink", tmp_path / "two", "--quiet")
    problems = qos_tables.diff(qos_tables.load(tmp_path / "two", tables=TABLES),
                               qos_tables.load(tmp_path / "one", tables=TABLES))
    assert not problems, "\n".join(problems)


# What CMCD carries of the generator's traffic (docs/cmcd.md "Generating CMCD"):
# counts are exact; played time is derived from the states, the PoP, bytes,
# cache status and device fields are not carried.
COUNTS = ["views", "plays", "vsf", "vpf", "ebvs", "requests", "failed_requests", "http_5xx", "rebuffer_count",
          "seek_count", "sessions_ended", "startup_ms_count", "startup_ms_sum", "upshifts", "downshifts"]


def by_group(load, table):
    """{(window, dims without pop): {count column: sum}} of one table."""
    out = defaultdict(lambda: defaultdict(int))
    for k, v in load.items():
        if k[0] != table:
            continue
        dims = k[2][:1] if table == "cdn" else k[2]
        for c in COUNTS:
            if c in v:
                out[(k[1], dims)][c] += v[c]
    return {k: {c: n for c, n in v.items() if n} for k, v in out.items()}


def test_generated_cmcd_replays_like_the_generated_json(tmp_path):
    gen = ["--seed", "11", "--sessions", "300", "--rate", "300"]
    qos("generate", *gen, "--format", "cmcd", "--out", tmp_path / "g.cmcd")
    qos("generate", *gen, "--out", tmp_path / "g.ndjson")
    qos("replay", "--format", "cmcd", tmp_path / "g.cmcd", "--sink", tmp_path / "cmcd", "--quiet")
    qos("replay", tmp_path / "g.ndjson", "--sink", tmp_path / "json", "--quiet")
    got, want = qos_tables.load(tmp_path / "cmcd", tables=TABLES), qos_tables.load(tmp_path / "json", tables=TABLES)
    for table in TABLES:
        g, w = by_group(got, table), by_group(want, table)
        assert len(w) > 10, table
        bad = [(k, g.get(k), w.get(k)) for k in sorted(set(g) | set(w), key=str) if g.get(k) != w.get(k)]
        assert not bad, f"{table}: {bad[:3]}"
    played = lambda load: sum(v.get("playing_ms", 0) for k, v in load.items() if k[0] == "overall")
    assert abs(played(got) - played(want)) <= 0.05 * played(want)


@contextmanager
def cmcd_topic(tmp_path, seed, sessions):
    """A 3-partition `cmcd` topic in the embedded broker holding generated
    CMCD reports, and `tmp_path/replay`: `qos replay --format cmcd` of the
    same reports. Yields the broker."""
    # --rate max paces event time as the default rate (2000/s) does.
    gen = ["--seed", str(seed), "--sessions", str(sessions), "--rate", "2000", "--start-ms", str(T), "--format", "cmcd"]
    broker = Broker(partitions=3, topics=("cmcd",))
    try:
        qos("generate", *gen, "--kafka", broker.address, "--topic", "cmcd", "--rate", "max")
        qos("generate", *gen, "--out", tmp_path / "g.cmcd")
        qos("replay", "--format", "cmcd", tmp_path / "g.cmcd", "--sink", tmp_path / "replay", "--quiet")
        yield broker
    finally:
        broker.stop()


def test_run_reads_a_cmcd_topic_like_the_replay(tmp_path):
    """qos run --topic cmcd:cmcd over three partitions (each with its own
    CMCD state) writes what qos replay --format cmcd writes for the same
    reports."""
    with cmcd_topic(tmp_path, seed=12, sessions=300) as broker:
        r = run(broker, tmp_path / "daemon", "cmcd", "--topic", "cmcd:cmcd", "--until-caught-up")
        assert "consuming cmcd:cmcd" in r.stderr and "assigned partitions [0, 1, 2]" in r.stderr, r.stderr
        want = qos_tables.load(tmp_path / "replay")
        assert sum(v.get("views", 0) for k, v in want.items() if k[0] == "overall") > 250
        problems = qos_tables.diff(qos_tables.load(tmp_path / "daemon"), want)
        assert not problems, "\n".join(problems)


def test_a_killed_cmcd_daemon_goes_on_from_its_checkpointed_session_state(tmp_path):
    """SIGKILL at four random instants of a `qos run` reading a CMCD topic
    (each after the run's first checkpoint; it checkpoints every second),
    then a run to the end: the tables equal
    the replay's, played time included. Each checkpoint carries the last
    state of every CMCD session (manifest version 3); without it a restart
    reads a session's next report as its first and loses the played time
    since the one before."""
    with cmcd_topic(tmp_path, seed=13, sessions=2000) as broker:
        sink = tmp_path / "killed"
        manifests = lambda: {f"{m.parent.name}/{m.name}" for m in (sink / "_qos" / "manifests").rglob("*.manifest")}
        rng = random.Random(20261201)
        for i in range(4):
            seen = manifests() if sink.exists() else set()
            # A group of its own per run: no wait for the killed member to time out
            # (the checkpoints in the sink, not the group's offsets, say where to go on).
            p = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", f"cmcd-kill-{i}",
                                  "--sink", str(sink), "--topic", "cmcd:cmcd", "--idle-timeout", "2s",
                                  "--checkpoint-interval", "1s", "--checkpoint-min-interval", "200ms",
                                  "--metrics-port", "0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Killed at a random instant after its first checkpoint (joining the group takes seconds).
            deadline = time.time() + 120
            while p.poll() is None and time.time() < deadline and not (sink.exists() and manifests() - seen):
                time.sleep(0.05)
            assert p.poll() is None and manifests() - seen, f"run {i} wrote no checkpoint"
            time.sleep(rng.uniform(0.0, 1.5))
            p.send_signal(signal.SIGKILL)
            p.wait()
        run(broker, sink, "cmcd-kill-end", "--topic", "cmcd:cmcd", "--until-caught-up")
        want = qos_tables.load(tmp_path / "replay")
        assert sum(v.get("playing_ms", 0) for k, v in want.items() if k[0] == "overall") > 0
        problems = qos_tables.diff(qos_tables.load(sink), want)
        assert not problems, "\n".join(problems[:20])


def fnv1a(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


@pytest.mark.serial  # `qos demo` runs in real time: under parallel load it may close no session in 8 s
def test_demo_posts_one_session_in_eight_as_cmcd_through_its_collector(tmp_path):
    """qos demo: the players of one session in eight (by FNV-1a of the
    session id) post CMCD over HTTP to the embedded collector; every report
    is accepted, and those sessions reach the tables through the cmcd topic.
    Timing-free: how many windows close in 8 s depends on the machine."""
    sink = tmp_path / "demo"
    r = qos("demo", "--sink", sink, "--duration", "8", "--rate", "300", "--speed", "100", "--partitions", "2", timeout=120)
    m = re.search(r"collector: (\d+) CMCD reports of (\d+) sessions posted to \S+ in (\d+) requests, (\d+) accepted", r.stdout)
    assert m, r.stdout
    reports, sessions, requests, accepted = map(int, m.groups())
    assert reports > 1000 and sessions > 50 and accepted == reports and requests < reports, r.stdout
    assert "requests failed" not in r.stdout and "not acknowledged" not in r.stdout and "MISMATCH" not in r.stdout, r.stdout
    # CMCD carries no player name: the views of the CMCD players are those
    # of player 'unknown' with a browser (from the User-Agent the report
    # carries); a Kafka session without one lost its view_start (no device).
    device = pq.read_table(sink / "device").to_pylist()
    cmcd_views = sum(r["views"] for r in device if r["player_name"] == "unknown" and r["browser"] != "unknown")
    assert 0 < cmcd_views < sum(r["views"] for r in device) / 3, device
    # Sessions closed by then: those picked for CMCD have no player name.
    rows = pq.read_table(sink / "sessions").to_pylist()
    picked = [row for row in rows if fnv1a(row["session_id"]) % 8 == 0]
    assert all(row["player_name"] == "unknown" for row in picked)
