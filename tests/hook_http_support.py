"""Hooks over HTTP for the tests: a session whose config.json turns them on, the coordinator's hook server answering
it in this process (`Served`), and a client that posts as Claude Code 2.1.330 does (one kept-alive connection, the
literal secret header, JSON bodies)."""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson

from popkit_power.hook_server.server import HookServer
from popkit_power.hook_transport import PATH, SECRET_HEADER, certificate_paths, ensure_certificate, ensure_secret
from popkit_power.setup.install import free_port


def turn_on_http(power_dir: str, port: int | None = None) -> tuple[int, str]:
    """Write hook_transport "http" and a free hook_port into config.json, and the secret: (port, secret)."""
    os.makedirs(power_dir, mode=0o700, exist_ok=True)
    path = os.path.join(power_dir, "config.json")
    config: dict[str, Any] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    config.update({"hook_transport": "http", "hook_port": port or free_port()})
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    ensure_certificate(power_dir)
    return config["hook_port"], ensure_secret(power_dir)


def trusting(power_dir: str) -> ssl.SSLContext:
    """A client's TLS context that trusts the project's certificate only, as Claude Code does with it."""
    return ssl.create_default_context(cafile=certificate_paths(power_dir)[0])


class Served:
    """The hook server of `power_dir` open, and a client to it."""

    def __init__(self, power_dir: str) -> None:
        self.power_dir = power_dir
        self.server = HookServer(power_dir)
        self.url = self.server.open()
        assert self.server.app is not None
        self.port = self.server.app.port
        self.secret = self.server.app._secret.decode("ascii")
        self.client = httpx.Client(headers={SECRET_HEADER: self.secret}, timeout=30, verify=trusting(power_dir))

    def post(self, payload: dict[str, Any] | bytes, **kwargs: Any) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return self.client.post(self.url, content=body, headers={"Content-Type": "application/json"}, **kwargs)

    def call(self, payload: dict[str, Any]) -> str | None:
        """What the hook answered this call with (as `hook.run` returns it): the body of a 200, None for a 204."""
        reply = self.post(payload)
        assert reply.status_code in (200, 204), (reply.status_code, reply.text)
        return reply.text if reply.status_code == 200 else None

    def close(self) -> None:
        self.client.close()
        self.server.close()


@contextmanager
def serving(power_dir: str) -> Iterator[Served]:
    served = Served(power_dir)
    try:
        yield served
    finally:
        served.close()


def raw_request(power_dir: str, port: int, request: bytes) -> bytes:
    """Send `request` as written (any Host, any header), over TLS, and return the whole answer."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain, \
            trusting(power_dir).wrap_socket(plain, server_hostname="127.0.0.1") as sock:
        sock.sendall(request)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ssl.SSLError, ConnectionResetError):  # the server closed after its answer without TLS's goodbye
            pass
    return b"".join(chunks)


def posting(port: int, secret: str, body: bytes, *, host: str | None = None, path: str = PATH,
            method: str = "POST", extra: str = "") -> bytes:
    """A request as bytes, for `raw_request`."""
    host = host or f"127.0.0.1:{port}"
    secret_line = f"{SECRET_HEADER}: {secret}\r\n" if secret else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{secret_line}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n").encode("latin-1") + body
