"""The sink on object storage (docs/object-storage.md): qos writes to
s3://bucket/prefix on a real S3 API on loopback (moto in server mode,
started here), and pyarrow's own S3FileSystem reads the dataset with the
same numbers as the local sink of the same input; a daemon killed with
SIGKILL at random instants loses and duplicates nothing on S3."""
import random
import signal
import subprocess
import time
from collections import Counter

import pytest
import qos_tables
from conftest import needs_moto, qos, qos_bin
from conftest import s3_keys as keys

pytestmark = needs_moto


@pytest.fixture(scope="module")
def both(moto, generated, tmp_path_factory):
    """The generated input replayed to a local directory and to s3://qos/replay."""
    _, env, _ = moto
    local = tmp_path_factory.mktemp("s3replay") / "local"
    qos("replay", generated, "--sink", local, "--quiet")
    qos("replay", generated, "--sink", "s3://qos/replay", "--quiet", env=env)
    return local


def test_replay_to_s3_equals_the_local_sink_byte_for_byte(moto, both):
    _, _, fs = moto
    local = sorted(str(p.relative_to(both)) for p in both.rglob("*") if p.is_file())
    remote = [k[len("qos/replay/"):] for k in keys(fs, "qos/replay")]
    assert remote == local and len(local) > 50
    for rel in local[::7]:
        with fs.open_input_file(f"qos/replay/{rel}") as f:
            assert f.read() == (both / rel).read_bytes(), rel
    problems = qos_tables.diff(qos_tables.load("qos/replay", filesystem=fs), qos_tables.load(both))
    assert not problems, "\n".join(problems)


def test_inspect_reaggregate_and_report_read_s3(moto, both, tmp_path):
    _, env, _ = moto
    got = qos("inspect", "s3://qos/replay/video", env=env).stdout
    want = qos("inspect", both / "video").stdout
    assert got.replace("s3://qos/replay/video", str(both / "video")) == want
    one = sorted((both / "overall").rglob("*.parquet"))[0].relative_to(both)
    got = qos("inspect", f"s3://qos/replay/{one}", "--rows", "3", env=env).stdout
    assert got.replace(f"s3://qos/replay/{one}", str(both / one)) == qos("inspect", both / one, "--rows", "3").stdout
    qos("reaggregate", "--sink", "s3://qos/replay", "--table", "video", "--grain", "1h", "--out", tmp_path / "r_s3", env=env)
    qos("reaggregate", "--sink", both, "--table", "video", "--grain", "1h", "--out", tmp_path / "r_local")
    a = {p.relative_to(tmp_path / "r_s3"): p.read_bytes() for p in (tmp_path / "r_s3").rglob("*.parquet")}
    b = {p.relative_to(tmp_path / "r_local"): p.read_bytes() for p in (tmp_path / "r_local").rglob("*.parquet")}
    assert a == b and a
    r = qos("report", "--sink", "s3://qos/replay", "--out", tmp_path / "s3.html", "--quiet", env=env)
    assert "wrote" in r.stdout and "s3://qos/replay" in (tmp_path / "s3.html").read_text()
    # No in-place compaction on object storage (docs/object-storage.md): refused in one line, nothing touched.
    before = keys(moto[2], "qos/replay")
    r = qos("reaggregate", "--sink", "s3://qos/replay", "--table", "video", "--compact", env=env, check=False)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("qos: error: --compact is not available on an s3://"), r.stderr
    assert "--grain" in lines[0] and keys(moto[2], "qos/replay") == before


def small_gen():
    """test_daemon's generator arguments (a fixed start), fewer sessions."""
    from test_daemon import GEN
    gen = list(GEN)
    gen[gen.index("--sessions") + 1] = "600"
    return gen


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A broker holding small_gen()'s beacons, and the local replay of the same beacons."""
    from test_daemon import Broker
    base = tmp_path_factory.mktemp("s3daemon")
    data = base / "beacons.ndjson"
    qos("generate", *small_gen(), "--out", data)
    qos("replay", data, "--sink", base / "replay", "--quiet")
    broker = Broker(partitions=3)
    qos("generate", *small_gen(), "--kafka", broker.address, "--rate", "max")
    yield broker, data, qos_tables.load(base / "replay")
    broker.stop()


