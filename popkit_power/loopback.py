"""Serving on loopback: a socket on 127.0.0.1 (bound so that answers are not delayed) and an ASGI application
served by uvicorn in a thread of its own, for the dashboard and for the hooks over HTTP. Imported only by those."""

from __future__ import annotations

import socket
import threading
from typing import Any

from .errors import SessionError

LOOPBACK = "127.0.0.1"


def bound(port: int, option: str, *, what: str | None = None) -> socket.socket:
    """A socket bound to 127.0.0.1:`port` (0: any free one); SessionError naming `option` when it cannot be, and
    what to do: `what`, or choose another port or 0."""
    # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets made with it, and with
    # Nagle on, each answer on a kept-alive connection waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as error:
        sock.close()
        advice = what or f"choose another {option}, or 0 for any free one"
        raise SessionError(f"cannot listen on {LOOPBACK}:{port} ({error.strerror}): {advice}") from None
    return sock


def check_port(port: int, option: str) -> None:
    """SessionError, naming `option`, when `port` (not 0) cannot be listened on at 127.0.0.1 now."""
    if port != 0:
        bound(port, option).close()


class Served:
    """`Served(app, sock, name, shutdown_seconds[, tls=...])`: uvicorn answering `app` on the listening `sock`, in a
    daemon thread named `name`, from `start()` until `stop()` (which waits for open requests at most
    `shutdown_seconds`)."""

    def __init__(self, app: Any, sock: socket.socket, name: str, shutdown_seconds: int, *,
                 tls: tuple[str, str] | None = None) -> None:
        """`tls`: (certificate, key) files to answer over TLS with."""
        import uvicorn

        certificate, key = tls or (None, None)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=int(shutdown_seconds), ws="none", ssl_certfile=certificate,
                                ssl_keyfile=key)
        self.server = uvicorn.Server(config)
        self.socket = sock
        self.socket_port = sock.getsockname()[1]
        self.shutdown_seconds = shutdown_seconds
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)

    def start(self, seconds: float = 10.0) -> None:
        """Start answering, and wait until uvicorn has (at most `seconds`); SessionError when its thread ended
        first (a certificate it cannot load, say: uvicorn logs why) or it did not start in time."""
        import time

        self.thread.start()
        deadline = time.monotonic() + seconds
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                self.socket.close()
                raise SessionError(f"the server on {LOOPBACK}:{self.socket_port} did not start (see the messages "
                                   f"above)")
            time.sleep(0.005)

    def alive(self) -> bool:
        return self.thread.is_alive() and not self.server.should_exit

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.ident is not None:
            self.thread.join(timeout=self.shutdown_seconds + 3)
        self.socket.close()
