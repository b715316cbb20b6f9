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
import os
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from .._fs import read_file, write_file_atomically
from ..keys import DASHBOARD_FILE

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


def write_address(power_dir: str, *, port: int, token: str, session: str, mode: str) -> str:
    """Write `dashboard.json` (0600) and return its path."""
    path = os.path.join(power_dir, DASHBOARD_FILE)
    write_file_atomically(path, orjson.dumps({"url": url(port, token), "port": port, "token": token,
                                              "pid": os.getpid(), "session": session, "mode": mode}), durable=False)
    return path


def read_address(power_dir: str) -> dict[str, Any] | None:
    """The running dashboard's address as `dashboard.json` holds it, None when there is none (or it is unreadable)."""
    try:
        found = orjson.loads(read_file(os.path.join(power_dir, DASHBOARD_FILE), 1 << 16))
    except (OSError, orjson.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def remove_address(power_dir: str) -> None:
    """Remove `dashboard.json` when it is this process's (a newer server's stays)."""
    found = read_address(power_dir)
    if found is not None and found.get("pid") == os.getpid():
        try:
            os.unlink(os.path.join(power_dir, DASHBOARD_FILE))
        except FileNotFoundError:
            pass
