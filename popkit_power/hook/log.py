"""The hook's error log: one line per failure in `<power dir>/hook.log`, rotated at 1 MiB, never on stdout."""

from __future__ import annotations

import os
import time

from .._fs import check_dir, open_file
from ..home import find_power_dir

LOG_FILE = "hook.log"
LOG_MAX_BYTES = 1024 * 1024


def log_error(power_dir: str | None, message: str) -> None:
    """Append one line to `<power dir>/hook.log`; give up quietly if even that fails.

    A power directory that is not safe to write (a link, not yours, writable by others) gets no log file: the line
    goes to stderr, which Claude Code keeps in its debug log.
    """
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} pid {os.getpid()}: {message}"
    data = (line.replace("\n", " ")[:2000] + "\n").encode("utf-8", "replace")
    try:
        directory = power_dir or find_power_dir()
        try:
            check_dir(directory)
        except FileNotFoundError:
            return  # Power Mode was never used here: nothing to log into, and nothing to create
        path = os.path.join(directory, LOG_FILE)
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
