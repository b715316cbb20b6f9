"""The task verbs: add a task, claim one, report its result, give it back, and the human's reassignment.

    task add "title" [--to AGENT]           a task.created with a new id (printed), owned by AGENT when given
    claim TASK                              take an open or orphaned task; the first claim in journal order wins
    done TASK --result "..." [--failed]     the task's result (task.completed), from its holder or the human
    result "..." [--task TASK] [--failed]   the same, for the sender's current task when no TASK is named
    release TASK [--reason "..."]           its owner (or the human) gives it back: open again for anyone to claim
    reassign TASK AGENT                     the human's override (task.assigned by the human), refused inside an
                                            agent's session like the answers to approvals

TASK is a task's id or a unique start of it, AGENT an agent's key or name or a unique start of either, in any case
(roster.py). A task that does not exist, is finished, or is held by another agent (or, for a result, by nobody) is
refused in one line that names the fix, and nothing is written. What the fold would count for nothing is refused:
each change is checked again in the journal as of its own record (a change that came in between is reported, exit
2), and a result, with machines replicating, as of its place in the server's order. The holder of a task released
or reassigned by the human hears of it from its hook (`holder` in the event: hook/inbox.py). The claim itself, and
the wait for the server's place of a change, are claims.py's, which programs call as this command does.
"""

from __future__ import annotations

import click

from ..claims import claim_task, wait_for_place
from ..display import shown
from ..errors import SessionError
from ..journal.lease import held
from ..journal.writer import Position
from ..keys import HUMAN, REPLICATOR_LEASE, new_result_task_id
from ..messaging import require_text
from ..projector import FINISHED_TASK_STATES, State
from ..roster import check_result, find_task
from ..session import Session, why_not_finished
from ..task_changes import add_task, reassign_task, release_task
from .common import active_session, sender_for, sender_option
from .help import HelpGroup


@click.group(cls=HelpGroup)
def task() -> None:
    """Add tasks for agents to take (then: claim, done, release, reassign)."""


@task.command("add")
@click.argument("title")
@click.option("--to", "to", metavar="AGENT", help="The agent that owns it from the start: its key or name, or a unique "
              "start of either, in any case; it must not have left or been lost. Without it, any agent may claim it.")
@sender_option
def add(title: str, to: str | None, sender: str | None) -> None:
    """Add a task titled TITLE and print its id. Only the id is printed, for scripts: T=$(popkit-power task add ...)."""
    require_text(title, "task title", 'say what is to be done: popkit-power task add "title"')
    who = sender_for("task.created", sender)
    click.echo(add_task(active_session(), title, sender=who, to=to).task)


@click.command()
@click.argument("task_name", metavar="TASK")
@sender_option
def claim(task_name: str, sender: str | None) -> None:
    """Take TASK, an open or orphaned task. The first claim in the journal wins: a later claimant exits 2 naming the
    winner. TASK is its id or a unique start of it, in any case."""
    who = sender_for("task.claimed", sender)
    session = active_session()
    claimed = claim_task(session, task_name, sender=who, on_unconfirmed=lambda: _unconfirmed(session))
    if claimed.already:
        click.echo(f"task {shown(claimed.task)} is already yours ({claimed.status}); nothing written")
        return
    click.echo(f"task {shown(claimed.task)} is yours (seq {claimed.seq})")


def _unconfirmed(session: Session) -> None:
    """Said before the outcome when the server's order did not come back in time (claims.claim_task)."""
    click.echo(f"the other machines have not confirmed the claim within "
               f"{session.config.replication_timeout_seconds:g} s (is the replicator behind? see status); "
               f"if another machine's claim reached the server first, the task goes there and you hear so", err=True)


@click.command()
@click.argument("task_name", metavar="TASK")
@click.option("--result", "text", metavar="TEXT", help="What was done, or with --failed why it failed (required).")
@click.option("--failed", is_flag=True, help="The task failed; --result says why.")
@sender_option
def done(task_name: str, text: str | None, failed: bool, sender: str | None) -> None:
    """Report TASK finished, with its result. Only its holder (or the human) reports it: refused, exit 2, naming who
    holds it, for a task that does not exist, is finished already, is held by another agent, or is held by nobody
    (claim it first), as for a task released or reassigned away from you. TASK is its id or a unique start of it,
    in any case."""
    text = require_text(text or "", "result", 'say what was done: popkit-power done TASK --result "what was done"')
    who = sender_for("task.completed", sender)
    session = active_session()
    state, position = session.projection()
    task_id = find_task(state, task_name)
    check_result(state, task_id, who)
    _complete(session, (state, position), task_id, text, failed, who)


