"""The hook's error log: one line per failure in `<power dir>/hook.log`, rotated at 1 MiB, never on stdout; and
`DamageLog`, which logs the damaged lines one call meets without flooding it.

Each line names its kind by a stable code, so that what reads the log (setup/hook_errors.py, for `status` and
`doctor`) decides by the code, never by the words, which may change:

    2026-11-24T10:00:00Z pid 42 error [unsafe-path]: UnsafePathError: /p is writable by others ...

The code is an error's own (errors.py: `code_of`) when the line is about an exception, else one of the codes below
for what the hook notices without one.
"""

from __future__ import annotations

import os

from .._fs import check_dir, open_file
from ..home import find_power_dir
from ..keys import HOOK_LOG
from ..timestamps import utc_text

#: The codes of what the hook logs that is not an exception (errors.py has the codes of those)
JOURNAL_DAMAGED = "journal-damaged"  # a journal line that is not a valid record, skipped
HOOK_TWICE = "hook-registered-twice"  # one Claude Code event reached the hook twice (hook/miswired.py)
STATE_DAMAGED = "agent-state-damaged"  # an agent's state file could not be used: its news goes on from the end
GUARD_REQUEST_STALE = "guard-request-stale"  # a stored guardrail request the journal does not hold: asked again
SESSION_GONE = "session-gone"  # the session directory a waiter waits on was removed or replaced
LOG_MAX_BYTES = 1024 * 1024
MAX_DAMAGE_LOGGED = 20  # damaged lines logged one by one per call; the rest are counted in one line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..journal.writer import Damage
    from ..session import Session


def log_error(power_dir: str | None, message: str, *, code: str) -> None:
    """Append one line, `message` under its `code`, to `<power dir>/hook.log`; give up quietly if even that fails.

    A power directory that is not safe to write (a link, not yours, writable by others) gets no log file: the line
    goes to stderr, which Claude Code keeps in its debug log.
    """
    line = f"{utc_text(whole=True)} pid {os.getpid()} error [{code}]: {message}"
    data = (line.replace("\n", " ")[:2000] + "\n").encode("utf-8", "replace")
    try:
        directory = power_dir or find_power_dir()
        try:
            check_dir(directory)
        except FileNotFoundError:
            return  # Power Mode was never used here: nothing to log into, and nothing to create
        path = os.path.join(directory, HOOK_LOG)
        try:
            if os.lstat(path).st_size > LOG_MAX_BYTES:
                os.replace(path, path + ".1")
        except FileNotFoundError:
            pass
        fd = open_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except Exception:
        try:
            os.write(2, data)
        except OSError:
            pass


class DamageLog:
    """Logs the first `MAX_DAMAGE_LOGGED` damaged lines one call meets, one by one, and the rest as one count: a
    journal with a million damaged lines must not cost a million log writes."""

    __slots__ = ("count", "session")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.count = 0

    def __call__(self, damage: Damage) -> None:
        self.count += 1
        if self.count <= MAX_DAMAGE_LOGGED:
            log_error(self.session.power_dir, f"skipped a damaged journal record: {damage}", code=JOURNAL_DAMAGED)

    def sum_up(self) -> None:
        if self.count > MAX_DAMAGE_LOGGED:
            log_error(self.session.power_dir, f"skipped {self.count - MAX_DAMAGE_LOGGED} more damaged journal "
                                              f"records in one read (popkit-power verify lists them)",
                      code=JOURNAL_DAMAGED)
