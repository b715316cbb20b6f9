"""File-system primitives for everything under the power directory: no symlink is ever followed, modes are exact,
and a replaced file is either the old one or the whole new one.

A power directory can come from somewhere the user did not make it (an unpacked tarball can ship `.popkit-power/`
with planted symlinks), so:

- every file under it is opened with `O_NOFOLLOW` through `open_file`, and must turn out to be a regular file (and,
  to be written, one without other hard links);
- every directory under it is checked with `lstat` by `private_dir` before it is used: a real directory (not a
  link), owned by this user, not writable by group or others; missing ones are created 0700;
- modes are set with `fchmod`/`chmod` after creation, so the umask (even 0277) cannot change them;
- `write_file_atomically` writes all of a temporary file (a short write on a full disk is an error, not a truncated
  file), optionally fsyncs, and only then renames it over the old one; on any failure the old file is untouched
  and the temporary file is removed.

This module is on the hook's hot path: it imports only `errno`, `os` and `stat` (loaded by the interpreter at start),
and the project's errors.py and keys.py.
"""

# No `from __future__ import annotations` on the hook's off path (docs/hot-path.md): quoted annotations instead.

import errno
import os
import stat
from _thread import get_ident  # a built-in module, imported by the interpreter already: the hook's path

from .errors import UnsafePathError
from .keys import TEMPORARY_SUFFIX

DIR_MODE = 0o700
FILE_MODE = 0o600
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_GETUID = getattr(os, "getuid", None)


