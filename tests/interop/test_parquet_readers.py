"""Every table qos replay writes is read by pyarrow and by DuckDB, and
every value equals what the engine computed (its --json-dump)."""
import math
import os
from collections import defaultdict

import duckdb
import pyarrow.parquet as pq
import pytest

TABLES = ["overall", "video", "geo", "device", "cdn", "sessions", "rejects"]


def norm(v, typ=None):
    """Reader values → the dump's JSON representation."""
    if v is None:
        return None
    if hasattr(v, "timestamp"):
        return round(v.timestamp() * 1_000_000)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=0)
    return a == b


def test_pyarrow_reads_every_file_with_engine_values(replayed):
    sink, files = replayed
    assert {f["table"] for f in files} == set(TABLES)
    for f in files:
        t = pq.read_table(sink / f["path"])
        assert t.column_names == list(f["columns"])
        for name, expected in f["columns"].items():
            got = [norm(v) for v in t.column(name).to_pylist()]
            assert len(got) == len(expected)
            for g, e in zip(got, expected):
                assert same(g, e), f"{f['path']} {name}: {g!r} != {e!r}"


def rows_from_dump(files, table):
    out = []
    for f in files:
        if f["table"] != table:
            continue
        cols = f["columns"]
        names = list(cols)
        out += [tuple(cols[n][i] for n in names) for i in range(len(cols[names[0]]))]
    return names, out


def key(row):
    return tuple((x is None, str(x)) for x in row)


@pytest.mark.parametrize("table", TABLES)
def test_duckdb_reads_each_table_as_a_hive_dataset(replayed, table):
    sink, files = replayed
    names, expected = rows_from_dump(files, table)
    con = duckdb.connect()
    cols = ", ".join(f'"{n}"' for n in names)
    rel = con.sql(f"select {cols} from read_parquet('{sink}/{table}/**/*.parquet', hive_partitioning=true)")
    got = [tuple(norm(v) for v in row) for row in rel.fetchall()]
    assert len(got) == len(expected) > 0
    for g, e in zip(sorted(got, key=key), sorted(expected, key=key)):
        assert all(same(a, b) for a, b in zip(g, e)), f"{table}: {g} != {e}"
    # The hive partition columns come from the directory names.
    parts = con.sql(f"select distinct dt, hour from read_parquet('{sink}/{table}/**/*.parquet', "
                    "hive_partitioning=true)").fetchall()
    assert parts and all(len(str(dt)) == 10 for dt, _ in parts)


def test_duckdb_sees_logical_types(replayed):
    sink, _ = replayed
    con = duckdb.connect()
    types = {r[0]: r[1] for r in con.sql(f"describe select * from read_parquet('{sink}/cdn/**/*.parquet')").fetchall()}
    assert types["window_start"] in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")
    assert types["cdn"] == "VARCHAR" and types["views"] == "BIGINT"
    assert types["rebuffer_ratio"] == "DOUBLE" and types["viewers_hll"] == "BLOB"
    s = dict((r[0], r[1]) for r in con.sql(f"describe select * from read_parquet('{sink}/sessions/**/*.parquet')").fetchall())
    assert s["vsf"] == "BOOLEAN" and s["closed_at"] in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMP")


def test_files_carry_metadata_and_zstd(replayed):
    sink, files = replayed
    f = pq.ParquetFile(sink / files[0]["path"])
    meta = {k.decode(): v.decode() for k, v in f.metadata.metadata.items()}
    assert meta["videoqos.spec_version"] == "1" and meta["ddsketch.key"] == "ceil"
    assert meta["videoqos.table"] == files[0]["table"] and "videoqos.source" in meta
    assert f.metadata.row_group(0).column(0).statistics.has_min_max
    # ZSTD, except a column chunk of one page under 64 bytes: stored
    # UNCOMPRESSED (zstd cannot shrink it), which pyarrow reads like any other.
    seen = set()
    for d in files:
        m = pq.ParquetFile(sink / d["path"]).metadata
        for g in range(m.num_row_groups):
            for c in range(m.num_columns):
                col = m.row_group(g).column(c)
                seen.add(col.compression)
                if col.compression == "UNCOMPRESSED":
                    assert col.total_uncompressed_size < 64 + 64, (d["path"], col.path_in_schema)
                else:
                    assert col.compression == "ZSTD"
    assert seen == {"ZSTD", "UNCOMPRESSED"}


def test_late_deltas_and_duplicates_are_present(replayed):
    sink, files = replayed
    assert any("_late" in f["path"] for f in files)
    con = duckdb.connect()
    late, dups, views = con.sql(f"select sum(late_events), sum(duplicates), sum(views) from "
                                f"read_parquet('{sink}/overall/**/*.parquet')").fetchall()[0]
    # A duplicate that arrives after its session closed opens a new session (docs/semantics.md §2).
    assert late > 0 and dups > 0 and 600 <= views <= 606
