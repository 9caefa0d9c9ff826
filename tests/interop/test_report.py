"""`qos report` and the daemon's live page in a real browser: headless
Chromium (Debian `chromium`) loads the page, its console must stay free of
errors, every chart must have data, and the numbers the page carries
(`data-value` / `data-v`, the exact values behind the formatted text) must
equal DuckDB's over the same Parquet tables. Screenshots go to the test's
output directory (`make test` keeps them under pytest's basetemp)."""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from conftest import qos, qos_bin
from test_daemon import Broker, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: make deps-system installs it")


def chromium(url, *extra, budget_ms=3000):
    """(DOM after the scripts ran, console lines) of one headless load."""
    r = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", *extra, url],
                       capture_output=True, text=True, timeout=120)
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    return r.stdout, console


def console_errors(console):
    return [line for line in console if "INFO:CONSOLE" not in line or "Uncaught" in line or "Error" in line]


def screenshot(url, path):
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1400,2200", "--virtual-time-budget=3000", f"--screenshot={path}", url],
                   capture_output=True, timeout=120, check=True)
    assert path.exists() and path.stat().st_size > 20_000


class Page(HTMLParser):
    """KPI values, chart point counts, tables (cells' data-v or text) of a page."""

    def __init__(self, html):
        super().__init__()
        self.kpis, self.charts, self.tables, self.counters = {}, {}, {}, {}
        self.body = {}
        self._table = None
        self._row = None
        self._cell = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "data-kpi" in a:
            self.kpis[a["data-kpi"]] = float(a["data-value"]) if a["data-value"] else None
        if "data-counter" in a:
            self.counters[a["data-counter"]] = float(a["data-value"])
        if "data-chart" in a:
            self.charts[a["data-chart"]] = int(a["data-points"])
        if tag == "table" and "data-table" in a:
            self._table = self.tables.setdefault(a["data-table"], {"columns": [], "rows": []})
        if tag == "th" and self._table is not None:
            self._table["columns"].append(a["data-col"])
        if tag == "tr" and self._table is not None:
            self._row = []
        if tag == "td" and self._row is not None:
            self._cell = {"v": a.get("data-v"), "text": ""}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            c = self._cell
            self._row.append(c["text"] if c["v"] is None else (float(c["v"]) if c["v"] else None))
            self._cell = None
        if tag == "tr" and self._row is not None:
            if self._row:
                self._table["rows"].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def table(self, name):
        t = self.tables[name]
        return [dict(zip(t["columns"], r)) for r in t["rows"]]


def glob(sink, table):
    return f"read_parquet('{sink}/{table}/**/*.parquet')"


def overall_sums(sink, since_ms=None):
    where = f"where epoch_ms(window_start) >= {since_ms}" if since_ms is not None else ""
    row = duckdb.sql(f"""select sum(views), sum(plays), sum(vsf), sum(ebvs), sum(vpf), sum(playing_ms),
        sum(rebuffer_ms), sum(requests), sum(failed_requests), count(distinct window_start)
        from {glob(sink, 'overall')} {where}""").fetchall()[0]
    return dict(zip(["views", "plays", "vsf", "ebvs", "vpf", "playing_ms", "rebuffer_ms", "requests",
                     "failed_requests", "windows"], row))


def assert_page_equals_tables(page, sink, since_ms=None):
    s = overall_sums(sink, since_ms)
    k = page.kpis
    assert k["views"] == s["views"] and k["plays"] == s["plays"]
    assert k["vsf_rate"] == pytest.approx(s["vsf"] / s["views"], rel=1e-12)
    assert k["ebvs_rate"] == pytest.approx(s["ebvs"] / s["views"], rel=1e-12)
    assert k["vpf_rate"] == pytest.approx(s["vpf"] / s["plays"], rel=1e-12)
    assert k["rebuffer_ratio"] == pytest.approx(s["rebuffer_ms"] / (s["playing_ms"] + s["rebuffer_ms"]), rel=1e-12)
    assert k["failed_rate"] == pytest.approx(s["failed_requests"] / s["requests"], rel=1e-12)
    where = f"where epoch_ms(window_start) >= {since_ms}" if since_ms is not None else ""
    # Unique viewers: the union of every file's HLL sketch (Apache DataSketches).
    import datasketches
    union = datasketches.hll_union(12)
    for (blob,) in duckdb.sql(f"select viewers_hll from {glob(sink, 'overall')} {where}").fetchall():
        union.update(datasketches.hll_sketch.deserialize(bytes(blob)))
    assert abs(k["unique_viewers"] - round(union.get_result().get_estimate())) <= 1
    # CDN × PoP views and failed requests.
    want = {(c, p): (v, f) for c, p, v, f in duckdb.sql(
        f"select cdn, pop, sum(views), sum(failed_requests) from {glob(sink, 'cdn')} {where} group by 1, 2").fetchall()}
    got = {(r["cdn"], r["pop"]): r for r in page.table("cdn")}
    assert set(got) == {key for key, (v, f) in want.items()} or len(got) == 100
    for key, r in got.items():
        v, f = want[key]
        assert r["views"] == v
        assert r["failed_rate"] == (pytest.approx(f / r["requests"], rel=1e-12) if r["requests"] else None)
    # Rejects by reason (rejects are windowed by ingested_at).
    rj = dict(duckdb.sql(f"select reason, count(*) from {glob(sink, 'rejects')} {where} group by 1").fetchall())
    assert {r["reason"]: r["rows"] for r in page.table("rejects")} == rj


