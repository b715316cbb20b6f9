"""`popkit-power-hook`: read one Claude Code hook payload, and with no active session exit at once.

It never breaks or stalls an agent: whatever goes wrong (bad JSON, an unknown event, a huge payload, invalid UTF-8,
a read-only or full disk, a power directory that is not safe) ends with exit 0, no output, and one line in
`<power dir>/hook.log`. Until a session is known to be active this module has imported only the power-directory
lookup (`home`); the handlers are imported after that.
"""

# No `from __future__ import annotations` on the hook's off path (docs/hot-path.md): quoted annotations instead.

import os
import sys

from ..errors import HookInputError, code_of
from ..home import find_power_dir, trusted_active_session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

HANDLED_EVENTS = frozenset({"SessionStart", "PreToolUse", "PostToolUse", "PostToolUseFailure", "SubagentStart",
                            "SubagentStop", "Stop", "SessionEnd"})
TOOL_EVENTS = frozenset({"PreToolUse", "PostToolUse", "PostToolUseFailure"})
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
WAKE_ARG = "wake"  # `popkit-power-hook wake`: the idle agent's waiter (setup/install.py registers it)
MAX_ID_BYTES = 100  # Claude Code's ids are UUIDs; an agent key goes into every record the agent writes


USAGE = """usage: popkit-power-hook [--help | --version]

popkit-power's Claude Code hook. Claude Code runs it once per hook event of every agent (SessionStart, PostToolUse,
PostToolUseFailure, SubagentStart, SubagentStop, Stop, SessionEnd, and PreToolUse where guardrails are on), with
the event as JSON on stdin. It records the event in the active power session's journal and answers with the
agent's news; with Power Mode off it exits at once. It never breaks an agent: whatever goes wrong, it exits 0 and
logs one line in <power dir>/hook.log.

You do not run it yourself. Register it with `popkit-power install` (the project's .claude/settings.local.json) or
load the plugin; `popkit-power doctor` checks that it is registered once and that Claude Code can run it.
"""


def main() -> int:
    """The script's entry point: exit 0 whatever happens (anything unexpected goes to the hook log); as the idle
    agent's waiter (`popkit-power-hook wake`), exit 2 when it wakes the agent."""
    if sys.argv[1:2] in (["-h"], ["--help"], ["--version"]) or os.isatty(0):  # a person ran it: Claude Code pipes
        return _usage(sys.argv[1:])  # the payload, and any other argument (a settings file's mistake) is ignored
    power_dir = None
    try:
        power_dir = find_power_dir()
        if sys.argv[1:] == [WAKE_ARG]:
            return wake(sys.stdin.buffer, power_dir, os.environ, deliver=_print_stderr)
        run(sys.stdin.buffer, power_dir, os.environ, deliver=_print)
    except BaseException as error:  # the hook must never break the agent, whatever happens
        from .log import log_error

        log_error(power_dir, f"{type(error).__name__}: {error}", code=code_of(error))
        _silence_stdout()
    return 0


def run(stdin: "BinaryIO", power_dir: str, environ: "Any", deliver: "Any" = None,
        lock_seconds: "float | None" = None) -> str | None:
    """Handle one payload; return the JSON text of the reply (passed to `deliver` first, when given), or None.
    `lock_seconds`: how long a call may wait for its agent (handlers.respond; the coordinator's server only)."""
    raw = stdin.read(MAX_PAYLOAD_BYTES + 1)
    try:
        session_id = trusted_active_session(power_dir)
    except Exception as error:  # a guarded call must not pass because the session could not be told
        if b'"PreToolUse"' not in raw:
            raise
        from .guard import refuse

        return refuse(power_dir, raw, error, environ, deliver)
    if session_id is None:
        return None  # Power Mode is off (or its directory is not trusted: home.py): nothing parsed, nothing imported
    event_name, payload = _parse(raw)
    if event_name == "PreToolUse":  # registered only where guardrails are configured; decided without handlers
        from .guard import respond as guard

        return guard(power_dir, session_id, payload, environ, deliver)
    from .handlers import respond

    return respond(power_dir, session_id, event_name, payload, environ, deliver,
                   call_id=_call_id(event_name, payload, raw), lock_seconds=lock_seconds)


def wake(stdin: "BinaryIO", power_dir: str, environ: "Any", deliver: "Any") -> int:
    """The waiter (waiter.py) for the Stop payload on `stdin`; with Power Mode off it exits at once: nothing waits."""
    raw = stdin.read(MAX_PAYLOAD_BYTES + 1)
    session_id = trusted_active_session(power_dir)
    if session_id is None:
        return 0
    from .waiter import wait_for_news

    event_name, payload = _parse(raw)
    if event_name != "Stop":
        raise HookInputError(f"the waiter runs as a Stop hook, not {event_name}")
    return wait_for_news(power_dir, session_id, payload, environ, deliver)


def _parse(raw: bytes) -> "tuple[str, dict[str, Any]]":
    """The event name and payload of a hook's input, checked: HookInputError names what is wrong."""
    from ..journal import codec

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
    for value in (claude_session, agent_id):
        if isinstance(value, str) and (len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES
                                       or not value.isprintable()):
            raise HookInputError(f"{event_name} payload has a session_id or agent_id that is not an id (over "
                                 f"{MAX_ID_BYTES} bytes, or with control characters)")
    return event_name, payload


def _call_id(event_name: str, payload: "dict[str, Any]", raw: bytes) -> str | None:
    """What tells this call from another (hook/miswired.py): the event and Claude Code's id of its tool call; for an
    agent's start a checksum of the payload, which two hook processes of one event share. None for the other events
    (a Stop or SessionEnd handled twice records a fact twice, which folds the same, and its news goes out once under
    the agent's lock; two honest Stops can carry the same payload) and for a tool event without an id."""
    if event_name not in TOOL_EVENTS and event_name not in ("SessionStart", "SubagentStart"):
        return None
    if event_name in TOOL_EVENTS:
        tool_use_id = payload.get("tool_use_id")
        # A PreToolUse and the PostToolUse after it share the tool call's id: the event's name tells them apart.
        return f"{event_name}:{tool_use_id[:MAX_ID_BYTES]}" if isinstance(tool_use_id, str) and tool_use_id else None
    import zlib

    return f"{event_name}:{zlib.crc32(raw):08x}"


def _usage(args: list[str]) -> int:
    """--version prints the version, --help (or a terminal on stdin: a person typed the command) the usage."""
    if args[:1] == ["--version"]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            sys.stdout.write(f"popkit-power-hook {version('popkit-power')}\n")
        except PackageNotFoundError:
            sys.stdout.write("popkit-power-hook (version unknown: the package is not installed)\n")
        return 0
    sys.stdout.write(USAGE)
    return 0


def _print(reply: str) -> None:
    """Write the reply and flush it: only after this returns does the agent's cursor move past what it carries."""
    out = sys.stdout.buffer
    out.write(reply.encode("utf-8"))  # UTF-8 whatever the locale: Claude Code reads UTF-8
    out.flush()


def _print_stderr(text: str) -> None:
    """The waiter's news: Claude Code reads an asyncRewake hook's stderr as the text of the turn it starts."""
    out = sys.stderr.buffer
    out.write(text.encode("utf-8"))
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


if __name__ == "__main__":
    sys.exit(main())
