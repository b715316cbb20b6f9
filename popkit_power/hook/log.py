"""The hook's error log: one line per failure in `<power dir>/hook.log`, rotated at 1 MiB, never on stdout; and
`DamageLog`, which logs the damaged lines one call meets without flooding it."""

from __future__ import annotations

import os

from .._fs import check_dir, open_file
from ..home import find_power_dir
from ..keys import HOOK_LOG
from ..timestamps import utc_text

LOG_MAX_BYTES = 1024 * 1024
MAX_DAMAGE_LOGGED = 20  # damaged lines logged one by one per call; the rest are counted in one line

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..journal.writer import Damage
    from ..session import Session


def log_error(power_dir: str | None, message: str) -> None:
    """Append one line to `<power dir>/hook.log`; give up quietly if even that fails.

    A power directory that is not safe to write (a link, not yours, writable by others) gets no log file: the line
    goes to stderr, which Claude Code keeps in its debug log.
    """
    line = f"{utc_text(whole=True)} pid {os.getpid()}: {message}"
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
            log_error(self.session.power_dir, f"skipped a damaged journal record: {damage}")

    def sum_up(self) -> None:
        if self.count > MAX_DAMAGE_LOGGED:
            log_error(self.session.power_dir, f"skipped {self.count - MAX_DAMAGE_LOGGED} more damaged journal "
                                              f"records in one read (popkit-power verify lists them)")
