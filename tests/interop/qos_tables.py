"""Loads a VideoQoS sink into comparable values: for every table, window and
group, the files of that window (base, late deltas, other writers) merged —
numbers summed, HLL sketches unioned (datasketches), DDSketches merged
(ddsketch) — so two sinks can be compared value for value."""
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
from datasketches import hll_sketch, hll_union, tgt_hll_type
from ddsketch.pb.proto import DDSketchProto
from ddsketch.pb import ddsketch_pb2

METRIC_TABLES = {"overall": [], "video": ["video_id"], "geo": ["country", "region"],
                 "device": ["device_type", "os", "browser", "player_name"], "cdn": ["cdn", "pop"],
                 "cdn_edge": ["cdn", "account", "owner", "pop"]}
DERIVED = {"unique_viewers", "startup_ms_p50", "startup_ms_p90", "startup_ms_p95", "startup_ms_p99",
           "vsf_rate", "ebvs_rate", "vpf_rate", "rebuffer_ratio", "avg_bitrate_kbps", "download_ms_p50",
           "download_ms_p95", "ttfb_ms_p95", "throughput_kbps_p50",
           "unique_clients", "serve_ms_p50", "serve_ms_p95", "serve_ms_p99", "ttfb_ms_p50", "ttfb_ms_p99"}


def files(sink, table: str, filesystem=None):
    """The visible Parquet files of a table: under a local directory, or
    `bucket/prefix` on a pyarrow file system (S3FileSystem)."""
    if filesystem is not None:
        from pyarrow.fs import FileSelector
        infos = filesystem.get_file_info(FileSelector(f"{sink}/{table}", recursive=True, allow_not_found=True))
        return sorted(i.path for i in infos if i.path.endswith(".parquet") and not i.base_name.startswith("."))
    return sorted(p for p in (Path(sink) / table).rglob("*.parquet") if not p.name.startswith("."))


def dd_bins(blob: bytes):
    msg = ddsketch_pb2.DDSketch()
    msg.ParseFromString(blob)
    store = msg.positiveValues
    bins = {store.contiguousBinIndexOffset + i: c for i, c in enumerate(store.contiguousBinCounts) if c}
    for k, c in store.binCounts.items():
        bins[k] = bins.get(k, 0) + c
    return bins, msg.zeroCount


def hll_state(compact: bytes):
    """Register for register: the HLL_8 registers, or the sorted coupons of a
    LIST/SET sketch (the estimate's HIP/composite choice depends on how the
    sketch was built, the registers do not)."""
    mode = compact[7] & 3
    if mode == 2:
        return ("hll", compact[40:].hex())
    start = 8 if mode == 0 else 12
    coupons = sorted(int.from_bytes(compact[i:i + 4], "little") for i in range(start, len(compact), 4))
    return ("coupons", tuple(coupons))


class Merged:
    def __init__(self):
        self.sums = defaultdict(int)
        self.hll = {}
        self.dd = defaultdict(lambda: (defaultdict(float), [0.0]))

    def add(self, row, schema):
        for name, typ in schema:
            v = row[name]
            if name in DERIVED or name in ("window_start", "window_end") or v is None:
                continue
            if name.endswith("_hll"):
                if name not in self.hll:
                    self.hll[name] = hll_union(12)
                self.hll[name].update(hll_sketch.deserialize(bytes(v)))
            elif name.endswith("_sketch"):
                bins, zeros = dd_bins(bytes(v))
                b, z = self.dd[name]
                for k, c in bins.items():
                    b[k] += c
                z[0] += zeros
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                self.sums[name] += v

    def value(self):
        out = dict(self.sums)
        for name, union in self.hll.items():
            out[name] = hll_state(union.get_result(tgt_hll_type.HLL_8).serialize_compact())
        for name, (b, z) in self.dd.items():
            out[name] = (tuple(sorted((k, c) for k, c in b.items() if c)), z[0])
        return out


# Not part of the exactness guarantees (docs/semantics.md §4): point samples and
# processing-order counters.
UNSTABLE = {"concurrent_plays", "late_events"}


def load(sink, tables=None, filesystem=None):
    """{(table, window_start, dims): merged values} plus sessions and rejects
    rows. Groups whose only non-zero values are unstable columns are left out.
    `filesystem`: read `sink` (then `bucket/prefix`) through it."""
    out = {}
    for table, dims in METRIC_TABLES.items():
        if tables and table not in tables:
            continue
        merged = defaultdict(Merged)
        for f in files(sink, table, filesystem):
            t = pq.read_table(f, filesystem=filesystem)
            schema = [(n, t.schema.field(n).type) for n in t.column_names]
            for row in t.to_pylist():
                key = (table, row["window_start"], tuple(row[d] for d in dims))
                merged[key].add(row, schema)
        for k, m in merged.items():
            v = {c: x for c, x in m.value().items() if c not in UNSTABLE}
            if any(x and x not in (((), 0.0), ("coupons", ())) for x in v.values()):
                out[k] = v
    # Sessions: every column. Rejects: reason and payload (their window and
    # ingested_at follow the partition's clock, and source names the input).
    for table, keep in (("sessions", None), ("rejects", ("reason", "payload"))):
        if tables and table not in tables:
            continue
        rows = []
        for f in files(sink, table, filesystem):
            for row in pq.read_table(f, filesystem=filesystem).to_pylist():
                rows.append(tuple(sorted((k, str(v)) for k, v in row.items() if keep is None or k in keep)))
        out[(table,)] = sorted(rows)
    return out


def diff(a, b, limit=5):
    """Human-readable differences between two loads (empty when equal)."""
    problems = []
    for k in sorted(set(a) | set(b), key=str):
        if a.get(k) != b.get(k):
            problems.append(f"{k}: {str(a.get(k))[:300]} != {str(b.get(k))[:300]}")
            if len(problems) >= limit:
                break
    return problems
