"""Shared helpers for the benchmarks in tools/: realistic events, timing, medians, tables, machine facts.

Not part of the package and not on any hot path; the benchmarks import it as a sibling module (`tools/` is
sys.path[0] when a script in it is run).
"""

from __future__ import annotations

import gc
import os
import platform
import random
import statistics
import sys
import time

import orjson

from popkit_power.protocol import make_event
from popkit_power.timestamps import utc_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from popkit_power.journal.writer import Journal
    from popkit_power.session import Session

SESSION_ID = "20261124-100000-ab12cd"
ORIGIN = "benchhost-1a2b3c"
#: The mix of tool calls the benchmarks' agents make (a tuple in a fixed order, so a seed draws the same calls; which
#: tools write is popkit_power.tool_calls.WRITE_TOOLS, never listed here).
TOOLS = ("Read", "Edit", "Bash", "Grep", "Glob", "Write", "MultiEdit", "WebFetch", "TodoWrite", "Read", "Read", "Bash")
BASE_EPOCH = 1795514400.0  # 2026-11-24T10:00:00Z


def agent_key(number: int) -> str:
    """An agent key shaped like the hook's: Claude session id + subagent id."""
    return f"9f1c2e7a-4b5d-4c3e-8a21-{number:012d}/subagent-{number:02d}"


def file_path(rng: random.Random) -> str:
    return (f"/home/dev/acme/{rng.choice(('api', 'worker', 'web', 'billing'))}/"
            f"{rng.choice(('handlers', 'models', 'utils', 'routes', 'jobs'))}/mod_{rng.randrange(400):03d}.py")


def tool_event(rng: random.Random, sender: str, ts: str) -> dict:
    tool = rng.choice(TOOLS)
    data: dict = {"tool": tool, "ok": rng.random() > 0.05, "ms": round(rng.uniform(2, 900), 1)}
    if tool not in ("Bash", "WebFetch", "TodoWrite"):
        data["file"] = file_path(rng)
    if not data["ok"]:
        data["error"] = "exit status 1: command failed"
    return make_event("agent.tool", data, sender=sender, session=SESSION_ID, origin=ORIGIN, ts=ts)


def heartbeat_event(rng: random.Random, sender: str, ts: str, calls: int) -> dict:
    data = {"tool_calls": calls, "tool_counts": {"Read": calls // 2, "Edit": calls // 4, "Bash": calls // 8},
            "files_touched": [file_path(rng)], "current_task": f"task-{rng.randrange(64):03d}",
            "progress": round(rng.random(), 2)}
    return make_event("agent.heartbeat", data, sender=sender, session=SESSION_ID, origin=ORIGIN, ts=ts)


def append_bodies(count: int, *, seed: int = 1, agents: int = 16, tag: str = "") -> list[bytes]:
    """`count` serialized envelopes as a hook writes them: ~4 tool events per heartbeat, ~300 bytes each.

    `tag` is put in each event's data (`bench`) with the event's index, so a test can check order per writer.
    """
    rng = random.Random(seed)
    bodies = []
    calls = [0] * agents
    for index in range(count):
        number = rng.randrange(agents)
        sender = agent_key(number)
        ts = utc_text(BASE_EPOCH + index * 0.01)
        calls[number] += 1
        event = heartbeat_event(rng, sender, ts, calls[number]) if index % 5 == 4 else tool_event(rng, sender, ts)
        if tag:
            event["data"]["bench"] = f"{tag}:{index}"
        bodies.append(orjson.dumps(event))
    return bodies


def percentile(values: list[float], share: float) -> float:
    """The value at `share` (0.5: the median, 0.99) of `values`, by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict:
    info = {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import sqlite3

    info["sqlite"] = sqlite3.sqlite_version
    info["orjson"] = orjson.__version__
    import popkit_power

    info["package"] = os.path.dirname(popkit_power.__file__)
    info["version"] = package_version(info["package"])
    return info


def package_version(package_dir: str) -> str:
    """The git commit of the checkout holding the package, with the package files changed since it, if any."""
    import subprocess

    root = os.path.dirname(package_dir)
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "not a git checkout (scratch copy?)"
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", os.path.basename(package_dir)],
                                capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = sorted(line[3:] for line in status if line.strip())
    return f"commit {head.stdout.strip()}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(line, rows)])


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


# -- the fold and its reference, as bench_projector.py and bench_long_run.py both measure them ---------------------

def rebuild(session: Session) -> tuple[float, Any]:
    """Seconds for a projection from cold (no snapshot), and the state."""
    gc.collect()
    start = time.perf_counter()
    state, _position = session.projection(save_snapshot=False)
    return time.perf_counter() - start, state


def bare_loop(journal: Journal) -> float:
    """Seconds for `for line in open(segment, "rb"): orjson.loads(line)` over every segment: the format's limit."""
    paths = [journal.segment_path(segment) for segment in journal.segments()]
    loads = orjson.loads
    gc.collect()
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as handle:
            for line in handle:
                loads(line)
    return time.perf_counter() - start


# -- whole processes against `python -c pass`, as bench_hook.py and bench_cli.py both measure them ----------------

def budget_row(case: str, times: list[float], reference: float, budget: float | None) -> dict[str, Any]:
    """A case's row: its median in ms, its ratio to `reference` (the median of `python -c pass`), and whether that
    ratio is within `budget` (None: a reference row, no budget)."""
    median = statistics.median(times)
    return {"case": case, "median_ms": round(median * 1000, 2), "ratio": round(median / reference, 2),
            "budget": budget, "ok": None if budget is None else median / reference <= budget}


def print_budget_rows(rows: list[dict[str, Any]], width: int) -> None:
    """The rows of `budget_row` as a table, the case in a column `width` wide; OVER marks a row over its budget."""
    print(f"{'case':<{width}} {'median ms':>10} {'x pass':>8} {'budget':>8}")
    for row in rows:
        budget = f"<= {row['budget']}x" if row["budget"] else ""
        verdict = "" if row["ok"] is None else ("ok" if row["ok"] else "OVER")
        print(f"{row['case']:<{width}} {row['median_ms']:>10.2f} {row['ratio']:>8.2f} {budget:>8} {verdict}")


def within_budgets(rows: list[dict[str, Any]]) -> bool:
    return all(row["ok"] in (None, True) for row in rows)
