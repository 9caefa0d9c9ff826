"""The sink on object storage (docs/object-storage.md): qos writes to
s3://bucket/prefix on a real S3 API on loopback (moto in server mode,
started here), and pyarrow's own S3FileSystem reads the dataset with the
same numbers as the local sink of the same input; a daemon killed with
SIGKILL at random instants loses and duplicates nothing on S3."""
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter

import pytest
import qos_tables
from conftest import ROOT, qos, qos_bin

MOTO = ROOT / ".venv" / "bin" / "moto_server"
pytestmark = pytest.mark.skipif(not MOTO.exists(), reason="moto_server is not in .venv (run `make deps`): S3 sink tests skipped")

KEY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto():
    """(endpoint, environment for qos, pyarrow S3FileSystem); bucket `qos` exists."""
    port = free_port()
    proc = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "moto_server did not start"
                time.sleep(0.05)
        from pyarrow.fs import S3FileSystem
        fs = S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                          endpoint_override=endpoint, scheme="http", allow_bucket_creation=True)
        fs.create_dir("qos")
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, **KEY)
        yield endpoint, env, fs
    finally:
        proc.kill()  # moto ignores SIGTERM; its state is in memory
        proc.wait()


def keys(fs, path):
    from pyarrow.fs import FileSelector
    return sorted(i.path for i in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True))
                  if i.type.name == "File")


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


def small_gen():
    """test_daemon's generator arguments (a fixed start), fewer sessions."""
    from test_daemon import GEN
    gen = list(GEN)
    gen[gen.index("--sessions") + 1] = "600"
    return gen


def test_daemon_to_s3_equals_replay_and_leaves_no_staging(moto, tmp_path):
    from test_daemon import Broker
    _, env, fs = moto
    data = tmp_path / "beacons.ndjson"
    qos("generate", *small_gen(), "--out", data)
    qos("replay", data, "--sink", tmp_path / "replay", "--quiet")
    broker = Broker(partitions=3)
    try:
        qos("generate", *small_gen(), "--kafka", broker.address, "--rate", "max")
        r = qos("run", "--brokers", broker.address, "--group", "s3", "--sink", "s3://qos/daemon",
                "--idle-timeout", "2s", "--metrics-port", "0", "--until-caught-up", env=env, timeout=600)
        assert "caught up" in r.stderr, r.stderr
    finally:
        broker.stop()
    problems = qos_tables.diff(qos_tables.load("qos/daemon", filesystem=fs), qos_tables.load(tmp_path / "replay"))
    assert not problems, "\n".join(problems)
    all_keys = keys(fs, "qos/daemon")
    assert not [k for k in all_keys if "/_staging/" in k]
    assert [k for k in all_keys if "/_qos/manifests/" in k] and "qos/daemon/_qos/sink-id" in all_keys


def test_missing_bucket_and_credentials_are_one_line(moto):
    endpoint, env, _ = moto
    r = qos("replay", "-", "--sink", "s3://no-such-bucket/x", "--quiet", env=env, input="", check=False)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such bucket" in lines[0] and "s3://" in lines[0], r.stderr
    bad = dict(env, AWS_SECRET_ACCESS_KEY="")
    r = qos("replay", "-", "--sink", "s3://qos/x", "--quiet", env=bad, input="", check=False)
    assert r.returncode == 1 and "AWS_SECRET_ACCESS_KEY" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_sigkill_at_random_instants_loses_and_duplicates_nothing_on_s3(moto, tmp_path):
    """10 kills of a daemon checkpointing every second to s3://, each checked
    right away (no beacon visible twice), then a final run equals the replay."""
    from test_daemon import Broker
    _, env, fs = moto
    gen = small_gen()
    data = tmp_path / "beacons.ndjson"
    qos("generate", *gen, "--out", data)
    qos("replay", data, "--sink", tmp_path / "replay", "--window", "1m", "--quiet")
    expected = qos_tables.load(tmp_path / "replay")
    broker = Broker(partitions=3)
    try:
        qos("generate", *gen, "--kafka", broker.address, "--rate", "max")
        rng = random.Random(20261201)
        cmd = [qos_bin(), "run", "--brokers", broker.address, "--group", "crash", "--sink", "s3://qos/crash",
               "--idle-timeout", "2s", "--checkpoint-interval", "1s", "--metrics-port", "0", "--window", "1m",
               "--late-flush-interval", "1s", "--kafka", "session.timeout.ms=6000"]
        for _ in range(10):
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            time.sleep(rng.uniform(1.0, 4.0))
            p.send_signal(signal.SIGKILL)
            p.wait()
            no_beacon_twice(qos_tables.load("qos/crash", filesystem=fs), expected)
        r = qos(*cmd[1:], "--until-caught-up", env=env, timeout=600)
        assert "caught up" in r.stderr
    finally:
        broker.stop()
    problems = qos_tables.diff(qos_tables.load("qos/crash", filesystem=fs), expected)
    assert not problems, "\n".join(problems)
    assert not [k for k in keys(fs, "qos/crash") if "/_staging/" in k]


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
