"""The append-only event journal: the single truth of a power session (format: journal/SPEC.md).

A journal is a directory of segment files, each named by the first `seq` it holds (`0000000000000001.jsonl`), so
listing the directory is the index; the line format is in records.py, reading in reader.py.

Appends take an exclusive OS file lock (`journal.lock` beside the directory), find the tail, repair it if a killed
writer left a torn line or a batch without its last record (the bytes are kept whole in a `.torn` file beside the
segment, or the append fails and cuts nothing), give the next contiguous seqs, and write all the lines of one call in
a single write, the records of a multi-record append framed with `more` so that readers return all of them or none.
Every file is opened through `_fs.open_file` (no symlink followed, modes exact); a journal opened with
`read_only=True` never creates or writes anything.

This module is on the hook's hot path: it imports only `errno`, `os`, `zlib` and the project's own lean modules.
"""

from __future__ import annotations

import os
import zlib

from .._fs import check_dir, fsync_dir, open_file, private_dir, write_all
from .._lock import LOCK_EX, LOCK_SH, LOCK_UN, FileLock, flock
from ..errors import JournalError, RecordTooLargeError
from ..keys import SEGMENT_SUFFIX, journal_lock_file
from .reader import Damage, JournalReader, Position, default_loads, warn_damage
from .records import (
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_SEGMENT_MAX_BYTES,
    DURABILITY_FLUSH,
    DURABILITY_FSYNC,
    SEGMENT_DIGITS,
    checksum_ok,
    encode_batch,
    encode_record,
    record_seq,
    record_size,
    segment_name,
)
from .repair import scan_segment_tail, tail_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, TypeVar

    from .reader import DamageHandler as DamageHandler

    T = TypeVar("T")

__all__ = ["DURABILITY_FLUSH", "DURABILITY_FSYNC", "Appended", "Damage", "Journal", "JournalReader", "Position",
           "checksum_ok", "encode_record", "record_seq", "segment_name"]


_MARKER_READ = 32  # the lock file holds the first seq of the last segment, 16 digits
_lseek, _pread, _crc32, _exists, _F_OK = os.lseek, os.pread, zlib.crc32, os.access, os.F_OK


class Appended:
    """What one append wrote: the first and last seq given, and the position just after them."""

    __slots__ = ("_end_offset", "_segment", "first_seq", "last_seq")

    def __init__(self, first_seq: int, last_seq: int, segment: int, end_offset: int) -> None:
        self.first_seq = first_seq
        self.last_seq = last_seq
        self._segment = segment
        self._end_offset = end_offset

    @property
    def end(self) -> Position:
        """Where a reader that wants only what came after this append starts (built when asked: appends are hot)."""
        return Position(self._segment, self._end_offset, self.last_seq + 1)


