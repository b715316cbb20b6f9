"""Who is in the session and what they do: joins, tool calls, heartbeats, idleness, leaving and being lost, what
each agent last said, and file conflicts between agents.

A tool call that only runs `popkit-power` itself (the hook marks it `power`) is counted but is not work: a person's
own Claude Code session that looks at `status` or answers an approval is not a working agent (`work_calls` stays 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ..protocol import remember_recent
from ..timestamps import seconds_of
from ..tool_calls import WRITE_TOOLS, in_conflict
from .model import (
    AGENT_ACTIVE,
    AGENT_IDLE,
    AGENT_LEFT,
    AGENT_LOST,
    GONE_AGENT_STATES,
    HANDOVER_FILES,
    MAX_CONFLICTS,
    MAX_WATCHED_FILES,
    Event,
    Rules,
    State,
    count,
    cut,
    index_finished,
    uncount,
)
from .ownership import current_tasks, holds

if TYPE_CHECKING:
    from ..shapes.events import AgentHeartbeat, AgentLost, AgentTool, FileConflict, NoData, Reason, Said
    from ..shapes.state import Agent, Conflict
    from .model import Handler


def agent_entry(state: State, key: str, ts: Any, *, joining: bool = False) -> Agent:
    """The agent `key`, made when first heard of.

    An agent that left long ago (its entry gone, its key in `departed_ids` as left) comes back only by joining
    again (a resumed Claude Code session): a late word from it (a heartbeat or tool call that arrives after its
    leaving) gets an entry that is not kept, as a left agent's late words leave it left in the full fold. One that
    was declared lost comes back with any word, as a lost agent that speaks again does."""
    agent: Agent | None = state["agents"].get(key)
    if agent is None:
        agent = {"name": key, "status": AGENT_ACTIVE, "joined": ts, "last_seen": ts, "progress": None,
                 "current_task": None, "files_touched": [], "tool_counts": {}, "tool_calls": 0, "work_calls": 0,
                 "failures": 0, "last_message": None}
        if not joining and state["departed_ids"].get(key) == 1:
            agent["status"] = AGENT_LEFT
            return agent  # not kept: it stays gone
        if state["ordered"]:  # heard of after the server placed what it took (fold/ownership.py)
            agent["current_task"] = current_tasks(state, [key])[key]
        state["agents"][key] = agent
        gone = state["departed_ids"].pop(key, None)
        if gone is not None:  # it departed long ago and came back: listed again, so no longer counted as gone
            uncount(state["totals"]["agents"], AGENT_LEFT if gone else AGENT_LOST)
    return agent


def set_current_task(state: State, agent_key: Any, task_id: str | None, *, unless: str | None = None) -> None:
    """Set an agent's current task; with `unless`, only when its current task is that one (clearing what it held)."""
    agent = state["agents"].get(agent_key) if isinstance(agent_key, str) else None
    if agent is not None and (unless is None or agent["current_task"] == unless):
        agent["current_task"] = task_id


