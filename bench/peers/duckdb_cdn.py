#!/usr/bin/env python3
"""The cdn_edge table in DuckDB: SQL over read_ndjson of EdgeCast RTLD records.

    duckdb_cdn.py RECORDS.ndjson OUT.json [WINDOW_MS]

Per window × account × owner × pop, the columns of qos's `cdn_edge` (README
"Input: CDN access logs"): requests, http_errors (status > 299), http_2xx …
http_5xx, slow_responses (write_time > 200 ms), bytes_out, cache_hits,
cache_misses, incomplete_responses, serve time p50/p95/p99 (approx_quantile)
and unique clients (approx_count_distinct). Time: the record's `timestamp`
truncated to whole seconds, then windowed. Owner: the first 32-hex segment
of the first `/<32hex>/<32hex>/` between the first and second `/slices` of
`rewritten_path`, else ''; account: its first path segment."""
import json
import os
import sys
import time
from pathlib import Path

import duckdb

COLUMNS = ("timestamp: 'DOUBLE', pop: 'VARCHAR', status_code: 'BIGINT', cache_status: 'VARCHAR', "
           "write_time: 'DOUBLE', bytes_out: 'BIGINT', rewritten_path: 'VARCHAR', client_ip: 'VARCHAR', "
           "last_byte_served: 'BIGINT'")


def sql(window_ms):
    return f"""
WITH r AS (
  SELECT *,
    (CAST(floor(timestamp) AS BIGINT) * 1000 // {window_ms}) * {window_ms} AS window_start_ms,
    split_part(rewritten_path, '/', 2) AS account,
    coalesce(regexp_extract(split_part(rewritten_path, '/slices', 2),
                            '/([0-9A-Fa-f]{{32}})/[0-9A-Fa-f]{{32}}/', 1), '') AS owner
  FROM read_ndjson($path, columns = {{{COLUMNS}}})
  WHERE timestamp IS NOT NULL AND status_code IS NOT NULL
)
SELECT window_start_ms, account, owner, pop,
  count(*) AS requests,
  count(*) FILTER (WHERE status_code > 299) AS http_errors,
  count(*) FILTER (WHERE status_code BETWEEN 200 AND 299) AS http_2xx,
  count(*) FILTER (WHERE status_code BETWEEN 300 AND 399) AS http_3xx,
  count(*) FILTER (WHERE status_code BETWEEN 400 AND 499) AS http_4xx,
  count(*) FILTER (WHERE status_code BETWEEN 500 AND 599) AS http_5xx,
  count(*) FILTER (WHERE write_time * 1000 > 200) AS slow_responses,
  coalesce(sum(bytes_out), 0) AS bytes_out,
  count(*) FILTER (WHERE cache_status IN ('TCP_HIT', 'TCP_EXPIRED_HIT', 'TCP_PARTIAL_HIT')) AS cache_hits,
  count(*) FILTER (WHERE cache_status IN ('TCP_MISS', 'TCP_EXPIRED_MISS', 'TCP_CLIENT_REFRESH_MISS')) AS cache_misses,
  count(*) FILTER (WHERE last_byte_served = 0) AS incomplete_responses,
  approx_quantile(write_time * 1000, 0.5) AS serve_ms_p50,
  approx_quantile(write_time * 1000, 0.95) AS serve_ms_p95,
  approx_quantile(write_time * 1000, 0.99) AS serve_ms_p99,
  approx_count_distinct(client_ip) AS unique_clients
FROM r
GROUP BY ALL
"""


ADDITIVE = ["requests", "http_errors", "http_2xx", "http_3xx", "http_4xx", "http_5xx", "slow_responses",
            "bytes_out", "cache_hits", "cache_misses", "incomplete_responses"]


def main():
    src, out = sys.argv[1:3]
    window_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 120_000
    t0 = time.perf_counter()
    con = duckdb.connect()
    threads = os.environ.get("BENCH_DUCKDB_THREADS")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    cur = con.execute(sql(window_ms), {"path": str(src)})
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    t1 = time.perf_counter()
    for r in rows:
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = float(v)
    Path(out).write_text(json.dumps({"engine": "duckdb", "version": duckdb.__version__,
                                     "timings": {"query_s": t1 - t0}, "rows": rows}))


if __name__ == "__main__":
    main()
