"""One agent's state file, `sessions/<id>/agents/<agent>.json`: every field by name, read and written only here.

The hook holds `agents/<agent>.lock` while it reads, decides, replies and writes this state, because Claude Code runs
the PostToolUse hooks of one agent's parallel tool calls at the same time. It is as durable as the journal: fsynced
when the journal's `durability` is `fsync`, only handed to the OS (surviving a killed process, not a power cut)
with `flush`. A damaged file never breaks the hook: each field of the wrong kind falls back to its empty value, and
a state without a usable cursor is logged (`lost_cursor`) before the agent starts again at the journal's end.
"""

from __future__ import annotations

import os

from .._fs import private_dir, read_file
from .._lock import FileLock
from ..errors import JournalError
from ..home import safe_name, write_private_file
from ..journal import codec
from ..journal.writer import Position
from ..keys import AGENT_LOCK_SUFFIX, AGENTS_DIR, TEMPORARY_SUFFIX, agent_file

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_STATE_BYTES = 64 << 20
MAX_GUARDS = 200  # guarded calls remembered per agent (the oldest is forgotten: that call is asked about again)

_NUMBER = (int, float)
#: field -> (its JSON kind, the kind of its items or values); anything else found in a file is dropped
_KINDS: dict[str, tuple[type, Any]] = {
    "tool_calls": (int, None), "tool_counts": (dict, int), "files": (list, str), "asked": (dict, str),
    "my_writes": (dict, _NUMBER), "other_writes": (dict, dict), "seen_insights": (list, str), "names": (dict, str),
    "warned": (dict, _NUMBER), "pending": (list, str), "turns": (list, int), "titles": (dict, str),
    "guards": (dict, dict), "calls": (dict, list), "duplicates": (int, None), "unconfirmed": (list, dict),
}


