"""What the hook does once Power Mode is on: one handler per Claude Code hook event, under the agent's lock.

Every handler appends what happened to the journal; tool events also read the agent's news (the inbox fold, bounded
per call) and answer with it; SessionStart and SubagentStart answer with a welcome. The projection (orjson,
projector) is loaded only for a welcome, which is not on the per-tool-call budget.

Delivery (docs/design.md): the state as it was before the news was read is saved first, the reply is written and
flushed, and only then is the state with the new cursor saved, so a reply that never got out is read again.
"""

from __future__ import annotations

import os
import time

from .._fs import remove_stale_temporaries
from ..config import usable_config
from ..display import cut
from ..home import trusted_active_session
from ..journal import codec
from ..journal.records import largest_record_size
from ..keys import AGENTS_DIR, MAIN, SNAPSHOTS_DIR, agent_key, agent_name, host_name, subagent_task
from ..processes import start_time
from ..protocol import remember_recent
from ..session import Session
from ..timestamps import seconds_of
from ..tool_calls import FILE_TOOLS, WRITE_TOOLS, runs_only_popkit_power
from . import miswired, texts
from .agent_state import AgentState
from .inbox import Inbox, learn_titles
from .log import STATE_DAMAGED, DamageLog, log_error
from .news import all_news, reply_and_keep
from .transcript import new_reference, remember, settle, transcript_of
from .wake import claim_path, drop_claim, take_news

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..journal.writer import Appended
    from ..shapes.events import AgentHeartbeat, AgentTool
    from ..shapes.state import Objective

HEARTBEAT_FILES = 20  # the files a heartbeat names: the agent's most recent ones
MAX_TOOL_KINDS = 50  # distinct tool names counted per agent (MCP servers can bring many)
#: The longest text the hook copies from a payload into a record, per field: whatever Claude Code (or a hostile
#: payload) sends, no record the hook builds can outgrow `max_record_bytes` (see `_fit` for the last resort).
MAX_CHARS = {"tool": 100, "file": 1000, "error": 300, "reason": 200, "result": 4000, "title": 200,
             "agent_type": 100, "cwd": 1000, "source": 50}
MAX_DURATION_MS = 10**12


def respond(power_dir: str, session_id: str, event_name: str, payload: dict[str, Any], environ: Any,
            deliver: Any = None, *, call_id: str | None = None, lock_seconds: float | None = None) -> str | None:
    """Record one hook event of the agent that `payload` speaks for; return the JSON reply, or None for none.

    With `deliver`, the reply is passed to it (which writes and flushes it) while the agent's lock is held, and the
    agent's new cursor is saved only after it returned: a reply that never got out (a closed stdout, a kill) leaves
    the cursor before the news it carried, so the next call delivers it again. With `lock_seconds`, a call that
    cannot have its agent's lock within that long gives up (LockTimeout): its caller (Claude Code) has given up by
    then too, and a call waiting on for ever would hold its thread in the coordinator's server.
    """
    agent = Agent(payload["session_id"], payload, environ)
    config, problem = usable_config(power_dir)  # a broken config.json: recorded with what holds (config.py)
    if problem is not None:
        miswired.log_config_problem(power_dir, problem)
    session = Session(power_dir, session_id, config)
    try:  # closed: the coordinator answers hooks over HTTP in one process, call after call
        return _respond(session, agent, problem, event_name, payload, environ, deliver, call_id, lock_seconds)
    finally:
        session.journal.close()


def _respond(session: Session, agent: Agent, problem: Any, event_name: str, payload: dict[str, Any], environ: Any,
             deliver: Any, call_id: str | None, lock_seconds: float | None) -> str | None:
    power_dir = session.power_dir
    state = AgentState(session.dir, agent.key, durable=session.config.durability == "fsync")
    with state.lock.held(lock_seconds):
        if trusted_active_session(power_dir) != session.id:
            return None  # closed (or switched from) while this call waited for its agent: nothing more goes in
        state.load()
        if state.lost_cursor:
            log_error(power_dir, f"the state file of agent {agent.key} was damaged; its news goes on from the "
                                 f"journal's end (what was sent to it before may be lost)", code=STATE_DAMAGED)
        if call_id is not None and miswired.twice(state, call_id, environ, agent.key, event_name, power_dir):
            state.save()  # the same event, registered twice: the first process recorded and answered it
            return None
        if event_name == "Stop":
            reply = _on_stop(session, state, agent, payload)
        else:
            context = _HANDLERS[event_name](session, state, agent, payload)
            context, told = miswired.config_notice(power_dir, problem, event_name, context)
            reply = context and codec.dumps({"hookSpecificOutput": {"hookEventName": event_name,
                                                                    "additionalContext": context}, **told})
        if not reply:
            state.save()
            return None
        state.save_checkpoint()
        if deliver is not None:
            deliver(reply)
        state.save()
    return reply


