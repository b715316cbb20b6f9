"""A scripted stand-in for the Anthropic Messages API, for running the real Claude Code offline.

Claude Code is pointed at it with ``ANTHROPIC_BASE_URL``. It POSTs ``/v1/messages?beta=true`` with
``"stream": true`` and reads server-sent events; this server answers each such request with the reply a
test's *script* chooses for it, records every request body, and answers ``count_tokens`` with a fixed
estimate. Only the standard library is used so the e2e tests need nothing beyond pytest.

Where hook ``additionalContext`` lands in the requests (observed with Claude Code 2.1.330 against this
server; ``test_harness.py`` asserts the placements):

- Claude Code sends messages with ``"role": "system"`` inside ``messages`` (not in the top-level ``system``
  field). In the request right after the context was produced their ``content`` is a list of text blocks;
  in later requests, where they are history, the same message's ``content`` is a plain string. Claude Code
  may append its own text to the same block after a blank line (its ``# Environment`` section, the list
  of deferred tools, the list of agent types), so match with "contains" or "starts with", never equality.
- SessionStart: main conversation only, ``messages[1]``: a system message right after the first user
  message (which holds Claude Code's own ``<system-reminder>`` block and then the prompt). Its text starts
  ``SessionStart hook additional context: <text>``. It stays in every later main request as history and
  never reaches a subagent's conversation.
- SubagentStart: the subagent's conversation only, ``messages[1]``, same shape: ``SubagentStart hook
  additional context: <text>`` after the subagent's first user message (its prompt). The main agent never
  sees it.
- PostToolUse: in the next request of the conversation whose agent called the tool, as the system message
  directly after the user message holding the ``tool_result``: ``PostToolUse:<Tool> hook additional
  context: <text>`` (``PostToolUse:Bash ...``, ``PostToolUse:Agent ...``). Exactly once per request. The
  Agent tool's own PostToolUse (fired at launch) lands in the main conversation; a subagent's Bash call's
  lands in the subagent's conversation only.
- Nothing hook-related appears in the top-level ``system`` field; :func:`injected_texts` searches it anyway
  so a change in Claude Code shows up as a failing assertion about *where*, not as a silently lost marker.

Side queries (title generation and the like, with no tools) were not sent in these runs, with
``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``; :class:`Turns` answers them with plain text all the same.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "Block",
    "ModelServer",
    "Reply",
    "Script",
    "TextBlock",
    "ToolUseBlock",
    "TurnSpec",
    "Turns",
    "count_marker",
    "first_user_text",
    "injected_texts",
    "is_side_query",
    "is_task_notification",
    "messages_containing",
    "text",
    "tool_result_text",
    "tool_results",
    "tool_use",
]


@dataclass(frozen=True)
class TextBlock:
    """A text content block of a scripted model reply."""

    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    """A tool call in a scripted model reply; ``id`` is generated so every reply has fresh ids."""

    name: str
    input: Mapping[str, Any]
    id: str = field(default_factory=lambda: "toolu_" + secrets.token_hex(12))


Block = TextBlock | ToolUseBlock


@dataclass(frozen=True)
class Reply:
    """One model reply: its content blocks and why the model stopped.

    ``stop_reason`` defaults to ``tool_use`` when the reply calls a tool and ``end_turn`` otherwise,
    which is what Claude Code expects from a real model.
    """

    blocks: Sequence[Block]
    stop_reason: str | None = None

    @property
    def effective_stop_reason(self) -> str:
        """The stop reason sent on the wire."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_calls else "end_turn"

    @property
    def tool_calls(self) -> list[ToolUseBlock]:
        """The reply's tool_use blocks, in order."""
        return [block for block in self.blocks if isinstance(block, ToolUseBlock)]


Script = Callable[[dict[str, Any]], Reply]
"""Chooses the reply to one recorded ``/v1/messages`` request body."""

TurnSpec = Reply | Block | Sequence[Block]
"""What a test writes for one turn: a whole :class:`Reply`, a single block, or a list of blocks."""


def text(s: str) -> TextBlock:
    """A text block, for a scripted reply."""
    return TextBlock(s)


def tool_use(name: str, input: Mapping[str, Any]) -> ToolUseBlock:
    """A tool call block, for a scripted reply; a fresh ``toolu_`` id is generated."""
    return ToolUseBlock(name, dict(input))


def _as_reply(spec: TurnSpec) -> Reply:
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, (TextBlock, ToolUseBlock)):
        return Reply([spec])
    return Reply(list(spec))


