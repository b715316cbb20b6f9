"""Transports for tests: an in-memory Redis, and a wrapper that makes any transport fail as planned.

`MemoryTransport` keeps the contract (transport.py) over fakeredis, with Lua through lupa; both are in the `test`
extra and imported only when a MemoryTransport is made. Transports made with the same `server` share one database,
like two machines on one Redis: `MemoryTransport(server=first.server)`, or `first.sibling()`.

`FaultyTransport(inner)` wraps any transport and fails its next calls as planned, each either before anything is
sent or after the inner transport applied the commands (the reply lost on the way back):

    faulty = FaultyTransport(MemoryTransport())
    faulty.timeout_after_applying()      # the next execute applies, then raises TransportTimeoutError
    faulty.server_error().daily_limit()  # the two calls after it: a 500 before applying, then Upstash's daily limit
    faulty.plan(TransportUnreachableError, applied=True, times=3)   # any error, any number of times
    faulty.answer("BUSY Redis is busy running a script")   # every command of the next call answers this error

Faults are used up in order, one per call; a call with no fault planned goes to the inner transport. `calls` has
the commands of every call and `raised` every error a fault raised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import (
    MissingDependencyError,
    TransportAuthError,
    TransportError,
    TransportLimitError,
    TransportServerError,
    TransportTimeoutError,
    TransportUnreachableError,
)
from .transport import MEMORY, Command, Reply, ReplyError, Transport, block_seconds, check_commands, summary


class MemoryTransport:
    """The contract over an in-memory Redis (fakeredis); `server` is a `fakeredis.FakeServer` to share."""

    kind = MEMORY
    blocking_reads = True

    def __init__(self, server: Any = None) -> None:
        try:
            import fakeredis
        except ImportError as missing:
            raise MissingDependencyError("the memory transport needs fakeredis and lupa, which are not installed: "
                                         "pip install 'popkit-power[test]'") from missing
        from .redis_streams import without_callbacks

        self.server = server if server is not None else fakeredis.FakeServer()
        self._client = fakeredis.FakeRedis(server=self.server, decode_responses=True,
                                           encoding_errors="surrogateescape", protocol=2)
        without_callbacks(self._client)
        self.commands_sent = 0

    def sibling(self) -> MemoryTransport:
        """Another transport on the same in-memory database (another machine on the same server)."""
        return MemoryTransport(self.server)

    def execute(self, commands: Sequence[Command], *, timeout: float,
                meanwhile: Callable[[], None] | None = None) -> list[Reply]:
        from .redis_streams import run_on

        check_commands(commands, self.describe())
        block_seconds(commands, self.describe())  # refuses BLOCK 0, as the other transports do
        self.commands_sent += len(commands)
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            return run_on(connection, commands, meanwhile)
        finally:
            pool.release(connection)

    def describe(self) -> str:
        return f"memory (fakeredis server {id(self.server):#x})"

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class Fault:
    """A planned failure: `error` (a TransportError class or instance) raised instead of the reply, after the
    inner transport applied the commands when `applied`, else before anything is sent; or, as a ReplyError, the
    answer of every command of the call (none applied: a server that refuses each command, such as BUSY)."""

    error: type[TransportError] | TransportError | ReplyError
    applied: bool


class FaultyTransport:
    """Any transport, failing its next calls as planned (see the module's docstring)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.faults: deque[Fault] = deque()
        self.calls: list[list[list[Any]]] = []
        self.raised: list[TransportError] = []

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def blocking_reads(self) -> bool:
        return self.inner.blocking_reads

    @property
    def commands_sent(self) -> int:
        return self.inner.commands_sent

    def describe(self) -> str:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()

    def execute(self, commands: Sequence[Command], *, timeout: float,
                meanwhile: Callable[[], None] | None = None) -> list[Reply]:
        self.calls.append([list(command) for command in commands])
        if not self.faults:
            return self.inner.execute(commands, timeout=timeout, meanwhile=meanwhile)
        fault = self.faults.popleft()
        if isinstance(fault.error, ReplyError):
            return [fault.error for _ in commands]
        if fault.applied:
            self.inner.execute(commands, timeout=timeout)
        error = fault.error if isinstance(fault.error, TransportError) else self._made(fault.error, commands, timeout)
        self.raised.append(error)
        raise error

    # -- planning -------------------------------------------------------------------------------------------------

    def plan(self, error: type[TransportError] | TransportError, *, applied: bool = False,
             times: int = 1) -> FaultyTransport:
        """Fail the next `times` calls (after those already planned) with `error`; returns self, to chain."""
        self.faults.extend(Fault(error, applied) for _ in range(times))
        return self

    def answer(self, message: str, times: int = 1) -> FaultyTransport:
        """The next `times` calls apply nothing, and each of their commands answers the error `message` (a
        ReplyError in its place, as a server answers "BUSY ..." or "LOADING ...")."""
        self.faults.extend(Fault(ReplyError(message), False) for _ in range(times))
        return self

    def timeout_after_applying(self, times: int = 1) -> FaultyTransport:
        """The next call is applied, then its reply never comes: TransportTimeoutError (outcome unknown)."""
        return self.plan(TransportTimeoutError, applied=True, times=times)

    def timeout_before_sending(self, times: int = 1) -> FaultyTransport:
        """TransportTimeoutError with nothing applied (the caller cannot tell it from the one above)."""
        return self.plan(TransportTimeoutError, applied=False, times=times)

    def server_error(self, *, applied: bool = False, times: int = 1) -> FaultyTransport:
        """HTTP 500: TransportServerError (outcome unknown), before or after applying."""
        return self.plan(TransportServerError, applied=applied, times=times)

    def connection_reset(self, *, applied: bool = False, times: int = 1) -> FaultyTransport:
        """The connection reset mid-call: TransportUnreachableError with the outcome unknown."""
        return self.plan(TransportUnreachableError, applied=applied, times=times)

    def unreachable(self, times: int = 1) -> FaultyTransport:
        """Cannot connect: TransportUnreachableError, nothing applied (outcome known)."""
        return self.plan(TransportUnreachableError("injected: cannot connect (Connection refused); nothing was "
                                                   "applied", outcome_unknown=False), times=times)

    def auth_refused(self, times: int = 1) -> FaultyTransport:
        """HTTP 401 / WRONGPASS: TransportAuthError, nothing applied, not retryable."""
        return self.plan(TransportAuthError, times=times)

    def daily_limit(self, times: int = 1) -> FaultyTransport:
        """Upstash's "ERR max daily request limit exceeded": TransportLimitError, nothing applied."""
        return self.plan(TransportLimitError, times=times)

    def _made(self, kind: type[TransportError], commands: Sequence[Command], timeout: float) -> TransportError:
        problem = {
            TransportTimeoutError: f"no reply within {timeout:g} s",
            TransportServerError: "server error HTTP 500",
            TransportUnreachableError: "connection lost mid-call (connection reset by peer)",
            TransportAuthError: "token refused (HTTP 401: Unauthorized)",
            TransportLimitError: "Upstash limit reached (HTTP 400: ERR max daily request limit exceeded)",
        }.get(kind, kind.__name__)
        outcome = "; they may have been applied" if kind.outcome_unknown else "; nothing was applied"
        return kind(f"{self.describe()}: injected: {problem}, for {summary(commands)}{outcome}")
