"""The contract between the replicator and a Redis-like server, and what every transport shares.

A transport sends Redis commands and hands back their replies. It is deliberately small, so that Upstash's REST API,
a Redis server and an in-memory fake can all keep it exactly, and so that the replicator decides every retry itself:

    Transport.kind            "upstash" | "redis" | "memory"
    Transport.blocking_reads  True when `XREAD BLOCK ms` works (Redis, memory); False for Upstash, whose REST API
                              has no blocking reads: the caller polls, and a transport refuses to send BLOCK
    Transport.commands_sent   commands handed to the server so far (what Upstash bills: a pipeline of n counts n,
                              an EVALSHA counts 1); a call that could not connect counts nothing
    Transport.execute(commands, *, timeout, meanwhile=None) -> list[Reply]
                              ONE round trip; NOT atomic (other clients' commands may interleave); one reply per
                              command, in order. A command's own error (a duplicate XADD id, NOSCRIPT, WRONGTYPE)
                              is a ReplyError in its place and the other commands' results stand. Raises a
                              TransportError when the call as a whole failed or its outcome is unknown (errors.py):
                                TransportTimeoutError      no reply in `timeout` s: may have been applied
                                TransportUnreachableError  could not connect (outcome_unknown False: not applied),
                                                           or the connection broke mid-call (may have been applied)
                                TransportAuthError         credentials refused (401, WRONGPASS, NOAUTH): not applied
                                TransportLimitError        an Upstash limit (daily/monthly requests, request size)
                                TransportServerError       HTTP 5xx: may have been applied
                                TransportRejectedError     the request refused as a whole (HTTP 400): not applied
                                MalformedReplyError        a reply the protocol does not allow: may have been applied
                              Each has `retryable` (can sending again help?) and `outcome_unknown`. It NEVER
                              retries: a resent XADD without an explicit id would be a duplicate, so only the
                              caller, who knows whether its commands are idempotent, may send again. `timeout`
                              bounds each wait on the network (connecting, sending, each read); a blocking XREAD's
                              BLOCK time is added to it. Raises
                              ReplicationError (not a TransportError, nothing sent) for commands it will not send.
                              `meanwhile()`, when given, is called once the commands are sent and before their
                              replies are read, so that the caller works while the server does (Redis); where a
                              call cannot be split (Upstash's HTTP request) it is called after the reply came, and
                              when the call fails it may not be called at all.
    Transport.describe() -> str   kind and address for status and messages, the token masked ("****" + last 4)
    Transport.close() -> None     release connections; the transport is not used again

Replies are normalized to RESP2 shapes as Upstash's JSON has them: str (never bytes; text that is not UTF-8 comes
back with surrogate escapes), int, None (a nil, such as XREAD with nothing new), and lists of those (XREAD gives
[[stream, [[id, [field, value, ...]], ...]], ...], HGETALL a flat [field, value, ...] list, SET "OK", PING "PONG").

This module imports no client library, so the mode selector and status can use its helpers without paying for one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ..display import cut
from .errors import ReplicationError

UPSTASH, REDIS, MEMORY = "upstash", "redis", "memory"

#: How long a transport waits to open a connection (seconds); the per-call `timeout` bounds the rest.
CONNECT_TIMEOUT_SECONDS = 5.0

#: Texts of Upstash's limit errors (a whole request refused): resending the same request cannot succeed.
LIMIT_TEXTS = ("max daily request limit exceeded", "max requests limit exceeded", "max request size exceeded")
#: Error codes that mean the credentials were refused.
AUTH_CODES = ("WRONGPASS", "NOAUTH")
#: Error codes of a command's reply that mean the server cannot run it now but will later: a script still running
#: (BUSY), data still loading after a restart (LOADING), a cluster moving keys (TRYAGAIN) or without its primary.
RETRYABLE_CODES = ("BUSY", "LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN")
#: The commands whose BLOCK argument makes the server hold the reply.
BLOCKING_COMMANDS = ("XREAD", "XREADGROUP")

Arg = str | int | bytes
Command = Sequence[Arg]


@dataclass(frozen=True)
class ReplyError:
    """One command's error reply, returned in that command's place: `message` is the server's text as sent, such
    as "ERR The ID specified in XADD is equal or smaller than the target stream top item"."""

    message: str

    @property
    def code(self) -> str:
        """The error's first word: "ERR", "NOSCRIPT", "WRONGTYPE", ..."""
        return self.message.split(" ", 1)[0]

    @property
    def retryable(self) -> bool:
        """Whether the same command may succeed later (`RETRYABLE_CODES`); a ReplicationError made of this reply
        carries it."""
        return self.code in RETRYABLE_CODES

    def __str__(self) -> str:
        return self.message


#: A normalized reply (str, int, None, or a list of those) or a ReplyError in its place.
Reply = Any | ReplyError


