"""Changing a task as a person or its owner does: add one, give one back, or (the human's override) hand one to an
agent. The protocols every caller follows, whether the CLI's `task add`, `release` and `reassign` or the dashboard.

    add_task(session, "title", sender=who, to=None)          ->  Changed (the new task's id)
    release_task(session, "t-1a", sender=who, reason=None)    ->  Changed, or SessionError (nothing written)
    reassign_task(session, "t-1a", "main-3f", sender=HUMAN)   ->  Changed (`seq` None: the agent held it already)

Each change is checked on the projection before anything is written (roster.py's rules), then again in the journal
as of its own record: a change that came in between (the task was finished, or given to another agent) makes the
fold count this one for nothing, and the caller is told so with a SessionError naming what the task became. The
holder of a task released or reassigned by the human hears of it from its hook (`holder` in the event). Who may send
each change is the caller's to check (provenance.check_sender): only the human reassigns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import provenance
from .display import shown
from .errors import SessionError
from .keys import new_task_id
from .messaging import require_text
from .roster import (
    agent_label,
    check_reassign,
    check_release,
    find_task,
    fold_through,
    live_agent,
    task_label,
)
from .session import Session

if TYPE_CHECKING:
    from .journal.writer import Position
    from .projector import State
    from .shapes.state import Task


@dataclass(frozen=True)
class Changed:
    """A task change that took effect: the task's id, the change's record (None when nothing was written because
    the task was as asked already), and what a person reads about it."""

    task: str
    seq: int | None
    text: str


def add_task(session: Session, title: str, *, sender: str, to: str | None = None) -> Changed:
    """Add a task titled `title` (stripped) under a new id, owned by the live agent `to` names when given."""
    require_text(title, "task title", 'say what is to be done: popkit-power task add "title"')
    state, _ = session.projection()
    data: dict[str, Any] = {"task": unused_task_id(state), "title": title.strip()}
    if to is not None:
        data["owner"] = live_agent(state, to, "it cannot take a task")
    appended = session.publish("task.created", data, sender=sender)
    owner = f", owned by {agent_label(state, data['owner'])}" if to is not None else ""
    return Changed(data["task"], appended.first_seq, f"task {data['task']} added{owner} (seq {appended.first_seq})")


def unused_task_id(state: State) -> str:
    """A new task id that no task of the session has (ids are short, so one may be drawn twice)."""
    for _attempt in range(100):
        task_id = new_task_id()
        if task_id not in state["tasks"] and task_id not in state["finished_ids"]:
            return task_id
    raise SessionError("could not draw an unused task id in 100 tries")  # pragma: no cover - 16.7 million ids


def release_task(session: Session, given: str, *, sender: str, reason: str | None = None) -> Changed:
    """Give the task `given` names back: open again for any agent to claim. Only its owner, or the human."""
    if reason is not None:
        require_text(reason, "reason", "say why, or leave --reason out")
    state, position = session.projection()
    task_id = find_task(state, given)
    check_release(state, task_id, sender)
    holder = state["tasks"][task_id]["owner"]  # told at its next call, or woken (hook/inbox.py)
    data = {"task": task_id, **({"holder": holder} if holder else {}),
            **({"reason": reason} if reason is not None else {})}
    appended = session.publish("task.released", data, sender=sender)
    _counted(session, state, position, appended.first_seq, task_id, "released",
             lambda task: task is not None and task["owner"] is None)
    return Changed(task_id, appended.first_seq,
                   f"task {shown(task_id)} released: open for any agent to claim (seq {appended.first_seq})")


def reassign_task(session: Session, given: str, agent: str, *, sender: str) -> Changed:
    """The human's override: give the task `given` names to the live agent `agent` names, whoever holds it now. The
    event records where it was given (provenance.evidence), as an answer to an approval does."""
    state, position = session.projection()
    task_id = find_task(state, given)
    target = live_agent(state, agent, "it cannot take the task")
    label = agent_label(state, target)
    if check_reassign(state, task_id, target):
        return Changed(task_id, None, f"task {shown(task_id)} is already {label}'s "
                                      f"({state['tasks'][task_id]['status']}); nothing written")
    before = state["tasks"][task_id]
    was = f"from {agent_label(state, before['owner'])}" if before["owner"] else f"was {before.get('status')}"
    data = {"task": task_id, "agent": target, "evidence": provenance.evidence(os.environ),
            **({"holder": before["owner"]} if before.get("owner") else {})}
    appended = session.publish("task.assigned", data, sender=sender)
    _counted(session, state, position, appended.first_seq, task_id, "reassigned",
             lambda task: task is not None and task["owner"] == target)
    return Changed(task_id, appended.first_seq,
                   f"task {shown(task_id)} reassigned to {label} ({was}; seq {appended.first_seq})")


def _counted(session: Session, state: State, position: Position, seq: int, task_id: str, done: str,
             took: Callable[[Task | None], bool]) -> None:
    """Nothing when the task change at `seq` took effect as of its own record (`took` of the task then); SessionError
    saying what the task had become otherwise: something came in between the look and the append (the task was
    finished, or given to another agent), and the fold counts the change for nothing, as a late claim."""
    after = fold_through(session, state, position, seq)
    if took(after["tasks"].get(task_id)):
        return
    raise SessionError(f"task {shown(task_id)} was not {done}: just before your change (seq {seq}, which counts for "
                       f"nothing) it became {task_label(after, task_id)}")
