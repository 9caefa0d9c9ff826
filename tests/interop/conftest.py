"""Shared fixtures: the qos binary, a generated input with every kind of
problem injected, and one replay of it with a JSON dump of every file."""
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def qos_bin() -> str:
    path = os.environ.get("QOS_BIN") or str(ROOT / ".build" / "debug" / "qos")
    if not Path(path).exists():
        pytest.fail(f"qos binary not found at {path}: run `make build` (or `make test`)")
    return path


def qos(*args, check=True, **kw):
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
