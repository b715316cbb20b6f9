"""One coordinator (and one replicator) per session: an exclusive, non-blocking `flock` on
`sessions/<id>/coordinator.lock` (`replicator.lock`), held for as long as it runs and released by the OS when it dies
(even by SIGKILL), so a restart takes over at once. Who holds it is written beside it (`coordinator.json`: pid, host,
since), for the refusal message and for `popkit-power stop`, together with the holder's `condition` ("running", or
"disk full" while its appends are refused): `status` and `doctor` read it there, because a full disk keeps it out of
the journal. The file is written once at full size and then rewritten in place (`Lease.note`), into the blocks it
already has, so that a full disk cannot refuse it."""

from __future__ import annotations

import os
from typing import Any

from .._fs import open_file, read_file, write_file_atomically
from .._lock import LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN, flock
from ..errors import CoordinatorRunningError
from ..keys import COORDINATOR_LEASE, host_name, lease_holder_file, lease_lock_file
from ..timestamps import utc_text

RUNNING, DISK_FULL, FAILING = "running", "disk full", "failing"
#: The holder file's size: written padded with spaces (still JSON), so that every later note fits in place
HOLDER_BYTES = 1024


def holder(session_dir: str, name: str = COORDINATOR_LEASE) -> dict[str, Any] | None:
    """Who holds (or last held) the session's coordinator (or replicator) lease, as written when it was taken."""
    import orjson  # here, not at the top: the hook imports `held` (home._adopted) and never this

    try:
        found = orjson.loads(read_file(lease_holder_file(session_dir, name), 65536))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def held(session_dir: str, name: str = COORDINATOR_LEASE) -> bool:
    """Whether a live process holds the session's coordinator (or replicator) lease now."""
    try:
        fd = open_file(lease_lock_file(session_dir, name), os.O_RDONLY)
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


def trouble(session_dir: str, name: str = COORDINATOR_LEASE) -> str | None:
    """What keeps the live holder of the lease from its work, in words (`DISK_FULL`: ...), or None when it fares
    well, or when nobody holds the lease (then it is stopped, or dead)."""
    found = holder(session_dir, name) or {}
    condition = found.get("condition")
    if condition in (None, RUNNING) or not held(session_dir, name):
        return None
    detail = found.get("detail")
    since = found.get("condition_since")
    return f"{condition}" + (f" since {since}" if since else "") + (f": {detail}" if detail else "")


class Lease:
    """`with Lease(session_dir):` holds the session's coordinator lease (`name=REPLICATOR_LEASE`: its replicator's), or
    raises CoordinatorRunningError naming the holder."""

    def __init__(self, session_dir: str, *, stoppable: bool = True, name: str = COORDINATOR_LEASE) -> None:
        self.session_dir = session_dir
        self.name = name
        self.stoppable = stoppable  # may `popkit-power stop` signal the holder's process (not a host program's)
        self._fd = -1
        self._holder_fd = -1
        self._holder: dict[str, Any] = {}

    def acquire(self) -> None:
        fd = open_file(lease_lock_file(self.session_dir, self.name), os.O_RDWR | os.O_CREAT)
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
        since = utc_text(whole=True)
        self._holder = {"pid": os.getpid(), "host": host_name(), "since": since, "stoppable": self.stoppable,
                        "condition": RUNNING}
        path = lease_holder_file(self.session_dir, self.name)
        write_file_atomically(path, _padded(self._holder))
        try:
            self._holder_fd = open_file(path, os.O_WRONLY)
        except OSError:
            self._holder_fd = -1  # replaced already: notes are not written, the lease still holds

    def note(self, condition: str, detail: str | None = None) -> None:
        """Say how the holder fares (`RUNNING`, `DISK_FULL`, `FAILING`, with a detail and since when), in place in
        the holder file; a failure to say it is ignored (the lease still holds)."""
        if self._holder.get("condition") == condition and self._holder.get("detail") == detail:
            return
        self._holder.update(condition=condition, detail=detail,
                            condition_since=utc_text(whole=True))
        if self._holder_fd >= 0:
            try:
                os.pwrite(self._holder_fd, _padded(self._holder), 0)
            except OSError:
                pass

    def release(self) -> None:
        if self._holder_fd >= 0:
            os.close(self._holder_fd)
            self._holder_fd = -1
        if self._fd >= 0:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _padded(holder: dict[str, Any]) -> bytes:
    """The holder as JSON padded with spaces to HOLDER_BYTES (a detail too long is cut to fit)."""
    import orjson

    data = orjson.dumps(holder)
    if len(data) >= HOLDER_BYTES and holder.get("detail"):
        data = orjson.dumps({**holder, "detail": str(holder["detail"])[:HOLDER_BYTES // 4]})
    return data + b" " * max(0, HOLDER_BYTES - 1 - len(data)) + b"\n"
