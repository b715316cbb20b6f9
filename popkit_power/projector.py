"""The projector: a pure fold from journal events to the state of a power session.

`apply(state, event, rules)` reads only its arguments: no disk, network or clock (time is the events' `ts`). It
updates `state` in place and returns it. State is plain JSON data, so a snapshot is `orjson.dumps(state)`, and a
rebuild from zero or a resume from any snapshot gives the same state byte for byte (tests/test_projector.py).

What the state holds (`new_state()`, in fold/model.py): the session and its objective; agents (status, last seen,
progress, current task, files touched, tool and work counts, last message); open tasks (owner, status, attempts) and
the most recent finished ones; the orphan list; insights with duplicate detection; pending approval requests and the
most recent answers; file conflicts; the coordinator's status. The handlers live in popkit_power/fold/, one module per
concept; this module puts them together and answers the common queries.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from .fold import agents, exchange, tasks
from .fold.model import (
    AGENT_ACTIVE,
    AGENT_IDLE,
    AGENT_LEFT,
    AGENT_LOST,
    APPROVAL_PENDING,
    FINISHED_TASK_STATES,
    GONE_AGENT_STATES,
    HANDOVER_FILES,
    MAX_COUNTED_TYPES,
    MAX_FINISHED_KEPT,
    OPEN_TASK_STATES,
    TASK_ASSIGNED,
    TASK_CLAIMED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_OPEN,
    TASK_ORPHANED,
    TASK_PARKED,
    Event,
    Rules,
    State,
    new_state,
)

if TYPE_CHECKING:
    from .fold.model import Handler
    from .shapes.state import Agent, FinishedTask, Task

#: Raised whenever `apply` folds an event differently than before: snapshots made by other code are not reused.
#: 3: approvals answered once; 4: parked tasks; 5: pid_start; 6: orphaned only from its owner; 7: finished tasks and
#: answered approvals leave the live state, work calls, last messages; 8: arbiter decisions, each machine's coordinator;
#: 9: when another machine was heard (rts), a losing claimant back on its task (owner_was_on); 10: task transitions in
#: the replication server's order (arbiter.ordered, task_logs); 11: a completion or release only from the task's holder
#: or the human, a heartbeat's current task only one the agent holds; 12: an answered approval's seq and evidence;
#: 13: the most recent broadcasts (for the welcome); 14: the first approval request under an id is the one kept;
#: 15: departed agents past the most recent ones leave the state and keep only their hand-over's files, finished task
#: and answered request ids indexed, event types counted up to a bound; 16: the keys of departed agents that left the
#: state (departed_ids), and only a join brings back one that left long ago; 17: a late idle leaves a left agent left;
#: 18: each machine's coordinator's outages (from one's last word to the next one's start)
FOLD_VERSION = 18

def _handlers(*tables: Mapping[str, Handler]) -> dict[str, tuple[Handler, ...]]:
    merged: dict[str, tuple[Handler, ...]] = {}
    for table in tables:
        for event_type, handler in table.items():
            merged[event_type] = (*merged.get(event_type, ()), handler)
    return merged


_HANDLERS = _handlers(agents.HANDLERS, tasks.HANDLERS, exchange.HANDLERS)


def apply(state: State, event: dict[str, Any], rules: Rules) -> State:
    """Fold one event into `state` (in place) and return it. Unknown types are counted and otherwise ignored.

    `event` is a record as read (JSON of any shape): from here on it is an `Event`, whose type and sender are
    checked here and whose other fields the handlers check as they read them."""
    event_type = event.get("type")
    sender = event.get("from")
    counts = state["counts"]
    state["seq"] = event.get("seq", state["seq"])
    if not isinstance(event_type, str) or not isinstance(sender, str):
        counts["invalid"] = counts.get("invalid", 0) + 1
        return state
    counted = event_type if event_type in counts or len(counts) < MAX_COUNTED_TYPES else "other"
    counts[counted] = counts.get(counted, 0) + 1
    if "oseq" in event and not state["ordered"]:  # another machine's event: the server's order rules from here
        tasks.start_ordering(state, rules)
    agent = state["agents"].get(sender)
    if agent is not None:
        agent["last_seen"] = event.get("ts")
    handlers = _HANDLERS.get(event_type)
    if handlers is not None:
        data = event.get("data")
        known = cast("Event", event)  # the one cast from a record as read (see the docstring)
        try:
            for handler in handlers:
                handler(state, known, data if isinstance(data, dict) else {}, rules)
        except (TypeError, AttributeError, KeyError, ValueError):
            # A record whose checksum holds but whose fields have the wrong kinds (another writer's bug, a newer
            # version): counted and stepped over, so one bad record never stops every later read. What the handler
            # did before it failed stays, which is the same on every rebuild, so projections still agree.
            counts["invalid"] = counts.get("invalid", 0) + 1
    return state


def project(events: Any, rules: Rules | None = None, state: State | None = None) -> State:
    """Fold every event of an iterable into `state` (a new one when None)."""
    rules = rules or Rules()
    state = new_state() if state is None else state
    with Folding():
        for event in events:
            apply(state, event, rules)
    return state


class Folding:
    """`with Folding():` around a fold of many events: the cyclic garbage collector is off meanwhile.

    The fold makes no reference cycles (the state and the events are trees of JSON values), so everything it drops
    is freed by reference counting all the same; but every ~700 new dicts the collector would walk the young objects,
    and ever more often the whole growing state: that was about half of a rebuild's time (tools/BENCHMARKS.md, "The
    fold"). It is on again afterwards, unless it was off before (a fold in another thread, or the caller's choice).
    """

    __slots__ = ("_was_on",)

    def __enter__(self) -> None:
        self._was_on = gc.isenabled()
        gc.disable()

    def __exit__(self, *_exc: object) -> None:
        if self._was_on:
            gc.enable()


# -- queries --------------------------------------------------------------------------------------------------------

def open_tasks_of(state: State, agent: str) -> list[str]:
    """The ids of the tasks `agent` owns that are not finished."""
    return [task_id for task_id, task in state["tasks"].items()
            if task["owner"] == agent and task["status"] in OPEN_TASK_STATES]


def live_agents(state: State) -> list[str]:
    """Agents that have not left and have not been declared lost."""
    return [key for key, agent in state["agents"].items() if agent["status"] in (AGENT_ACTIVE, AGENT_IDLE)]


def watching(agent: Agent) -> bool:
    """Whether an agent only looks on: every tool call it made ran popkit-power itself, and it holds no task. A
    person's own Claude Code session that runs `/popkit:power status` is such an agent, not a working one; an agent
    that has made no tool call yet is not (it has only just joined)."""
    return bool(agent["tool_calls"]) and not agent["work_calls"] and not agent["current_task"]


def find_task_anywhere(state: State, task_id: str) -> Task | FinishedTask | None:
    """The task, open or among the recently finished ones."""
    task: Task | FinishedTask | None = state["tasks"].get(task_id) or state["finished"].get(task_id)
    return task


__all__ = [
    "AGENT_ACTIVE",
    "AGENT_IDLE",
    "AGENT_LEFT",
    "AGENT_LOST",
    "APPROVAL_PENDING",
    "FINISHED_TASK_STATES",
    "FOLD_VERSION",
    "GONE_AGENT_STATES",
    "HANDOVER_FILES",
    "MAX_FINISHED_KEPT",
    "OPEN_TASK_STATES",
    "TASK_ASSIGNED",
    "TASK_CLAIMED",
    "TASK_COMPLETED",
    "TASK_FAILED",
    "TASK_OPEN",
    "TASK_ORPHANED",
    "TASK_PARKED",
    "Event",
    "Folding",
    "Rules",
    "State",
    "apply",
    "find_task_anywhere",
    "live_agents",
    "new_state",
    "open_tasks_of",
    "project",
    "watching",
]
