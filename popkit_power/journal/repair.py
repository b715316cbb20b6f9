"""The end of a journal's last segment: where its whole records stop, which seq comes next, and the repair that cuts a
torn tail (journal/SPEC.md, section 6).

A torn tail is what a writer killed in mid-write leaves: bytes after the last newline, or the whole lines of a batch
whose last record is missing (records.scan_tail decides). The repair runs under the journal's lock, on the next
append: it keeps the bytes whole in `<segment>.torn-<offset>` beside the segment, and only then cuts the segment; if
the bytes cannot be kept (a full disk), nothing is cut and the append fails. The next seq follows the last line whose
checksum holds; each damaged whole line after it still counts as one record, so a seq is never given twice.

This module is on the hook's hot path: it imports only `os` and the project's own lean modules.
"""

from __future__ import annotations

import os

from .._fs import fsync_dir, open_file, write_all
from ..errors import JournalError
from ..keys import torn_file
from .records import READ_CHUNK, scan_tail, segment_name

_SCAN_FIRST, _SCAN_MAX = 8192, 4 << 20  # the tail scan's first window; past the last, damage is counted line by line
_pread = os.pread


def tail_of(directory: str, fd: int, segments: list[int], *, repair: bool, durable: bool) -> tuple[int, int]:
    """(whole size, next seq) of the last of `segments`, open as `fd`; see `scan_segment_tail`."""
    size, next_seq = scan_segment_tail(directory, fd, segments[-1], os.fstat(fd).st_size, repair=repair,
                                       durable=durable)
    if size == 0 and len(segments) > 1:  # an empty segment left by a crash right after a roll-over
        before = open_file(os.path.join(directory, segment_name(segments[-2])), os.O_RDONLY)
        try:
            next_seq = max(next_seq, scan_segment_tail(directory, before, segments[-2], os.fstat(before).st_size,
                                                       repair=False, durable=durable)[1])
        finally:
            os.close(before)
    return size, next_seq


def scan_segment_tail(directory: str, fd: int, segment: int, size: int, *, repair: bool,
                      durable: bool) -> tuple[int, int]:
    """(size without a torn tail or an incomplete batch, next seq) of a segment of `size` bytes open as `fd`; with
    `repair`, keep what is cut whole (`keep_torn_bytes`) and cut it off."""
    window = _SCAN_FIRST
    while True:
        start = max(0, size - window)
        data = _pread(fd, size - start, start)
        found = scan_tail(data, start == 0)
        if found is not None and (found[1] is not None or start == 0 or window >= _SCAN_MAX):
            break
        window *= 4
    cut, seq, lines = found
    cut += start
    # with damage all the way back, every line of a segment is one seq counted from the segment's own
    next_seq = seq + 1 + lines if seq is not None else segment + (lines if start == 0 else _count_lines(fd, cut))
    if cut < size and repair:
        keep_torn_bytes(directory, segment, cut, data[cut - start:], durable=durable)
        os.ftruncate(fd, cut)
    return cut, next_seq


def _count_lines(fd: int, size: int) -> int:
    lines, offset = 0, 0
    while offset < size:
        data = _pread(fd, min(READ_CHUNK, size - offset), offset)
        if not data:
            break
        lines += data.count(b"\n")
        offset += len(data)
    return lines


def keep_torn_bytes(directory: str, segment: int, offset: int, torn: bytes, *, durable: bool) -> None:
    """Write `torn` whole to `<segment>.torn-<offset>`, or `.torn-<offset>.<n>` when a writer was torn at the same
    offset before (or died while keeping its bytes), and fsync it when `durable`. If that fails (a full disk),
    remove the partial file and raise JournalError: the caller must not cut the segment then."""
    path = base = torn_file(directory, segment_name(segment), offset)
    fd, number = -1, 0
    try:
        while fd < 0:
            try:
                fd = open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            except FileExistsError:  # earlier torn bytes, or anything planted there: never overwritten
                number += 1
                path = f"{base}.{number}"
        write_all(fd, torn)
        if durable:
            os.fsync(fd)
            fsync_dir(directory)
    except OSError as error:
        if fd >= 0:
            try:
                os.unlink(path)
            except OSError:
                pass
        raise JournalError(f"cannot repair the journal: the torn tail of {segment_name(segment)} at byte "
                           f"{offset} ({len(torn)} bytes) could not be kept in {os.path.basename(path)} "
                           f"({error.strerror or error}), so it was left in place and nothing was appended"
                           ) from None
    finally:
        if fd >= 0:
            os.close(fd)
