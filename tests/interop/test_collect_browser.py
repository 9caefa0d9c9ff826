"""A real browser against qos collect: headless Chromium (Debian `chromium`)
loads a player page served from another origin; the page posts beacons with
fetch (a CORS preflight), CMCD v2 event reports, and two last beacons with
navigator.sendBeacon on pagehide (text/plain, and a JSON Blob whose
credentialed preflight needs Access-Control-Allow-Credentials). The beacons are read back from the
`overall` and `sessions` tables written by `qos run`."""
import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import qos
from test_collect import Collector
from test_daemon import Broker, free_port

PAGES = Path(__file__).parent / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make deps installs it)")
def test_a_browser_posts_beacons_and_cmcd(tmp_path):
    page_port = free_port()
    visited = []

    class Pages(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            visited.append(self.path)

    handler = functools.partial(Pages, directory=str(PAGES))
    pages = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
    threading.Thread(target=pages.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{page_port}"
    broker = Broker(partitions=1)
    col = Collector(broker, "--cors-origin", origin)
    try:
        t0 = 1767225600000
        url = f"{origin}/player.html?collector=http://127.0.0.1:{col.port}&t0={t0}&run=1"
        browser = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                    f"--user-data-dir={tmp_path / 'profile'}", url],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # The page reports what it got back in the URL of the page it goes to
            # next; sendBeacon fires on that navigation. Bounded wait for both.
            metrics = ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                metrics = urllib.request.urlopen(f"http://127.0.0.1:{col.port}/metrics").read().decode()
                if "qos_collect_records_accepted_total 6" in metrics:
                    break
                time.sleep(0.2)
        finally:
            browser.kill()
            browser.wait(10)
        done = [p for p in visited if p.startswith("/done.html")]
        assert done and "beacons%3A202%3A2%20cmcd%3A202%3A2" in done[0], visited
        assert "qos_collect_records_accepted_total 6" in metrics, metrics   # the JSON Blob beacon too
        assert 'qos_collect_responses_total{code="204"}' in metrics      # the preflights
        assert "qos_collect_kafka_failed_total 0" in metrics
        code, _ = col.stop()
        assert code == 0
        sink = tmp_path / "sink"
        qos("run", "--brokers", broker.address, "--group", "browser", "--sink", sink, "--idle-timeout", "2s",
            "--metrics-port", "off", "--until-caught-up", timeout=300)
        overall = pq.read_table(sink / "overall").to_pylist()
        assert sum(r["views"] for r in overall) == 1
        assert sum(r["plays"] for r in overall) == 1
        assert sum(r["completed"] for r in overall) == 1          # the sendBeacon view_end
        assert sum(r["startup_ms_sum"] for r in overall) == 900
        sessions = pq.read_table(sink / "sessions").to_pylist()
        # The JSON Blob's heartbeat is a session of its own, without a video.
        assert sorted((s["session_id"], s["video_id"]) for s in sessions) == [
            ("browser-1", "browser-video"), ("browser-1-blob", "unknown")]
    finally:
        if col.proc.poll() is None:
            col.stop()
        broker.stop()
        pages.shutdown()
