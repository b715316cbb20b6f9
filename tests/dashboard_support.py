"""A real dashboard server for tests (dashboard/server.py on a free loopback port, in a thread), an HTTP client that
holds its token as its page does, and a reader of its event stream."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson

from popkit_power.dashboard.access import TOKEN_HEADER
from popkit_power.dashboard.server import Dashboard
from popkit_power.session import Session


class Served:
    """A running dashboard: its URL, port and token, and a client that acts as its own page would."""

    def __init__(self, url: str) -> None:
        """`url`: the address a dashboard printed (with its token)."""
        self.url = url
        self.dashboard: Dashboard | None = None  # the server, when this process runs it (`serving`)
        self.port = int(url.split(":")[2].split("/")[0])
        self.token = self.url.split("token=", 1)[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.base, cookies={f"popkit_power_dashboard_{self.port}": self.token},
                                   timeout=30)

    def close(self) -> None:
        self.client.close()

    def post(self, action: str, body: Any, **headers: str) -> httpx.Response:
        """POST an action as the page does: its Origin, the token header, JSON."""
        sent = {"origin": self.base, TOKEN_HEADER: self.token, "content-type": "application/json", **headers}
        return self.client.post(f"/api/{action}", content=orjson.dumps(body), headers=sent)

    def messages(self, until: Any, *, timeout: float = 30) -> list[tuple[str, Any]]:
        """The event stream's messages, (event, data), read until `until(messages)` is true; AssertionError when it
        is not within `timeout` seconds."""
        found: list[tuple[str, Any]] = []
        done = threading.Event()
        with self.client.stream("GET", "/events", timeout=httpx.Timeout(timeout)) as response:
            assert response.status_code == 200, response.read()
            event = None
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and event is not None:
                    found.append((event, orjson.loads(line[len("data: "):])))
                    event = None
                    if until(found):
                        done.set()
                        break
        assert done.is_set(), f"the stream ended before the condition held: {[name for name, _ in found]}"
        return found


def join(session: Session, key: str, name: str) -> None:
    """Agent `key` joins `session` as `name`, as its hook's SessionStart records it."""
    session.publish("agent.joined", {"name": name, "cwd": "/srv/project"}, sender=key)


def events_of(session: Session, event_type: str) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event.get("type") == event_type]


def last(messages: list[tuple[str, Any]], event: str) -> Any:
    return next(data for name, data in reversed(messages) if name == event)


@contextlib.contextmanager
def serving(session: Session, **options: Any) -> Iterator[Served]:
    """The dashboard of `session` (opened read-only, as the command opens it) on a free port, stopped after."""
    options.setdefault("doctor", False)  # doctor's checks take a second or more: only where a test asks for them
    dashboard = Dashboard(Session(session.power_dir, session.id, read_only=True), **options)
    dashboard.open()
    dashboard.serve_in_thread()
    assert dashboard.url is not None
    served = Served(dashboard.url)
    served.dashboard = dashboard
    try:
        yield served
    finally:
        served.client.close()
        dashboard.close()