def _fresh_ids(reply: Reply) -> Reply:
    """The same reply with new tool_use ids, so a turn served twice never repeats an id."""
    blocks = [tool_use(b.name, b.input) if isinstance(b, ToolUseBlock) else b for b in reply.blocks]
    return Reply(blocks, reply.stop_reason)


def _walk_texts(node: Any) -> Iterator[str]:
    """Every text string in a message tree: text blocks, plain string contents, nested tool_result content."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _walk_texts(item)
    elif isinstance(node, dict):
        if isinstance(node.get("text"), str):
            yield node["text"]
        if "content" in node:
            yield from _walk_texts(node["content"])


def first_user_text(request: Mapping[str, Any]) -> str:
    """All text of the first user message: the prompt, plus whatever Claude Code put beside it."""
    for message in request.get("messages", []):
        if message.get("role") == "user":
            return "\n".join(_walk_texts(message.get("content", [])))
    return ""


def tool_results(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every ``tool_result`` block in the request's messages, in order."""
    found: list[dict[str, Any]] = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            found.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return found


def tool_result_text(block: Mapping[str, Any]) -> str:
    """The text of one ``tool_result`` block, whose content may be a string or a list of text blocks."""
    return "\n".join(_walk_texts(block.get("content", "")))


def is_side_query(request: Mapping[str, Any]) -> bool:
    """True for Claude Code's small requests outside the agent loop (titles, summaries): they offer no tools."""
    return not request.get("tools")


def is_task_notification(request: Mapping[str, Any]) -> bool:
    """True when Claude Code asks the main agent again because a background task (a subagent) finished.

    The request's last message is then a user message whose text holds a ``<task-notification>`` element
    (task id, status, the subagent's final text in ``<result>``).
    """
    messages = request.get("messages") or []
    if not messages or messages[-1].get("role") != "user":
        return False
    return any("<task-notification>" in t for t in _walk_texts(messages[-1].get("content", [])))


def injected_texts(request: Mapping[str, Any], marker: str) -> list[str]:
    """Every text in ``messages`` or ``system`` that contains ``marker``, e.g. hook additionalContext."""
    texts = list(_walk_texts(request.get("system", []))) + list(_walk_texts(request.get("messages", [])))
    return [t for t in texts if marker in t]


def messages_containing(request: Mapping[str, Any], marker: str) -> list[int]:
    """Indices into ``messages`` of the messages whose text contains ``marker``."""
    return [i for i, m in enumerate(request.get("messages", [])) if any(marker in t for t in _walk_texts(m))]


def count_marker(request: Mapping[str, Any], marker: str) -> int:
    """How many times ``marker`` occurs across the request's messages and system prompt."""
    return sum(t.count(marker) for t in injected_texts(request, marker))


class Turns:
    """A script that plays fixed turn lists, one list per conversation.

    A conversation is recognised by a substring of its first user message (the main agent's prompt, or
    the prompt a subagent was launched with); the first matching key, in insertion order, wins. Within a
    conversation the turn is chosen by how many ``tool_result`` blocks the request already holds: turn 0
    is served with none, and each turn moves on by the number of tools it called. Keying on the count rather
    than on the last message matters: hook context arrives as an extra message after the tool result, so
    "the last message is a tool result" is not a reliable signal and such scripts loop forever.

    Requests past the end of a list repeat its last turn if that is plain text: Claude Code asks the main
    agent again after a background subagent finished, and the run's result stays the scripted final text.
    If the last turn calls tools, later requests get ``fallback_text`` instead, so a script that forgot its
    closing text ends rather than loops. Side queries (no tools offered) and unknown conversations get
    ``fallback_text`` too.
    """

    def __init__(self, conversations: Mapping[str, Sequence[TurnSpec]], *, fallback_text: str = "ok") -> None:
        self._conversations = {key: [_as_reply(spec) for spec in specs] for key, specs in conversations.items()}
        self._fallback = Reply([TextBlock(fallback_text)])

    def conversation_of(self, request: Mapping[str, Any]) -> str | None:
        """The key of the conversation a request belongs to, or None for side queries and unknown ones."""
        if is_side_query(request):
            return None
        first = first_user_text(request)
        return next((key for key in self._conversations if key in first), None)

    def __call__(self, request: dict[str, Any]) -> Reply:
        key = self.conversation_of(request)
        if key is None or not self._conversations[key]:
            return self._fallback
        turns = self._conversations[key]
        results = len(tool_results(request))
        consumed = 0
        for turn in turns:
            if consumed >= results:
                return _fresh_ids(turn)
            consumed += len(turn.tool_calls)
        last = turns[-1]
        return self._fallback if last.tool_calls else _fresh_ids(last)


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _content_json(block: Block) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": dict(block.input)}


