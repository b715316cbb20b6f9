"""One agent's inbox as a pure fold: journal events in, news items out.

`Inbox.apply(event)` adds to `news` what the event means for this agent (a broadcast, a message to it, another
agent's insight unless it is a near-duplicate of one it heard or is tagged for other work, the human's answer to its
own approval request (an answer from anyone else is not one), an orphaned task (offered to every agent: one whose
first calls only ran popkit-power may be about to work, and news skipped would be lost to it), a task assigned to it,
a task taken from it (released by the human, or given to another agent), another agent writing a file it wrote) and
keeps what it has to remember for that in the agent's state (names, its requests, who wrote what, insights heard).
It reads no file and no clock: time comes from the events. Items are tuples, `(kind, ...)`; `texts.news_line` renders
them. Which events to read, and when to stop, is the handler's business (`handlers.read_news`).

This module is on the hook's hot path: lean imports only.
"""

from __future__ import annotations

from ..insights import insight_key, similarity
from ..keys import HUMAN
from ..protocol import APPROVAL_ANSWERS
from ..timestamps import seconds_of
from ..tool_calls import WRITE_TOOLS, in_conflict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from .agent_state import AgentState

    NewsItem = tuple[Any, ...]

#: The kinds of news item that start a turn of an agent that is idle or about to stop (hook/wake.py): a message to
#: it, a broadcast, the human's answer to its request, an orphaned task offered to it, a task assigned to it or taken
#: from it. Insights, edit conflicts and a claim decided between machines wait for its next tool call.
STARTS_TURN = frozenset({"direct", "broadcast", "approval", "orphaned", "assigned", "taken"})
MAX_INSIGHT_KEY = 300  # characters of an insight kept to recognise its near-duplicates
MAX_REMEMBERED = 200  # entries of each remembered mapping
MAX_NAME_CHARS = 80
MAX_TITLE_CHARS = 200
MAX_REMEMBERED_TITLES = 200  # open tasks' titles a welcome remembers
MAX_QUESTION_CHARS = 500
MAX_KEY_CHARS = 1000  # a sender or path longer than this is not remembered (the state file stays small)


