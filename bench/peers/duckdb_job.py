#!/usr/bin/env python3
"""The comparison subset in DuckDB: SQL over read_ndjson.

    duckdb_job.py BEACONS.ndjson OUT.json [--reference]

Per 2-minute window × video_id and window × country: views, unique_viewers
(approx_count_distinct, DuckDB's HyperLogLog), plays, startup count / sum /
p50 / p95 (approx_quantile, DuckDB's t-digest), playing_ms, rebuffer_count,
rebuffer_ms, vsf, ebvs — sessionized in SQL with window functions
partitioned by session_id and ordered by (ts, seq), following SPEC §3/§5
(the query is commented step by step; spark_job.py is the same query in
Spark SQL).

--reference (not timed) adds the exact distinct viewer count and every
startup time of each group, sorted: compare.py checks each engine's
approximate columns against them."""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import duckdb  # noqa: E402

W, TIMEOUT, CAP, STARTUP_MAX = common.WINDOW_MS, common.SESSION_TIMEOUT_MS, common.SESSION_MAX_MS, common.STARTUP_MAX_MS

COLUMNS = ", ".join(f"{n}: '{ {'string': 'VARCHAR', 'bigint': 'BIGINT', 'boolean': 'BOOLEAN'}[t] }'"
                    for n, t in common.FIELDS)

