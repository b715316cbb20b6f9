"""An event in words, for a person: what `replay` prints after the time, the agent and the channel, such as
`claimed t-3 "Fix login"`. One wording per event type of protocol.py; a type this version does not know shows its
type and data. Every text that came from an agent goes through `display.clean` (one line, no escape sequences, cut).
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from ..display import clean
from ..provenance import DASHBOARD

Event = dict[str, Any]
TEXT_CHARS = 120  # an agent's text in a line


class Names(Protocol):
    """What a wording needs to know beyond the event (story.Book): agents' short names, task titles, askers."""

    titles: dict[str, str]
    askers: dict[str, str]

    def name(self, key: Any) -> str: ...

    def doubts(self, event: Event) -> list[str]: ...


def _q(value: Any, limit: int = TEXT_CHARS) -> str:
    return f'"{clean(value, limit)}"' if value is not None else "-"


def _task(data: dict[str, Any], book: Names) -> str:
    task = data.get("task")
    if not isinstance(task, str):
        return "a task"
    title = book.titles.get(task)
    return clean(task, 40) + (f" {_q(title, 60)}" if title and title != task else "")


def _why(value: Any) -> str:
    return f" ({clean(value, TEXT_CHARS)})" if isinstance(value, str) and value else ""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _joined(event: Event, data: dict[str, Any], book: Names) -> str:
    text = "joined"
    if isinstance(data.get("agent_type"), str):
        parent = data.get("parent")
        kind = clean(data["agent_type"], 30)
        text += f" as {'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind} subagent" + (
            f" of {book.name(parent)}" if isinstance(parent, str) else "")
    if isinstance(data.get("cwd"), str):
        text += f" in {clean(data['cwd'], 80)}"
    where = " ".join(part for part in (f"pid {data['pid']}" if _number(data.get("pid")) else "",
                                       f"on {clean(data['host'], 40)}" if isinstance(data.get("host"), str) else "")
                     if part)
    return text + (f" ({where})" if where else "")


def _heartbeat(event: Event, data: dict[str, Any], book: Names) -> str:
    parts = [f"{data['tool_calls']} tool calls"] if _number(data.get("tool_calls")) else []
    if isinstance(data.get("current_task"), str):
        parts.append(f"on {_task({'task': data['current_task']}, book)}")
    if _number(data.get("progress")):
        parts.append(f"{data['progress']:.0%}" if data["progress"] <= 1 else f"progress {data['progress']:g}")
    return "heartbeat" + (f": {', '.join(parts)}" if parts else "")


def _tool(event: Event, data: dict[str, Any], book: Names) -> str:
    text = clean(data.get("tool", "a tool"), 40)
    if isinstance(data.get("file"), str):
        text += f" {clean(data['file'], 100)}"
    if data.get("ok") is False:
        text += " failed" + (f": {_q(data['error'])}" if isinstance(data.get("error"), str) else "")
    if _number(data.get("ms")):
        text += f" ({data['ms']:g} ms)"
    return text


def _completed(event: Event, data: dict[str, Any], book: Names) -> str:
    verb = "failed" if data.get("ok") is False else "completed"
    result = data.get("result")
    return f"{verb} {_task(data, book)}" + (f": {_q(result)}" if isinstance(result, str) else "")


def _parked(event: Event, data: dict[str, Any], book: Names) -> str:
    attempts = f" after {data['attempts']} attempts" if _number(data.get("attempts")) else ""
    return f"parked {_task(data, book)} for the human{attempts}{_why(data.get('reason'))}"


def _answered(event: Event, data: dict[str, Any], book: Names) -> str:
    request = data.get("request")
    asker = book.askers.get(request) if isinstance(request, str) else None
    whose = f"{book.name(asker)}'s request" if asker else "request"
    note = f": {_q(data['note'])}" if isinstance(data.get("note"), str) else ""
    reasons = book.doubts(event)
    doubtful = f" [DOUBTFUL evidence: {clean('; '.join(reasons), 160)}]" if reasons else ""
    return f"{event.get('type', '').split('.')[-1]} {whose} {clean(request, 40)}{_via(data)}{doubtful}{note}"


def _via(data: dict[str, Any]) -> str:
    """How the human's word came when not from a terminal: " from the dashboard (127.0.0.1:51234)"."""
    evidence = data.get("evidence")
    if not isinstance(evidence, dict) or evidence.get("via") != DASHBOARD:
        return ""
    return f" from the dashboard ({clean(evidence.get('client'), 60)})"


def _asked(event: Event, data: dict[str, Any], book: Names) -> str:
    options = data.get("options")
    shown = " / ".join(clean(option, 20) for option in options[:6]) if isinstance(options, list) and options else ""
    return (f"asks the human ({clean(data.get('request'), 40)}): {_q(data.get('question'))}"
            + (f" [{shown}]" if shown else ""))


def _insight(event: Event, data: dict[str, Any], book: Names) -> str:
    tags = data.get("tags")
    shown = ", ".join(clean(tag, 20) for tag in tags[:6]) if isinstance(tags, list) and tags else ""
    return f"shared an insight: {_q(data.get('text'))}" + (f" [{shown}]" if shown else "")


