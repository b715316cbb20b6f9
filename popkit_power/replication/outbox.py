"""What the push sends next: this origin's unpushed events, read from the local journal a batch at a time, with the
push script's arguments built for them (effects.BatchText).

Two things keep a long push (a backlog after a restart, a machine that was offline) from costing more than it must:

- One reader is kept from batch to batch while the push goes on where the last batch ended: a new reader would
  parse again the rest of the chunk the previous one had read.
- While the server runs one full batch, the next one is read and built (`prepare`, called by the replicator between
  sending a batch and waiting for its reply): the push then costs about the larger of the journal's time and the
  server's, not their sum (tools/BENCHMARKS.md, "Replication"). A prepared batch is used only when the push goes on
  exactly where it expected: after a failure, a lost server or a resume, it is dropped and read again.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from ..errors import PowerModeError
from ..journal.writer import Journal, JournalReader, Position
from ..keys import RedisLayout
from .effects import BatchText
from .positions import body

log = logging.getLogger("popkit_power.replication")

#: A batch's string (effects.BatchText) ends before it would pass this many bytes, unless it holds one event alone:
#: Upstash refuses a request over 10 MB whole, every time it is sent again, and in the request's JSON a byte of the
#: string is at most two (a quote or backslash escaped once more). One event is at most `max_record_bytes` (2 MiB at
#: most) plus the copies its effects make of its text.
MAX_BATCH_BYTES = 4_000_000


@dataclass
class Batch:
    """Up to one batch of unpushed events, read from `start` (the journal's position) and pushed after seq
    `after` (the last one the server holds); `end` is where the next batch is read from."""

    start: Position
    after: int
    events: list[dict[str, Any]]
    end: Position
    args: list[str | int]  # the push script's ARGV (empty when there is nothing to push)
    full: bool  # as many events as a batch holds: more may follow at once


class Outbox:
    """Batches of `origin`'s events not yet pushed, from `journal`."""

    def __init__(self, journal: Journal, origin: str, size: int, layout: RedisLayout, channel_maxlen: int) -> None:
        self.journal = journal
        self.origin = origin
        self.size = size
        self.layout = layout
        self.channel_maxlen = channel_maxlen
        self._reading: tuple[JournalReader, Generator[dict[str, Any], None, None]] | None = None
        self._prepared: Batch | None = None

    def take(self, start: Position, after: int) -> Batch:
        """The batch from `start` after seq `after`: the prepared one when it is that one, else read now."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None and prepared.start == start and prepared.after == after:
            return prepared
        return self._read(start, after)

    def prepare(self, sent: Batch) -> None:
        """Read and build the batch after `sent` (in flight) for the next `take`. Never raises: what went wrong is
        met again, and reported, when that batch is read for real."""
        self._prepared = None
        if not sent.full or not sent.events:  # (full and empty: the reader crossed into a new segment, nothing read)
            return  # most likely nothing more to push yet: read when the time comes
        try:
            self._prepared = self._read(sent.end, sent.events[-1]["seq"])
        except (PowerModeError, OSError) as error:
            log.debug("reading ahead after seq %s: %s", sent.events[-1]["seq"], error)

    def close(self) -> None:
        if self._reading is not None:
            self._reading[1].close()  # a generator: this closes its segment's file
            self._reading = None
        self._prepared = None

    def _read(self, start: Position, after: int) -> Batch:
        if self._reading is not None and self._reading[0].position == start:
            reader, events_from = self._reading
        else:
            self.close()
            reader = self.journal.reader(start)
            events_from = iter(reader)
        self._reading = None
        origin, size = self.origin, self.size
        events: list[dict[str, Any]] = []
        text = BatchText(self.layout)
        end = reader.position.copy()
        for event in events_from:
            if event.get("origin") == origin and "oseq" not in event and event["seq"] > after:
                text.add(event, body(event))
                if text.size > MAX_BATCH_BYTES and events:  # this one goes first in the next batch
                    text.drop_last()
                    break  # the reader is past it: the next batch is read from `end` by a new one
                events.append(event)
                if len(events) >= size or text.size >= MAX_BATCH_BYTES:
                    self._reading = (reader, events_from)
                    end = reader.position.copy()
                    break
            end = reader.position.copy()
        args = text.args(after, origin, self.channel_maxlen) if events else []
        full = len(events) >= size or text.size >= MAX_BATCH_BYTES or end != reader.position
        return Batch(start.copy(), after, events, end, args, full)
