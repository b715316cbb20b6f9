"""The projected state: its statuses, the rules the fold depends on, and the empty state (its shape, as types for
mypy, is in shapes/state.py; the events' in shapes/events.py).

State is plain JSON data (so a snapshot is `orjson.dumps(state)`). Every collection that could grow with history
rather than with agents and open work is bounded: finished tasks and answered approvals leave the live state for a
short list of recent ones and a count (the journal keeps them all).
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
APPROVAL_PENDING = "pending"
MAX_CONFLICTS = 100
MAX_WATCHED_FILES = 1000
#: Finished tasks and answered approvals kept (the most recent), so that a second `done` or `approve` can still name
#: what happened; older ones are only counted.
MAX_FINISHED_KEPT = 100
MAX_KEPT_TEXT = 500  # characters of a finished task's result or an agent's last message kept in the state
#: The session's most recent broadcasts kept, so that an agent that joins later hears them in its welcome
MAX_BROADCASTS_KEPT = 10


class Rules:
    """The settings the fold depends on (defaults from `config.DEFAULTS`); part of what makes two projections
    comparable."""

    __slots__ = ("conflict_window_seconds", "insight_similarity_threshold", "max_files_per_agent",
                 "max_insights_kept")
    conflict_window_seconds: float
    insight_similarity_threshold: float
    max_files_per_agent: int
    max_insights_kept: int

    def __init__(self, **values: Any) -> None:
        unknown = set(values) - set(self.__slots__)
        if unknown:
            raise TypeError(f"unknown rules: {', '.join(sorted(unknown))}")
        for name in self.__slots__:
            setattr(self, name, values.get(name, DEFAULTS[name][0]))

    @classmethod
    def from_config(cls, config: Any) -> Rules:
        return cls(**{name: getattr(config, name) for name in cls.__slots__})


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
            "totals": {"tasks": {}, "approvals": {}},
            "counts": {}, "task_logs": {}, "ordered": False}


def keep_recent(kept: dict[str, V], key: str, value: V, totals: dict[str, int], status: str) -> list[str]:
    """Move a finished item into `kept` (the most recent `MAX_FINISHED_KEPT`) and count it under `status`; return
    the keys of the items that left `kept` for it (the oldest ones)."""
    kept.pop(key, None)
    kept[key] = value
    gone = []
    while len(kept) > MAX_FINISHED_KEPT:
        oldest = next(iter(kept))
        del kept[oldest]
        gone.append(oldest)
    totals[status] = totals.get(status, 0) + 1
    return gone


def cut(text: Any) -> Any:
    """A text kept in the state, cut to `MAX_KEPT_TEXT` characters; anything else as it is."""
    return text[:MAX_KEPT_TEXT] if isinstance(text, str) else text