def _closed(event: Event, data: dict[str, Any], book: Names) -> str:
    summary = data.get("summary")
    counts = ""
    if isinstance(summary, dict):
        tasks = summary.get("tasks")
        done = (", ".join(f"{n if _number(n) else '?'} {clean(status, 20)}" for status, n in list(tasks.items())[:8])
                if isinstance(tasks, dict) else "")
        counts = f": {_count(summary.get('agents'), 'agent')}, tasks {done or 'none'}"
    return f"closed the session{_why(data.get('reason'))}{counts}"


def _coordinator_started(event: Event, data: dict[str, Any], book: Names) -> str:
    where = " ".join(part for part in (f"pid {data['pid']}" if _number(data.get("pid")) else "",
                                       f"on {clean(data['host'], 40)}" if isinstance(data.get("host"), str) else "")
                     if part)
    return "coordinator started" + (f" ({where})" if where else "")


def _unknown(event: Event, data: dict[str, Any], book: Names) -> str:
    shown = orjson.dumps(data, option=orjson.OPT_SORT_KEYS, default=str).decode() if data else ""
    return f"{clean(event.get('type', '?'), 40)} {clean(shown, TEXT_CHARS)}".rstrip()


def _count(value: Any, what: str) -> str:
    return f"{value} {what}{'' if value == 1 else 's'}" if _number(value) else f"? {what}s"


def _agent_of(data: dict[str, Any], book: Names) -> str:
    return book.name(data.get("agent"))


_WORDS: dict[str, Any] = {
    "session.opened": lambda e, d, b: f"opened the session: {_q(d.get('objective'))}",
    "session.closed": _closed,
    "objective.set": lambda e, d, b: f"set the objective: {_q(d.get('text'))}",
    "objective.updated": lambda e, d, b: f"changed the objective: {_q(d.get('text'))}",
    "coordinator.started": _coordinator_started,
    "coordinator.status": lambda e, d, b: (f"coordinator status: {_count(d.get('agents'), 'agent')}, "
                                           f"{_count(d.get('open_tasks'), 'open task')}"),
    "coordinator.stopped": lambda e, d, b: f"coordinator stopped{_why(d.get('reason'))}",
    "coordinator.command": lambda e, d, b: f"command for the coordinator: {_q(d.get('text'))}",
    "agent.joined": _joined,
    "agent.heartbeat": _heartbeat,
    "agent.tool": _tool,
    "agent.idle": lambda e, d, b: "is idle (its turn ended)",
    "agent.left": lambda e, d, b: f"left{_why(d.get('reason'))}",
    "agent.lost": lambda e, d, b: f"declared {_agent_of(d, b)} lost{_why(d.get('reason'))}",
    "task.created": lambda e, d, b: (f"added {_task(d, b)}" + (f" for {b.name(d['owner'])}"
                                                                if isinstance(d.get("owner"), str) else "")),
    "task.claimed": lambda e, d, b: f"claimed {_task(d, b)}",
    "task.assigned": lambda e, d, b: f"gave {_task(d, b)} to {_agent_of(d, b)}{_via(d)}",
    "task.completed": _completed,
    "task.orphaned": lambda e, d, b: f"orphaned {_task(d, b)}, which {_agent_of(d, b)} held",
    "task.parked": _parked,
    "task.released": lambda e, d, b: f"released {_task(d, b)}{_why(d.get('reason'))}",
    "insight.shared": _insight,
    "message.broadcast": lambda e, d, b: f"to everyone: {_q(d.get('text'))}",
    "message.direct": lambda e, d, b: f"to {b.name(e.get('to'))}: {_q(d.get('text'))}",
    "approval.requested": _asked,
    "approval.granted": _answered,
    "approval.denied": _answered,
    "arbiter.decided": lambda e, d, b: (f"decided between machines: {_task(d, b)} goes to {_agent_of(d, b)}, "
                                        f"whose claim the server saw first" if d.get("type") == "task.claimed"
                                        else f"decided {clean(d.get('contest'), 100)}"),
    "arbiter.ordered": lambda e, d, b: (f"placed {clean(d.get('type'), 40)} of {_task(d, b)} "
                                        f"(from {clean(d.get('origin'), 60)}) at {e.get('oseq')} in the order of all "
                                        f"machines' task changes"),
    "file.conflict": lambda e, d, b: (f"edit conflict on {clean(d.get('file'), 100)}: "
                                      + ", ".join(b.name(k) for k in (d.get("agents") or [])[:8])),
}


def describe(event: Event, book: Names) -> str:
    """What an event says, in words; a type this version does not know shows its type and data."""
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    event_type = event.get("type")
    words = _WORDS.get(event_type, _unknown) if isinstance(event_type, str) else _unknown
    try:
        return str(words(event, data, book))
    except (TypeError, ValueError, AttributeError, KeyError):  # fields of the wrong kinds: show what is there
        return _unknown(event, data, book)
