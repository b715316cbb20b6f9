"""Snapshots of a session's projection: a cache that makes start-up O(tail), safe to delete at any time.

`sessions/<id>/snapshots/<last seq covered, 16 digits>.snapshot.json` holds the folded state, the journal position it
covers, the key of the fold that made it (the rules it depends on and `projector.FOLD_VERSION`, so a snapshot made
with other settings or by older code is never reused), and what binds it to the journal it was folded from: the
CRC-32 of the journal's first line and of the line just before its position. A snapshot whose binding does not hold
(the journal was replaced) is discarded with a log line. Written crash-safely (temporary file, fsync, rename); the
newest `KEPT` are kept. Format: journal/SPEC.md, section 8.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import TYPE_CHECKING, Any

import orjson

from .._fs import check_dir, open_file, private_subdir, read_file, remove_stale_temporaries, write_file_atomically
from ..errors import PowerModeError
from ..keys import SNAPSHOT_SUFFIX
from .writer import Journal, Position

if TYPE_CHECKING:
    from ..shapes.state import State

KEPT = 2
MAX_SNAPSHOT_BYTES = 1 << 31


class Snapshots:
    """The snapshots of one session, for one fold key (rules and fold version)."""

    def __init__(self, directory: str, session_id: str, fold_key: dict[str, Any], journal: Journal) -> None:
        self.directory = directory
        self.session_id = session_id
        self.fold_key = fold_key
        self.journal = journal

    def save(self, state: State, position: Position, *, within: tuple[int, int] | None = None) -> str:
        """Write a snapshot of `state` covering the journal up to `position`, bound to this journal; return its
        path. The session's directory is opened once, first, and everything is written through it: removed, it is
        not made again; with `within` (the device and inode of the session directory the caller opened), a
        directory put in its place (a backup restored) is not written into, nor are its snapshots deleted
        (FileNotFoundError)."""
        directory = private_subdir(os.path.dirname(self.directory), os.path.basename(self.directory),
                                   identity=within)
        try:
            name = f"{position.seq - 1:016d}{SNAPSHOT_SUFFIX}"
            document = {"v": 1, "session": self.session_id, "position": position.as_dict(), "rules": self.fold_key,
                        "journal": journal_binding(self.journal, position), "written": time.time(), "state": state}
            write_file_atomically(name, orjson.dumps(document), dir_fd=directory)
            remove_stale_temporaries(directory)
            for old in sorted(self._names(directory))[:-KEPT]:  # names sort by the seq they cover
                os.unlink(old, dir_fd=directory)
        finally:
            os.close(directory)
        return os.path.join(self.directory, name)

    def latest(self, end: Position) -> tuple[State, Position] | None:
        """The newest snapshot that is readable, has this fold key, is not past `end` (the journal's end, or where a
        playback starts), and was folded from this journal (`journal_binding`). One that was not is discarded with
        a log line (and deleted when the journal may be written)."""
        try:
            check_dir(self.directory)
            names = sorted(self._names(), reverse=True)
        except FileNotFoundError:
            return None
        for name in names:
            try:
                document = orjson.loads(read_file(os.path.join(self.directory, name), MAX_SNAPSHOT_BYTES))
                position = Position.from_dict(document["position"])
            except (OSError, ValueError, KeyError, TypeError, PowerModeError):
                continue
            if document.get("rules") != self.fold_key or position.seq > end.seq:
                continue  # past `end`: a playback asks for one before its start (or the journal is shorter now)
            if document.get("journal") != journal_binding(self.journal, position):
                self._discard(name, "journal" in document)
                continue
            return document["state"], position
        return None

    def _discard(self, name: str, bound: bool) -> None:
        why = ("the journal's first record or the last one it covers is not the one it was folded from" if bound
               else "it was made before snapshots were bound to their journal")
        removed = ""
        if self.journal.writable:
            try:
                os.unlink(os.path.join(self.directory, name))
                removed = ", deleted"
            except OSError:
                pass
        import logging  # only here: the hook's welcome folds through this module, and logging costs ~4 ms to import

        logging.getLogger(__name__).warning("snapshot %s of session %s was not made from this journal (%s): not "
                                            "used%s; folding the journal from the start", name, self.session_id,
                                            why, removed)

    def _names(self, directory: str | int | None = None) -> list[str]:
        """The snapshot files in the snapshots directory (or in `directory`: a path, or an open directory's fd)."""
        return [name for name in os.listdir(self.directory if directory is None else directory)
                if name.endswith(SNAPSHOT_SUFFIX)]


def journal_binding(journal: Journal, position: Position) -> dict[str, str | None]:
    """What binds a snapshot at `position` to `journal`: the CRC-32 (8 hex digits) of the journal's first line, and of
    the line that ends at `position` (the last one the snapshot covers: at a segment's start, the previous segment's
    last line); None for a line that is not there. Every record carries a random event id, so another journal's
    lines do not match; a copy of the same journal does."""
    segments = journal.segments()
    first = _line_crc(journal, segments[0], 0) if segments else None
    segment, offset = position.segment, position.offset
    if offset == 0:
        before = [name for name in segments if name < segment]
        if not before or position.seq <= 1:
            return {"first": first, "covered": None}
        segment = before[-1]
        offset = -1  # the previous segment's end
    return {"first": first, "covered": _line_crc(journal, segment, offset, ending=True)}


def _line_crc(journal: Journal, segment: int, offset: int, *, ending: bool = False) -> str | None:
    """The CRC-32 of the line that starts at `offset` of `segment` or, with `ending`, ends there (-1: the end)."""
    try:
        fd = open_file(journal.segment_path(segment), os.O_RDONLY)
    except (OSError, PowerModeError):
        return None
    try:
        size = os.fstat(fd).st_size
        if ending:
            end = size if offset < 0 else offset
            if end <= 0 or end > size:
                return None
            window = 4096
            while True:
                start = max(0, end - window)
                data = os.pread(fd, end - start, start)
                if data[-1:] != b"\n":
                    return None  # not a line's end
                begin = data.rfind(b"\n", 0, len(data) - 1) + 1
                if begin or start == 0:
                    return f"{zlib.crc32(data[begin:]):08x}"
                window *= 4
        window = 4096
        while True:
            data = os.pread(fd, window, offset)
            cut = data.find(b"\n") + 1
            if cut:
                return f"{zlib.crc32(data[:cut]):08x}"
            if len(data) < window:
                return None  # no whole first line
            window *= 4
    finally:
        os.close(fd)
