"""An agent's inbox: what is new for one agent since its own cursor, delivered at least once, short and truthful.

Each agent has a small state file, `sessions/<id>/agents/<agent>.json`, holding its cursor (a journal position),
its counters for heartbeats, and what it needs to judge the news: the approval requests it asked, the files it and
others wrote recently, the insights it has already seen (to hold back near-duplicates), and lines that did not fit
under the cap last time. The hook holds `agents/<agent>.lock` while it reads, decides, replies and writes that state,
because Claude Code runs PostToolUse hooks of one agent's parallel tool calls at the same time.

What an agent is promised (DESIGN.md "Delivery"): the cursor moves past an item only after the reply that carries it
was written (the hook saves the state it had before reading, replies, then saves the new one); a reply that cannot
hold an item whole continues it at the next call; one call reads a bounded number of records, so an agent far behind
catches up over several calls instead of dying at the hook's timeout; and text from other agents is rendered on one
line, quoted, under a sanitized name, so it can never read like a line from the human or the coordinator.

This module is on the hook's hot path: lean imports only.
"""

from __future__ import annotations

import os
import time

from . import codec
from ._fs import private_dir, read_file
from ._lock import FileLock
from .home import safe_name, write_private_file
from .journal import Journal, Position
from .protocol import insight_key, seconds_of, similarity

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WRITE_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
MAX_PENDING = 50  # lines waiting for delivery; past this, reading stops and the cursor stays before the rest
MAX_PENDING_CHARS = 200_000  # likewise in characters, so one huge message does not pull in a hundred more
MAX_INSIGHT_KEY = 300  # characters of an insight kept to recognise its near-duplicates
MAX_REMEMBERED = 200
#: Claude Code cuts additionalContext at 10,000 characters; one item too long for the configured cap gets a reply of
#: its own up to this size, and what is left of it continues at the next call.
ITEM_REPLY_MAX = 9000
HEADER = "Power Mode (popkit-power): news from the other agents since your last tool call"
CONTINUED = "- (continued) "
RESERVED_NAMES = frozenset({"human", "coordinator"})
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@/+")
_MAX_NAME_CHARS = 80
#: Characters a reader could take for a line break that JSON leaves as they are: C1 controls (NEL among them) and the
#: Unicode line and paragraph separators.
_BREAKS = {code: f"\\u{code:04x}" for code in (*range(0x80, 0xA0), 0x2028, 0x2029)}


class AgentState:
    """The per-agent state file, loaded and saved under the agent's lock."""

    def __init__(self, session_dir: str, agent_key: str) -> None:
        directory = private_dir(os.path.join(session_dir, "agents"))
        name = safe_name(agent_key, "agent key")
        self.path = os.path.join(directory, name + ".json")
        self.lock = FileLock(os.path.join(directory, name + ".lock"))
        self.data: dict[str, Any] = {}
        self.is_new = True
        self._checkpoint: str | None = None

    def load(self) -> None:
        try:
            loaded = codec.loads(read_file(self.path, 64 << 20).decode("utf-8"))
        except FileNotFoundError:
            return
        except ValueError:
            return  # a damaged state file costs this agent its counters, never a broken hook
        if isinstance(loaded, dict):
            self.data = loaded
            self.is_new = False

    def checkpoint(self) -> None:
        """Remember the state as it is now: what `save_checkpoint` writes before a reply goes out."""
        self._checkpoint = codec.dumps(self.data)

    def save_checkpoint(self) -> None:
        """Write the state remembered by `checkpoint` (or the current one if none was taken). Written before a
        reply: if the reply never arrives, the agent's cursor is still before the news it carried."""
        self._write(self._checkpoint if self._checkpoint is not None else codec.dumps(self.data))

    def save(self) -> None:
        self._write(codec.dumps(self.data))

    def _write(self, text: str) -> None:
        # Not fsynced: it is a cache of what this agent has seen; losing it to a power cut repeats some news. The
        # temporary file has a fixed name because the agent's lock is held: a killed hook's leftover is reused.
        write_private_file(self.path, text, durable=False, temporary=self.path + ".tmp")

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def setdefault(self, name: str, default: Any) -> Any:
        return self.data.setdefault(name, default)


