"""`qos replay --format edgecast` over the original CDN-quality pipeline's own
EdgeCast fixtures: every `cdn_edge` column checked against values computed
here, independently, with DuckDB over the same JSON records (owner rule,
counters), python `datasketches` (clients_hll) and python `ddsketch`
(serve_ms_sketch). The fixtures are read from ../shared/data (never copied
into the repository)."""
import json
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from datasketches import hll_sketch, tgt_hll_type
from ddsketch.pb.proto import DDSketchProto
from ddsketch.pb import ddsketch_pb2

from conftest import ROOT, qos

DATA = Path(os.environ.get("QOS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "cdn-edgecast"
pytestmark = pytest.mark.skipif(not (DATA / "cdn_log.json").exists(), reason=f"no fixtures at {DATA}")

COUNTERS = ["requests", "http_errors", "http_2xx", "http_3xx", "http_4xx", "http_5xx", "slow_responses",
            "bytes_out", "cache_hits", "cache_misses", "incomplete_responses"]


def records(name):
    """The fixture's records as the format defines them: NDJSON lines, or the
    RTLD batch (a JSON array of JSON-encoded strings); records that are not
    JSON are left out (they are rejects)."""
    text = (DATA / name).read_text()
    out = []
    try:
        doc = json.loads(text)
        items = doc if isinstance(doc, list) else [doc]
    except json.JSONDecodeError:
        items = text.splitlines()
    for it in items:
        if isinstance(it, str):
            try:
                it = json.loads(it)
            except json.JSONDecodeError:
                continue
        out.append(it)
    return out


def expected(recs):
    """cdn_edge per (window, account, owner, pop), computed in DuckDB."""
    con = duckdb.connect()
    rows = [(r["timestamp"], r.get("pop"), r.get("status_code"), r.get("write_time"), r.get("bytes_out"),
             r.get("cache_status"), r.get("rewritten_path"), r.get("client_ip"), r.get("last_byte_served"))
            for r in recs]
    con.execute("create table logs(ts double, pop varchar, status int, write_time double, bytes_out bigint, "
                "cache_status varchar, path varchar, client_ip varchar, last_byte_served int)")
    if rows:
        con.executemany("insert into logs values (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    q = """
    with t as (
      select *, (floor(ts / 60) * 60)::bigint as w,
             split_part(path, '/', 2) as account,
             coalesce(regexp_extract(split(path, '/slices')[2], '/([0-9a-fA-F]{32})/[0-9a-fA-F]{32}/', 1), '') as owner
      from logs)
    select w, account, owner, pop,
           count(*) as requests,
           count(*) filter (status > 299) as http_errors,
           count(*) filter (status between 200 and 299) as http_2xx,
           count(*) filter (status between 300 and 399) as http_3xx,
           count(*) filter (status between 400 and 499) as http_4xx,
           count(*) filter (status between 500 and 599) as http_5xx,
           count(*) filter (write_time * 1000 > 200) as slow_responses,
           sum(bytes_out) as bytes_out,
           count(*) filter (cache_status in ('TCP_HIT', 'TCP_EXPIRED_HIT', 'TCP_PARTIAL_HIT')) as cache_hits,
           count(*) filter (cache_status in ('TCP_MISS', 'TCP_EXPIRED_MISS', 'TCP_CLIENT_REFRESH_MISS')) as cache_misses,
           count(*) filter (last_byte_served = 0) as incomplete_responses,
           list(write_time * 1000 order by write_time) as serve_ms,
           list(distinct client_ip) as clients
    from t group by all order by all"""
    cols = [d[0] for d in con.execute(q).description]
    return {(r[0], r[1], r[2], r[3]): dict(zip(cols, r)) for r in con.execute(q).fetchall()}


def replay(tmp_path, name):
    sink = tmp_path / name
    qos("replay", "--format", "edgecast", DATA / name, "--window", "1m", "--sink", sink, "--quiet")
    return sink


def table(sink, name):
    files = sorted((sink / name).rglob("*.parquet")) if (sink / name).exists() else []
    return [r for f in files for r in pq.read_table(f).to_pylist()]


@pytest.mark.parametrize("name,rows,totals,rejects", [
    ("cdn_log.json", 6, (9, 0, 1), 0),
    ("cdn_log_batch.json", 6, (9, 0, 1), 0),
    ("cdn_log_broken.json", 5, (8, 0, 1), 1),
    ("cdn_log_broken_json.json", 0, (0, 0, 0), 1),
])
def test_every_cdn_edge_column_matches_an_independent_computation(tmp_path, name, rows, totals, rejects):
    sink = replay(tmp_path, name)
    got = table(sink, "cdn_edge")
    assert len(got) == rows
    assert tuple(sum(r[c] for r in got) for c in ("requests", "http_errors", "slow_responses")) == totals
    assert [r["reason"] for r in table(sink, "rejects")] == ["invalid_json"] * rejects

    want = expected(records(name))
    assert len(want) == rows
    for r in got:
        start = int(r["window_start"].timestamp())
        assert int(r["window_end"].timestamp()) == start + 60
        e = want[(start, r["account"], r["owner"], r["pop"])]
        assert r["cdn"] == "edgecast"
        for c in COUNTERS:
            assert r[c] == e[c], (c, r[c], e[c])
        # Serve time: our sketch read by the python ddsketch package; every
        # percentile within the sketch's 1 % of an exact order statistic.
        sketch = DDSketchProto.from_proto(ddsketch_pb2.DDSketch.FromString(r["serve_ms_sketch"]))
        assert sketch.count == len(e["serve_ms"])
        for q, col in ((0.5, "serve_ms_p50"), (0.95, "serve_ms_p95"), (0.99, "serve_ms_p99")):
            exact = e["serve_ms"][int(q * (len(e["serve_ms"]) - 1))]
            assert abs(r[col] - exact) <= 0.01 * exact + 1e-9, (col, r[col], exact)
            assert abs(sketch.get_quantile_value(q) - r[col]) <= 1e-9 * max(1, r[col])
        # EdgeCast has no first-byte time: an empty sketch and null percentiles.
        ttfb = DDSketchProto.from_proto(ddsketch_pb2.DDSketch.FromString(r["ttfb_ms_sketch"]))
        assert ttfb.count == 0
        assert r["ttfb_ms_p50"] is None and r["ttfb_ms_p95"] is None and r["ttfb_ms_p99"] is None
        # Distinct clients: our HLL read by Apache DataSketches, and one built here.
        ours = hll_sketch.deserialize(r["clients_hll"])
        theirs = hll_sketch(12, tgt_hll_type.HLL_8)
        for ip in e["clients"]:
            theirs.update(ip)
        assert ours.lg_config_k == 12 and ours.tgt_type == tgt_hll_type.HLL_8
        assert ours.get_estimate() == pytest.approx(theirs.get_estimate())
        assert r["unique_clients"] == pytest.approx(len(e["clients"]), rel=0.01)


def test_owner_guids_follow_the_rule(tmp_path):
    got = table(replay(tmp_path, "cdn_log.json"), "cdn_edge")
    by_owner = {}
    for r in got:
        by_owner[r["owner"]] = by_owner.get(r["owner"], 0) + r["requests"]
    assert by_owner == {"ba63d50dca2149d9a23b30587c75465d": 2, "e6cf0c55dac249f0a0f72e7c72e6f6cb": 4, "": 3}
    slow = [(r["owner"], r["pop"]) for r in got if r["slow_responses"]]
    assert slow == [("e6cf0c55dac249f0a0f72e7c72e6f6cb", "dce")]


def test_broken_record_reject_keeps_its_payload(tmp_path):
    rej = table(replay(tmp_path, "cdn_log_broken.json"), "rejects")
    assert len(rej) == 1 and rej[0]["source"].endswith("cdn_log_broken.json:1")
    assert rej[0]["payload"].startswith(b'"{\\"user_agent:\\"AppleCoreMedia')


def test_duckdb_reads_the_dataset_with_hive_partitions(tmp_path):
    sink = replay(tmp_path, "cdn_log.json")
    n, req = duckdb.connect().execute(f"select count(*), sum(requests) from read_parquet('{sink}/cdn_edge/**/*.parquet', "
                        "hive_partitioning=true) where dt = '2021-09-10' and hour = 0").fetchone()
    assert (n, req) == (6, 9)


def test_reaggregate_and_inspect_know_cdn_edge(tmp_path):
    sink = tmp_path / "s"
    for name in ("cdn_log.json", "cdn_log_broken.json"):  # two files of one window, like a late delta
        qos("replay", "--format", "edgecast", DATA / name, "--window", "1m", "--sink", sink, "--quiet")
    qos("reaggregate", "--sink", sink, "--table", "cdn_edge", "--grain", "1h", "--dims", "pop")
    rolled = table(tmp_path / "s" / "rollup_1h_by_pop", "cdn_edge")
    want = expected(records("cdn_log.json") + records("cdn_log_broken.json"))
    by_pop = {}
    for (_, _, _, pop), e in want.items():
        by_pop.setdefault(pop, {c: 0 for c in COUNTERS})
        for c in COUNTERS:
            by_pop[pop][c] += e[c]
    assert {r["pop"]: {c: r[c] for c in COUNTERS} for r in rolled} == by_pop
    assert "owner" not in rolled[0] and all(int(r["window_start"].timestamp()) == 1631232000 for r in rolled)
    for r in rolled:  # the union of the clients' sketches: each IP once
        ips = {x["client_ip"] for x in records("cdn_log.json") if x["pop"] == r["pop"]}
        assert r["unique_clients"] == pytest.approx(len(ips), rel=0.01)
    out = qos("inspect", sink / "cdn_edge").stdout
    assert "CDN requests 17" in out and "slow 11.76 %" in out
