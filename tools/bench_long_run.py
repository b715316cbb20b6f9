"""Issue 18's budgets on a realistic day (tools/make_long_session.py), each beside its reference in the same run.

    .venv/bin/python tools/bench_long_run.py --dir /tmp/longday [--quick] [--reps 3] [--json]

The session is made once into `--dir` (1,000,000 events, 100 agents, 10,000 tasks, 1,000 approvals, 3 machines;
`--quick`: 100,000 events, 10 agents... scaled down) and reused when it is there (its sizes are checked). The
original is only read; the coordinator, `status` and `send` run on a copy (`<dir>-work`, made again at every run),
since they write. Measures and references, alternating a measure and its reference rep by rep so that the load of a
shared machine falls on both:

a. the projection rebuilt from cold (`Session.projection`, no snapshot) vs a bare loop that only parses the same
   segments' lines with orjson: the ratio of their rates (budget >= 50%);
b. the coordinator (`popkit-power coordinator`, a process) folding the whole session from cold, until its first
   `coordinator.status` after it started, which it writes once caught up; then its VmRSS and VmHWM from /proc
   (budget: RSS <= 50 MB), beside a bare python's;
c. the newest snapshot's size on disk once the coordinator saved its snapshots (budget <= 1 MB);
d. `popkit-power status --json` as a process, on the copy with the coordinator's snapshots, vs `python -c pass`
   (budget <= 3x), and its peak RSS (ru_maxrss from wait4; budget <= 60 MiB);
e. `popkit-power send AGENT TEXT` (as one live agent, to another) vs `python -c pass` (budget <= 2x).

The package's bytecode is compiled first, as pip does on install (`compileall`): this environment sets
PYTHONDONTWRITEBYTECODE, and a process without .pyc files compiles every module it imports (most of a `status`).
The commands run with no POPKIT_* or CLAUDE_* variable but POPKIT_POWER_HOME.
"""

from __future__ import annotations

import argparse
import compileall
import gc
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench_common as common  # noqa: E402
from make_long_session import GENERATOR_VERSION, write_session  # noqa: E402

import popkit_power  # noqa: E402
from popkit_power.keys import SNAPSHOT_SUFFIX  # noqa: E402
from popkit_power.projector import live_agents  # noqa: E402
from popkit_power.session import Session  # noqa: E402

CLI = Path(sys.executable).parent / "popkit-power"
FULL = {"events": 1_000_000, "agents": 100, "tasks": 10_000, "approvals": 1_000, "machines": 3}
QUICK = {"events": 100_000, "agents": 20, "tasks": 1_000, "approvals": 100, "machines": 3}
#: The copy's settings: no agent is lost while the coordinator runs (silence counts from its start), and it says it is
#: alive every second, so its first status after catching up comes at once.
WORK_CONFIG = {"agent_timeout_seconds": 86400, "heartbeat_seconds": 1}
SIZES_FILE = "long-session.json"


