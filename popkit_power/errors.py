"""The exceptions popkit-power raises on purpose, rooted in one base class.

    PowerModeError
    ├── ConfigError            a bad value in config.json or the environment
    ├── ProtocolError          an event that does not follow journal/SPEC.md (names the field)
    ├── SessionError           no such session, no active session, a bad session id
    │   ├── CoordinatorRunningError   a second coordinator for a session (names the running one)
    │   ├── ClaimLostError     another agent's claim on the task came first (`winner`, `winning_seq`)
    │   └── AnswerRefusedError an approval answered first (`first_status`, `first_by`, `first_seq`, `first_ts`)
    ├── HookInputError         a Claude Code hook payload the hook cannot use (logged, never raised to Claude Code)
    ├── UnsafePathError        a path under the power directory that must not be used: a symlink, a directory
    │                          where a file belongs, one not owned by you or writable by others
    ├── JournalError           the journal cannot be read or written
    │   └── RecordTooLargeError    one record over `max_record_bytes`
    └── ReplicationError       (replication/errors.py, as is its family below) mirroring to Redis or Upstash cannot
        │                      go on: a command the transport refuses to send
        │                      (not str/int/bytes, XREAD BLOCK over REST), a bad server address
        ├── MissingDependencyError   an optional package is not installed (names the pip command); an ImportError too
        └── TransportError     one call to Redis or Upstash failed as a whole; `retryable` says whether sending
            │                  again can help, `outcome_unknown` whether the server may have applied it
            ├── TransportTimeoutError      no reply in time (outcome unknown)
            ├── TransportUnreachableError  cannot connect (not applied), or the connection broke mid-call (unknown)
            ├── TransportAuthError         credentials refused: HTTP 401, WRONGPASS, NOAUTH (not applied)
            ├── TransportLimitError        an Upstash limit: daily or monthly requests, request size (not applied)
            ├── TransportServerError       HTTP 5xx (outcome unknown)
            ├── TransportRejectedError     the request as a whole refused for another reason, e.g. HTTP 400
            └── MalformedReplyError        a reply the protocol does not allow: not JSON, fewer results than commands

Every message is one line that names what is wrong, so the CLI can print it as it is; a transport's messages name the
server with its token masked and never contain a token. This module is on the hook's hot path: it imports nothing,
and the replication errors, which only the replicator, the transports and the commands that reach a server raise or
catch, are defined in replication/errors.py (creating their classes here cost the hook ~0.17 ms on every call).

Each class has a stable `code`: what `hook.log` writes in brackets, what the advice of `doctor` is keyed by, and what
a program can match on instead of the message's words (which may change). A subclass has its own code; a code, once
given, is never reused for another kind of error.

    code                       class
    power-mode                 PowerModeError
    config-invalid             ConfigError
    protocol-violation         ProtocolError
    session-invalid            SessionError
    coordinator-running        CoordinatorRunningError
    claim-lost                 ClaimLostError
    answer-refused             AnswerRefusedError
    session-not-active         SessionNotActiveError
    hook-input-invalid         HookInputError
    hook-call-abandoned        HookCallAbandoned
    unsafe-path                UnsafePathError
    journal-failed             JournalError
    record-too-large           RecordTooLargeError
    replication-failed         ReplicationError
    dependency-missing         MissingDependencyError
    transport-failed           TransportError
    replication-timeout        TransportTimeoutError
    replication-unreachable    TransportUnreachableError
    replication-auth           TransportAuthError
    replication-limit          TransportLimitError
    replication-server         TransportServerError
    replication-rejected       TransportRejectedError
    replication-malformed      MalformedReplyError

`code_of` gives the code of any exception: `os-error` for an error of the operating system, `unexpected` for anything
else (a bug). A replication error also says whether trying again can help (`retryable`): the replicator backs off
briefly from one that is, and waits longest after one that is not.
"""

# No `from __future__ import annotations` on the hook's off path (docs/hot-path.md): quoted annotations instead.

