"""qos generate output against schemas/beacon.schema.json (a real JSON
Schema validator), and the malformed-injection mode against the engine."""
import json
from collections import Counter

import jsonschema
import pyarrow.parquet as pq
from conftest import ROOT, qos


def validator():
    schema = json.loads((ROOT / "schemas" / "beacon.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def parse(line):
    try:
        return json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def test_clean_generator_output_validates(tmp_path):
    out = tmp_path / "g.ndjson"
    qos("generate", "--seed", "3", "--sessions", "300", "--late-fraction", "0.02",
        "--duplicate-fraction", "0.02", "--explicit-geo", "--out", out)
    v = validator()
    lines = out.read_text().splitlines()
    events = Counter()
    for line in lines:
        obj = json.loads(line)
        errors = list(v.iter_errors(obj))
        assert not errors, f"{line}: {errors[0].message}"
        events[obj["event"]] += 1
    assert len(lines) > 10_000
    # Realistic traffic: every event type occurs.
    assert set(events) == {"view_start", "play_start", "heartbeat", "rebuffer_start", "rebuffer_end", "pause",
                           "resume", "seek_start", "seek_end", "bitrate_change", "error", "view_end", "segment"}


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a.ndjson", tmp_path / "b.ndjson", tmp_path / "c.ndjson"
    for path, seed in ((a, 9), (b, 9), (c, 10)):
        qos("generate", "--seed", seed, "--sessions", "200", "--malformed-fraction", "0.01", "--out", path)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_malformed_lines_are_exactly_the_rejects(tmp_path):
    """Every line the schema refuses is a reject row of the engine, and
    every reject row is such a line (same line numbers)."""
    gen = tmp_path / "m.ndjson"
    qos("generate", "--seed", "5", "--sessions", "300", "--malformed-fraction", "0.05", "--out", gen)
    v = validator()
    invalid = set()
    for n, raw in enumerate(gen.read_bytes().split(b"\n")[:-1], start=1):
        obj = parse(raw)
        if obj is None or not isinstance(obj, dict) or list(v.iter_errors(obj)):
            invalid.add(n)
    assert len(invalid) > 100
    sink = tmp_path / "out"
    qos("replay", gen, "--sink", sink, "--quiet")
    rejects = pq.read_table(sink / "rejects", partitioning="hive").to_pylist()
    lines = {int(r["source"].rsplit(":", 1)[1]) for r in rejects}
    assert lines == invalid
    reasons = Counter(r["reason"] for r in rejects)
    assert set(reasons) <= {"invalid_json", "missing_field:ts", "wrong_type:ts", "unknown_event",
                            "field_too_long:session_id", "not_an_object", "invalid_value:played_ms"}
    assert len(reasons) >= 6


def test_schema_bounds_are_the_engine_bounds(tmp_path):
    """Each numeric bound in the schema is the engine's: the maximum is
    valid and accepted, one more is invalid and rejected as
    invalid_value:<field> (README "Rejects")."""
    schema = json.loads((ROOT / "schemas" / "beacon.schema.json").read_text())
    v = validator()
    t0 = 1_767_225_600_000
    lines, expected = [], Counter({"invalid_value:ts": 1})
    floor = schema["properties"]["ts"]["minimum"]
    for ts, ok in ((floor - 1, False), (floor, True)):  # first: later beacons make 2000 too old
        obj = {"event": "view_start", "ts": ts, "session_id": f"ts-{ok}"}
        assert (not list(v.iter_errors(obj))) == ok
        lines.append(json.dumps(obj))
    for i, field in enumerate(["played_ms", "duration_ms", "download_ms", "ttfb_ms", "bitrate_kbps", "bytes",
                               "video_duration_ms", "playhead_ms", "seq"]):
        top = schema["properties"][field]["maximum"]
        for value, ok in ((top, True), (top + 1, False)):
            obj = {"event": "segment", "ts": t0 + i, "session_id": f"{field}-{ok}", field: value}
            assert (not list(v.iter_errors(obj))) == ok, (field, value)
            lines.append(json.dumps(obj))
            if not ok:
                expected[f"invalid_value:{field}"] += 1
    gen = tmp_path / "bounds.ndjson"
    gen.write_text("\n".join(lines) + "\n")
    qos("replay", gen, "--sink", tmp_path / "out", "--quiet")
    rejects = pq.read_table(tmp_path / "out" / "rejects", partitioning="hive").to_pylist()
    assert Counter(r["reason"] for r in rejects) == expected
