"""What a file conflict is, as one rule for the projector and the hook: two different live agents wrote the same file
within `conflict_window_seconds`, judged on the events' own timestamps (`ts`), never on a clock.

This module is on the hook's hot path: it imports nothing.
"""

from __future__ import annotations

#: Tools whose target file counts as written.
WRITE_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
#: Tools whose target file is recorded with the tool call (written or read).
FILE_TOOLS = WRITE_TOOLS | {"Read"}


def in_conflict(this_write: float, earlier_write: float, window: float) -> bool:
    """True when a write at `this_write` (seconds, from its event) comes within `window` seconds after another
    agent's write of the same file at `earlier_write` (writes from a clock that runs behind count too)."""
    return this_write - earlier_write <= window
