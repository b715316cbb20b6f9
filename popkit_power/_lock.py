"""Inter-process locks on a file, released by the OS when their holder dies (even by SIGKILL).

portalocker would be the library for this, but importing it costs ~60 ms (tools/BENCHMARKS.md, "Hook"), eight times
the hook's whole budget, so the hot path uses `fcntl.flock` (POSIX) or `msvcrt.locking` (Windows) directly. Lock
files are opened through `_fs.open_file`: never through a symlink, only a regular file, created 0600.
"""

from __future__ import annotations

import os
import sys

from ._fs import open_file

if sys.platform == "win32":  # pragma: no cover - not tested here
    import msvcrt

    LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8  # msvcrt has no shared lock: a shared one is exclusive there

    def flock(fd: int, operation: int) -> None:
        """`fcntl.flock` for Windows: lock or unlock the file's first byte (LK_LOCK gives up after ~10 s: retry)."""
        os.lseek(fd, 0, os.SEEK_SET)
        if operation == LOCK_UN:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            return
        if operation & LOCK_NB:
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                raise BlockingIOError("the file is locked") from None
            return
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue
else:
    from fcntl import LOCK_EX as LOCK_EX
    from fcntl import LOCK_NB as LOCK_NB
    from fcntl import LOCK_SH as LOCK_SH
    from fcntl import LOCK_UN as LOCK_UN
    from fcntl import flock as flock


class FileLock:
    """`with FileLock(path):` holds an exclusive lock on `path` (created 0600 if missing) for the block."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1

    @property
    def fd(self) -> int:
        """The open lock file (once `acquire` has run); the journal keeps the name of its last segment in it."""
        return self._fd

    def acquire(self, seconds: float | None = None) -> None:
        """Wait for the lock; with `seconds`, at most that long (HookCallAbandoned then: only the coordinator's
        server, whose callers give up, waits so, trying again every few milliseconds)."""
        if self._fd < 0:
            self._fd = open_file(self.path, os.O_RDWR | os.O_CREAT)
        if seconds is None:
            flock(self._fd, LOCK_EX)
            return
        import time

        deadline, pause = time.monotonic() + seconds, 0.001
        while True:
            try:
                flock(self._fd, LOCK_EX | LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    from .errors import HookCallAbandoned

                    raise HookCallAbandoned(f"{self.path} stayed locked for {seconds:g} s (another hook of this "
                                            f"agent hangs?): this call is given up, its news left for the "
                                            f"next") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)

    def held(self, seconds: float | None) -> _Held:
        """`with lock.held(seconds):` the lock for the block, waited for at most `seconds` (None: for ever)."""
        return _Held(self, seconds)

    def release(self) -> None:
        flock(self._fd, LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.close()


class _Held:
    __slots__ = ("lock", "seconds")

    def __init__(self, lock: FileLock, seconds: float | None) -> None:
        self.lock, self.seconds = lock, seconds

    def __enter__(self) -> FileLock:
        self.lock.acquire(self.seconds)
        return self.lock

    def __exit__(self, *exc_info: object) -> None:
        self.lock.release()
