"""Reading what the hook logged (`<power dir>/hook.log`, written by hook/log.py): its errors with their times and
codes, the ones since a given moment, and what each kind means, for `status` and `doctor`. The kind of a line is its
code (`... pid 42 error [unsafe-path]: ...`), never its words.

Only the end of the log is read (`TAIL_BYTES`): status reads it at every refresh of `--watch`.
"""

from __future__ import annotations

import os
from typing import Any

from .._fs import open_file
from ..errors import ConfigError, HookCallAbandoned, PowerModeError, UnsafePathError
from ..hook.log import HOOK_TWICE, JOURNAL_DAMAGED, STATE_DAMAGED
from ..keys import HOOK_LOG
from ..timestamps import seconds_of

TAIL_BYTES = 64 * 1024

#: A logged line's code, and what to do about that kind of error.
ADVICE = {
    HOOK_TWICE: "the hooks are registered twice (the plugin and popkit-power install): keep one; popkit-power doctor "
                "shows where each is",
    ConfigError.code: "fix config.json (popkit-power doctor names the setting); until then the hook runs with its "
                      "last valid settings (or the defaults)",
    JOURNAL_DAMAGED: "the journal has damaged lines: popkit-power verify lists them",
    STATE_DAMAGED: "an agent's state file was damaged; its news went on from the journal's end",
    HookCallAbandoned.code: "a hook call over HTTP was given up (its caller had gone, or another hook of the same "
                            "agent held its state too long); its news came with the agent's next call",
    UnsafePathError.code: "a path under the power directory is not safe to use (writable by others: chmod go-w it; "
                          "or another user's): popkit-power doctor names it",
}
#: Words of a line written before lines had codes (an older popkit-power), and the code such a line has now. Only
#: for those lines: a line with a code is known by its code alone.
OLD_WORDS = (
    ("reached popkit-power-hook twice", HOOK_TWICE),
    ("config.json", ConfigError.code),
    ("damaged journal record", JOURNAL_DAMAGED),
    ("state file of agent", STATE_DAMAGED),
    ("is writable by others", UnsafePathError.code),
    ("not to you", UnsafePathError.code),
)


def read_errors(power_dir: str) -> list[dict[str, Any]]:
    """The last lines of hook.log as {"ts" (seconds, or None), "line", "code" (or None), "advice" (or None)}, oldest
    first."""
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
    errors = []
    for line in lines:
        if line.strip():
            code = code_of_line(line)
            errors.append({"ts": _time_of(line), "line": line, "code": code, "advice": ADVICE.get(code or "")})
    return errors


def since(power_dir: str, moment: float | None) -> list[dict[str, Any]]:
    """The errors logged at `moment` or later (to the second: the log's times are whole seconds); all of the last
    ones when `moment` is None."""
    errors = read_errors(power_dir)
    if moment is None:
        return errors
    floor = int(moment)
    return [error for error in errors if error["ts"] is not None and error["ts"] >= floor]


def code_of_line(line: str) -> str | None:
    """The code of a logged line (`2026-11-24T10:00:00Z pid 42 error [CODE]: ...`); for a line of an older version,
    which has none, the code its words stand for (`OLD_WORDS`), else None."""
    head = line[21:].partition(": ")[0]  # "pid 42 error [CODE]", or "pid 42" before lines had codes
    before, mark, code = head.partition(" error [")
    if mark and code.endswith("]") and before.startswith("pid "):
        return code[:-1]
    return next((code for words, code in OLD_WORDS if words in line), None)


def advice(line: str) -> str | None:
    """What to do about a logged line of a known kind."""
    return ADVICE.get(code_of_line(line) or "")


def _time_of(line: str) -> float | None:
    """The time a line was logged (`2026-11-24T10:00:00Z pid 42: ...`), in seconds since the epoch."""
    return seconds_of(line[:20])
