"""The Upstash transport: Redis commands over Upstash's REST API, with raw httpx (transport.py has the contract).

Not Upstash's SDK: it has no timeout by default, retries on any exception (so a retried XADD is applied twice), and
a pipeline with one failed command raises and loses the results of the others, which were applied. Here:

- one `httpx.Client` per transport (connections kept alive and reused, TCP keep-alive on), no retries, explicit
  connect/read/write/pool timeouts;
- every call is `POST /pipeline` with a JSON array of commands and `Authorization: Bearer <token>`; the reply is one
  `{"result": ...}` or `{"error": "..."}` per command, in order, so each command's error stays in its place;
- `Upstash-Encoding: base64` by default: every string in a reply but "OK" comes base64-encoded and is decoded here,
  so values that are not UTF-8 survive (surrogate escapes) instead of becoming U+FFFD. Some Upstash-compatible
  servers ignore that header and answer plain JSON: the first PING's reply tells ("PONG" where base64 gives
  "UE9ORw=="; the first call carries one, added in front when it has none), and from then on such a server is
  spoken to in plain JSON, where a value that is not UTF-8 comes back with U+FFFD in place of its bad bytes (the
  limit of plain JSON; everything popkit-power writes is UTF-8 text);
- Upstash's `upstash-sync-token` is sent back on the next call, so a read after our own write sees it even on a
  database with read replicas;
- no blocking reads: a command with BLOCK is refused before anything is sent (the caller polls instead).

What a failure becomes: 401 -> TransportAuthError; 5xx -> TransportServerError; Upstash's limit errors ->
TransportLimitError; another whole-request error (400, 405) -> TransportRejectedError; a body that is not the
protocol (not JSON, an HTML page, fewer results than commands) -> MalformedReplyError; timeouts, refused and reset
connections -> TransportTimeoutError / TransportUnreachableError (errors.py says which leave the outcome unknown).
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

from ..display import cut
from ..errors import ConfigError
from .errors import (
    MalformedReplyError,
    ReplicationError,
    TransportAuthError,
    TransportError,
    TransportLimitError,
    TransportRejectedError,
    TransportServerError,
    TransportTimeoutError,
    TransportUnreachableError,
)
from .transport import (
    CONNECT_TIMEOUT_SECONDS,
    UPSTASH,
    Command,
    Reply,
    ReplyError,
    auth_refused,
    block_seconds,
    check_commands,
    limit_reached,
    mask,
    safe_url,
    scrub,
    summary,
)

log = logging.getLogger(__name__)

SYNC_TOKEN_HEADER = "upstash-sync-token"
ENCODING_HEADER = "Upstash-Encoding"
#: PING's reply with base64 (what Upstash sends) and without (a server that ignores ENCODING_HEADER).
PONG_BASE64, PONG = "UE9ORw==", "PONG"
PROBE: Command = ["PING"]
#: How much of a server's error text a message quotes.
MAX_QUOTED_CHARS = 200


class UpstashRest:
    """A transport to one Upstash database (`url` is UPSTASH_REDIS_REST_URL, `token` UPSTASH_REDIS_REST_TOKEN).

    `http_transport` replaces httpx's network transport (tests). `base64`: True asks for base64-encoded replies and
    decodes them, False speaks plain JSON, None (the default) asks for base64 and learns from the first PING's reply
    whether the server honours it (then `base64` is True or False; `probes_sent` counts the PINGs added for it)."""

    kind = UPSTASH
    blocking_reads = False

    def __init__(self, url: str, token: str, *, base64: bool | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
                 http_transport: httpx.BaseTransport | None = None) -> None:
        self._token = token
        self._origin = _origin(url, token)
        if not token:
            raise ConfigError("UPSTASH_REDIS_REST_TOKEN is empty: copy the token from the Upstash console")
        if any(c.isspace() or not c.isprintable() for c in token):
            raise ConfigError("UPSTASH_REDIS_REST_TOKEN contains spaces, line breaks or control characters: "
                              "copy it again from the Upstash console")
        self.base64 = base64
        self._learning = base64 is None  # the encoding is learned (and learned again: `_replies`), not set
        self.connect_timeout = connect_timeout
        self.commands_sent = 0
        self.probes_sent = 0
        self._sync_token: str | None = None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if base64 is not False:
            headers[ENCODING_HEADER] = "base64"
        if http_transport is None:
            http_transport = httpx.HTTPTransport(
                retries=0, socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)])
        self._client = httpx.Client(base_url=url, headers=headers, transport=http_transport, follow_redirects=False,
                                    timeout=httpx.Timeout(connect_timeout))

    def describe(self) -> str:
        plain = f", plain JSON: the server ignores {ENCODING_HEADER}" if self.base64 is False else ""
        return f"upstash {self._origin} (token {mask(self._token)}{plain})"

    def __repr__(self) -> str:
        return f"<UpstashRest {self.describe()}>"

    def close(self) -> None:
        self._client.close()

    def execute(self, commands: Sequence[Command], *, timeout: float,
                meanwhile: Callable[[], None] | None = None) -> list[Reply]:
        check_commands(commands, self.describe())
        if block_seconds(commands, self.describe()):
            raise ReplicationError(f"{self.describe()}: Upstash's REST API has no blocking reads (blocking_reads is "
                                   f"False): send XREAD without BLOCK and poll")
        probe = self.base64 is None and PROBE not in commands
        sent = [PROBE, *commands] if probe else commands
        body = orjson.dumps([[_text(arg, self.describe(), n) for arg in command]
                             for n, command in enumerate(sent, 1 - probe)])
        headers = {SYNC_TOKEN_HEADER: self._sync_token} if self._sync_token else None
        limits = httpx.Timeout(connect=min(self.connect_timeout, timeout), read=timeout, write=timeout, pool=timeout)
        try:
            response = self._client.post("/pipeline", content=body, headers=headers, timeout=limits)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise self._failed(TransportUnreachableError, commands, f"cannot connect ({_cause(error)})",
                               applied=False) from None
        except httpx.TimeoutException as error:
            self._count(sent, probe)
            raise self._failed(TransportTimeoutError, commands, f"no reply within {timeout:g} s ({_cause(error)})",
                               applied=None) from None
        except httpx.TransportError as error:
            self._count(sent, probe)
            raise self._failed(TransportUnreachableError, commands, f"connection lost mid-call ({_cause(error)})",
                               applied=None) from None
        self._count(sent, probe)
        sync_token = response.headers.get(SYNC_TOKEN_HEADER)
        if sync_token:
            self._sync_token = sync_token
        if meanwhile is not None:  # one HTTP request: nothing to overlap with
            meanwhile()
        replies = self._replies(response, commands, sent)
        return replies[1:] if probe else replies

    def _count(self, sent: Sequence[Command], probe: bool) -> None:
        self.commands_sent += len(sent)
        self.probes_sent += probe

    # -- reading a response -------------------------------------------------------------------------------------------

    def _replies(self, response: httpx.Response, commands: Sequence[Command], sent: Sequence[Command]) -> list[Reply]:
        status = f"HTTP {response.status_code}"
        if response.status_code >= 500:
            raise self._failed(TransportServerError, commands, f"server error {status}{self._quote(response)}",
                               applied=None)
        try:
            parsed: Any = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            parsed = _NOT_JSON
        if response.status_code == 401:
            raise self._failed(TransportAuthError, commands, f"token refused ({status}{self._quote(response)}): "
                               f"check UPSTASH_REDIS_REST_TOKEN", applied=False)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            text = self._clean(parsed["error"])
            if auth_refused(text):
                raise self._failed(TransportAuthError, commands, f"token refused ({status}: {text})", applied=False)
            if limit_reached(text) or response.status_code == 413:
                raise self._failed(TransportLimitError, commands, f"Upstash limit reached ({status}: {text})",
                                   applied=False)
            raise self._failed(TransportRejectedError, commands, f"request refused ({status}: {text})",
                               applied=False)
        if response.status_code == 413:
            raise self._failed(TransportLimitError, commands, f"request too large ({status})", applied=False)
        if response.status_code != 200:
            raise self._failed(TransportRejectedError, commands, f"request refused ({status}{self._quote(response)})",
                               applied=False)
        if parsed is _NOT_JSON:
            raise self._failed(MalformedReplyError, commands, f"the reply is not JSON ({_body_kind(response)})",
                               applied=None)
        if not isinstance(parsed, list) or len(parsed) != len(sent):
            got = f"{len(parsed)} results" if isinstance(parsed, list) else f"a JSON {type(parsed).__name__}"
            raise self._failed(MalformedReplyError, commands, f"the reply has {got} where the pipeline needs "
                               f"{len(sent)}", applied=None)
        if self.base64 is None:
            self._learn_encoding(parsed[sent.index(PROBE)])
        replies: list[Reply] = []
        for n, item in enumerate(parsed, len(commands) - len(sent) + 1):
            if isinstance(item, dict) and isinstance(item.get("error"), str):
                replies.append(ReplyError(self._clean(item["error"])))
            elif isinstance(item, dict) and "result" in item:
                try:
                    replies.append(item["result"] if self.base64 is False else _decoded(item["result"]))
                except (binascii.Error, ValueError):
                    again = ""
                    if self._learning:  # it answered PING in base64 before: it may have changed since (a proxy
                        self.base64 = None  # restarted with another setting): the next call's PING asks again
                        again = " (the server may no longer honour base64: the next call asks it again)"
                    raise self._failed(MalformedReplyError, commands, f"result {n} is not valid base64{again}",
                                       applied=None) from None
            else:
                raise self._failed(MalformedReplyError, commands, f"result {n} is neither {{\"result\": ...}} nor "
                                   f"{{\"error\": \"...\"}}", applied=None)
        return replies

    def _learn_encoding(self, ping: Any) -> None:
        """Whether the server honours ENCODING_HEADER, from its reply to PING: "UE9ORw==" yes, "PONG" no (then the
        header is no longer sent). Anything else (an error) teaches nothing: the reply is read as base64, the
        encoding asked for, and the next call's PING asks again."""
        result = ping.get("result") if isinstance(ping, dict) else None
        if result == PONG_BASE64:
            self.base64 = True
        elif result == PONG:
            self.base64 = False
            self._client.headers.pop(ENCODING_HEADER, None)
            log.warning("%s: the server ignores %s: base64; speaking plain JSON to it, where a value that is not "
                        "UTF-8 comes back with U+FFFD for its bad bytes", self.describe(), ENCODING_HEADER)

    def _failed(self, kind: type[TransportError], commands: Sequence[Command], problem: str, *,
                applied: bool | None) -> TransportError:
        """The error for a failed call: what failed, where, for which commands, and whether they were applied."""
        outcome = "; they may have been applied" if applied is None else "; nothing was applied"
        return kind(scrub(f"{self.describe()}: {problem}, for {summary(commands)}{outcome}", self._token),
                    outcome_unknown=applied is None)

    def _clean(self, text: str) -> str:
        """A server's text as a message may quote it: one line, at most MAX_QUOTED_CHARS, the token masked."""
        line = " ".join(scrub(text, self._token).split())
        return cut(line, MAX_QUOTED_CHARS)

    def _quote(self, response: httpx.Response) -> str:
        """': <error text>' from a JSON error body, else the kind of body; never an HTML page's text."""
        try:
            parsed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return f", {_body_kind(response)}"
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            return f": {self._clean(parsed['error'])}"
        return ""