def run_args(broker, sink, group, *extra):
    return ["run", "--brokers", broker.address, "--group", group, "--sink", sink, "--idle-timeout", "2s",
            "--metrics-port", "0", *extra]


def test_daemon_to_s3_equals_replay_and_leaves_no_staging(moto, loaded):
    _, env, fs = moto
    broker, _, expected = loaded
    r = qos(*run_args(broker, "s3://qos/daemon", "s3"), "--until-caught-up", env=env, timeout=600)
    assert "caught up" in r.stderr, r.stderr
    problems = qos_tables.diff(qos_tables.load("qos/daemon", filesystem=fs), expected)
    assert not problems, "\n".join(problems)
    all_keys = keys(fs, "qos/daemon")
    assert not [k for k in all_keys if "/_staging/" in k]
    assert [k for k in all_keys if "/_qos/manifests/" in k] and "qos/daemon/_qos/sink-id" in all_keys


def test_two_daemons_on_one_group_and_one_s3_sink_equal_one(moto, loaded):
    """Instance a consumes alone, b joins (a rebalance), a stops, b takes
    its partitions over from the checkpoints in the bucket."""
    _, env, fs = moto
    broker, _, expected = loaded
    a = subprocess.Popen([qos_bin(), *run_args(broker, "s3://qos/two", "two", "--instance", "a")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(2)
    b = subprocess.Popen([qos_bin(), *run_args(broker, "s3://qos/two", "two", "--instance", "b", "--until-caught-up")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4)
    a.send_signal(signal.SIGTERM)
    _, a_err = a.communicate(timeout=60)
    assert a.returncode == 0, a_err
    _, b_err = b.communicate(timeout=600)
    assert b.returncode == 0 and "caught up" in b_err, b_err
    assert "assigned" in b_err
    problems = qos_tables.diff(qos_tables.load("qos/two", filesystem=fs), expected)
    assert not problems, "\n".join(problems)
    manifests = [k for k in keys(fs, "qos/two/_qos/manifests") if k.endswith(".manifest")]
    assert {k.split("/")[-2] for k in manifests} <= {"a", "b"} and any("/b/" in k for k in manifests)


class FaultyStore:
    """A loopback proxy in front of moto that, per request (seeded): answers
    503 SlowDown without forwarding, forwards then answers 500 (the store
    acted, its reply is lost), or forwards after a delay (a slow store)."""

    def __init__(self, upstream_port, seed, fail=0.05, lose=0.05, slow=0.05, delay=0.3, deny=False):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        rng = random.Random(seed)
        lock = threading.Lock()
        self.counts = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, headers, body):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def handle_any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if deny:  # as AWS answers an unknown access key
                    return self.reply(403, [("Content-Type", "application/xml")],
                                      b"<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided "
                                      b"does not exist in our records.</Message></Error>")
                with lock:
                    x = rng.random()
                fault = "fail" if x < fail else "lose" if x < fail + lose else "slow" if x < fail + lose + slow else "ok"
                with lock:
                    outer.counts[fault] += 1
                if fault == "fail":
                    return self.reply(503, [("Content-Type", "application/xml")],
                                      b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>")
                if fault == "slow":
                    time.sleep(delay)
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = self.headers.get("Host")
                conn.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None,
                             headers=headers)
                r = conn.getresponse()
                data = r.read()
                conn.close()
                if fault == "lose":
                    return self.reply(500, [("Content-Type", "application/xml")],
                                      b"<Error><Code>InternalError</Code><Message>injected</Message></Error>")
                self.reply(r.status, r.getheaders(), data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_faulty_slow_store_neither_loses_nor_duplicates(moto, loaded):
    """503s, lost replies (the store acted, the client saw a 500) and slow
    answers: retried with backoff; replay and daemon output equal the
    local replay, the daemon's manifests commit once each."""
    endpoint, env, fs = moto
    broker, data, expected = loaded
    proxy = FaultyStore(int(endpoint.rsplit(":", 1)[1]), seed=20261201)
    try:
        faulty = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
        qos("replay", data, "--sink", "s3://qos/faulty-replay", "--quiet", env=faulty)
        r = qos(*run_args(broker, "s3://qos/faulty-run", "faulty", "--checkpoint-interval", "1s"), "--until-caught-up",
                env=faulty, timeout=600)
        assert "caught up" in r.stderr, r.stderr
    finally:
        proxy.close()
    assert proxy.counts["fail"] > 5 and proxy.counts["lose"] > 5 and proxy.counts["slow"] > 5, proxy.counts
    for sink in ("qos/faulty-replay", "qos/faulty-run"):
        problems = qos_tables.diff(qos_tables.load(sink, filesystem=fs), expected)
        assert not problems, sink + "\n" + "\n".join(problems)
    assert not [k for k in keys(fs, "qos/faulty-run") if "/_staging/" in k]


def test_missing_bucket_and_wrong_credentials_are_one_line(moto):
    endpoint, env, _ = moto
    r = qos("replay", "-", "--sink", "s3://no-such-bucket/x", "--quiet", env=env, input="", check=False)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such bucket" in lines[0] and "s3://" in lines[0], r.stderr
    bad = dict(env, AWS_SECRET_ACCESS_KEY="")
    r = qos("replay", "-", "--sink", "s3://qos/x", "--quiet", env=bad, input="", check=False)
    assert r.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # moto accepts any key; a proxy answers as AWS does for an unknown one.
    proxy = FaultyStore(int(endpoint.rsplit(":", 1)[1]), seed=1, deny=True)
    try:
        r = qos("replay", "-", "--sink", "s3://qos/x", "--quiet", env=dict(env, AWS_ENDPOINT_URL=proxy.endpoint),
                input="", check=False)
    finally:
        proxy.close()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "InvalidAccessKeyId" in lines[0] and "AWS_ACCESS_KEY_ID" in lines[0], r.stderr


def test_run_to_a_missing_bucket_is_one_line(moto, loaded):
    """test_daemon's operator errors for an unwritable sink, on s3://: refused before consuming."""
    _, env, _ = moto
    broker = loaded[0]
    r = qos(*run_args(broker, "s3://no-such-bucket/x", "no-bucket"), "--until-caught-up", env=env, check=False, timeout=60)
    lines = [l for l in r.stderr.splitlines() if l.startswith("qos: error")]
    assert r.returncode == 1 and len(lines) == 1 and "no such bucket" in lines[0] and "s3://" in lines[0], r.stderr


def test_sigkill_at_random_instants_loses_and_duplicates_nothing_on_s3(moto, loaded, tmp_path):
    """10 kills of a daemon checkpointing every second to s3://, each checked
    right away (no beacon visible twice), then a final run equals the replay.
    With test_daemon's compaction settings: compaction stays off on s3://
    (docs/object-storage.md), so hours keep one file per epoch."""
    _, env, fs = moto
    broker, data, _ = loaded
    qos("replay", data, "--sink", tmp_path / "replay", "--window", "1m", "--quiet")
    expected = qos_tables.load(tmp_path / "replay")
    rng = random.Random(20261201)
    cmd = [qos_bin(), *run_args(broker, "s3://qos/crash", "crash", "--checkpoint-interval", "1s", "--window", "1m",
                                "--late-flush-interval", "1s", "--compact-files", "2",
                                "--kafka", "session.timeout.ms=6000")]
    for _ in range(10):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(1.0, 4.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
        no_beacon_twice(qos_tables.load("qos/crash", filesystem=fs), expected)
    r = qos(*cmd[1:], "--until-caught-up", env=env, timeout=600)
    assert "caught up" in r.stderr
    problems = qos_tables.diff(qos_tables.load("qos/crash", filesystem=fs), expected)
    assert not problems, "\n".join(problems)
    assert not [k for k in keys(fs, "qos/crash") if "/_staging/" in k]
    # Not compacted: some hour holds more than --compact-files files, and no compaction state exists.
    per_hour = Counter(k.rsplit("/", 1)[0] for k in keys(fs, "qos/crash/overall") if k.endswith(".parquet"))
    assert max(per_hour.values()) > 2, per_hour
    assert not [k for k in keys(fs, "qos/crash/_qos") if "/compact" in k]


def no_beacon_twice(got, expected):
    """As test_daemon checks a local sink right after a kill: no session row
    twice, no additive number of any group above its final value."""
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
