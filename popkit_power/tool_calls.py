"""What a tool call is, read from its Claude Code input: whether it only runs popkit-power itself.

A Bash call whose whole command is `popkit-power ...` (after `VAR=value` assignments; also `python -m popkit_power`,
or a path ending in `/popkit-power`) is the agent talking to Power Mode, not working: a person's own Claude Code
session that runs `/popkit:power status` does only that. A command with anything else in it (`;`, `&&`, a pipe, a
substitution) counts as work, which errs on the side of calling an agent working.

This module is on the hook's hot path: it imports nothing (no shlex: it would import re).
"""

from __future__ import annotations

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
