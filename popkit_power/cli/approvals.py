"""Asking the human and the human's answer: ask, approve, deny.

Approvals are answered by the human only, from outside every agent's session (provenance.py decides), and an answer
records where it was given. The protocols (the request, the wait for its answer, the one answer that counts) are
approvals.py's: these commands parse, check who sends, call them, and print.
"""

from __future__ import annotations

import sys

import click

from ..approvals import GRANTED, answer_request, check_question, request_approval, wait_for_answer
from ..exit_codes import FAILED, OK, TIMED_OUT
from .common import active_session, sender_for, sender_option

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
    check_question(question)  # before who sends is looked at: the first thing to fix is said first
    who = sender_for("approval.requested", sender)
    session = active_session()
    requested = request_approval(session, question, sender=who, options=options)
    request = requested.request
    click.echo(f"approval requested: {request} (seq {requested.seq}); "
               f"the human answers with: popkit-power approve {request}  or  popkit-power deny {request}")
    if not wait:
        return
    # exit 0 when granted, 1 when denied, 3 after `timeout` seconds (the first answer counts, as everywhere)
    answer = wait_for_answer(session, request, after=requested.end, timeout=timeout)
    if answer is None:
        click.echo(f"no answer within {timeout:g} s; request {request} stays open, and its answer will reach "
                   f"you after a later tool call", err=True)
        sys.exit(TIMED_OUT)
    note = f": {answer.note}" if answer.note else ""
    click.echo(f"{'GRANTED' if answer.granted else 'DENIED'} by the human{note}")
    sys.exit(OK if answer.granted else FAILED)


def _answer(event_type: str, given: str, note: str | None) -> None:
    who = sender_for(event_type, "human", request=given)
    answered = answer_request(active_session(), given, granted=event_type == GRANTED, sender=who, note=note)
    click.echo(answered.text)


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
