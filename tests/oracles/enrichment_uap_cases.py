#!/usr/bin/env python3
"""Converts uap-core's YAML test suites to JSON for the Swift tests.

    enrichment_uap_cases.py OUTDIR [UAP_TESTS_DIR]

Writes OUTDIR/test_ua.json, test_os.json, test_device.json: lists of
{"ua": ..., "expected": {field: value-or-null}} in file order. Empty strings
are kept as "" (the Swift side treats "" and null alike, as uap-core's own
runners do).
"""
import json
import os
import sys

import yaml

FIELDS = {
    "test_ua.yaml": ["family", "major", "minor", "patch"],
    "test_os.yaml": ["family", "major", "minor", "patch", "patch_minor"],
    "test_device.yaml": ["family", "brand", "model"],
}


def main():
    outdir = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else "/usr/share/uap-core/tests"
    os.makedirs(outdir, exist_ok=True)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for name, fields in FIELDS.items():
        with open(os.path.join(src, name), encoding="utf-8") as f:
            doc = yaml.load(f, Loader=loader)
        cases = []
        for c in doc["test_cases"]:
            exp = {}
            for k in fields:
                v = c.get(k)
                exp[k] = None if v is None else str(v)
            cases.append({"ua": str(c["user_agent_string"]), "expected": exp})
        with open(os.path.join(outdir, name.replace(".yaml", ".json")), "w", encoding="utf-8") as f:
            json.dump(cases, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
