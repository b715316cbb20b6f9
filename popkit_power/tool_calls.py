"""What a tool call is, read from its Claude Code input: which tools write a file (and when two agents' writes
conflict), and whether a Bash call only runs popkit-power itself.

A file conflict is one rule for the projector and the hook: two different live agents wrote the same file within
`conflict_window_seconds`, judged on the events' own timestamps (`ts`), never on a clock.

A Bash call whose whole command is `popkit-power ...` (after `VAR=value` assignments; also `python -m popkit_power`,
or a path ending in `/popkit-power`) is the agent talking to Power Mode, not working: a person's own Claude Code
session that runs `/popkit:power status` does only that. A command with anything else in it (`;`, `&&`, a pipe, a
substitution) counts as work, which errs on the side of calling an agent working.

This module is on the hook's hot path: it imports nothing (no shlex: it would import re).
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


_CHAINING = (";", "&", "|", "`", "$(", "\n", ">", "<")
_PYTHONS = frozenset({"python", "python3"})


def runs_only_popkit_power(command: object) -> bool:
    """Whether a Bash command runs popkit-power and nothing else."""
    if not isinstance(command, str) or any(mark in command for mark in _CHAINING):
        return False
    words = command.split()
    while words and "=" in words[0] and not words[0].startswith("="):  # VAR=value before the command
        words.pop(0)
    if not words:
        return False
    program = words[0].rsplit("/", 1)[-1]
    if program == "popkit-power":
        return True
    return (program in _PYTHONS or program.startswith("python3.")) and words[1:3] in (
        ["-m", "popkit_power"], ["-m", "popkit_power.cli"])
