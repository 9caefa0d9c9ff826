"""Shared fixtures: the qos binary, a generated input with every kind of
problem injected, and one replay of it with a JSON dump of every file."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pytest_configure(config):
    config.addinivalue_line("markers", "serial: runs alone after the parallel tests (real-time, load-sensitive)")


def qos_bin() -> str:
    path = os.environ.get("QOS_BIN") or str(ROOT / ".build" / "debug" / "qos")
    if not Path(path).exists():
        pytest.fail(f"qos binary not found at {path}: run `make build` (or `make test`)")
    return path


# Test settings in the environment that qos itself must not see: it
# refuses any QOS_* variable that is not one of its settings.
TEST_ONLY_ENV = ("QOS_SHARED_DATA",)


def qos(*args, check=True, **kw):
    if "env" not in kw and any(k in os.environ for k in TEST_ONLY_ENV):
        kw["env"] = {k: v for k, v in os.environ.items() if k not in TEST_ONLY_ENV}
    return subprocess.run([qos_bin(), *map(str, args)], capture_output=True, text=True, check=check, **kw)


GEN_ARGS = ["--seed", "42", "--sessions", "600", "--rate", "300", "--slow-pop", "fastly/ams",
            "--failing-player", "shaka-player@4.7.11", "--late-fraction", "0.01",
            "--duplicate-fraction", "0.01", "--malformed-fraction", "0.005"]


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "beacons.ndjson"
    qos("generate", *GEN_ARGS, "--out", out)
    return out


@pytest.fixture(scope="session")
def replayed(generated, tmp_path_factory):
    """(sink, dump) of one replay of the generated input."""
    base = tmp_path_factory.mktemp("replay")
    sink, dump = base / "out", base / "dump.ndjson"
    r = qos("replay", generated, "--sink", sink, "--json-dump", dump, "--quiet")
    assert "accepted" in r.stdout
    files = [json.loads(line) for line in dump.read_text().splitlines()]
    return sink, files


# --- The sink on a local directory or on S3 (docs/object-storage.md) --------
# Sink tests take the `storage` fixture and run twice: on a local directory
# and on s3://qos/<name> on moto in server mode (one per session, on
# loopback). Without moto_server the s3 variants are skipped, saying why.

MOTO = ROOT / ".venv" / "bin" / "moto_server"
NO_MOTO = "moto_server is not in .venv (run `make deps`): S3 sink tests skipped"
needs_moto = pytest.mark.skipif(not MOTO.exists(), reason=NO_MOTO)
S3_KEY = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
STORAGES = ["local", pytest.param("s3", marks=needs_moto)]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto():
    """(endpoint, environment for qos, pyarrow S3FileSystem); bucket `qos` exists."""
    import socket
    import time
    if not MOTO.exists():
        pytest.skip(NO_MOTO)
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
        env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, **S3_KEY)
        yield endpoint, env, fs
    finally:
        proc.kill()  # moto ignores SIGTERM; its state is in memory
        proc.wait()


def s3_keys(fs, path):
    """Every object key under `bucket/prefix` (pyarrow S3FileSystem)."""
    from pyarrow.fs import FileSelector
    return sorted(i.path for i in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True))
                  if i.type.name == "File")


class LocalSink:
    """A sink directory, as the tests look at and damage it."""
    kind = "local"

    def __init__(self, path):
        self.path = Path(path)
        self.address = str(path)
        self.name = self.path.name
        self.env = None  # qos inherits the environment

    def display(self, rel=""):
        """How qos names a file of the sink in its messages."""
        return f"{self.address}/{rel}" if rel else self.address

    def files(self, under=""):
        """Relative paths of every file under `under`, sorted."""
        base = self.path / under
        return sorted(str(p.relative_to(self.path)) for p in base.rglob("*") if p.is_file()) if base.exists() else []

    def mtime(self, rel):
        return (self.path / rel).stat().st_mtime_ns

    def read(self, rel):
        return (self.path / rel).read_bytes()

    def write(self, rel, data):
        (self.path / rel).write_bytes(data)

    def delete(self, rel):
        (self.path / rel).unlink()

    def delete_tree(self, rel=""):
        """Deletes a directory of the sink, or the whole sink (as an operator would: rename, then remove)."""
        import shutil
        target = self.path / rel
        gone = target.with_name(target.name + ".gone")
        os.rename(target, gone)
        shutil.rmtree(gone)

    def load(self, **kw):
        import qos_tables
        return qos_tables.load(self.path, **kw)

    def table(self, name):
        import pyarrow.parquet as pq
        return pq.read_table(self.path / name)


class S3Sink:
    """s3://qos/<name> on moto, seen through pyarrow's S3FileSystem."""
    kind = "s3"

    def __init__(self, moto, name):
        _, self.env, self.fs = moto
        self.name = name
        self.prefix = f"qos/{name}"
        self.address = f"s3://{self.prefix}"

    def display(self, rel=""):
        return f"{self.address}/{rel}" if rel else self.address

    def files(self, under=""):
        base = f"{self.prefix}/{under}".rstrip("/")
        return [k[len(self.prefix) + 1:] for k in s3_keys(self.fs, base)]

    def mtime(self, rel):
        return self.fs.get_file_info(f"{self.prefix}/{rel}").mtime_ns

    def read(self, rel):
        with self.fs.open_input_stream(f"{self.prefix}/{rel}") as f:
            return f.read()

    def write(self, rel, data):
        with self.fs.open_output_stream(f"{self.prefix}/{rel}") as f:
            f.write(data)

    def delete(self, rel):
        self.fs.delete_file(f"{self.prefix}/{rel}")

    def delete_tree(self, rel=""):
        """Deletes every object under the prefix (objects written meanwhile stay)."""
        for k in s3_keys(self.fs, f"{self.prefix}/{rel}".rstrip("/")):
            try:
                self.fs.delete_file(k)
            except FileNotFoundError:
                pass

    def load(self, **kw):
        import qos_tables
        return qos_tables.load(self.prefix, filesystem=self.fs, **kw)

    def table(self, name):
        import pyarrow.parquet as pq
        return pq.read_table(f"{self.prefix}/{name}", filesystem=self.fs)


@pytest.fixture(params=STORAGES)
def storage(request):
    """"local" or "s3": the storage a parametrized sink test runs on."""
    return request.param


@pytest.fixture
def new_sink(storage, tmp_path, request):
    """new_sink(name) -> a fresh, empty sink of the test's storage."""
    import uuid

    def make(name):
        if storage == "local":
            return LocalSink(tmp_path / name)
        return S3Sink(request.getfixturevalue("moto"), f"{name}-{uuid.uuid4().hex[:8]}")
    return make
