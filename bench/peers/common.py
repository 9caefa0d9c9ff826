"""What every peer job writes: one JSON document with a fixed schema.

{"engine": ..., "version": ..., "timings": {...}, "rows": [ROW, ...]}

ROW = {"table": "video" | "geo", "window_start_ms": int, "dim": str,
       <EXACT columns: int>, <APPROX columns: float or null>}

`table` names the qos table the row is compared with: `video` rows are keyed
by video_id, `geo` rows by country (qos's geo table summed over region).
The reference run (duckdb_job.py --reference) adds `unique_viewers_exact`
and `startup_values` (every startup time of the group, sorted)."""
import json
from pathlib import Path

# Columns that must agree exactly between qos and every peer.
EXACT = ["views", "plays", "startup_count", "startup_ms_sum", "playing_ms",
         "rebuffer_count", "rebuffer_ms", "vsf", "ebvs"]
# Each engine's own approximation: compared within documented bounds (compare.py).
APPROX = ["unique_viewers", "startup_p50", "startup_p95"]
COLUMNS = ["table", "window_start_ms", "dim"] + EXACT + APPROX

WINDOW_MS = 120_000            # 2-minute tumbling windows, epoch-aligned (SPEC §4)
SESSION_TIMEOUT_MS = 300_000   # inactivity timeout (SPEC §3)
SESSION_MAX_MS = 21_600_000    # maximum session length (SPEC §3)
STARTUP_MAX_MS = 300_000       # startup counted when 0 <= x <= 5 min (SPEC §5)

# The beacon fields the comparison subset needs (a projection: both engines
# parse only these).
FIELDS = [("event", "string"), ("ts", "bigint"), ("session_id", "string"), ("seq", "bigint"),
          ("viewer_id", "string"), ("video_id", "string"), ("country", "string"),
          ("played_ms", "bigint"), ("duration_ms", "bigint"), ("fatal", "boolean")]


def write(path, engine, version, rows, timings):
    out = []
    for r in rows:
        d = {c: r[c] for c in COLUMNS}
        for c in EXACT + ["window_start_ms"]:
            d[c] = int(d[c] or 0)
        for c in APPROX:
            d[c] = None if d[c] is None else float(d[c])
        for extra in ("unique_viewers_exact", "startup_values"):
            if extra in r:
                d[extra] = r[extra]
        out.append(d)
    out.sort(key=lambda d: (d["table"], d["window_start_ms"], d["dim"]))
    Path(path).write_text(json.dumps({"engine": engine, "version": version, "timings": timings, "rows": out}))


def read(path):
    return json.loads(Path(path).read_text())
