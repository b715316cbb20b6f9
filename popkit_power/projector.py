"""The projector: a pure fold from journal events to the state of a power session.

`apply(state, event, rules)` reads only its arguments: no disk, network or clock (time is the events' `ts`). It
updates `state` in place and returns it. State is plain JSON data, so a snapshot is `orjson.dumps(state)`, and a
rebuild from zero or a resume from any snapshot gives the same state byte for byte (tests/test_projector.py).

What the state holds (`new_state()`): the session and its objective; agents (status, last seen, progress, current
task, files touched, tool counts); tasks (owner, status, attempts, result); the orphan list; insights with duplicate
detection; approval requests and their answers; file conflicts; the coordinator's status. Every collection that
could grow with history rather than with agents and tasks is bounded by a rule.
"""

from __future__ import annotations

from typing import Any

from .config import DEFAULTS
from .conflicts import WRITE_TOOLS, in_conflict
from .insight_index import insight_index
from .insights import insight_key
from .keys import HUMAN
from .protocol import remember_recent
from .timestamps import seconds_of

State = dict[str, Any]
Event = dict[str, Any]

AGENT_ACTIVE, AGENT_IDLE, AGENT_LEFT, AGENT_LOST = "active", "idle", "left", "lost"
TASK_OPEN, TASK_CLAIMED, TASK_ASSIGNED = "open", "claimed", "assigned"
TASK_COMPLETED, TASK_FAILED, TASK_ORPHANED, TASK_PARKED = "completed", "failed", "orphaned", "parked"
OPEN_TASK_STATES = frozenset({TASK_OPEN, TASK_CLAIMED, TASK_ASSIGNED, TASK_ORPHANED, TASK_PARKED})
FINISHED_TASK_STATES = frozenset({TASK_COMPLETED, TASK_FAILED})
#: Raised whenever `apply` folds an event differently than before: snapshots made by other code are not reused.
FOLD_VERSION = 6  # 3: approvals answered once; 4: parked tasks; 5: pid_start; 6: orphaned only from its owner
MAX_CONFLICTS = 100
MAX_WATCHED_FILES = 1000


class Rules:
    """The settings the fold depends on (defaults from `config.DEFAULTS`); part of what makes two projections
    comparable."""

    __slots__ = ("conflict_window_seconds", "insight_similarity_threshold", "max_files_per_agent",
                 "max_insights_kept")
    conflict_window_seconds: float
    insight_similarity_threshold: float
    max_files_per_agent: int
    max_insights_kept: int

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.__slots__)
        if unknown:
            raise TypeError(f"unknown rules: {', '.join(sorted(unknown))}")
        for name in self.__slots__:
            setattr(self, name, values.get(name, DEFAULTS[name][0]))

    @classmethod
    def from_config(cls, config: Any) -> Rules:
        return cls(**{name: getattr(config, name) for name in cls.__slots__})


def new_state() -> State:
    """The state before the first event."""
    return {"seq": 0, "session": None, "opened": None, "closed": None, "objective": None, "agents": {}, "tasks": {},
            "orphans": [], "insights": [], "approvals": {}, "conflicts": [], "writes": {},
            "coordinator": {"status": "none"}, "counts": {}}


def apply(state: State, event: Event, rules: Rules) -> State:
    """Fold one event into `state` (in place) and return it. Unknown types are counted and otherwise ignored."""
    event_type = event.get("type")
    sender = event.get("from")
    counts = state["counts"]
    state["seq"] = event.get("seq", state["seq"])
    if not isinstance(event_type, str) or not isinstance(sender, str):
        counts["invalid"] = counts.get("invalid", 0) + 1
        return state
    counts[event_type] = counts.get(event_type, 0) + 1
    agent = state["agents"].get(sender)
    if agent is not None:
        agent["last_seen"] = event.get("ts")
    handler = _HANDLERS.get(event_type)
    if handler is not None:
        data = event.get("data")
        try:
            handler(state, event, data if isinstance(data, dict) else {}, rules)
        except (TypeError, AttributeError, KeyError, ValueError):
            # A record whose checksum holds but whose fields have the wrong kinds (another writer's bug, a newer
            # version): counted and stepped over, so one bad record never stops every later read. What the handler
            # did before it failed stays, which is the same on every rebuild, so projections still agree.
            counts["invalid"] = counts.get("invalid", 0) + 1
    return state