def _joined(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    agent = agent_entry(state, event["from"], event.get("ts"), joining=True)
    agent["status"] = AGENT_ACTIVE
    agent["origin"] = event.get("origin")
    joined = cast("dict[str, Any]", agent)  # AgentJoined's fields are Agent's, by the same names (tests/test_shapes.py)
    for field in ("name", "claude_session", "agent_id", "agent_type", "parent", "pid", "pid_start", "host", "cwd"):
        if field in data:
            joined[field] = data[field]


def _heartbeat(state: State, event: Event, data: AgentHeartbeat, rules: Rules) -> None:
    agent = agent_entry(state, event["from"], event.get("ts"))
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
            remember_recent(agent["files_touched"], path, rules.max_files_per_agent)
    # The task the agent says it works on, if it holds it: a heartbeat built before the agent heard that its task was
    # released or given to another must not put it back. With machines in the server's order, fold/tasks.py says.
    if "current_task" in data and not state["ordered"] and (
            data["current_task"] is None or holds(state, event["from"], data["current_task"])):
        agent["current_task"] = data["current_task"]
    progress = data.get("progress")
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        agent["progress"] = progress


def _tool(state: State, event: Event, data: AgentTool, rules: Rules) -> None:
    sender = event["from"]
    agent = agent_entry(state, sender, event.get("ts"))
    if agent["status"] in (AGENT_IDLE, AGENT_LOST):
        agent["status"] = AGENT_ACTIVE
    tool = data.get("tool")
    if isinstance(tool, str):  # a record without one must not put a null key into the state (snapshots are JSON)
        counts = agent["tool_counts"]
        counts[tool] = counts.get(tool, 0) + 1
    agent["tool_calls"] += 1
    if data.get("power") is not True:
        agent["work_calls"] = agent["work_calls"] + 1
    if data.get("ok") is False:
        agent["failures"] += 1
    path = data.get("file")
    if isinstance(path, str):
        remember_recent(agent["files_touched"], path, rules.max_files_per_agent)
        if tool in WRITE_TOOLS:
            _note_write(state, sender, path, event, rules)


def _said(state: State, event: Event, data: Said, rules: Rules) -> None:
    """What an agent said last (a broadcast, a direct message or an insight): part of a dead agent's hand-over."""
    agent = state["agents"].get(event["from"])
    text = data.get("text")
    if agent is not None and isinstance(text, str):
        agent["last_message"] = {"text": cut(text), "ts": event.get("ts"), "type": event.get("type"),
                                 "to": event.get("to")}


def _note_write(state: State, sender: str, path: str, event: Event, rules: Rules) -> None:
    """Record a file write and a conflict if another live agent wrote the same file within the window."""
    now = seconds_of(event.get("ts"))
    writes: dict[str, dict[str, float]] = state["writes"]
    writers = writes.pop(path, {})  # re-inserted below, so the dict stays ordered by latest write
    others = sorted(
        other for other, when in writers.items()
        if other != sender and now is not None and in_conflict(now, when, rules.conflict_window_seconds)
        and other in state["agents"] and state["agents"][other]["status"] in (AGENT_ACTIVE, AGENT_IDLE)
    )
    if others:
        _add_conflict(state, {"file": path, "agents": [*others, sender], "seq": event.get("seq"),
                              "ts": event.get("ts")})
    if now is not None:
        writers[sender] = now
    writes[path] = writers
    while len(writes) > MAX_WATCHED_FILES:
        del writes[next(iter(writes))]


def _add_conflict(state: State, conflict: Conflict) -> None:
    conflicts = state["conflicts"]
    conflicts.append(conflict)
    if len(conflicts) > MAX_CONFLICTS:
        del conflicts[0]


def _file_conflict(state: State, event: Event, data: FileConflict, rules: Rules) -> None:
    _add_conflict(state, {"file": data.get("file"), "agents": list(data.get("agents") or ()),
                          "seq": event.get("seq"), "ts": event.get("ts")})


def _idle(state: State, event: Event, data: NoData, rules: Rules) -> None:
    """Not an agent that left: a late idle (its Stop hook's word arriving after its SessionEnd's) leaves it left, as
    its late heartbeats and tool calls do; it comes back by joining again."""
    agent = agent_entry(state, event["from"], event.get("ts"))
    if agent["status"] != AGENT_LEFT:
        agent["status"] = AGENT_IDLE


def _left(state: State, event: Event, data: Reason, rules: Rules) -> None:
    agent = agent_entry(state, event["from"], event.get("ts"))
    agent["status"] = AGENT_LEFT
    agent["left_reason"] = data.get("reason")
    if state["agents"].get(event["from"]) is agent:  # not an agent that left long ago saying so again
        _departed(state, event["from"], rules)


def _lost(state: State, event: Event, data: AgentLost, rules: Rules) -> None:
    """The first word stands: several machines declaring one agent lost leave the same state in any order."""
    key = data.get("agent")
    if isinstance(key, str) and key in state["agents"] and state["agents"][key]["status"] != AGENT_LOST:
        state["agents"][key]["status"] = AGENT_LOST
        state["agents"][key]["lost_reason"] = data.get("reason")
        _departed(state, key, rules)


def _departed(state: State, key: str, rules: Rules) -> None:
    """`key` left or was lost: it keeps only the files its hand-over names, and joins the departures (`departed`,
    oldest first). Past `rules.kept_departed` of them, the oldest departed agents leave the state for the count in
    `totals["agents"]`, except one that still holds a task (its hand-over needs what it touched and said: it
    stays, and is looked at again at the next departure). One that came back (a lost agent that spoke again) is
    only taken off the list; if it departs again it goes to the end. Only a departure does this, so the cost is one
    pass over the open tasks per departure past the bound.

    The key of one that leaves the state stays in `departed_ids` (1 left, 0 lost): a task can still come to it
    afterwards (an assignment made on another machine before it heard of the departure, or the replication server's
    order giving back a claim that lost here), and the coordinator must still hand such a task on."""
    agent_files = state["agents"][key]["files_touched"]
    del agent_files[:-HANDOVER_FILES]  # what its hand-over names; the rest was for working beside it
    departed = state["departed"]
    if key in departed:
        departed.remove(key)
    departed.append(key)
    excess = len(departed) - rules.kept_departed
    if excess <= 0:
        return
    agents = state["agents"]
    owners = {task["owner"] for task in state["tasks"].values()}
    kept: list[str] = []
    for position, name in enumerate(departed):
        if excess == 0:
            kept += departed[position:]
            break
        agent = agents[name]  # every departed one is in the state: it leaves both here, together
        if agent["status"] in GONE_AGENT_STATES:  # else it came back: just off the list
            if name in owners:
                kept.append(name)
                continue
            del agents[name]
            index_finished(state["departed_ids"], name, agent["status"] == AGENT_LEFT, rules)
            count(state["totals"]["agents"], agent["status"])
        excess -= 1
    departed[:] = kept


HANDLERS: dict[str, Handler] = {
    "agent.joined": _joined, "agent.heartbeat": _heartbeat, "agent.tool": _tool, "agent.idle": _idle,
    "agent.left": _left, "agent.lost": _lost, "file.conflict": _file_conflict,
    "message.broadcast": _said, "message.direct": _said, "insight.shared": _said,
}
