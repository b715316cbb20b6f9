"""popkit-power: Power Mode for Claude Code.

Several coding agents coordinate through one append-only event journal: they see each other's progress, share what
they found, get back the work of agents that died, and ask one human when something needs a human.

This package's `__init__` is imported by the hook on every tool call, so it imports nothing eagerly; the public names
below load on first use (`__getattr__`), and type checkers see them through the imports under TYPE_CHECKING.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Config, load_config
    from .coordinator import PowerModeCoordinator
    from .errors import (
        ConfigError,
        CoordinatorRunningError,
        HookInputError,
        JournalError,
        MalformedReplyError,
        MissingDependencyError,
        PowerModeError,
        ProtocolError,
        RecordTooLargeError,
        ReplicationError,
        SessionError,
        TransportAuthError,
        TransportError,
        TransportLimitError,
        TransportRejectedError,
        TransportServerError,
        TransportTimeoutError,
        TransportUnreachableError,
        UnsafePathError,
    )
    from .journal.writer import Journal, Position
    from .projector import Rules, apply, new_state, project
    from .session import Session, start_session, stop_session

__version__ = "0.1.0"

#: public name -> the module that defines it
_PUBLIC = {
    "PowerModeError": "errors", "ConfigError": "errors", "ProtocolError": "errors", "SessionError": "errors",
    "HookInputError": "errors", "UnsafePathError": "errors", "JournalError": "errors",
    "RecordTooLargeError": "errors", "ReplicationError": "errors", "MissingDependencyError": "errors",
    "TransportError": "errors", "TransportTimeoutError": "errors", "TransportUnreachableError": "errors",
    "TransportAuthError": "errors", "TransportLimitError": "errors", "TransportServerError": "errors",
    "TransportRejectedError": "errors", "MalformedReplyError": "errors",
    "Journal": "journal.writer", "Position": "journal.writer",
    "Config": "config", "load_config": "config",
    "Session": "session", "start_session": "session", "stop_session": "session",
    "Rules": "projector", "apply": "projector", "new_state": "projector", "project": "projector",
    "PowerModeCoordinator": "coordinator", "CoordinatorRunningError": "errors",
}
__all__ = [
    "Config", "ConfigError", "CoordinatorRunningError", "HookInputError", "Journal", "JournalError",
    "MalformedReplyError", "MissingDependencyError", "Position", "PowerModeCoordinator", "PowerModeError",
    "ProtocolError", "RecordTooLargeError", "ReplicationError", "Rules", "Session", "SessionError",
    "TransportAuthError", "TransportError", "TransportLimitError", "TransportRejectedError", "TransportServerError",
    "TransportTimeoutError", "TransportUnreachableError", "UnsafePathError", "apply", "load_config", "new_state",
    "project", "start_session", "stop_session",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'popkit_power' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"popkit_power.{module}"), name)
