"""`popkit-power-hook`: the Claude Code side of Power Mode, run once per hook event of every agent.

It reads one hook payload on stdin, appends what happened to the active session's journal, and answers with
`hookSpecificOutput.additionalContext` holding what is new for this agent (inbox.py). With no active session it
exits at once. It never breaks or stalls an agent: whatever goes wrong (bad JSON, an unknown event, a huge payload,
invalid UTF-8, a read-only or full disk) ends with exit 0, no output, and one line in `<power dir>/hook.log`.

Agent identity: the Claude Code session id plus `agent_id` for a subagent, `main` otherwise (`<session>:<agent>`).

It runs on every tool call, so it is budgeted at 2x `python -c pass` (1.2x with Power Mode off): this module imports
only what finds the power directory; the rest (checkin.py) is imported once a session is known to be active.
"""

from __future__ import annotations

import os
import sys
import time

from .home import active_session, find_power_dir

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO


HANDLED_EVENTS = frozenset({"SessionStart", "PostToolUse", "PostToolUseFailure", "SubagentStart", "SubagentStop",
                            "Stop", "SessionEnd"})
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
MAX_ID_CHARS = 200  # Claude Code's ids are UUIDs; an agent key goes into every record the agent writes
LOG_FILE = "hook.log"
LOG_MAX_BYTES = 1024 * 1024


class HookInputError(Exception):
    """A payload the hook cannot use; logged, never raised to Claude Code."""


def main() -> int:
    """Console entry point: always exit 0; anything unexpected goes to the hook log."""
    power_dir = None
    try:
        power_dir = find_power_dir()
        run(sys.stdin.buffer, power_dir, os.environ, deliver=_print)
    except BaseException as error:  # the hook must never break the agent, whatever happens
        log_error(power_dir, f"{type(error).__name__}: {error}")
        _silence_stdout()
    return 0


def _print(reply: str) -> None:
    """Write the reply and flush it: only after this returns does the agent's cursor move past what it carries."""
    out = sys.stdout.buffer
    out.write(reply.encode("utf-8"))  # UTF-8 whatever the locale: Claude Code reads UTF-8
    out.flush()


def _silence_stdout() -> None:
    """After a failed reply (a closed stdout), point stdout at /dev/null so the interpreter's own flush at exit
    neither fails again nor prints to stderr."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def run(stdin: BinaryIO, power_dir: str, environ: Any, deliver: Any = None) -> str | None:
    """Handle one payload; return the JSON text of the reply (passed to `deliver` first, when given), or None."""
    raw = stdin.read(MAX_PAYLOAD_BYTES + 1)
    session_id = active_session(power_dir)
    if session_id is None:
        return None  # Power Mode is off: the cheapest path, nothing parsed, nothing more imported
    from . import codec
    from .checkin import respond
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise HookInputError(f"payload over {MAX_PAYLOAD_BYTES} bytes ignored")
    try:
        payload = codec.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise HookInputError(f"payload is not valid UTF-8 (byte {error.start})") from None
    except ValueError as error:
        raise HookInputError(f"payload is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise HookInputError("payload is not a JSON object")
    event_name = payload.get("hook_event_name")
    if event_name not in HANDLED_EVENTS:
        raise HookInputError(f"unknown hook event {event_name!r}")
    claude_session = payload.get("session_id")
    if not isinstance(claude_session, str) or not claude_session:
        raise HookInputError(f"{event_name} payload has no session_id")
    agent_id = payload.get("agent_id")
    if len(claude_session) > MAX_ID_CHARS or (isinstance(agent_id, str) and len(agent_id) > MAX_ID_CHARS):
        raise HookInputError(f"{event_name} payload has a session_id or agent_id over {MAX_ID_CHARS} characters")
    return respond(power_dir, session_id, event_name, payload, environ, deliver)


# -- logging, never to stdout ----------------------------------------------------------------------------------------

def log_error(power_dir: str | None, message: str) -> None:
    """Append one line to `<power dir>/hook.log` (rotated at 1 MiB); give up quietly if even that fails.

    A power directory that is not safe to write (a link, not yours, writable by others) gets no log file: the line
    goes to stderr, which Claude Code keeps in its debug log.
    """
    from ._fs import check_dir, open_file

    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pid {os.getpid()}: {message}"
    data = (line.replace("\n", " ")[:2000] + "\n").encode("utf-8", "replace")
    try:
        directory = power_dir or find_power_dir()
        try:
            check_dir(directory)
        except FileNotFoundError:
            return  # Power Mode was never used here: nothing to log into, and nothing to create
        path = os.path.join(directory, LOG_FILE)
        try:
            if os.lstat(path).st_size > LOG_MAX_BYTES:
                os.replace(path, path + ".1")
        except FileNotFoundError:
            pass
        fd = open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except Exception:
        try:
            os.write(2, data)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
