"""Commands on a session as a whole: start, stop, status, verify, replay."""

from __future__ import annotations

import sys

import click
import orjson

from ..config import Config, load_config
from ..errors import PowerModeError, SessionError
from ..home import active_session as active_session_id
from ..home import list_sessions
from ..journal import Position
from ..roster import quoted, shell_word
from ..session import Session, start_session, stop_session
from ..status import no_session, session_status
from ..verify import verify_journal
from .common import os_problem, power_dir, sender_for, sender_option, session_to_read
from .render import event_line, no_session_text, status_text, verify_text


@click.command()
@click.argument("objective")
@click.option("--switch", is_flag=True, help="If another session is active, close it once the new one is open (its "
              "journal records the switch); without this, start is refused while a session is active.")
@sender_option
def start(objective: str, switch: bool, sender: str | None) -> None:
    """Open a power session for OBJECTIVE and make it the active one. Refused while another session is active: stop
    that one first (popkit-power stop), or switch in one step with --switch."""
    home = power_dir()
    who = sender_for("session.opened", sender)
    config = load_config(home)  # a bad config.json is named before anything else
    previous_id = active_session_id(home)
    if previous_id is not None and not switch and objective.strip():
        again = shell_word(objective, '"objective"')
        raise SessionError(f"session {previous_id}{_objective_of(home, previous_id, config)} is active; stop it "
                           f"first with: popkit-power stop, or close it and start this one in one step with: "
                           f"popkit-power start --switch {again}")
    # Opened before anything is written: a session that cannot be closed (its journal gone) is not switched away from.
    previous = Session(home, previous_id, config) if previous_id is not None else None
    # All or nothing: a start that fails leaves the previous session active and writes nothing into it.
    session = start_session(home, objective, sender=who, config=config)
    click.echo(f"Power Mode on: session {session.id}")
    click.echo(f"objective: {objective.strip()}")
    click.echo(f"journal:   {session.journal.directory} (file journal)")
    if previous is not None:
        try:
            previous.publish("session.closed", {"reason": f"switched to session {session.id}"}, sender=who)
        except (OSError, PowerModeError) as error:
            problem = os_problem(error, home) if isinstance(error, OSError) else str(error)
            raise SessionError(f"session {session.id} is active, but the previous session {previous.id} could not "
                               f"be recorded as closed: {problem}") from error
        click.echo(f"switched from session {previous.id} (closed)")


def _objective_of(home: str, session_id: str, config: Config) -> str:
    """` ("objective")` of a session, from its first record, for a message; "" when it cannot be read."""
    try:
        first = next(iter(Session(home, session_id, config, read_only=True).journal.reader()), None)
    except (OSError, PowerModeError):
        return ""
    objective = ((first or {}).get("data") or {}).get("objective") if isinstance(first, dict) else None
    return f" ({quoted(objective)})" if isinstance(objective, str) else ""


@click.command()
@sender_option
def stop(sender: str | None) -> None:
    """Close the active session and turn Power Mode off."""
    session = stop_session(power_dir(), sender=sender_for("session.closed", sender))
    click.echo(f"Power Mode off: session {session.id} closed")


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(session_id: str | None, as_json: bool) -> None:
    """Show the session (the active one by default) and its projected state."""
    if not session_id and not list_sessions(power_dir()):
        info = no_session(power_dir())
        click.echo(orjson.dumps(info).decode() if as_json else no_session_text(info))
        return
    session = session_to_read(session_id)
    info = session_status(session, *session.projection())
    click.echo(orjson.dumps(info).decode() if as_json else status_text(info))


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def verify(session_id: str | None, as_json: bool) -> None:
    """Check a journal's records, seqs and checksums; exit 1 if anything is damaged."""
    session = session_to_read(session_id)
    report = verify_journal(session.journal)
    report["session"] = session.id
    click.echo(orjson.dumps(report).decode() if as_json else verify_text(report))
    if not report["ok"]:
        sys.exit(1)


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, help="Start at this seq.")
@click.option("--to-seq", type=click.IntRange(min=1), help="Stop after this seq.")
def replay(session_id: str | None, as_json: bool, from_seq: int, to_seq: int | None) -> None:
    """Print a session's events in journal order."""
    session = session_to_read(session_id)
    # Segments are named by their first seq, so reading starts in the segment that holds FROM_SEQ.
    first = max((segment for segment in session.journal.segments() if segment <= from_seq), default=1)
    for event in session.journal.reader(Position(first, 0, first)):
        seq = event.get("seq", 0)
        if seq < from_seq:
            continue
        if to_seq is not None and seq > to_seq:
            break
        click.echo(orjson.dumps(event).decode() if as_json else event_line(event))


COMMANDS = (start, stop, status, verify, replay)