class Transport(Protocol):
    """What the replicator needs from a server; see the module's docstring for what each member promises. The
    three attributes are read-only for callers (a wrapper may compute them)."""

    @property
    def kind(self) -> str: ...

    @property
    def blocking_reads(self) -> bool: ...

    @property
    def commands_sent(self) -> int: ...

    def execute(self, commands: Sequence[Command], *, timeout: float,
                meanwhile: Callable[[], None] | None = None) -> list[Reply]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class Script:
    """A Lua script run by EVALSHA (its source is not sent again at every call), falling back to EVAL when the
    server does not have it cached (NOSCRIPT: after a restart or SCRIPT FLUSH). The fallback is safe: a NOSCRIPT
    reply means the script did not run."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()

    def evalsha(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> list[Arg]:
        """The EVALSHA command that runs the script on `keys` and `args` (to send within a larger pipeline)."""
        return ["EVALSHA", self.sha, len(keys), *keys, *args]

    def eval(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> list[Arg]:
        """The EVAL command (the whole source; the server caches it for later EVALSHAs)."""
        return ["EVAL", self.source, len(keys), *keys, *args]

    def run(self, transport: Transport, keys: Sequence[Arg] = (), args: Sequence[Arg] = (), *,
            timeout: float, meanwhile: Callable[[], None] | None = None) -> Reply:
        """The script's reply (a ReplyError when the script itself failed); one EVALSHA, plus one EVAL when the
        server answered NOSCRIPT. Raises what `execute` raises; `meanwhile` as `execute` has it."""
        return self.run_many(transport, [(keys, args)], timeout=timeout, meanwhile=meanwhile)[0]

    def run_many(self, transport: Transport, calls: Sequence[tuple[Sequence[Arg], Sequence[Arg]]], *,
                 timeout: float, meanwhile: Callable[[], None] | None = None) -> list[Reply]:
        """Run the script once per (keys, args), in order, as one pipeline of EVALSHAs; the ones answered NOSCRIPT
        (none ran) are sent again, in order, as EVALs in a second round trip."""
        replies = transport.execute([self.evalsha(keys, args) for keys, args in calls], timeout=timeout,
                                    meanwhile=meanwhile)
        missing = [n for n, reply in enumerate(replies) if is_noscript(reply)]
        if missing:
            again = transport.execute([self.eval(*calls[n]) for n in missing], timeout=timeout)
            for n, reply in zip(missing, again, strict=True):
                replies[n] = reply
        return replies


def is_noscript(reply: Reply) -> bool:
    return isinstance(reply, ReplyError) and reply.code == "NOSCRIPT"


def auth_refused(text: str) -> bool:
    """Whether an error text says the credentials were refused."""
    return text.split(" ", 1)[0].upper() in AUTH_CODES


def limit_reached(text: str) -> bool:
    """Whether an error text is one of Upstash's limits."""
    lowered = text.lower()
    return any(limit in lowered for limit in LIMIT_TEXTS)


def mask(secret: str) -> str:
    """A secret as it may be shown: "****" plus its last 4 characters when it is long enough (12 or more) that
    those say little about the rest, else "****" alone."""
    return "****" + secret[-4:] if len(secret) >= 12 else "****"


def scrub(text: str, *secrets: str) -> str:
    """`text` with every occurrence of each secret masked (for a server's text that might echo what it was sent)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, mask(secret))
    return text


def safe_url(url: str) -> tuple[str, str]:
    """(the URL as it may be shown: scheme://host:port/path, without user, password or query; the secret it
    carries, '' when none: its password, or a `password` or `_token` query parameter). ValueError when it is not
    a URL at all."""
    parts = urlsplit(url)
    port = parts.port  # ValueError for a port that is not a number
    query = parse_qs(parts.query)
    secret = parts.password or (query.get("password") or query.get("_token") or [""])[0]
    if parts.scheme == "unix":
        return f"unix://{parts.path}", secret
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{parts.path.rstrip('/')}", secret


def check_commands(commands: Sequence[Command], who: str) -> None:
    """Refuse, before anything is sent, what no transport can send: no commands, an empty command, a command name
    that is not text, an argument that is not str, int or bytes (a bool or a float would be sent as something the
    caller did not mean)."""
    if isinstance(commands, (str, bytes)) or not commands:
        raise ReplicationError(f"{who}: execute needs a non-empty list of commands, got {_kind_of(commands)}")
    for n, command in enumerate(commands, 1):
        if isinstance(command, (str, bytes)) or not command:
            raise ReplicationError(f"{who}: command {n} must be a non-empty list [name, arg, ...], "
                                   f"got {_kind_of(command)}")
        if not isinstance(command[0], str) or not command[0]:
            raise ReplicationError(f"{who}: command {n} must start with its name as text, got {_kind_of(command[0])}")
        for m, arg in enumerate(command[1:], 1):
            if isinstance(arg, bool) or not isinstance(arg, (str, int, bytes)):
                raise ReplicationError(f"{who}: argument {m} of command {n} ({command[0]}) is {_kind_of(arg)}; "
                                       f"arguments are str, int or bytes")


def block_seconds(commands: Sequence[Command], who: str) -> float:
    """How long the server may hold the reply because of `XREAD/XREADGROUP ... BLOCK ms` commands (their sum, in
    seconds). BLOCK 0 (forever) is refused: a call must end, so that the caller can stop."""
    total = 0.0
    for n, command in enumerate(commands, 1):
        if str(command[0]).upper() not in BLOCKING_COMMANDS:
            continue
        words = [arg.upper() if isinstance(arg, str) else arg for arg in command]
        if "BLOCK" not in words:
            continue
        at = words.index("BLOCK")
        value = command[at + 1] if at + 1 < len(command) else None
        ms = value if isinstance(value, int) else int(value) if isinstance(value, str) and value.isdigit() else None
        if ms is None or ms <= 0:
            raise ReplicationError(f"{who}: command {n} ({command[0]!r}) needs BLOCK with a positive number of "
                                   f"milliseconds, got {value!r}; BLOCK 0 would wait forever")
        total += ms / 1000
    return total


def summary(commands: Sequence[Command]) -> str:
    """The commands as a message names them, never with their arguments (which may hold data or secrets):
    "1 command (PING)", "3 commands (XADD, XADD, EVALSHA)", "40 commands (XADD, XADD, XADD, XADD, ...)"."""
    names = [str(command[0]).upper() for command in commands[:4]]
    more = ", ..." if len(commands) > 4 else ""
    return f"{len(commands)} command{'s' if len(commands) != 1 else ''} ({', '.join(names)}{more})"


def _kind_of(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value)
    return f"{type(value).__name__} {cut(text, 40)}"
