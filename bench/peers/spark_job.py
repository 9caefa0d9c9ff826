#!/usr/bin/env python3
"""The comparison subset in Apache Spark (pyspark, local[2]): Spark SQL over
the NDJSON file — the same query as duckdb_job.py, step for step.

    spark_job.py BEACONS.ndjson OUT.json
    spark_job.py --read-qos SINK OUT.json     (interoperability check)

Approximations: approx_count_distinct(viewer, 0.05) (HyperLogLog++, rsd 5 %)
and percentile_approx (Greenwald-Khanna, accuracy 10000).

--read-qos: Spark reads qos's Parquet output (`SINK/video`, `SINK/geo`,
Hive-partitioned dt=/hour=) and returns every row it sees (all columns,
binaries as hex, timestamps as epoch µs) plus the subset's exact columns
summed by Spark SQL per window × video_id and window × country; compare.py
checks them against the files as pyarrow reads them.

Settings: local[2] (the machine's 2 cores), spark.driver.memory 4g,
spark.sql.shuffle.partitions 8, UI off, session time zone UTC. The JVM
startup and session creation are part of the measured wall time (they are
part of running a Spark job); the job reports them under timings."""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

W, TIMEOUT, CAP, STARTUP_MAX = common.WINDOW_MS, common.SESSION_TIMEOUT_MS, common.SESSION_MAX_MS, common.STARTUP_MAX_MS

SQL = f"""
WITH
-- 1. Sessions (SPEC §3): beacons of a session_id in (ts, seq) order (the generator
--    writes each session's beacons in that order, so it is the engine's arrival order).
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
  SELECT *, sum(new_session) OVER (PARTITION BY session_id ORDER BY ts, seq
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS sess
  FROM marked
),
-- 2. Session state as of each beacon (this beacon included), in arrival order:
--    attributes from the first beacon that carries each, counts of view_start /
--    play_start / fatal errors so far, the first view_start / play_start times, and
--    whether a seek is open before it.
state AS (
  SELECT *,
    coalesce(first(video_id, true) OVER upto, 'unknown') AS s_video,
    coalesce(first(country, true) OVER upto, 'unknown') AS s_country,
    coalesce(first(viewer_id, true) OVER upto, session_id) AS s_viewer,
    sum(CASE WHEN event = 'view_start' THEN 1 ELSE 0 END) OVER upto AS views_upto,
    sum(CASE WHEN event = 'play_start' THEN 1 ELSE 0 END) OVER upto AS plays_upto,
    sum(CASE WHEN event = 'error' AND fatal THEN 1 ELSE 0 END) OVER upto AS fatals_upto,
    min(CASE WHEN event = 'view_start' THEN ts END) OVER upto AS view_ts,
    min(CASE WHEN event = 'play_start' THEN ts END) OVER upto AS play_ts,
    last(CASE WHEN event IN ('seek_start', 'seek_end') THEN event END, true) OVER before AS seek_state,
    first(ts) OVER upto AS session_start_ts,
    lead(ts) OVER w IS NULL AS is_last
  FROM sessionized
  WINDOW w AS (PARTITION BY session_id, sess ORDER BY ts, seq),
         upto AS (PARTITION BY session_id, sess ORDER BY ts, seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         before AS (PARTITION BY session_id, sess ORDER BY ts, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
-- 3. Stalls: an eligible rebuffer_start (after the first play_start, outside a seek)
--    opens a stall unless the latest eligible start / rebuffer_end before it is an
--    eligible start; a rebuffer_end closes the open stall (stall_ts: its start when
--    stalls do not overlap — they never do on this input).
eligible AS (
  SELECT *,
    event = 'rebuffer_start' AND plays_upto > 0 AND coalesce(seek_state, '') <> 'seek_start' AS eligible_start
  FROM state
),
stalls AS (
  SELECT *,
    last(CASE WHEN event = 'rebuffer_end' THEN 'end' WHEN eligible_start THEN 'start' END, true) OVER before AS stall_before,
    last(CASE WHEN eligible_start THEN ts END, true) OVER before AS stall_ts_before,
    last(CASE WHEN event = 'rebuffer_end' THEN 'end' WHEN eligible_start THEN 'start' END, true) OVER upto AS stall_after,
    last(CASE WHEN eligible_start THEN ts END, true) OVER upto AS stall_ts_after
  FROM eligible
  WINDOW upto AS (PARTITION BY session_id, sess ORDER BY ts, seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
         before AS (PARTITION BY session_id, sess ORDER BY ts, seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
-- 4. Contributions, each to the window of the event that completes it (SPEC §5).
contributions AS (
  SELECT s_video, s_country, ts - ts % {W} AS w,
    CASE WHEN event = 'view_start' AND views_upto = 1 THEN 1 ELSE 0 END AS views,
    CASE WHEN event = 'view_start' AND views_upto = 1 THEN s_viewer END AS viewer,
    CASE WHEN event = 'play_start' AND plays_upto = 1 THEN 1 ELSE 0 END AS plays,
    CASE WHEN ((event = 'play_start' AND plays_upto = 1) OR (event = 'view_start' AND views_upto = 1))
              AND play_ts - view_ts BETWEEN 0 AND {STARTUP_MAX} THEN play_ts - view_ts END AS startup_ms,
    coalesce(played_ms, 0) AS playing_ms,
    CASE WHEN eligible_start AND coalesce(stall_before, 'end') = 'end' THEN 1 ELSE 0 END AS rebuffer_count,
    CASE WHEN event = 'rebuffer_end' AND stall_before = 'start'
         THEN coalesce(duration_ms, greatest(0, ts - stall_ts_before)) ELSE 0 END AS rebuffer_ms,
    CASE WHEN event = 'error' AND fatal AND fatals_upto = 1 AND views_upto > 0 AND plays_upto = 0 THEN 1 ELSE 0 END AS vsf,
    0 AS ebvs
  FROM stalls
  UNION ALL
  -- the session's close: at its view_end, else latest ts + inactivity timeout. A stall
  -- still open ends there; ebvs = view_start, no play_start and no fatal error.
  SELECT s_video, s_country, close_ts - close_ts % {W}, 0, CAST(NULL AS STRING), 0, CAST(NULL AS BIGINT), 0, 0,
    CASE WHEN stall_after = 'start' THEN greatest(0, close_ts - stall_ts_after) ELSE 0 END,
    0,
    CASE WHEN close_ts > session_start_ts + {CAP} THEN CAST(raise_error(concat('session ', session_id, ' reaches the 6 h cap: not modelled')) AS INT)
         WHEN views_upto > 0 AND plays_upto = 0 AND fatals_upto = 0 THEN 1 ELSE 0 END
  FROM (SELECT *, CASE WHEN event = 'view_end' THEN ts ELSE ts + {TIMEOUT} END AS close_ts FROM stalls WHERE is_last) closes
)
SELECT CASE WHEN grouping(s_video) = 0 THEN 'video' ELSE 'geo' END AS table,
  w AS window_start_ms,
  coalesce(s_video, s_country) AS dim,
  sum(views) AS views,
  approx_count_distinct(viewer, 0.05) AS unique_viewers,
  sum(plays) AS plays,
  count(startup_ms) AS startup_count,
  sum(startup_ms) AS startup_ms_sum,
  percentile_approx(startup_ms, 0.5) AS startup_p50,
  percentile_approx(startup_ms, 0.95) AS startup_p95,
  sum(playing_ms) AS playing_ms,
  sum(rebuffer_count) AS rebuffer_count,
  sum(rebuffer_ms) AS rebuffer_ms,
  sum(vsf) AS vsf,
  sum(ebvs) AS ebvs
FROM contributions
GROUP BY GROUPING SETS ((w, s_video), (w, s_country))
"""


