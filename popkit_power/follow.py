"""Follow a journal as it grows: wake whoever waits when a file in the journal directory changes (watchdog's file
system events: inotify on Linux), or every `poll_seconds` where those are not to be had. Other file descriptors
(the coordinator's pidfds of agents' processes) can be waited on in the same call, so one wait ends at whichever
comes first: new records, a process exiting, a stop, or the timeout. Never on the hook's path (watchdog costs ~50 ms
to import).

    JournalWatch    the wait itself, for loops that do more than read (the coordinator, the replicator, the waiter)
    records         a reader's records as they come, until a deadline: `replay --follow`
    follow_until    the first record a condition finds, or None at a deadline: a claim's place on the server,
                    the answer to an approval
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .journal.reader import JournalReader
    from .journal.writer import Journal, Position

log = logging.getLogger(__name__)

#: watchdog's event types that mean the directory's content changed. Opening and reading a file are events too
#: ("opened", "closed_no_write"), and the follower itself makes them on every read: waking on them would spin.
_CHANGES = frozenset({"created", "modified", "moved", "deleted", "closed"})
#: The longest one wait of `records` lasts before it reads again anyway (a missed event costs at most this).
WAIT_SECONDS = 1.0

T = TypeVar("T")


class JournalWatch:
    """Waits for changes in one journal directory; `wake()` ends a wait from any thread."""

    def __init__(self, directory: str, *, poll_seconds: float = 0.5) -> None:
        self.poll_seconds = poll_seconds
        self._read_end, self._write_end = os.pipe()
        os.set_blocking(self._read_end, False)
        os.set_blocking(self._write_end, False)
        self._observer: Any = None
        self.mode = "polling"
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            watch = self

            class _Changed(FileSystemEventHandler):
                def on_any_event(self, event: Any) -> None:
                    if event.event_type in _CHANGES:  # not an open or a read: those are the follower's own
                        watch.wake()

            observer = Observer()
            observer.schedule(_Changed(), directory, recursive=False)
            observer.daemon = True
            observer.start()
            self._observer, self.mode = observer, "watchdog"
        except Exception as error:  # no watchdog, or no inotify watches left: polling still works
            log.info("following %s by polling every %.1f s (%s)", directory, poll_seconds, error)

    def wake(self) -> None:
        """End the current (or next) wait; safe in a signal handler and from any thread, also after `close`."""
        write_end = self._write_end
        if write_end < 0:  # closed: its number may already be another file's, which must not get the byte
            return
        try:
            os.write(write_end, b"!")
        except (BlockingIOError, OSError):
            pass  # a wake is already pending

    def wait(self, timeout: float, fds: Iterable[int] = ()) -> list[int]:
        """Block until the journal changes, `wake()` is called, one of `fds` is readable, or `timeout` seconds pass
        (at most `poll_seconds` when polling); return the readable ones of `fds`."""
        others = list(fds)
        limit = timeout if self.mode == "watchdog" else min(timeout, self.poll_seconds)
        # poll(), not select(): select refuses descriptors past 1024, which a busy process (or a test run) reaches
        poller = select.poll()
        for fd in (self._read_end, *others):
            poller.register(fd, select.POLLIN)
        try:
            ready = [fd for fd, _event in poller.poll(max(0.0, limit) * 1000)]
        except OSError as error:  # never a busy loop: wait out the timeout, then let the caller look again
            log.warning("waiting failed (%s); looking again in %.1f s", error, limit)
            time.sleep(max(0.0, limit))
            return []
        if self._read_end in ready:
            try:
                while os.read(self._read_end, 4096):
                    pass
            except BlockingIOError:
                pass
        return [fd for fd in ready if fd != self._read_end]

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        ends, self._read_end, self._write_end = (self._read_end, self._write_end), -1, -1  # first: no late wake
        for fd in ends:                                                                # writes into a reused fd
            if fd < 0:
                continue
            try:
                os.close(fd)
            except OSError:
                pass


def records(reader: JournalReader, directory: str, *, timeout: float | None = None,
            done: Callable[[], bool] | None = None, clock: Callable[[], float] | None = None,
            wait_seconds: float = WAIT_SECONDS) -> Generator[dict[str, Any], None, None]:
    """Each record of `reader`: those there now, then each new one as the journal (in `directory`) grows, until
    `timeout` seconds (on `clock`, time.monotonic by default) have passed since the call, or for ever with None, or
    until `done()` is true at the journal's end (a session closed: nothing more will come); a caller that has what
    it wanted stops iterating (or closes the generator). The records there already are all yielded even when the
    deadline has passed: a zero timeout reads what there is.

    It waits on the journal's changes (`JournalWatch`), never in a busy loop; the watch is made only when the first
    read found nothing more, and the reader reads once more after it is made, so nothing appended in between is
    missed and a follower that finds what it wants at once never pays for watchdog."""
    now = clock or time.monotonic
    deadline = None if timeout is None else now() + timeout
    watch: JournalWatch | None = None
    try:
        while True:
            yield from reader
            if done is not None and done():
                return
            left = None if deadline is None else deadline - now()
            if left is not None and left <= 0:
                return
            if watch is None:  # watch first, then read again: nothing written in between is missed
                watch = JournalWatch(directory)
                continue
            watch.wait(wait_seconds if left is None else min(left, wait_seconds))
    finally:
        if watch is not None:
            watch.close()


def follow_until(journal: Journal, after: Position, found: Callable[[dict[str, Any]], T | None], *,
                 timeout: float | None, clock: Callable[[], float] | None = None) -> T | None:
    """The first thing `found` returns (not None) for a record of `journal` after `after`, following the journal as
    it grows (`records`); None once `timeout` seconds have passed without one (never, with None)."""
    followed = records(journal.reader(after), journal.directory, timeout=timeout, clock=clock)
    try:
        for record in followed:
            result = found(record)
            if result is not None:
                return result
        return None
    finally:
        followed.close()  # the watch is closed now, not when the generator is collected
