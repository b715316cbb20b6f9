"""Where Power Mode keeps its files: the power directory, its sessions, and the active-session pointer.

    <power dir>/                 POPKIT_POWER_HOME, else <git common dir>/popkit-power, else the nearest
                                 .popkit-power here or above, else ./.popkit-power
        config.json              optional settings (config.py)
        origin                   this power directory's origin id, written once
        active                   the id of the active session; absent when Power Mode is off
        hook.log                 the hook's one-line error log
        sessions/<session id>/   journal/, journal.lock, agents/, snapshots/

A power directory can arrive with a project's files (an unpacked archive's `.popkit-power`), so the hook speaks
from one only when it is trusted: named in $POPKIT_POWER_HOME, or marked in the user's own state directory (outside
every project, by device and inode) when popkit-power on this machine made a session active in it or was told to
trust it (`trust`).

Worktrees of one repository share one power directory, found by reading `.git` files rather than running git. Every
name that comes from outside (session ids, agent keys) goes through `safe_name`, so no path can leave the directory,
and every file and directory under it is opened through `_fs`, which never follows a symlink.
This module is on the hook's hot path: it imports only `os` and the project's lean modules. Every file and folder
name here is written in keys.py.
"""

# No `from __future__ import annotations` on the hook's off path (docs/hot-path.md): quoted annotations instead.

import os

from ._fs import check_dir, open_file, private_dir, read_file, write_all, write_file_atomically
from .errors import PowerModeError, SessionError, UnsafePathError
from .keys import ACTIVE_FILE, APP_DIR, LOCAL_DIR, ORIGIN_FILE, TEMPORARY_SUFFIX, TRUSTED_DIR, host_name, sessions_dir

ENV_HOME = "POPKIT_POWER_HOME"
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_MAX_NAME = 120


def find_power_dir(cwd: str | None = None, environ: dict[str, str] | None = None) -> str:
    """The power directory for `cwd`: $POPKIT_POWER_HOME, else `<git common dir>/popkit-power`, else the nearest
    `.popkit-power` in `cwd` or above it, else `<cwd>/.popkit-power`."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_HOME)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    start = os.path.abspath(cwd or os.getcwd())
    common = git_common_dir(start)
    if common is not None:
        return os.path.join(common, APP_DIR)
    return _existing_above(start) or os.path.join(start, LOCAL_DIR)


def _existing_above(start: str) -> str | None:
    """Outside git: the nearest `.popkit-power` in `start` or a folder above it, so a subfolder of a project finds
    the project's power directory, as git finds `.git` (whether it is safe to use is checked where it is used)."""
    directory = start
    while True:
        candidate = os.path.join(directory, LOCAL_DIR)
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def git_common_dir(start: str) -> str | None:
    """The git common directory of the work tree holding `start`, or None; reads `.git` files, never runs git.

    A main work tree has a `.git` directory. A linked worktree has a `.git` file saying `gitdir: <path>`, and that
    directory holds a `commondir` file naming the shared one (relative to itself).
    """
    directory = start
    while True:
        dot_git = os.path.join(directory, ".git")
        if os.path.isdir(dot_git):
            return dot_git
        if os.path.isfile(dot_git):
            return _common_dir_of_gitfile(directory, dot_git)
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _common_dir_of_gitfile(work_tree: str, dot_git: str) -> str | None:
    try:
        with open(dot_git, encoding="utf-8") as handle:
            line = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not line.startswith("gitdir:"):
        return None
    git_dir = os.path.normpath(os.path.join(work_tree, line[len("gitdir:"):].strip()))
    try:
        with open(os.path.join(git_dir, "commondir"), encoding="utf-8") as handle:
            common = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return git_dir  # a submodule's or a plain separate git dir: it is its own common dir
    return os.path.normpath(os.path.join(git_dir, common))


def safe_name(name: str, what: str = "name") -> str:
    """`name` itself if it is a plain file name made of [A-Za-z0-9._-] (not '.', '..' or hidden), else a readable
    escaped form that still is; raise SessionError if nothing usable remains."""
    if not isinstance(name, str) or not name:
        raise SessionError(f"{what} must be a non-empty string")
    if len(name) <= _MAX_NAME and name[0] != "." and all(char in _SAFE for char in name):
        return name
    # "~<hex>." per escaped character: the "." ends the code point, and a literal "." is itself escaped, so two
    # different names can never escape to the same file name.
    escaped = "".join(char if char in _SAFE and char != "." else f"~{ord(char):x}." for char in name)
    if len(escaped) > _MAX_NAME:
        # A long name keeps its readable start plus a 128-bit digest of the whole, so distinct names stay distinct
        # (a CRC-32 here collided after ~10 M tries). hashlib costs a few ms to import, so only this rare path does.
        import hashlib

        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        escaped = f"{escaped[:_MAX_NAME - 33]}~{digest}"
    return escaped


