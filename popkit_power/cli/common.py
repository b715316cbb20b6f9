"""What the `popkit-power` commands share: the power directory and session they act on, who sends, text that must
say something (a message, a title, a result), and the one place where errors become one line on stderr and an exit
code (the codes: exit_codes.py). Every command imports this module, so it imports nothing only some commands need."""

from __future__ import annotations

import errno
import os
from typing import Any, NoReturn

import click

from .. import provenance
from ..config import Config
from ..errors import PowerModeError, SessionError
from ..exit_codes import exit_code_for
from ..home import active_session as active_session_id
from ..home import list_sessions
from ..journal.writer import Appended
from ..keys import HUMAN, agent_key
from ..session import Session
from .help import HelpGroup

ENV_AGENT = "POPKIT_POWER_AGENT"

sender_option = click.option("--as", "sender", metavar="SENDER", help="Send as this agent or person "
                             "(default: $POPKIT_POWER_AGENT, the Claude Code session, or 'human'); inside an "
                             "agent's session only an agent of that session.")


class PowerModeGroup(HelpGroup):
    """The command group that turns errors into one line on stderr and an exit code (exit_codes.exit_code_for: 2),
    for every command at once: a PowerModeError as it is, an error of the file system (a full disk, a missing
    permission, a file where a directory belongs) with its path and the problem, and text that is not UTF-8 with
    where it was met."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as error:  # the reader went away (`replay | head`): nothing more to say, to anyone
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.close(devnull)
            _exit(ctx, error)
        except PowerModeError as error:
            _exit(ctx, error, str(error))
        except UnicodeEncodeError as error:  # bytes that are not UTF-8 (surrogate-escaped by Python)
            bad = error.object[error.start:error.end].encode("utf-8", "surrogateescape")
            _exit(ctx, error, f"an argument or environment value is not valid UTF-8 text (bytes {bad!r}); nothing "
                              f"was written")
        except UnicodeDecodeError as error:  # a file under the power directory that is not text
            _exit(ctx, error, f"a file in {_power_dir_or_here(ctx)} is not UTF-8 text ({error.reason} at byte "
                              f"{error.start}); it is damaged or was not written by popkit-power")
        except OSError as error:
            _exit(ctx, error, os_problem(error, _power_dir_or_here(ctx)))


def _exit(ctx: click.Context, error: BaseException, problem: str | None = None) -> NoReturn:
    """End the command after `error`: `problem` as one line on stderr, and the exit code exit_codes gives it."""
    if problem is not None:
        click.echo(f"popkit-power: {problem}", err=True)
    ctx.exit(exit_code_for(error))


def os_problem(error: OSError, where_else: str) -> str:
    """One line for an error of the file system: the path and the problem with its errno name, such as
    "/p/active: Is a directory (EISDIR)"; `where_else` stands in for a path the error does not name."""
    code = errno.errorcode.get(error.errno) if isinstance(error.errno, int) else None
    problem = f"{error.strerror or error}{f' ({code})' if code else ''}"
    if error.filename is None:
        return f"{problem}, in {where_else}"
    where = os.fsdecode(error.filename) if isinstance(error.filename, (str, bytes)) else str(error.filename)
    if error.filename2 is not None:
        where += f" -> {os.fsdecode(error.filename2)}"
    return f"{where}: {problem}"


def _power_dir_or_here(ctx: click.Context) -> str:
    obj = ctx.find_root().obj
    return str(obj["power_dir"]) if isinstance(obj, dict) and "power_dir" in obj else os.getcwd()


def power_dir() -> str:
    """The power directory this invocation acts on (`--home`, else found from here)."""
    home: str = click.get_current_context().find_root().obj["power_dir"]
    return home


def active_session() -> Session:
    """The active session; SessionError when Power Mode is off."""
    return Session.active(power_dir())


def session_to_read(session_id: str | None, config: Config | None = None) -> Session:
    """The named session, else the active one, else the newest one, opened read-only (status, verify, replay
    create and write nothing, and work where they cannot write); with `config`, instead of config.json's."""
    home = power_dir()
    if not session_id:
        session_id = active_session_id(home)
        if session_id is None:
            sessions = list_sessions(home)
            if not sessions:
                raise SessionError(f"no sessions in {home}; start one with: popkit-power start \"objective\"")
            session_id = sessions[-1]
    return Session(home, session_id, config, read_only=True)


def sender_for(event_type: str, chosen: str | None, *, request: str | None = None) -> str:
    """Who sends `event_type`: `chosen` (--as), else $POPKIT_POWER_AGENT, else the Claude Code session whose Bash
    tool runs this command (`<session id>:main`), else a person at a shell ("human").

    Raises SessionError when this process may not send it as that (provenance.check_sender): only the human answers
    approvals, and nobody inside an agent's session speaks as the human, the coordinator, or another session's agent.
    """
    named = chosen or os.environ.get(ENV_AGENT) or None
    claude_session = os.environ.get("CLAUDE_CODE_SESSION_ID")
    sender = named or (agent_key(claude_session) if claude_session else HUMAN)
    provenance.check_sender(sender, event_type, os.environ, named=named is not None, request=request)
    return sender


def publish_event(session: Session, event_type: str, data: dict[str, Any], sender: str, *, to: str | None = None,
                  channel: str | None = None) -> Appended:
    """Publish one event from the command line (an event sent as the human carries the evidence of where this
    command ran: Session.append_events)."""
    return session.publish(event_type, data, sender=sender, to=to, channel=channel)
