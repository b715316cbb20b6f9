"""The task lifecycle: created (optionally for an owner), claimed, assigned, released, orphaned, parked, completed.

The first claim in journal order wins; later ones change nothing. A finished task leaves `tasks` for `finished` (the
most recent `MAX_FINISHED_KEPT`) and the count in `totals`; an event about a task that is still kept there changes
nothing, so a late claim cannot bring a finished task back.
"""

from __future__ import annotations

from typing import Any

from .agents import set_current_task
from .model import (
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
    cut,
    keep_recent,
)


def _task(state: State, task_id: Any, event: Event) -> dict[str, Any] | None:
    if not isinstance(task_id, str) or task_id in state["finished"]:
        return None
    task: dict[str, Any] | None = state["tasks"].get(task_id)
    if task is None:  # a task first heard of through a claim or result (e.g. created on another machine)
        task = {"title": task_id, "status": TASK_OPEN, "owner": None, "attempts": 0, "result": None,
                "created": event.get("ts"), "created_by": event.get("from"), "parent": None}
        state["tasks"][task_id] = task
    task["updated"] = event.get("ts")
    return task


def _drop_orphan(state: State, task_id: str) -> None:
    if task_id in state["orphans"]:
        state["orphans"].remove(task_id)


def _take(state: State, task_id: str, task: dict[str, Any], owner: str, status: str) -> None:
    """`owner` holds the task now: the one who held it before no longer works on it. What the owner worked on
    before is kept, for a claim the arbiter later gives to another agent (`_decided`)."""
    set_current_task(state, task["owner"], None, unless=task_id)
    task["owner"], task["status"], task["attempts"] = owner, status, task["attempts"] + 1
    _drop_orphan(state, task_id)
    task["owner_was_on"] = state["agents"].get(owner, {}).get("current_task")
    set_current_task(state, owner, task_id)


def _created(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None:
        return
    task["title"] = data.get("title", task["title"])
    task["parent"] = data.get("parent")
    owner = data.get("owner")
    if isinstance(owner, str) and task["owner"] is None:
        _take(state, data["task"], task, owner, TASK_ASSIGNED)


def _claimed(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None or task["status"] not in (TASK_OPEN, TASK_ORPHANED):
        return  # the first claim in journal order wins; later ones change nothing
    _take(state, data["task"], task, event["from"], TASK_CLAIMED)


def _decided(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """The arbiter's word on claims made on several machines at once (replication): the task is the winner's,
    whichever claim this journal holds first. The winner's own claim, before or after, counts the one attempt."""
    agent = data.get("agent")
    if data.get("type") != "task.claimed" or not isinstance(agent, str):
        return
    task = _task(state, data.get("task"), event)
    if task is None or task["owner"] == agent:
        return
    if task["status"] in (TASK_OPEN, TASK_ORPHANED):
        _take(state, data["task"], task, agent, TASK_CLAIMED)
    elif task["status"] == TASK_CLAIMED:  # a losing claim got here first: it never held the task
        loser, before = task["owner"], task.get("owner_was_on")
        still = state["tasks"].get(before) if isinstance(before, str) else None
        # the loser goes back to what it worked on, as on a machine where its claim came after the winner's
        set_current_task(state, loser, before if still is not None and still["owner"] == loser else None,
                         unless=data["task"])
        task["owner"] = agent
        task["owner_was_on"] = state["agents"].get(agent, {}).get("current_task")
        set_current_task(state, agent, data["task"])


def _assigned(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    agent = data.get("agent")
    if task is None or not isinstance(agent, str):
        return
    _take(state, data["task"], task, agent, TASK_ASSIGNED)


def _completed(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task_id = data.get("task")
    task = _task(state, task_id, event)
    if task is None:
        return
    assert isinstance(task_id, str)  # _task made sure
    status = TASK_FAILED if data.get("ok") is False else TASK_COMPLETED
    set_current_task(state, task["owner"], None, unless=task_id)
    _drop_orphan(state, task_id)
    del state["tasks"][task_id]
    keep_recent(state["finished"], task_id, {
        "title": task["title"], "status": status, "owner": task["owner"], "completed_by": event.get("from"),
        "result": cut(data.get("result")), "attempts": task["attempts"], "previous_owner": task.get("previous_owner"),
        "parent": task["parent"], "created": task["created"],
        "finished": event.get("ts")}, state["totals"]["tasks"], status)


def _orphaned(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """Not when another agent holds it now: a decision made before an assignment or claim was seen undoes neither."""
    task = _task(state, data.get("task"), event)
    if task is None or task["owner"] not in (None, data.get("agent")):
        return
    task["previous_owner"] = data.get("agent")
    task["owner"], task["status"] = None, TASK_ORPHANED
    if data["task"] not in state["orphans"]:
        state["orphans"].append(data["task"])


def _parked(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """A task that lost its agent too often waits for the human: no claim takes it, only an assignment."""
    task = _task(state, data.get("task"), event)
    holder = data.get("agent", task["owner"]) if task is not None else None
    if task is None or task["owner"] not in (None, holder):
        return
    task["owner"], task["status"], task["parked_reason"] = None, TASK_PARKED, data.get("reason")
    _drop_orphan(state, data["task"])


def _released(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None:
        return
    set_current_task(state, task["owner"], None, unless=data["task"])
    task["owner"], task["status"] = None, TASK_OPEN
    _drop_orphan(state, data["task"])


HANDLERS = {
    "task.created": _created, "task.claimed": _claimed, "task.assigned": _assigned, "task.completed": _completed,
    "task.orphaned": _orphaned, "task.released": _released, "task.parked": _parked, "arbiter.decided": _decided,
}
