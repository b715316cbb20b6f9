"""The projected state: its statuses, the rules the fold depends on, and the empty state (its shape, as types for
mypy, is in shapes/state.py; the events' in shapes/events.py).

State is plain JSON data (so a snapshot is `orjson.dumps(state)`). What it holds is bounded by what is live (agents
present, open tasks, pending approvals), not by history: finished tasks, answered approvals and departed agents leave
it for a short list of the most recent ones and counts, and a finished task leaves its id behind in a compact index
(`finished_ids`, so that a late word about it cannot bring it back), itself bounded. The journal keeps everything;
`replay`, `timeline` and `status --all` read it from there. The bounds are `Rules`' `kept_*` (defaults below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ..config import DEFAULTS

if TYPE_CHECKING:
    from ..shapes.events import Event as Event
    from ..shapes.state import State as State
else:  # at run time both are plain dicts: the shapes are for the type checker only (building them would cost ~9 ms)
    State = Event = dict

V = TypeVar("V")

AGENT_ACTIVE, AGENT_IDLE, AGENT_LEFT, AGENT_LOST = "active", "idle", "left", "lost"
TASK_OPEN, TASK_CLAIMED, TASK_ASSIGNED = "open", "claimed", "assigned"
TASK_COMPLETED, TASK_FAILED, TASK_ORPHANED, TASK_PARKED = "completed", "failed", "orphaned", "parked"
OPEN_TASK_STATES = frozenset({TASK_OPEN, TASK_CLAIMED, TASK_ASSIGNED, TASK_ORPHANED, TASK_PARKED})
FINISHED_TASK_STATES = frozenset({TASK_COMPLETED, TASK_FAILED})
#: Agents that are not coming back by themselves: they left, or were declared lost (departed, in the state's words).
GONE_AGENT_STATES = frozenset({AGENT_LEFT, AGENT_LOST})
APPROVAL_PENDING = "pending"
MAX_CONFLICTS = 100
MAX_WATCHED_FILES = 1000
#: Finished tasks and answered approvals kept (the most recent), so that a second `done` or `approve` can still name
#: what happened; older ones are only counted.
MAX_FINISHED_KEPT = 100
#: Departed agents (left or lost) kept (the most recent departures), for their hand-over and for `status`; older ones
#: are only counted, unless they still hold a task.
MAX_DEPARTED_KEPT = 100
#: The files a hand-over names (the last ones the agent touched): all a departed agent keeps of its files.
HANDOVER_FILES = 10
#: Finished task ids and answered request ids remembered (the indices of finished work: id -> 1 completed or granted,
#: 0 failed or denied), ~15-30 bytes each, so at most ~600 KB each: two days of the long-run benchmark's tasks.
MAX_FINISHED_IDS = 20_000
#: Event types counted by name (`counts`); past this many, a new type is counted as `other` (records of any type may
#: come from another writer).
MAX_COUNTED_TYPES = 200
MAX_KEPT_TEXT = 500  # characters of a finished task's result or an agent's last message kept in the state
#: The session's most recent broadcasts kept, so that an agent that joins later hears them in its welcome
MAX_BROADCASTS_KEPT = 10


UNBOUNDED = 1 << 62
#: What the state keeps of history (not settings: fixed here, and part of the fold's key like the settings).
BOUNDS = {"kept_finished": MAX_FINISHED_KEPT, "kept_departed": MAX_DEPARTED_KEPT, "kept_finished_ids": MAX_FINISHED_IDS}


class Rules:
    """What the fold depends on: the settings (`SETTINGS`, defaults from `config.DEFAULTS`) and the bounds of what
    it keeps of history (`BOUNDS`); all of them make up what makes two projections comparable (a snapshot's key)."""

    SETTINGS = ("conflict_window_seconds", "insight_similarity_threshold", "max_files_per_agent", "max_insights_kept")
    __slots__ = (*SETTINGS, *BOUNDS)
    conflict_window_seconds: float
    insight_similarity_threshold: float
    max_files_per_agent: int
    max_insights_kept: int
    kept_finished: int
    kept_departed: int
    kept_finished_ids: int

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.__slots__)
        if unknown:
            raise TypeError(f"unknown rules: {', '.join(sorted(unknown))}")
        for name in self.SETTINGS:
            setattr(self, name, values.get(name, DEFAULTS[name][0]))
        for name, default in BOUNDS.items():
            setattr(self, name, values.get(name, default))

    @classmethod
    def from_config(cls, config: Any) -> Rules:
        return cls(**{name: getattr(config, name) for name in cls.SETTINGS})

    def everything(self) -> Rules:
        """These settings with nothing leaving the state: the full fold (`status --all`, and what tests compare the
        bounded state with). Its state grows with the session's history."""
        return Rules(**{name: getattr(self, name) for name in self.SETTINGS}, **dict.fromkeys(BOUNDS, UNBOUNDED))

    def key(self) -> dict[str, Any]:
        """Every rule by name: a snapshot made under other rules is not reused."""
        return {name: getattr(self, name) for name in self.__slots__}


if TYPE_CHECKING:
    from collections.abc import Callable

    #: What handles an event type in the fold: its `data` has that type's shape (shapes/events.py, DATA_SHAPES),
    #: which only the type it is registered under says, so a table of handlers takes any.
    Handler = Callable[[State, Event, Any, Rules], None]


def new_state() -> State:
    """The state before the first event."""
    return {"seq": 0, "session": None, "opened": None, "closed": None, "objective": None, "agents": {}, "tasks": {},
            "finished": {}, "orphans": [], "insights": [], "broadcasts": [], "approvals": {}, "answered": {},
            "conflicts": [], "writes": {}, "coordinator": {"status": "none"}, "coordinators": {},
            "departed": [], "finished_ids": {}, "answered_ids": {}, "departed_ids": {},
            "totals": {"tasks": {}, "approvals": {}, "agents": {}},
            "counts": {}, "task_logs": {}, "ordered": False}


def keep_recent(kept: dict[str, V], key: str, value: V, totals: dict[str, int], status: str, limit: int) -> list[str]:
    """Move a finished item into `kept` (the most recent `limit`) and count it under `status`; return the keys of
    the items that left `kept` for it (the oldest ones)."""
    kept.pop(key, None)
    kept[key] = value
    gone = []
    while len(kept) > limit:
        oldest = next(iter(kept))
        del kept[oldest]
        gone.append(oldest)
    count(totals, status)
    return gone


def count(totals: dict[str, int], status: str) -> None:
    """Count one more item under `status` (finished, answered or departed: what the state no longer lists)."""
    totals[status] = totals.get(status, 0) + 1


def uncount(totals: dict[str, int], status: str) -> None:
    """Take back one count under `status` (an item counted as gone that is back, or counted again), dropping the
    status at zero."""
    totals[status] = totals.get(status, 0) - 1
    if totals[status] <= 0:
        del totals[status]


def index_finished(index: dict[str, int], key: str, ok: bool, rules: Rules) -> None:
    """A finished item's id in an index of finished work (`finished_ids`, `answered_ids`: 1 completed or granted, 0
    failed or denied; `departed_ids`: 1 left, 0 lost), the oldest leaving past `rules.kept_finished_ids`."""
    index[key] = 1 if ok else 0
    while len(index) > rules.kept_finished_ids:
        del index[next(iter(index))]


def cut(text: Any) -> Any:
    """A text kept in the state, cut to `MAX_KEPT_TEXT` characters; anything else as it is."""
    return text[:MAX_KEPT_TEXT] if isinstance(text, str) else text