def project(events: Any, rules: Rules | None = None, state: State | None = None) -> State:
    """Fold every event of an iterable into `state` (a new one when None)."""
    rules = rules or Rules()
    state = new_state() if state is None else state
    for event in events:
        apply(state, event, rules)
    return state


# -- queries --------------------------------------------------------------------------------------------------------

def open_tasks_of(state: State, agent: str) -> list[str]:
    """The ids of the tasks `agent` owns that are not finished."""
    return [task_id for task_id, task in state["tasks"].items()
            if task["owner"] == agent and task["status"] in OPEN_TASK_STATES]


def live_agents(state: State) -> list[str]:
    """Agents that have not left and have not been declared lost."""
    return [key for key, agent in state["agents"].items() if agent["status"] in (AGENT_ACTIVE, AGENT_IDLE)]


# -- handlers -------------------------------------------------------------------------------------------------------

def _agent(state: State, key: str, ts: Any) -> dict[str, Any]:
    agent: dict[str, Any] | None = state["agents"].get(key)
    if agent is None:
        agent = {"name": key, "status": AGENT_ACTIVE, "joined": ts, "last_seen": ts, "progress": None,
                 "current_task": None, "files_touched": [], "tool_counts": {}, "tool_calls": 0, "failures": 0}
        state["agents"][key] = agent
    return agent