def ensure_session(directory: str, sizes: dict[str, int], seed: int) -> Session:
    """The day in `directory`: made there when missing, reused when made with the same sizes, seed and generator."""
    wanted = {**sizes, "seed": seed, "generator": GENERATOR_VERSION}
    marker = Path(directory, SIZES_FILE)
    if marker.exists():
        if orjson.loads(marker.read_bytes()) != wanted:
            raise SystemExit(f"{directory} holds a session of other sizes or an older generator "
                             f"({marker.read_text()}); give another --dir")
        return Session(directory, common.SESSION_ID, read_only=True)
    if os.path.exists(directory) and os.listdir(directory):
        raise SystemExit(f"{directory} is not empty and holds no long session: give another --dir")
    started = time.monotonic()
    print(f"writing the session into {directory} ({sizes['events']:,} events)...", file=sys.stderr)
    write_session(directory, seed=seed, quiet=False, **sizes)
    marker.write_bytes(orjson.dumps(wanted))
    print(f"  written in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return Session(directory, common.SESSION_ID, read_only=True)


# -- a. the fold vs the bare loop --------------------------------------------------------------------------------------

def fold_vs_bare(session: Session, reps: int) -> tuple[dict[str, Any], Any]:
    if list(Path(session.snapshots.directory).glob(f"*{SNAPSHOT_SUFFIX}")):
        raise SystemExit(f"{session.snapshots.directory} holds snapshots: the rebuild would not be from cold")
    folds, bares, state = [], [], None
    for _rep in range(reps):
        bares.append(common.bare_loop(session.journal))
        seconds, state = common.rebuild(session)
        folds.append(seconds)
        state = state if _rep == reps - 1 else None  # only the last state is kept: two at once would skew memory
    events = session.journal.end_position().seq - 1
    fold_s, bare_s = statistics.median(folds), statistics.median(bares)
    return {"events": events, "fold_s": fold_s, "bare_s": bare_s, "fold_rate": events / fold_s,
            "bare_rate": events / bare_s, "ratio": bare_s / fold_s, "fold_runs": folds, "bare_runs": bares}, state


# -- b, c. the coordinator and its snapshot ----------------------------------------------------------------------------

def work_copy(directory: str) -> str:
    """A fresh copy of the power directory for what writes (the coordinator, send), with WORK_CONFIG."""
    work = directory.rstrip("/") + "-work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(directory, work, symlinks=True)
    config = Path(work, "config.json")
    current = orjson.loads(config.read_bytes()) if config.exists() else {}
    config.write_bytes(orjson.dumps({**current, **WORK_CONFIG}))
    return work


def clean_env(home: str) -> dict[str, str]:
    """This environment without any agent's or session's variables, pointed at `home`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POPKIT", "CLAUDE"))}
    env["POPKIT_POWER_HOME"] = home
    return env


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MB (10**6 bytes, as the issue's budgets count)."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024 / 1e6
    return found


def coordinator_rss(work: str, timeout: float) -> dict[str, Any]:
    """Start the coordinator on the copy, wait until it has caught up, read its memory, stop it."""
    session = Session(work, common.SESSION_ID, read_only=True)
    env = clean_env(work)
    reader = session.journal.reader(session.journal.end_position())
    started = time.monotonic()
    process = subprocess.Popen([str(CLI), "coordinator"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    caught_up = False
    try:
        while not caught_up and time.monotonic() - started < timeout and process.poll() is None:
            # its first coordinator.status after coordinator.started is written once the whole journal is folded
            caught_up = any(event.get("type") == "coordinator.status" and event.get("from") == "coordinator"
                            for event in reader)
            time.sleep(0.1)
        seconds = time.monotonic() - started
        memory = proc_status(process.pid) if process.poll() is None else {}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if not caught_up:
        raise SystemExit(f"the coordinator did not catch up within {timeout:.0f} s (exit {process.returncode})")
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    time.sleep(0.5)
    bare_memory = proc_status(bare.pid)
    bare.kill()
    bare.wait()
    return {"caught_up_s": seconds, "rss_mb": memory["VmRSS"], "hwm_mb": memory["VmHWM"],
            "bare_rss_mb": bare_memory["VmRSS"]}


def newest_snapshot(work: str) -> dict[str, Any]:
    directory = Session(work, common.SESSION_ID, read_only=True).snapshots.directory
    found = sorted(Path(directory).glob(f"*{SNAPSHOT_SUFFIX}"), key=lambda path: path.stat().st_mtime)
    if not found:
        return {"path": None, "bytes": 0, "count": 0}
    return {"path": found[-1].name, "bytes": found[-1].stat().st_size, "count": len(found)}


# -- d, e. commands as processes ---------------------------------------------------------------------------------------

def run_measured(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, ru_maxrss of this child alone) of one process; raise when it fails."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    error = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}): {error.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024


def versus_pass(command: list[str], env: dict[str, str], reps: int) -> dict[str, Any]:
    """`command` and `python -c pass`, one after the other `reps` times (after one warm-up of each)."""
    reference = [sys.executable, "-c", "pass"]
    run_measured(reference, env)
    run_measured(command, env)
    times, peaks, passes = [], [], []
    for _rep in range(reps):
        passes.append(run_measured(reference, env)[0])
        seconds, peak = run_measured(command, env)
        times.append(seconds)
        peaks.append(peak)
    ms, pass_ms = statistics.median(times) * 1000, statistics.median(passes) * 1000
    return {"ms": ms, "pass_ms": pass_ms, "ratio": ms / pass_ms, "peak_mib": max(peaks), "runs_ms":
            [round(value * 1000, 1) for value in times], "pass_runs_ms": [round(value * 1000, 1) for value in passes]}


def speakers(state: Any) -> tuple[str, str]:
    """A live agent to send as and the name of another live one to send to."""
    live = sorted(live_agents(state))
    if len(live) < 2:
        raise SystemExit("the session ends with fewer than two live agents: nobody to send to")
    return live[0], str(state["agents"][live[1]]["name"])


def mix_of(state: Any) -> dict[str, Any]:
    """What the folded day holds, to show the mix is what it claims and that the fold refused nothing."""
    agents: dict[str, int] = {}
    for agent in state["agents"].values():
        agents[agent["status"]] = agents.get(agent["status"], 0) + 1
    return {"invalid": state["counts"].get("invalid", 0), "agents": agents, "open_tasks": len(state["tasks"]),
            "finished_tasks": state["totals"]["tasks"], "approvals": state["totals"]["approvals"],
            "pending_approvals": len(state["approvals"]), "ordered": state["ordered"],
            "types": dict(sorted(state["counts"].items(), key=lambda item: -item[1]))}


# -- the report --------------------------------------------------------------------------------------------------------

def report(result: dict[str, Any]) -> str:
    a, b, c, d, e = (result[key] for key in ("fold", "coordinator", "snapshot", "status", "send"))
    rows = [
        ["projection rebuild vs bare orjson loop", f"{a['ratio']:.1%} ({common.rate(a['fold_rate'])} vs "
         f"{common.rate(a['bare_rate'])}; {a['fold_s']:.1f} s vs {a['bare_s']:.2f} s)", ">= 50%",
         _met(a["ratio"] >= 0.5)],
        ["coordinator RSS, caught up", f"{b['rss_mb']:.1f} MB (peak {b['hwm_mb']:.1f}; bare python "
         f"{b['bare_rss_mb']:.1f}; caught up in {b['caught_up_s']:.0f} s)", "<= 50 MB", _met(b["rss_mb"] <= 50)],
        ["newest snapshot on disk", f"{c['bytes'] / 1e6:.2f} MB ({c['count']} saved)", "<= 1 MB",
         _met(c["bytes"] <= 1e6)],
        ["status --json vs python -c pass", f"{d['ms']:.0f} ms = {d['ratio']:.1f}x ({d['pass_ms']:.1f} ms)", "<= 3x",
         _met(d["ratio"] <= 3)],
        ["status --json peak RSS", f"{d['peak_mib']:.1f} MiB", "<= 60 MiB", _met(d["peak_mib"] <= 60)],
        ["send vs python -c pass", f"{e['ms']:.0f} ms = {e['ratio']:.1f}x ({e['pass_ms']:.1f} ms)", "<= 2x",
         _met(e["ratio"] <= 2)],
    ]
    return common.table(rows, ["measure", "now", "budget", "met"])


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="where the session is made once and then reused")
    parser.add_argument("--quick", action="store_true", help="a smaller day: 100,000 events, 20 agents, 1,000 tasks")
    parser.add_argument("--reps", type=int, default=None, help="repetitions of the fold (3; 5 with --quick)")
    parser.add_argument("--process-reps", type=int, default=9, help="repetitions of each command and python (9)")
    parser.add_argument("--seed", type=int, default=1, help="the session's seed (1)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = parser.parse_args()
    directory = os.path.abspath(args.dir)
    # the processes import the package as pip installs it, bytecode compiled (this environment may set
    # PYTHONDONTWRITEBYTECODE, and without .pyc files every start compiles every module it imports)
    compileall.compile_dir(os.path.dirname(popkit_power.__file__), quiet=1)
    sizes = QUICK if args.quick else FULL
    session = ensure_session(directory, sizes, args.seed)
    reps = args.reps or (5 if args.quick else 3)
    result: dict[str, Any] = {"machine": common.machine(), "sizes": {**sizes, "seed": args.seed}, "dir": directory}
    print(f"a. fold vs bare loop, {reps} reps...", file=sys.stderr)
    result["fold"], state = fold_vs_bare(session, reps)
    sender, target = speakers(state)
    result["session"] = mix_of(state)
    del state
    gc.collect()
    work = work_copy(directory)
    print("b. the coordinator catching up...", file=sys.stderr)
    result["coordinator"] = coordinator_rss(work, timeout=1800)
    result["snapshot"] = newest_snapshot(work)
    env = clean_env(work)
    print("d. status...", file=sys.stderr)
    result["status"] = versus_pass([str(CLI), "status", "--json"], env, args.process_reps)
    print("e. send...", file=sys.stderr)
    result["send"] = versus_pass([str(CLI), "send", target, "long run benchmark: are you there?", "--as", sender],
                                 env, args.process_reps)
    result["send"]["as"], result["send"]["to"] = sender, target
    shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(f"{result['fold']['events']:,} events ({result['sizes']}), {result['machine'].get('cpu')}, "
              f"{result['machine']['nproc']} cores, python {result['machine']['python']}, "
              f"{result['machine']['version']}")
        print(report(result))
        print(f"the day folded: {orjson.dumps({k: v for k, v in result['session'].items() if k != 'types'}).decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
