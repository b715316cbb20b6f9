"""The dashboard's web application: the page, its live feed, and the human's actions, on Starlette.

    GET  /?token=T         sets the token's cookie and sends the browser on to /
    GET  /                 the page (static/index.html, with its token and mode filled in)
    GET  /static/NAME      the page's script and style (nothing else is served from there)
    GET  /events           server-sent events: hello, then status and lanes as the session moves (feed.py)
    GET  /api/at?seq=N     a replay's status as of seq N
    POST /api/ACTION       approve, deny, send, broadcast, task/add, task/release, task/reassign (JSON in and out)

Every request passes access.py's checks first (token, Host, and for actions Origin and the token header); every
answer carries a Content-Security-Policy that lets the page load only from this server and talk only to it. An
action calls the same library function as the CLI command of the same name, as the human, inside
`provenance.acting_via(DASHBOARD, client=...)`, so its record says it came from the dashboard and from which address;
a refusal (an approval answered already, a task someone else holds) is the library's own words, with 409 or 400.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import provenance
from ..approvals import answer_request
from ..display import cut
from ..errors import (
    AnswerRefusedError,
    ClaimLostError,
    JournalError,
    PowerModeError,
    ProtocolError,
    SessionNotActiveError,
)
from ..home import active_session
from ..keys import HUMAN
from ..messaging import broadcast, send_message
from ..session import Session
from ..task_changes import add_task, reassign_task, release_task
from .access import Access
from .feed import Feed, hello

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "cache-control": "no-store", "x-frame-options": "DENY"}
STATIC = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
STATIC_DIR = os.path.join(os.path.dirname(__file__), "static")
#: The largest action a page sends (a message's text is far smaller).
MAX_BODY = 64 * 1024
REPLAY_MODE, LIVE_MODE = "replay", "live"
#: The session the page shows (its hello's), sent with every action: an action meant for another is refused.
SESSION_HEADER = "x-popkit-session"


#: At most this many refusals are logged per window; past it, one line says how many were not.
LOGGED_REFUSALS, REFUSALS_WINDOW_SECONDS = 20, 60.0


class Budget:
    """At most `count` events per `seconds` (a fixed window); `allow` says whether this one is within, and the first
    one past it logs how many the window holds back."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.seconds = count, seconds
        self.start, self.used = 0.0, 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self.start >= self.seconds:
            self.start, self.used = now, 0
        self.used += 1
        if self.used == self.count + 1:
            log.warning("more requests refused: the rest of this minute's are not logged")
        return self.used <= self.count