class Agent:
    """Who a payload speaks for: key, readable name, parent, and what Claude Code told about its process."""

    __slots__ = ("_environ", "agent_id", "agent_type", "claude_session", "cwd", "key", "name", "parent")

    def __init__(self, claude_session: str, payload: dict[str, Any], environ: Any) -> None:
        agent_id = payload.get("agent_id")
        self.claude_session = claude_session
        self.agent_id = agent_id if isinstance(agent_id, str) and agent_id else MAIN
        agent_type = payload.get("agent_type")
        self.agent_type = _cap(agent_type, "agent_type") if isinstance(agent_type, str) and agent_type else None
        self.key = agent_key(claude_session, self.agent_id)
        self.name = agent_name(self.key, self.agent_type)
        self.parent = None if self.agent_id == MAIN else agent_key(claude_session)
        self._environ = environ
        cwd = payload.get("cwd")
        self.cwd = _cap(cwd, "cwd") if isinstance(cwd, str) else None

    @property
    def pid(self) -> int | None:
        """The agent's Claude Code process: CLAUDE_PID, read only when asked (over HTTP, finding it costs a lookup:
        hook_server/peer.py)."""
        pid = self._environ.get("CLAUDE_PID", "")
        return int(pid) if pid.isdigit() and len(pid) <= 10 else None

    def joined(self, session: Session, source: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "claude_session": self.claude_session, "agent_id": self.agent_id}
        # The pid with its start time names the Claude Code process even after the pid is given to another one.
        pid = self.pid
        pid_start = start_time(pid) if pid else None
        for field, value in (("agent_type", self.agent_type), ("parent", self.parent), ("pid", pid),
                             ("pid_start", pid_start), ("cwd", self.cwd),
                             ("source", _cap(source, "source") if source else None)):
            if value is not None:
                data[field] = value
        data["host"] = host_name()
        return session.event("agent.joined", data, sender=self.key)

    def transcript(self, payload: dict[str, Any]) -> str | None:
        """The transcript where Claude Code records what this agent's model sees (hook/transcript.py)."""
        return transcript_of(payload, None if self.agent_id == MAIN else self.agent_id)


# -- one handler per hook event --------------------------------------------------------------------------------------

