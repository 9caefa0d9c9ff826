#!/usr/bin/env python3
"""Instructions a `qos replay` executes, counted by valgrind's callgrind.

CPU time on a shared or virtual machine varies by tens of percent from run to
run (bench/results/speed.md), so a change worth 1-3 % cannot be seen in it
without dozens of interleaved pairs. The number of instructions executed is
nearly deterministic (two runs of the same binary on the same input differ by
about 0.2 %: the threads' hand-overs vary) and shows what a change does to the
work, though not to cache misses or page faults: read it next to the timed
pairs, never instead of them.

    bench/instructions.py [--input FILE] [--beacons N] [--top K] BIN [BIN ...]

For each binary: its instructions in a replay of the input (the bench input of
bench/run.py, `qos generate --seed 1 --rate 20000 --explicit-geo`, unless
--input), per line, and relative to the first binary; with --top, the K
functions with the most instructions of their own. Each run takes about three
minutes per million lines (callgrind runs the program on one core, ~50x
slower). Needs valgrind (Debian: apt-get install valgrind); the binaries are
copied without their DWARF sections first, which valgrind 3.19 cannot read.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def count(binary, data, work, top):
    stripped = work / "qos-stripped"
    shutil.copy(binary, stripped)
    subprocess.run(["strip", "-g", str(stripped)], check=True)
    out = work / "callgrind.out"
    sink = work / "sink"
    shutil.rmtree(sink, ignore_errors=True)
    run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          str(stripped), "replay", str(data), "--sink", str(sink), "--quiet"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{binary}: replay under valgrind failed ({run.returncode}):\n{run.stderr[-2000:]}")
    totals = re.search(r"^(?:summary|totals): (\d+)", out.read_text(errors="replace"), re.M)
    if not totals:
        raise SystemExit(f"{binary}: no instruction total in {out}")
    functions = []
    if top:
        text = subprocess.run(["callgrind_annotate", str(out)], capture_output=True, text=True).stdout
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)", line)
            if m and "PROGRAM TOTALS" not in line:
                functions.append((int(m.group(1).replace(",", "")), m.group(2)))
            if len(functions) == top:
                break
    return int(totals.group(1)), functions


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binaries", nargs="+", help="qos executables to compare (release builds)")
    p.add_argument("--input", type=Path, help="NDJSON beacons to replay (default: the bench input, generated)")
    p.add_argument("--beacons", type=int, default=2_000_000, help="size of the generated bench input")
    p.add_argument("--top", type=int, default=0, help="also list the K functions with most instructions of their own")
    a = p.parse_args()
    for tool in ("valgrind", "callgrind_annotate", "strip"):
        if not shutil.which(tool):
            raise SystemExit(f"bench/instructions.py needs {tool} (Debian: apt-get install valgrind binutils)")
    with tempfile.TemporaryDirectory(prefix="qos-instructions-") as tmp:
        work = Path(tmp)
        data = a.input
        if data is None:
            data = work / "beacons.ndjson"
            subprocess.run([a.binaries[0], "generate", "--seed", "1", "--sessions", str(max(1, a.beacons // 74)),
                            "--rate", "20000", "--explicit-geo", "--out", str(data)], check=True,
                           stdout=subprocess.DEVNULL)
        lines = sum(1 for _ in open(data, "rb"))
        print(f"input: {data if a.input else 'the bench input'}, {lines:,} lines")
        first = None
        for b in a.binaries:
            total, functions = count(os.path.abspath(b), data, work, a.top)
            first = first or total
            print(f"{b}: {total:,} instructions, {total / max(lines, 1):,.0f} per line, {total / first:.4f}x the first",
                  flush=True)
            for n, name in functions:
                print(f"    {n / total:6.2%}  {name[:150]}")


if __name__ == "__main__":
    sys.exit(main())
