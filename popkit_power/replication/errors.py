"""The errors of replication to Redis Streams (Upstash over REST, or a Redis server): `ReplicationError` and its
family, each with its stable `code` (the one table of codes is in popkit_power/errors.py, beside the rest of the
tree under `PowerModeError`). Only the replicator, the transports and the commands that reach a server raise or
catch them, so they live here and not in errors.py, which the hook imports on every tool call: creating these
classes cost ~0.17 ms there (docs/hot-path.md).
"""

from __future__ import annotations

from ..errors import PowerModeError

__all__ = [
    "MalformedReplyError", "MissingDependencyError", "ReplicationError", "TransportAuthError", "TransportError",
    "TransportLimitError", "TransportRejectedError", "TransportServerError", "TransportTimeoutError",
    "TransportUnreachableError",
]


class ReplicationError(PowerModeError):
    """Replication to Redis or Upstash cannot go on: a command a transport refuses, a missing optional package, a
    server's answer the replicator cannot use.

    `retryable`: whether doing the same again later can succeed. False unless the raiser says otherwise: a command
    refused before sending, a script's answer that is not what it returns, a key of the wrong type stay what they
    are; a server busy running a script or loading its data (BUSY, LOADING) is retryable."""

    code = "replication-failed"
    retryable = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class MissingDependencyError(ReplicationError, ImportError):
    """An optional package a transport needs is not installed; the message names the pip command that adds it."""

    code = "dependency-missing"


class TransportError(ReplicationError):
    """One call to Redis or Upstash failed as a whole.

    `retryable`: whether sending the same call again can succeed (a timeout can; a refused token cannot).
    `outcome_unknown`: whether the server may have applied the commands even so (a timeout after sending), which is
    why every command the replicator sends must be safe to send twice."""

    code = "transport-failed"
    retryable = True
    outcome_unknown = True

    def __init__(self, message: str, *, outcome_unknown: bool | None = None) -> None:
        super().__init__(message)
        if outcome_unknown is not None:
            self.outcome_unknown = outcome_unknown


class TransportTimeoutError(TransportError):
    """No reply within the call's timeout: the commands may have been applied."""

    code = "replication-timeout"


class TransportUnreachableError(TransportError):
    """The server could not be reached (nothing sent), or the connection broke during the call (outcome unknown)."""

    code = "replication-unreachable"


class TransportAuthError(TransportError):
    """The credentials were refused (HTTP 401, WRONGPASS, NOAUTH): nothing was applied, and resending cannot help."""

    code = "replication-auth"
    retryable = False
    outcome_unknown = False


class TransportLimitError(TransportError):
    """An Upstash limit was reached (daily or monthly requests, request size): nothing was applied, and resending
    the same request will not help until the limit resets or the request is made smaller."""

    code = "replication-limit"
    retryable = False
    outcome_unknown = False


class TransportServerError(TransportError):
    """The server failed (HTTP 5xx): the commands may have been applied; a later call may succeed."""

    code = "replication-server"


class TransportRejectedError(TransportError):
    """The request as a whole was refused for a reason that resending will not fix (HTTP 400, 405, a top-level
    error that is not about credentials or limits)."""

    code = "replication-rejected"
    retryable = False
    outcome_unknown = False


class MalformedReplyError(TransportError):
    """A reply the protocol does not allow (not JSON, an HTML error page, fewer results than commands): something
    between us and the server answered, so the commands may have been applied."""

    code = "replication-malformed"
