"""The task lifecycle: created (optionally for an owner), claimed, assigned, released, orphaned, parked, completed.

The first claim in journal order wins; later ones change nothing. A finished task leaves `tasks` for `finished` (the
most recent `rules.kept_finished`), the count in `totals` and its id in `finished_ids` (the index of finished work,
the most recent `rules.kept_finished_ids`); an event about a task whose id is there changes nothing, so a late claim
or a second result cannot bring a finished task back, however long ago it finished.

Only the task's holder, or the human, finishes or gives back a task (`may_finish`, `may_release`): a completion or a
release from an agent that does not hold it (it never claimed it, or the human released it or gave it to another
agent before this event) changes nothing. A completion of a task never heard of (a result reported without a task)
finishes the task it names.

**Machines replicating.** Two machines can hold the same transitions of a task in different orders, and the order
matters (a release and a claim, a completion and an assignment). The replication server gives every task transition
one place in one order (`arbiter.ordered`, replication/scripts.py), and this is that order's arbiter here:

- each transition is kept in its task's log (`task_logs`: its place once known, its journal seq, the event), and
  applied as it comes, as on one machine;
- when a place shows that a task's transitions were applied out of the server's order, the task is taken out of
  the state and its log applied again in that order (the transitions not yet placed after the placed ones);
- from the first event pulled from another machine on (`ordered`; places are pulled too), a claim wins only in the
  round it was made for (`round`, the task's attempts when the claimant looked), as the server's contests decide;
  the contests' decisions change nothing more (the order says the same); an agent's `current_task` is the task it
  owns that it took last in the server's order, not what its heartbeats say; and finished tasks leave `finished`
  by the server's order of their completions (before, every one that left was this machine's own, and had at
  least `kept_finished` of its own completions after it). On one machine nothing is ever pulled, and nothing of
  this changes what it folds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..keys import HUMAN
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
    count,
    cut,
    index_finished,
    keep_recent,
    uncount,
)
from .ownership import current_tasks, place

if TYPE_CHECKING:
    from ..shapes.events import (
        ArbiterDecided,
        ArbiterOrdered,
        TaskAssigned,
        TaskClaimed,
        TaskCompleted,
        TaskCreated,
        TaskOrphaned,
        TaskParked,
        TaskReleased,
    )
    from ..shapes.state import FinishedTask, LogEntry, Task
    from .model import Handler


def _task(state: State, task_id: Any, event: Event) -> Task | None:
    if not isinstance(task_id, str) or task_id in state["finished_ids"]:
        return None
    task: Task | None = state["tasks"].get(task_id)
    if task is None:  # a task first heard of through a claim or result (e.g. created on another machine)
        task = {"title": task_id, "status": TASK_OPEN, "owner": None, "attempts": 0, "result": None,
                "created": event.get("ts"), "created_by": event.get("from"), "parent": None,
                "updated": None}  # set below, for a new task as for every other (the key's place stays the same)
        state["tasks"][task_id] = task
    task["updated"] = event.get("ts")
    return task


def _drop_orphan(state: State, task_id: str, task: Task) -> None:
    """Take the task off the orphan list, before its status changes. It is on the list exactly when its status is
    orphaned (the fold keeps it so: tests/test_projector.py), so the list is searched only then, not at every
    transition of every task (a long list of orphans when agents die faster than their work is taken)."""
    if task["status"] == TASK_ORPHANED:
        state["orphans"].remove(task_id)


def _take(state: State, task_id: str, task: Task, owner: str, status: str) -> None:
    """`owner` holds the task now: the one who held it before no longer works on it. What the owner worked on
    before is kept, for a claim the arbiter later gives to another agent (`_decided`)."""
    set_current_task(state, task["owner"], None, unless=task_id)
    _drop_orphan(state, task_id, task)
    task["owner"], task["status"], task["attempts"] = owner, status, task["attempts"] + 1
    task["owner_was_on"] = state["agents"][owner]["current_task"] if owner in state["agents"] else None
    set_current_task(state, owner, task_id)


def _created(state: State, event: Event, data: TaskCreated, rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None:
        return
    task["title"] = data.get("title", task["title"])
    task["parent"] = data.get("parent")
    owner = data.get("owner")
    if isinstance(owner, str) and task["owner"] is None:
        _take(state, data["task"], task, owner, TASK_ASSIGNED)


def _claimed(state: State, event: Event, data: TaskClaimed, rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None or task["status"] not in (TASK_OPEN, TASK_ORPHANED):
        return  # the first claim in journal order wins; later ones change nothing
    if state["ordered"] and isinstance(data.get("round"), int) and data["round"] != task["attempts"]:
        return  # made from an older look at the task: its round's contest went to another claim
    _take(state, data["task"], task, event["from"], TASK_CLAIMED)


def _decided(state: State, event: Event, data: ArbiterDecided, rules: Rules) -> None:
    """The arbiter's word on claims made on several machines at once (replication): the task is the winner's,
    whichever claim this journal holds first. The winner's own claim, before or after, counts the one attempt."""
    agent = data.get("agent")
    if data.get("type") != "task.claimed" or not isinstance(agent, str) or state["ordered"]:
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
        task["owner_was_on"] = state["agents"][agent]["current_task"] if agent in state["agents"] else None
        set_current_task(state, agent, data["task"])


