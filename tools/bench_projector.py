#!/usr/bin/env python
"""Projection benchmarks against the budget in docs/design.md: rebuild from cold >= 50% of a bare orjson.loads loop.

    .venv/bin/python tools/bench_projector.py [--events N] [--quick] [--reps R] [--compare DIR] [--json] [--strict]

Builds one session journal of N events (default 200,000) with a realistic mix from 16 agents (60% agent.tool,
15% agent.heartbeat, and tasks, insights, messages, approvals, idles and coordinator status for the rest), then,
alternating the sides and reporting medians:

  (a) rebuild from cold: `Session.projection(save_snapshot=False)` with no snapshot, events/s;
  (b) the bare loop `for line in open(segment, "rb"): orjson.loads(line)` over the same segment files;
  and, to show where the time goes, (c) the journal reader alone (checksums + parse, no projector).

With `--compare DIR` (a directory holding another version's `popkit_power`, e.g. from `git archive`), each rep also
rebuilds from cold with that version, in a child process that times only the rebuild (its interpreter start and
imports are not counted), alternated with this version's, and checks that both give the same state byte for byte.

Budget: (a) >= 50% of (b). It also times resume from a snapshot plus a tail of T events (T = 0, 100, 1,000,
10,000) on this journal and on one with a tenth of the history, to show that start-up is O(tail), and checks that
resume and rebuild give byte-identical state.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as common
import orjson

from popkit_power.keys import SNAPSHOT_SUFFIX
from popkit_power.protocol import make_event
from popkit_power.session import Session
from popkit_power.timestamps import utc_text

BUDGET_REBUILD_RATIO = 0.5
AGENTS = 16
MIX = {  # event type -> weight (percent)
    "agent.tool": 60, "agent.heartbeat": 15,
    "task.created": 3, "task.claimed": 3, "task.completed": 3, "task.assigned": 1,
    "insight.shared": 3, "message.broadcast": 3, "message.direct": 3,
    "approval.requested": 1.5, "approval.granted": 1, "approval.denied": 0.5,
    "agent.idle": 1.5, "coordinator.status": 1.5,
}
WORDS = (
    "cache", "invalidation", "race", "retry", "backoff", "schema", "migration", "index", "query", "latency",
    "timeout", "token", "auth", "session", "lock", "deadlock", "flaky", "test", "fixture", "mock", "parser",
    "encoder", "utf8", "newline", "checksum", "segment", "journal", "snapshot", "replay", "coordinator",
    "heartbeat", "orphan", "claim", "worker", "queue", "redis", "stream", "upstash", "pipeline", "batch",
    "idempotent", "config", "env", "path", "worktree", "branch", "merge", "conflict", "rebase", "lint", "type",
    "mypy", "ruff", "import", "cycle", "module", "package", "docker", "build", "wheel", "venv", "python",
    "node", "npm", "yarn", "webpack", "bundle", "css", "layout", "render", "hydrate", "api", "endpoint",
    "route", "handler", "middleware", "cors", "header", "cookie", "csrf", "jwt", "oauth", "scope", "permission",
    "role", "admin", "user", "billing", "invoice", "stripe", "webhook", "signature", "retry", "dead", "letter",
    "metric", "trace", "span", "log", "level", "warn", "error", "panic", "crash",
)


class EventMaker:
    """A session's worth of plausible events, deterministic for a seed; `ts` advances 10 ms per event."""

    def __init__(self, seed: int, start_index: int = 0) -> None:
        self.rng = random.Random(seed)
        self.index = start_index
        self.agents = [common.agent_key(n) for n in range(AGENTS)]
        self.calls = [0] * AGENTS
        self.tasks: list[str] = []
        self.claimed: list[str] = []
        self.requests: list[str] = []
        self.insights: list[str] = []
        self.types = list(MIX)
        self.weights = [MIX[name] for name in self.types]

    def _event(self, event_type: str, data: dict, sender: str, to: str | None = None) -> dict:
        ts = utc_text(common.BASE_EPOCH + self.index * 0.01)
        self.index += 1
        return make_event(event_type, data, sender=sender, session=common.SESSION_ID, origin=common.ORIGIN, to=to,
                          ts=ts)

    def opening(self) -> list[dict]:
        events = [self._event("session.opened", {"objective": "Ship the billing service rewrite"}, "human"),
                  self._event("objective.set", {"text": "Ship the billing service rewrite"}, "human"),
                  self._event("coordinator.started", {"pid": 4242, "host": "benchhost"}, "coordinator")]
        for number, key in enumerate(self.agents):
            events.append(self._event("agent.joined", {"name": f"agent-{number:02d}", "claude_session": key[:36],
                                                       "agent_type": "general-purpose", "pid": 10000 + number},
                                      key))
        return events

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def next(self) -> dict:
        rng = self.rng
        number = rng.randrange(AGENTS)
        sender = self.agents[number]
        kind = rng.choices(self.types, self.weights)[0]
        if kind == "agent.tool":
            tool = rng.choice(common.TOOLS)
            data: dict = {"tool": tool, "ok": rng.random() > 0.05, "ms": round(rng.uniform(2, 900), 1)}
            if tool not in ("Bash", "WebFetch", "TodoWrite"):
                data["file"] = common.file_path(rng)
            self.calls[number] += 1
            return self._event(kind, data, sender)
        if kind == "agent.heartbeat":
            calls = self.calls[number]
            return self._event(kind, {"tool_calls": calls, "tool_counts": {"Read": calls // 2, "Edit": calls // 4},
                                      "files_touched": [common.file_path(rng)], "progress": round(rng.random(), 2)},
                               sender)
        if kind == "task.created" or (kind in ("task.claimed", "task.completed", "task.assigned") and not self.tasks):
            task = f"task-{len(self.tasks):05d}"
            self.tasks.append(task)
            return self._event("task.created", {"task": task, "title": self._text(4, 9)}, "coordinator")
        if kind == "task.claimed":
            task = rng.choice(self.tasks[-200:])
            self.claimed.append(task)
            return self._event(kind, {"task": task}, sender)
        if kind == "task.assigned":
            return self._event(kind, {"task": rng.choice(self.tasks[-200:]), "agent": sender}, "coordinator")
        if kind == "task.completed":
            task = rng.choice(self.claimed[-200:] or self.tasks[-200:])
            return self._event(kind, {"task": task, "result": self._text(5, 20), "ok": rng.random() > 0.1}, sender)
        if kind == "insight.shared":
            if self.insights and rng.random() < 0.2:  # a near-repeat of an earlier insight
                text = rng.choice(self.insights[-100:]) + " " + rng.choice(WORDS)
            else:
                text = self._text(8, 16)
                self.insights.append(text)
            return self._event(kind, {"text": text, "tags": [rng.choice(WORDS)]}, sender)
        if kind == "message.broadcast":
            return self._event(kind, {"text": self._text(6, 14)}, sender)
        if kind == "message.direct":
            return self._event(kind, {"text": self._text(6, 14)}, sender, to=rng.choice(self.agents))
        if kind == "approval.requested":
            request = f"req-{len(self.requests):05d}"
            self.requests.append(request)
            return self._event(kind, {"request": request, "question": self._text(6, 12) + "?",
                                      "options": ["yes", "no"]}, sender)
        if kind in ("approval.granted", "approval.denied"):
            if not self.requests:
                return self._event("agent.idle", {}, sender)
            return self._event(kind, {"request": rng.choice(self.requests[-50:]), "note": "ok"}, "human")
        if kind == "agent.idle":
            return self._event(kind, {}, sender)
        return self._event("coordinator.status", {"agents": AGENTS, "open_tasks": len(self.tasks) % 97},
                           "coordinator")


def build_session(power_dir: str, events: int, seed: int) -> tuple[Session, EventMaker]:
    """A session whose journal holds `events` events (opening included), appended in batches of 1,000."""
    session = Session(power_dir, common.SESSION_ID, create=True)
    maker = EventMaker(seed)
    batch = [orjson.dumps(event) for event in maker.opening()]
    total = len(batch)
    while total < events:
        batch.append(orjson.dumps(maker.next()))
        total += 1
        if len(batch) == 1000:
            session.journal.append(batch)
            batch = []
    if batch:
        session.journal.append(batch)
    return session, maker


def append_more(session: Session, maker: EventMaker, count: int) -> None:
    bodies = [orjson.dumps(maker.next()) for _ in range(count)]
    for start in range(0, len(bodies), 1000):
        session.journal.append(bodies[start:start + 1000])


# -- the measured loops ---------------------------------------------------------------------------------------------

def reader_only(session: Session) -> float:
    """Seconds for the journal reader alone over the whole journal (checksums, seqs, orjson.loads; no projector)."""
    gc.collect()
    start = time.perf_counter()
    for _event in session.journal.reader(loads=orjson.loads):
        pass
    return time.perf_counter() - start


def compare_rebuild(package_dir: str, power_dir: str) -> tuple[float, str]:
    """Seconds for a rebuild from cold by the package in `package_dir` (a child process), and a hash of its state."""
    import subprocess

    code = ("import sys, time, gc, hashlib, orjson, popkit_power; from popkit_power.session import Session; "
            "s = Session(sys.argv[1], sys.argv[2]); gc.collect(); t = time.perf_counter(); "
            "state, _ = s.projection(save_snapshot=False); t = time.perf_counter() - t; "
            "print(t, hashlib.sha256(orjson.dumps(state)).hexdigest(), popkit_power.__file__)")
    env = {**os.environ, "PYTHONPATH": package_dir}
    # `python -c` puts its working directory first on the path: run it in `package_dir`, or a clone's own package
    # would be the one measured
    out = subprocess.run([sys.executable, "-c", code, power_dir, common.SESSION_ID], env=env, check=True,
                         capture_output=True, text=True, cwd=package_dir).stdout.split()
    expected = os.path.join(os.path.realpath(package_dir), "popkit_power", "__init__.py")
    if os.path.realpath(out[2]) != expected:
        raise SystemExit(f"--compare measured {out[2]}, not {expected}")
    return float(out[0]), out[1]


def state_hash(state: dict) -> str:
    import hashlib

    return hashlib.sha256(orjson.dumps(state)).hexdigest()


def timed_resume(session: Session) -> tuple[float, dict]:
    gc.collect()
    start = time.perf_counter()
    state, _position = session.projection(save_snapshot=False)
    return time.perf_counter() - start, state


def snapshot_at(session: Session, seq: int, keep: str) -> str:
    """Fold the journal up to `seq`, save a snapshot there, and move it to `keep` (out of the session's way)."""
    from popkit_power.projector import apply, new_state

    rules = session.rules()
    state = new_state()
    reader = session.journal.reader(loads=orjson.loads)
    for event in reader:
        apply(state, event, rules)
        if event["seq"] == seq:
            break
    path = session.snapshots.save(state, reader.position)
    target = os.path.join(keep, os.path.basename(path))
    os.replace(path, target)
    return target


def only_snapshot(session: Session, path: str | None) -> None:
    """Leave exactly the snapshot `path` (or none) in the session's snapshots directory."""
    directory = session.snapshots.directory
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(SNAPSHOT_SUFFIX):
            os.unlink(os.path.join(directory, name))
    if path:
        shutil.copyfile(path, os.path.join(directory, os.path.basename(path)))


def apply_breakdown(session: Session) -> dict:
    """Nanoseconds per event of projector.apply by type, over events read into memory first (no reader cost)."""
    from popkit_power.projector import apply, new_state

    events = list(session.journal.reader(loads=orjson.loads))
    rules = session.rules()
    state = new_state()
    spent: dict[str, list[int]] = {}
    clock = time.perf_counter_ns
    gc.collect()
    for event in events:
        start = clock()
        apply(state, event, rules)
        spent.setdefault(event["type"], []).append(clock() - start)
    total = sum(sum(values) for values in spent.values())
    return {kind: {"events": len(values), "mean_us": sum(values) / len(values) / 1e3,
                   "share": sum(values) / total}
            for kind, values in sorted(spent.items(), key=lambda item: -sum(item[1]))}


# -- main -----------------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the journal (200,000)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each measurement (5)")
    parser.add_argument("--tails", default="0,100,1000,10000", help="tail lengths for the resume timings")
    parser.add_argument("--dir", default=None, help="where to build the scratch power directory (a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 events, 3 reps, tails up to 1,000")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time projector.apply per event type over the events held in memory")
    parser.add_argument("--compare", metavar="DIR", default=None,
                        help="also rebuild with the popkit_power in DIR (a child process), alternated, same state")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is not met")
    args = parser.parse_args()
    if args.quick:
        args.events = min(args.events, 20_000)
        args.reps = min(args.reps, 3)
        args.tails = "0,100,1000"
    tails = sorted({int(tail) for tail in args.tails.split(",") if tail.strip()})
    tails = [tail for tail in tails if tail < args.events // 2]
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    base = tempfile.mkdtemp(prefix="popkit-bench-projector-", dir=args.dir)
    result: dict = {"machine": common.machine(), "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
                    "params": {"events": args.events, "reps": args.reps, "tails": tails}, "budgets": {}, "checks": {}}
    try:
        say(f"building a journal of {args.events:,} events in {base} ...")
        started = time.perf_counter()
        session, _maker = build_session(os.path.join(base, "power"), args.events, seed=7)
        journal = session.journal
        sizes = [os.path.getsize(journal.segment_path(segment)) for segment in journal.segments()]
        result["journal"] = {"events": args.events, "segments": len(sizes), "bytes": sum(sizes),
                             "mean_line_bytes": round(sum(sizes) / args.events, 1),
                             "build_seconds": round(time.perf_counter() - started, 1)}
        only_snapshot(session, None)

        say(f"rebuild vs bare loop vs reader alone, {args.reps} reps ...")
        samples: dict[str, list[float]] = {"rebuild": [], "bare": [], "reader": []}
        order = ["rebuild", "bare", "reader"]
        if args.compare:
            samples["compare"] = []
            order.append("compare")
        compare_hashes: set[str] = set()
        state_rebuilt: dict = {}
        for rep in range(args.reps):
            for name in (order if rep % 2 == 0 else order[::-1]):
                if name == "rebuild":
                    seconds, state_rebuilt = common.rebuild(session)
                elif name == "bare":
                    seconds = common.bare_loop(journal)
                elif name == "compare":
                    seconds, digest = compare_rebuild(args.compare, os.path.join(base, "power"))
                    compare_hashes.add(digest)
                else:
                    seconds = reader_only(session)
                samples[name].append(args.events / seconds)
        median = common.median
        ratios = [r / b for r, b in zip(samples["rebuild"], samples["bare"], strict=True)]
        result["rebuild"] = {
            "events_per_s": {name: median(values) for name, values in samples.items()},
            "ratio_of_medians": median(samples["rebuild"]) / median(samples["bare"]),
            "reader_ratio_of_medians": median(samples["reader"]) / median(samples["bare"]),
            "median_of_paired_ratios": median(ratios),
            "paired_ratios": ratios,
            "samples": samples,
            "state_bytes": len(orjson.dumps(state_rebuilt)),
            "state_counts": {"agents": len(state_rebuilt["agents"]), "tasks": len(state_rebuilt["tasks"]),
                             "insights": len(state_rebuilt["insights"]),
                             "approvals": len(state_rebuilt["approvals"])},
        }
        if args.compare:
            result["rebuild"]["compare"] = {
                "package": os.path.abspath(args.compare),
                "ratio_of_medians": median(samples["compare"]) / median(samples["bare"]),
                "speedup": median(samples["rebuild"]) / median(samples["compare"])}
            result["checks"]["compared package's state == this one's (byte for byte)"] = (
                compare_hashes == {state_hash(state_rebuilt)})
        result["budgets"]["rebuild >= 50% of bare orjson.loads loop"] = (
            result["rebuild"]["ratio_of_medians"] >= BUDGET_REBUILD_RATIO)

        say(f"resume from a snapshot + tail {tails} ...")
        keep = os.path.join(base, "kept-snapshots")
        os.mkdir(keep)
        resume: dict[str, dict] = {}
        identical = True
        for tail in tails:
            path = snapshot_at(session, args.events - tail, keep)
            only_snapshot(session, path)
            times = []
            for _ in range(args.reps):
                seconds, state = timed_resume(session)
                times.append(seconds)
            identical = identical and orjson.dumps(state) == orjson.dumps(state_rebuilt)
            resume[str(tail)] = {"median_ms": median(times) * 1e3, "samples_ms": [t * 1e3 for t in times],
                                 "snapshot_bytes": os.path.getsize(path)}
        result["resume"] = {"history": args.events, "tails": resume}
        result["checks"]["resume state == rebuild state (byte for byte)"] = identical

        if args.breakdown:
            say("apply cost per event type ...")
            result["apply_breakdown"] = apply_breakdown(session)
        small_events = max(args.events // 10, 2_000)
        probe = 1000 if 1000 in tails else (tails[-1] if tails else 0)
        say(f"resume with a tenth of the history ({small_events:,} events), tail {probe} ...")
        small, _ = build_session(os.path.join(base, "power-small"), small_events, seed=8)
        path = snapshot_at(small, small_events - probe, keep)
        only_snapshot(small, path)
        times = [timed_resume(small)[0] for _ in range(args.reps)]
        result["resume_small_history"] = {"history": small_events, "tail": probe, "median_ms": median(times) * 1e3,
                                          "snapshot_bytes": os.path.getsize(path)}
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(result, args)
    if args.strict and not (all(result["budgets"].values()) and all(result["checks"].values())):
        return 1
    return 0


def print_report(result: dict, args: argparse.Namespace) -> None:
    m = result["machine"]
    j = result["journal"]
    r = result["rebuild"]
    rate = common.rate
    print(f"\nmachine: {m['nproc']} CPUs ({m.get('cpu', '?')}), Python {m['python']}, orjson {m['orjson']}")
    print(f"package: {m['package']} ({m.get('version', '?')})")
    print(f"journal: {j['events']:,} events, {j['segments']} segment(s), {j['bytes'] / 1e6:.1f} MB, "
          f"{j['mean_line_bytes']:.0f} bytes/line; medians of {args.reps} reps, sides alternated")
    print(f"final state: {r['state_counts']}, {r['state_bytes'] / 1e3:.0f} kB as JSON\n")
    ok = result["budgets"]["rebuild >= 50% of bare orjson.loads loop"]
    rows = [
        ["rebuild from cold: Session.projection()", rate(r["events_per_s"]["rebuild"]),
         f"{r['ratio_of_medians']:.0%} of bare (paired {r['median_of_paired_ratios']:.0%})", ">= 50%",
         "PASS" if ok else "FAIL"],
        ["bare loop: for line in open(): orjson.loads(line)", rate(r["events_per_s"]["bare"]), "100%", "-", "-"],
        ["journal reader alone (no projector, info)", rate(r["events_per_s"]["reader"]),
         f"{r['reader_ratio_of_medians']:.0%} of bare", "-", "-"],
    ]
    if "compare" in r:
        rows.append([f"rebuild from cold by {r['compare']['package']}", rate(r["events_per_s"]["compare"]),
                     f"{r['compare']['ratio_of_medians']:.0%} of bare (this one: {r['compare']['speedup']:.2f}x)",
                     "-", "-"])
    print(common.table(rows, ["measurement", "events/s", "vs bare", "budget", "result"]))
    print()
    rows = []
    for tail, figures in result["resume"]["tails"].items():
        rows.append([f"snapshot + {int(tail):,} events", f"{result['resume']['history']:,}",
                     f"{figures['median_ms']:.1f} ms", f"{figures['snapshot_bytes'] / 1e3:.0f} kB"])
    small = result["resume_small_history"]
    rows.append([f"snapshot + {small['tail']:,} events", f"{small['history']:,}", f"{small['median_ms']:.1f} ms",
                 f"{small['snapshot_bytes'] / 1e3:.0f} kB"])
    rebuild_ms = result["journal"]["events"] / r["events_per_s"]["rebuild"] * 1e3
    rows.append(["rebuild from cold (for scale)", f"{result['journal']['events']:,}", f"{rebuild_ms:.0f} ms", "-"])
    print(common.table(rows, ["resume", "history (events)", "time (median)", "snapshot"]))
    if "apply_breakdown" in result:
        print()
        rows = [[kind, f"{figures['events']:,}", f"{figures['mean_us']:.2f} us", f"{figures['share']:.0%}"]
                for kind, figures in result["apply_breakdown"].items()]
        print(common.table(rows, ["apply, by event type (events in memory)", "events", "per event", "share"]))
    for name, passed in result["checks"].items():
        print(f"check: {name}: {'PASS' if passed else 'FAIL'}")
    print("paired ratios per rep, rebuild/bare: " + " ".join(f"{x:.2f}" for x in r["paired_ratios"]))


if __name__ == "__main__":
    sys.exit(main())
