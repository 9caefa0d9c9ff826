"""qos collect as a separate process in front of the embedded broker, over
real loopback HTTP: beacons posted by HTTP reach the daemon's tables (the
malformed ones its rejects table), and hostile clients — a thousand idle
connections, oversize and slow bodies, invalid UTF-8 and JSON — do not stop
it from answering /healthz and accepting valid beacons. The only timing
bound is a generous one (seconds, not the 100 ms the collector is built for)."""
import http.client
import json
import socket
import subprocess
import time

import pyarrow.parquet as pq
import pytest
from conftest import qos, qos_bin
from test_daemon import Broker, free_port

T0 = 1767225600000


class Collector:
    def __init__(self, broker, *extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [qos_bin(), "collect", "--brokers", broker.address, "--host", "127.0.0.1", "--port", str(self.port),
             "--cmcd-topic", "beacons", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        assert "listening" in line, line

    def request(self, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        out = (r.status, dict(r.getheaders()), r.read())
        c.close()
        return out

    def stop(self):
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


def beacon(event, sid, dt, **kw):
    return {"event": event, "ts": T0 + dt, "session_id": sid, **kw}


def test_posted_beacons_reach_the_tables_and_rejects(tmp_path):
    broker = Broker(partitions=2)
    col = Collector(broker)
    try:
        sessions = [f"http-{i}" for i in range(20)]
        batch = []
        for i, sid in enumerate(sessions):
            batch += [beacon("view_start", sid, i * 1000, video_id="v1"), beacon("play_start", sid, i * 1000 + 800),
                      beacon("view_end", sid, i * 1000 + 60000, played_ms=59200, reason="ended")]
        status, _, body = col.request("POST", "/v1/beacons", json.dumps(batch), {"Content-Type": "application/json"})
        assert status == 202 and json.loads(body) == {"accepted": 60}
        # navigator.sendBeacon's text/plain, one object.
        status, _, _ = col.request("POST", "/v1/beacons", json.dumps(beacon("view_start", "beacon-1", 5000)),
                                   {"Content-Type": "text/plain;charset=UTF-8"})
        assert status == 202
        status, _, body = col.request("POST", "/v1/beacons", '{"event":"view_start","ts":"soon","session_id":"b"}')
        assert status == 400 and json.loads(body)["rejected"][0]["reason"] == "wrong_type:ts"
        code, err = col.stop()
        assert code == 0 and "every accepted record acknowledged" in err
        sink = tmp_path / "sink"
        qos("run", "--brokers", broker.address, "--group", "collect", "--sink", sink, "--idle-timeout", "2s",
            "--metrics-port", "off", "--until-caught-up", timeout=300)
        overall = pq.read_table(sink / "overall").to_pylist()
        assert sum(r["views"] for r in overall) == 21
        assert sum(r["plays"] for r in overall) == 20
        assert sum(r["completed"] for r in overall) == 20
        rejects = pq.read_table(sink / "rejects").to_pylist()
        assert [r["reason"] for r in rejects] == ["wrong_type:ts"]
        sessions_rows = pq.read_table(sink / "sessions").to_pylist()
        assert len(sessions_rows) == 21
    finally:
        if col.proc.poll() is None:
            col.stop()
        broker.stop()


def test_abuse_does_not_stop_health_or_valid_beacons():
    broker = Broker(partitions=1)
    col = Collector(broker, "--max-body", "65536", "--request-timeout", "5", "--rate", "0")
    idle, slow = [], []
    try:
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", col.port))
            idle.append(s)
        for i in range(20):   # slow bodies: a promise of 1000 bytes, 10 sent
            s = socket.create_connection(("127.0.0.1", col.port))
            s.sendall(b"POST /v1/beacons HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"event\":")
            slow.append(s)
        for _ in range(20):   # oversize: refused with 413 from the Content-Length alone
            status, _, _ = col.request("POST", "/v1/beacons", b"x" * 70_000)
            assert status == 413
        s = socket.create_connection(("127.0.0.1", col.port))   # oversize without a length (chunked)
        s.sendall(b"POST /v1/beacons HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(5):
            s.sendall(b"8000\r\n" + b"y" * 0x8000 + b"\r\n")
        s.settimeout(10)
        assert s.recv(100).startswith(b"HTTP/1.1 413")
        s.close()
        bad_utf8 = b'{"event":"view_start","ts":%d,"session_id":"\xff\xfe"}' % T0
        status, _, body = col.request("POST", "/v1/beacons", bad_utf8)
        assert status == 400 and b"invalid_utf8" in body
        for junk in [b"{", b"[1,2", b"\x00\x01\x02", b'{"event":"view_start","ts":1e999}', b"[" * 10_000]:
            status, _, body = col.request("POST", "/v1/beacons", junk)
            assert status == 400, (junk[:20], body)
        s = socket.create_connection(("127.0.0.1", col.port))   # not HTTP at all
        s.sendall(b"\x16\x03\x01 hello tls?\r\n\r\n")
        s.settimeout(10)
        assert s.recv(100).startswith(b"HTTP/1.1 400")
        s.close()
        started = time.monotonic()
        status, _, body = col.request("GET", "/healthz", timeout=5)
        assert status == 200 and body == b"ok\n"
        assert time.monotonic() - started < 2.0
        status, _, body = col.request("POST", "/v1/beacons", json.dumps(beacon("view_start", "fine", 0)))
        assert status == 202 and json.loads(body) == {"accepted": 1}
        # The slow and idle clients are cut off at the request timeout.
        slow[0].settimeout(15)
        assert slow[0].recv(100).startswith(b"HTTP/1.1 408")
        idle[0].settimeout(15)
        assert idle[0].recv(100) == b""
        status, _, metrics = col.request("GET", "/metrics")
        text = metrics.decode()
        assert 'qos_collect_requests_refused_total{why="too_large"} 21' in text
        timeouts = [l for l in text.splitlines() if l.startswith('qos_collect_requests_refused_total{why="timeout"}')]
        assert timeouts and 1 <= int(timeouts[0].split()[-1]) <= 20, text
    finally:
        for s in idle + slow:
            s.close()
        col.stop()
        broker.stop()


@pytest.mark.parametrize("flag,value", [
    ("--request-timeout", "1e300"), ("--request-timeout", "nan"), ("--max-body", "9223372036854775807"),
    ("--buffer", "9223372036854775807"), ("--max-connections", "9223372036854775807"),
    ("--rate", "1e-20"), ("--rate", "inf"), ("--burst", "1e300"), ("--max-records", "9223372036854775807"),
    ("--threads", "1000000"), ("--max-body-total", "9223372036854775807"), ("--duration", "inf"),
])
def test_numeric_options_out_of_range_are_one_line_usage_errors(flag, value):
    r = qos("collect", "--brokers", "127.0.0.1:1", "--port", "0", f"{flag}={value}", check=False, timeout=30)
    errors = [l for l in r.stderr.splitlines() if l.startswith("Error:")]
    assert r.returncode == 64 and len(errors) == 1 and flag in errors[0], r.stderr
    assert "Fatal error" not in r.stderr


def test_max_connections_is_checked_against_the_open_files_limit():
    """The soft RLIMIT_NOFILE is raised to the hard limit; a --max-connections
    that still does not fit is one line naming both numbers; the default is
    lowered to fit, with a warning (README, "qos collect")."""
    import resource

    def limit(soft, hard):
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    broker = Broker(partitions=1)
    try:
        args = [qos_bin(), "collect", "--brokers", broker.address, "--host", "127.0.0.1", "--port", "0", "--duration", "1"]
        r = subprocess.run(args + ["--max-connections", "10000"], preexec_fn=limit(256, 256),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, r.stderr
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert len(lines) == 1 and "10000" in lines[0] and "256" in lines[0], r.stderr
        # Raised to the hard limit: 2000 connections fit under 4096.
        r = subprocess.run(args + ["--max-connections", "2000"], preexec_fn=limit(256, 4096),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "listening" in r.stderr, r.stderr
        # The default (10 000) is lowered, with a warning, and the collector serves.
        r = subprocess.run(args, preexec_fn=limit(256, 256), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "listening" in r.stderr, r.stderr
        assert "--max-connections" in r.stderr and "lowered" in r.stderr, r.stderr
    finally:
        broker.stop()
