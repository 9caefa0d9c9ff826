#!/usr/bin/env python3
"""`make bench`: memory of `qos replay` with 500 000 concurrent sessions
(README *Performance*, bench/results/speed.md "Memory per session").

Input: `qos generate` traffic of BENCH_MEM_BASE_SESSIONS sessions starting
over about a minute of event time, cut after BENCH_MEM_CUT_S seconds of event
time (every session started, few ended, none idle long enough to time out),
then each line written BENCH_MEM_COPIES times under session ids that differ
in their first character (a non-hex letter per copy, so the ids keep their
length and never collide with the generator's hex ids). The copies follow
each other, so the input stays in time order, and every copy is a session of
its own with the same attributes (the window groups do not grow with the
copies: groups are capped per window anyway).

Concurrent sessions are counted from the input: sessions seen minus those
whose `view_end` arrived (within the cut nothing times out and no session
reaches its maximum length), i.e. the sessions open when the input ends —
the most at any point of the replay. At the end of input `qos replay`
closes all of them, so the peak covers the open state and the `sessions`
rows of every one of them until they are written.

Reported: peak RSS (ru_maxrss of the replay), RSS of a replay of a 10-line
input (the process's fixed cost: binary, user-agent tables, threads), and
the all-in bytes per open session = (peak − fixed) / concurrent sessions.
The same run at one copy gives the slope between the two sizes too.

Environment: QOS_BIN (default the release build), BENCH_MEM_BASE_SESSIONS
(60 000: about 514 000 concurrent at 10 copies), BENCH_MEM_COPIES (10), BENCH_MEM_CUT_S (90), BENCH_MEM_KEEP=1
keeps the work directory. The table goes to stdout and bench/results/memory.md."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QOS = os.environ.get("QOS_BIN", str(ROOT / ".build" / "release" / "qos"))
BASE_SESSIONS = int(os.environ.get("BENCH_MEM_BASE_SESSIONS", "60000"))
COPIES = int(os.environ.get("BENCH_MEM_COPIES", "10"))
CUT_S = int(os.environ.get("BENCH_MEM_CUT_S", "90"))
START_MS = 1767225600000  # the generator's default start for files
COPY_LETTERS = b"ghijklmnopqrstuvwxyz"
KEY = b'"session_id":"'


def generate(path):
    """The generator's first CUT_S seconds of event time (sessions start over ~60 s)."""
    rate = BASE_SESSIONS * 70 / 60  # the generator's 70 beacons per session → starts over 60 s
    cut = START_MS + CUT_S * 1000
    p = subprocess.Popen([QOS, "generate", "--sessions", str(BASE_SESSIONS), "--rate", str(rate), "--seed", "11"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    n = 0
    with open(path, "wb") as out:
        for line in p.stdout:
            i = line.find(b'"ts":')
            ts = int(line[i + 5:line.index(b",", i)])
            if ts >= cut:
                break
            out.write(line)
            n += 1
    p.kill()
    p.wait()
    return n


def replicate(src, dst, copies):
    """Each line `copies` times, copy k under a session id whose first byte is COPY_LETTERS[k]."""
    seen, ended, lines = set(), set(), 0
    with open(src, "rb") as f, open(dst, "wb") as out:
        for line in f:
            i = line.index(KEY) + len(KEY)
            j = line.index(b'"', i)
            sid = line[i:j]
            seen.add(sid)
            if line.startswith(b'{"event":"view_end"'):
                ended.add(sid)
            head, tail = line[:i], line[i + 1:]
            for k in range(copies):
                out.write(head + COPY_LETTERS[k:k + 1] + tail)
            lines += copies
    return lines, (len(seen) - len(ended)) * copies, len(seen) * copies


def replay(path, sink):
    """Peak RSS (bytes) and CPU seconds of `qos replay path`."""
    shutil.rmtree(sink, ignore_errors=True)
    p = subprocess.Popen([QOS, "replay", str(path), "--sink", str(sink)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    if status != 0:
        raise SystemExit(f"qos replay {path} failed: {err[-1500:]}")
    return ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime


def main():
    if not os.path.exists(QOS):
        raise SystemExit(f"{QOS} is missing: run `make release` (or set QOS_BIN)")
    work = Path(tempfile.mkdtemp(prefix="qos-mem-"))
    try:
        gen = work / "gen.ndjson"
        t0 = time.time()
        base_lines = generate(gen)
        tiny = work / "tiny.ndjson"
        with open(gen, "rb") as f, open(tiny, "wb") as out:
            for _ in range(10):
                out.write(f.readline())
        fixed, _ = replay(tiny, work / "sink-tiny")
        rows = []
        for copies in sorted({1, COPIES}):
            inp = work / f"x{copies}.ndjson"
            lines, concurrent, sessions = replicate(gen, inp, copies)
            peak, cpu = replay(inp, work / f"sink-x{copies}")
            rows.append((copies, lines, sessions, concurrent, peak, cpu))
            inp.unlink()
        out = [f"# qos replay memory (bench/memory_bench.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
               f"{base_lines} generated lines, fixed RSS (a 10-line replay) {fixed / 1048576:.1f} MiB; "
               "all-in = (peak − fixed) / concurrent sessions.", ""]
        emit = out.append
        emit("| copies | lines | sessions | concurrent (open at end of input) | peak RSS MiB | RSS / concurrent B | all-in B per open session | CPU s |")
        emit("|---|---|---|---|---|---|---|---|")
        for copies, lines, sessions, concurrent, peak, cpu in rows:
            emit(f"| {copies} | {lines:,} | {sessions:,} | {concurrent:,} | {peak / 1048576:.0f} | "
                  f"{peak / concurrent:.0f} | {(peak - fixed) / concurrent:.0f} | {cpu:.1f} |")
        if len(rows) == 2:
            (_, _, _, c1, p1, _), (_, _, _, c2, p2, _) = rows
            emit(f"slope between them: {(p2 - p1) / (c2 - c1):.0f} bytes per more open session")
        big = rows[-1]
        text = "\n".join(out) + "\n"
        (ROOT / "bench" / "results" / "memory.md").write_text(text)
        sys.stdout.write(text)
        sys.stdout.write(json.dumps({"concurrent": big[3], "peak_rss_bytes": big[4], "fixed_rss_bytes": fixed,
                          "all_in_bytes_per_open_session": round((big[4] - fixed) / big[3])}) + "\n")
    finally:
        if os.environ.get("BENCH_MEM_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
