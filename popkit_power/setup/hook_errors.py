"""Reading what the hook logged (`<power dir>/hook.log`, written by hook/log.py): its errors with their times, the
ones since a given moment, and what each kind means, for `status` and `doctor`.

Only the end of the log is read (`TAIL_BYTES`): status reads it at every refresh of `--watch`.
"""

from __future__ import annotations

import os
from typing import Any

from .._fs import open_file
from ..errors import PowerModeError
from ..keys import HOOK_LOG
from ..timestamps import seconds_of

TAIL_BYTES = 64 * 1024

#: Words in a logged line, and what to do about that kind of error.
KNOWN = (
    ("reached popkit-power-hook twice", "the hooks are registered twice (the plugin and popkit-power install): keep "
                                        "one; popkit-power doctor shows where each is"),
    ("config.json", "fix config.json (popkit-power doctor names the setting); until then the hook runs with its "
                    "last valid settings (or the defaults)"),
    ("damaged journal record", "the journal has damaged lines: popkit-power verify lists them"),
    ("state file of agent", "an agent's state file was damaged; its news went on from the journal's end"),
    ("is writable by others", "the power directory is writable by others: chmod go-w it (popkit-power doctor)"),
    ("not to you", "the power directory belongs to another user (popkit-power doctor)"),
)


def read_errors(power_dir: str) -> list[dict[str, Any]]:
    """The last lines of hook.log as {"ts" (seconds, or None), "line", "advice" (or None)}, oldest first."""
    try:
        fd = open_file(os.path.join(power_dir, HOOK_LOG), os.O_RDONLY)
    except (OSError, PowerModeError):  # none yet, or not safe to read: doctor reports the power directory itself
        return []
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, min(size, TAIL_BYTES), max(0, size - TAIL_BYTES))
    finally:
        os.close(fd)
    lines = data.decode("utf-8", "replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # cut in the middle
    return [{"ts": _time_of(line), "line": line, "advice": advice(line)} for line in lines if line.strip()]


def since(power_dir: str, moment: float | None) -> list[dict[str, Any]]:
    """The errors logged at `moment` or later (to the second: the log's times are whole seconds); all of the last
    ones when `moment` is None."""
    errors = read_errors(power_dir)
    if moment is None:
        return errors
    floor = int(moment)
    return [error for error in errors if error["ts"] is not None and error["ts"] >= floor]


def advice(line: str) -> str | None:
    """What to do about a logged line of a known kind."""
    return next((what for words, what in KNOWN if words in line), None)


def _time_of(line: str) -> float | None:
    """The time a line was logged (`2026-11-24T10:00:00Z pid 42: ...`), in seconds since the epoch."""
    return seconds_of(line[:20])