def _on_tool(session: Session, state: AgentState, agent: Agent, payload: dict[str, Any]) -> str:
    """PostToolUse and PostToolUseFailure: record the call, read the agent's news, answer with what fits."""
    config = session.config
    tool = payload.get("tool_name")
    tool = _cap(tool, "tool") if isinstance(tool, str) and tool else "unknown"
    raw_input = payload.get("tool_input")
    tool_input: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
    ok = payload.get("hook_event_name") == "PostToolUse"
    data: AgentTool = {"tool": tool, "ok": ok}
    path = tool_input.get("file_path") or tool_input.get("notebook_path") if tool in FILE_TOOLS else None
    if isinstance(path, str) and path:
        data["file"] = _cap(path, "file")
    if tool == "Bash" and runs_only_popkit_power(tool_input.get("command")):
        data["power"] = True  # talking to Power Mode is not work (a person's own session looking on)
    duration = payload.get("duration_ms")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool) and 0 <= duration < MAX_DURATION_MS:
        data["ms"] = duration
    if not ok and payload.get("error") is not None:
        data["error"] = _cap(payload.get("error"), "error")

    events = [agent.joined(session)] if state.is_new else []
    tool_event = session.event("agent.tool", data, sender=agent.key)
    events.append(tool_event)
    launched = _launched_subagent(tool, payload)
    if launched is not None:
        description = tool_input.get("description") or tool_input.get("subagent_type") or launched
        events.append(session.event("task.created", {
            "task": subagent_task(launched), "title": _cap(description, "title"),
            "owner": agent_key(agent.claude_session, launched), "parent": agent.key}, sender=agent.key))
    state.tool_calls += 1
    if tool in state.tool_counts or len(state.tool_counts) < MAX_TOOL_KINDS:
        state.tool_counts[tool] = state.tool_counts.get(tool, 0) + 1
    if "file" in data:
        remember_recent(state.files, data["file"], HEARTBEAT_FILES)
    if state.tool_calls % config.checkin_every_n_tools == 0:
        events.append(session.event("agent.heartbeat", _heartbeat(state), sender=agent.key))
    _join_and_append(session, state, events)

    now = time.time()
    inbox = Inbox(state, agent.key, conflict_window=config.conflict_window_seconds,
                  similarity_threshold=config.insight_similarity_threshold, now=now)
    settle(state)  # what an earlier reply carried and Claude Code dropped goes out again first
    if ok and tool in WRITE_TOOLS and "file" in data:
        # Warnings about this agent's own write go into the state before its checkpoint: a reply that is lost
        # leaves them pending for the next call (nothing would make them again).
        inbox.own_write(data["file"], seconds_of(tool_event["ts"]) or now)
        state.pending += [texts.news_line(item, state.names) for item in inbox.news]
        inbox.news.clear()
    state.checkpoint()  # what is saved before a reply goes out: the cursor still before the news it carries
    lines, turns = all_news(session, state, inbox)
    transcript = agent.transcript(payload) if lines else None  # one stat, only for a reply with news
    reference = new_reference() if transcript else None
    context = reply_and_keep(state, lines, turns, config.context_max_chars, reference=reference)
    if context and transcript and reference:
        tool_use_id = payload.get("tool_use_id")
        remember(state, transcript, reference, context, tool_use_id if isinstance(tool_use_id, str) else None,
                 turns)
    return context


def _join_and_append(session: Session, state: AgentState, events: list[dict[str, Any]]) -> Appended:
    """Append the events; a new agent's news starts where the journal ended before its first events, and that is
    saved before they are appended: if saving fails, nothing was appended, and the next call joins afresh."""
    if state.cursor is None:  # a new agent; a returning one (resume, a known subagent id) goes on from its cursor
        state.advance_to(session.journal.end_position())
        state.save()
    return _append(session, events)


def _on_session_start(session: Session, state: AgentState, agent: Agent, payload: dict[str, Any]) -> str:
    source = payload.get("source") if isinstance(payload.get("source"), str) else None
    _join_and_append(session, state, [agent.joined(session, source)])  # a resumed session goes on from its cursor
    for directory in (AGENTS_DIR, SNAPSHOTS_DIR):  # what writers killed in mid-write left behind
        remove_stale_temporaries(os.path.join(session.dir, directory))
    return _welcome(session, agent, state)


def _on_subagent_start(session: Session, state: AgentState, agent: Agent, payload: dict[str, Any]) -> str:
    task = subagent_task(agent.agent_id)
    _join_and_append(session, state, [  # an agent id seen before resumes from its cursor: nothing sent is lost
        agent.joined(session),
        session.event("task.created", {"task": task, "title": agent.agent_type or task, "owner": agent.key,
                                       "parent": agent.parent or agent.key}, sender=agent.parent or agent.key),
    ])
    state.current_task = task
    return _welcome(session, agent, state)


def _on_subagent_stop(session: Session, state: AgentState, agent: Agent, payload: dict[str, Any]) -> None:
    result = payload.get("last_assistant_message")
    _append(session, [
        session.event("task.completed", {"task": subagent_task(agent.agent_id), "ok": True,
                                         "result": _cap(result or "", "result")}, sender=agent.key),
        session.event("agent.left", {"reason": "subagent finished"}, sender=agent.key),
    ])
    state.current_task = None


def _on_stop(session: Session, state: AgentState, agent: Agent, payload: dict[str, Any]) -> str | None:
    """The turn is over. With news that starts a turn waiting, the agent goes on with it (`decision: block`), unless
    it is already going on because of a Stop hook (`stop_hook_active`): never a loop. Otherwise it is idle, and its
    waiter (waiter.py, started beside this hook) wakes it when such news comes."""
    if payload.get("stop_hook_active") is not True:
        news = take_news(session, state, agent.key, texts.STOP_HEADER, agent.transcript(payload))
        if news is not None:
            return codec.dumps({"decision": "block", "reason": news})
    _append(session, [session.event("agent.idle", {}, sender=agent.key)])
    return None


