"""Replaying a session for a person: each event as one line in words, the filters that pick events, and the point (a
seq or a time) at which `replay --at` shows the session's state.

Pure: events in, text out. The wording of each event type is event_words.py's, reading the journal playback.py's,
printing the CLI's (cli/replaying.py). Agents are
named as `status` names them (`display.short_names` over the projector's agents), never by their raw keys, and every
text that came from an agent goes through `display.clean`: one line, no escape sequences, cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..display import agent_place, clean, sender_name, short_names
from ..errors import SessionError
from ..keys import HUMAN
from ..projector import Rules, State, apply, new_state
from ..protocol import APPROVAL_ANSWERS, CHANNELS, EVENT_TYPES, HEARTBEAT
from ..provenance import doubts
from ..timestamps import clock_of, seconds_of
from .event_words import TEXT_CHARS, describe

if TYPE_CHECKING:
    from ..shapes.state import Agent

Event = dict[str, Any]

#: The types from which the projector learns of an agent (projector._agent): the heartbeat channel's.
AGENT_TYPES = frozenset(name for name, (channel, _fields) in EVENT_TYPES.items() if channel == HEARTBEAT)
#: Task titles and approval askers a Book remembers; past this the oldest are forgotten (their ids still show).
MAX_REMEMBERED = 100_000
LINE_CHARS = 300  # what happened, at most
WHO_WIDTH = 30  # the column of names is padded to this
DAY = 86400
_CHANNELS = frozenset(CHANNELS)
_CACHED_KEYS = 4096  # a filter's answers kept per agent key (keys come from agents: a flood of them is not kept)


class Book:
    """Who is who as of the events seen: each agent's short name and where it works (status's rules, so the names
    are the ones `status` shows), each task's title, and who asked each approval.

    With `full`, every event is folded into `state` (the projection, for `--at`); otherwise only the events that can
    change a name: an agent joining, and the first event by which the projector learns of an agent. `state` may
    start as a snapshot's."""

    def __init__(self, rules: Rules | None = None, *, full: bool = False, state: State | None = None) -> None:
        self.rules = rules or Rules()
        self.full = full
        self.state = state if state is not None else new_state()
        self.titles: dict[str, str] = {task: str(task_state.get("title")) for task, task_state
                                       in list(self.state["tasks"].items())[-MAX_REMEMBERED:]}
        self.askers: dict[str, str] = {request: approval["from"] for request, approval
                                       in self.state["approvals"].items() if isinstance(approval["from"], str)}
        self.asked_at: dict[str, str] = {request: approval["asked"] for request, approval
                                         in self.state["approvals"].items() if isinstance(approval["asked"], str)}
        self.version = 0  # raised whenever a name may have changed
        self._names: dict[str, str] = {}
        self._labels: dict[str, str] = {}
        self._stale = True

    def see(self, event: Event) -> None:
        event_type, sender = event.get("type"), event.get("from")
        if not isinstance(event_type, str) or not isinstance(sender, str):
            event_type = sender = ""  # a record of no type or sender: the projector counts it, nothing more
        agents = self.state["agents"]
        if self.full or event_type == "agent.joined" or (event_type in AGENT_TYPES and sender not in agents):
            known = len(agents)
            apply(self.state, event, self.rules)
            if event_type == "agent.joined" or len(agents) != known:
                self._stale = True
                self.version += 1
        data = event.get("data")
        if not isinstance(data, dict):
            return
        if event_type == "task.created" and isinstance(data.get("task"), str):
            _remember(self.titles, data["task"], clean(data.get("title"), TEXT_CHARS))
        elif event_type == "approval.requested" and isinstance(data.get("request"), str) and sender:
            _remember(self.askers, data["request"], sender)
            if isinstance(event.get("ts"), str):
                _remember(self.asked_at, data["request"], event["ts"])

    def doubts(self, event: Event) -> list[str]:
        """Why the evidence of the human's answer `event` is doubtful (provenance.doubts: the one rule), [] when it
        is not, or `event` is no answer of the human's."""
        data = event.get("data")
        if event.get("type") not in APPROVAL_ANSWERS or event.get("from") != HUMAN or not isinstance(data, dict):
            return []
        request = data.get("request")
        return doubts(data.get("evidence"), asked=self.asked_at.get(request) if isinstance(request, str) else None,
                      answered=event.get("ts"))

    def name(self, key: Any) -> str:
        """The short name of an agent or sender (display.short_names); one the projector does not know as an agent is
        named as status names it (`keys.agent_name`), `human` and `coordinator` as they are."""
        if not isinstance(key, str):
            return "-"
        if self._stale:
            self._refresh()
        name = self._names.get(key)
        return sender_name(key) if name is None else name

    def label(self, key: Any) -> str | None:
        """Where an agent works (its folder, and host when the session spans machines), as status shows it."""
        if self._stale:
            self._refresh()
        return self._labels.get(key) if isinstance(key, str) else None

    def who(self, key: Any) -> str:
        label = self.label(key)
        return f"{self.name(key)} ({label})" if label else self.name(key)

    def agents(self) -> list[str]:
        """The agents' keys, in the order the projector learnt of them."""
        return list(self.state["agents"])

    def _refresh(self) -> None:
        agents: dict[str, Agent] = self.state["agents"]
        self._names = short_names(self.state)
        hosts = {agent.get("host") for agent in agents.values() if agent.get("host")}
        labels = {key: agent_place(agent, with_host=len(hosts) > 1) for key, agent in agents.items()}
        self._labels = {key: clean(label, 40) for key, label in labels.items() if label}
        self._stale = False