def read_news(journal: Journal, state: AgentState, agent_key: str, *, now: float, conflict_window: float,
              similarity_threshold: float, on_damage: Any, max_records: int = 20_000,
              max_seconds: float = 2.0) -> list[str]:
    """Read the journal from the agent's cursor; return the lines of news for it, in order.

    Reading stops at the journal's end, when `MAX_PENDING` lines wait, or after `max_records` records or
    `max_seconds` (an agent far behind catches up over several calls); the cursor is where reading stopped, so
    nothing is skipped. The caller decides how many lines fit and keeps the rest in `pending`.
    """
    cursor = state.data.get("cursor")
    position = Position.from_dict(cursor) if cursor else journal.end_position()
    pending: list[str] = state.data.get("pending", [])
    room = MAX_PENDING - len(pending)
    if room <= 0 or sum(len(line) for line in pending) >= MAX_PENDING_CHARS:
        return []  # enough is waiting already: the cursor stays where it is
    reader = journal.reader(position, loads=_loads, on_damage=on_damage)
    fold = _NewsFold(state, agent_key, now, conflict_window, similarity_threshold)
    deadline = time.monotonic() + max_seconds
    # The reader's position is just after each event it yields: stopping after any event skips nothing.
    for count, event in enumerate(reader, 1):
        fold.apply(event)
        if len(fold.news) >= room or count >= max_records or (count % 256 == 0 and time.monotonic() > deadline):
            break
    state.data["cursor"] = reader.position.as_dict()
    return fold.news


class _NewsFold:
    """Folds journal events into one agent's news lines and the delivery state they depend on."""

    __slots__ = ("agent_key", "asked", "conflict_window", "mine", "names", "news", "now", "others", "seen_insights",
                 "state", "threshold", "warned")

    def __init__(self, state: AgentState, agent_key: str, now: float, conflict_window: float,
                 threshold: float) -> None:
        self.state = state
        self.agent_key = agent_key
        self.now = now
        self.conflict_window = conflict_window
        self.threshold = threshold
        self.asked: dict[str, str] = state.setdefault("asked", {})
        self.mine: dict[str, float] = state.setdefault("my_writes", {})
        self.others: dict[str, dict[str, float]] = state.setdefault("other_writes", {})
        self.seen_insights: list[str] = state.setdefault("seen_insights", [])
        self.names: dict[str, str] = state.setdefault("names", {})
        self.warned: dict[str, float] = state.setdefault("warned", {})
        self.news: list[str] = []

    def apply(self, event: dict[str, Any]) -> None:
        sender = event.get("from")
        event_type = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(sender, str):
            return
        state = self.state
        if event_type == "agent.joined" and isinstance(data.get("name"), str):
            self.names[sender] = data["name"][:_MAX_NAME_CHARS]
            _bound(self.names)
        if sender == self.agent_key:
            if event_type == "approval.requested" and isinstance(data.get("request"), str):
                self.asked[data["request"]] = str(data.get("question", ""))[:500]
                _bound(self.asked)
            elif event_type == "task.claimed":
                state.data["current_task"] = data.get("task")
            elif event_type == "task.completed" and data.get("task") == state.data.get("current_task"):
                state.data.pop("current_task", None)
            return
        if event_type == "task.assigned" and data.get("agent") == self.agent_key:
            state.data["current_task"] = data.get("task")
        who = speaker(sender, self.names)
        line = _describe(event_type, event, data, who, self.agent_key, self.asked, self.seen_insights,
                         self.threshold)
        if line:
            self.news.append(line)
        if event_type == "agent.tool" and data.get("tool") in WRITE_TOOLS and isinstance(data.get("file"), str):
            when = seconds_of(event.get("ts")) or self.now
            path = data["file"]
            self.others.setdefault(path, {})[sender] = when
            _bound(self.others)
            if path in self.mine and when - self.mine[path] <= self.conflict_window:
                self.warned[f"{path}\n{sender}"] = when
                _bound(self.warned)
                self.news.append(f"- [conflict] {who} also edited {ident(path)}, which you edited "
                                 f"{_ago(when - self.mine[path])} before; check before you overwrite each other's "
                                 f"work")
        elif event_type in ("agent.left", "agent.lost"):
            gone = data.get("agent", sender) if event_type == "agent.lost" else sender
            for writers in self.others.values():
                writers.pop(gone, None)


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
    return [f"- [conflict] {speaker(other, names)} edited {ident(path)} {_ago(age)} ago; coordinate before you "
            f"change it further (popkit-power send {speaker(other, names)} \"...\")" for age, other in recent]


