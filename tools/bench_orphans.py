"""The fold with many orphaned tasks waiting (agents dying faster than their work is taken), beside another package.

    .venv/bin/python tools/bench_orphans.py [--orphans 5000] [--tasks 20000] [--reps 3] [--compare DIR]

Folds, in one process, `--orphans` tasks orphaned from a dead agent and then `--tasks` other tasks each created,
claimed, released, claimed again and completed (5 transitions each), and reports the best of `--reps` folds. With
`--compare DIR` (a folder holding another `popkit_power`, e.g. `git archive <commit> popkit_power | tar -x -C DIR`)
the same events are folded by that package too, in a child process, one after the other, so the two are measured in
the same minute: before the orphan list was told from each task's status, every transition of every task searched
the list.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def events(orphans: int, tasks: int) -> list[dict]:
    from popkit_power.protocol import make_event

    made = []
    for number in range(orphans):
        made += [make_event("task.created", {"task": f"o{number}", "title": "x", "owner": "gone:main"},
                            sender="human", session="bench", origin="bench"),
                 make_event("task.orphaned", {"task": f"o{number}", "agent": "gone:main"}, sender="coordinator",
                            session="bench", origin="bench")]
    for number in range(tasks):
        task = f"w{number}"
        made += [make_event("task.created", {"task": task, "title": "x"}, sender="human", session="bench",
                            origin="bench"),
                 make_event("task.claimed", {"task": task}, sender="a:main", session="bench", origin="bench"),
                 make_event("task.released", {"task": task}, sender="a:main", session="bench", origin="bench"),
                 make_event("task.claimed", {"task": task}, sender="b:main", session="bench", origin="bench"),
                 make_event("task.completed", {"task": task, "result": "ok", "ok": True}, sender="b:main",
                            session="bench", origin="bench")]
    for seq, event in enumerate(made, start=1):
        event["seq"] = seq
    return made


def best_fold(orphans: int, tasks: int, reps: int) -> tuple[float, int, int]:
    import popkit_power.projector as projector

    made = events(orphans, tasks)
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        state = projector.project(made)
        best = min(best, time.perf_counter() - started)
    return best, len(made), len(state["orphans"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orphans", type=int, default=5000)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--compare", metavar="DIR", help="a folder holding another popkit_power package")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    seconds, count, left = best_fold(args.orphans, args.tasks, args.reps)
    import popkit_power

    line = f"{os.path.dirname(popkit_power.__file__)}: {seconds:.2f} s for {count:,} events, {left:,} orphans left"
    print(line)
    if args.compare and not args.child:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(args.compare)}
        subprocess.run([sys.executable, __file__, "--orphans", str(args.orphans), "--tasks", str(args.tasks),
                        "--reps", str(args.reps), "--child"], env=env, check=True)
    return 0


if __name__ == "__main__":
    if "--child" not in sys.argv:  # the child takes the package from PYTHONPATH (--compare)
        sys.path.insert(0, str(ROOT))
    sys.exit(main())
