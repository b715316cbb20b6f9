"""Reading a journal: `JournalReader` returns the whole, valid records after a `Position` and reports `Damage`.

A reader resumes from a position (segment, byte offset, next seq) and so reads only what is new. It returns a record
only once it is whole and valid, and the records of a batch (records.py) only once all of them are. It reads at
explicit offsets and reads a line that was not yet whole again from its own start, so it never glues bytes it saw
earlier to what is in the file now. It goes from a segment to the next by name (the seq after the last line of the
one before), never by walking a directory listing, and reports records that no segment holds as a gap. The last
segment, the only one that changes, is read under the journal's shared lock, where no append (and no repair) is half
done, and the lock is never held while the caller has a record (journal/SPEC.md section 7).

This module is on the hook's hot path: it imports only `os` and the project's own lean modules; it uses orjson when
it is installed and the caller does not choose a parser.
"""

from __future__ import annotations

import os

from .._fs import open_file
from ..errors import JournalError
from .records import READ_CHUNK, record_head, segment_name, valid_head

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator
    from typing import Any, Protocol, TypeVar

    T = TypeVar("T")

    class Journal(Protocol):
        """What a reader needs of a journal (writer.Journal is one): its segments, and its shared lock."""

        def segment_path(self, segment: int) -> str: ...
        def segments(self) -> list[int]: ...
        def read_locked(self, read: Callable[..., T], *args: Any) -> T: ...

    DamageHandler = Callable[["Damage"], None]
    _Held = tuple[int, int, int, int, Any, str, bytes]  # a batch's line: offset, end, seq, more, record, reason, bytes

_pread = os.pread