def _joined(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    agent = _agent(state, event["from"], event.get("ts"))
    agent["status"] = AGENT_ACTIVE
    agent["origin"] = event.get("origin")
    for field in ("name", "claude_session", "agent_id", "agent_type", "parent", "pid", "pid_start", "host", "cwd"):
        if field in data:
            agent[field] = data[field]


def _touch_file(agent: dict[str, Any], path: str, limit: int) -> None:
    remember_recent(agent["files_touched"], path, limit)


def _heartbeat(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    agent = _agent(state, event["from"], event.get("ts"))
    if agent["status"] in (AGENT_IDLE, AGENT_LOST):  # a lost agent that speaks again was not dead after all
        agent["status"] = AGENT_ACTIVE
    calls = data.get("tool_calls")
    if isinstance(calls, int):
        agent["tool_calls"] = max(agent["tool_calls"], calls)
    counts = data.get("tool_counts")
    if isinstance(counts, dict):
        agent["tool_counts"] = {name: n for name, n in counts.items() if isinstance(n, int)}
    for path in data.get("files_touched") or ():
        if isinstance(path, str):
            _touch_file(agent, path, rules.max_files_per_agent)
    if "current_task" in data:
        agent["current_task"] = data["current_task"]
    progress = data.get("progress")
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        agent["progress"] = progress


def _tool(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    sender = event["from"]
    agent = _agent(state, sender, event.get("ts"))
    if agent["status"] in (AGENT_IDLE, AGENT_LOST):
        agent["status"] = AGENT_ACTIVE
    tool = data.get("tool")
    if isinstance(tool, str):  # a record without one must not put a null key into the state (snapshots are JSON)
        counts = agent["tool_counts"]
        counts[tool] = counts.get(tool, 0) + 1
    agent["tool_calls"] += 1
    if data.get("ok") is False:
        agent["failures"] += 1
    path = data.get("file")
    if isinstance(path, str):
        _touch_file(agent, path, rules.max_files_per_agent)
        if tool in WRITE_TOOLS:
            _note_write(state, sender, path, event, rules)


def _note_write(state: State, sender: str, path: str, event: Event, rules: Rules) -> None:
    """Record a file write and a conflict if another live agent wrote the same file within the window."""
    now = seconds_of(event.get("ts"))
    writes: dict[str, dict[str, float]] = state["writes"]
    writers = writes.pop(path, {})  # re-inserted below, so the dict stays ordered by latest write
    others = sorted(
        other for other, when in writers.items()
        if other != sender and now is not None and in_conflict(now, when, rules.conflict_window_seconds)
        and state["agents"].get(other, {}).get("status") in (AGENT_ACTIVE, AGENT_IDLE)
    )
    if others:
        _add_conflict(state, {"file": path, "agents": [*others, sender], "seq": event.get("seq"),
                              "ts": event.get("ts")})
    if now is not None:
        writers[sender] = now
    writes[path] = writers
    while len(writes) > MAX_WATCHED_FILES:
        del writes[next(iter(writes))]


def _add_conflict(state: State, conflict: dict[str, Any]) -> None:
    conflicts: list[dict[str, Any]] = state["conflicts"]
    conflicts.append(conflict)
    if len(conflicts) > MAX_CONFLICTS:
        del conflicts[0]


def _file_conflict(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    _add_conflict(state, {"file": data.get("file"), "agents": list(data.get("agents") or ()),
                          "seq": event.get("seq"), "ts": event.get("ts")})


def _idle(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    _agent(state, event["from"], event.get("ts"))["status"] = AGENT_IDLE


def _left(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    agent = _agent(state, event["from"], event.get("ts"))
    agent["status"] = AGENT_LEFT
    agent["left_reason"] = data.get("reason")


def _lost(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    key = data.get("agent")
    if isinstance(key, str) and key in state["agents"]:
        state["agents"][key]["status"] = AGENT_LOST
        state["agents"][key]["lost_reason"] = data.get("reason")


def _task(state: State, task_id: Any, event: Event) -> dict[str, Any] | None:
    if not isinstance(task_id, str):
        return None
    task: dict[str, Any] | None = state["tasks"].get(task_id)
    if task is None:  # a task first heard of through a claim or result (e.g. created on another machine)
        task = {"title": task_id, "status": TASK_OPEN, "owner": None, "attempts": 0, "result": None,
                "created": event.get("ts"), "created_by": event.get("from"), "parent": None}
        state["tasks"][task_id] = task
    task["updated"] = event.get("ts")
    return task


def _drop_orphan(state: State, task_id: str) -> None:
    if task_id in state["orphans"]:
        state["orphans"].remove(task_id)


def _created(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None:
        return
    task["title"] = data.get("title", task["title"])
    task["parent"] = data.get("parent")
    owner = data.get("owner")
    if isinstance(owner, str) and task["owner"] is None:
        task["owner"], task["status"], task["attempts"] = owner, TASK_ASSIGNED, task["attempts"] + 1
        _set_current_task(state, owner, data["task"])


def _set_current_task(state: State, agent_key: str, task_id: str | None) -> None:
    agent = state["agents"].get(agent_key)
    if agent is not None:
        agent["current_task"] = task_id


def _claimed(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None or task["status"] not in (TASK_OPEN, TASK_ORPHANED):
        return  # the first claim in journal order wins; later ones change nothing
    task["owner"], task["status"], task["attempts"] = event["from"], TASK_CLAIMED, task["attempts"] + 1
    _drop_orphan(state, data["task"])
    _set_current_task(state, event["from"], data["task"])


def _assigned(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    agent = data.get("agent")
    if task is None or not isinstance(agent, str) or task["status"] in FINISHED_TASK_STATES:
        return
    task["owner"], task["status"], task["attempts"] = agent, TASK_ASSIGNED, task["attempts"] + 1
    _drop_orphan(state, data["task"])
    _set_current_task(state, agent, data["task"])


def _completed(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None:
        return
    task["status"] = TASK_FAILED if data.get("ok") is False else TASK_COMPLETED
    task["result"] = data.get("result")
    task["completed_by"] = event.get("from")
    _drop_orphan(state, data["task"])
    owner = state["agents"].get(task["owner"])
    if owner is not None and owner.get("current_task") == data["task"]:
        owner["current_task"] = None


def _orphaned(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """Not when another agent holds it now: a decision made before an assignment or claim was seen undoes neither."""
    task = _task(state, data.get("task"), event)
    if task is None or task["status"] in FINISHED_TASK_STATES or task["owner"] not in (None, data.get("agent")):
        return
    task["previous_owner"] = data.get("agent")
    task["owner"], task["status"] = None, TASK_ORPHANED
    if data["task"] not in state["orphans"]:
        state["orphans"].append(data["task"])


def _parked(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """A task that lost its agent too often waits for the human: no claim takes it, only an assignment."""
    task = _task(state, data.get("task"), event)
    holder = data.get("agent", task["owner"]) if task is not None else None
    if task is None or task["status"] in FINISHED_TASK_STATES or task["owner"] not in (None, holder):
        return
    task["owner"], task["status"], task["parked_reason"] = None, TASK_PARKED, data.get("reason")
    _drop_orphan(state, data["task"])


def _released(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None or task["status"] in FINISHED_TASK_STATES:
        return
    task["owner"], task["status"] = None, TASK_OPEN
    _drop_orphan(state, data["task"])


def _insight(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    text = data.get("text")
    if not isinstance(text, str):
        return
    key, words = insight_key(text)
    insights = state["insights"]
    index = insight_index(insights, rules.insight_similarity_threshold)
    prefix = index.prefix(words)
    duplicate_of = index.first_match(key, words, prefix)
    tags = [tag for tag in data.get("tags") or () if isinstance(tag, str)]
    entry = {"id": event.get("id"), "seq": event.get("seq"), "from": event.get("from"), "text": text, "tags": tags,
             "ts": event.get("ts"), "key": key, "dup_of": duplicate_of}
    insights.append(entry)
    index.appended(entry, words, prefix)
    if len(insights) > rules.max_insights_kept:
        del insights[0]
        index.dropped_first()


def _approval_requested(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    request = data.get("request")
    if isinstance(request, str):
        state["approvals"][request] = {"question": data.get("question"), "options": data.get("options"),
                                       "from": event.get("from"), "status": "pending", "asked": event.get("ts"),
                                       "answered": None, "by": None, "note": None}


def _approval_answered(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """The human's first answer to a request is the answer (the agent hears only that one); a later answer, or one
    from anyone but the human, is counted and changes nothing."""
    request = data.get("request")
    if not isinstance(request, str):
        return
    approval = state["approvals"].setdefault(request, {"question": None, "options": None, "from": None,
                                                       "asked": None, "status": "pending"})
    if event.get("from") != HUMAN or approval.get("status") != "pending":
        state["counts"]["ignored_answers"] = state["counts"].get("ignored_answers", 0) + 1
        return
    approval.update(status="granted" if event["type"] == "approval.granted" else "denied",
                    answered=event.get("ts"), by=event.get("from"), note=data.get("note"))


def _objective(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    state["objective"] = {"text": data.get("text"), "by": event.get("from"), "ts": event.get("ts")}


def _opened(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    state["session"] = event.get("session")
    state["opened"] = event.get("ts")
    if state["objective"] is None and isinstance(data.get("objective"), str):
        state["objective"] = {"text": data["objective"], "by": event.get("from"), "ts": event.get("ts")}


def _closed(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    state["closed"] = event.get("ts")


def _coordinator(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    status = {"started": "running", "status": "running", "stopped": "stopped"}[event["type"].split(".")[1]]
    coordinator = state["coordinator"]
    if status == "running" and coordinator.get("status") != "running":
        coordinator["since"] = event.get("ts")
    coordinator.update(status=status, last_seen=event.get("ts"), by=event.get("from"), origin=event.get("origin"))
    coordinator.update({key: value for key, value in data.items() if key in ("pid", "host", "reason")})


_HANDLERS = {
    "agent.joined": _joined, "agent.heartbeat": _heartbeat, "agent.tool": _tool, "agent.idle": _idle,
    "agent.left": _left, "agent.lost": _lost, "task.created": _created, "task.claimed": _claimed,
    "task.assigned": _assigned, "task.completed": _completed, "task.orphaned": _orphaned, "task.released": _released,
    "task.parked": _parked,
    "insight.shared": _insight, "approval.requested": _approval_requested, "approval.granted": _approval_answered,
    "approval.denied": _approval_answered, "objective.set": _objective, "objective.updated": _objective,
    "session.opened": _opened, "session.closed": _closed, "coordinator.started": _coordinator,
    "coordinator.status": _coordinator, "coordinator.stopped": _coordinator, "file.conflict": _file_conflict,
}