def check_session_id(session_id: str) -> str:
    """Return `session_id` if it is allowed as a directory name as it is; raise SessionError naming it otherwise."""
    if not isinstance(session_id, str) or safe_name(session_id or "-", "session id") != session_id:
        raise SessionError(f"session id {session_id!r} is not allowed: use letters, digits, '-', '_' and '.'; "
                           f"it must not start with '.'")
    return session_id


def session_dir(power_dir: str, session_id: str) -> str:
    """The directory of one session (which may not exist yet)."""
    return os.path.join(sessions_dir(power_dir), check_session_id(session_id))


def check_power_dir(power_dir: str, *, for_writing: bool = True) -> str:
    """`power_dir` if it and its `sessions/` are safe to use, or do not exist yet (`_fs.check_dir`: real
    directories, yours, not writable by others); raise UnsafePathError naming the problem otherwise."""
    for path in (power_dir, sessions_dir(power_dir)):
        try:
            check_dir(path, for_writing=for_writing)
        except FileNotFoundError:
            break
    return power_dir


def existing_session_dir(power_dir: str, session_id: str, *, for_writing: bool = True) -> str:
    """The directory of an existing session, checked like every directory under the power directory (only as a
    real directory, not a link, when not `for_writing`); raise SessionError naming it (and the known ones) if
    there is none."""
    path = session_dir(power_dir, session_id)
    check_power_dir(power_dir, for_writing=for_writing)
    try:
        check_dir(path, for_writing=for_writing)
    except FileNotFoundError:
        known = list_sessions(power_dir)
        hint = f"; known sessions: {', '.join(known[-5:])}" if known else "; there are no sessions yet"
        raise SessionError(f"unknown session {session_id!r} in {power_dir}{hint}") from None
    return path


def list_sessions(power_dir: str) -> list[str]:
    """Session ids in the power directory, oldest first (ids start with their UTC start time)."""
    try:
        names = os.listdir(sessions_dir(power_dir))
    except FileNotFoundError:
        return []
    return sorted(name for name in names if not name.startswith("."))


def active_session(power_dir: str) -> str | None:
    """The id of the active session, or None when Power Mode is off (this is the hook's first and cheapest check).

    Raises SessionError when `active` holds something that is not a session id (invalid UTF-8, a bad name) and
    UnsafePathError when it is a symlink or a directory: the file is never followed out of the power directory.
    """
    return _active(power_dir)[0]


def trusted_active_session(power_dir: str) -> str | None:
    """The hook's view of `active_session`: None also when the power directory is not trusted (`is_trusted`), so
    a planted one (an unpacked archive's `.popkit-power`) puts nothing into any agent's context. One stat more than
    `active_session`, and only with Power Mode on."""
    session_id, info = _active(power_dir)
    if session_id is None or info is None or _named(power_dir) or os.path.exists(_marker(info)):
        return session_id
    return session_id if _adopted(power_dir, session_id) else None


def _adopted(power_dir: str, session_id: str) -> bool:
    """Whether a power directory with no marker is this machine's all the same, as one made active by a version
    from before the markers is: a coordinator runs for its active session here now (its lease is held, and a lease
    is a lock that only a live process on this machine holds, which a planted directory's files cannot fake). Then
    it is marked, and trusted from then on. The rare path of the hook: only without a marker."""
    from .journal.lease import held

    try:
        if not held(session_dir(power_dir, session_id)):
            return False
        trust(power_dir)
    except (OSError, PowerModeError):
        return False
    return True


def _active(power_dir: str) -> tuple[str | None, os.stat_result | None]:
    """`active_session`, and what `lstat` said of the power directory."""
    path = os.path.join(power_dir, ACTIVE_FILE)
    try:
        info = check_dir(power_dir)  # one lstat: nothing is read through a power directory that is a link, or not ours
        raw = read_file(path, 4096)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    try:
        session_id = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SessionError(f"{path} does not hold a session id (it is not UTF-8 text); turn Power Mode off with: "
                           f"popkit-power stop, or delete the file") from None
    if not session_id:
        return None, info
    try:
        return check_session_id(session_id), info
    except SessionError:
        from .display import quoted  # only for this message: the hook's off path imports this module

        raise SessionError(f"{path} does not hold a session id ({quoted(session_id, 60)}); turn Power Mode off with: "
                           f"popkit-power stop, or delete the file") from None


