"""Whether the directory a long-running process opened is still the one at its path.

A coordinator, replicator or waiter runs for hours on one session directory. When someone removes it (`rm -rf` of
the power directory) or puts another in its place (removed and made again, restored from a backup), the process must
not go on writing into files nobody can see, nor into a session it never opened: each calls `OpenedDirectory.gone()`
once per round of its loop and ends with one log line when it says why. The directory is named by its device and
inode, taken when the process opened it; a path alone cannot tell a replacement from the original.

A look and then a write by path leave a moment in which the directory can be replaced: a file written into it goes
through `fd()`, an open descriptor of the directory checked to be the original, so it lands in the original or
nowhere, never in a replacement.

It imports only `os`: the waiter (a hook process) uses it too.
"""

from __future__ import annotations

import os


class OpenedDirectory:
    """The directory at `path` as it is now (its device and inode); `gone()` says whether that is still so."""

    __slots__ = ("identity", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        found = os.stat(path)
        self.identity = (found.st_dev, found.st_ino)

    def gone(self) -> str | None:
        """None while the same directory is at the path; else why not, in words fit for a log line."""
        try:
            found = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):  # or a parent removed, or replaced by a file
            return f"{self.path} was removed"
        except OSError:  # a permission taken away or an I/O error: no proof that it is gone
            return None
        if (found.st_dev, found.st_ino) != self.identity:
            return f"{self.path} was replaced by another directory"
        return None

    def fd(self) -> int | None:
        """An open descriptor of the directory (the caller closes it) while it is still the one opened, for writing
        into it by name (`dir_fd`); None once it was removed or replaced, or cannot be opened."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return None
        found = os.fstat(fd)
        if (found.st_dev, found.st_ino) != self.identity:
            os.close(fd)
            return None
        return fd
