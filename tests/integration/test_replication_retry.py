"""How long the replicator waits after a failed step is decided by the error's `retryable` flag, never by its class
name or its message: the doubling backoff (1 s, 2 s, ...) after what trying again can fix, the longest wait at once
after what it cannot. One test per kind of failure, each through the fault-injecting memory transport."""

from __future__ import annotations

from pathlib import Path

import pytest

from popkit_power.replication.errors import ReplicationError, TransportRejectedError
from popkit_power.replication.memory import FaultyTransport, MemoryTransport
from popkit_power.replication.replicator import MAX_BACKOFF, MIN_BACKOFF, Replicator
from popkit_power.replication.transport import ReplyError
from popkit_power.session import start_session

BACKOFF = [MIN_BACKOFF, 2 * MIN_BACKOFF]  # two retryable failures in a row
LONGEST = [MAX_BACKOFF, MAX_BACKOFF]  # two that are not: the longest wait each time


class Rig:
    """A replicator on a faulty memory transport whose waits are recorded instead of slept."""

    def __init__(self, tmp_path: Path) -> None:
        session = start_session(str(tmp_path / "a"), "Retries", sender="human")
        self.faulty = FaultyTransport(MemoryTransport())
        self.replicator = Replicator(session, self.faulty, clock=lambda: 1000.0)
        self.waits: list[float] = []
        self.replicator._stop.wait = self._waited  # type: ignore[method-assign]

    def _waited(self, seconds: float | None = None) -> bool:
        assert seconds is not None
        self.waits.append(seconds)
        return False

    def push_twice(self) -> list[float]:
        """Two push steps as the loop runs them (each failure noted and waited for); the waits."""
        for _ in range(2):
            assert self.replicator._guarded(self.replicator.push_once) == 0
        return self.waits

    def recovers(self) -> None:
        """With no fault left, the next step pushes, and the backoff starts over."""
        assert self.replicator._guarded(self.replicator.push_once) > 0
        assert self.replicator._backoff == MIN_BACKOFF


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


@pytest.mark.parametrize("plan", ["timeout_before_sending", "timeout_after_applying", "server_error", "unreachable",
                                  "connection_reset"])
def test_a_call_that_may_succeed_when_sent_again_backs_off_doubling(rig: Rig, plan: str) -> None:
    getattr(rig.faulty, plan)(times=2)
    assert rig.push_twice() == BACKOFF
    assert all(error.retryable for error in rig.faulty.raised)
    rig.recovers()


@pytest.mark.parametrize("plan", ["auth_refused", "daily_limit", "rejected"])
def test_a_call_that_resending_cannot_fix_waits_the_longest_at_once(rig: Rig, plan: str) -> None:
    if plan == "rejected":  # HTTP 400: no helper of its own, planned by class
        rig.faulty.plan(TransportRejectedError, times=2)
    else:
        getattr(rig.faulty, plan)(times=2)
    assert rig.push_twice() == LONGEST
    assert not any(error.retryable for error in rig.faulty.raised)
    rig.recovers()


@pytest.mark.parametrize("answer", ["BUSY Redis is busy running a script. You can only call SCRIPT KILL",
                                    "LOADING Redis is loading the dataset in memory"])
def test_a_server_busy_or_loading_is_retried_soon(rig: Rig, answer: str) -> None:
    """Each command answers BUSY or LOADING (no TransportError: the call itself worked); the ReplicationError made of
    that answer carries the reply's `retryable`."""
    rig.faulty.answer(answer, times=2)
    assert rig.push_twice() == BACKOFF
    assert answer.split()[0] in str(rig.replicator.stats["last_error"])
    rig.recovers()


def test_a_command_the_server_refuses_for_good_waits_the_longest(rig: Rig) -> None:
    rig.faulty.answer("ERR unknown command 'XINFO'", times=2)
    assert rig.push_twice() == LONGEST
    assert "ERR unknown command" in str(rig.replicator.stats["last_error"])
    rig.recovers()


@pytest.mark.parametrize(("answer", "waits"), [("ERR Error running script (call to f_0): boom", LONGEST),
                                                ("BUSY Redis is busy running a script", BACKOFF)])
def test_the_push_script_s_error_decides_by_its_reply(rig: Rig, answer: str, waits: list[float]) -> None:
    """The push script itself answers an error: a script that failed is not sent again soon; a busy server is."""
    replicator = rig.replicator
    for _ in range(2):
        replicator.resume()  # the positions first (no fault), so that the fault meets the script's call
        rig.faulty.answer(answer)
        with pytest.raises(ReplicationError, match="the push script answered") as raised:
            replicator.push_once()
        replicator._failed(raised.value)
    assert rig.waits == waits
    rig.recovers()


def test_a_key_in_the_way_of_this_machine_s_stream_is_retried_until_it_is_deleted(rig: Rig) -> None:
    """Something else stands under this machine's stream name: nothing is pushed, and the replicator looks again
    with the usual backoff (a person deletes the key, as the error says), not after the longest wait."""
    inner = rig.faulty.inner
    assert isinstance(inner, MemoryTransport)
    inner.execute([["SET", rig.replicator.stream, "squatter"]], timeout=5)
    assert rig.push_twice() == BACKOFF
    assert "is not a stream" in str(rig.replicator.stats["last_error"])
    inner.execute([["DEL", rig.replicator.stream]], timeout=5)
    rig.recovers()


def test_a_failure_of_this_machine_is_retried_with_the_backoff(rig: Rig) -> None:
    """Not a replication error (a full disk under the journal): nothing on the server decides it, so it is retried
    as a passing failure."""
    def full_disk() -> int:
        raise OSError(28, "No space left on device")

    for _ in range(2):
        assert rig.replicator._guarded(full_disk) == 0
    assert rig.waits == BACKOFF
    rig.recovers()


def test_a_reply_error_knows_whether_it_is_retryable() -> None:
    assert ReplyError("BUSY Redis is busy").retryable and ReplyError("LOADING loading").retryable
    assert not ReplyError("ERR syntax error").retryable and not ReplyError("WRONGTYPE Operation").retryable
    assert ReplicationError("x", retryable=ReplyError("TRYAGAIN later").retryable).retryable
    assert not ReplicationError("a command refused before sending").retryable