SQL = f"""
WITH beacons AS (
  SELECT * FROM read_ndjson($path, columns = {{{COLUMNS}}})
),
-- 1. Sessions (SPEC §3). Beacons of a session_id in (ts, seq) order: the generator
--    writes each session's beacons in that order, so it is the engine's arrival order.
--    A new session starts after a view_end, or after a gap of more than the 5-minute
--    inactivity timeout. (On the generated input the longest silence is a pause of
--    <= 2 min, so only view_end splits; the 6 h cap is asserted in step 4, not modelled.)
marked AS (
  SELECT *,
    CASE WHEN lag(event) OVER w = 'view_end' OR ts - lag(ts) OVER w > {TIMEOUT} THEN 1 ELSE 0 END AS new_session
  FROM beacons
  WINDOW w AS (PARTITION BY session_id ORDER BY ts, seq)
),
sessionized AS (
  SELECT *, sum(new_session) OVER (PARTITION BY session_id ORDER BY ts, seq ROWS UNBOUNDED PRECEDING) AS sess
  FROM marked
),
-- 2. Session state as of each beacon (this beacon included), in arrival order:
--    attributes from the first beacon that carries each (an event is grouped by what is
--    known once it is applied), counts of view_start / play_start / fatal errors so far,
--    the first view_start / play_start times, and whether a seek is open before it.
state AS (
  SELECT *,
    coalesce(first_value(video_id IGNORE NULLS) OVER upto, 'unknown') AS s_video,
    coalesce(first_value(country IGNORE NULLS) OVER upto, 'unknown') AS s_country,
    coalesce(first_value(viewer_id IGNORE NULLS) OVER upto, session_id) AS s_viewer,
    sum(CASE WHEN event = 'view_start' THEN 1 ELSE 0 END) OVER upto AS views_upto,
    sum(CASE WHEN event = 'play_start' THEN 1 ELSE 0 END) OVER upto AS plays_upto,
    sum(CASE WHEN event = 'error' AND fatal THEN 1 ELSE 0 END) OVER upto AS fatals_upto,
    min(CASE WHEN event = 'view_start' THEN ts END) OVER upto AS view_ts,
    min(CASE WHEN event = 'play_start' THEN ts END) OVER upto AS play_ts,
    last_value(CASE WHEN event IN ('seek_start', 'seek_end') THEN event END IGNORE NULLS) OVER before AS seek_state,
    first_value(ts) OVER upto AS session_start_ts,
    lead(ts) OVER w IS NULL AS is_last
  FROM sessionized
  WINDOW w AS (PARTITION BY session_id, sess ORDER BY ts, seq),
         upto AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         before AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
-- 3. Stalls. A rebuffer_start is eligible after the first play_start and outside a
--    seek; it opens a stall unless one is open, i.e. unless the latest eligible
--    rebuffer_start / rebuffer_end before it is an eligible rebuffer_start. A
--    rebuffer_end closes the open stall (if any). stall_ts: the latest eligible
--    start, i.e. the open stall's start when stalls do not overlap (a start while a
--    stall is open is not counted, but would move stall_ts: never on this input).
eligible AS (
  SELECT *,
    event = 'rebuffer_start' AND plays_upto > 0 AND coalesce(seek_state, '') <> 'seek_start' AS eligible_start
  FROM state
),
stalls AS (
  SELECT *,
    last_value(CASE WHEN event = 'rebuffer_end' THEN 'end' WHEN eligible_start THEN 'start' END IGNORE NULLS) OVER before AS stall_before,
    last_value(CASE WHEN eligible_start THEN ts END IGNORE NULLS) OVER before AS stall_ts_before,
    last_value(CASE WHEN event = 'rebuffer_end' THEN 'end' WHEN eligible_start THEN 'start' END IGNORE NULLS) OVER upto AS stall_after,
    last_value(CASE WHEN eligible_start THEN ts END IGNORE NULLS) OVER upto AS stall_ts_after
  FROM eligible
  WINDOW w AS (PARTITION BY session_id, sess ORDER BY ts, seq),
         upto AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         before AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
-- 4. Contributions, each to the window of the event that completes it (SPEC §5).
contributions AS (
  SELECT s_video, s_country, ts - ts % {W} AS w,
    CASE WHEN event = 'view_start' AND views_upto = 1 THEN 1 ELSE 0 END AS views,
    CASE WHEN event = 'view_start' AND views_upto = 1 THEN s_viewer END AS viewer,
    CASE WHEN event = 'play_start' AND plays_upto = 1 THEN 1 ELSE 0 END AS plays,
    -- startup: completed by the later of the first view_start / first play_start
    CASE WHEN ((event = 'play_start' AND plays_upto = 1) OR (event = 'view_start' AND views_upto = 1))
              AND play_ts - view_ts BETWEEN 0 AND {STARTUP_MAX} THEN play_ts - view_ts END AS startup_ms,
    coalesce(played_ms, 0) AS playing_ms,
    CASE WHEN eligible_start AND coalesce(stall_before, 'end') = 'end' THEN 1 ELSE 0 END AS rebuffer_count,
    CASE WHEN event = 'rebuffer_end' AND stall_before = 'start'
         THEN coalesce(duration_ms, greatest(0, ts - stall_ts_before)) ELSE 0 END AS rebuffer_ms,
    -- vsf: the first fatal error, after a view_start and before any play_start
    CASE WHEN event = 'error' AND fatal AND fatals_upto = 1 AND views_upto > 0 AND plays_upto = 0 THEN 1 ELSE 0 END AS vsf,
    0 AS ebvs
  FROM stalls
  UNION ALL
  -- the session's close: at its view_end, else latest ts + inactivity timeout. A stall
  -- still open ends there; ebvs = view_start, no play_start and no fatal error.
  SELECT s_video, s_country, close_ts - close_ts % {W}, 0, NULL, 0, NULL, 0, 0,
    CASE WHEN stall_after = 'start' THEN greatest(0, close_ts - stall_ts_after) ELSE 0 END,
    0,
    CASE WHEN close_ts > session_start_ts + {CAP} THEN error('session ' || session_id || ' reaches the 6 h cap: not modelled')::INTEGER
         WHEN views_upto > 0 AND plays_upto = 0 AND fatals_upto = 0 THEN 1 ELSE 0 END
  FROM (SELECT *, CASE WHEN event = 'view_end' THEN ts ELSE ts + {TIMEOUT} END AS close_ts FROM stalls WHERE is_last)
)
SELECT CASE WHEN grouping(s_video) = 0 THEN 'video' ELSE 'geo' END AS "table",
  w AS window_start_ms,
  coalesce(s_video, s_country) AS dim,
  sum(views) AS views,
  approx_count_distinct(viewer) AS unique_viewers,
  sum(plays) AS plays,
  count(startup_ms) AS startup_count,
  sum(startup_ms) AS startup_ms_sum,
  approx_quantile(startup_ms, 0.5) AS startup_p50,
  approx_quantile(startup_ms, 0.95) AS startup_p95,
  sum(playing_ms) AS playing_ms,
  sum(rebuffer_count) AS rebuffer_count,
  sum(rebuffer_ms) AS rebuffer_ms,
  sum(vsf) AS vsf,
  sum(ebvs) AS ebvs
  {{extra}}
FROM contributions
GROUP BY GROUPING SETS ((w, s_video), (w, s_country))
"""

REFERENCE = """,
  count(DISTINCT viewer) AS unique_viewers_exact,
  list(startup_ms ORDER BY startup_ms) FILTER (WHERE startup_ms IS NOT NULL) AS startup_values"""


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    reference = "--reference" in sys.argv
    src, out = args
    t0 = time.perf_counter()
    con = duckdb.connect()
    threads = os.environ.get("BENCH_DUCKDB_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    cur = con.execute(SQL.replace("{extra}", REFERENCE if reference else ""), {"path": str(src)})
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    t1 = time.perf_counter()
    common.write(out, "duckdb", duckdb.__version__, rows, {"query_s": t1 - t0})


if __name__ == "__main__":
    main()