def open_file(path: str, flags: int, mode: int = FILE_MODE, *, dir_fd: int | None = None) -> int:
    """`os.open` for a file under the power directory: never through a symlink, only a regular file, and a file this
    call creates gets exactly `mode`. Raises UnsafePathError for a symlink or a non-file, OSError otherwise. With
    `dir_fd`, `path` is a name in that open directory (`private_subdir`)."""
    try:
        # O_NONBLOCK: a named pipe planted in place of a file would block open() (the hook would outlive Claude
        # Code's timeout, which lets a guarded call through); a regular file ignores it
        fd = os.open(path, flags | NOFOLLOW | _CLOEXEC | _NONBLOCK, mode, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink as the last component
            raise UnsafePathError(f"{path} is a symbolic link; popkit-power never follows links in its "
                                  f"directory") from None
        if error.errno == errno.EISDIR:
            raise UnsafePathError(f"{path} is a directory, not a file") from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise UnsafePathError(f"{path} is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise UnsafePathError(f"{path} is not a regular file")
        if info.st_nlink > 1 and flags & (os.O_WRONLY | os.O_RDWR):
            raise UnsafePathError(f"{path} has other hard links; popkit-power writes only files of its own")
        if flags & os.O_CREAT and info.st_mode & 0o7777 != mode:
            os.fchmod(fd, mode)  # created under a umask, or left so by someone else: make it what it must be
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(path: str, limit: int = 1 << 20) -> bytes:
    """The first `limit` bytes of a file under the power directory (FileNotFoundError if it is not there)."""
    fd = open_file(path, os.O_RDONLY)
    try:
        chunks = []
        left = limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def check_dir(path: str, *, for_writing: bool = True) -> os.stat_result:
    """Raise UnsafePathError unless `path` is a real directory (not a link) and, to be written in, owned by this
    user and not writable by group or others; FileNotFoundError if it does not exist. Only reading (a copy of a
    journal, a checkout made under umask 002) needs only the first: every file in it is opened without following
    links anyway. Returns what `lstat` said of it."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafePathError(f"{path} is a symbolic link; popkit-power never follows links in its directory "
                              f"(point POPKIT_POWER_HOME at {os.path.realpath(path)} if that is meant)")
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{path} is not a directory")
    if not for_writing:
        return info
    if _GETUID is not None and info.st_uid != _GETUID():
        raise UnsafePathError(f"{path} belongs to user id {info.st_uid}, not to you; popkit-power uses only its own "
                              f"directories")
    if info.st_mode & 0o022:
        raise UnsafePathError(f"{path} is writable by others (mode {info.st_mode & 0o777:o}); "
                              f"fix it with: chmod 700 {path}")
    return info


def private_dir(path: str) -> str:
    """Make sure `path` is a private directory: check it if it exists (`check_dir`), else create it, and its
    missing parents, with mode 0700 exactly. Returns `path`."""
    try:
        check_dir(path)
        return path
    except FileNotFoundError:
        pass
    parent = os.path.dirname(path)
    if parent and parent != path and not os.path.isdir(parent):
        private_dir(parent)
    try:
        os.mkdir(path, DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode goes through the umask
    except FileExistsError:
        pass  # another process made it first
    check_dir(path)
    return path


def private_subdir(parent: str, name: str, *, identity: tuple[int, int] | None = None) -> int:
    """An fd on the private directory `name` in `parent` (made 0700 if missing; `parent` itself is never made), so
    that what is written through it lands there even if `parent` is replaced meanwhile. With `identity` (device,
    inode), FileNotFoundError unless `parent` is still that directory: a replacement is not written into."""
    check_dir(parent)
    parent_fd = os.open(parent, os.O_RDONLY | NOFOLLOW | _CLOEXEC | getattr(os, "O_DIRECTORY", 0))
    try:
        found = os.fstat(parent_fd)
        if identity is not None and (found.st_dev, found.st_ino) != identity:
            raise FileNotFoundError(errno.ENOENT, "replaced by another directory", parent)
        try:
            os.mkdir(name, DIR_MODE, dir_fd=parent_fd)
        except FileExistsError:
            pass
        fd = os.open(name, os.O_RDONLY | NOFOLLOW | _CLOEXEC | getattr(os, "O_DIRECTORY", 0), dir_fd=parent_fd)
    except NotADirectoryError:
        raise UnsafePathError(f"{os.path.join(parent, name)} is not a directory") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafePathError(f"{os.path.join(parent, name)} is a symbolic link; popkit-power never follows "
                                  f"links in its directory") from None
        raise
    finally:
        os.close(parent_fd)
    try:
        info = os.fstat(fd)
        if _GETUID is not None and info.st_uid != _GETUID():
            raise UnsafePathError(f"{os.path.join(parent, name)} belongs to user id {info.st_uid}, not to you")
        if info.st_mode & 0o7777 != DIR_MODE:
            os.fchmod(fd, DIR_MODE)  # made under a umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to `fd`, however many writes it takes; a write that takes nothing (a full disk) raises
    OSError(ENOSPC) rather than looping. Not for an append that must be one write (the journal's batch)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        view = view[written:]


def write_file_atomically(path: str, data: bytes, *, durable: bool = True, mode: int = FILE_MODE,
                          temporary: str | None = None, dir_fd: int | None = None) -> None:
    """Replace `path` with `data`: the old file or the whole new one, never a part.

    The temporary file is `temporary` when the caller holds a lock that makes a fixed name safe (a killed writer's
    leftover is then reused, never piled up), else `<path>.t<thread>.<pid>.tmp` (the coordinator answers hooks over
    HTTP from several threads of one process, which must not write each other's temporary file). It is created
    without following a link, written completely (a short write, such as on a full disk, raises OSError), fsynced
    with `durable`, and renamed over `path`; the directory is fsynced with `durable`. On any failure the temporary
    file is removed and `path` keeps its old content. With `dir_fd`, `path` is a name in that open directory,
    whatever stands at its path now.
    """
    temporary = temporary or f"{path}.t{get_ident()}.{os.getpid()}{TEMPORARY_SUFFIX}"
    try:
        os.unlink(temporary, dir_fd=dir_fd)  # a leftover, or a planted link: O_EXCL below then creates a fresh file
    except FileNotFoundError:
        pass
    fd = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode, dir_fd=dir_fd)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    if durable and dir_fd is not None:
        os.fsync(dir_fd)
    elif durable:
        fsync_dir(os.path.dirname(path))


def fsync_dir(directory: str) -> None:
    """Make a rename or a new file in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | NOFOLLOW)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: str | int) -> int:
    """Remove `<name>.<pid>.tmp` files (`<name>.t<thread>.<pid>.tmp` too) in `directory` (a path, or an open
    directory's fd) whose process is gone (left by a killed writer); return how many. Files named with a live pid
    are a write in progress and stay, and so do fixed names (written under a lock, and reused by the next
    writer)."""
    removed = 0
    try:
        if isinstance(directory, str):
            check_dir(directory)  # never list (and delete in) a directory a link points to
        names = os.listdir(directory)
    except (OSError, UnsafePathError):
        return 0
    for name in names:
        if not name.endswith(TEMPORARY_SUFFIX):
            continue
        pid_text = name[: -len(TEMPORARY_SUFFIX)].rpartition(".")[2]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue  # a fixed name belongs to a writer under a lock; a live pid is a write in progress
        try:
            if isinstance(directory, str):
                os.unlink(os.path.join(directory, name))
            else:
                os.unlink(name, dir_fd=directory)
            removed += 1
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