def test_report_in_a_browser_equals_duckdb(replayed, tmp_path):
    sink, _ = replayed
    out = tmp_path / "report.html"
    r = qos("report", "--sink", sink, "--out", out)
    assert r.stdout.startswith(f"wrote {out}")
    html = out.read_text()
    assert not re.search(r"""(src|href)\s*=|url\(|@import""", html), "the page must not load anything"
    dom, console = chromium(out.as_uri(), "--dump-dom")
    assert not console_errors(console), console
    page = Page(dom)
    assert set(page.charts) == {"views", "startup", "rebuffer", "failures", "cdn_failed", "concurrent"}
    assert all(n > 0 for n in page.charts.values()), page.charts
    assert_page_equals_tables(page, sink)
    assert page.table("player_version") and page.table("trending") and page.table("video")
    screenshot(out.as_uri(), tmp_path / "report.png")
    if os.environ.get("REPORT_SCREENSHOT_TO"):  # refresh docs/report.png: REPORT_SCREENSHOT_TO=docs/report.png
        shutil.copy(tmp_path / "report.png", os.environ["REPORT_SCREENSHOT_TO"])


def test_console_capture_sees_errors(tmp_path):
    """The harness itself: an uncaught error on a page is reported."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>notAFunction()</script></body></html>")
    _, console = chromium(bad.as_uri(), "--dump-dom")
    assert console_errors(console)


def release_bin():
    """The release qos (a week is 35 000 files: minutes in a debug build)."""
    path = os.environ.get("QOS_RELEASE_BIN") or str(Path(__file__).resolve().parents[2] / ".build" / "release" / "qos")
    if not Path(path).exists() or subprocess.run([path, "report", "--help"], capture_output=True).returncode != 0:
        pytest.skip("needs a release build with qos report (swift build -c release, or QOS_RELEASE_BIN)")
    return path


def test_report_of_a_week_of_windows_stays_under_5_mb(tmp_path):
    """A week of 2-minute windows (5040 windows, about 5 sessions each): the
    file stays under 5 MB (the series is drawn at a coarser step) and the
    browser renders it; the bound on time is generous (no timing assertion
    beyond a 20 s sanity bound on a shared machine)."""
    qos_rel = release_bin()
    data, sink = tmp_path / "week.ndjson", tmp_path / "week"
    subprocess.run([qos_rel, "generate", "--seed", "5", "--sessions", "25000", "--rate", "3", "--start-ms", "1767225600000",
                    "--out", data], check=True, capture_output=True)
    subprocess.run([qos_rel, "replay", data, "--sink", sink, "--quiet"], check=True, capture_output=True, timeout=1800)
    windows = duckdb.sql(f"select count(distinct window_start) from {glob(sink, 'overall')}").fetchall()[0][0]
    assert windows > 4500
    out = tmp_path / "week.html"
    r = subprocess.run([qos_rel, "report", "--sink", sink, "--out", out], check=True, capture_output=True, text=True, timeout=1800)
    print(r.stdout)
    assert out.stat().st_size < 5_000_000
    started = time.monotonic()
    dom, console = chromium(out.as_uri(), "--dump-dom", budget_ms=1000)
    elapsed = time.monotonic() - started
    assert not console_errors(console), console
    page = Page(dom)
    assert all(n > 0 for n in page.charts.values())
    assert page.kpis["views"] == overall_sums(sink)["views"]
    assert elapsed < 20, f"headless load took {elapsed:.1f} s"
    screenshot(out.as_uri(), tmp_path / "week.png")


def test_live_page_of_a_running_daemon(tmp_path):
    """qos run serves the page at / on its operations port; once the
    daemon has consumed everything and its files stop changing, the page's
    numbers equal DuckDB's over the sink, the JSON endpoints answer and the
    page's refresh script runs without an error."""
    broker = Broker()
    gen = ["--seed", "23", "--sessions", "800", "--rate", "400", "--start-ms", "1767225600000",
           "--slow-pop", "fastly/ams", "--malformed-fraction", "0.005"]
    qos("generate", *gen, "--kafka", broker.address, "--rate", "max")
    sink = tmp_path / "live"
    port = free_port()
    p = subprocess.Popen([qos_bin(), "run", "--brokers", broker.address, "--group", "live", "--sink", str(sink),
                          "--idle-timeout", "2s", "--checkpoint-interval", "1s", "--metrics-port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "w"))
    base = f"http://127.0.0.1:{port}"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()

    try:
        stable, last = 0, None
        for _ in range(240):
            time.sleep(1)
            try:
                status = json.loads(get("/api/status")[2])
            except OSError:
                continue
            c = status["counters"]
            if not c:  # before the first checkpoint
                continue
            state = (c["consumed"], c["files_written"], c["epoch"] > 0 and c["lag"] == 0)
            stable = stable + 1 if state == last and state[2] and c["files_written"] > 0 else 0
            last = state
            if stable >= 4:
                break
        assert stable >= 4, f"the daemon did not settle: {last}"
        time.sleep(2)  # the page's model is rebuilt in the background after the last checkpoint
        code, ctype, body = get("/")
        assert code == 200 and ctype.startswith("text/html") and 'data-live="1"' in body
        code, ctype, body = get("/api/windows?table=overall&from=0")
        assert code == 200 and ctype == "application/json"
        rows = json.loads(body)["rows"]
        assert rows and sum(r["views"] for r in rows) == overall_sums(sink)["views"]
        dom, console = chromium(base + "/", "--dump-dom", budget_ms=5000)
        assert not console_errors(console), console
        page = Page(dom)
        assert all(n > 0 for n in page.charts.values()), page.charts
        assert page.counters["consumed"] > 0
        assert_page_equals_tables(page, sink)
        screenshot(base + "/", tmp_path / "live.png")
    finally:
        p.terminate()
        p.wait(30)
        broker.stop()
