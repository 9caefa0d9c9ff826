#!/usr/bin/env python3
"""Shows what `make demo` wrote, the way a user would look at it: DuckDB
over the Hive-partitioned Parquet dataset. Prints each query, then its result."""
import sys
from pathlib import Path

import duckdb

sink = sys.argv[1] if len(sys.argv) > 1 else "output"
QUERIES = [
    ("Per CDN PoP: failed requests and rebuffering (the degraded PoP stands out)",
     f"""select cdn, pop, sum(requests) as requests,
       round(100.0 * sum(failed_requests) / sum(requests), 2) as fail_pct,
       round(100.0 * sum(rebuffer_ms) / nullif(sum(playing_ms + rebuffer_ms), 0), 2) as rebuffer_pct
from read_parquet('{sink}/cdn/**/*.parquet', hive_partitioning = true)
group by all order by rebuffer_pct desc nulls last limit 8"""),
    ("Per player: start and playback failures (the broken version stands out)",
     f"""select player_name, sum(views) as views, sum(vsf) as vsf, sum(vpf) as vpf,
       round(100.0 * sum(vsf) / nullif(sum(views), 0), 2) as vsf_pct
from read_parquet('{sink}/device/**/*.parquet', hive_partitioning = true)
group by all order by vsf_pct desc nulls last limit 8"""),
    ("Per country",
     f"""select country, sum(views) as views, sum(plays) as plays
from read_parquet('{sink}/geo/**/*.parquet', hive_partitioning = true)
group by all order by views desc limit 8"""),
]
if any(Path(sink, "rejects").rglob("*.parquet")):
    # `qos demo` printed how many it counted live; these rows must add up to it.
    QUERIES.append(("Rejects by reason (ts_in_future must be absent: the demo injects none)",
                    f"""select reason, count(*) as rows
from read_parquet('{sink}/rejects/**/*.parquet', hive_partitioning = true)
group by all order by rows desc"""))
if any(Path(sink, "alerts").rglob("*.parquet")):
    # One row per injected incident (README "Alerts").
    QUERIES.append(("Alerts: one firing per incident (degraded PoP, broken player version, slow startup)",
                    f"""select window_start, rule, dimensions, round(value, 4) as value, round("limit", 4) as "limit", volume
from read_parquet('{sink}/alerts/**/*.parquet', hive_partitioning = true)
order by window_start, rule"""))
for title, sql in QUERIES:
    print(f"-- {title}\n{sql};")
    print(duckdb.sql(sql))
