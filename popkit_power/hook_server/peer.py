"""Which process is on the other end of a loopback connection: how an HTTP hook call learns its agent's Claude Code
process, which a command hook reads from CLAUDE_PID and an HTTP request carries nowhere (docs/claude-code.md, "HTTP
hooks, as Claude Code 2.1.330 sends them").

Linux only: /proc/net/tcp names the client socket's inode by its two ports, and the process holding
`socket:[inode]` among its file descriptors is the caller. It scans every process's descriptors (5-9 ms measured),
so it is done only when a handler asks for the pid (an agent's first record), never per call; it must run while the
connection is open. Only processes of this user (or all, as root) can be seen: a pid not found is None, which the
handlers record as unknown, as they do for a command hook without CLAUDE_PID.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from ..processes import PROC


def peer_pid(client_port: int, server_port: int, proc: str = PROC) -> int | None:
    """The pid holding the loopback socket 127.0.0.1:`client_port` -> 127.0.0.1:`server_port`, or None."""
    inode = _socket_inode(client_port, server_port, proc)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    try:
        pids = [name for name in os.listdir(proc) if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:  # gone, or another user's
            continue
        for name in names:
            try:
                if os.readlink(f"{fd_dir}/{name}") == target:
                    return int(pid)
            except OSError:
                continue
    return None


def _socket_inode(client_port: int, server_port: int, proc: str) -> str | None:
    local, remote = f":{client_port:04X}", f":{server_port:04X}"
    for table in ("net/tcp", "net/tcp6"):
        try:
            with open(f"{proc}/{table}", encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 9 and fields[1].endswith(local) and fields[2].endswith(remote):
                        return fields[9] if fields[9] != "0" else None
        except OSError:
            continue
    return None


class CallEnviron(Mapping[str, str]):
    """What a command hook would find in its environment, for one HTTP call: `fixed`, and CLAUDE_PID looked up from
    the connection the first time a handler reads it (`pid()`), not before."""

    PID = "CLAUDE_PID"

    def __init__(self, fixed: Mapping[str, str], pid: Callable[[], int | None]) -> None:
        self._fixed = dict(fixed)
        self._pid = pid

    def __getitem__(self, key: str) -> str:
        if key == self.PID and key not in self._fixed:
            found = self._pid()
            self._fixed[key] = str(found) if found is not None else ""
        return self._fixed[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**self._fixed, self.PID: ""})

    def __len__(self) -> int:
        return len({**self._fixed, self.PID: ""})
