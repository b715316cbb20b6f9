"""Reading a journal: `JournalReader` returns the whole, valid records after a `Position` and reports `Damage`.

A reader resumes from a position (segment, byte offset, next seq) and so reads only what is new. It returns a record
only once it is whole and valid. It reads at explicit offsets and reads a line that was not yet whole again from its
own start, so it never glues bytes it saw earlier to what is in the file now. The last segment, the only one that
changes, is read under the journal's shared lock, where no append (and no repair) is half done, and the lock is never
held while the caller has a record (journal/SPEC.md section 7).

This module is on the hook's hot path: it imports only `os` and the project's own lean modules; it uses orjson when
it is installed and the caller does not choose a parser.
"""

from __future__ import annotations

import os

from .errors import JournalError
from .records import checksum_ok, record_seq, segment_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from .journal import Journal

    DamageHandler = Callable[["Damage"], None]

READ_CHUNK = 1 << 20
_pread = os.pread


class Position:
    """Where a reader is: the segment (its first seq), the byte offset in it, and the seq it expects next."""

    __slots__ = ("offset", "segment", "seq")

    def __init__(self, segment: int = 1, offset: int = 0, seq: int = 1) -> None:
        self.segment = segment
        self.offset = offset
        self.seq = seq

    def as_dict(self) -> dict[str, int]:
        return {"segment": self.segment, "offset": self.offset, "seq": self.seq}

    @classmethod
    def from_dict(cls, value: Any) -> Position:
        """The position stored by `as_dict`; raise JournalError if `value` is not one."""
        try:
            fields = [value["segment"], value["offset"], value["seq"]]
        except (TypeError, KeyError):
            raise JournalError(f"not a journal position: {value!r}") from None
        if not all(isinstance(field, int) and not isinstance(field, bool) and field >= 0 for field in fields):
            raise JournalError(f"not a journal position: {value!r}")
        return cls(*fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Position):
            return NotImplemented
        return (self.segment, self.offset, self.seq) == (other.segment, other.offset, other.seq)

    def __hash__(self) -> int:
        return hash((self.segment, self.offset, self.seq))

    def __repr__(self) -> str:
        return f"Position(segment={self.segment}, offset={self.offset}, seq={self.seq})"


class Damage:
    """A line a reader could not return: where it is, which seq it had or should have had, and why."""

    __slots__ = ("offset", "reason", "segment", "seq")

    def __init__(self, segment: int, offset: int, seq: int, reason: str) -> None:
        self.segment = segment
        self.offset = offset
        self.seq = seq
        self.reason = reason

    def __str__(self) -> str:
        return f"seq {self.seq} at {segment_name(self.segment)} byte {self.offset}: {self.reason}"


def default_loads() -> Callable[[bytes], Any]:
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - the hook's own lean path passes codec.loads
        from . import codec

        return lambda line: codec.loads(line.decode("utf-8"))


def warn_damage(damage: Damage) -> None:
    import logging

    logging.getLogger("popkit_power.journal").warning("skipped a damaged journal record: %s", damage)


def _lines(block: bytes) -> list[bytes]:
    """The newline-terminated lines of `block`. `bytes.splitlines` (fast) also splits at a bare `\\r`, which a
    valid record never holds (JSON escapes it) but a damaged one may: then split at `\\n` only."""
    if b"\r" not in block:
        return block.splitlines(keepends=True)
    lines = block.split(b"\n")
    lines.pop()  # the empty rest after the last newline
    return [line + b"\n" for line in lines]


class JournalReader:
    """Iterates the whole, valid records after a position as dicts; `position` is always where to resume.

    A damaged line (bad checksum, not JSON) is passed to `on_damage` and stepped over. At the end of the last
    segment, a line without its newline is a write in progress or a torn tail: the reader stops before it, and reads
    it again from its start next time.
    """

    def __init__(
        self,
        journal: Journal,
        position: Position,
        loads: Callable[[bytes], Any],
        on_damage: DamageHandler,
    ) -> None:
        self.journal = journal
        self.position = Position(position.segment, position.offset, position.seq)
        self._loads = loads
        self._on_damage = on_damage

    def __iter__(self) -> Iterator[dict[str, Any]]:
        segments = [segment for segment in self.journal.segments() if segment >= self.position.segment]
        if segments and segments[0] > self.position.segment and self.position.offset:
            raise JournalError(f"the journal no longer holds segment {segment_name(self.position.segment)} "
                               f"that position {self.position} points into")
        for index, segment in enumerate(segments):
            if segment != self.position.segment:
                self.position = Position(segment, 0, max(self.position.seq, segment))
            yield from self._read_segment(segment, index == len(segments) - 1)

    def _read_segment(self, segment: int, last: bool) -> Iterator[dict[str, Any]]:
        try:
            fd = os.open(self.journal.segment_path(segment), os.O_RDONLY)
        except FileNotFoundError:
            return
        loads = self._loads
        position = self.position
        offset = position.offset  # where the next line to look at begins
        want = READ_CHUNK
        try:
            while True:
                # Only the last segment changes: it is read while no append is under way (never across a yield).
                data = self.journal.read_locked(_pread, fd, want, offset) if last else _pread(fd, want, offset)
                at_end = len(data) < want
                cut = data.rfind(b"\n") + 1
                if not cut:
                    if at_end:
                        break
                    want *= 2  # one line longer than the read
                    continue
                want = READ_CHUNK
                for line in _lines(data[:cut] if cut < len(data) else data):
                    end = offset + len(line)
                    seq = record_seq(line)
                    if seq is None or not checksum_ok(line):
                        self._damaged(segment, offset, end, None,
                                      "checksum does not match" if seq is not None else "not a record")
                        offset = end
                        continue
                    try:
                        record = loads(line)
                    except ValueError:
                        self._damaged(segment, offset, end, seq, "not valid JSON")
                        offset = end
                        continue
                    position.offset = offset = end
                    position.seq = seq + 1
                    yield record
                if at_end:
                    break
            if not last and len(data) > cut:  # no writer can still be writing here: what did not end is damage
                self._damaged(segment, offset, offset + len(data) - cut, None, "incomplete last line of a segment")
        finally:
            os.close(fd)

    def _damaged(self, segment: int, offset: int, end: int, seq: int | None, reason: str) -> None:
        position = self.position
        seq = seq if seq is not None else position.seq  # a line whose checksum fails has no seq to trust
        position.offset = end
        position.seq = max(position.seq, seq + 1)
        self._on_damage(Damage(segment, offset, seq, reason))
