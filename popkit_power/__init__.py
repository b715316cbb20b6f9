"""popkit-power: Power Mode for Claude Code.

Several coding agents coordinate through one append-only event journal: they see each other's progress, share what
they found, get back the work of agents that died, and ask one human when something needs a human.

How it is used: Claude Code runs `popkit-power-hook` (the `hook` package) on every hook event of every agent; people
and agents run the `popkit-power` command (`cli`); programs use the library through the names below (`Session`,
`start_session`, `Journal`, `project`, `PowerModeCoordinator`, ...). The packages:

    journal/      the storage core: the journal's format, reader, writer, repair, leases, snapshots, verify
    hook/         `popkit-power-hook`: what happened appended, the agent's news answered, guardrails, the waiter
    fold/         the projector's fold, one concept a module (projector.py puts it together)
    shapes/       the state's and the events' types (TypedDicts), for the type checker only
    coordinator/  one process per session that notices agents die and hands their work on
    replication/  each machine's journal mirrored to Redis Streams (Upstash or a Redis server), the others pulled
    replay/       a session told again for a person: `replay` lines and the `timeline` page
    setup/        install, the registrations Claude Code reads, the hook's logged errors, `doctor` and its problems
    cli/          the `popkit-power` command, a thin layer over all of this
    demo/         `popkit-power demo`: a real session with simulated agents
    plugin/       the Claude Code plugin (its hooks file, `run-hook.sh`, the `/power` command); not Python code

and the modules beside them, each one concept: the events (`protocol`), a session (`session`), the state
(`projector`), identities and names (`keys`), settings (`config`), where files live (`home`, `_fs`, `_lock`,
`opened_dir`), errors and the exit codes they map to (`errors`, `exit_codes`), what people read (`status`, `display`
with its generated table `_confusables`, `roster`, `session_index`), the protocols a task claim and an approval
follow (`claims`, `approvals`), who runs a command (`provenance`), processes (`processes`), tool calls, insights and
times (`tool_calls`, `insights`, `timestamps`), the guardrails' shell reader (`shell`, `shell_words`, `globs`),
following a journal (`follow`) and the original Power Mode's credential checks (`upstash_adapter`). docs/design.md
("The shape") has the table of parts.

This package's `__init__` is imported by the hook on every tool call, so it imports nothing eagerly; the public names
below load on first use (`__getattr__`), and type checkers see them through the imports under TYPE_CHECKING.
"""

# No `from __future__ import annotations` on the hook's off path (docs/hot-path.md): quoted annotations instead.

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Config, load_config
    from .coordinator import PowerModeCoordinator
    from .errors import (
        AnswerRefusedError,
        ClaimLostError,
        ConfigError,
        CoordinatorRunningError,
        HookCallAbandoned,
        HookInputError,
        JournalError,
        PowerModeError,
        ProtocolError,
        RecordTooLargeError,
        SessionError,
        SessionNotActiveError,
        UnsafePathError,
    )
    from .journal.writer import Journal, Position
    from .projector import Rules, apply, new_state, project
    from .replication.errors import (
        MalformedReplyError,
        MissingDependencyError,
        ReplicationError,
        TransportAuthError,
        TransportError,
        TransportLimitError,
        TransportRejectedError,
        TransportServerError,
        TransportTimeoutError,
        TransportUnreachableError,
    )
    from .session import Session, start_session, stop_session

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "PowerModeError": "errors", "ConfigError": "errors", "ProtocolError": "errors", "SessionError": "errors",
    "HookInputError": "errors", "HookCallAbandoned": "errors", "UnsafePathError": "errors", "JournalError": "errors",
    "RecordTooLargeError": "errors", "ReplicationError": "replication.errors",
    "MissingDependencyError": "replication.errors", "TransportError": "replication.errors",
    "TransportTimeoutError": "replication.errors", "TransportUnreachableError": "replication.errors",
    "TransportAuthError": "replication.errors", "TransportLimitError": "replication.errors",
    "TransportServerError": "replication.errors", "TransportRejectedError": "replication.errors",
    "MalformedReplyError": "replication.errors",
    "ClaimLostError": "errors", "AnswerRefusedError": "errors", "SessionNotActiveError": "errors",
    "Journal": "journal.writer", "Position": "journal.writer",
    "Config": "config", "load_config": "config",
    "Session": "session", "start_session": "session", "stop_session": "session",
    "Rules": "projector", "apply": "projector", "new_state": "projector", "project": "projector",
    "PowerModeCoordinator": "coordinator", "CoordinatorRunningError": "errors",
}
__all__ = [
    "AnswerRefusedError", "ClaimLostError", "Config", "ConfigError", "CoordinatorRunningError", "HookCallAbandoned",
    "HookInputError", "Journal", "JournalError", "MalformedReplyError", "MissingDependencyError", "Position",
    "PowerModeCoordinator", "PowerModeError", "ProtocolError", "RecordTooLargeError", "ReplicationError", "Rules",
    "Session", "SessionError", "SessionNotActiveError", "TransportAuthError", "TransportError", "TransportLimitError",
    "TransportRejectedError", "TransportServerError", "TransportTimeoutError", "TransportUnreachableError",
    "UnsafePathError", "apply", "load_config", "new_state", "project", "start_session", "stop_session",
]


def __getattr__(name: str) -> "Any":
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'popkit_power' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"popkit_power.{module}"), name)