class Guard:
    """ASGI middleware: access.py's checks on every HTTP request, and the security headers on every answer."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access
        self.refusals = Budget(LOGGED_REFUSALS, REFUSALS_WINDOW_SECONDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        why = self.access.refusal(request.method, request.headers, request.query_params.get("token"),
                                  request.cookies.get(self.access.cookie))
        if why is not None:
            client = request.client
            if self.refusals.allow():  # anyone on this machine can send refused requests: they cannot fill the log
                log.warning("refused %s %s from %s: %s", request.method, cut(request.url.path, 80),
                            f"{client.host}:{client.port}" if client else "?", cut(why, 200))
            await PlainTextResponse(f"403 forbidden: {why}\n", status_code=403,
                                    headers=SECURITY_HEADERS)(scope, receive, send)
            return

        async def secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _value in headers}
                headers += [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
                            if name.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)


@dataclass
class Showing:
    """What the dashboard shows now: the feed of one session, and that session opened for writing (None in a replay).
    A live dashboard that follows the active session replaces both when another session becomes active."""

    feed: Feed
    writable: Session | None


def make_app(showing: Showing, access: Access, *, mode: str) -> Starlette:
    """The application for the session `showing` shows (read at each request)."""
    inside = provenance.inside_agent_session(os.environ)
    why_not = (None if inside is None else f"this dashboard runs inside an agent's session ({inside}): it speaks as "
               f"the human, which nothing inside an agent's session may; act from a dashboard or terminal started "
               f"outside Claude Code")

    async def page(request: Request) -> Response:
        if request.query_params.get("token") is not None:  # the first visit: keep the token, out of the address bar
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(access.cookie, access.token, httponly=True, samesite="strict", path="/")
            return response
        with open(os.path.join(STATIC_DIR, "index.html"), encoding="utf-8") as file:
            text = file.read()
        text = text.replace("{{TOKEN}}", access.token).replace("{{MODE}}", mode)
        return Response(text, media_type="text/html; charset=utf-8")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("404 not found\n", status_code=404)
        with open(os.path.join(STATIC_DIR, name), "rb") as file:
            return Response(file.read(), media_type=STATIC[name])

    async def events(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the server's loop has closed: nobody reads this page any more
                pass

        feed = showing.feed
        mailbox = feed.subscribe(notify)
        replay = feed_replay_range(feed) if mode == REPLAY_MODE else None
        closed = None if showing.writable is None else not_active(showing.writable)
        first = hello(feed.session, mode=mode, can_answer=showing.writable is not None and inside is None
                      and closed is None, why_not=why_not or closed, replay=replay)

        async def stream() -> AsyncIterator[dict[str, str]]:
            try:
                yield {"event": "hello", "data": first.decode()}
                while True:
                    await wake.wait()
                    wake.clear()
                    status, lanes = mailbox.take()
                    if lanes is not None:
                        yield {"event": "lanes", "data": lanes.decode()}
                    if status is not None:
                        yield {"event": "status", "data": status.decode()}
                    if mailbox.gone is not None:
                        yield {"event": "gone", "data": orjson.dumps({"text": mailbox.gone,
                                                                      "reload": mailbox.reload}).decode()}
                        return
            finally:
                feed.unsubscribe(mailbox)

        return EventSourceResponse(stream(), ping=15, send_timeout=30)

    async def status_at(request: Request) -> Response:
        if mode != REPLAY_MODE:
            return JSONResponse({"ok": False, "error": "/api/at is for a replay (popkit-power dashboard --replay)"},
                                status_code=400)
        try:
            seq = int(request.query_params.get("seq", ""))
        except ValueError:
            return JSONResponse({"ok": False, "error": "seq must be a whole number"}, status_code=400)
        from .replaying import status_at as fold_to

        try:
            found = await run_in_threadpool(fold_to, showing.feed, seq)
        except PowerModeError as error:
            return JSONResponse({"ok": False, "error": str(error)}, status_code=400)
        return Response(orjson.dumps(found, default=str), media_type="application/json")

    async def act(request: Request) -> Response:
        name = request.path_params["action"]
        action = ACTIONS.get(name)
        if action is None:
            return JSONResponse({"ok": False, "error": f"no action {name!r}; actions: {', '.join(ACTIONS)}"},
                                status_code=404)
        writable = showing.writable
        if writable is None:
            return JSONResponse({"ok": False, "error": "a replay changes nothing"}, status_code=400)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:  # refused before it is read
            return JSONResponse({"ok": False, "error": f"the request is over {MAX_BODY} bytes"}, status_code=413)
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"ok": False, "error": f"the request is over {MAX_BODY} bytes"}, status_code=413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return JSONResponse({"ok": False, "error": f"the request is not JSON: {error}"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"ok": False, "error": "the request must be a JSON object"}, status_code=400)
        client = request.client
        where = f"{client.host}:{client.port}" if client else "unknown"

        event_type, call = action
        shown = request.headers.get(SESSION_HEADER)
        if shown is not None and shown != writable.id:  # the page shows another session than the one to write
            return JSONResponse({"ok": False, "code": SessionNotActiveError.code,
                                 "error": f"this page shows session {cut(shown, 40)}, and this dashboard shows "
                                          f"session {writable.id} now: nothing written; load the page again"},
                                status_code=409)

        def run() -> str:
            assert writable is not None
            still_active(writable)
            request_id = body.get("request")
            provenance.check_sender(HUMAN, event_type, os.environ, named=False,
                                    request=request_id if isinstance(request_id, str) else None)
            with provenance.acting_via(provenance.DASHBOARD, client=where):
                return call(writable, body)

        try:
            text = await run_in_threadpool(run)
        except (AnswerRefusedError, ClaimLostError, SessionNotActiveError) as error:
            return JSONResponse({"ok": False, "error": str(error), "code": error.code}, status_code=409)
        except JournalError as error:  # a full disk: nothing was written, and the page says why
            return JSONResponse({"ok": False, "error": f"could not write to the session: {error}",
                                 "code": error.code}, status_code=503)
        except PowerModeError as error:
            return JSONResponse({"ok": False, "error": str(error), "code": error.code}, status_code=400)
        except OSError as error:
            return JSONResponse({"ok": False, "error": f"could not write to the session: {error}",
                                 "code": "os-error"}, status_code=503)
        log.info("%s from %s: %s", name, where, text)
        return JSONResponse({"ok": True, "message": text})

    routes = [Route("/", page), Route("/static/{name}", static), Route("/events", events),
              Route("/api/at", status_at), Route("/api/{action:path}", act, methods=["POST"])]
    app = Starlette(routes=routes)
    app.add_middleware(Guard, access=access)
    return app


def feed_replay_range(feed: Feed) -> dict[str, Any] | None:
    from .replaying import replay_range

    return replay_range(feed)


def not_active(session: Session) -> str | None:
    """Why `session` is not its power directory's active session any more (stopped, or switched from); None when it
    is. The CLI's verbs act on the active session only, and so does a page."""
    active = active_session(session.power_dir)
    if active == session.id:
        return None
    now = f"session {active} is active now" if active else "Power Mode is off"
    return f"session {session.id} is no longer active ({now})"