def _on_session_end(session: Session, state: AgentState, agent: Agent, payload: dict[str, Any]) -> None:
    drop_claim(claim_path(state))  # its waiter ends when it sees the agent.left below
    reason = payload.get("reason")
    _append(session, [session.event("agent.left", {"reason": _cap(reason or "session ended", "reason")},
                                    sender=agent.key)])


_HANDLERS = {
    "SessionStart": _on_session_start,
    "PostToolUse": _on_tool,
    "PostToolUseFailure": _on_tool,
    "SubagentStart": _on_subagent_start,
    "SubagentStop": _on_subagent_stop,
    "SessionEnd": _on_session_end,
}


def _welcome(session: Session, agent: Agent, agent_state: AgentState) -> str:
    from ..projector import live_agents

    damage_log = DamageLog(session)
    state, _ = session.projection(on_damage=damage_log)
    damage_log.sum_up()
    agent_state.names.update((key, known.get("name", key)) for key, known in list(state["agents"].items())[-200:])
    learn_titles(agent_state, state["tasks"])
    others = [{"key": key, **state["agents"][key]} for key in live_agents(state) if key != agent.key]
    objective: Objective | dict[str, Any] = state["objective"] or {}
    # A new agent hears the broadcasts sent before its news begins (its cursor): each one once, here or as news.
    # One that returns (a resumed session, a subagent id seen before) heard them already.
    cursor = agent_state.cursor
    earlier = [said for said in state.get("broadcasts", ()) if agent_state.is_new and cursor is not None
               and isinstance(said["seq"], int) and said["seq"] < cursor.seq and said.get("from") != agent.key]
    return texts.welcome(session_id=session.id, objective=objective.get("text"), objective_by=objective.get("by"),
                         name=agent.name, key=agent.key,
                         as_flag=f" --as {agent.key}" if agent.agent_id != MAIN else "", others=others,
                         broadcasts=earlier, names=agent_state.names)


# -- building records --------------------------------------------------------------------------------------------------

def _launched_subagent(tool: str, payload: dict[str, Any]) -> str | None:
    """The agent id of a background subagent this Agent tool call launched, if it did."""
    response = payload.get("tool_response")
    if tool not in ("Agent", "Task") or not isinstance(response, dict):
        return None
    agent_id = response.get("agentId")
    if response.get("status") == "async_launched" and isinstance(agent_id, str) and agent_id:
        return agent_id
    return None


def _heartbeat(state: AgentState) -> AgentHeartbeat:
    data: AgentHeartbeat = {"tool_calls": state.tool_calls, "tool_counts": dict(state.tool_counts),
                            "files_touched": list(state.files)}
    if state.current_task:
        data["current_task"] = state.current_task
    return data


def _cap(value: Any, field: str) -> str:
    text = value if isinstance(value, str) else str(value)
    return cut(text, MAX_CHARS[field])


def _append(session: Session, events: list[dict[str, Any]]) -> Appended:
    """Append the hook's events, each cut to fit `max_record_bytes` first (`_fit`)."""
    limit = session.config.max_record_bytes - largest_record_size(0)  # whatever seq and `more` the events get
    for event in events:
        _fit(event, limit)
    return session.append_events(events)


def _fit(event: dict[str, Any], limit: int) -> None:
    """Cut `event` so that it serializes to at most `limit` bytes. The per-field caps keep ordinary events far below
    any limit; this is the last resort for a tiny `max_record_bytes` or hostile input: lists lose their oldest items
    and texts are cut, ever shorter, until the event fits. An event over the limit could never be appended, and
    every later call would fail at it again."""
    body = codec.dumps(event).encode("utf-8")
    data = event["data"]
    for keep, chars in ((10, 500), (3, 120), (1, 40), (0, 10)):
        if len(body) <= limit:
            break
        for name, value in list(data.items()):
            if isinstance(value, str) and len(value) > chars:
                data[name] = value[:chars] + "…"
            elif isinstance(value, list):
                data[name] = [item[:chars] if isinstance(item, str) else item for item in value[len(value) - keep:]]
            elif isinstance(value, dict) and len(value) > keep:
                data[name] = dict(list(value.items())[:keep])
        body = codec.dumps(event).encode("utf-8")
