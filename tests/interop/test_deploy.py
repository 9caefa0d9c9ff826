"""docker-compose-process.yml is not run here (no Docker engine): check that
it is well-formed, creates the topics the daemon consumes, and that the
daemon's environment in it is a valid configuration, by running `qos run`
with that environment against the embedded broker."""
import os
import subprocess
from pathlib import Path

import yaml
from conftest import ROOT, qos_bin
from test_daemon import free_port


def compose():
    return yaml.safe_load((ROOT / "docker-compose-process.yml").read_text())


def test_compose_creates_the_topics_the_daemon_consumes():
    c = compose()
    services = c["services"]
    assert {"kafka", "create-topics", "qos"} <= set(services)
    created = " ".join(services["create-topics"]["command"])
    env = services["qos"]["environment"]
    topics = [t.split(":")[0] for t in env["QOS_TOPICS"].split(",")]
    assert topics == ["beacons", "cdnlogs"]
    for t in topics:
        assert f"--topic {t} " in created, t
    assert services["qos"]["depends_on"]["create-topics"]["condition"] == "service_completed_successfully"
    assert "qos-output" in c["volumes"]


def test_the_daemons_environment_is_a_valid_configuration(tmp_path):
    env = {k: str(v) for k, v in compose()["services"]["qos"]["environment"].items()}
    port = free_port()
    broker = subprocess.Popen([qos_bin(), "broker", "--port", str(port), "--partitions", "2",
                               "--topic", "beacons", "--topic", "cdnlogs"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "listening" in broker.stdout.readline()
        env.update(QOS_BROKERS=f"127.0.0.1:{port}", QOS_SINK=str(tmp_path / "out"))
        r = subprocess.run([qos_bin(), "run", "--until-caught-up", "--idle-timeout", "1s", "--metrics-port", "off"],
                           capture_output=True, text=True, timeout=120,
                           env={**{k: v for k, v in os.environ.items() if not k.startswith("QOS_") or k == "QOS_BIN"}, **env})
        assert r.returncode == 0, r.stderr
        assert "consuming beacons:beacon-json, cdnlogs:edgecast" in r.stderr, r.stderr
        assert "caught up" in r.stderr
    finally:
        broker.terminate()
        broker.wait(10)
