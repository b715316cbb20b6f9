"""follow.records and follow.follow_until, the one way the library follows a journal until something is found or a
deadline passes: called directly, with an injected clock where the deadline matters (no sleeps that guess)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from popkit_power import follow
from popkit_power.follow import follow_until, records
from popkit_power.journal.writer import Journal, Position
from popkit_power.protocol import make_event


def note(journal: Journal, text: str) -> int:
    """Append one message event saying `text`; its seq."""
    event = make_event("message.broadcast", {"text": text}, sender="human", session="s", origin="o")
    return journal.append([orjson.dumps(event)]).first_seq


def saying(text: str) -> Callable[[dict[str, Any]], int | None]:
    """A condition: the seq of the record that says `text`."""
    return lambda event: event["seq"] if (event.get("data") or {}).get("text") == text else None


class Clock:
    """A monotonic clock that moves only when read: each reading is `step` seconds after the one before, and the
    readings named in `then` first run what they are given (an append that comes in while the follower waits)."""

    def __init__(self, step: float, then: dict[int, Callable[[], Any]] | None = None) -> None:
        self.now, self.step, self.readings, self.then = 1000.0, step, 0, then or {}

    def __call__(self) -> float:
        self.readings += 1
        action = self.then.get(self.readings)
        if action is not None:
            action()
        self.now += self.step
        return self.now


@pytest.fixture
def watches(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every JournalWatch a follower makes, with the timeouts of its waits, closed or not."""
    made: list[Any] = []
    real = follow.JournalWatch

    class Counted(real):  # type: ignore[misc, valid-type]
        def __init__(self, directory: str, **kwargs: Any) -> None:
            super().__init__(directory, **kwargs)
            self.waits: list[float] = []
            self.closed = False
            made.append(self)

        def wait(self, timeout: float, fds: Any = ()) -> list[int]:
            self.waits.append(timeout)
            return super().wait(timeout, fds)

        def close(self) -> None:
            self.closed = True
            super().close()

    monkeypatch.setattr(follow, "JournalWatch", Counted)
    yield made


def test_a_record_there_already_is_found_without_waiting_or_watching(journal: Journal, watches: list[Any]) -> None:
    note(journal, "one")
    seq = note(journal, "two")
    assert follow_until(journal, Position(), saying("two"), timeout=30) == seq
    assert watches == [], "found on the first read: watchdog is never loaded for it"


def test_it_returns_none_at_the_deadline_on_its_clock(journal: Journal, watches: list[Any]) -> None:
    """Nothing comes: at the deadline (on the injected clock, which moves 1.5 s a reading) it gives up. The clock
    reads 1001.5 at the start (deadline 1006.5), 1003 at the first end (the watch is made), 1004.5 (a wait of one
    WAIT_SECONDS), 1006 (a wait of the half second left), 1007.5 (past: None); the watch is closed."""
    note(journal, "one")
    clock = Clock(step=1.5)
    assert follow_until(journal, Position(), saying("never"), timeout=5.0, clock=clock) is None
    assert len(watches) == 1 and watches[0].closed
    assert watches[0].waits == [pytest.approx(follow.WAIT_SECONDS), pytest.approx(0.5)]
    assert clock.readings == 5


def test_a_zero_timeout_reads_what_there_is_and_never_waits(journal: Journal, watches: list[Any]) -> None:
    seqs = [note(journal, f"n{number}") for number in range(3)]
    assert [event["seq"] for event in records(journal.reader(), journal.directory, timeout=0)] == seqs
    assert follow_until(journal, Position(), saying("n9"), timeout=0) is None
    assert watches == []


def test_a_record_appended_between_the_read_and_the_watch_is_not_missed(journal: Journal,
                                                                           watches: list[Any]) -> None:
    """The record comes in after the first read found nothing and before the watch is made (the clock's second
    reading, the deadline check, appends it): the read made after the watch finds it, with no wait at all."""
    appended: list[int] = []
    clock = Clock(step=0.001, then={2: lambda: appended.append(note(journal, "late"))})
    assert follow_until(journal, Position(), saying("late"), timeout=30, clock=clock) == appended[0]
    assert len(watches) == 1 and watches[0].waits == [] and watches[0].closed


def test_a_record_appended_while_it_waits_ends_the_wait(journal: Journal, monkeypatch: pytest.MonkeyPatch,
                                                        watches: list[Any]) -> None:
    """The follower waits on the journal's change: a record appended as its wait begins wakes it, and it is found."""
    appended: list[int] = []
    real_wait = follow.JournalWatch.wait

    def append_then_wait(self: Any, timeout: float, fds: Any = ()) -> list[int]:
        if not appended:
            appended.append(note(journal, "news"))
        return real_wait(self, timeout, fds)  # type: ignore[no-any-return]

    monkeypatch.setattr(follow.JournalWatch, "wait", append_then_wait)
    assert follow_until(journal, Position(), saying("news"), timeout=60) == appended[0]
    assert watches[0].waits, "it waited, and the append ended the wait"


def test_records_end_when_done_holds_at_the_journal_end(journal: Journal, watches: list[Any]) -> None:
    """Followed for ever (no timeout), records end once `done()` holds where the journal ends, after every record
    there: what `replay --follow` does when it has read the session's end."""
    note(journal, "a")
    note(journal, "closed")
    seen: list[str] = []
    for event in records(journal.reader(), journal.directory, timeout=None, done=lambda: "closed" in seen):
        seen.append(event["data"]["text"])
    assert seen == ["a", "closed"] and watches == []


def test_a_caller_that_stops_early_closes_the_watch(journal: Journal, watches: list[Any]) -> None:
    first = note(journal, "a")
    clock = Clock(step=0.001, then={2: lambda: note(journal, "b")})
    followed = records(journal.reader(), journal.directory, timeout=30, clock=clock)
    assert next(followed)["seq"] == first
    assert next(followed)["data"]["text"] == "b"
    followed.close()
    assert len(watches) == 1 and watches[0].closed
