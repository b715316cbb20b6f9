"""Commands on a session as a whole: start, stop, status, verify, replay."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

import click
import orjson

from ..coordinator.daemon import stop as stop_coordinator
from ..home import active_session as active_session_id
from ..home import list_sessions
from ..journal import Position
from ..session import start_session, stop_session
from ..status import StatusReader, no_session
from ..verify import verify_journal
from .common import active_session, power_dir, sender_for, sender_option, session_to_read
from .render import event_line, make_console, status_output, verify_text, watch_status


@click.command()
@click.argument("objective")
@sender_option
def start(objective: str, sender: str | None) -> None:
    """Open a power session for OBJECTIVE and make it the active one."""
    session = start_session(power_dir(), objective, sender=sender_for("session.opened", sender))
    click.echo(f"Power Mode on: session {session.id}")
    click.echo(f"objective: {objective.strip()}")
    click.echo(f"journal:   {session.journal.directory} (file journal)")


@click.command()
@sender_option
def stop(sender: str | None) -> None:
    """Stop the session's coordinator, close the session with a summary of what was done, and turn Power Mode off."""
    who = sender_for("session.closed", sender)
    stopped = stop_coordinator(active_session())
    if stopped is not None:
        click.echo(f"coordinator stopped (pid {stopped})")
    session = stop_session(power_dir(), sender=who)
    click.echo(f"Power Mode off: session {session.id} closed")


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with --watch, one per line).")
@click.option("--watch", is_flag=True, help="Keep showing it, redrawn in place, until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, metavar="SECONDS",
              help="With --watch: how often to read the journal again.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="With --watch: stop after N refreshes.")
def status(session_id: str | None, as_json: bool, watch: bool, interval: float, count: int | None) -> None:
    """Show the session (the active one by default): its coordinator, agents, tasks, approvals and insights.

    Colour on a terminal, plain text elsewhere, --json for scripts; --watch keeps it on screen."""
    frames = _status_frames(session_id, count=count if watch else 1, interval=interval)
    if not watch:
        info = next(frames)
        # colour codes are there only if the console found a terminal; click would strip them from a non-tty
        click.echo(orjson.dumps(info).decode() if as_json else status_output(make_console(), info),
                   nl=as_json, color=True)
        return
    try:
        if as_json:
            for info in frames:
                click.echo(orjson.dumps(info).decode())
        else:
            watch_status(make_console(), frames,
                                note=f"every {interval:g} s, Ctrl-C to stop" if count is None else None)
    except KeyboardInterrupt:  # Ctrl-C is how a person ends a watch: not an error
        pass


def _status_frames(session_id: str | None, *, count: int | None, interval: float) -> Iterator[dict[str, Any]]:
    """The status `count` times (forever when None), `interval` seconds apart. Without SESSION each read follows the
    active session (else the newest), so a watch goes on across stop and start; each read folds only the events
    appended since the one before (status.StatusReader)."""
    reader: StatusReader | None = None
    shown = 0
    while True:
        home = power_dir()
        if not session_id and not list_sessions(home):
            info = no_session(home)
        else:
            wanted = session_id or active_session_id(home) or list_sessions(home)[-1]
            if reader is None or reader.session.id != wanted:
                if reader is not None:
                    reader.session.journal.close()
                reader = StatusReader(session_to_read(session_id or wanted))
            info = reader.read()
        yield info
        shown += 1
        if count is not None and shown >= count:
            return
        time.sleep(interval)


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
