"""The ASGI application that answers Claude Code's HTTP hooks: `POST /popkit-power/hook` with the project's secret.

Each request runs the hook's own entry (`hook.entry.run`) in a worker thread, with the body as its stdin and, as its
environment, what a command hook would have (peer.CallEnviron). So the handlers, their order under the agent's lock
and the delivery promise are the command hook's, word for word: the state before the news is saved first, the reply
is written to the connection from inside the lock, and only then is the new cursor saved. A reply that could not be
written (the caller gone: Claude Code's timeout) raises there, so the cursor stays before the news it carried; a reply
written but dropped later is caught by the transcript check at the next call (hook/transcript.py), as for a process.

Answers: 200 with the hook's JSON reply, 204 for none; anything that goes wrong inside is logged to hook.log (as the
hook process logs it) and answered 204, so the agent goes on. Refused, and logged (at most `REFUSALS_LOGGED` a
minute): no or a wrong secret (403), a Host that is not this loopback port (403: DNS rebinding), another path (404)
or method (405), a body over the hook's limit (413).

Plain ASGI rather than Starlette's routing: it is one path, and each request is on an agent's tool call.
"""

from __future__ import annotations

import hmac
import io
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from ..display import clean
from ..errors import HookCallAbandoned, code_of
from ..hook.entry import MAX_PAYLOAD_BYTES, run
from ..hook.log import log_error
from ..hook_transport import (
    DOCTOR_AGENT,
    HTTP,
    HTTP_START_TIMEOUT,
    HTTP_TIMEOUT,
    PATH,
    SECRET_HEADER,
    VIA_ENV,
)
from ..loopback import LOOPBACK
from .peer import CallEnviron, peer_pid

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Hook calls handled at once (each waits in a thread, often on its agent's lock): fifty agents with parallel calls.
MAX_CONCURRENT_CALLS = 128
REFUSALS_LOGGED = 20  # a minute: anyone on the machine can send requests, and the log must not fill with them
_SECRET_HEADER = SECRET_HEADER.lower().encode("ascii")
_DOCTOR = DOCTOR_AGENT.encode("ascii")


class HookApp:
    """`HookApp(power_dir, port, secret)`: the application for uvicorn."""

    def __init__(self, power_dir: str, port: int, secret: str) -> None:
        self.power_dir = power_dir
        self.port = port
        self._secret = secret.encode("ascii")
        self._hosts = {f"{LOOPBACK}:{port}".encode("ascii"), f"localhost:{port}".encode("ascii")}
        self._limiter: anyio.CapacityLimiter | None = None
        self._refusals: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope.get("headers") or ())
        refused = self._refusal(scope, headers)
        if refused is not None:
            status, why = refused
            self._log_refusal(scope, why, doctor=headers.get(b"user-agent") == _DOCTOR)
            await _answer(send, status, why.encode("utf-8"), b"text/plain; charset=utf-8")
            return
        body = await _body(receive)
        if body == b"":  # the caller left before its body came (or sent none): nothing to run
            await _answer(send, 204, b"", None)
            return
        if body is None:
            self._log_refusal(scope, "body over the hook's limit")
            await _answer(send, 413, b"payload too large", b"text/plain; charset=utf-8")
            return
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(MAX_CONCURRENT_CALLS)
        sent = await anyio.to_thread.run_sync(self._handle, body, scope, receive, send, limiter=self._limiter)
        if not sent:
            await _answer(send, 204, b"", None)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if headers.get(b"host") not in self._hosts:
            return 403, "wrong Host: this server answers 127.0.0.1 only"
        given = headers.get(_SECRET_HEADER)
        if given is None or not hmac.compare_digest(given, self._secret):
            return 403, f"no or a wrong {SECRET_HEADER}"
        if scope.get("path") != PATH:
            return 404, "not found"
        if scope.get("method") != "POST":
            return 405, "POST only"
        length = headers.get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_PAYLOAD_BYTES:
            return 413, "payload too large"
        return None

    def _handle(self, body: bytes, scope: Scope, receive: Receive, send: Send) -> bool:
        """In a worker thread: the hook's own entry on this request; whether a reply was sent."""
        sent = False

        def deliver(reply: str) -> None:
            nonlocal sent
            try:
                anyio.from_thread.run(_reply, receive, send, reply.encode("utf-8"))
            except anyio.RunFinishedError:  # the server stopped meanwhile
                raise HookCallAbandoned("the server stopped before the reply") from None
            sent = True

        client = scope.get("client") or ("", 0)
        environ = CallEnviron({VIA_ENV: HTTP}, lambda: peer_pid(int(client[1]), self.port))
        seconds = HTTP_START_TIMEOUT if b'"SubagentStart"' in body else HTTP_TIMEOUT  # no caller waits longer
        try:
            run(io.BytesIO(body), self.power_dir, environ, deliver=deliver, lock_seconds=seconds)
        except BaseException as error:  # the hook never breaks an agent: logged, as the hook process logs it
            log_error(self.power_dir, f"{type(error).__name__}: {error} (hook over HTTP)", code=code_of(error))
        return sent

    def _log_refusal(self, scope: Scope, why: str, *, doctor: bool = False) -> None:
        if doctor:  # `popkit-power doctor` looks without the secret, every 30 s from an open dashboard
            log.debug("hook request refused (doctor's look): %s", why)
            return
        now = time.monotonic()
        self._refusals = [moment for moment in self._refusals if now - moment < 60]
        if len(self._refusals) >= REFUSALS_LOGGED:
            return
        self._refusals.append(now)
        client = scope.get("client") or ("?", 0)
        # what anyone on the machine sent, decoded by the server: cleaned (no line breaks, no escapes) and cut
        said = clean(f"{scope.get('method')} {scope.get('path', '')}", 100)
        log.warning("hook request refused from %s:%s (%s): %s", client[0], client[1], said, why)


async def _body(receive: Receive) -> bytes | None:
    """The request's body, or None past MAX_PAYLOAD_BYTES (a chunked body has no Content-Length to check first);
    b"" when the caller left before it came (a hook's body is never empty)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_PAYLOAD_BYTES:
            return None
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


async def _reply(receive: Receive, send: Send, body: bytes) -> None:
    """Send the hook's reply; HookCallAbandoned when the caller has gone (uvicorn would drop what is sent, silently):
    the news stays unread (its cursor is not moved), and the next call delivers it."""
    message: MutableMapping[str, Any] = {}
    with anyio.CancelScope() as scope:
        scope.cancel()  # only a message already there: the request's body has been read, so that is a disconnect
        message = await receive()
    if message.get("type") == "http.disconnect":
        raise HookCallAbandoned("the caller closed the connection before the reply")
    await _answer(send, 200, body, b"application/json")


async def _answer(send: Send, status: int, body: bytes, content_type: bytes | None) -> None:
    headers = [(b"content-length", str(len(body)).encode("ascii"))]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
