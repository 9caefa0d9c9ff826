"""Oracle for the Swift Parquet tests: read Parquet files with pyarrow AND DuckDB.

usage: parquet_read.py OUT.json FILE.parquet...

Writes {file: {"pyarrow": {...}, "duckdb": {...}}} where each side has
"types" (column -> type name), "columns" (column -> canonical values) and
pyarrow also "num_rows", "num_row_groups", "metadata". Canonical values are
strings (or null): booleans "true"/"false", integers and timestamps (as epoch
microseconds) in decimal, doubles as 16 hex digits of their bits or "nan",
binary as lowercase hex, strings as themselves. A reader error is reported as
{"error": "..."} for that side.
"""
import json
import math
import struct
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def canon(v, kind):
    if v is None:
        return None
    if kind == "bool":
        return "true" if v else "false"
    if kind == "double":
        if math.isnan(v):
            return "nan"
        return "%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if kind == "binary":
        return bytes(v).hex()
    if kind == "hexstr":
        return v.lower()
    return str(v)


def arrow_kind(t):
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    return "other"


def read_pyarrow(path):
    f = pq.ParquetFile(path)
    table = f.read()
    out = {"num_rows": f.metadata.num_rows, "num_row_groups": f.metadata.num_row_groups,
           "types": {}, "columns": {}, "metadata": {}}
    for k, v in (f.metadata.metadata or {}).items():
        out["metadata"][k.decode()] = v.decode()
    for field in table.schema:
        col = table.column(field.name)
        out["types"][field.name] = str(field.type)
        if pa.types.is_timestamp(field.type):
            col = col.cast(pa.int64())
        kind = arrow_kind(field.type)
        out["columns"][field.name] = [canon(v, kind) for v in col.to_pylist()]
    return out


def read_duckdb(path):
    con = duckdb.connect()
    src = "read_parquet(?, file_row_number=true)"
    desc = con.execute(f"DESCRIBE SELECT * FROM {src}", [path]).fetchall()
    types = {name: typ for name, typ, *_ in desc if name != "file_row_number"}
    exprs, kinds = [], []
    for name, typ in types.items():
        q = '"' + name.replace('"', '""') + '"'
        if typ.startswith("TIMESTAMP"):
            exprs.append(f"epoch_us({q})"); kinds.append("other")
        elif typ == "BLOB":
            exprs.append(f"hex({q})"); kinds.append("hexstr")
        elif typ == "BOOLEAN":
            exprs.append(q); kinds.append("bool")
        elif typ in ("DOUBLE", "FLOAT"):
            exprs.append(q); kinds.append("double")
        else:
            exprs.append(q); kinds.append("other")
    columns = {name: [] for name in types}
    mismatches = []
    if exprs:
        rows = con.execute(f"SELECT {', '.join(exprs)} FROM {src} ORDER BY file_row_number", [path]).fetchall()
        for row in rows:
            for name, kind, v in zip(types, kinds, row):
                columns[name].append(canon(v, kind))
        mismatches = filter_mismatches(con, path, types)
    return {"types": types, "columns": columns, "filter_mismatches": mismatches}


def nan_safe_ge(x, v):
    """DuckDB orders NaN above every other double."""
    if isinstance(x, float) and math.isnan(x):
        return True
    return x >= v


def filter_mismatches(con, path, types):
    """Row counts of `col = v` and `col >= v` from DuckDB (which prunes row groups
    with the column statistics) against counts over the unfiltered values."""
    out = []
    con.execute("SET TimeZone = 'UTC'")
    for name, typ in types.items():
        if typ not in ("VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "TIMESTAMP WITH TIME ZONE"):
            continue
        q = '"' + name.replace('"', '""') + '"'
        values = [r[0] for r in con.execute(f"SELECT {q} FROM read_parquet(?)", [path]).fetchall()]
        present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        if not present:
            continue
        probes = sorted(set([present[0], present[len(present) // 2], present[-1], min(present), max(present)]))
        for v in probes:
            for op, pred in (("=", lambda x: x == v), (">=", lambda x: nan_safe_ge(x, v))):
                want = sum(1 for x in values if x is not None and pred(x))
                got = con.execute(f"SELECT count(*) FROM read_parquet(?) WHERE {q} {op} ?", [path, v]).fetchone()[0]
                if got != want:
                    out.append(f"{name} {op} {v!r}: duckdb counted {got}, expected {want}")
    return out


def guarded(fn, path):
    try:
        return fn(path)
    except Exception as e:  # reported to the Swift test, which fails on it
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    out_path, files = sys.argv[1], sys.argv[2:]
    result = {p: {"pyarrow": guarded(read_pyarrow, p), "duckdb": guarded(read_duckdb, p)} for p in files}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
