"""The Redis transport: commands to a Redis server at `REDIS_URL` (`redis://`, `rediss://`, `unix://`) through
redis-py, which is the optional `redis` extra (`pip install 'popkit-power[redis]'`). transport.py has the contract.

- `execute` writes its commands at once and then reads their replies (a pipeline, as redis-py's own
  `pipeline(transaction=False)` sends it): one round trip, each command's error in its place.
- No automatic retries. redis-py (5 and later) retries a command up to 3 times after a connection error or a
  timeout, which would send an XADD twice; here the client's Retry allows none, and the caller decides.
- Replies come as Redis sends them (RESP2, strings decoded as UTF-8 with surrogate escapes): redis-py's response
  callbacks, which turn XREAD into dicts and SET into True, are switched off, so Redis and Upstash reply alike.
- Blocking reads work: the call's socket timeout is its `timeout` plus the BLOCK time of its XREADs, so a reader
  blocked for 5 s with `timeout=2` waits up to 7 s for its reply instead of failing at the socket timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ConfigError
from .errors import (
    MalformedReplyError,
    MissingDependencyError,
    TransportAuthError,
    TransportError,
    TransportRejectedError,
    TransportServerError,
    TransportTimeoutError,
    TransportUnreachableError,
)
from .transport import (
    CONNECT_TIMEOUT_SECONDS,
    REDIS,
    Command,
    Reply,
    ReplyError,
    auth_refused,
    block_seconds,
    check_commands,
    mask,
    safe_url,
    scrub,
    summary,
)

try:
    import redis
    from redis import exceptions as redis_errors
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as missing:  # pragma: no cover - the test extra installs redis
    raise MissingDependencyError("REDIS_URL needs redis-py, which is not installed: "
                                 "pip install 'popkit-power[redis]'") from missing

SCHEMES = ("redis", "rediss", "unix")
#: Error codes of the reply errors redis-py raises as their own classes, for versions whose errors do not carry
#: the code (`status_code`, redis-py 8): the reply's text is rebuilt as the server sent it.
_CODES: dict[type[Exception], str] = {
    redis_errors.NoScriptError: "NOSCRIPT", redis_errors.ReadOnlyError: "READONLY",
    redis_errors.ExecAbortError: "EXECABORT", redis_errors.NoPermissionError: "NOPERM",
    redis_errors.OutOfMemoryError: "OOM",
}
_NIL_WHEN_EMPTY = ("XREAD", "XREADGROUP")


class RedisStreams:
    """A transport to the Redis server at `url`; `client` replaces the redis-py client built from it (tests)."""

    kind = REDIS
    blocking_reads = True

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
                 client: redis.Redis | None = None) -> None:
        self._shown, self._password = _shown(url)
        self.connect_timeout = connect_timeout
        self.commands_sent = 0
        if client is None:
            tcp: dict[str, Any] = {} if url.startswith("unix:") else {"socket_keepalive": True}
            try:
                client = redis.Redis.from_url(
                    url, decode_responses=True, encoding_errors="surrogateescape", protocol=2,
                    socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout,
                    retry=Retry(NoBackoff(), 0), retry_on_error=[], health_check_interval=0, **tcp)
            except (ValueError, TypeError) as error:
                raise ConfigError(f"REDIS_URL {self._shown} cannot be used: {scrub(str(error), self._password)}") \
                    from None
        self._client = client
        without_callbacks(client)

    def describe(self) -> str:
        password = f" (password {mask(self._password)})" if self._password else ""
        return f"redis {self._shown}{password}"

    def __repr__(self) -> str:
        return f"<RedisStreams {self.describe()}>"

    def close(self) -> None:
        self._client.close()

    def execute(self, commands: Sequence[Command], *, timeout: float,
                meanwhile: Callable[[], None] | None = None) -> list[Reply]:
        check_commands(commands, self.describe())
        socket_timeout = timeout + block_seconds(commands, self.describe())
        pool = self._client.connection_pool
        try:
            # The pool connects (and reconnects a connection that has unread data on it: no stale reply is read
            # as ours); connecting failed means nothing was sent.
            connection = pool.get_connection()
        except (redis_errors.RedisError, OSError) as error:
            raise self._map(error, commands, connecting=True) from None
        connection.socket_timeout = socket_timeout  # the connection's own, for this call
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            sock.settimeout(socket_timeout)
        self.commands_sent += len(commands)
        try:
            replies = run_on(connection, commands, meanwhile)
        except BaseException as error:
            connection.disconnect()  # type: ignore[no-untyped-call]  # nothing left on it may pass for a reply
            if isinstance(error, (redis_errors.RedisError, OSError)):
                raise self._map(error, commands, connecting=False) from None
            raise
        finally:
            # back to the default, for the handshake when this connection is opened again (the next call on it
            # sets its own timeout after that)
            connection.socket_timeout = self.connect_timeout
            pool.release(connection)
        for reply in replies:
            if isinstance(reply, ReplyError) and auth_refused(reply.message):
                raise self._failed(TransportAuthError, commands, f"credentials refused ({reply.message})",
                                   applied=False)
        return replies

    def _map(self, error: Exception, commands: Sequence[Command], *, connecting: bool) -> TransportError:
        """The TransportError for what redis-py raised while connecting or during the call."""
        text = error_text(error) if getattr(error, "status_code", None) else str(error)
        cause = f"{type(error).__name__}: {' '.join(text.split())}"
        if isinstance(error, redis_errors.AuthenticationError):
            return self._failed(TransportAuthError, commands, f"credentials refused ({cause})", applied=False)
        if connecting and isinstance(error, redis_errors.ResponseError):
            return self._failed(TransportRejectedError, commands, f"connection set-up refused ({cause})",
                                applied=False)
        if connecting and isinstance(error, (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)):
            return self._failed(TransportUnreachableError, commands, f"cannot connect ({cause})", applied=False)
        if isinstance(error, redis_errors.TimeoutError):
            return self._failed(TransportTimeoutError, commands, f"no reply in time ({cause})", applied=None)
        if isinstance(error, redis_errors.BusyLoadingError):
            return self._failed(TransportServerError, commands, f"server not ready ({cause})", applied=None)
        if isinstance(error, (redis_errors.ConnectionError, OSError)):
            return self._failed(TransportUnreachableError, commands, f"connection lost mid-call ({cause})",
                                applied=None)
        return self._failed(MalformedReplyError, commands, f"unexpected failure ({cause})", applied=None)

    def _failed(self, kind: type[TransportError], commands: Sequence[Command], problem: str, *,
                applied: bool | None) -> TransportError:
        outcome = "; they may have been applied" if applied is None else "; nothing was applied"
        message = scrub(f"{self.describe()}: {problem}, for {summary(commands)}{outcome}", self._password)
        return kind(message, outcome_unknown=applied is None)


def without_callbacks(client: redis.Redis) -> None:
    """Switch off redis-py's response callbacks, so replies are Redis's own (RESP2) shapes."""
    client.response_callbacks.clear()


def run_on(connection: Any, commands: Sequence[Command], meanwhile: Callable[[], None] | None = None) -> list[Reply]:
    """Send `commands` on `connection` in one write (a pipeline: one round trip), call `meanwhile` while the server
    works, then read one reply per command, normalized (a command's error in its place). What redis-py's Pipeline
    does, on its public connection API, with the gap between sending and reading open to the caller."""
    connection.send_packed_command(connection.pack_commands([list(command) for command in commands]))
    if meanwhile is not None:
        meanwhile()
    replies: list[Reply] = []
    for command in commands:
        try:
            result = connection.read_response()
        except redis_errors.ResponseError as error:
            result = error
        replies.append(normalized(result, str(command[0]).upper()))
    return replies


def normalized(result: Any, name: str = "") -> Reply:
    """A redis-py result in the contract's shapes: errors as ReplyError, bytes as text, tuples as lists, and an
    empty XREAD as None (what Redis and Upstash send; fakeredis sends [])."""
    if isinstance(result, redis_errors.ResponseError):
        return ReplyError(error_text(result))
    if isinstance(result, bytes):
        return result.decode("utf-8", "surrogateescape")
    if isinstance(result, (list, tuple)):
        if not result and name in _NIL_WHEN_EMPTY:
            return None
        return [normalized(item) for item in result]
    if isinstance(result, bool):  # a reply redis-py's parser turned into a bool: Redis sent 0 or 1
        return int(result)
    return result


def error_text(error: Exception) -> str:
    """An error reply's text as the server sent it ("NOSCRIPT No matching script..."): redis-py strips the code
    of the errors it knows (and keeps it in `status_code` from version 8 on)."""
    text = str(error.args[0]) if error.args else str(error)
    code = getattr(error, "status_code", None) or _CODES.get(type(error))
    if code:
        return text if text.startswith(f"{code} ") else f"{code} {text}"
    first = text.split(" ", 1)[0]
    return text if first.isupper() and first.isalpha() else f"ERR {text}"


def _shown(url: str) -> tuple[str, str]:
    """(the URL as messages show it, the password it carries); ConfigError for a URL that is not redis://,
    rediss:// or unix://."""
    try:
        shown, password = safe_url(url)
    except ValueError as error:
        raise ConfigError(f"REDIS_URL is not a URL ({error}); it looks like redis://host:6379/0") from None
    if not shown.startswith(tuple(f"{scheme}://" for scheme in SCHEMES)):
        shown_url = scrub(url, password)[:100]
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, not {shown_url!r}")
    return shown, password