def _remember(memory: dict[str, str], key: str, value: str) -> None:
    memory.pop(key, None)
    memory[key] = value
    if len(memory) > MAX_REMEMBERED:
        del memory[next(iter(memory))]


# -- an event in words ---------------------------------------------------------------------------------------------

def event_line(event: Event, book: Book) -> str:
    """`    17  10:01:23  main-3f2a9b (webapp)          insights     shared an insight: "..."`: seq, time (UTC),
    who, channel, what happened."""
    seq = event.get("seq")
    channel = event.get("ch")
    if not isinstance(channel, str) or channel not in _CHANNELS:
        channel = clean(channel if channel is not None else "-", 11)
    what = describe(event, book)
    if len(what) > LINE_CHARS or not what.isprintable():  # the wordings clean what they quote; this is a guard
        what = clean(what, LINE_CHARS)
    return (f"{seq if isinstance(seq, int) else '?':>7}  {clock_of(event.get('ts'))}  "
            f"{book.who(event.get('from')):<{WHO_WIDTH}}  {channel:<11}  {what}")


def day_line(day: str) -> str:
    return f"== {day} (times in UTC) =="


def damage_line(damage: Any) -> str:
    """A damaged record the replay stepped over (a reader.Damage)."""
    return f"{damage.seq:>7}  !! damaged record skipped: {damage}"


def torn_line(segment: str, offset: int, length: int) -> str:
    return (f"      !  torn tail not replayed: {length} bytes at {segment} byte {offset} (a writer was cut off "
            f"mid-append; the next append sets them aside)")


# -- filters --------------------------------------------------------------------------------------------------------

def involved(event: Event, book: Book) -> list[str]:
    """The agents an event is from, to or about: a lost agent, a task's holder or assignee, a conflict's editors,
    the agent whose approval request is answered."""
    keys = [event.get("from"), event.get("to")]
    data = event.get("data")
    if isinstance(data, dict):
        keys += [data.get("agent"), data.get("owner")]
        if event.get("type") == "file.conflict" and isinstance(data.get("agents"), list):
            keys += data["agents"][:32]
        request = data.get("request")
        if event.get("type") in APPROVAL_ANSWERS and isinstance(request, str):
            keys.append(book.askers.get(request))
    return [key for key in keys if isinstance(key, str)]


def _family_of(event_type: str) -> str:
    return event_type.split(".", 1)[0] + "."


KNOWN_FAMILIES = tuple(dict.fromkeys(_family_of(name) for name in EVENT_TYPES))