def still_active(session: Session) -> None:
    """SessionNotActiveError unless `session` is its power directory's active session (nothing is written then)."""
    why = not_active(session)
    if why is not None:
        raise SessionNotActiveError(f"{why}: nothing written; load the page again to see what is")


# -- the actions: each the library call its CLI command makes, as the human -----------------------------------------

def _text(body: dict[str, Any], field: str, *, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{field!r} must be text" + ("" if required else " when given"))
    return value


def _field(body: dict[str, Any], field: str) -> str:
    value = _text(body, field)
    assert value is not None
    return value


def _answer(granted: bool) -> Callable[[Session, dict[str, Any]], str]:
    def answer(session: Session, body: dict[str, Any]) -> str:
        return answer_request(session, _field(body, "request"), granted=granted, sender=HUMAN,
                              note=_text(body, "note", required=False) or None).text
    return answer


#: Each action: the event type it sends as the human (provenance.check_sender decides whether this process may,
#: for every action alike), and the library call its CLI command makes.
ACTIONS: dict[str, tuple[str, Callable[[Session, dict[str, Any]], str]]] = {
    "approve": ("approval.granted", _answer(True)),
    "deny": ("approval.denied", _answer(False)),
    "send": ("message.direct", lambda session, body: send_message(
        session, _field(body, "agent"), _field(body, "text"), sender=HUMAN).text),
    "broadcast": ("message.broadcast", lambda session, body: broadcast(
        session, _field(body, "text"), sender=HUMAN).text),
    "task/add": ("task.created", lambda session, body: add_task(
        session, _field(body, "title"), sender=HUMAN, to=_text(body, "to", required=False) or None).text),
    "task/release": ("task.released", lambda session, body: release_task(
        session, _field(body, "task"), sender=HUMAN, reason=_text(body, "reason", required=False) or None).text),
    "task/reassign": ("task.assigned", lambda session, body: reassign_task(
        session, _field(body, "task"), _field(body, "agent"), sender=HUMAN).text),
}