_NOT_JSON = object()


def _origin(url: str, token: str) -> str:
    """scheme://host[:port][/path] of a REST URL, without anything that could hold a secret (user info, query);
    ConfigError for a URL Upstash cannot have."""
    shown = scrub(url, token)[:100]
    try:
        parsed = httpx.URL(url)
        origin, _secret = safe_url(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise ConfigError(f"UPSTASH_REDIS_REST_URL is not a URL: {shown!r}; it looks like "
                          f"https://<name>.upstash.io") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise ConfigError(f"UPSTASH_REDIS_REST_URL must be an https:// URL such as https://<name>.upstash.io, "
                          f"not {shown!r}")
    return origin


def _text(arg: Any, who: str, n: int) -> str | int:
    """An argument as JSON carries it: bytes must be UTF-8 text (Upstash's JSON body has no bytes)."""
    if isinstance(arg, bytes):
        try:
            return arg.decode("utf-8")
        except UnicodeDecodeError:
            raise ReplicationError(f"{who}: command {n} has bytes that are not UTF-8, which Upstash's JSON body "
                                   f"cannot carry") from None
    text: str | int = arg
    return text


def _decoded(value: Any) -> Any:
    """A base64-encoded result decoded: each string but "OK" is base64 (non-UTF-8 bytes as surrogate escapes)."""
    if isinstance(value, str):
        return value if value == "OK" else base64.b64decode(value, validate=True).decode("utf-8", "surrogateescape")
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ValueError(f"a {type(value).__name__} in a result")


def _body_kind(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content-type").split(";")[0]
    return f"{kind}, {len(response.content)} bytes" if response.content else "an empty body"


def _cause(error: Exception) -> str:
    """The network error's kind and text (httpx's messages name the host, never the request's headers)."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