def _assigned(state: State, event: Event, data: TaskAssigned, rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    agent = data.get("agent")
    if task is None or not isinstance(agent, str):
        return
    _take(state, data["task"], task, agent, TASK_ASSIGNED)


def may_finish(state: State, task_id: Any, sender: Any) -> bool:
    """Whether a completion of `task_id` from `sender` finishes it: the human's of any task not finished yet, an
    agent's of a task it holds, anyone's of a task never heard of (a result reported without a task)."""
    if not isinstance(task_id, str) or task_id in state["finished_ids"]:
        return False
    task = state["tasks"].get(task_id)
    return task is None or sender == HUMAN or task["owner"] == sender


def may_release(task: Task, sender: Any) -> bool:
    """Whether a release from `sender` gives the task back: the human's, or its holder's."""
    return bool(sender == HUMAN or task["owner"] == sender)


def _completed(state: State, event: Event, data: TaskCompleted, rules: Rules) -> None:
    task_id = data.get("task")
    if not may_finish(state, task_id, event.get("from")):
        return  # not the holder's: an agent that lost the task (or never took it) does not finish it
    task = _task(state, task_id, event)
    if task is None:
        return
    assert isinstance(task_id, str)  # _task made sure
    status = TASK_FAILED if data.get("ok") is False else TASK_COMPLETED
    set_current_task(state, task["owner"], None, unless=task_id)
    _drop_orphan(state, task_id, task)
    del state["tasks"][task_id]
    finished: FinishedTask
    finished = {"title": task["title"], "status": status, "owner": task["owner"], "completed_by": event.get("from"),
                "result": cut(data.get("result")), "attempts": task["attempts"],
                "previous_owner": task.get("previous_owner"), "parent": task["parent"], "created": task["created"],
                "finished": event.get("ts")}
    index_finished(state["finished_ids"], task_id, status == TASK_COMPLETED, rules)
    if not state["ordered"]:
        gone = keep_recent(state["finished"], task_id, finished, state["totals"]["tasks"], status, rules.kept_finished)
        _forget_logs(state, gone)
        return
    state["finished"][task_id] = finished  # kept by the server's order of completions, not by arrival
    count(state["totals"]["tasks"], status)
    _forget_oldest_finished(state, rules)


def _forget_oldest_finished(state: State, rules: Rules) -> None:
    """Past `kept_finished`, the finished tasks completed first in the server's order leave. Only placed completions
    are compared: the ones not placed yet come after all placed ones (places are pulled in order), so every machine
    ends with the same most recent ones."""
    finished, logs = state["finished"], state["task_logs"]
    while len(finished) > rules.kept_finished:
        completions = {task_id: max((place(entry) for entry in logs.get(task_id) or ()
                                     if entry[2]["type"] == "task.completed"), default=(-1, 0))
                       for task_id in finished}
        placed = [(where, task_id) for task_id, where in completions.items() if where[0] <= 0]
        if not placed:
            return
        del finished[min(placed)[1]]


def _orphaned(state: State, event: Event, data: TaskOrphaned, rules: Rules) -> None:
    """Not when another agent holds it now: a decision made before an assignment or claim was seen undoes neither."""
    task = _task(state, data.get("task"), event)
    if task is None or task["owner"] not in (None, data.get("agent")):
        return
    task["previous_owner"] = data.get("agent")
    if task["status"] != TASK_ORPHANED:  # else on the list already (_drop_orphan)
        state["orphans"].append(data["task"])
    task["owner"], task["status"] = None, TASK_ORPHANED


def _parked(state: State, event: Event, data: TaskParked, rules: Rules) -> None:
    """A task that lost its agent too often waits for the human: no claim takes it, only an assignment."""
    task = _task(state, data.get("task"), event)
    holder = data.get("agent", task["owner"]) if task is not None else None
    if task is None or task["owner"] not in (None, holder):
        return
    _drop_orphan(state, data["task"], task)
    task["owner"], task["status"], task["parked_reason"] = None, TASK_PARKED, data.get("reason")


def _released(state: State, event: Event, data: TaskReleased, rules: Rules) -> None:
    task = _task(state, data.get("task"), event)
    if task is None or not may_release(task, event.get("from")):
        return  # a late release from an agent the task was taken from leaves it with its new holder
    set_current_task(state, task["owner"], None, unless=data["task"])
    _drop_orphan(state, data["task"], task)
    task["owner"], task["status"] = None, TASK_OPEN


#: Every task transition, by event type; the replication server orders exactly these (replication/effects.py).
TRANSITIONS: dict[str, Handler] = {
    "task.created": _created, "task.claimed": _claimed, "task.assigned": _assigned, "task.completed": _completed,
    "task.orphaned": _orphaned, "task.released": _released, "task.parked": _parked,
}
MAX_LOG = 1000  # transitions kept per task; a task with more is no longer replayed (applied as it came)
_KEPT = ("task", "title", "parent", "owner", "agent", "ok", "result", "reason", "round")  # what the transitions read


def _logged(transition: Handler) -> Handler:
    """`transition`, first kept in its task's log (the replication server may place it elsewhere later)."""
    def apply(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
        task_id = data.get("task")
        logs = state["task_logs"]
        # not a task finished long ago (its log gone with it): a late word about it changes nothing, and a log begun
        # by it would never be dropped, and would bring the task back when machines start ordering (_replay)
        if isinstance(task_id, str) and (task_id in logs or task_id not in state["finished_ids"]):
            log = logs.setdefault(task_id, [])
            if log is not None and len(log) < MAX_LOG:
                log.append([None, state["seq"], {"id": event.get("id"), "type": event.get("type"),
                                                 "from": event.get("from"), "ts": event.get("ts"),
                                                 "data": {key: cut(data[key]) if key == "result" else data[key]
                                                          for key in _KEPT if key in data}}])
            elif log is not None:
                logs[task_id] = None  # too long to replay
        transition(state, event, data, rules)
        if state["ordered"] and event.get("type") == "task.completed":  # see _forget_logs
            for gone in logs.keys() - state["tasks"].keys() - state["finished"].keys():
                del logs[gone]
    return apply


def _forget_logs(state: State, gone: list[str]) -> None:
    """The logs of finished tasks no longer kept go with them: at each `task.completed`, every log whose task is
    neither open nor kept among the finished ones is dropped.

    In journal order (not `ordered`) a task leaves both only when a completion pushes the oldest finished ones out
    (`gone`), so those are the only logs to drop, with no scan of the others. In the server's order tasks also leave
    at a place (`_forget_oldest_finished`, `_replay`), and their logs stay until the next completion: there every log
    is checked (a set difference, in C), as before. Either way the same logs go at the same event."""
    logs, tasks = state["task_logs"], state["tasks"]
    for task_id in gone:
        if task_id in logs and task_id not in tasks:
            del logs[task_id]


def _placed(state: State, event: Event, data: ArbiterOrdered, rules: Rules) -> None:
    """The server's place for a task transition (`arbiter.ordered`, its number the fact's `oseq`)."""
    task_id, number = data.get("task"), event.get("oseq")
    log = state["task_logs"].get(task_id) if isinstance(task_id, str) else None
    entry = next((entry for entry in log or () if entry[2]["id"] == data.get("event")), None)
    if not (isinstance(number, int) and isinstance(task_id, str) and log) or entry is None or entry[0] is not None:
        return  # not a transition this journal holds, or placed already (a server that lost its data placed it again)
    entry[0] = number
    if not state["ordered"]:
        start_ordering(state, rules)
        return
    if log != sorted(log, key=place):
        _replay(state, task_id, rules)
    _derive_current_tasks(state, _agents_in(log))
    _forget_oldest_finished(state, rules)


def start_ordering(state: State, rules: Rules) -> None:
    """From the first event pulled from another machine or the first place on, the server's order rules, for what
    came before too: every task is folded again (the transitions not placed yet in journal order)."""
    state["ordered"] = True
    for task_id in list(state["task_logs"]):
        _replay(state, task_id, rules)
    _derive_current_tasks(state, list(state["agents"]))
    _forget_oldest_finished(state, rules)


def _replay(state: State, task_id: str, rules: Rules) -> None:
    """Take out what a task's transitions made, and apply them again in the server's order."""
    log = state["task_logs"].get(task_id)
    if not log:
        return
    log.sort(key=place)
    task = state["tasks"].pop(task_id, None)
    if task is not None:
        _drop_orphan(state, task_id, task)
    finished = state["finished"].pop(task_id, None)
    ok = state["finished_ids"].pop(task_id, None)
    # counted when it finished (kept among the recent ones or not): counted again if its completion applies again
    status = finished["status"] if finished is not None else None if ok is None else (
        TASK_COMPLETED if ok else TASK_FAILED)
    if status is not None:
        uncount(state["totals"]["tasks"], status)
    for agent in state["agents"].values():
        if agent["current_task"] == task_id:
            agent["current_task"] = None
    for _place_of, _seq, transition in log:
        TRANSITIONS[transition["type"]](state, transition, transition["data"], rules)


def _agents_in(log: list[LogEntry]) -> list[str]:
    """Everyone a task's transitions name as the one who acts or the one who gets it."""
    named = {transition["from"] for _place_of, _seq, transition in log}
    named |= {transition["data"].get(key) for _place_of, _seq, transition in log for key in ("agent", "owner")}
    return [name for name in named if isinstance(name, str)]


def _derive_current_tasks(state: State, names: list[str]) -> None:
    """Each named agent's current task: of the tasks it owns, the one it took last in the server's order."""
    agents = state["agents"]
    for name, task_id in current_tasks(state, [name for name in names if name in agents]).items():
        agents[name]["current_task"] = task_id


HANDLERS: dict[str, Handler] = {**{kind: _logged(transition) for kind, transition in TRANSITIONS.items()},
            "arbiter.decided": _decided, "arbiter.ordered": _placed}