@click.command()
@click.argument("text")
@click.option("--task", "task_name", metavar="TASK", help="The task this is the result of: its id or a unique start "
              "of it, in any case (default: the sender's current task, else a new one).")
@click.option("--failed", is_flag=True, help="The task failed; TEXT says why.")
@sender_option
def result(text: str, task_name: str | None, failed: bool, sender: str | None) -> None:
    """Report the result of a task (TEXT must say something); a named task is checked as `done` checks it."""
    require_text(text, "result", 'say what was done: popkit-power result "what was done"')
    who = sender_for("task.completed", sender)
    session = active_session()
    state, position = session.projection()
    if task_name is None:
        task_id = _current_task(state, who) or new_result_task_id()
    else:
        task_id = find_task(state, task_name)
        check_result(state, task_id, who)
    _complete(session, (state, position), task_id, text, failed, who)


def _complete(session: Session, seen: tuple[State, Position], task_id: str, text: str, failed: bool,
              who: str) -> None:
    """Append the result (refused when, as of its own record, `who` does not hold the task: Session.complete_task).
    With machines replicating, wait for the server's place of it: when a change of hands placed before it took the
    task away, the fold ignores the result on every machine, and the command says so, naming who holds it."""
    position = seen[1].copy()
    appended = session.complete_task(task_id, text, sender=who, ok=not failed, seen=seen)
    if held(session.dir, REPLICATOR_LEASE):
        timeout = session.config.replication_timeout_seconds
        if wait_for_place(session, position, appended.first_seq, timeout=timeout) is None:
            click.echo(f"the other machines have not confirmed the result within {timeout:g} s (is the replicator "
                       f"behind? see status); if the task changed hands on another machine first, your result counts "
                       f"for nothing, and `status` shows who holds it", err=True)
        else:  # whatever is placed after it comes after it: the verdict as of now is the verdict as of its place
            state, _ = session.projection()
            if task_id not in state["finished"] or state["finished"][task_id]["completed_by"] != who:
                raise SessionError(f"task {shown(task_id)} was not recorded as done: in the order of all machines' "
                                   f"task changes, {why_not_finished(state, task_id)} (your result, seq "
                                   f"{appended.first_seq}, counts for nothing)")
    click.echo(f"result recorded for task {shown(task_id)}: {'failed' if failed else 'completed'} "
               f"(seq {appended.first_seq})")


def _current_task(state: State, who: str) -> str | None:
    """The task `who` works on, if it still holds it and it is not finished."""
    current = state["agents"][who]["current_task"] if who in state["agents"] else None
    task = state["tasks"].get(current) if isinstance(current, str) else None
    if task is None or task.get("owner") != who or task.get("status") in FINISHED_TASK_STATES:
        return None
    return current


@click.command()
@click.argument("task_name", metavar="TASK")
@click.option("--reason", metavar="TEXT", help="Why, for whoever takes it next.")
@sender_option
def release(task_name: str, reason: str | None, sender: str | None) -> None:
    """Give TASK back: it is open again for any agent to claim. Only its owner, or the human, releases a task. TASK is
    its id or a unique start of it, in any case."""
    if reason is not None:
        require_text(reason, "reason", "say why, or leave --reason out")
    who = sender_for("task.released", sender)
    click.echo(release_task(active_session(), task_name, sender=who, reason=reason).text)


@click.command()
@click.argument("task_name", metavar="TASK")
@click.argument("agent")
def reassign(task_name: str, agent: str) -> None:
    """The human's override: give TASK to AGENT, whoever holds it now (an orphaned, open or claimed task alike). Only
    from a terminal outside Claude Code (refused inside an agent's session); the reassignment records where it was
    given. TASK is its id or a unique start of it; AGENT its key or name or a unique start of either, in any case."""
    who = sender_for("task.assigned", HUMAN)
    click.echo(reassign_task(active_session(), task_name, agent, sender=who).text)


COMMANDS = (task, claim, done, result, release, reassign)
