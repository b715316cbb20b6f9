"""The task lifecycle: created (optionally for an owner), claimed, assigned, released, orphaned, parked, completed.

The first claim in journal order wins; later ones change nothing. A finished task leaves `tasks` for `finished` (the
most recent `MAX_FINISHED_KEPT`) and the count in `totals`; an event about a task that is still kept there changes
nothing, so a late claim cannot bring a finished task back.

**Machines replicating.** Two machines can hold the same transitions of a task in different orders, and the order
matters (a release and a claim, a completion and an assignment). The replication server gives every task transition
one place in one order (`arbiter.ordered`, replication/scripts.py), and this is that order's arbiter here:

- each transition is kept in its task's log (`task_logs`: its place once known, its journal seq, the event), and
  applied as it comes, as on one machine;
- when a place shows that a task's transitions were applied out of the server's order, the task is taken out of
  the state and its log applied again in that order (the transitions not yet placed after the placed ones);
- from the first place on (`ordered`), a claim wins only in the round it was made for (`round`, the task's attempts
  when the claimant looked), as the server's contests decide; the contests' decisions change nothing more (the
  order says the same); and an agent's `current_task` is the task it owns that it took last in the server's order,
  not what its heartbeats say. On one machine no place ever comes, and nothing of this changes what it folds.
"""

from __future__ import annotations

from collections.abc import Callable
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
    if state.get("ordered") and isinstance(data.get("round"), int) and data["round"] != task["attempts"]:
        return  # made from an older look at the task: its round's contest went to another claim
    _take(state, data["task"], task, event["from"], TASK_CLAIMED)


def _decided(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """The arbiter's word on claims made on several machines at once (replication): the task is the winner's,
    whichever claim this journal holds first. The winner's own claim, before or after, counts the one attempt."""
    agent = data.get("agent")
    if data.get("type") != "task.claimed" or not isinstance(agent, str) or state.get("ordered"):
        return  # once transitions are placed in the server's order, that order says who won
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


TRANSITIONS = {
    "task.created": _created, "task.claimed": _claimed, "task.assigned": _assigned, "task.completed": _completed,
    "task.orphaned": _orphaned, "task.released": _released, "task.parked": _parked,
}
MAX_LOG = 200  # transitions kept per task; a task with more is no longer replayed (applied as it came)
_KEPT = ("task", "title", "parent", "owner", "agent", "ok", "result", "reason", "round")  # what the transitions read


def _logged(transition: Callable[[State, Event, dict[str, Any], Rules], None]) -> Callable[
        [State, Event, dict[str, Any], Rules], None]:
    """`transition`, first kept in its task's log (the replication server may place it elsewhere later)."""
    def apply(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
        task_id = data.get("task")
        if isinstance(task_id, str):
            log = state.setdefault("task_logs", {}).setdefault(task_id, [])
            if log is not None and len(log) < MAX_LOG:
                log.append([None, state["seq"], {"id": event.get("id"), "type": event.get("type"),
                                                 "from": event.get("from"), "ts": event.get("ts"),
                                                 "data": {key: cut(data[key]) if key == "result" else data[key]
                                                          for key in _KEPT if key in data}}])
            elif log is not None:
                state["task_logs"][task_id] = None  # too long to replay
        transition(state, event, data, rules)
        if event.get("type") == "task.completed":  # the logs of tasks no longer kept go with them
            logs = state["task_logs"]
            for gone in [key for key in logs if key not in state["tasks"] and key not in state["finished"]]:
                del logs[gone]
    return apply


def _placed(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    """The server's place for a task transition (`arbiter.ordered`, its number the fact's `oseq`)."""
    task_id, place = data.get("task"), event.get("oseq")
    log = state.setdefault("task_logs", {}).get(task_id) if isinstance(task_id, str) else None
    entry = next((entry for entry in log or () if entry[2]["id"] == data.get("event")), None)
    if not (isinstance(place, int) and isinstance(task_id, str) and log) or entry is None or entry[0] is not None:
        return  # not a transition this journal holds, or placed already (a server that lost its data placed it again)
    entry[0] = place
    if not state.get("ordered"):  # the first place: from here on the server's order rules, for what came before too
        state["ordered"] = True
        for other in list(state["task_logs"]):
            _replay(state, other, rules)
        _derive_current_tasks(state, list(state["agents"]))
        return
    if log != sorted(log, key=_place):
        _replay(state, task_id, rules)
    _derive_current_tasks(state, _agents_in(log))


def _place(entry: list[Any]) -> tuple[int, int]:
    """A transition's place in the server's order; the ones not placed yet after, in journal order."""
    return (0, entry[0]) if entry[0] is not None else (1, entry[1])


def _replay(state: State, task_id: str, rules: Rules) -> None:
    """Take out what a task's transitions made, and apply them again in the server's order."""
    log = state["task_logs"].get(task_id)
    if not log:
        return
    log.sort(key=_place)
    state["tasks"].pop(task_id, None)
    finished = state["finished"].pop(task_id, None)
    if finished is not None:
        totals = state["totals"]["tasks"]
        totals[finished["status"]] = max(0, totals.get(finished["status"], 0) - 1)
    _drop_orphan(state, task_id)
    for agent in state["agents"].values():
        if agent.get("current_task") == task_id:
            agent["current_task"] = None
    for _place_of, _seq, transition in log:
        TRANSITIONS[transition["type"]](state, transition, transition["data"], rules)


def _agents_in(log: list[Any]) -> list[str]:
    """Everyone a task's transitions name as the one who acts or the one who gets it."""
    named = {transition["from"] for _place_of, _seq, transition in log}
    named |= {transition["data"].get(key) for _place_of, _seq, transition in log for key in ("agent", "owner")}
    return [name for name in named if isinstance(name, str)]


def _derive_current_tasks(state: State, names: list[str]) -> None:
    """Each named agent's current task: of the tasks it owns, the one it took last in the server's order."""
    taken: dict[str, tuple[tuple[int, int], str]] = {}
    for task_id, task in state["tasks"].items():
        owner = task.get("owner")
        if owner not in names or task["status"] not in (TASK_CLAIMED, TASK_ASSIGNED):
            continue
        took = [_place(entry) for entry in state["task_logs"].get(task_id) or () if _takes(entry[2], owner)]
        if took:
            candidate = (max(took), task_id)
            taken[owner] = max(taken.get(owner, candidate), candidate)
    for name in names:
        if name in state["agents"]:
            state["agents"][name]["current_task"] = taken[name][1] if name in taken else None


def _takes(transition: dict[str, Any], agent: str) -> bool:
    """Whether a transition makes `agent` the task's owner (when it applies)."""
    kind, data = transition["type"], transition["data"]
    if kind == "task.claimed":
        return bool(transition["from"] == agent)
    return bool((kind == "task.assigned" and data.get("agent") == agent) or (
        kind == "task.created" and data.get("owner") == agent))


HANDLERS = {**{kind: _logged(transition) for kind, transition in TRANSITIONS.items()},
            "arbiter.decided": _decided, "arbiter.ordered": _placed}
