"""What a file conflict is, as one rule for the projector and the hook: two different live agents wrote the same file
within `conflict_window_seconds`, judged on the events' own timestamps (`ts`), never on a clock.

This module is on the hook's hot path: it imports nothing.
"""

from __future__ import annotations

#: Tools whose target file counts as written.
WRITE_TOOLS = frozenset({"Edit", "Write", "MultiEdit", "NotebookEdit"})
#: Tools whose target file is recorded with the tool call (written or read).
FILE_TOOLS = WRITE_TOOLS | {"Read"}


def in_conflict(this_write: float, other_write: float, window: float) -> bool:
    """True when two agents' writes of the same file, at `this_write` and `other_write` (seconds, from their
    events), are at most `window` seconds apart, whichever came first (events from different machines, or read in
    a different order than they were made, can be out of time order)."""
    return abs(this_write - other_write) <= window