class Position:
    """Where a reader is: the segment (its first seq), the byte offset in it, and the seq it expects next."""

    __slots__ = ("offset", "segment", "seq")

    def __init__(self, segment: int = 1, offset: int = 0, seq: int = 1) -> None:
        self.segment = segment
        self.offset = offset
        self.seq = seq

    def copy(self) -> Position:
        """This position as it is now (a reader moves its own position as it reads)."""
        return Position(self.segment, self.offset, self.seq)

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

    logging.getLogger("popkit_power.journal.writer").warning("skipped a damaged journal record: %s", damage)


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

    A damaged line (bad checksum, not JSON) is passed to `on_damage` and stepped over. The records of a batch are
    returned only once a line is there for each of them (without their `more` member). At the end of the last
    segment, a line without its newline or an open batch is a write in progress or a torn tail: the reader stops
    before it, and reads it again from its start next time.
    """

    def __init__(
        self,
        journal: Journal,
        position: Position,
        loads: Callable[[bytes], Any],
        on_damage: DamageHandler,
    ) -> None:
        self.journal = journal
        self.position = position.copy()
        self._loads = loads
        self._on_damage = on_damage

    def check(self) -> None:
        """Raise JournalError if the position cannot be read from: it points into a segment that is not there, or
        past the end of its segment (a damaged cursor); reading from it would return nothing, ever."""
        position = self.position
        if position.offset == 0:
            return  # the start of a segment: reading goes on with the segments after it
        try:
            size = os.lstat(self.journal.segment_path(position.segment)).st_size
        except FileNotFoundError:
            raise JournalError(f"the journal no longer holds segment {segment_name(position.segment)} that "
                               f"position {position} points into") from None
        if position.offset > size:
            raise JournalError(f"position {position} is past the end of segment {segment_name(position.segment)} "
                               f"({size} bytes)")

    def __iter__(self) -> Generator[dict[str, Any], None, None]:
        # Segments are taken in the order their names chain (each named by the seq after the last line of the one
        # before), each opened by name. The directory listing only says whether a later segment exists, that is
        # whether this one is finished: a listing made while writers create segments can hold one created during it
        # and lack the one created just before (readdir returns entries added meanwhile or not, each independently),
        # so walking the listing itself skipped whole segments.
        listed = self.journal.segments()
        final = listed[-1] if listed else 0  # the last segment the listing shows: read under the lock
        segment = self.position.segment
        while True:
            fd = self._open(segment)
            if fd < 0:
                if self.position.offset:
                    raise JournalError(f"the journal no longer holds segment {segment_name(segment)} that "
                                       f"position {self.position} points into")
                segment = self._next_after(segment)  # a position at the start of a segment that is not there
                if not segment:
                    return
                continue
            if segment != self.position.segment:
                self.position = Position(segment, 0, max(self.position.seq, segment))
            yield from self._read_segment(fd, segment, segment >= final)
            if segment >= final:
                return
            following = self.position.seq  # a later segment exists: this one is finished, and names the next
            segment = following if following > segment and self._exists(following) else self._next_after(segment)
            if not segment:
                return

    def _open(self, segment: int) -> int:
        try:
            return open_file(self.journal.segment_path(segment), os.O_RDONLY)
        except FileNotFoundError:
            return -1

    def _exists(self, segment: int) -> bool:
        return os.access(self.journal.segment_path(segment), os.F_OK)

    def _next_after(self, segment: int) -> int:
        """The first segment after `segment`, from a listing that no writer changes while it is made (under the
        shared lock); 0 if there is none. If it does not start with the seq the reader expects next, the records
        between are in no segment: the gap is reported (once, as damage at the next segment's start) and reading
        goes on after it."""
        later = [name for name in self.journal.read_locked(self.journal.segments) if name > segment]
        if not later:
            return 0
        following, expected = later[0], self.position.seq
        self.position = Position(following, 0, max(expected, following))
        if following > expected:
            self._on_damage(Damage(following, 0, expected, f"records {expected} to {following - 1} are missing: "
                                                            f"no segment holds them"))
        return following

    def _read_segment(self, fd: int, segment: int, last: bool) -> Iterator[dict[str, Any]]:
        loads = self._loads
        position = self.position
        offset = position.offset  # where the next line to look at begins
        held: list[_Held] = []  # the lines so far of a batch (records.open_batch) whose last record is to come
        want = READ_CHUNK
        try:
            while True:
                start = offset
                if held:  # read the held lines again with at least a whole read's worth after them
                    start = held[0][0]
                    want = max(want, offset - start + READ_CHUNK)
                # Only the last segment changes: it is read while no append is under way (never across a yield).
                data = self.journal.read_locked(_pread, fd, want, start) if last else _pread(fd, want, start)
                at_end = len(data) < want
                if held:  # a batch held across reads: go on only if its lines are still there (a repair cuts)
                    seen = b"".join([entry[6] for entry in held])
                    if data.startswith(seen):
                        data = data[len(seen):]
                    else:
                        held.clear()
                        offset = start
                cut = data.rfind(b"\n") + 1
                if not cut:
                    if at_end:
                        break
                    want *= 2  # one line (or a held batch) longer than the read
                    continue
                want = READ_CHUNK
                for line in _lines(data[:cut] if cut < len(data) else data):
                    end = offset + len(line)
                    head = valid_head(line)
                    framed = head is not None  # its seq and `more` can be trusted
                    if head is None:  # damage: the head (if any) says which
                        head = record_head(line)
                    seq, more = head if head is not None else (0, -1)
                    reason = ""
                    if not framed:
                        reason = "not a record" if more < 0 else "checksum does not match"
                    else:
                        try:
                            record = loads(line)
                        except ValueError:
                            reason = "not valid JSON"
                    if held:
                        seq_wanted, more_wanted = held[-1][2] + 1, held[-1][3] - 1
                        if not framed or (seq == seq_wanted and more == more_wanted):  # the batch's next line
                            held.append((offset, end, seq_wanted, more_wanted, None if reason else record, reason,
                                         line))
                            offset = end
                            if more_wanted:
                                continue
                            for begin, held_end, held_seq, held_more, held_record, held_reason, _line in held:
                                if held_reason:  # the batch is complete: return all of it, report its damage
                                    self._damaged(segment, begin, held_end, held_seq, held_reason)
                                    continue
                                if held_more:
                                    del held_record["more"]  # framing, not part of the event
                                position.offset = held_end
                                position.seq = held_seq + 1
                                yield held_record
                            held.clear()
                            continue
                        self._incomplete(segment, held)  # broken by a valid line that does not continue it
                    if framed and more:  # a batch begins (a damaged line's `more` is not trusted)
                        held.append((offset, end, seq, more, None if reason else record, reason, line))
                    elif reason:
                        self._damaged(segment, offset, end, seq if framed else None, reason)
                    else:
                        position.offset = end
                        position.seq = seq + 1
                        yield record
                    offset = end
                if at_end:
                    break
            if not last:  # no writer can still be writing here: what did not end is damage
                self._incomplete(segment, held)
                if len(data) > cut:
                    self._damaged(segment, offset, offset + len(data) - cut, None,
                                  "incomplete last line of a segment")
        finally:
            os.close(fd)

    def _incomplete(self, segment: int, held: list[_Held]) -> None:
        """Report the lines of a batch that will never be complete: its records as an incomplete batch."""
        for begin, end, seq, _more, _record, reason, _line in held:
            self._damaged(segment, begin, end, seq, reason or "incomplete batch")
        held.clear()

    def _damaged(self, segment: int, offset: int, end: int, seq: int | None, reason: str) -> None:
        position = self.position
        seq = seq if seq is not None else position.seq  # a line whose checksum fails has no seq to trust
        position.offset = end
        position.seq = max(position.seq, seq + 1)
        self._on_damage(Damage(segment, offset, seq, reason))
