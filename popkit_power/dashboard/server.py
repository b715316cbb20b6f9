"""Serving the dashboard: on loopback only, on a port of its own (or the one asked for), with a new token each time.

    Dashboard(session, ...).open()   read the session, bind 127.0.0.1:PORT, write dashboard.json (0600); the URL
    dashboard.serve()                answer until SIGINT or SIGTERM (the foreground command), or
    dashboard.serve_in_thread()      ... in a thread of its own (the coordinator's `start --dashboard`)
    dashboard.close()                stop answering, close every page's feed, remove dashboard.json

uvicorn serves the Starlette application (app.py). Why these: a live page needs a server that holds many open
event streams at once without a thread each (ASGI on asyncio), answers keep-alive requests at once (the standard
library's http.server, here, delays each by 44 ms: Nagle's algorithm against delayed acknowledgements), and is kept
by people who fix such things; sse-starlette formats the event stream, with its keep-alive pings and the end of
streams at shutdown. None of it is imported by the hook or by any other command.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from ..errors import SessionError
from ..session import Session
from .access import Access, new_token, remove_address, url, write_address
from .app import LIVE_MODE, REPLAY_MODE, make_app
from .feed import Feed

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: How long open pages (each holding an event stream) may delay a stop.
SHUTDOWN_SECONDS = 2


class Dashboard:
    """One server for one session: live (`replay` False: it follows the journal and takes actions) or a replay."""

    def __init__(self, session: Session, *, port: int = 0, replay: bool = False, doctor: bool = True,
                 project_dir: str | None = None) -> None:
        self.session = session
        self.replay = replay
        self.port = port
        self.project_dir = project_dir or os.getcwd()
        checks = None if replay or not doctor else self._problems
        self.feed = Feed(session, doctor=checks, follow=not replay)
        self._server: Any = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        self.address_file: str | None = None

    def _problems(self) -> list[dict[str, Any]]:
        from ..setup.doctor import FAIL, OK, run_all

        return [{"level": "FAIL" if check.verdict == FAIL else "warn", "check": check.name, "text": check.found}
                for check in run_all(self.session.power_dir, self.project_dir) if check.verdict != OK]

    def open(self) -> str:
        """Read the session, bind the port, write dashboard.json; the URL to open (with the token)."""
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, self.port))
        except OSError as error:
            sock.close()
            raise SessionError(f"cannot listen on {LOOPBACK}:{self.port} ({error.strerror}): choose another --port, "
                               f"or 0 for any free one") from None
        sock.listen(128)
        self._socket = sock
        self.port = sock.getsockname()[1]
        token = new_token()
        access = Access(token, self.port)
        self.feed.start()
        if self.replay:
            self.feed.ready.wait()  # the slider's range is the whole journal's
        mode = REPLAY_MODE if self.replay else LIVE_MODE
        writable = None if self.replay else Session(self.session.power_dir, self.session.id)
        app = make_app(self.feed, access, mode=mode, writable=writable)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=SHUTDOWN_SECONDS, ws="none")
        self._server = uvicorn.Server(config)
        self.url = url(self.port, token)
        if not self.replay:
            self.address_file = write_address(self.session.power_dir, port=self.port, token=token,
                                              session=self.session.id, mode=mode)
        return self.url

    def serve(self) -> None:
        """Answer in this thread until SIGINT or SIGTERM (uvicorn's handlers), then close."""
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self.close()

    def serve_in_thread(self) -> None:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="popkit-power-dashboard", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self.feed.close("the dashboard stopped")
        if self._thread is not None:
            self._thread.join(timeout=SHUTDOWN_SECONDS + 3)
        if self._socket is not None:
            self._socket.close()
        if not self.replay:
            remove_address(self.session.power_dir)
