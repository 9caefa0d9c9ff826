"""Oracle for the Swift Parquet tests: write Parquet files with pyarrow.

usage: parquet_write.py OUT_DIR

Writes several files (ZSTD / uncompressed / SNAPPY, dictionary / plain, v1 / v2 data
pages, nullable columns, several row groups, tiny pages with dictionary
fallback) and OUT_DIR/expected.json: {file: {"fields": [{name, physical,
logical, optional}], "columns": {name: canonical values}, "num_rows": n,
"num_row_groups": k}}. Canonical values as in parquet_read.py.
"""
import json
import math
import os
import struct
import sys

import pyarrow as pa
import pyarrow.parquet as pq

N = 3000


def canon(v, kind):
    if v is None:
        return None
    if kind == "bool":
        return "true" if v else "false"
    if kind == "double":
        return "nan" if math.isnan(v) else "%016x" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if kind == "binary":
        return bytes(v).hex()
    return str(v)


WORDS = ["", "NL", "DE", "héllo", "日本", "🎬 video", "cdn-eu-west-1", "x" * 70]
DOUBLES = [0.5, -0.0, 0.0, float("inf"), float("-inf"), float("nan"), 1e300, -2.25]

# name, arrow type, nullable, physical, logical, value(i) (None = null), canonical kind
COLUMNS = [
    ("i32", pa.int32(), True, "int32", "none", lambda i: None if i % 7 == 0 else (i * 7919) % 200001 - 100000, "other"),
    ("i64", pa.int64(), True, "int64", "none", lambda i: None if i % 5 == 1 else (i - 1500) * 123456789012, "other"),
    ("d", pa.float64(), True, "double", "none", lambda i: None if i % 11 == 3 else DOUBLES[i % 8] * (1 + i % 3), "double"),
    ("b", pa.bool_(), True, "boolean", "none", lambda i: None if i % 13 == 0 else (i % 3 == 0), "bool"),
    ("s", pa.string(), True, "byteArray", "string", lambda i: None if i % 4 == 2 else WORDS[i % 8], "other"),
    ("u", pa.string(), True, "byteArray", "string", lambda i: None if i % 9 == 0 else f"user-{i}-ü", "other"),
    ("bin", pa.binary(), True, "byteArray", "none", lambda i: None if i % 6 == 0 else bytes([i % 256, (i * 3) % 256]) * (i % 4), "binary"),
    ("ts", pa.timestamp("us", tz="UTC"), True, "int64", "timestampMicrosUTC", lambda i: None if i % 8 == 0 else 1_700_000_000_000_000 + i * 1_000_003, "other"),
    ("req", pa.int64(), False, "int64", "none", lambda i: i, "other"),
]

VARIANTS = {
    "zstd_dict_v1.parquet": dict(compression="zstd", use_dictionary=True, data_page_version="1.0", row_group_size=1000),
    "zstd_dict_v2.parquet": dict(compression="zstd", use_dictionary=True, data_page_version="2.0", row_group_size=1200),
    "zstd_plain_v2.parquet": dict(compression="zstd", use_dictionary=False, data_page_version="2.0"),
    "uncompressed_plain_v1.parquet": dict(compression="none", use_dictionary=False, data_page_version="1.0"),
    "snappy_dict_v1.parquet": dict(compression="snappy", use_dictionary=True, row_group_size=2000),
    "zstd_small_pages_fallback.parquet": dict(compression="zstd", use_dictionary=True, data_page_size=512,
                                              dictionary_pagesize_limit=256, write_batch_size=64),
}


def main():
    out_dir = sys.argv[1]
    fields = [pa.field(n, t, nullable=nl) for n, t, nl, *_ in COLUMNS]
    data = {n: [f(i) for i in range(N)] for n, _, _, _, _, f, _ in COLUMNS}
    arrays = []
    for n, t, *_ in COLUMNS:
        if pa.types.is_timestamp(t):
            arrays.append(pa.array(data[n], pa.int64()).cast(t))
        else:
            arrays.append(pa.array(data[n], t))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata={"origin": "pyarrow oracle"}))
    expected = {}
    for name, kwargs in VARIANTS.items():
        path = os.path.join(out_dir, name)
        pq.write_table(table, path, **kwargs)
        md = pq.ParquetFile(path).metadata
        expected[name] = {
            "fields": [{"name": n, "physical": p, "logical": lg, "optional": nl} for n, _, nl, p, lg, _, _ in COLUMNS],
            "columns": {n: [canon(v, k) for v in data[n]] for n, _, _, _, _, _, k in COLUMNS},
            "num_rows": md.num_rows,
            "num_row_groups": md.num_row_groups,
        }
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