def set_active_session(power_dir: str, session_id: str | None) -> None:
    """Make `session_id` the active session (atomically), or turn Power Mode off with None. Making one active is
    what popkit-power on this machine does to a power directory of its own (start, join), so it is trusted from
    then on (`trust`)."""
    path = os.path.join(power_dir, ACTIVE_FILE)
    if session_id is None:
        try:
            os.unlink(path)  # unlink removes a link itself, never its target
        except FileNotFoundError:
            pass
        return
    try:
        trust(power_dir)
    except (OSError, UnsafePathError):  # no marker: the hook stays silent here, and status says why and what to do
        pass
    write_private_file(path, check_session_id(session_id) + "\n")


# -- trust: whether this machine made the power directory its own ------------------------------------------------

def trust_dir() -> str:
    """Where this user's trust markers are, outside every project: $XDG_STATE_HOME/popkit-power/trusted, else
    ~/.local/state/popkit-power/trusted. Read from the process's environment (the hook's is the user's)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, APP_DIR, TRUSTED_DIR)


def _marker(info: os.stat_result) -> str:
    """The marker of the directory `info` describes: named by its device and inode, so a copy, an unpacked archive
    or a directory made again in its place is another directory, never trusted by this one's marker."""
    return os.path.join(trust_dir(), f"{info.st_dev:x}-{info.st_ino:x}")


def _named(power_dir: str) -> bool:
    """Whether the user named this power directory in $POPKIT_POWER_HOME (a choice no file in a project makes)."""
    named = os.environ.get(ENV_HOME)
    return named is not None and named != "" and os.path.abspath(os.path.expanduser(named)) == power_dir


def is_trusted(power_dir: str) -> bool:
    """Whether the hook speaks from this power directory: it is $POPKIT_POWER_HOME, or popkit-power on this machine
    made a session active in it (`set_active_session`) or was told to trust it (`popkit-power trust`). True for a
    directory that does not exist yet (what popkit-power makes is its own)."""
    if _named(power_dir):
        return True
    try:
        info = check_dir(power_dir, for_writing=False)
    except FileNotFoundError:
        return True
    if os.path.exists(_marker(info)):
        return True
    session_id = active_session(power_dir)
    return session_id is not None and _adopted(power_dir, session_id)


def trust(power_dir: str) -> str:
    """Trust the power directory from now on (the marker holds its path, for people); returns the marker's path."""
    marker = _marker(check_dir(private_dir(power_dir)))
    if not os.path.exists(marker):
        private_dir(trust_dir())
        write_private_file(marker, power_dir + "\n", durable=False)
    return marker


def write_private_file(path: str, text: str, *, durable: bool = True, temporary: str | None = None) -> None:
    """Replace `path` with `text` (UTF-8), all or nothing; see `_fs.write_file_atomically`."""
    write_file_atomically(path, text.encode("utf-8"), durable=durable, temporary=temporary)


def read_text(path: str, limit: int = 1 << 20) -> str:
    """A small UTF-8 file under the power directory, read without following a link (FileNotFoundError if absent)."""
    raw = read_file(path, limit)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnsafePathError(f"{path} is not UTF-8 text (byte {error.start})") from None


def origin_id(power_dir: str) -> str:
    """This power directory's origin id (host name plus random suffix), created once and then read."""
    path = os.path.join(power_dir, ORIGIN_FILE)
    try:
        existing = read_text(path, 4096).strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    private_dir(power_dir)
    host = safe_name(host_name().split(".")[0] or "host", "host")[:40]
    candidate = f"{host}-{os.urandom(3).hex()}"
    temporary = f"{path}.{os.getpid()}{TEMPORARY_SUFFIX}"
    fd = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        write_all(fd, (candidate + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    try:  # link() publishes a complete file or fails: when processes race, the first one's id wins for all
        os.link(temporary, path)
    except FileExistsError:
        candidate = read_text(path, 4096).strip() or candidate
    finally:
        os.unlink(temporary)
    return candidate
