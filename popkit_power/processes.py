"""The process table (Linux /proc): a process's name, parent, state and start time, and whether a process recorded
earlier still runs.

A pid alone does not name a process for long: after it exits the OS can give the same number to another one. So an
agent's Claude Code process is recorded as its pid together with its start time (`pid_start`, clock ticks since
boot, field 22 of /proc/<pid>/stat), and it still runs only if a process with that pid exists, started at that time,
and is not a zombie. Where there is no /proc (macOS, Windows) nothing here can tell, and callers fall back on
silence (coordinator/decide.py).

This module is on the hook's hot path (the hook records `pid_start` when an agent joins): it imports only `os`.
"""

from __future__ import annotations

import os

PROC = "/proc"


def read_stat(pid: int, proc: str = PROC) -> tuple[str, str, int, int | None] | None:
    """(name, state letter, parent pid, start time in clock ticks since boot or None if the line is cut short) of
    process `pid`, or None if it cannot be read (gone, no /proc, or any other failure)."""
    try:
        return _stat(pid, proc)
    except OSError:
        return None


def _stat(pid: int, proc: str) -> tuple[str, str, int, int | None] | None:
    """`read_stat`, but an error of this process's own (no file descriptor left, no memory) is raised, not taken
    for the process being gone: None means gone (or a line that cannot be read as a process's). The name sits in
    parentheses and may itself hold spaces and parentheses, so the fields after it are counted from the last ')'."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            line = handle.read(4096)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    try:
        opening, closing = line.index(b"("), line.rindex(b")")
        fields = line[closing + 1:].split()
        started = int(fields[19]) if len(fields) > 19 else None
        return line[opening + 1:closing].decode("utf-8", "replace"), fields[0].decode(), int(fields[1]), started
    except (ValueError, IndexError):
        return None


def start_time(pid: int, proc: str = PROC) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if that cannot be read."""
    stat = read_stat(pid, proc)
    return None if stat is None else stat[3]


def can_check(proc: str = PROC) -> bool:
    """Whether this machine has a process table to look in."""
    return os.path.isdir(f"{proc}/self")


def still_running(pid: int, started: int | None, proc: str = PROC) -> bool | None:
    """True if the process recorded as `pid` (started at `started`, when known) still runs; False if it is gone,
    a zombie, or the pid now belongs to a process started at another time; None where this cannot be told: no
    process table, or an error of this process's own while looking (no file descriptor left), which is never
    evidence that the other process died."""
    if not can_check(proc):
        return None
    try:
        stat = _stat(pid, proc)
    except OSError:
        return None
    if stat is None or stat[1] in ("Z", "X"):
        return False
    return started is None or stat[3] == started