class Journal:
    """One session's journal directory: `append` from any number of processes, `reader` from any position.

    With `create=False` the directory must exist already (a JournalError names it otherwise). With `read_only=True`
    nothing is ever created or written either: `append` and `repair` refuse, and reading works on files and
    directories it cannot write.
    """

    def __init__(
        self,
        directory: str,
        *,
        durability: str = DURABILITY_FLUSH,
        segment_max_bytes: int = DEFAULT_SEGMENT_MAX_BYTES,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        if durability not in (DURABILITY_FLUSH, DURABILITY_FSYNC):
            raise JournalError(f"durability must be {DURABILITY_FLUSH!r} or {DURABILITY_FSYNC!r}; got {durability!r}")
        self.directory = directory
        self.durability = durability
        self._fsync = durability == DURABILITY_FSYNC
        self.segment_max_bytes = segment_max_bytes
        self.max_record_bytes = max_record_bytes
        self.writable = not read_only
        if create and not read_only:
            private_dir(directory)
        else:
            try:
                check_dir(directory.rstrip("/\\") or directory, for_writing=not read_only)
            except FileNotFoundError:
                raise JournalError(f"no journal at {directory}") from None
        self._lock = FileLock(journal_lock_file(directory))
        self._shared_fd = -1  # the lock file opened read-only, for readers' shared locks
        # The tail as this process last left it: (segment, fd, size, next seq). Valid only while the file's size
        # is unchanged, which is checked under the lock before every append.
        self._tail: tuple[int, int, int, int] | None = None
        self._marker = b""  # what the lock file holds while our cached tail segment is the last one
        self._tail_path = ""

    # -- writing ----------------------------------------------------------------------------------------------------

    def append(self, bodies: Sequence[bytes]) -> Appended:
        """Append serialized envelopes (JSON objects without seq/crc) as consecutive records, atomically, in order.

        Raises RecordTooLargeError before anything is written if one record is over `max_record_bytes`, and
        JournalError if the disk refuses the write (nothing partial is left behind) or a torn tail cannot be kept.
        """
        if not bodies:
            raise JournalError("nothing to append")
        for body in bodies:  # the size is checked under the lock, where the seqs are known (records.record_size)
            if (len(body) < 3 or body[0] != 0x7B or body[-1] != 0x7D or b"\n" in body
                    or (body[2] == 0x6D and body.startswith(b'{"more":'))):
                self._refuse(body)
        lock_fd = self._lock.fd
        if lock_fd < 0:
            self._lock_for_writing()  # opens the lock file, once
            lock_fd = self._lock.fd
        else:
            flock(lock_fd, LOCK_EX)  # the lock's own fd, without a method call each way: appends are hot
        try:
            tail = self._tail
            # Fast path: nobody appended or rolled over since our own last append: our segment still ends where we
            # left it, and the lock file still names it as the last segment (a roll-over rewrites that name before
            # it creates the new segment). lseek and pread are the cheapest syscalls that tell; fstat and
            # os.path.exists build objects, and probing a file name that changes with every seq misses the
            # kernel's name cache (~1.5 us per append on ext4). What this path does not notice is a session
            # directory deleted under a long-lived writer: that is a deliberate deletion, and the slow path checks.
            if tail is None or _lseek(tail[1], 0, 2) != tail[2] or _pread(lock_fd, _MARKER_READ, 0) != self._marker:
                tail = self._open_tail()
            segment, fd, size, next_seq = tail
            if size >= self.segment_max_bytes:
                segment, fd, size, next_seq = self._roll_over(next_seq)
            if len(bodies) == 1:
                checked = b'{"seq":%d,%s' % (next_seq, bodies[0][1:-1])
                data = b'%s,"crc":"%08x"}\n' % (checked, _crc32(checked))  # encode_record, inline
                if len(data) > self.max_record_bytes:  # the line is the record: its size is exact
                    raise RecordTooLargeError(len(data), self.max_record_bytes)
            else:
                data = encode_batch(next_seq, bodies)
                if len(data) > self.max_record_bytes:  # then one of its lines may be over
                    self._check_sizes(next_seq, bodies)
            try:
                written = os.write(fd, data)  # os.write, not a bound copy: tests replace it
                if written != len(data) or self._fsync:
                    self._finish_write(fd, data, written)
            except OSError as error:
                self._undo_write(fd, size, error)
            end = size + len(data)
            after = next_seq + len(bodies)
            self._tail = (segment, fd, end, after)
        except OSError as error:  # finding or repairing the tail, or starting a segment
            self._drop_tail_cache()
            raise JournalError(f"cannot append to the journal in {self.directory}: {error}") from None
        finally:
            flock(lock_fd, LOCK_UN)
        return Appended(next_seq, after - 1, segment, end)

    def _check_sizes(self, first_seq: int, bodies: Sequence[bytes]) -> None:
        """Raise RecordTooLargeError (nothing written yet) if a line of this batch would be over the limit."""
        last = len(bodies) - 1
        for index, body in enumerate(bodies):
            size = record_size(len(body), first_seq + index, last - index)
            if size > self.max_record_bytes:
                raise RecordTooLargeError(size, self.max_record_bytes)

    def _refuse(self, body: bytes) -> None:
        if body[:1] != b"{" or body[-1:] != b"}" or len(body) < 3:
            raise JournalError("a record must be a non-empty JSON object")
        if b"\n" in body:
            raise JournalError("a record must be one line: its serialized JSON holds a newline")
        raise JournalError('a record must not begin with a "more" member: the journal frames batches with it')

    def _lock_for_writing(self) -> None:
        if not self.writable:
            raise JournalError(f"the journal in {self.directory} is open read-only")
        try:
            self._lock.acquire()
        except OSError as error:
            raise JournalError(f"cannot lock the journal in {self.directory}: {error}") from None

    def repair(self) -> None:
        """Take the lock and repair a torn tail, as the next append would."""
        self._lock_for_writing()
        try:
            self._open_tail()
        except OSError as error:
            self._drop_tail_cache()
            raise JournalError(f"cannot repair the journal in {self.directory}: {error}") from None
        finally:
            self._lock.release()

    def close(self) -> None:
        self._drop_tail_cache()
        self._lock.close()
        if self._shared_fd >= 0:
            os.close(self._shared_fd)
            self._shared_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _finish_write(self, fd: int, data: bytes, written: int) -> None:
        """The rest of a short write, and the fsync when durability asks for it (OSError goes to `_undo_write`)."""
        write_all(fd, memoryview(data)[written:])
        if self._fsync:
            os.fsync(fd)

    def _undo_write(self, fd: int, size: int, error: OSError) -> None:
        try:  # leave no partial record behind: the journal ends where it did before this append
            os.ftruncate(fd, size)
        except OSError:
            pass  # the next append's tail repair will find and keep the partial line aside
        self._drop_tail_cache()  # closes `fd`: only after the truncation
        raise JournalError(f"cannot append to the journal in {self.directory}: {error.strerror or error}") from None

    def _open_tail(self) -> tuple[int, int, int, int]:
        """Under the lock: the last segment, an fd on it, its size after any repair, and the next seq."""
        if self._tail is not None:
            segment, fd = self._tail[0], self._tail[1]
            if _pread(self._lock.fd, _MARKER_READ, 0) == self._marker and _exists(self._tail_path, _F_OK):
                # Still the last segment, but others appended to it: read its new tail through the fd we hold.
                self._tail = None  # until the scan has worked
                try:
                    size, next_seq = self._scan_tail(fd, segment, _lseek(fd, 0, 2), repair=True)
                except BaseException:
                    os.close(fd)
                    raise
                self._tail = (segment, fd, size, next_seq)
                return self._tail
            self._drop_tail_cache()
        segments = self.segments()
        if not segments:
            return self._roll_over(1)
        segment = segments[-1]
        fd = open_file(self.segment_path(segment), os.O_RDWR | os.O_APPEND)
        try:
            size, next_seq = self._tail_of(fd, segments, repair=True)
            self._mark_last_segment(segment)
        except BaseException:
            os.close(fd)
            raise
        self._tail = (segment, fd, size, next_seq)
        return self._tail

    def _mark_last_segment(self, segment: int) -> None:
        """Name `segment` in the lock file as the last one (under the lock), so cached writers can tell a roll-over."""
        marker = b"%016d" % segment
        lock_fd = self._lock.fd
        if _pread(lock_fd, _MARKER_READ, 0) != marker:
            os.pwrite(lock_fd, marker, 0)
            os.ftruncate(lock_fd, len(marker))
        self._marker = marker
        self._tail_path = self.segment_path(segment)

    def _roll_over(self, next_seq: int) -> tuple[int, int, int, int]:
        self._drop_tail_cache()
        self._mark_last_segment(next_seq)  # first: a crash before the file exists only costs the others a rescan
        fd = open_file(self._tail_path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        if self._fsync:
            fsync_dir(self.directory)
        self._tail = (next_seq, fd, os.fstat(fd).st_size, next_seq)
        return self._tail

    def _drop_tail_cache(self) -> None:
        if self._tail is not None:
            os.close(self._tail[1])
            self._tail = None

    def _tail_of(self, fd: int, segments: list[int], *, repair: bool) -> tuple[int, int]:
        """(whole size, next seq) of the last segment, open as `fd`; with `repair`, cut a torn tail (repair.py)."""
        return tail_of(self.directory, fd, segments, repair=repair, durable=self._fsync)

    def _scan_tail(self, fd: int, segment: int, size: int, *, repair: bool) -> tuple[int, int]:
        return scan_segment_tail(self.directory, fd, segment, size, repair=repair, durable=self._fsync)

    # -- reading ----------------------------------------------------------------------------------------------------

    def segments(self) -> list[int]:
        """The first seqs of the segment files, in order."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(
            int(name[:SEGMENT_DIGITS])
            for name in names
            if name.endswith(SEGMENT_SUFFIX) and len(name) == SEGMENT_DIGITS + len(SEGMENT_SUFFIX)
            and name[:SEGMENT_DIGITS].isdigit()
        )

    def segment_path(self, segment: int) -> str:
        """The path of the segment file whose first seq is `segment`."""
        return os.path.join(self.directory, segment_name(segment))

    def reader(
        self,
        position: Position | None = None,
        *,
        loads: Callable[[bytes], Any] | None = None,
        on_damage: DamageHandler | None = None,
    ) -> JournalReader:
        """A reader of the records after `position` (from the start when None)."""
        return JournalReader(self, position or Position(), loads or default_loads(), on_damage or warn_damage)

    def end_position(self) -> Position:
        """The position just after the last whole record: where a reader that wants only new records starts."""
        tail = self.read_locked(self._last_tail)
        return Position() if tail is None else Position(tail[0], tail[1], tail[3])

    def has_torn_tail(self) -> tuple[int, int, int] | None:
        """(segment, offset, length) of a torn tail (with an incomplete batch before it), checked under a shared lock
        so that a write in progress is not one."""
        tail = self.read_locked(self._last_tail)
        return None if tail is None or tail[1] == tail[2] else (tail[0], tail[1], tail[2] - tail[1])

    def _last_tail(self) -> tuple[int, int, int, int] | None:
        """(last segment, size without a torn tail, size, next seq), or None for an empty journal."""
        segments = self.segments()
        if not segments:
            return None
        fd = open_file(self.segment_path(segments[-1]), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            whole, next_seq = self._tail_of(fd, segments, repair=False)
        finally:
            os.close(fd)
        return segments[-1], whole, size, next_seq

    def read_locked(self, read: Callable[..., T], *args: Any) -> T:
        """`read(*args)` while no append or repair is under way: under a shared lock on the lock file, opened
        read-only. Without a lock file no writer has ever appended; if one appears while we read, read again under
        its lock. Never call this across a yield: the caller may append in the same process, and its exclusive lock
        (on another open file) would wait for ever for this one."""
        if self._shared_fd < 0:
            try:
                self._shared_fd = open_file(self._lock.path, os.O_RDONLY)
            except FileNotFoundError:
                result = read(*args)
                if not _exists(self._lock.path, _F_OK):
                    return result
                self._shared_fd = open_file(self._lock.path, os.O_RDONLY)
        flock(self._shared_fd, LOCK_SH)
        try:
            return read(*args)
        finally:
            flock(self._shared_fd, LOCK_UN)


