"""One coordinator (and one replicator) per session: an exclusive, non-blocking `flock` on
`sessions/<id>/coordinator.lock` (`replicator.lock`), held for as long as it runs and released by the OS when it dies
(even by SIGKILL), so a restart takes over at once. Who holds it is written beside it (`coordinator.json`: pid, host,
since), for the refusal message and for `popkit-power stop`."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from ._fs import open_file, read_file, write_file_atomically
from ._lock import LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, flock
from .errors import CoordinatorRunningError
from .keys import host_name

COORDINATOR = "coordinator"
LOCK_FILE = "coordinator.lock"


def holder(session_dir: str, name: str = COORDINATOR) -> dict[str, Any] | None:
    """Who holds (or last held) the session's coordinator (or replicator) lease, as written when it was taken."""
    try:
        found = orjson.loads(read_file(os.path.join(session_dir, f"{name}.json"), 65536))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def held(session_dir: str, name: str = COORDINATOR) -> bool:
    """Whether a live process holds the session's coordinator (or replicator) lease now."""
    try:
        fd = open_file(os.path.join(session_dir, f"{name}.lock"), os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        flock(fd, LOCK_SH | LOCK_NB)  # granted only while nobody holds it exclusively
    except BlockingIOError:
        return True
    else:
        flock(fd, LOCK_UN)
        return False
    finally:
        os.close(fd)


class Lease:
    """`with Lease(session_dir):` holds the session's coordinator lease (`name="replicator"`: its replicator's), or
    raises CoordinatorRunningError naming the holder."""

    def __init__(self, session_dir: str, *, stoppable: bool = True, name: str = COORDINATOR) -> None:
        self.session_dir = session_dir
        self.name = name
        self.stoppable = stoppable  # may `popkit-power stop` signal the holder's process (not a host program's)
        self._fd = -1

    def acquire(self) -> None:
        fd = open_file(os.path.join(self.session_dir, f"{self.name}.lock"), os.O_RDWR | os.O_CREAT)
        try:
            flock(fd, LOCK_EX | LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = holder(self.session_dir, self.name) or {}
            raise CoordinatorRunningError(
                f"a {self.name} already runs for session {os.path.basename(self.session_dir)}: pid "
                f"{other.get('pid', '?')} on {other.get('host', '?')}, since {other.get('since', '?')}; "
                f"popkit-power stop ends it") from None
        self._fd = fd
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_file_atomically(os.path.join(self.session_dir, f"{self.name}.json"),
                              orjson.dumps({"pid": os.getpid(), "host": host_name(), "since": since,
                                            "stoppable": self.stoppable}))

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()
