"""Asking the human and the human's answer: ask, approve, deny.

Approvals are answered by the human only, from outside every agent's session (provenance.py decides), and an answer
records where it was given.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from ..errors import SessionError
from ..follow import JournalWatch
from ..journal.writer import Position
from ..keys import HUMAN, new_request_id
from ..protocol import APPROVAL_ANSWERS
from ..roster import fold_through
from ..session import Session
from .common import active_session, publish_event, sender_for, sender_option

if TYPE_CHECKING:
    from ..fold.shapes import Approval

WAIT_SECONDS = 110.0


@click.command()
@click.argument("question")
@click.option("--option", "options", multiple=True, help="A possible answer (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the answer: exit 0 when granted, 1 when denied.")
@click.option("--timeout", type=click.FloatRange(min=0), default=WAIT_SECONDS, show_default=True,
              help="With --wait: give up after this many seconds (exit 3; the request stays open). The default stays "
                   "under Claude Code's two-minute limit for one Bash call.")
@sender_option
def ask(question: str, options: tuple[str, ...], wait: bool, timeout: float, sender: str | None) -> None:
    """Ask the human to approve something; the answer reaches the asking agent after a later tool call, or at once
    with --wait."""
    if not question.strip():
        raise SessionError("the question is empty: say what the human should approve")
    who = sender_for("approval.requested", sender)
    request = new_request_id()
    data: dict[str, Any] = {"request": request, "question": question}
    if options:
        data["options"] = list(options)
    session = active_session()
    appended = session.publish("approval.requested", data, sender=who)
    click.echo(f"approval requested: {request} (seq {appended.first_seq}); "
               f"the human answers with: popkit-power approve {request}  or  popkit-power deny {request}")
    if wait:
        _wait_for_answer(session, request, appended.end, timeout)


def _wait_for_answer(session: Session, request: str, after: Position, timeout: float) -> None:
    """Follow the journal from `after` until the human answers `request` (the first answer counts, as everywhere):
    exit 0 when granted, 1 when denied, 3 after `timeout` seconds."""
    watch = JournalWatch(session.journal.directory)
    reader = session.journal.reader(after)
    deadline = time.monotonic() + timeout
    try:
        while True:
            for event in reader:
                data = event.get("data") or {}
                if event.get("type") in APPROVAL_ANSWERS and event.get("from") == HUMAN \
                        and data.get("request") == request:
                    granted = event["type"] == "approval.granted"
                    note = f": {data['note']}" if data.get("note") else ""
                    click.echo(f"{'GRANTED' if granted else 'DENIED'} by the human{note}")
                    sys.exit(0 if granted else 1)
            left = deadline - time.monotonic()
            if left <= 0:
                click.echo(f"no answer within {timeout:g} s; request {request} stays open, and its answer will reach "
                           f"you after a later tool call", err=True)
                sys.exit(3)
            watch.wait(min(left, 1.0))
    finally:
        watch.close()


def _answer(event_type: str, given: str, note: str | None) -> None:
    who = sender_for(event_type, "human", request=given)
    session = active_session()
    state, position = session.projection()
    approvals = {**state["answered"], **state["approvals"]}  # pending and recently answered: a second answer is named
    request = _request_named(given, approvals, session.id)
    if approvals[request].get("status") != "pending":
        raise SessionError(_already_answered(request, approvals[request]))
    data = {"request": request, **({"note": note} if note else {})}
    appended = publish_event(session, event_type, data, who)
    # Two answers written at once both passed the check above; the first in the journal is the answer (the fold's
    # rule), so the command whose answer came second learns it lost, as a late claimant does.
    answered: Approval | dict[str, Any] = fold_through(session, state, position, appended.first_seq)["answered"].get(
        request) or {}
    if answered.get("answer_seq") != appended.first_seq:
        raise SessionError(f"your answer (seq {appended.first_seq}) does not count: "
                           f"{_already_answered(request, answered)}")
    click.echo(f"{event_type.split('.')[1]} {request} (seq {appended.first_seq})")


def _already_answered(request: str, approval: Approval | dict[str, Any]) -> str:
    seq = approval.get("answer_seq")
    at = f" (seq {seq})" if isinstance(seq, int) else ""
    return (f"request {request} was already {approval.get('status')} by {approval.get('by')} at "
            f"{approval.get('answered')}{at}; an approval is answered once (ask again for a new one)")


def _request_named(given: str, approvals: dict[str, Any], session_id: str) -> str:
    """The request id `given` names: the id itself, or the only one it starts (ids are long to type)."""
    if given in approvals:
        return given
    matches = [key for key in approvals if given and key.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    pending = [key for key, value in approvals.items() if value.get("status") == "pending"]
    problem = (f"{given!r} starts several approval requests ({', '.join(matches)})" if matches
               else f"no approval request {given!r} in session {session_id}")
    raise SessionError(f"{problem}; pending: {', '.join(pending) or 'none'}")


@click.command(short_help="Grant an approval REQUEST, as the human, from a terminal outside Claude Code.")
@click.argument("request")
@click.option("--note", help="A note for the agent.")
def approve(request: str, note: str | None) -> None:
    """Grant an approval REQUEST (its id, or a unique start of it), as the human: from a terminal outside Claude Code
    (refused inside an agent's session), once (a request already answered is refused)."""
    _answer("approval.granted", request, note)


@click.command(short_help="Deny an approval REQUEST, as the human, from a terminal outside Claude Code.")
@click.argument("request")
@click.option("--note", help="Why, for the agent.")
def deny(request: str, note: str | None) -> None:
    """Deny an approval REQUEST (its id, or a unique start of it), as the human: from a terminal outside Claude Code
    (refused inside an agent's session), once (a request already answered is refused)."""
    _answer("approval.denied", request, note)


COMMANDS = (ask, approve, deny)