def session():
    from pyspark.sql import SparkSession
    return (SparkSession.builder.master("local[2]").appName("videoqos-bench")
            .config("spark.driver.memory", os.environ.get("BENCH_SPARK_MEMORY", "4g"))
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate())


def stop(spark):
    """Stops Spark and waits for the JVM, so that its CPU time and memory
    are accounted to this process's tree (wait4 in the bench driver)."""
    from pyspark import SparkContext
    gateway = SparkContext._gateway
    spark.stop()
    proc = getattr(gateway, "proc", None) if gateway else None
    if proc is not None:
        try:
            gateway.shutdown()
        except Exception:
            pass
        if proc.stdin:
            proc.stdin.close()  # the gateway JVM exits at EOF on its stdin
        proc.wait(60)


def job(spark, src, out):
    from pyspark.sql.types import StructType, StructField, StringType, LongType, BooleanType
    types = {"string": StringType(), "bigint": LongType(), "boolean": BooleanType()}
    schema = StructType([StructField(n, types[t]) for n, t in common.FIELDS])
    spark.read.schema(schema).json(str(src)).createOrReplaceTempView("beacons")
    return [r.asDict() for r in spark.sql(SQL).collect()]


def read_qos(spark, sink):
    """Every row of SINK/video and SINK/geo as Spark reads them, and the
    subset's exact columns summed by Spark SQL."""
    out = {}
    sums = {"views": "views", "plays": "plays", "startup_count": "startup_ms_count",
            "startup_ms_sum": "startup_ms_sum", "playing_ms": "playing_ms", "rebuffer_count": "rebuffer_count",
            "rebuffer_ms": "rebuffer_ms", "vsf": "vsf", "ebvs": "ebvs"}
    for table, dim in (("video", "video_id"), ("geo", "country")):
        df = (spark.read.option("basePath", f"{sink}/{table}")
              .option("pathGlobFilter", "*.parquet").parquet(f"{sink}/{table}"))
        df.createOrReplaceTempView(f"qos_{table}")
        cols = []
        for f in df.schema.fields:
            t = f.dataType.typeName()
            if t == "binary":
                cols.append(f"hex(`{f.name}`) AS `{f.name}`")
            elif t == "timestamp":
                cols.append(f"unix_micros(`{f.name}`) AS `{f.name}`")
            elif t == "date":
                cols.append(f"CAST(`{f.name}` AS STRING) AS `{f.name}`")
            else:
                cols.append(f"`{f.name}`")
        out[f"{table}_schema"] = [(f.name, f.dataType.simpleString()) for f in df.schema.fields]
        out[f"{table}_rows"] = [r.asDict() for r in spark.sql(f"SELECT {', '.join(cols)} FROM qos_{table}").collect()]
        agg = ", ".join(f"sum({src}) AS {name}" for name, src in sums.items())
        out[f"{table}_sums"] = [r.asDict() for r in spark.sql(
            f"SELECT unix_millis(window_start) AS window_start_ms, {dim} AS dim, {agg} "
            f"FROM qos_{table} GROUP BY 1, 2").collect()]
    return out


def main():
    import json
    t0 = time.perf_counter()
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    spark = session()
    spark.sparkContext.setLogLevel("ERROR")
    t1 = time.perf_counter()
    try:
        if "--read-qos" in sys.argv:
            sink, out = args
            Path(out).write_text(json.dumps({"engine": "spark", "version": spark.version, **read_qos(spark, sink)}))
        else:
            src, out = args
            rows = job(spark, src, out)
            t2 = time.perf_counter()
            common.write(out, "spark", spark.version, rows, {"session_start_s": t1 - t0, "query_s": t2 - t1})
    finally:
        stop(spark)


if __name__ == "__main__":
    main()
