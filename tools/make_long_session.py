"""A realistic day of a power session, written as a real journal: the input of the long-run benchmarks (issue 18).

    .venv/bin/python tools/make_long_session.py --dir /tmp/longday [--events 1000000] [--agents 100] [--tasks 10000]
        [--approvals 1000] [--machines 3] [--seed 1]

writes a power directory whose active session holds `--events` events spread over 24 hours, appended through
`Session.append_events` in batches of 1,000 (so the segments, their index and the evidence on the human's events are
what the package itself writes). The mix, deterministic for a seed:

- agents join over the first three quarters of the day, each on one machine, and most leave again (`agent.left`);
  about one in six is declared lost by its machine's coordinator (`agent.lost`); the ones that joined late are still
  there at the end. Tasks an agent held when it left or was lost are orphaned by the coordinator (`task.orphaned`)
  and claimed again by another agent;
- tool calls are most of it (~70%), heartbeats (~18%, naming the task the agent holds), idles, direct messages,
  broadcasts and insights (some of them near-repeats), the coordinators' `coordinator.status`;
- `--tasks` tasks are created over the first 92% of the day (by the human or the coordinator, some for an owner),
  claimed with the round the claimant saw, and then completed, failed, released or parked; the last ones are open;
- `--approvals` requests from agents over the day, each answered by the human (granted or denied) a while later;
- `--machines` machines: this one from the start, the others joining in the first half of the day. Their agents'
  events are in the journal as replication pulls them (replication/entries.py: `origin`, then `oseq`, that origin's
  number, and `rts`, when it was received), and once the first one joins, every task transition on any machine is
  placed by the replication server (`arbiter.ordered`, claims also decided: `arbiter.decided`), pulled from the
  arbiter's stream with its own `oseq`, as replication/effects.py and pulling.py make them; this machine's
  transitions from before are placed then, in journal order, as its first push sends them.

Every event is built with `protocol.make_event`, so it is valid by protocol.py; `tests/test_long_session.py` checks
that the fold takes it without a complaint and that `popkit-power verify` passes. Not part of the package.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bench_common as common  # noqa: E402

from popkit_power.home import set_active_session  # noqa: E402
from popkit_power.keys import ARBITER, COORDINATOR, HUMAN  # noqa: E402
from popkit_power.protocol import make_event  # noqa: E402
from popkit_power.session import Session  # noqa: E402
from popkit_power.timestamps import utc_text  # noqa: E402

#: Raised whenever the day it writes for a seed changes: tools/bench_long_run.py does not reuse a session of another.
#: 2: this machine's task transitions from before replication started are placed when it starts.
GENERATOR_VERSION = 2
DAY = 86_400.0
BATCH = 1000
STATUS_EVERY = 15.0  # seconds between a coordinator's `coordinator.status` (config heartbeat_seconds)
OBJECTIVE = "Ship the billing service rewrite"
WORDS = ("cache", "retry", "invoice", "ledger", "schema", "migration", "flaky", "timeout", "index", "queue",
         "webhook", "refund", "currency", "rounding", "lock", "deadlock", "pagination", "token", "session", "batch",
         "export", "import", "tax", "report", "audit", "fixture", "mock", "endpoint", "handler", "worker")
#: What an agent does when nothing else is due, by weight (the rest of the mix is scheduled: see `Day`).
FILLER = {"agent.tool": 80.0, "agent.heartbeat": 20.5, "agent.idle": 0.6, "message.direct": 0.5,
          "message.broadcast": 0.15, "insight.shared": 0.6}


class Day:
    """The day's events, one at a time (`events()`), for the sizes given; everything drawn from one seeded RNG."""

    def __init__(self, events: int, agents: int, tasks: int, approvals: int, machines: int, seed: int,
                 local_origin: str, session_id: str) -> None:
        self.rng = random.Random(seed)
        self.total, self.session_id = events, session_id
        self.step_seconds = DAY / events
        self.index = 0  # events made so far; the next one is the journal's seq index + 1
        self.yielded = 0
        self.origins = [local_origin] + [f"machine{number}-{self.rng.getrandbits(24):06x}"
                                         for number in range(1, machines)]
        # machine n joins at n/(2*machines) of the day: all of them are in by the middle of it
        self.machine_joins = [0 if number == 0 else int(events * number / (2 * machines))
                              for number in range(machines)]
        self.oseq = dict.fromkeys(self.origins, 0)
        self.oseq[ARBITER] = 0
        self.replicating = False
        self.backlog: list[dict[str, Any]] = []  # this machine's task transitions before replication started
        self.keys = [common.agent_key(number) for number in range(agents)]
        self.machine_of: dict[str, int] = {}
        self.live: list[str] = []
        self.calls = dict.fromkeys(self.keys, 0)
        self.holding: dict[str, list[str]] = {key: [] for key in self.keys}
        self.task_count = 0
        self.tasks: dict[str, dict[str, Any]] = {}  # open tasks: owner, attempts, status
        self.open_unheld: list[str] = []
        self.request_count = 0
        self.insights: list[str] = []
        self.due: list[tuple[int, int, str, tuple[Any, ...]]] = []  # (index, tiebreak, action, args)
        self.tiebreak = 0
        self.next_status = [0.0] * machines
        self.status_gap = max(STATUS_EVERY, 40 * self.step_seconds)
        for number, key in enumerate(self.keys):
            joins = int(self.rng.uniform(0, 0.75) * events) if number >= 3 else number  # a few from the start
            stays = self.rng.uniform(0.15, 0.6) * events
            self._schedule(joins, "join", key)
            if joins + stays < events * 0.97:
                self._schedule(int(joins + stays), "lose" if self.rng.random() < 0.17 else "leave", key)
        for number in range(tasks):  # over the first 92% of the day, so that most of them finish
            self._schedule(int((number + self.rng.random()) * 0.92 * events / tasks), "create")
        for number in range(approvals):
            self._schedule(int((number + self.rng.random()) * 0.95 * events / approvals), "request")
        self.types, self.weights = list(FILLER), list(FILLER.values())

    # -- building events ---------------------------------------------------------------------------------------------

    def _schedule(self, index: int, action: str, *args: Any) -> None:
        self.tiebreak += 1
        heapq.heappush(self.due, (index, self.tiebreak, action, args))

    def _event(self, event_type: str, data: dict[str, Any], sender: str, *, machine: int = 0,
               to: str | None = None, arbiter: bool = False) -> dict[str, Any]:
        """An event at the current time: this machine's as written, another's (or the arbiter's) as pulled."""
        when = common.BASE_EPOCH + self.index * self.step_seconds
        origin = ARBITER if arbiter else self.origins[machine]
        event = make_event(event_type, data, sender=sender, session=self.session_id, origin=origin, to=to,
                           ts=utc_text(when - (self.rng.uniform(0.05, 1.5) if origin != self.origins[0] else 0)))
        self.index += 1
        if origin == self.origins[0]:
            event["_seq"] = self.index  # the journal's seq: the journal is new and takes every event in order
            return event
        self.oseq[origin] += 1
        pulled: dict[str, Any] = {}
        for name, value in event.items():
            pulled[name] = value
            if name == "origin":
                pulled.update(oseq=self.oseq[origin], rts=utc_text(when))
        return pulled

    def _text(self, low: int, high: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(self.rng.randint(low, high)))

    def _transition(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """A task transition, followed (once machines replicate) by the server's place for it and, for a claim, the
        decision of its contest: the arbiter's facts, pulled from its stream."""
        if not self.replicating:
            self.backlog.append(dict(event))  # a copy: the writer takes its `_seq` out of the one it writes
            return [event]
        return [event, *self._placed(event)]

    def _placed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """The arbiter's facts about one task transition: its contest's decision (a claim) and its place."""
        made = []
        data = event["data"]
        seq = event.get("oseq", event.get("_seq"))
        if event["type"] == "task.claimed":
            made.append(self._event("arbiter.decided", {
                "contest": f"claim:{data['task']}:{data.get('round', 0)}", "event": event["id"],
                "type": "task.claimed", "task": data["task"], "agent": event["from"], "origin": event["origin"],
                "claim_seq": seq}, ARBITER, arbiter=True))
        made.append(self._event("arbiter.ordered", {"event": event["id"], "task": data["task"], "type": event["type"],
                                                    "origin": event["origin"], "seq": seq}, ARBITER, arbiter=True))
        return made

    # -- the day ----------------------------------------------------------------------------------------------------

    def opening(self) -> list[dict[str, Any]]:
        return [self._event("session.opened", {"objective": OBJECTIVE}, HUMAN),
                self._event("objective.set", {"text": OBJECTIVE}, HUMAN),
                self._event("coordinator.started", {"pid": 4242, "host": "benchhost"}, COORDINATOR)]

    def events(self) -> Any:
        """Every event of the day, in journal order, exactly `total` of them."""
        made = self.opening()
        while True:
            for event in made:
                yield event
                self.yielded += 1
                if self.yielded == self.total:  # a step's last events past the end are not written
                    return
            made = self._step()

    def _step(self) -> list[dict[str, Any]]:
        index, rng = self.index, self.rng
        for machine, joins in enumerate(self.machine_joins):
            if machine and index >= joins and not self.replicating:
                # replication starts: this machine pushes its journal from the start, and the server places its task
                # transitions in that order before any later one (so no later transition of a task is placed before
                # an earlier one, which the fold would apply out of order)
                self.replicating = True
                made = [fact for event in self.backlog for fact in self._placed(event)]
                self.backlog = []
                if made:
                    return made
        if self.due and self.due[0][0] <= index:
            _at, _tie, action, args = heapq.heappop(self.due)
            made = getattr(self, f"_do_{action}")(*args)
            if made:
                return made
        now = index * self.step_seconds
        for machine, joins in enumerate(self.machine_joins):
            if index >= joins and now >= self.next_status[machine]:
                self.next_status[machine] = now + self.status_gap
                return [self._event("coordinator.status", {"agents": len(self.live), "open_tasks": len(self.tasks)},
                                    COORDINATOR, machine=machine)]
        if not self.live:
            return [self._event("coordinator.status", {"agents": 0, "open_tasks": len(self.tasks)}, COORDINATOR)]
        return [self._filler(rng.choice(self.live))]

    def _filler(self, key: str) -> dict[str, Any]:
        rng, machine = self.rng, self.machine_of[key]
        kind = rng.choices(self.types, self.weights)[0]
        if kind == "agent.tool":
            tool = rng.choice(common.TOOLS)
            data: dict[str, Any] = {"tool": tool, "ok": rng.random() > 0.05, "ms": round(rng.uniform(2, 900), 1)}
            if tool not in ("Bash", "WebFetch", "TodoWrite"):
                data["file"] = common.file_path(rng)
            if not data["ok"]:
                data["error"] = "exit status 1: command failed"
            self.calls[key] += 1
            return self._event(kind, data, key, machine=machine)
        if kind == "agent.heartbeat":
            calls = self.calls[key]
            data = {"tool_calls": calls, "tool_counts": {"Read": calls // 2, "Edit": calls // 4, "Bash": calls // 8},
                    "files_touched": [common.file_path(rng)], "progress": round(rng.random(), 2)}
            if self.holding[key]:
                data["current_task"] = self.holding[key][-1]
            return self._event(kind, data, key, machine=machine)
        if kind == "agent.idle":
            return self._event(kind, {}, key, machine=machine)
        if kind == "message.direct":
            return self._event(kind, {"text": self._text(6, 14)}, key, machine=machine, to=rng.choice(self.live))
        if kind == "message.broadcast":
            sender = HUMAN if rng.random() < 0.3 else key
            return self._event(kind, {"text": self._text(6, 14)}, sender, machine=0 if sender == HUMAN else machine)
        if self.insights and rng.random() < 0.2:  # a near-repeat of an earlier insight
            text = rng.choice(self.insights[-100:]) + " " + rng.choice(WORDS)
        else:
            text = self._text(8, 16)
            self.insights.append(text)
        return self._event("insight.shared", {"text": text, "tags": [rng.choice(WORDS)]}, key, machine=machine)

    def _later(self, low: float, high: float) -> int:
        """An index `low`..`high` seconds of the day from now (at least one event on)."""
        return self.index + max(1, int(self.rng.uniform(low, high) / self.step_seconds))

    def _do_create(self) -> list[dict[str, Any]]:
        task = f"task-{self.task_count:05d}"
        self.task_count += 1
        data: dict[str, Any] = {"task": task, "title": self._text(4, 9)}
        owner = self.rng.choice(self.live) if self.live and self.rng.random() < 0.1 else None
        if owner is not None:
            data["owner"] = owner
        self.tasks[task] = {"owner": owner, "attempts": 1 if owner else 0}
        if owner is not None:
            self.holding[owner].append(task)
            self._schedule(self._later(300, 5400), "finish", task, owner)
        else:
            self.open_unheld.append(task)
            self._schedule(self._later(5, 900), "claim", task)
        return self._transition(self._event("task.created", data, HUMAN if self.rng.random() < 0.3 else COORDINATOR))

    def _do_claim(self, task: str) -> list[dict[str, Any]]:
        state = self.tasks.get(task)
        if state is None or state["owner"] is not None or state.get("parked"):
            return []
        if not self.live:
            self._schedule(self._later(60, 600), "claim", task)
            return []
        key = self.rng.choice(self.live)
        event = self._event("task.claimed", {"task": task, "round": state["attempts"]}, key,
                            machine=self.machine_of[key])
        state["owner"], state["attempts"] = key, state["attempts"] + 1
        self.open_unheld.remove(task)
        self.holding[key].append(task)
        self._schedule(self._later(300, 5400), "finish", task, key)
        return self._transition(event)

    def _do_finish(self, task: str, key: str) -> list[dict[str, Any]]:
        """The holder's outcome: completed (80%), failed (10%), released (6%), or parked by the coordinator (4%)."""
        state = self.tasks.get(task)
        if state is None or state["owner"] != key or key not in self.live:
            return []  # it changed hands (orphaned when its agent went): the new holder's own finish is scheduled
        machine, draw = self.machine_of[key], self.rng.random()
        self.holding[key].remove(task)
        if draw < 0.9:
            del self.tasks[task]
            return self._transition(self._event("task.completed", {"task": task, "result": self._text(5, 20),
                                                                   "ok": draw < 0.8}, key, machine=machine))
        state["owner"] = None
        self.open_unheld.append(task)
        if draw < 0.96:
            self._schedule(self._later(30, 1800), "claim", task)
            return self._transition(self._event("task.released", {"task": task, "reason": "blocked"}, key,
                                                machine=machine))
        state["parked"] = True
        self._schedule(self._later(600, 3600), "assign", task)  # the human gives it to someone
        return self._transition(self._event("task.parked", {"task": task, "reason": "needs a human decision",
                                                            "agent": key, "attempts": state["attempts"]},
                                            COORDINATOR, machine=machine))

    def _do_assign(self, task: str) -> list[dict[str, Any]]:
        state = self.tasks.get(task)
        if state is None or state["owner"] is not None:
            return []
        if not self.live:
            self._schedule(self._later(60, 600), "assign", task)
            return []
        key = self.rng.choice(self.live)
        state.update(owner=key, attempts=state["attempts"] + 1, parked=False)
        self.open_unheld.remove(task)
        self.holding[key].append(task)
        self._schedule(self._later(300, 5400), "finish", task, key)
        return self._transition(self._event("task.assigned", {"task": task, "agent": key}, HUMAN))

    def _do_request(self) -> list[dict[str, Any]]:
        if not self.live:  # asked by an agent: once one is there
            self._schedule(self._later(60, 600), "request")
            return []
        request = f"req-{self.request_count:05d}"
        self.request_count += 1
        key = self.rng.choice(self.live)
        self._schedule(self._later(20, 1200), "answer", request)
        return [self._event("approval.requested", {"request": request, "question": self._text(6, 12) + "?",
                                                   "options": ["yes", "no"]}, key, machine=self.machine_of[key])]

    def _do_answer(self, request: str) -> list[dict[str, Any]]:
        kind = "approval.granted" if self.rng.random() < 0.85 else "approval.denied"
        return [self._event(kind, {"request": request, "note": "ok" if kind == "approval.granted" else "not now"},
                            HUMAN)]

    def _do_join(self, key: str) -> list[dict[str, Any]]:
        machines = [number for number, joins in enumerate(self.machine_joins) if joins <= self.index]
        machine = self.rng.choice(machines)
        self.machine_of[key] = machine
        self.live.append(key)
        number = self.keys.index(key)
        return [self._event("agent.joined", {"name": f"agent-{number:03d}", "claude_session": key[:36],
                                             "agent_id": key[37:], "agent_type": "general-purpose",
                                             "host": f"host-{machine}", "cwd": "/home/dev/acme"},
                            key, machine=machine)]

    def _do_leave(self, key: str) -> list[dict[str, Any]]:
        return self._gone(key, [self._event("agent.left", {"reason": "session ended"}, key,
                                            machine=self.machine_of[key])])

    def _do_lose(self, key: str) -> list[dict[str, Any]]:
        machine = self.machine_of[key]
        return self._gone(key, [self._event("agent.lost", {"agent": key, "reason": "heartbeat timeout",
                                                           "evidence": {"silent_seconds": 187.0}},
                                            COORDINATOR, machine=machine)])

    def _gone(self, key: str, made: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """An agent left or was lost: its machine's coordinator orphans what it held, to be claimed again."""
        self.live.remove(key)
        for task in self.holding[key]:
            state = self.tasks[task]
            state["owner"] = None
            self.open_unheld.append(task)
            made += self._transition(self._event("task.orphaned", {"task": task, "agent": key,
                                                                   "context": {"files": [], "last_message": None}},
                                                 COORDINATOR, machine=self.machine_of[key]))
            self._schedule(self._later(30, 900), "claim", task)
        self.holding[key] = []
        return made


def write_session(power_dir: str, *, events: int = 1_000_000, agents: int = 100, tasks: int = 10_000,
                  approvals: int = 1_000, machines: int = 3, seed: int = 1, quiet: bool = True) -> Session:
    """Write the day into a new session of `power_dir` (made active) and return the session."""
    session = Session(power_dir, common.SESSION_ID, create=True)
    day = Day(events, agents, tasks, approvals, machines, seed, session.origin, session.id)
    batch: list[dict[str, Any]] = []
    started = time.monotonic()
    for event in day.events():
        seq = event.pop("_seq", None)
        batch.append(event)
        if len(batch) >= BATCH:
            _append(session, batch, seq)
            batch = []
            if not quiet and day.index % 100_000 < BATCH:
                print(f"  {day.index:,} events, {time.monotonic() - started:.0f} s", file=sys.stderr)
    if batch:
        _append(session, batch, None)
    set_active_session(power_dir, session.id)
    return session


def _append(session: Session, batch: list[dict[str, Any]], seq: int | None) -> None:
    appended = session.append_events(batch)
    if appended.last_seq != appended.first_seq + len(batch) - 1 or (seq is not None and appended.last_seq != seq):
        raise RuntimeError(f"the journal did not take the batch in order (seqs {appended.first_seq}.."
                           f"{appended.last_seq}, expected ..{seq}): is the session new?")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="the power directory to write (must not hold the session yet)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the journal (1,000,000)")
    parser.add_argument("--agents", type=int, default=100, help="agents over the day (100)")
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks created over the day (10,000)")
    parser.add_argument("--approvals", type=int, default=1_000, help="approval requests (1,000)")
    parser.add_argument("--machines", type=int, default=3, help="machines, this one included (3)")
    parser.add_argument("--seed", type=int, default=1, help="the random seed (1)")
    args = parser.parse_args()
    started = time.monotonic()
    session = write_session(os.path.abspath(args.dir), events=args.events, agents=args.agents, tasks=args.tasks,
                            approvals=args.approvals, machines=args.machines, seed=args.seed, quiet=False)
    size = sum(os.path.getsize(session.journal.segment_path(segment)) for segment in session.journal.segments())
    print(f"session {session.id} in {args.dir}: {session.journal.end_position()} , {size / 1e6:.0f} MB of journal, "
          f"written in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
