"""The sink on object storage (docs/object-storage.md): qos writes to
s3://bucket/prefix on a real S3 API on loopback (moto in server mode,
started here), and pyarrow's own S3FileSystem reads the dataset with the
same numbers as the local sink of the same input; a daemon killed with
SIGKILL at random instants loses and duplicates nothing on S3."""
import calendar
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import qos_tables
from conftest import free_port, needs_moto, qos, qos_bin
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
    acted, its reply is lost), or forwards after a delay (a slow store).
    `requests` records (method, path, lower-cased headers, reply body bytes) of each."""

    def __init__(self, upstream_port, seed, fail=0.05, lose=0.05, slow=0.05, delay=0.3, deny=False):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        rng = random.Random(seed)
        lock = threading.Lock()
        self.counts = Counter()
        self.requests = []
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
                with lock:
                    outer.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, len(data)))
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
    # Not compacted: no compacted file and no compaction state. (How many
    # files an hour keeps depends on how the epochs fell: one catching-up
    # epoch writes all of its windows of an hour as one file per table.)
    parquet = [k for k in keys(fs, "qos/crash") if k.endswith(".parquet")]
    assert parquet and not [k for k in parquet if "_compact_" in k]
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


def test_an_unreachable_store_stops_the_start_in_one_line_after_few_attempts(moto):
    """A closed port (refused) and a store that accepts connections but never
    answers (a blackhole): the start-up probe gives up after three short
    attempts, where the running sink's retries would make six of up to 30 s."""
    _, env, _ = moto
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(hole.accept()[0])  # held open, never read nor answered
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        for endpoint in (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{hole.getsockname()[1]}"):
            r = qos("replay", "-", "--sink", "s3://qos/x", "--quiet", env=dict(env, AWS_ENDPOINT_URL=endpoint),
                    input="", check=False, timeout=120)
            lines = r.stderr.strip().splitlines()
            assert r.returncode == 1 and len(lines) == 1 and "unreachable" in lines[0] and "endpoint" in lines[0], r.stderr
        assert 1 <= len(held) <= 3, f"{len(held)} connections to the blackhole"
    finally:
        hole.close()
        for c in held:
            c.close()


class CredentialServer:
    """A loopback HTTP server answering as the ECS/EKS container endpoint
    (GET /creds, checking the Authorization token) and as EC2 instance
    metadata IMDSv2 (PUT /latest/api/token, then the role and its
    credentials with the session token), recording every request."""

    def __init__(self, token="container-secret"):
        self.requests = []
        outer = self
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                outer.requests.append((self.command, self.path, dict(self.headers.items())))
                h = self.headers
                if self.path == "/creds" and self.command == "GET":
                    if h.get("Authorization") != token:
                        return self.answer(403, {"message": "bad token"})
                    return self.answer(200, {"AccessKeyId": "AKCONTAINER", "SecretAccessKey": "sc", "Token": "tok-container",
                                             "Expiration": expiry, "RoleArn": "arn:aws:iam::1:role/qos"})
                if self.path == "/latest/api/token" and self.command == "PUT":
                    if not h.get("X-aws-ec2-metadata-token-ttl-seconds"):
                        return self.answer(400, "")
                    return self.answer(200, "imds-session")
                if h.get("X-aws-ec2-metadata-token") != "imds-session":
                    return self.answer(401, "")
                if self.path == "/latest/meta-data/iam/security-credentials/":
                    return self.answer(200, "qos-role")
                if self.path == "/latest/meta-data/iam/security-credentials/qos-role":
                    return self.answer(200, {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "AKINSTANCE",
                                             "SecretAccessKey": "si", "Token": "tok-instance", "Expiration": expiry})
                self.answer(404, "")

            do_GET = do_PUT = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def keyless(env, tmp_path):
    """The environment without keys or shared files: the chain goes on to the next source."""
    e = {k: v for k, v in env.items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
         and not k.startswith("AWS_SESSION") and not k.startswith("AWS_CONTAINER") and not k.startswith("AWS_EC2")}
    return dict(e, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"), AWS_CONFIG_FILE=str(tmp_path / "no-config"))


def test_container_and_instance_credentials_sign_the_requests(moto, loaded, tmp_path):
    """Keys from the container endpoint, then from instance metadata: qos
    replay writes the same tables, and every request reaching the store is
    signed with those keys and carries their session token."""
    endpoint, env, fs = moto
    _, data, expected = loaded
    creds = CredentialServer()
    proxy = FaultyStore(int(endpoint.rsplit(":", 1)[1]), seed=1, fail=0, lose=0, slow=0)
    base = dict(keyless(env, tmp_path), AWS_ENDPOINT_URL=proxy.endpoint)
    try:
        cases = [("container", "AKCONTAINER", "tok-container",
                  {"AWS_CONTAINER_CREDENTIALS_FULL_URI": creds.url + "/creds",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-secret"}),
                 ("instance", "AKINSTANCE", "tok-instance", {"AWS_EC2_METADATA_SERVICE_ENDPOINT": creds.url})]
        for name, key, token, extra in cases:
            proxy.requests.clear()
            qos("replay", data, "--sink", f"s3://qos/creds-{name}", "--quiet", env=dict(base, **extra))
            problems = qos_tables.diff(qos_tables.load(f"qos/creds-{name}", filesystem=fs), expected)
            assert not problems, name + "\n" + "\n".join(problems)
            assert len(proxy.requests) > 10
            for method, path, headers, _ in proxy.requests:
                assert f"Credential={key}/" in headers["authorization"] and headers["x-amz-security-token"] == token, (method, path)
        seen = [(m, p) for m, p, _ in creds.requests]
        assert seen == [("GET", "/creds"), ("PUT", "/latest/api/token"),
                        ("GET", "/latest/meta-data/iam/security-credentials/"),
                        ("GET", "/latest/meta-data/iam/security-credentials/qos-role")], seen
        # A wrong container token is one line naming the endpoint.
        r = qos("replay", "-", "--sink", "s3://qos/x", "--quiet", input="", check=False,
                env=dict(base, AWS_CONTAINER_CREDENTIALS_FULL_URI=creds.url + "/creds", AWS_CONTAINER_AUTHORIZATION_TOKEN="wrong"))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and "container credentials endpoint" in lines[0] and "403" in lines[0], r.stderr
    finally:
        creds.close()
        proxy.close()
    # Nothing anywhere: one line naming the sources.
    r = qos("replay", "-", "--sink", "s3://qos/x", "--quiet", input="", check=False,
            env=dict(keyless(env, tmp_path), AWS_EC2_METADATA_DISABLED="true"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].count("no credentials found") == 1, r.stderr
    assert "AWS_ACCESS_KEY_ID" in lines[0] and "credential_process" in lines[0], r.stderr


def object_gets(proxy):
    """(key, bytes) of each object GET through the proxy (LISTs excluded)."""
    out = []
    for method, path, headers, n in proxy.requests:
        u = urlsplit(path)
        if method == "GET" and "list-type" not in parse_qs(u.query):
            out.append((unquote(u.path).lstrip("/"), n, headers.get("range")))
    return out


@pytest.fixture(scope="module")
def hourly(moto, tmp_path_factory):
    """Sparse traffic over three hours, replayed to a local directory and to s3://qos/hours."""
    _, env, _ = moto
    base = tmp_path_factory.mktemp("s3hours")
    qos("generate", "--seed", "5", "--sessions", "300", "--rate", "3", "--out", base / "b.ndjson")
    qos("replay", base / "b.ndjson", "--sink", base / "local", "--quiet")
    qos("replay", base / "b.ndjson", "--sink", "s3://qos/hours", "--quiet", env=env)
    return base / "local"


def test_readers_fetch_only_what_the_command_reads(moto, hourly, tmp_path):
    """Through a recording proxy: qos report of one hour GETs only that
    hour's files, qos reaggregate of one table only that table's, qos
    inspect --rows 0 of a file only its footer (ranged GETs) — each with
    the output of the same command on the local sink."""
    endpoint, env, fs = moto
    proxy = FaultyStore(int(endpoint.rsplit(":", 1)[1]), seed=1, fail=0, lose=0, slow=0)
    via = dict(env, AWS_ENDPOINT_URL=proxy.endpoint)
    parquet = {str(p.relative_to(hourly)): p.stat().st_size for p in hourly.rglob("*.parquet")}
    hours = sorted({"/".join(k.split("/")[1:3]) for k in parquet})
    assert len(hours) >= 2, hours
    day, hour = hours[0].split("/")
    start = f"{day[3:]}T{hour[5:]}:00:00Z"
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(time.strptime(start, "%Y-%m-%dT%H:%M:%SZ")) + 3600))
    try:
        proxy.requests.clear()
        qos("report", "--sink", "s3://qos/hours", "--from", start, "--to", end, "--out", tmp_path / "s3.html", "--quiet", env=via)
        got = object_gets(proxy)
        assert got and all(f"/{hours[0]}/" in k for k, _, _ in got), got
        report_bytes, all_bytes = sum(n for _, n, _ in got), sum(parquet.values())
        assert report_bytes == sum(n for k, n in parquet.items() if f"/{hours[0]}/" in k) < all_bytes
        qos("report", "--sink", hourly, "--from", start, "--to", end, "--out", tmp_path / "local.html", "--quiet")
        assert (tmp_path / "s3.html").read_text().replace("s3://qos/hours", str(hourly)) == (tmp_path / "local.html").read_text()

        proxy.requests.clear()
        qos("reaggregate", "--sink", "s3://qos/hours", "--table", "geo", "--grain", "1h", "--out", tmp_path / "r", env=via)
        got = object_gets(proxy)
        assert got and all(k.startswith("qos/hours/geo/") for k, _, _ in got), got

        one = sorted(k for k in parquet if k.startswith("overall/"))[0]
        proxy.requests.clear()
        out = qos("inspect", f"s3://qos/hours/{one}", "--rows", "0", env=via).stdout
        got = object_gets(proxy)
        assert all(r is not None for _, _, r in got) and sum(n for _, n, _ in got) < parquet[one], got
        assert out.replace(f"s3://qos/hours/{one}", str(hourly / one)) == qos("inspect", hourly / one, "--rows", "0").stdout
    finally:
        proxy.close()


def test_live_page_reads_an_s3_sink(moto, loaded, tmp_path):
    """qos run --metrics-port on an s3:// sink serves the page of its
    files: once settled, the page's windows equal those of the same run on a
    local sink; later refreshes GET no object twice."""
    endpoint, env, fs = moto
    broker, _, _ = loaded
    proxy = FaultyStore(int(endpoint.rsplit(":", 1)[1]), seed=1, fail=0, lose=0, slow=0)
    ports = {"s3": free_port(), "local": free_port()}
    sinks = {"s3": "s3://qos/live", "local": str(tmp_path / "live")}
    procs = {n: subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", f"live-{n}", "--sink", sinks[n],
                                  "--idle-timeout", "2s", "--checkpoint-interval", "1s", "--metrics-port", str(ports[n])],
                                 stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{n}.log", "w"),
                                 env=dict(env, AWS_ENDPOINT_URL=proxy.endpoint))
             for n in ("s3", "local")}

    def get(n, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[n]}{path}", timeout=10) as r:
            return r.read().decode()

    def settled(n):
        last, stable = None, 0
        for _ in range(240):
            time.sleep(1)
            try:
                c = json.loads(get(n, "/api/status"))["counters"]
            except OSError:
                continue
            state = c and (c["consumed"], c["files_written"], c["epoch"] > 0 and c["lag"] == 0)
            stable = stable + 1 if state and state == last and state[2] and state[1] > 0 else 0
            last = state
            if stable >= 4:
                return
        raise AssertionError(f"{n} did not settle: {last}")

    try:
        for n in procs:
            settled(n)
        time.sleep(3)  # the page's model is rebuilt in the background after the last checkpoint
        for table in ("overall", "video", "geo", "device", "cdn"):
            a, b = (json.loads(get(n, f"/api/windows?table={table}&from=0")) for n in ("s3", "local"))
            assert a["rows"] and a == b, table
        page = get("s3", "/")
        assert "no window written" not in page and "s3://qos/live" in page
        gets = [k for k, _, _ in object_gets(proxy) if k.endswith(".parquet")]
        assert gets and len(gets) == len(set(gets)), "an object was fetched twice"
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(30)
        proxy.close()