def render(lines: list[str], state: AgentState, limit: int) -> str:
    """Join pending and new lines under the header, up to `limit` characters; keep the rest pending, in order.

    A line longer than the whole budget is not cut off: it gets a reply of its own, up to `ITEM_REPLY_MAX`
    characters, and what is left of it is the first pending line, continued at the next call.
    """
    queue: list[str] = state.data.get("pending", []) + lines
    shown: list[str] = []
    size = len(HEADER) + 2
    reserve = 60  # for the "(+N more ...)" line
    rest: list[str] = []
    for index, line in enumerate(queue):
        left = limit - size - reserve
        if len(line) <= left:
            shown.append(line)
            size += len(line) + 1
            continue
        if shown:  # the next call has the whole budget for it
            rest = queue[index:]
            break
        room = max(left, ITEM_REPLY_MAX - size - reserve)
        if len(line) <= room:
            shown.append(line)
            rest = queue[index + 1:]
        else:
            shown.append(line[:room] + " …")
            rest = [CONTINUED + "…" + line[room:], *queue[index + 1:]]
        break
    state.data["pending"] = rest
    if not shown:
        return ""
    if rest:
        continued = " (the cut line goes on there)" if rest[0].startswith(CONTINUED) else ""
        return "\n".join([HEADER + ":", *shown, f"(+{len(rest)} more after your next tool call{continued})"])
    return "\n".join([HEADER + ":", *shown])


def _describe(event_type: Any, event: dict[str, Any], data: dict[str, Any], who: str, agent_key: str,
              asked: dict[str, str], seen_insights: list[str], threshold: float) -> str | None:
    if event_type == "message.broadcast":
        return f"- [broadcast from {who}] {quote(data.get('text', ''))}"
    if event_type == "message.direct" and event.get("to") == agent_key:
        hint = f" (reply: popkit-power send {who} \"...\")" if ":" in str(event.get("from")) else ""
        return f"- [message to you from {who}] {quote(data.get('text', ''))}{hint}"
    if event_type == "insight.shared" and isinstance(data.get("text"), str):
        key, words = insight_key(data["text"][:MAX_INSIGHT_KEY])
        for seen in seen_insights:
            if seen == key or similarity(words, _word_set(seen)) >= threshold:
                return None  # a near-duplicate of something this agent already has
        seen_insights.append(key)
        del seen_insights[: max(0, len(seen_insights) - MAX_REMEMBERED)]
        tags = data.get("tags")
        tag_text = f" [{', '.join(ident(tag) for tag in tags[:20])}]" if isinstance(tags, list) and tags else ""
        return f"- [insight from {who}] {quote(data['text'])}{tag_text}"
    if event_type in ("approval.granted", "approval.denied") and data.get("request") in asked:
        verdict = "GRANTED" if event_type == "approval.granted" else "DENIED"
        note = f": {quote(data['note'])}" if data.get("note") else ""
        question = asked.pop(data["request"])
        return f"- [approval {verdict} by {who}] your request {ident(data['request'])} {quote(question)}{note}"
    if event_type == "task.orphaned":
        task = data.get("task")
        return (f"- [orphaned task] {ident(task)} lost its agent; take it over with: "
                f"popkit-power claim {shell_arg(task)}")
    if event_type == "task.assigned" and data.get("agent") == agent_key:
        return f"- [task assigned to you by {who}] {ident(data.get('task'))}"
    return None


# -- rendering what others wrote so that it stays theirs -------------------------------------------------------------

def speaker(sender: str, names: dict[str, str]) -> str:
    """How a sender is named to an agent: `human` and `coordinator` only for those exact senders; anyone else by
    their agent name (or key) cut to [A-Za-z0-9._:@/+-], 80 characters, and marked with `?` if it would read like
    one of those two."""
    if sender in RESERVED_NAMES:
        return sender
    name = names.get(sender) or display_name(sender)
    clean = "".join(char if char in _NAME_CHARS else "?" for char in name[:_MAX_NAME_CHARS]) or "?"
    return f"?{clean}" if clean.lower().strip("?") in RESERVED_NAMES else clean


def quote(text: Any) -> str:
    """Untrusted text as one JSON string literal on one line: quotes, backslashes and every line break escaped."""
    return codec.dumps(text if isinstance(text, str) else str(text)).translate(_BREAKS)


def ident(value: Any) -> str:
    """An id or path from others: as it is when made of plain characters (and short), else quoted."""
    text = value if isinstance(value, str) else str(value)
    if 0 < len(text) <= 200 and all(char in _NAME_CHARS or char == "~" for char in text):
        return text
    return quote(text)


def shell_arg(value: Any) -> str:
    """`value` as one shell word for a command the agent may copy (single-quoted unless plain)."""
    text = value if isinstance(value, str) else str(value)
    if text and all(char in _NAME_CHARS for char in text):
        return text
    if not text.isprintable():
        return "<an id with control characters: see popkit-power status>"
    return "'" + text.replace("'", "'\"'\"'") + "'"


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
