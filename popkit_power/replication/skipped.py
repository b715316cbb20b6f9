"""The entries a puller skipped because their machine did not write them (planted by anything holding the
credentials: entries.read_entry says why), counted per origin and remembered by entry, so that one read again after
its writer took the stream back is counted once, and one skipped only for its link, read before its writer took back
a planted entry before it, is counted no more once it is taken. `status` and `doctor` show the counts
(replication.json's `skipped_entries` and `last_skipped_entry`)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("popkit_power.replication")

MAX_REMEMBERED = 10_000  # entries remembered (then forgotten all at once: one read again may be counted twice)


class SkippedEntries:
    """Counts kept in `stats` (the replicator's, written to replication.json): `skipped_entries` (origin -> count)
    and `last_skipped_entry` (which, of which stream, and why)."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        stats.update(skipped_entries={}, last_skipped_entry=None)
        self.seen: dict[tuple[str, str, str], str] = {}  # (origin, entry id, link) -> what it was

    def skipped(self, origin: str, stream: str, entry_id: str, reason: str, link: str) -> None:
        """Count and log an entry of `origin`'s stream that is not that origin's own, once per entry."""
        seen = (origin, entry_id, link)
        if seen in self.seen:
            return  # read again after its writer took the stream back: counted already
        if len(self.seen) >= MAX_REMEMBERED:
            self.seen.clear()
        self.seen[seen] = f"{entry_id} of {stream}: {reason}"[:500]
        counts = self.stats["skipped_entries"]
        counts[origin] = counts.get(origin, 0) + 1
        self.stats["last_skipped_entry"] = self.seen[seen]
        log.warning("skipped entry %s of %s (origin %s), not written by its machine: %s", entry_id, stream, origin,
                    reason)

    def taken(self, origin: str, entry_id: str, link: str) -> None:
        """`entry_id` was taken as its origin's own: if it was counted, it no longer is."""
        if self.seen.pop((origin, entry_id, link), None) is None:
            return
        counts = self.stats["skipped_entries"]
        counts[origin] = counts.get(origin, 1) - 1
        if counts[origin] <= 0:
            del counts[origin]
        self.stats["last_skipped_entry"] = next(reversed(self.seen.values()), None)
        log.info("entry %s of origin %s is its own after all: read before its writer took back the one before it",
                 entry_id, origin)
