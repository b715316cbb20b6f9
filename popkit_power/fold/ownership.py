"""Who holds which task once the replication server orders the task transitions (fold/tasks.py): a transition's
place in that order, and an agent's current task derived from it, so that every machine that holds the same
transitions and places says the same.

A transition's place is the server's number once its `arbiter.ordered` fact is folded; until then it comes after
every placed one, in journal order. An agent's current task is, of the tasks it owns (claimed or assigned), the one
whose last transition naming it as the taker comes last in that order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import TASK_ASSIGNED, TASK_CLAIMED, State

if TYPE_CHECKING:
    from ..shapes.state import LogEntry, LoggedTransition

Place = tuple[int, int]


def place(entry: LogEntry) -> Place:
    """A logged transition's place (task_logs entries: [place or None, journal seq, transition])."""
    return (0, entry[0]) if entry[0] is not None else (1, entry[1])


def takes(transition: LoggedTransition, agent: str) -> bool:
    """Whether a transition makes `agent` the task's owner (when it applies)."""
    kind, data = transition["type"], transition["data"]
    if kind == "task.claimed":
        return bool(transition["from"] == agent)
    return bool((kind == "task.assigned" and data.get("agent") == agent) or (
        kind == "task.created" and data.get("owner") == agent))


def holds(state: State, agent: str, task_id: object) -> bool:
    """Whether `agent` holds the task `task_id` now (claimed or assigned, not finished)."""
    task = state["tasks"].get(task_id) if isinstance(task_id, str) else None
    return task is not None and task["owner"] == agent and task["status"] in (TASK_CLAIMED, TASK_ASSIGNED)


def current_tasks(state: State, names: list[str] | set[str]) -> dict[str, str | None]:
    """Each named agent's current task (None: it owns none), from one pass over the open tasks."""
    taken: dict[str, tuple[Place, str]] = {}
    for task_id, task in state["tasks"].items():
        owner = task["owner"]
        if owner is None or owner not in names or task["status"] not in (TASK_CLAIMED, TASK_ASSIGNED):
            continue
        took = [place(entry) for entry in state["task_logs"].get(task_id) or () if takes(entry[2], owner)]
        if took:
            candidate = (max(took), task_id)
            taken[owner] = max(taken.get(owner, candidate), candidate)
    return {name: taken[name][1] if name in taken else None for name in names}
