"""The `popkit-power` command: a thin layer over the library.

Each command parses its arguments, calls one library function, prints the result, and turns the library's errors
(PowerModeError) and the file system's (OSError: a full disk, a missing permission, a damaged power directory) into
one clear line on stderr and exit code 2. Damage found by `verify` exits 1. Who may send what as whom is decided by
`provenance`, through `sender_for`, for every command that writes.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from .. import provenance
from ..errors import PowerModeError, ProtocolError, SessionError
from ..home import find_power_dir, list_sessions
from ..journal import Appended, Position
from ..keys import new_request_id
from ..protocol import CHANNELS, DEFAULT_TYPE_OF_CHANNEL, channel_of
from ..session import Session, start_session, stop_session
from ..verify import verify_journal
from . import render

F = TypeVar("F", bound=Callable[..., Any])
ENV_AGENT = "POPKIT_POWER_AGENT"


def handle_errors(command: F) -> F:
    """Print an error as one line and exit 2, instead of a traceback: a PowerModeError as it is, an error of the file
    system (a full disk, a missing permission, a file where a directory belongs) with its path and the problem."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PowerModeError as error:
            problem = str(error)
        except UnicodeEncodeError as error:  # bytes that are not UTF-8 (surrogate-escaped by Python)
            bad = error.object[error.start:error.end].encode("utf-8", "surrogateescape")
            problem = (f"an argument or environment value is not valid UTF-8 text (bytes {bad!r}); "
                       f"nothing was written")
        except UnicodeDecodeError as error:  # a file under the power directory that is not text
            problem = (f"a file in {_power_dir_or_here()} is not UTF-8 text ({error.reason} at byte {error.start}); "
                       f"it is damaged or was not written by popkit-power")
        except OSError as error:
            problem = os_problem(error)
        click.echo(f"popkit-power: {problem}", err=True)
        sys.exit(2)

    return wrapper  # type: ignore[return-value]


def os_problem(error: OSError) -> str:
    """One line for an error of the file system: the path and the problem with its errno name, such as
    "/p/active: Is a directory (EISDIR)"; the power directory stands in for a path the error does not name."""
    code = errno.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    problem = f"{error.strerror or error}{f' ({code})' if code else ''}"
    if error.filename is None:
        return f"{problem}, in {_power_dir_or_here()}"
    where = os.fsdecode(error.filename) if isinstance(error.filename, (str, bytes)) else str(error.filename)
    if error.filename2 is not None:
        where += f" -> {os.fsdecode(error.filename2)}"
    return f"{where}: {problem}"


def _power_dir_or_here() -> str:
    context = click.get_current_context(silent=True)
    obj = context.find_root().obj if context is not None else None
    return str(obj["power_dir"]) if isinstance(obj, dict) and "power_dir" in obj else os.getcwd()


def sender_for(event_type: str, chosen: str | None, *, request: str | None = None) -> str:
    """Who sends `event_type`: `chosen` (--as), else $POPKIT_POWER_AGENT, else the Claude Code session whose Bash
    tool runs this command (`<session id>:main`), else a person at a shell ("human").

    Raises SessionError when this process may not send it as that (provenance.check_sender): only the human answers
    approvals, and nobody inside an agent's session speaks as the human, the coordinator, or another session's agent.
    """
    named = chosen or os.environ.get(ENV_AGENT) or None
    claude_session = os.environ.get("CLAUDE_CODE_SESSION_ID")
    sender = named or (f"{claude_session}:main" if claude_session else provenance.HUMAN)
    provenance.check_sender(sender, event_type, os.environ, named=named is not None, request=request)
    return sender


def publish_event(session: Session, event_type: str, data: dict[str, Any], sender: str, *, to: str | None = None,
                  channel: str | None = None) -> Appended:
    """Publish one event from the command line; an answer to an approval carries the evidence of where this command
    ran, replacing any the caller put there."""
    if event_type in provenance.HUMAN_ONLY_TYPES:
        data = {**data, "evidence": provenance.evidence(os.environ)}
    return session.publish(event_type, data, sender=sender, to=to, channel=channel)


def power_dir_of(ctx: click.Context) -> str:
    home: str = ctx.obj["power_dir"]
    return home


def resolve_session(ctx: click.Context, session_id: str | None) -> Session:
    """The named session, else the active one, else the newest one."""
    power_dir = power_dir_of(ctx)
    if session_id:
        return Session(power_dir, session_id)
    try:
        return Session.active(power_dir)
    except PowerModeError:
        sessions = list_sessions(power_dir)
        if not sessions:
            raise
        return Session(power_dir, sessions[-1])


sender_option = click.option("--as", "sender", metavar="SENDER", help="Send as this agent or person "
                             "(default: $POPKIT_POWER_AGENT, the Claude Code session, or 'human'); inside an "
                             "agent's session only an agent of that session.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", "home", metavar="DIR", envvar="POPKIT_POWER_HOME",
              help="The power directory (default: $POPKIT_POWER_HOME, else <git common dir>/popkit-power, "
                   "else ./.popkit-power).")
