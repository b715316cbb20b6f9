"""The verbs agents run from their Bash tool, each as a whole `popkit-power` process, beside `python -c pass`.

    .venv/bin/python tools/bench_cli.py [--runs 30] [--json] [--quick] [--strict] [--compare DIR]

--quick is a smoke run (5 runs); --strict exits 1 when a verb is over its budget. With --compare, every verb also
runs with another copy of the package first on PYTHONPATH (main's, from `git archive <commit> popkit_power | tar -x
-C DIR`), interleaved in the same run, so the two are measured under the same load.

Budget (issue 18 item 4): each verb at most 2x `python -c pass` at median. Three reference rows, `python -c "import
click"`, `"import orjson"` and both, show the floor that the parser and the reads' JSON library set. The cases are
interleaved run by run (the machine is shared and noisy: ratios from one run, not absolute times, are what count).
The session is a small real one (two agents, tasks added as the runs need them, no coordinator): what is measured is
the command's start, its imports and one append, not the size of the journal (tools/bench_projector.py and the
long-session benchmarks measure that). Each verb does what it does for an agent: `claim` takes an open task,
`release` gives it back, `done` and `result` finish a task the agent holds (the claims they need are made in this
process, untimed). Bytecode is compiled first, as a pip install does; this environment sets PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import budget_row, print_budget_rows, within_budgets  # noqa: E402

from popkit_power.session import Session, start_session  # noqa: E402

CLI = Path(sys.executable).parent / "popkit-power"
AGENT, OTHER = "a1b2c3d4-bench-agent-0001:main", "e5f6a7b8-bench-agent-0002:main"
BUDGET = 2.0
#: What every verb imports and cannot do without as the commands are written: click (the parser), and orjson (the
#: journal reader's and the snapshots' parser), each alone and together; no budget, they say where the time goes.
REFERENCES = {"import click": "import click", "import orjson": "import orjson",
              "import click, orjson": "import click, orjson"}


def measure(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command[1:])} failed ({completed.returncode}): "
                         f"{completed.stderr.decode()[:500]}")
    return elapsed


def add_task(session: Session, task_id: str, *, claimed: bool = False) -> str:
    """A task for the next run's verbs (untimed); with `claimed`, already the agent's."""
    session.publish("task.created", {"task": task_id, "title": f"benchmark task {task_id}"}, sender="human")
    if claimed:
        session.publish("task.claimed", {"task": task_id}, sender=AGENT)
    return task_id


def verbs(session: Session, run: int, tag: str) -> list[tuple[str, Callable[[], list[str]]]]:
    """Each agent verb with a function that prepares what it needs (untimed) and returns its arguments."""
    def claim() -> list[str]:
        return ["claim", add_task(session, f"c{tag}{run}")]

    def release() -> list[str]:
        return ["release", add_task(session, f"r{tag}{run}", claimed=True), "--reason", "benchmark"]

    def done() -> list[str]:
        return ["done", add_task(session, f"d{tag}{run}", claimed=True), "--result", "done in the benchmark"]

    def result() -> list[str]:
        return ["result", "finished in the benchmark", "--task", add_task(session, f"s{tag}{run}", claimed=True)]

    return [
        ("send", lambda: ["send", OTHER, f"message {run}"]),
        ("broadcast", lambda: ["broadcast", f"broadcast {run} {tag}"]),
        ("insight", lambda: ["insight", f"insight number {run} {tag}", "--tags", "bench"]),
        ("publish", lambda: ["publish", "broadcast", f"published {run} {tag}"]),
        ("ask", lambda: ["ask", f"may I run migration {run} {tag}?"]),
        ("claim", claim), ("release", release), ("done", done), ("result", result),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 runs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a verb is over its budget")
    parser.add_argument("--compare", metavar="DIR", help="a folder holding another popkit_power package")
    args = parser.parse_args()
    if args.quick:
        args.runs = 5
    compileall.compile_dir(str(ROOT / "popkit_power"), quiet=1)
    variants = [("", {})]
    if args.compare:
        compileall.compile_dir(str(Path(args.compare) / "popkit_power"), quiet=1)
        variants.append((" [compare]", {"PYTHONPATH": args.compare}))

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as scratch:
        home = os.path.join(scratch, "power")
        session = start_session(home, "benchmark", sender="human")
        for key, name in ((AGENT, "bench-one"), (OTHER, "bench-two")):
            session.publish("agent.joined", {"name": name}, sender=key)
        base_env = {key: value for key, value in os.environ.items() if not key.startswith(("POPKIT", "CLAUDE"))}
        env = {**base_env, "POPKIT_POWER_HOME": home, "POPKIT_POWER_AGENT": AGENT}
        cases: dict[str, list[float]] = {"python -c pass": []}
        python = [sys.executable, "-c", "pass"]
        for run in range(args.runs + 1):  # the first round warms the caches: not counted
            for key in (AGENT, OTHER):  # both keep working (untimed), so neither is lost during a long run
                session.publish("agent.tool", {"tool": "Read", "ok": True, "file": f"/work/doc{run}.md"}, sender=key)
            times = {"python -c pass": measure(python, base_env)}
            for name, code in REFERENCES.items():
                times[name] = measure([sys.executable, "-c", code], base_env)
            for label, extra in variants:
                for verb, prepare in verbs(session, run, "x" if label else "m"):
                    times[verb + label] = measure([str(CLI), *prepare()], {**env, **extra})
            if run:
                for case, elapsed in times.items():
                    cases.setdefault(case, []).append(elapsed)
        records = session.journal.end_position().seq - 1

    reference = statistics.median(cases["python -c pass"])
    rows: list[dict[str, Any]] = []
    for case, times in cases.items():
        budget = None if case == "python -c pass" or case in REFERENCES or case.endswith("[compare]") else BUDGET
        rows.append(budget_row(case, times, reference, budget))
    result = {"runs": args.runs, "records": records, "compare": args.compare, "python": sys.version.split()[0],
              "rows": rows}
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"agent verbs: {args.runs} interleaved runs, whole `popkit-power` processes, {records:,} records in "
              f"the session at the end, Python {result['python']}")
        print_budget_rows(rows, 22)
        if args.compare:
            print(f"[compare]: the same verbs with {args.compare} first on PYTHONPATH")
    if args.strict and not within_budgets(rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
