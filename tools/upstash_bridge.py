"""An Upstash-compatible REST server over a real Redis: for the tests, and for trying popkit-power's Upstash mode
without an Upstash account.

    python tools/upstash_bridge.py --redis redis://127.0.0.1:6390/0 --token T [--host 127.0.0.1] [--port 0]

prints its URL (port 0 takes a free one) and serves until Ctrl-C; then, in another shell:

    UPSTASH_REDIS_REST_URL=<that URL> UPSTASH_REDIS_REST_TOKEN=T popkit-power upstash test

What it speaks, as Upstash's REST API documents it:

- `POST /` with one command as a JSON array (["SET", "k", "v"]): 200 {"result": ...}, or 400 {"error": "..."};
- `POST /pipeline` with an array of commands: 200 and one {"result": ...} or {"error": "..."} per command, in
  order, not atomic; `POST /multi-exec`: the same inside MULTI/EXEC, or 400 {"error": ...} when Redis discards
  the whole transaction;
- `Authorization: Bearer <token>` (or `?_token=<token>`), else 401 {"error": "Unauthorized"};
- `Upstash-Encoding: base64`: every string in a result but "OK" base64-encoded; with `--ignore-encoding`
  (`Bridge(..., ignore_encoding=True)`) the header is ignored and every reply is plain JSON, as some community
  Upstash-compatible servers do (values that are not UTF-8 then carry U+FFFD for their bad bytes);
- no blocking reads (a command with BLOCK gets an error reply), no SUBSCRIBE/MONITOR; bodies over 10 MB get
  "ERR max request size exceeded".

Tests import it and plan faults for the next requests, one fault per request, in order:

    bridge = Bridge(redis_url, token).start()
    bridge.delay_after_applying(3.0)   # apply, then answer 3 s later (past the client's timeout), or never if stopped
    bridge.fail_before_applying(500)   # answer 500 (or any status and body) without applying
    bridge.reset(applied=True)         # apply, then reset the connection (TCP RST) without answering
    bridge.unauthorized()              # 401 whatever the token
    bridge.daily_limit()               # 400 {"error": "ERR max daily request limit exceeded"}, nothing applied

`requests` counts the requests served and `applied` the commands sent to Redis. The server's threads answer with
Nagle's algorithm off (otherwise each reply waits ~40 ms for a delayed ACK).
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import struct
import sys
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from redis import exceptions as redis_errors
from redis.backoff import NoBackoff
from redis.retry import Retry

from popkit_power.replication.redis_streams import error_text, without_callbacks

MAX_REQUEST_BYTES = 10 * 1024 * 1024
UNSUPPORTED = ("SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "SYNC", "PSYNC", "QUIT", "RESET")


@dataclass(frozen=True)
class Fault:
    """What the bridge does instead of (or after) serving one request."""

    kind: str  # "delay" (after applying), "status" (before applying), "reset"
    seconds: float = 0.0
    status: int = 500
    body: bytes = b'{"error":"Internal Server Error"}'
    content_type: str = "application/json"
    applied: bool = False


class Bridge:
    """The server; `start()` serves in a background thread, `stop()` ends it (also as a context manager)."""

    def __init__(self, redis_url: str, token: str, *, host: str = "127.0.0.1", port: int = 0,
                 ignore_encoding: bool = False) -> None:
        self.token = token
        self.ignore_encoding = ignore_encoding
        self.redis = redis.Redis.from_url(redis_url, decode_responses=False, protocol=2,
                                          retry=Retry(NoBackoff(), 0), retry_on_error=[])
        without_callbacks(self.redis)
        self.faults: deque[Fault] = deque()
        self.requests = 0
        self.applied = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.bridge = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Bridge:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="upstash-bridge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # held replies end now
        self._server.shutdown()
        self._server.server_close()
        self.redis.close()

    def __enter__(self) -> Bridge:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------------------------------------

    def plan(self, fault: Fault, times: int = 1) -> Bridge:
        with self._lock:
            self.faults.extend([fault] * times)
        return self

    def delay_after_applying(self, seconds: float, times: int = 1) -> Bridge:
        return self.plan(Fault("delay", seconds=seconds, applied=True), times)

    def fail_before_applying(self, status: int = 500, body: bytes = b'{"error":"Internal Server Error"}',
                             content_type: str = "application/json", times: int = 1) -> Bridge:
        return self.plan(Fault("status", status=status, body=body, content_type=content_type), times)

    def reset(self, *, applied: bool = False, times: int = 1) -> Bridge:
        return self.plan(Fault("reset", applied=applied), times)

    def unauthorized(self, times: int = 1) -> Bridge:
        return self.fail_before_applying(401, b'{"error":"Unauthorized"}', times=times)

    def daily_limit(self, times: int = 1) -> Bridge:
        return self.fail_before_applying(400, b'{"error":"ERR max daily request limit exceeded"}', times=times)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            return self.faults.popleft() if self.faults else None

    # -- Redis -----------------------------------------------------------------------------------------------------

    def run(self, path: str, commands: list[list[Any]], encode: bool) -> tuple[int, Any]:
        """(HTTP status, JSON body) for the commands of one request to `path`."""
        if path == "/multi-exec":
            pipe = self.redis.pipeline(transaction=True)
        else:
            pipe = self.redis.pipeline(transaction=False)
        refused: dict[int, str] = {}
        for n, command in enumerate(commands):
            problem = _refusal(command)
            if problem:
                refused[n] = problem
            else:
                pipe.execute_command(*command)
        with self._lock:
            self.applied += len(commands) - len(refused)
        try:
            results = iter(pipe.execute(raise_on_error=False)) if len(refused) < len(commands) else iter(())
        except redis_errors.ResponseError as error:  # EXECABORT: the transaction discarded as a whole
            return 400, {"error": error_text(error)}
        items = [{"error": refused[n]} if n in refused else _item(next(results), encode) for n in range(len(commands))]
        if path == "/":
            return (400 if "error" in items[0] else 200), items[0]
        return 200, items


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Upstash's servers do
    disable_nagle_algorithm = True
    server_version = "upstash-bridge"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._answer(405, {"error": "this bridge takes commands by POST only"})

    def do_POST(self) -> None:
        bridge: Bridge = self.server.bridge  # type: ignore[attr-defined]
        fault = bridge._next_fault()
        parts = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._answer(400, {"error": "ERR bad Content-Length"})
            return
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True  # the body is left unread
            self._answer(400, {"error": "ERR max request size exceeded"})
            return
        body = self.rfile.read(length)
        if fault is not None and not fault.applied:
            self._fault(fault)
            return
        if not self._authorized(bridge.token, parts.query):
            self._answer(401, {"error": "Unauthorized"})
            return
        if parts.path not in ("/", "/pipeline", "/multi-exec"):
            self._answer(404, {"error": f"ERR unknown endpoint {parts.path[:50]}"})
            return
        try:
            commands = _commands(json.loads(body), single=parts.path == "/")
        except (ValueError, TypeError) as error:
            self._answer(400, {"error": f"ERR failed to parse the request body: {error}"})
            return
        encode = self.headers.get("Upstash-Encoding", "").lower() == "base64" and not bridge.ignore_encoding
        try:
            status, answer = bridge.run(parts.path, commands, encode)
        except redis_errors.RedisError as error:  # Redis itself is down or failing: what Upstash would answer 5xx to
            self._answer(502, {"error": f"redis: {type(error).__name__}: {error}"})
            return
        if fault is not None:
            if fault.kind == "delay" and bridge._stopping.wait(fault.seconds):
                return
            if fault.kind == "reset":
                self._fault(fault)
                return
        self._answer(status, answer)

    def _authorized(self, token: str, query: str) -> bool:
        given = self.headers.get("Authorization", "")
        return given == f"Bearer {token}" or parse_qs(query).get("_token") == [token]

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self._send(fault.status, fault.body, fault.content_type)

    def _answer(self, status: int, answer: Any) -> None:
        self._send(status, json.dumps(answer, separators=(",", ":")).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (timed out) meanwhile
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):  # a reset connection is already closed
            pass


def _commands(parsed: Any, *, single: bool) -> list[list[Any]]:
    """The commands of a request body: one array (`/`) or an array of arrays; arguments are strings or numbers."""
    commands = [parsed] if single else parsed
    if not isinstance(commands, list) or not commands:
        raise ValueError("expected a JSON array of commands")
    for command in commands:
        if not isinstance(command, list) or not command or not isinstance(command[0], str):
            raise ValueError("each command is a JSON array starting with its name")
        for arg in command:
            if isinstance(arg, bool) or not isinstance(arg, (str, int, float)):
                raise ValueError(f"argument {json.dumps(arg)[:40]} is not a string or a number")
    return commands


def _refusal(command: list[Any]) -> str | None:
    name = command[0].upper()
    if name in UNSUPPORTED:
        return f"ERR {name} is not supported over REST"
    if name in ("XREAD", "XREADGROUP") and any(isinstance(a, str) and a.upper() == "BLOCK" for a in command):
        return "ERR blocking commands are not supported over REST: read without BLOCK"
    return None


def _item(result: Any, encode: bool) -> dict[str, Any]:
    if isinstance(result, redis_errors.ResponseError):
        return {"error": error_text(result)}
    return {"result": _json(result, encode)}


def _json(value: Any, encode: bool) -> Any:
    if isinstance(value, bytes):
        if encode and value != b"OK":
            return base64.b64encode(value).decode("ascii")
        return value.decode("utf-8", "replace")  # what Upstash sends without base64
    if isinstance(value, (list, tuple)):
        return [_json(item, encode) for item in value]
    if isinstance(value, float):
        return _json(repr(value).encode(), encode)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An Upstash-compatible REST server over a real Redis.")
    parser.add_argument("--redis", required=True, metavar="URL", help="the Redis to serve, such as "
                        "redis://127.0.0.1:6390/0")
    parser.add_argument("--token", required=True, help="the bearer token clients must send")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (the default) takes a free port")
    parser.add_argument("--ignore-encoding", action="store_true", help="answer plain JSON whatever the "
                        "Upstash-Encoding header says, as some Upstash-compatible servers do")
    args = parser.parse_args(argv)
    bridge = Bridge(args.redis, args.token, host=args.host, port=args.port, ignore_encoding=args.ignore_encoding)
    print(bridge.url, flush=True)
    try:
        bridge._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        bridge._server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
