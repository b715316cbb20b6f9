"""An exclusive inter-process lock on a file, released by the OS when its holder dies (even by SIGKILL).

portalocker would be the library for this, but importing it costs ~60 ms (../shared/reference/hot-path.md), eight
times the hook's whole budget, so the hot path uses `fcntl.flock` (POSIX) or `msvcrt.locking` (Windows) directly.
"""

from __future__ import annotations

import os

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


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

    def acquire(self) -> None:
        if self._fd < 0:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows: LK_LOCK retries for ~10 s, then raises; keep waiting
            while True:
                try:
                    msvcrt.locking(self._fd, msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    continue

    def release(self) -> None:
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        else:  # pragma: no cover
            os.lseek(self._fd, 0, os.SEEK_SET)
            msvcrt.locking(self._fd, msvcrt.LK_UNLCK, 1)

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