def _estimate_tokens(body: Mapping[str, Any]) -> int:
    """A rough token count (4 characters a token), enough for Claude Code's context bookkeeping."""
    return max(1, len(json.dumps(body)) // 4)


def _message_stream(reply: Reply, model: str, input_tokens: int) -> bytes:
    """The server-sent event stream Claude Code parses for a streamed reply."""
    output_tokens = max(1, sum(len(json.dumps(_content_json(b))) for b in reply.blocks) // 4)
    parts = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_" + secrets.token_hex(12),
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": input_tokens, "output_tokens": 1},
                },
            },
        )
    ]
    for index, block in enumerate(reply.blocks):
        start: dict[str, Any]
        delta: dict[str, Any]
        if isinstance(block, TextBlock):
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block.text}
        else:
            start = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(dict(block.input))}
        parts.append(
            _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
        )
        parts.append(_sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        parts.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    parts.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.effective_stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    parts.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(parts)


def _message_json(reply: Reply, model: str, input_tokens: int) -> dict[str, Any]:
    """The same reply as a non-streamed Messages API response."""
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_content_json(b) for b in reply.blocks],
        "stop_reason": reply.effective_stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }


_MESSAGES_PATH = re.compile(r"^/v1/messages/?(\?.*)?$")
_COUNT_TOKENS_PATH = re.compile(r"^/v1/messages/count_tokens/?(\?.*)?$")


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the owning :class:`ModelServer`."""

    protocol_version = "HTTP/1.1"
    # Small SSE writes must not wait for Nagle's algorithm; it adds ~40 ms per reply otherwise.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; every request is recorded instead."""

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", "req_" + secrets.token_hex(8))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _not_found(self) -> None:
        self._send_json(
            HTTPStatus.NOT_FOUND,
            {
                "type": "error",
                "error": {"type": "not_found_error", "message": f"no route for {self.command} {self.path}"},
            },
        )

    def do_GET(self) -> None:
        """Nothing is served by GET."""
        self._not_found()

    def do_HEAD(self) -> None:
        """Nothing is served by HEAD."""
        self._not_found()

    def do_POST(self) -> None:
        """Answer ``/v1/messages`` from the script and ``count_tokens`` with an estimate."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(
                HTTPStatus.BAD_REQUEST,
                {"type": "error", "error": {"type": "invalid_request_error", "message": "body is not JSON"}},
            )
            return
        if _COUNT_TOKENS_PATH.match(self.path):
            self._send_json(HTTPStatus.OK, {"input_tokens": _estimate_tokens(body)})
        elif _MESSAGES_PATH.match(self.path):
            self._answer_messages(body)
        else:
            self._not_found()

    def _answer_messages(self, body: dict[str, Any]) -> None:
        owner = self.server.owner
        owner._record(body)
        try:
            reply = owner.script(body)
        except Exception as exc:
            owner._record_error(exc)
            # 400 rather than 500: Claude Code retries 5xx with backoff, which would only slow the failure down.
            self._send_json(
                HTTPStatus.BAD_REQUEST,
                {"type": "error", "error": {"type": "invalid_request_error", "message": f"script failed: {exc!r}"}},
            )
            return
        model = str(body.get("model", "claude-scripted"))
        tokens = _estimate_tokens(body)
        if body.get("stream"):
            self._send(HTTPStatus.OK, _message_stream(reply, model, tokens), "text/event-stream")
        else:
            self._send_json(HTTPStatus.OK, _message_json(reply, model, tokens))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: ModelServer


class ModelServer:
    """The scripted Messages API on 127.0.0.1 with a free port; use as a context manager.

    ``requests`` holds every ``/v1/messages`` body received, in arrival order (including side queries);
    ``errors`` holds exceptions the script raised, each of which was answered with an HTTP 400.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self._lock = threading.Lock()
        self._requests: list[dict[str, Any]] = []
        self._errors: list[BaseException] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``ANTHROPIC_BASE_URL``."""
        if self._server is None:
            raise RuntimeError("ModelServer is not running")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the recorded request bodies, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[BaseException]:
        """A snapshot of the exceptions the script raised."""
        with self._lock:
            return list(self._errors)

    def _record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(body)

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def start(self) -> ModelServer:
        """Bind a free port and serve in a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        # A short poll interval keeps stop() (which waits for one poll) from adding half a second per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
