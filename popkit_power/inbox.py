"""An agent's inbox: what is new for one agent since its own cursor, delivered once, short and capped.

Each agent has a small state file, `sessions/<id>/agents/<agent>.json`, holding its cursor (a journal position),
its counters for heartbeats, and what it needs to judge the news: the approval requests it asked, the files it and
others wrote recently, the insights it has already seen (to hold back near-duplicates), and items that did not fit
under the cap last time. The hook holds `agents/<agent>.lock` while it reads, decides and writes that state, because
Claude Code runs PostToolUse hooks of one agent's parallel tool calls at the same time.

This module is on the hook's hot path: lean imports only.
"""

from __future__ import annotations

import os

from . import codec
from ._lock import FileLock
from .home import make_private_dirs, safe_name, write_private_file
from .journal import Journal, Position
from .protocol import insight_key, seconds_of, similarity

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WRITE_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
MAX_PENDING = 50  # lines waiting for delivery; past this, reading stops and the cursor stays before the rest
MAX_INSIGHT_KEY = 300  # characters of an insight kept to recognise its near-duplicates
MAX_REMEMBERED = 200
HEADER = "Power Mode (popkit-power): news from the other agents since your last tool call"


class AgentState:
    """The per-agent state file, loaded and saved under the agent's lock."""

    def __init__(self, session_dir: str, agent_key: str) -> None:
        directory = os.path.join(session_dir, "agents")
        make_private_dirs(directory)
        name = safe_name(agent_key, "agent key")
        self.path = os.path.join(directory, name + ".json")
        self.lock = FileLock(os.path.join(directory, name + ".lock"))
        self.data: dict[str, Any] = {}
        self.is_new = True

    def load(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                loaded = codec.loads(handle.read().decode("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # a damaged state file costs this agent its counters, never a broken hook
        if isinstance(loaded, dict):
            self.data = loaded
            self.is_new = False

    def save(self) -> None:
        # Not fsynced: it is a cache of what this agent has seen; losing it to a power cut repeats some news.
        write_private_file(self.path, codec.dumps(self.data), durable=False)

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def setdefault(self, name: str, default: Any) -> Any:
        return self.data.setdefault(name, default)


def read_news(journal: Journal, state: AgentState, agent_key: str, *, now: float, conflict_window: float,
              similarity_threshold: float, on_damage: Any) -> list[str]:
    """Read the journal from the agent's cursor to the end; return the lines of news for it, in order.

    Everything read moves the cursor, so each item reaches the agent once; the caller decides how many lines fit
    and keeps the rest in `pending`.
    """
    cursor = state.data.get("cursor")
    position = Position.from_dict(cursor) if cursor else journal.end_position()
    reader = journal.reader(position, loads=_loads, on_damage=on_damage)
    asked: dict[str, str] = state.setdefault("asked", {})
    mine: dict[str, float] = state.setdefault("my_writes", {})
    others: dict[str, dict[str, float]] = state.setdefault("other_writes", {})
    seen_insights: list[str] = state.setdefault("seen_insights", [])
    news: list[str] = []
    names: dict[str, str] = state.setdefault("names", {})
    warned: dict[str, float] = state.setdefault("warned", {})
    room = MAX_PENDING - len(state.data.get("pending", []))
    if room <= 0:
        return news  # enough is waiting already: the cursor stays where it is
    for event in reader:
        sender = event.get("from")
        event_type = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(sender, str):
            continue
        if event_type == "agent.joined" and isinstance(data.get("name"), str):
            names[sender] = data["name"]
            _bound(names)
        if sender == agent_key:
            if event_type == "approval.requested" and isinstance(data.get("request"), str):
                asked[data["request"]] = str(data.get("question", ""))
                _bound(asked)
            elif event_type == "task.claimed":
                state.data["current_task"] = data.get("task")
            elif event_type == "task.completed" and data.get("task") == state.data.get("current_task"):
                state.data.pop("current_task", None)
            continue
        if event_type == "task.assigned" and data.get("agent") == agent_key:
            state.data["current_task"] = data.get("task")
        who = names.get(sender) or display_name(sender)
        line = _describe(event_type, event, data, who, agent_key, asked, seen_insights, similarity_threshold)
        if line:
            news.append(line)
        if event_type == "agent.tool" and data.get("tool") in WRITE_TOOLS and isinstance(data.get("file"), str):
            when = seconds_of(event.get("ts")) or now
            path = data["file"]
            others.setdefault(path, {})[sender] = when
            _bound(others)
            if path in mine and when - mine[path] <= conflict_window:
                warned[f"{path}\n{sender}"] = when
                _bound(warned)
                news.append(f"- [conflict] {who} also edited {path}, which you edited "
                            f"{_ago(when - mine[path])} before; check before you overwrite each other's work")
        elif event_type in ("agent.left", "agent.lost"):
            gone = data.get("agent", sender) if event_type == "agent.lost" else sender
            for writers in others.values():
                writers.pop(gone, None)
        if len(news) >= room:
            break  # the cursor is just after this event: the rest is read next time, nothing is lost
    state.data["cursor"] = reader.position.as_dict()
    return news


def note_own_write(state: AgentState, path: str, now: float, conflict_window: float) -> list[str]:
    """Record that this agent wrote `path`; warn if another agent wrote it within the window."""
    state.setdefault("my_writes", {})[path] = now
    _bound(state.data["my_writes"])
    names: dict[str, str] = state.setdefault("names", {})
    writers = state.setdefault("other_writes", {}).get(path, {})
    warned: dict[str, float] = state.setdefault("warned", {})
    recent = sorted((now - when, other) for other, when in writers.items()
                    if now - when <= conflict_window and warned.get(f"{path}\n{other}") != when)
    for _age, other in recent:  # each write of another agent is warned about once
        warned[f"{path}\n{other}"] = writers[other]
    _bound(warned)
    return [f"- [conflict] {names.get(other) or display_name(other)} edited {path} {_ago(age)} ago; coordinate "
            f"before you change it further (popkit-power send {names.get(other) or display_name(other)} \"...\")"
            for age, other in recent]


def render(lines: list[str], state: AgentState, limit: int) -> str:
    """Join pending and new lines under the header, up to `limit` characters; keep the rest pending, in order."""
    queue: list[str] = state.data.get("pending", []) + lines
    shown: list[str] = []
    size = len(HEADER) + 2
    reserve = 50  # for the "(+N more ...)" line
    for index, line in enumerate(queue):
        left = limit - size - reserve
        if len(line) > left:
            if shown or left < 40:  # the next call has the whole budget for it
                rest = queue[index:]
                state.data["pending"] = rest
                more = f"(+{len(rest)} more after your next tool call)"
                return "\n".join([HEADER + ":", *shown, more])
            line = line[: left - 1] + "…"  # one line longer than the whole budget: cut, not held forever
        shown.append(line)
        size += len(line) + 1
    state.data["pending"] = []
    return "\n".join([HEADER + ":", *shown]) if shown else ""


def _describe(event_type: Any, event: dict[str, Any], data: dict[str, Any], who: str, agent_key: str,
              asked: dict[str, str], seen_insights: list[str], threshold: float) -> str | None:
    if event_type == "message.broadcast":
        return f"- [broadcast from {who}] {data.get('text', '')}"
    if event_type == "message.direct" and event.get("to") == agent_key:
        hint = f" (reply: popkit-power send {who} \"...\")" if ":" in str(event.get("from")) else ""
        return f"- [message to you from {who}] {data.get('text', '')}{hint}"
    if event_type == "insight.shared" and isinstance(data.get("text"), str):
        key, words = insight_key(data["text"][:MAX_INSIGHT_KEY])
        for seen in seen_insights:
            if seen == key or similarity(words, _word_set(seen)) >= threshold:
                return None  # a near-duplicate of something this agent already has
        seen_insights.append(key)
        del seen_insights[: max(0, len(seen_insights) - MAX_REMEMBERED)]
        tags = data.get("tags")
        tag_text = f" [{', '.join(str(tag) for tag in tags)}]" if isinstance(tags, list) and tags else ""
        return f"- [insight from {who}] {data['text']}{tag_text}"
    if event_type in ("approval.granted", "approval.denied") and data.get("request") in asked:
        verdict = "GRANTED" if event_type == "approval.granted" else "DENIED"
        note = f": {data['note']}" if data.get("note") else ""
        question = asked.pop(data["request"])
        return f"- [approval {verdict} by {who}] your request {data['request']} \"{question}\"{note}"
    if event_type == "task.orphaned":
        return (f"- [orphaned task] {data.get('task')} lost its agent; take it over with: "
                f"popkit-power claim {data.get('task')}")
    if event_type == "task.assigned" and data.get("agent") == agent_key:
        return f"- [task assigned to you by {who}] {data.get('task')}"
    return None


def display_name(agent_key: str) -> str:
    """A readable name for an agent whose `agent.joined` this agent has not seen: `main-<session start>` for a main
    agent (the name the hook gives it), else the key itself."""
    claude_session, _, agent_id = agent_key.rpartition(":")
    return f"main-{claude_session[:6]}" if agent_id == "main" and claude_session else agent_key


_WORD_SETS: dict[str, frozenset[str]] = {}


def _word_set(key: str) -> frozenset[str]:
    """The word set of a remembered insight key, built once per hook process."""
    words = _WORD_SETS.get(key)
    if words is None:
        words = _WORD_SETS[key] = frozenset(key.split())
    return words


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"


def _bound(mapping: dict[str, Any]) -> None:
    while len(mapping) > MAX_REMEMBERED:
        del mapping[next(iter(mapping))]


def _loads(line: bytes) -> Any:
    return codec.loads(line.decode("utf-8"))
