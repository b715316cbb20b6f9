"""popkit-power: Power Mode for Claude Code.

Several coding agents coordinate through one append-only event journal: they see each other's progress, share what
they found, get back the work of agents that died, and ask one human when something needs a human.

This package's `__init__` is imported by the hook on every tool call, so it imports nothing eagerly; the public names
below load on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "PowerModeError": "errors", "ConfigError": "errors", "ProtocolError": "errors", "SessionError": "errors",
    "JournalError": "errors", "RecordTooLargeError": "errors",
    "Journal": "journal", "Position": "journal", "Config": "config", "load_config": "config",
    "Session": "session", "project": "projector", "Projection": "projector",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'popkit_power' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"popkit_power.{module}"), name)
