#!/usr/bin/env python3
"""The query an analyst writes first, in DuckDB: quick, and wrong.

    duckdb_naive.py BEACONS.ndjson OUT.json

Per 2-minute window × video_id: view starts, approx_count_distinct(viewer_id),
plays, startup p50/p95 (quantile_cont of play_start − view_start), Σ played_ms,
stalls and Σ stall duration_ms. Sessions are `GROUP BY session_id` joined back
to the beacons. What it gets wrong against the definitions (docs/semantics.md):
no split of a session at view_end, the inactivity timeout or the 6 h cap (a
reused or long-idle session id is one session); duplicates (same seq) counted
twice and late beacons wherever they land; every view_start / play_start
counted, not the session's first; startup over 5 min or negative kept;
initial buffering and stalls inside a seek counted as rebuffering; no
vsf / ebvs / vpf, no rejects, no sketches to roll up. make bench times it
next to the spec-faithful query (duckdb_job.py) and reports how far its
totals are from qos's on the same input (bench/run.py)."""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import duckdb  # noqa: E402

W = common.WINDOW_MS

COLUMNS = ", ".join(f"{n}: '{ {'string': 'VARCHAR', 'bigint': 'BIGINT', 'boolean': 'BOOLEAN'}[t] }'"
                    for n, t in common.FIELDS)

SQL = f"""
WITH b AS (
  SELECT * FROM read_ndjson($path, columns = {{{COLUMNS}}})
),
s AS (
  SELECT session_id,
    min(ts) FILTER (WHERE event = 'view_start') AS vs,
    min(ts) FILTER (WHERE event = 'play_start') AS ps,
    any_value(video_id) AS video,
    any_value(viewer_id) AS viewer
  FROM b GROUP BY session_id
)
SELECT (b.ts // {W}) * {W} AS window_start_ms, coalesce(s.video, 'unknown') AS video_id,
  count(*) FILTER (WHERE event = 'view_start') AS views,
  approx_count_distinct(s.viewer) FILTER (WHERE event = 'view_start') AS unique_viewers,
  count(*) FILTER (WHERE event = 'play_start') AS plays,
  quantile_cont(s.ps - s.vs, 0.5) FILTER (WHERE event = 'play_start') AS startup_p50,
  quantile_cont(s.ps - s.vs, 0.95) FILTER (WHERE event = 'play_start') AS startup_p95,
  coalesce(sum(played_ms), 0) AS playing_ms,
  count(*) FILTER (WHERE event = 'rebuffer_start') AS rebuffer_count,
  coalesce(sum(duration_ms) FILTER (WHERE event = 'rebuffer_end'), 0) AS rebuffer_ms
FROM b JOIN s USING (session_id)
GROUP BY ALL
"""


def main():
    src, out = sys.argv[1:3]
    t0 = time.perf_counter()
    con = duckdb.connect()
    threads = os.environ.get("BENCH_DUCKDB_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    cur = con.execute(SQL, {"path": str(src)})
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    t1 = time.perf_counter()
    totals = {c: int(sum(r[c] or 0 for r in rows)) for c in ("views", "plays", "playing_ms", "rebuffer_count", "rebuffer_ms")}
    import json
    Path(out).write_text(json.dumps({"engine": "duckdb-naive", "version": duckdb.__version__,
                                     "timings": {"query_s": t1 - t0}, "rows": len(rows), "totals": totals}))


if __name__ == "__main__":
    main()