class Filters:
    """Which events a replay shows: any of `agents` (a start of an agent's short name or of its key, in any case) is
    from, to or about it; its channel is one of `channels`; its type is one of `types` (a type, or a family such as
    `task.`). Different filters combine (all must hold); several values of one filter are alternatives."""

    def __init__(self, agents: Sequence[str] = (), channels: Sequence[str] = (), types: Sequence[str] = ()) -> None:
        for channel in channels:
            if channel not in CHANNELS:
                raise SessionError(f"--ch {channel!r} is not a channel; channels: {', '.join(CHANNELS)}")
        for agent in agents:
            if not agent.strip():
                raise SessionError(f"--agent needs an agent's short name or a start of its key; got {agent!r}")
        self.agents = [agent.strip() for agent in agents]
        self.channels = frozenset(channels)
        self.types = [_type_pattern(value) for value in types]
        self.unknown_types = [value for value in self.types if not _known_type(value)]
        self.matched: set[str] = set()  # the values of --agent and --type that named anything
        self._cache: dict[str, tuple[str, ...]] = {}
        self._names_version = -1

    @property
    def needs_names(self) -> bool:
        return bool(self.agents)

    def __call__(self, event: Event, book: Book) -> bool:
        if self.channels:
            channel = event.get("ch")
            if not isinstance(channel, str) or channel not in self.channels:
                return False
        if self.types:
            event_type = str(event.get("type"))
            hits = [value for value in self.types if event_type == value or (value.endswith(".")
                                                                             and event_type.startswith(value))]
            self.matched.update(hits)
            if not hits:
                return False
        if self.agents:
            hits = [value for key in involved(event, book) for value in self._agent_values(key, book)]
            self.matched.update(hits)
            if not hits:
                return False
        return True

    def _agent_values(self, key: str, book: Book) -> tuple[str, ...]:
        """The --agent values that name `key` (cached; names change only when the book says so)."""
        if self._names_version != book.version or len(self._cache) > _CACHED_KEYS:
            self._cache.clear()
        found = self._cache.get(key)
        if found is None:
            name = book.name(key).casefold()
            self._names_version = book.version
            found = tuple(value for value in self.agents
                          if name.startswith(value.casefold()) or key.casefold().startswith(value.casefold()))
            self._cache[key] = found
        return found

    def check(self, book: Book, what: str) -> None:
        """SessionError naming an --agent value that named no agent of the replayed events, or a --type value that is
        not a type this version knows and named no event; `what` says which events (`session X`)."""
        for value in self.agents:
            if value not in self.matched:
                agents = [f"{book.name(key)} ({clean(key, 80)})" for key in book.agents()]
                listed = ", ".join(agents[:10]) + (f", and {len(agents) - 10} more" if len(agents) > 10 else "")
                raise SessionError(f"--agent {value!r} names no agent of {what} (a start of a short name or of a "
                                   f"key, in any case); agents: {listed or 'none'}")
        for value in self.unknown_types:
            if value not in self.matched:
                raise SessionError(f"--type {value!r} is not an event type and no event of {what} has it; types: "
                                   f"{', '.join(EVENT_TYPES)}, or a family: {', '.join(KNOWN_FAMILIES)}")


def _type_pattern(value: str) -> str:
    value = value.strip()
    if not value or value in (".", ".*", "*"):
        raise SessionError(f"--type needs an event type (such as task.claimed) or a family (such as task.); got "
                           f"{value!r}")
    return value[:-1] if value.endswith(".*") else value


def _known_type(value: str) -> bool:
    return value in EVENT_TYPES or value in KNOWN_FAMILIES


# -- the point of --at ----------------------------------------------------------------------------------------------

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?")


class Point:
    """Where `--at` stops: after the record `seq`, or before the first record whose time is past `seconds` (a time of
    day is resolved to the session's first day by `start`)."""

    def __init__(self, text: str, *, seq: int | None = None, seconds: float | None = None,
                 clock: float | None = None) -> None:
        self.text = text
        self.seq = seq
        self.seconds = seconds
        self.clock = clock

    def start(self, first_ts: Any) -> None:
        """Resolve a time of day against the day of the session's first event (UTC)."""
        first = seconds_of(first_ts)
        if self.clock is not None and first is not None:
            self.seconds = first - first % DAY + self.clock

    def past(self, event: Event) -> bool:
        """Whether `event` lies after the point (the replay stops before it)."""
        if self.seq is not None:
            seq = event.get("seq")
            return isinstance(seq, int) and seq > self.seq
        when = seconds_of(event.get("ts"))
        return self.seconds is not None and when is not None and when > self.seconds


def parse_point(text: str) -> Point:
    """A seq (`40`), a time of the session's first day in UTC (`10:01:23`, `10:01`), or an ISO time
    (`2026-11-24T10:01:23Z`; one without a zone is UTC, as the journal's times are)."""
    value = text.strip()
    if value.isdigit():
        if int(value) < 1:
            raise SessionError(f"--at {text!r}: seqs start at 1")
        return Point(text, seq=int(value))
    clock = _CLOCK.fullmatch(value)
    if clock:
        hours, minutes, seconds = int(clock[1]), int(clock[2]), int(clock[3] or 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise SessionError(f"--at {text!r} is not a time of day (HH:MM:SS, up to 23:59:59)")
        return Point(text, clock=hours * 3600 + minutes * 60 + seconds + float(clock[4] or 0))
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise SessionError(f"--at {text!r} is neither a seq (such as 40), a time of the session's first day in UTC "
                           f"(such as 10:01:23) nor an ISO time (such as 2026-11-24T10:01:23Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return Point(text, seconds=when.timestamp())


def last_ts(state: State) -> Any:
    """The time of the last event folded into `state`: the latest `last_seen` of anyone, else when it opened."""
    seen = [agent["last_seen"] for agent in state["agents"].values() if isinstance(agent["last_seen"], str)]
    return max(seen, default=state.get("opened"))
