"""Who may use the dashboard: whoever holds its token, from a page the dashboard served itself.

The server listens on loopback only, and other users of the machine reach loopback too, so every request must carry
the token: a random 256-bit secret made when the server starts, printed once in the URL to open and kept in
`dashboard.json` in the power directory (0600, beside the journals it guards). The first visit carries it in the
URL (`/?token=...`, as Jupyter does); the server answers with a cookie that holds it (HttpOnly, SameSite=Strict,
named after the port) and sends the browser on to `/` without it, so the token leaves the address bar and history.

What is refused, with 403 and a line in the server's log:
- a request without the token, or with another (compared in constant time);
- a request whose Host is not this server's loopback address and port (a DNS-rebinding page names its own host);
- an action (POST) whose Origin is not this server's (a page of another site posting into this one: CSRF), or that
  lacks the `X-Popkit-Token` header, which only a page the server served can know (it is in that page).

What the token does not stop: any process that runs as the same OS user, an agent included, can read the file and
act as the dashboard. docs/dashboard.md says so.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from .._fs import read_file, write_file_atomically
from .._lock import FileLock
from ..errors import PowerModeError
from ..keys import DASHBOARD_FILE, DASHBOARD_LOCK

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-popkit-token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Access:
    """The rules of one running server: its token and the port it answers on."""

    token: str
    port: int

    @property
    def cookie(self) -> str:
        return f"popkit_power_dashboard_{self.port}"  # cookies ignore ports: one server's must not be another's

    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(f"{name}:{self.port}" for name in LOOPBACK_NAMES)

    def allowed_origins(self) -> frozenset[str]:
        return frozenset(f"http://{host}" for host in self.allowed_hosts())

    def holds_token(self, given: str | None) -> bool:
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.token.encode())

    def refusal(self, method: str, headers: Any, query_token: str | None, cookie: str | None) -> str | None:
        """Why a request is refused (None when it is not): `headers` a case-insensitive mapping."""
        host = headers.get("host")
        if host not in self.allowed_hosts():
            return f"Host {host!r} is not this dashboard's address"
        if method not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if origin not in self.allowed_origins():
                return f"Origin {origin!r} is not this dashboard's: actions come only from its own page"
            if not self.holds_token(headers.get(TOKEN_HEADER)):
                return f"no valid {TOKEN_HEADER} header: actions come only from the dashboard's own page"
        if self.holds_token(query_token) or self.holds_token(cookie):
            return None
        return "no valid token (open the URL the dashboard printed, with its ?token=)"


def url(port: int, token: str) -> str:
    return f"http://127.0.0.1:{port}/?token={token}"


# -- dashboard.json: the dashboards running for a power directory ---------------------------------------------------
#
# {"dashboards": {"<pid>": {"url", "port", "token", "pid", "pid_start", "session", "mode"}, ...}}: one entry for each
# running dashboard (a foreground one and the coordinator's may run at once), written and removed by its own process
# under dashboard.lock, so one stopping never takes another's entry along. An entry whose process is gone (killed:
# nothing removed it) is dropped when the file is next written, and never read as running.

def write_address(power_dir: str, *, port: int, token: str, session: str, mode: str) -> str:
    """Add (or replace) this process's entry in `dashboard.json` (0600, replaced whole, never through a link);
    return its path."""
    from ..processes import start_time

    entry = {"url": url(port, token), "port": port, "token": token, "pid": os.getpid(),
             "pid_start": start_time(os.getpid()), "session": session, "mode": mode}
    with FileLock(os.path.join(power_dir, DASHBOARD_LOCK)):
        entries = {key: value for key, value in _entries(power_dir).items() if _running(value)}
        entries[str(os.getpid())] = entry
        return _write(power_dir, entries)


def read_address(power_dir: str, *, pid: int | None = None, session: str | None = None) -> dict[str, Any] | None:
    """The entry of a running dashboard: the one of process `pid`, else one showing `session`, else the newest;
    None when none runs (or the file cannot be read)."""
    running = [entry for entry in _entries(power_dir).values() if _running(entry)]
    if pid is not None:
        running = [entry for entry in running if entry.get("pid") == pid]
    if session is not None:
        running = [entry for entry in running if entry.get("session") == session] or running
    return running[-1] if running else None


def remove_address(power_dir: str) -> None:
    """Remove this process's entry (the file with it when it was the last)."""
    try:
        with FileLock(os.path.join(power_dir, DASHBOARD_LOCK)):
            entries = {key: value for key, value in _entries(power_dir).items()
                       if key != str(os.getpid()) and _running(value)}
            if entries:
                _write(power_dir, entries)
            else:
                try:
                    os.unlink(os.path.join(power_dir, DASHBOARD_FILE))
                except FileNotFoundError:
                    pass
    except OSError as error:  # the power directory went away meanwhile: there is nothing left to clean
        log.warning("dashboard.json not updated: %s", error)


def _entries(power_dir: str) -> dict[str, dict[str, Any]]:
    try:
        found = orjson.loads(read_file(os.path.join(power_dir, DASHBOARD_FILE), 1 << 20))
    except (OSError, orjson.JSONDecodeError, PowerModeError):
        return {}
    entries = found.get("dashboards") if isinstance(found, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {key: value for key, value in entries.items() if isinstance(value, dict)}


def _write(power_dir: str, entries: dict[str, dict[str, Any]]) -> str:
    path = os.path.join(power_dir, DASHBOARD_FILE)
    write_file_atomically(path, orjson.dumps({"dashboards": entries}), durable=False)
    return path


def _running(entry: dict[str, Any]) -> bool:
    """Whether the process that wrote `entry` still runs (the same process: its start time matches)."""
    from ..processes import still_running

    pid, started = entry.get("pid"), entry.get("pid_start")
    if not isinstance(pid, int) or pid <= 0:
        return False
    known = still_running(pid, started if isinstance(started, int) else None)
    if known is not None:
        return known
    try:  # no /proc: whether the pid exists is all that can be told
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process has that pid now
        return False
    return True
