#!/usr/bin/env python
"""Replay and timeline benchmarks: `popkit-power replay` of a large journal to /dev/null against a bare orjson.loads
loop over the same segment files, with the peak memory of each command; and the timeline's time and page size.

    .venv/bin/python tools/bench_replay.py [--events N] [--reps R] [--quick] [--json]

Builds one session of N events (default 1,000,000; 16 agents, the mix of tools/bench_projector.py: 60% tool calls,
15% heartbeats, tasks, insights, messages, approvals for the rest) and a tenth of it, then runs as real processes,
alternating the sides and reporting medians of R repetitions:

  (a) the bare loop `for line in open(segment, "rb"): orjson.loads(line)`, in this process;
  (b) `popkit-power replay SESSION > /dev/null` (lines in words, names from the partial fold);
  (c) `popkit-power replay SESSION --json > /dev/null`;
  (d) `popkit-power replay SESSION --at LAST > /dev/null` (the whole projection folded, then the status drawn);
  (e) `popkit-power timeline SESSION --html FILE` (its size too).

Each command's peak RSS comes from wait4(2). The same commands on the journal a tenth as long show whether memory
stays flat as the journal grows. No budget is set in docs/design.md; the ratios are recorded in tools/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as common
import orjson
from bench_projector import bare_loop, build_session

SCRIPT = os.path.join(os.path.dirname(sys.executable), "popkit-power")


def run(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of `command` with its output thrown away."""
    with open(os.devnull, "wb") as sink:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.PIPE)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {stderr}")
    return seconds, usage.ru_maxrss / 1024


def measure(home: str, session_id: str, events: int, reps: int, page: str,
            say: object) -> dict[str, dict[str, float]]:
    """Median events/s and peak RSS of each side, alternated."""
    from popkit_power.session import Session

    session = Session(home, session_id, read_only=True)
    sides = {
        "bare orjson.loads loop": None,
        "replay (text)": [SCRIPT, "--home", home, "replay", session_id],
        "replay --json": [SCRIPT, "--home", home, "replay", session_id, "--json"],
        "replay --at LAST": [SCRIPT, "--home", home, "replay", session_id, "--at", str(events)],
        "timeline --html": [SCRIPT, "--home", home, "timeline", session_id, "--html", page],
    }
    samples: dict[str, list[float]] = {name: [] for name in sides}
    memory: dict[str, float] = {}
    names = list(sides)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            command = sides[name]
            if command is None:
                seconds, rss = bare_loop(session.journal), 0.0
            else:
                seconds, rss = run(command)
            samples[name].append(events / seconds)
            memory[name] = max(memory.get(name, 0.0), rss)
            print(f"  rep {rep + 1} {name}: {events / seconds:,.0f} events/s, {rss:.0f} MiB", file=sys.stderr)
    bare = common.median(samples["bare orjson.loads loop"])
    return {name: {"events_per_s": common.median(values), "ratio_to_bare": common.median(values) / bare,
                   "peak_rss_mib": memory[name]} for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the large journal (1,000,000)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measurement (3)")
    parser.add_argument("--dir", default=None, help="where to build the scratch power directories (a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50,000 events, 1 rep")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    args = parser.parse_args()
    if args.quick:
        args.events, args.reps = min(args.events, 50_000), 1
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    base = tempfile.mkdtemp(prefix="popkit-bench-replay-", dir=args.dir)
    result: dict = {"machine": common.machine(), "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
                    "params": {"events": args.events, "reps": args.reps}, "runs": {}}
    try:
        for events in (args.events // 10, args.events):
            home = os.path.join(base, f"power-{events}")
            say(f"building a journal of {events:,} events ...")
            session, _maker = build_session(home, events, seed=7)
            size = sum(os.path.getsize(session.journal.segment_path(s)) for s in session.journal.segments())
            page = os.path.join(base, f"timeline-{events}.html")
            say(f"measuring on {events:,} events ({size / 2**20:.0f} MiB), {args.reps} reps ...")
            figures = measure(home, session.id, events, args.reps, page, say)
            result["runs"][events] = {"journal_mib": size / 2**20, "page_kib": os.path.getsize(page) / 1024,
                                      "figures": figures}
            shutil.rmtree(home)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"machine: {result['machine'].get('nproc')} CPUs ({result['machine'].get('cpu', '?')}), "
          f"Python {result['machine']['python']}, orjson {result['machine']['orjson']}")
    print(f"package: {result['machine']['package']} ({result['machine']['version']})")
    print(f"command: {result['command']}")
    for events, run_result in result["runs"].items():
        print(f"\n{events:,} events, journal {run_result['journal_mib']:.0f} MiB, timeline page "
              f"{run_result['page_kib']:.0f} KiB; medians of {args.reps} reps, sides alternated")
        rows = [[name, f"{figure['events_per_s']:,.0f}/s", f"{figure['ratio_to_bare']:.2f}x",
                 f"{figure['peak_rss_mib']:.0f} MiB" if figure["peak_rss_mib"] else "-"]
                for name, figure in run_result["figures"].items()]
        print(common.table(rows, ["side", "events/s", "vs bare loop", "peak RSS"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