@click.version_option(package_name="popkit-power")
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Power Mode for Claude Code: many agents, one journal."""
    ctx.ensure_object(dict)
    ctx.obj["power_dir"] = os.path.abspath(home) if home else find_power_dir()


@main.command()
@click.argument("objective")
@sender_option
@click.pass_context
@handle_errors
def start(ctx: click.Context, objective: str, sender: str | None) -> None:
    """Open a power session for OBJECTIVE and make it the active one."""
    session = start_session(power_dir_of(ctx), objective, sender=sender_for("session.opened", sender))
    click.echo(f"Power Mode on: session {session.id}")
    click.echo(f"objective: {objective.strip()}")
    click.echo(f"journal:   {session.journal.directory} (file journal)")


@main.command()
@sender_option
@click.pass_context
@handle_errors
def stop(ctx: click.Context, sender: str | None) -> None:
    """Close the active session and turn Power Mode off."""
    session = stop_session(power_dir_of(ctx), sender=sender_for("session.closed", sender))
    click.echo(f"Power Mode off: session {session.id} closed")


@main.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
@handle_errors
def status(ctx: click.Context, session_id: str | None, as_json: bool) -> None:
    """Show the session (the active one by default) and its projected state."""
    power_dir = power_dir_of(ctx)
    if not session_id and not list_sessions(power_dir):
        summary: dict[str, Any] = {"power_dir": power_dir, "active": False, "session": None, "mode": render.mode()}
        click.echo(orjson.dumps(summary).decode() if as_json else render.no_session(summary))
        return
    session = resolve_session(ctx, session_id)
    state, position = session.projection()
    summary = render.summary(session, state, position)
    click.echo(orjson.dumps(summary).decode() if as_json else render.status_text(summary))


@main.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
@handle_errors
def verify(ctx: click.Context, session_id: str | None, as_json: bool) -> None:
    """Check a journal's records, seqs and checksums; exit 1 if anything is damaged."""
    session = resolve_session(ctx, session_id)
    report = verify_journal(session.journal)
    report["session"] = session.id
    click.echo(orjson.dumps(report).decode() if as_json else render.verify_text(report))
    if not report["ok"]:
        sys.exit(1)


@main.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, as stored.")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, help="Start at this seq.")
@click.option("--to-seq", type=click.IntRange(min=1), help="Stop after this seq.")
@click.pass_context
@handle_errors
def replay(ctx: click.Context, session_id: str | None, as_json: bool, from_seq: int, to_seq: int | None) -> None:
    """Print a session's events in journal order."""
    session = resolve_session(ctx, session_id)
    # Segments are named by their first seq, so reading starts in the segment that holds FROM_SEQ.
    start = max((segment for segment in session.journal.segments() if segment <= from_seq), default=1)
    for event in session.journal.reader(Position(start, 0, start)):
        seq = event.get("seq", 0)
        if seq < from_seq:
            continue
        if to_seq is not None and seq > to_seq:
            break
        click.echo(orjson.dumps(event).decode() if as_json else render.event_line(event))


@main.command()
@click.argument("channel", type=click.Choice(CHANNELS))
@click.argument("message")
@click.option("--type", "event_type", metavar="TYPE", help="The event type (default: the channel's usual one).")
@click.option("--to", "to", metavar="AGENT", help="Address one agent (a direct message).")
@sender_option
@click.pass_context
@handle_errors
def publish(ctx: click.Context, channel: str, message: str, event_type: str | None, to: str | None,
            sender: str | None) -> None:
    """Append one event on CHANNEL to the active session and print its seq.

    MESSAGE is the event's text, or its whole `data` when it is a JSON object.
    """
    event_type = event_type or ("message.direct" if to and channel == "broadcast" else DEFAULT_TYPE_OF_CHANNEL[channel])
    known_channel = channel_of(event_type)
    if known_channel is not None and known_channel != channel:
        raise ProtocolError(f"type {event_type!r} belongs on channel {known_channel!r}, not {channel!r}")
    data = message_data(event_type, message)
    request = data.get("request")
    who = sender_for(event_type, sender, request=request if isinstance(request, str) else None)
    session = Session.active(power_dir_of(ctx))
    if to is not None:
        from .agents import check_agent_name, resolve_agent

        check_agent_name(to)
        try:  # a name or prefix of one agent becomes the key its inbox matches; anything else is written as given
            to = resolve_agent(session, to)
        except SessionError:
            pass
    appended = publish_event(session, event_type, data, who, to=to, channel=channel)
    click.echo(appended.first_seq)


def message_data(event_type: str, message: str) -> dict[str, Any]:
    """The `data` of an event published from the shell: a JSON object as given, else the text in the type's field."""
    if message.lstrip().startswith("{"):
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError as error:
            raise ProtocolError(f"MESSAGE starts with '{{' but is not a JSON object: {error}") from None
        if isinstance(data, dict):
            return data
    if event_type == "approval.requested":
        return {"request": new_request_id(), "question": message}
    if event_type == "task.completed":
        raise ProtocolError("a result needs its task: pass MESSAGE as a JSON object like "
                            "'{\"task\": \"t1\", \"result\": \"...\"}'")
    return {"text": message}


from . import agents as _agents  # noqa: E402  - the verbs agents use (insight, send, broadcast, ask, ...)

_agents.register(main)