class AgentState:
    """The per-agent state: where its news reading stands, its counters, and what its inbox remembers."""

    __slots__ = (
        "_checkpoint",
        "asked",
        "calls",
        "current_task",
        "cursor",
        "duplicates",
        "durable",
        "files",
        "guards",
        "is_new",
        "lock",
        "lost_cursor",
        "my_writes",
        "names",
        "other_writes",
        "path",
        "pending",
        "seen_insights",
        "titles",
        "tool_calls",
        "tool_counts",
        "turns",
        "unconfirmed",
        "warned",
    )

    def __init__(self, session_dir: str, agent_key: str, *, durable: bool = False) -> None:
        directory = private_dir(os.path.join(session_dir, AGENTS_DIR))
        name = safe_name(agent_key, "agent key")
        self.path = agent_file(directory, name)
        self.lock = FileLock(agent_file(directory, name, AGENT_LOCK_SUFFIX))
        self.is_new = True
        self.lost_cursor = False  # the file was there but its cursor could not be used
        self.durable = durable  # fsync each write: with the journal's `fsync` durability, so both survive a power cut
        self._checkpoint: str | None = None
        #: where this agent's news reading goes on (None: it has not started)
        self.cursor: Position | None = None
        self.tool_calls = 0
        #: task id -> title, of the tasks it heard created (insights are routed by its task's words)
        self.titles: dict[str, str] = {}
        #: "tool\nfile or command" -> the guardrail request it raised: where its record and the answer are in the
        #: journal (positions only: hook/guard.py reads those records again before any call passes)
        self.guards: dict[str, dict[str, Any]] = {}
        self.tool_counts: dict[str, int] = {}
        #: the files it touched, most recent last (a heartbeat names them)
        self.files: list[str] = []
        self.current_task: str | None = None
        #: approval requests it asked: request id -> question
        self.asked: dict[str, str] = {}
        #: file -> when it last wrote it; file -> {other agent: when they last wrote it} (event time, seconds)
        self.my_writes: dict[str, float] = {}
        self.other_writes: dict[str, dict[str, float]] = {}
        #: normalized insights it has heard, to hold back near-duplicates
        self.seen_insights: list[str] = []
        #: agent key -> readable name, from the agents' `agent.joined`
        self.names: dict[str, str] = {}
        #: "file\nagent" -> the write it was warned about, so each write is warned about once
        self.warned: dict[str, float] = {}
        #: news lines read but not yet delivered (they did not fit under the cap)
        self.pending: list[str] = []
        #: which of them start a turn (their indexes), known from their news items' kinds when they were read
        #: (hook/news.py: `pending_turns`); None in a state written before this was kept
        self.turns: list[int] | None = []
        #: replies whose news is not yet seen in Claude Code's transcript (hook/transcript.py)
        self.unconfirmed: list[dict[str, Any]] = []
        #: the hook calls handled lately: call id -> [when, how the hook was registered], to notice one Claude Code
        #: event reaching the hook twice (the plugin and `install` both registered); and how many were ignored
        self.calls: dict[str, list[Any]] = {}
        self.duplicates = 0

    def advance_to(self, position: Position) -> None:
        """Everything before `position` has been read into news (or pending): the one place the cursor is set."""
        self.cursor = position

    # -- the file ------------------------------------------------------------------------------------------------

    def load(self) -> None:
        try:
            loaded = codec.loads(read_file(self.path, MAX_STATE_BYTES).decode("utf-8"))
        except FileNotFoundError:
            return
        except ValueError:
            self.is_new = False
            self.lost_cursor = True  # damaged (a power cut under `flush`, a bad write): logged, never a broken hook
            return
        self.is_new = False
        if not isinstance(loaded, dict):
            self.lost_cursor = True
            return
        for name, (kind, item_kind) in _KINDS.items():
            value = loaded.get(name)
            if isinstance(value, dict) and kind is dict:
                setattr(self, name, {key: item for key, item in value.items() if _is(item, item_kind)})
            elif isinstance(value, list) and kind is list:
                setattr(self, name, [item for item in value if _is(item, item_kind)])
            elif kind is int and _is(value, int):
                setattr(self, name, value)
        task = loaded.get("current_task")
        self.current_task = task if isinstance(task, str) else None
        if not isinstance(loaded.get("turns"), list):
            self.turns = None
        for path, writers in list(self.other_writes.items()):
            self.other_writes[path] = {key: when for key, when in writers.items() if _is(when, _NUMBER)}
        if loaded.get("cursor") is not None:
            try:
                self.cursor = Position.from_dict(loaded["cursor"])
            except JournalError:
                self.lost_cursor = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor.as_dict() if self.cursor is not None else None,
            "tool_calls": self.tool_calls, "titles": self.titles, "guards": self.guards,
            "tool_counts": self.tool_counts, "files": self.files,
            "current_task": self.current_task, "asked": self.asked, "my_writes": self.my_writes,
            "other_writes": self.other_writes, "seen_insights": self.seen_insights, "names": self.names,
            "warned": self.warned, "pending": self.pending, "turns": self.turns, "calls": self.calls,
            "duplicates": self.duplicates,
            "unconfirmed": self.unconfirmed,
        }

    def checkpoint(self) -> None:
        """Remember the state as it is now: what `save_checkpoint` writes before a reply goes out."""
        self._checkpoint = codec.dumps(self.as_dict())

    def save_checkpoint(self) -> None:
        """Write the state remembered by `checkpoint` (or the current one if none was taken). Written before a
        reply: if the reply never arrives, the agent's cursor is still before the news it carried."""
        self._write(self._checkpoint if self._checkpoint is not None else codec.dumps(self.as_dict()))

    def save(self) -> None:
        self._write(codec.dumps(self.as_dict()))

    def _write(self, text: str) -> None:
        # The temporary file has a fixed name because the agent's lock is held: a killed hook's leftover is reused.
        write_private_file(self.path, text, durable=self.durable, temporary=self.path + TEMPORARY_SUFFIX)


def _is(value: Any, kind: Any) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)