class Inbox:
    """The news fold of one agent over its state (see the module's docstring)."""

    __slots__ = ("agent_key", "conflict_window", "news", "now", "state", "threshold")

    def __init__(self, state: AgentState, agent_key: str, *, conflict_window: float, similarity_threshold: float,
                 now: float) -> None:
        self.state = state
        self.agent_key = agent_key
        self.conflict_window = conflict_window
        self.threshold = similarity_threshold
        self.now = now  # only for an event whose `ts` cannot be read
        self.news: list[NewsItem] = []

    def apply(self, event: dict[str, Any]) -> None:
        sender = event.get("from")
        event_type = event.get("type")
        data = event.get("data")
        if not isinstance(data, dict) or not isinstance(sender, str):
            return
        state = self.state
        if event_type == "agent.joined" and isinstance(data.get("name"), str) and len(sender) <= MAX_KEY_CHARS:
            state.names[sender] = data["name"][:MAX_NAME_CHARS]
            _bound(state.names)
        if sender == self.agent_key:
            self._own(event_type, data)
            return
        if event_type == "message.broadcast":
            self.news.append(("broadcast", sender, data.get("text", "")))
        elif event_type == "message.direct" and event.get("to") == self.agent_key:
            self.news.append(("direct", sender, data.get("text", "")))
        elif event_type == "insight.shared" and isinstance(data.get("text"), str):
            tags = data.get("tags")
            tags = [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []
            if self._routed_here(tags) and self._new_insight(data["text"]):
                self.news.append(("insight", sender, data["text"], tags))
        elif event_type == "task.created" and isinstance(data.get("task"), str) \
                and isinstance(data.get("title"), str) and len(data["task"]) <= MAX_KEY_CHARS:
            state.titles[data["task"]] = data["title"][:MAX_TITLE_CHARS]
            _bound(state.titles)
            if data.get("owner") == self.agent_key:
                state.current_task = data["task"]
        elif event_type in APPROVAL_ANSWERS and sender == HUMAN and data.get("request") in state.asked:
            question = state.asked.pop(data["request"])
            self.news.append(("approval", sender, event_type == "approval.granted", data["request"], question,
                              data.get("note")))
        elif event_type == "task.orphaned":
            context = data.get("context")
            self.news.append(("orphaned", sender, data.get("task"), context if isinstance(context, dict) else {}))
        elif event_type == "arbiter.decided" and data.get("type") == "task.claimed" \
                and data.get("task") == state.current_task and data.get("agent") != self.agent_key:
            state.current_task = None  # another machine's claim reached the server first
            self.news.append(("claim_lost", sender, data.get("task"), data.get("agent")))
        elif event_type == "task.assigned" and data.get("agent") == self.agent_key:
            state.current_task = _task_id(data.get("task"))
            self.news.append(("assigned", sender, data.get("task")))
        elif (event_type == "task.assigned" or (event_type == "task.released" and sender == HUMAN)) \
                and self._taken(data):
            # the human (or the coordinator, for an orphan) took the task away: only they are obeyed (fold/tasks.py)
            self.news.append(("taken", sender, data.get("task"), data.get("agent")))
        elif event_type == "task.completed" and sender == HUMAN and self._taken(data):
            # the human reported the agent's task done (or failed) from a terminal: it is not the agent's any more
            self.news.append(("taken", sender, data.get("task"), None, "failed" if data.get("ok") is False else "done"))
        elif event_type == "agent.tool" and data.get("tool") in WRITE_TOOLS and isinstance(data.get("file"), str) \
                and len(data["file"]) <= MAX_KEY_CHARS and len(sender) <= MAX_KEY_CHARS:
            self._their_write(sender, data["file"], self._time_of(event))
        elif event_type in ("agent.left", "agent.lost"):
            gone = data.get("agent", sender) if event_type == "agent.lost" else sender
            for writers in state.other_writes.values():
                writers.pop(gone, None)

    def own_write(self, path: str, when: float) -> None:
        """This agent wrote `path` at `when` (its own event's time): news if another agent wrote it shortly before."""
        state = self.state
        state.my_writes[path] = when
        _bound(state.my_writes)
        writers = state.other_writes.get(path, {})
        recent = sorted((when - then, other) for other, then in writers.items()
                        if in_conflict(when, then, self.conflict_window)
                        and state.warned.get(f"{path}\n{other}") != then)
        for age, other in recent:  # each write of another agent is warned about once
            state.warned[f"{path}\n{other}"] = writers[other]
            self.news.append(("they_wrote_first", other, path, age))
        _bound(state.warned)

    def _own(self, event_type: Any, data: dict[str, Any]) -> None:
        state = self.state
        if event_type == "approval.requested" and isinstance(data.get("request"), str) \
                and len(data["request"]) <= MAX_KEY_CHARS:
            state.asked[data["request"]] = str(data.get("question", ""))[:MAX_QUESTION_CHARS]
            _bound(state.asked)
        elif event_type == "task.claimed":
            state.current_task = _task_id(data.get("task"))
        elif event_type in ("task.completed", "task.released") and data.get("task") == state.current_task:
            state.current_task = None

    def _taken(self, data: dict[str, Any]) -> bool:
        """Whether a release or reassignment takes a task from this agent: the one it works on, or one the event
        names it as the holder of (`holder`, who held it when the human looked). Its current task is cleared."""
        task = data.get("task")
        if not isinstance(task, str) or (task != self.state.current_task and data.get("holder") != self.agent_key):
            return False
        if task == self.state.current_task:
            self.state.current_task = None
        return True

    def _their_write(self, sender: str, path: str, when: float) -> None:
        state = self.state
        state.other_writes.setdefault(path, {})[sender] = when
        _bound(state.other_writes)
        mine = state.my_writes.get(path)
        if mine is not None and in_conflict(when, mine, self.conflict_window):
            state.warned[f"{path}\n{sender}"] = when
            _bound(state.warned)
            self.news.append(("wrote_after_you", sender, path, when - mine))

    def _routed_here(self, tags: list[str]) -> bool:
        """Whether an insight with `tags` is for this agent: untagged, or one tag names a word of a file it touched
        or of its current task (a tag with `/` or `.` may also be part of a path), or the agent has no files and no
        task yet to tell what it works on."""
        if not tags:
            return True
        words, paths = self._context()
        if not words:
            return True
        for tag in tags:
            tag = tag.strip().lstrip("#").lower()
            if tag in words or (("/" in tag or "." in tag) and any(tag in path for path in paths)):
                return True
        return False

    def _context(self) -> tuple[frozenset[str], list[str]]:
        """The words of this agent's files and current task, and its paths in lower case."""
        state = self.state
        paths = [path.lower() for path in state.files]
        words: set[str] = set()
        for path in paths:
            for part in path.split("/"):
                words.add(part)
                words.update(_split_words(part))
        task = state.current_task
        if task:
            words.add(task.lower())
            words.update(_split_words(f"{task} {state.titles.get(task, '')}".lower()))
        words.discard("")
        return frozenset(words), paths

    def _new_insight(self, text: str) -> bool:
        """True (and remembered) unless `text` is a near-duplicate of an insight this agent has heard."""
        key, words = insight_key(text[:MAX_INSIGHT_KEY])
        seen = self.state.seen_insights
        for heard in seen:
            if heard == key or similarity(words, _word_set(heard)) >= self.threshold:
                return False
        seen.append(key)
        del seen[: max(0, len(seen) - MAX_REMEMBERED)]
        return True

    def _time_of(self, event: dict[str, Any]) -> float:
        when = seconds_of(event.get("ts"))
        return self.now if when is None else when


_WORD_SETS: dict[str, frozenset[str]] = {}
#: Kept at most: the coordinator answers hooks over HTTP call after call in one process.
MAX_WORD_SETS = 4096


def _word_set(key: str) -> frozenset[str]:
    """The word set of a remembered insight key, built once per hook process (the latest MAX_WORD_SETS kept)."""
    words = _WORD_SETS.get(key)
    if words is None:
        if len(_WORD_SETS) >= MAX_WORD_SETS:
            _WORD_SETS.clear()  # a dict shared by threads: cleared whole, never half-iterated
        words = _WORD_SETS[key] = frozenset(key.split())
    return words


def _split_words(text: str) -> list[str]:
    """The words of a name or title: runs of letters and digits (`src/auth_token.py` has src, auth, token, py)."""
    return "".join(char if char.isalnum() else " " for char in text).split()


def _task_id(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def learn_titles(state: AgentState, tasks: Mapping[str, Any]) -> None:
    """Remember the titles of `tasks` (the session's open tasks, as a welcome sees them): a task created before the
    agent's news begins is known by its title too, so an insight tagged with a word of it reaches the agent that
    takes it (`_routed_here`)."""
    for task_id, task in list(tasks.items())[-MAX_REMEMBERED_TITLES:]:
        title = task.get("title") if isinstance(task, dict) else None
        if isinstance(title, str):
            state.titles[task_id] = title[:MAX_TITLE_CHARS]
    _bound(state.titles)


def _bound(mapping: dict[str, Any]) -> None:
    while len(mapping) > MAX_REMEMBERED:
        del mapping[next(iter(mapping))]
