"""Snapshots of a session's projection: a cache that makes start-up O(tail), safe to delete at any time.

`sessions/<id>/snapshots/<last seq covered, 16 digits>.snapshot.json` holds the folded state, the journal position it
covers, and the key of the fold that made it: the rules it depends on (settings) and `projector.FOLD_VERSION`, so a
snapshot made with other settings or by older code is never reused. Written crash-safely (temporary file, fsync,
rename); the newest `KEPT` are kept. Format: journal/SPEC.md, section 8.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from ._fs import check_dir, private_dir, read_file, remove_stale_temporaries, write_file_atomically
from .errors import PowerModeError
from .journal import Position

SUFFIX = ".snapshot.json"
KEPT = 2
MAX_SNAPSHOT_BYTES = 1 << 31


class Snapshots:
    """The snapshots of one session, for one fold key (rules and fold version)."""

    def __init__(self, directory: str, session_id: str, fold_key: dict[str, Any]) -> None:
        self.directory = directory
        self.session_id = session_id
        self.fold_key = fold_key

    def save(self, state: dict[str, Any], position: Position) -> str:
        """Write a snapshot of `state` covering the journal up to `position`; return its path."""
        check_dir(os.path.dirname(self.directory))  # the session's directory: removed, it is not made again here
        private_dir(self.directory)
        path = os.path.join(self.directory, f"{position.seq - 1:016d}{SUFFIX}")
        document = {"v": 1, "session": self.session_id, "position": position.as_dict(), "rules": self.fold_key,
                    "written": time.time(), "state": state}
        write_file_atomically(path, orjson.dumps(document))
        remove_stale_temporaries(self.directory)
        for old in sorted(self._names())[:-KEPT]:  # names sort by the seq they cover
            os.unlink(os.path.join(self.directory, old))
        return path

    def latest(self, end: Position) -> tuple[dict[str, Any], Position] | None:
        """The newest snapshot that is readable, has this fold key, and is not past `end` (the journal's end: a
        snapshot past it belongs to a journal that was replaced)."""
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
                continue
            return document["state"], position
        return None

    def _names(self) -> list[str]:
        return [name for name in os.listdir(self.directory) if name.endswith(SUFFIX)]