__all__ = [
    "AnswerRefusedError", "ClaimLostError", "ConfigError", "CoordinatorRunningError", "HookCallAbandoned",
    "HookInputError", "JournalError", "PowerModeError", "ProtocolError", "RecordTooLargeError", "SessionError",
    "SessionNotActiveError", "UnsafePathError", "code_of",
]

#: The codes of exceptions that are not PowerModeErrors (`code_of`)
OS_ERROR = "os-error"
UNEXPECTED = "unexpected"


def code_of(error: BaseException) -> str:
    """The stable code of any exception: a PowerModeError's own, `os-error` for an OSError (a full disk, a missing
    permission), `unexpected` for anything else."""
    if isinstance(error, PowerModeError):
        return error.code
    return OS_ERROR if isinstance(error, OSError) else UNEXPECTED


class PowerModeError(Exception):
    """Base of every error popkit-power raises on purpose."""

    code = "power-mode"


class ConfigError(PowerModeError):
    """A configuration value is missing, of the wrong type, or out of range."""

    code = "config-invalid"


class ProtocolError(PowerModeError, ValueError):
    """An event or message does not follow the protocol; the message names the offending field."""

    code = "protocol-violation"


class SessionError(PowerModeError):
    """A session that does not exist, is not active, or whose id is not allowed."""

    code = "session-invalid"


class CoordinatorRunningError(SessionError):
    """A coordinator already runs for the session; the message names its pid, host and start."""

    code = "coordinator-running"


class HookInputError(PowerModeError):
    """A hook payload the hook cannot use: not JSON, not UTF-8, too large, an unknown event, no session id."""

    code = "hook-input-invalid"


class HookCallAbandoned(PowerModeError):
    """A hook call over HTTP given up, its news left for the next call: its caller was gone before the reply, or
    its agent's state stayed locked longer than the caller waits (another hook of the agent hung)."""

    code = "hook-call-abandoned"


class UnsafePathError(PowerModeError):
    """A file or directory under the power directory that popkit-power refuses to use, named with the reason."""

    code = "unsafe-path"


class JournalError(PowerModeError):
    """The journal could not be read or appended to."""

    code = "journal-failed"


class RecordTooLargeError(JournalError):
    """One serialized record is larger than the configured limit."""

    code = "record-too-large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"record of {size} bytes is over the size limit of {limit} bytes (max_record_bytes)")
        self.size = size
        self.limit = limit


# -- protocol outcomes --
# What a protocol of claims.py or approvals.py raises when the journal's order went against the caller: a SessionError
# (the CLI's exit 2) whose fields say who or what came first, so that a program need not read the message.


class ClaimLostError(SessionError):
    """Another agent's claim on the task came first (in the journal, or in the server's order with machines
    replicating): `winner` is its agent key, `winning_seq` the seq of the record by which it took the task (None when
    this journal does not hold it yet), `seq` the losing claim's own record (which counts for nothing), `confirmed`
    False when the server's order had not come back in time and this is the machine's own word."""

    code = "claim-lost"

    def __init__(self, message: str, *, task: str, winner: str, winning_seq: int | None, seq: int,
                 confirmed: bool = True) -> None:
        super().__init__(message)
        self.task = task
        self.winner = winner
        self.winning_seq = winning_seq
        self.seq = seq
        self.confirmed = confirmed


class AnswerRefusedError(SessionError):
    """An answer to an approval request that does not count, because the request was answered first: the fields
    name that first answer (`first_status` "granted" or "denied", `first_by`, `first_seq`, `first_ts`). `seq` is the
    refused answer's own record when it was written (two answers at once: the first in the journal counts), None
    when it was refused before anything was written."""

    code = "answer-refused"

    def __init__(self, message: str, *, request: str, first_status: str, first_by: str | None,
                 first_seq: int | None, first_ts: str | None, seq: int | None = None) -> None:
        super().__init__(message)
        self.request = request
        self.first_status = first_status
        self.first_by = first_by
        self.first_seq = first_seq
        self.first_ts = first_ts
        self.seq = seq


class SessionNotActiveError(SessionError):
    """A change asked of a session that is not the active one any more (stopped, or switched from): the dashboard's
    page of it refuses, as the CLI's verbs (which act on the active session only) would."""

    code = "session-not-active"
