"""Reading a session's journal in order for `replay` and `timeline`: from a seq on, one record at a time (never the
whole journal in memory), with the names a person reads (story.Book) as of each record, the damage met on the way,
and, for `--follow`, on as the journal grows until the session closes.

Names need the agents' joins, which lie at the start of a session: a playback that wants names from a later seq on
starts from the newest projection snapshot before it (a cache the coordinator writes) when there is one, and
otherwise reads from the start without showing what lies before the seq.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import PowerModeError
from ..journal.writer import Damage, Position, segment_name
from ..session import Session
from .story import Book, Event

log = logging.getLogger(__name__)


class Playback:
    """The records of `session` from `start_seq` on, each seen by `book` before it is yielded (when there is one:
    `names` or `full`, story.Book), damage passed to `on_damage`."""

    def __init__(self, session: Session, *, start_seq: int = 1, names: bool = True, full: bool = False,
                 on_damage: Callable[[Damage], None] | None = None) -> None:
        self.session = session
        self.start_seq = start_seq
        self.book: Book | None = None
        self.closed = False  # a session.closed record was read
        self.stopped = False  # `until` ended the reading before the journal's end
        self.damaged = 0
        self.records = 0  # records read (including those before start_seq)
        self.last_ts: Any = None  # with `until`: the time of the last record read before it
        self._on_damage = on_damage
        journal = session.journal
        position = Position()
        if names or full:
            loaded = self._snapshot(start_seq)
            self.book = Book(session.rules(), full=full, state=loaded[0] if loaded else None)
            position = loaded[1] if loaded else position
        else:  # segments are named by their first seq: start in the one that holds start_seq
            first = max((segment for segment in journal.segments() if segment <= start_seq), default=1)
            position = Position(first, 0, first)
        self.reader = journal.reader(position, on_damage=self._damaged)
        self.covered = position.copy()  # through the last record seen
        self._sizes: dict[int, int] = {}

    def _snapshot(self, start_seq: int) -> tuple[Any, Position] | None:
        """The newest snapshot covering only records before `start_seq`; None when there is none or it cannot be
        read (it is a cache: the playback then reads from the start)."""
        if start_seq <= 1:
            return None
        try:
            end = self.session.journal.end_position()
            return self.session.snapshots.latest(Position(1, 0, min(start_seq, end.seq)))
        except (OSError, PowerModeError) as error:
            log.warning("reading from the start: the snapshots of %s cannot be used (%s)", self.session.id, error)
            return None

    def _damaged(self, damage: Damage) -> None:
        self.damaged += 1
        if self._on_damage is not None:
            self._on_damage(damage)

    def events(self, *, follow: bool = False, until: Callable[[Event], bool] | None = None) -> Iterator[Event]:
        """Each record from `start_seq` on, in journal order. With `until`, stop before (and without folding) the
        first record it is true of, `covered` being the position just before it. With `follow`, wait at the end
        for more until a session.closed record is read (the caller ends a follow early by closing the iterator)."""
        from ..follow import records

        book, start_seq, reader = self.book, self.start_seq, self.reader
        directory = self.session.journal.directory
        for event in records(reader, directory, timeout=None if follow else 0, done=lambda: self.closed):
            if until is not None:
                if until(event):
                    self.stopped = True
                    return
                position = reader.position
                self.covered = position.copy()
                self.last_ts = event.get("ts")
            self.records += 1
            if book is not None:
                book.see(event)
            if event.get("type") == "session.closed":
                self.closed = True
            seq = event.get("seq")
            if isinstance(seq, int) and seq >= start_seq:
                yield event

    # -- progress and what was not read -----------------------------------------------------------------------------

    def total_bytes(self) -> int:
        """The size of the journal's segments now, each remembered for `done_bytes`."""
        self._sizes = {}
        for segment in self.session.journal.segments():
            try:
                self._sizes[segment] = os.lstat(self.session.journal.segment_path(segment)).st_size
            except FileNotFoundError:
                continue
        return sum(self._sizes.values())

    def done_bytes(self) -> int:
        """How many bytes of the journal lie before the reader's position (of the segments `total_bytes` saw)."""
        position = self.reader.position
        return sum(size for segment, size in self._sizes.items() if segment < position.segment) + position.offset

    def torn_tail(self) -> tuple[str, int, int] | None:
        """(segment name, offset, bytes) of a torn tail the reader stopped before, if there is one now."""
        torn = self.session.journal.has_torn_tail()
        return None if torn is None else (segment_name(torn[0]), torn[1], torn[2])
