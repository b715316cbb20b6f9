"""A session's timeline as data: one lane per agent across time, and on each lane a mark for what happened there
(tool calls, heartbeats, insights, messages, tasks claimed, completed, orphaned, agents lost, approvals asked and
answered). timeline_page.py draws it as one self-contained HTML file.

Time is cut into bins, at most COLUMNS across the page; a bin starts FIRST_BIN_SECONDS wide and doubles (merging
neighbours) whenever the session outgrows the columns, so the journal is read once, in order, in flat memory. One
mark stands for all the events of one kind on one lane in one bin, with their count and the first of them as a
sample for its tooltip. When there are more than MAX_MARKS marks the bins double again, so the page's size is
bounded whatever the session's length: at most MAX_MARKS marks, each with one sample of at most SAMPLE_FIELDS data
fields of at most SAMPLE_CHARS characters (a few hundred bytes), and at most MAX_LANES lanes (more agents share
the last). tools/bench_replay.py measures the size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..display import ELLIPSIS, clean, cut
from ..journal.writer import Damage
from ..keys import COORDINATOR, HUMAN
from ..protocol import EVENT_TYPES, channel_of
from ..session import Session
from ..timestamps import seconds_of
from .playback import Playback
from .story import MAX_REMEMBERED, Book, Event

COLUMNS = 720
FIRST_BIN_SECONDS = 0.25
MAX_MARKS = 20_000
MAX_LANES = 40
SAMPLE_CHARS = 160
SAMPLE_FIELDS = 10
GAP_SECONDS = 600.0
GAP_SHOWN = 30.0
MAX_BREAKS = 1000
OTHERS = "\x00others"  # the lane of the agents past MAX_LANES (no agent key can be this: keys are printable)

#: (id, legend) of every kind of mark, in the legend's order.
KINDS: tuple[tuple[str, str], ...] = (
    ("tool", "tool call"), ("tool_failed", "tool call failed"), ("heartbeat", "heartbeat"), ("insight", "insight"),
    ("message", "message"), ("claimed", "task claimed or assigned"), ("completed", "task completed"),
    ("failed", "task failed"), ("orphaned", "task orphaned or parked"), ("lost", "agent lost"),
    ("asked", "approval asked"), ("answered", "approval answered"),
    ("doubtful", "approval answered, doubtful evidence"), ("joined", "joined"), ("idle", "idle"),
    ("left", "left"), ("other", "other event"),
)
_KIND_INDEX = {kind: index for index, (kind, _label) in enumerate(KINDS)}
#: What the end of a lane says about its agent: the last of these events on it.
_LANE_STATES = {"agent.joined": "active", "agent.idle": "idle", "agent.left": "left", "agent.lost": "lost"}

_FIXED: dict[str, str] = {
    "agent.heartbeat": "heartbeat", "insight.shared": "insight", "message.broadcast": "message",
    "message.direct": "message", "task.claimed": "claimed", "approval.requested": "asked",
    "agent.joined": "joined", "agent.idle": "idle", "agent.left": "left",
}


def placement(event: Event, book: Book) -> tuple[str, Any]:
    """(kind of mark, key of the lane it goes on): on the lane of the agent it happened to, which is its sender but
    for an assignment (the assignee), a lost agent or an orphaned or parked task (the agent that held it) and an
    answer to an approval (the agent that asked)."""
    event_type, sender = event.get("type"), event.get("from")
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if not isinstance(event_type, str):
        return "other", sender
    fixed = _FIXED.get(event_type)
    if fixed is not None:
        return fixed, sender
    about = data.get("agent") if isinstance(data.get("agent"), str) else sender
    if event_type == "agent.tool":
        return ("tool_failed" if data.get("ok") is False else "tool"), sender
    if event_type == "task.completed":
        return ("failed" if data.get("ok") is False else "completed"), sender
    if event_type == "task.assigned":
        return "claimed", about
    if event_type == "task.created" and isinstance(data.get("owner"), str):
        return "claimed", data["owner"]
    if event_type in ("task.orphaned", "task.parked"):
        return "orphaned", about
    if event_type == "agent.lost":
        return "lost", about
    if event_type in ("approval.granted", "approval.denied"):
        request = data.get("request")
        asker = book.askers.get(request) if isinstance(request, str) else None
        return ("doubtful" if book.doubts(event) else "answered"), asker or sender
    return "other", sender


def sample(event: Event) -> dict[str, Any]:
    """An event cut down for a tooltip: its envelope and at most SAMPLE_FIELDS data fields, each text at most
    SAMPLE_CHARS characters (the page shows them as text, never as markup)."""
    shown: dict[str, Any] = {}
    for field in ("seq", "ts", "type", "ch", "from", "to"):
        if field in event:
            shown[field] = _cut(event[field])
    raw = event.get("data")
    if isinstance(raw, dict):
        data = {clean(key, 40): _cut(value) for key, value in list(raw.items())[:SAMPLE_FIELDS]}
        if len(raw) > SAMPLE_FIELDS:
            data[ELLIPSIS] = f"{len(raw) - SAMPLE_FIELDS} more fields"
        shown["data"] = data
    return shown


def _cut(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if not isinstance(value, str):
        value = orjson.dumps(value, default=str).decode()
    return cut(value, SAMPLE_CHARS)


class Bins:
    """Marks by (lane, kind, column): [count, first seq, last seq, first time, last time, sample], the times in
    seconds after `t0` (the first event's time).

    Columns are of virtual time: real time with every silence longer than GAP_SECONDS (no event at all) cut down to
    GAP_SHOWN, so a session left open overnight is not drawn as two slivers at the ends of one long night. `breaks`
    says where: [virtual offset at which time goes on, the real time there]. An event whose time lies before one
    already seen (another machine's clock) is placed with the silences cut so far, at least in column 0."""

    def __init__(self, *, columns: int = COLUMNS, max_marks: int = MAX_MARKS, track: bool = False) -> None:
        self.columns = columns
        self.max_marks = max_marks
        self.t0: float | None = None
        self.width = FIRST_BIN_SECONDS
        self.cells: dict[tuple[int, int, int], list[Any]] = {}
        #: With `track`: the cells added or changed since the caller last emptied this set (the live dashboard sends
        #: only those), and how many times the bins doubled (after which every cell is new).
        self.changed: set[tuple[int, int, int]] | None = set() if track else None
        self.doublings = 0
        self.last = 0.0  # virtual offset of the latest event
        self.latest = 0.0  # real time of the latest event
        self.removed = 0.0  # seconds of silence cut so far
        self.breaks: list[list[float]] = []

    def place(self, when: float) -> float:
        """The virtual offset of the real time `when`."""
        if self.t0 is None:
            self.t0 = self.latest = when
        if when - self.latest > GAP_SECONDS and len(self.breaks) < MAX_BREAKS:
            self.removed += when - self.latest - GAP_SHOWN
            self.breaks.append([when - self.t0 - self.removed, when])
        self.latest = max(self.latest, when)
        offset = max(0.0, when - self.t0 - self.removed)
        self.last = max(self.last, offset)
        return offset

    def add(self, lane: int, kind: int, when: float, seq: Any, event: Event) -> None:
        offset = self.place(when)
        real = when - (self.t0 or 0.0)
        column = int(offset / self.width)
        while column >= self.columns:
            self.coarsen()
            column = int(offset / self.width)
        key = (lane, kind, column)
        if self.changed is not None:
            self.changed.add(key)
        cell = self.cells.get(key)
        if cell is None:
            self.cells[key] = [1, seq, seq, real, real, sample(event)]
            # The marks of a width only grow as the journal is read: past max_marks now, past it at the end too.
            # Doubling now is what the end would do, and keeps memory at max_marks samples however long the session.
            if len(self.cells) > self.max_marks:
                self.coarsen()
            return
        cell[0] += 1
        cell[2] = seq
        cell[3], cell[4] = min(cell[3], real), max(cell[4], real)

    def coarsen(self) -> None:
        """Double the bins' width: each pair of neighbouring columns becomes one, with the sample of the earlier."""
        self.width *= 2
        self.doublings += 1
        if self.changed is not None:
            self.changed.clear()
        merged: dict[tuple[int, int, int], list[Any]] = {}
        for (lane, kind, column), cell in self.cells.items():
            key = (lane, kind, column // 2)
            into = merged.get(key)
            if into is None:
                merged[key] = cell
                continue
            first, second = (into, cell) if into[1] <= cell[1] else (cell, into)  # by their first seq
            merged[key] = [first[0] + second[0], first[1], max(first[2], second[2]), min(first[3], second[3]),
                           max(first[4], second[4]), first[5]]
        self.cells = merged


class Lanes:
    """Events placed on lanes: one per agent (and the human's and the coordinator's), in the order they first appear,
    at most `max_lanes` (more agents share the last), each event a mark in `bins`. What the timeline page and the live
    dashboard draw."""

    def __init__(self, book: Book, bins: Bins, *, max_lanes: int = MAX_LANES) -> None:
        self.book = book
        self.bins = bins
        self.max_lanes = max_lanes
        self.lanes: dict[str, dict[str, Any]] = {}
        self.others: set[str] = set()
        self.counts = [0] * len(KINDS)
        self.undrawn = 0

    def add(self, event: Event) -> None:
        """Place `event` (already seen by the book) on its lane."""
        kind, key = placement(event, self.book)
        when = seconds_of(event.get("ts"))
        if not isinstance(key, str) or when is None:
            self.undrawn += 1
            return
        lanes = self.lanes
        lane = lanes.get(key)
        if lane is None:
            if len(lanes) >= self.max_lanes - 1 and key not in (HUMAN, COORDINATOR):
                if len(self.others) < MAX_REMEMBERED:
                    self.others.add(key)
                key = OTHERS
                lane = lanes.get(key)
            if lane is None:
                lane = lanes[key] = {"index": len(lanes), "events": 0, "state": None}
        lane["events"] += 1
        state = _LANE_STATES.get(event["type"]) if kind in ("joined", "idle", "left", "lost") else None
        if state is not None:
            lane["state"] = state
        kind_index = _KIND_INDEX[kind]
        self.counts[kind_index] += 1
        if kind == "doubtful":  # why, first among the fields its tooltip shows
            event = {**event, "data": {"doubtful": "; ".join(self.book.doubts(event)), **event["data"]}}
        self.bins.add(lane["index"], kind_index, when, event.get("seq"), event)

    def order(self) -> list[str]:
        """The lanes' keys as drawn: the human's and the coordinator's first, the shared lane last."""
        lanes = self.lanes
        return sorted(lanes, key=lambda key: (key not in (HUMAN, COORDINATOR), key == OTHERS, lanes[key]["index"]))

    def lane(self, key: str, first: int | None = None, last: int | None = None) -> dict[str, Any]:
        """How the lane `key` is labelled: its agent's name and place, its role, its events and last state."""
        lane = self.lanes[key]
        label: str | None
        if key == OTHERS:
            name, label, role = f"{len(self.others)} more agents", "sharing one lane", "others"
        else:
            name, label = self.book.name(key), self.book.label(key)
            role = key if key in (HUMAN, COORDINATOR) else "agent"
        return {"key": clean(key, 80) if key != OTHERS else "", "name": name, "label": label, "role": role,
                "events": lane["events"], "state": lane["state"], "first": first, "last": last}


def build_timeline(session: Session, *, on_damage: Callable[[Damage], None] | None = None) -> dict[str, Any]:
    """Read the whole journal of `session` once and return the timeline's data (see timeline_page.render)."""
    playback = Playback(session, names=True, on_damage=on_damage)
    book = playback.book
    assert book is not None
    lanes = Lanes(book, Bins())
    for event in playback.events():
        lanes.add(event)
    while len(lanes.bins.cells) > MAX_MARKS:
        lanes.bins.coarsen()
    return _model(session, playback, lanes)


def _model(session: Session, playback: Playback, placed: Lanes) -> dict[str, Any]:
    book, bins, lanes, counts = placed.book, placed.bins, placed.lanes, placed.counts
    order = placed.order()
    new_index = {lanes[key]["index"]: n for n, key in enumerate(order)}
    firsts: dict[int, int] = {}
    lasts: dict[int, int] = {}
    keys = {lanes[key]["index"]: key for key in order}
    marks = []
    samples: list[dict[str, Any]] = []
    names = {key: book.who(key) for key in order if key != OTHERS}
    for (lane, kind, column), (count, _first_seq, _last_seq, first, last, shown) in sorted(
            bins.cells.items(), key=lambda item: (item[0][2], item[0][0], item[0][1])):
        firsts.setdefault(lane, column)
        lasts[lane] = column
        marks.append([new_index[lane], kind, column, count, round(first, 3), round(last, 3), len(samples)])
        # What the page can tell from the lane and the type is left out (its size is mostly samples).
        if shown.get("from") == keys[lane] != OTHERS:
            del shown["from"]
        if "ch" in shown and shown["ch"] == channel_of(str(shown.get("type"))):
            del shown["ch"]
        samples.append(shown)
        for key in (shown.get("from"), shown.get("to"), (shown.get("data") or {}).get("agent")):
            if isinstance(key, str) and key not in names:
                names[key] = book.who(key)
    objective = book.state["objective"]["text"] if book.state["objective"] else None
    t0 = bins.t0
    return {
        "session": session.id,
        "objective": objective if isinstance(objective, str) else None,
        "t0": t0,
        "bin_seconds": bins.width,
        "span_seconds": bins.latest - t0 if t0 is not None else 0,
        "virtual_seconds": bins.last,
        "segments": [[0.0, t0], *bins.breaks] if t0 is not None else [],
        "gap_shown": GAP_SHOWN,
        "columns": min(COLUMNS, int(bins.last / bins.width) + 1) if t0 is not None else 0,
        "records": playback.records,
        "undrawn": placed.undrawn,
        "damaged": playback.damaged,
        "lanes": [placed.lane(key, firsts.get(lanes[key]["index"]), lasts.get(lanes[key]["index"]))
                  for key in order],
        "kinds": [{"id": kind, "label": label, "count": counts[n]} for n, (kind, label) in enumerate(KINDS)],
        "marks": marks,
        "samples": samples,
        "names": names,
        "channels": {name: channel for name, (channel, _fields) in EVENT_TYPES.items()},
    }
