"""The entries a puller skipped because their machine did not write them (planted by anything holding the
credentials: entries.read_entry says why), counted per origin and remembered by entry, so that one read again after
its writer took the stream back is counted once, and one skipped only for its link, read before its writer took back
a planted entry before it, is counted no more once it is taken. `status` and `doctor` show the counts
(replication.json's `skipped_entries` and `last_skipped_entry`)."""

from __future__ import annotations

import logging
from bisect import insort
from typing import Any

from .entries import entry_key
from .scripts import FIRST_AFTER_COUNT

log = logging.getLogger("popkit_power.replication")

MAX_REMEMBERED = 10_000  # entries remembered (then forgotten all at once, but for the first ones after each link)


class SkippedEntries:
    """Counts kept in `stats` (the replicator's, written to replication.json): `skipped_entries` (origin -> count)
    and `last_skipped_entry` (which, of which stream, and why)."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats
        stats.update(skipped_entries={}, last_skipped_entry=None)
        self.seen: dict[tuple[str, str, str], str] = {}  # (origin, entry id, link) -> what it was
        # (origin, link) -> the smallest ids skipped with that link, as many as a look (FIRST_AFTER) returns: never
        # forgotten with `seen`, so that a look never takes them for their writer's own when thousands were planted
        self.first_linked: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def __contains__(self, seen: object) -> bool:
        """Whether (origin, entry id, link) is an entry skipped before (what `entries.taken_back` asks)."""
        if seen in self.seen:
            return True
        if not isinstance(seen, tuple) or len(seen) != 3:
            return False
        origin, entry_id, link = seen
        return entry_key(entry_id) in self.first_linked.get((origin, link), [])

    def skipped(self, origin: str, stream: str, entry_id: str, reason: str, link: str) -> None:
        """Count and log an entry of `origin`'s stream that is not that origin's own, once per entry."""
        seen = (origin, entry_id, link)
        if seen in self.seen:
            return  # read again after its writer took the stream back: counted already
        key = entry_key(entry_id)
        if key is not None:
            if len(self.first_linked) >= MAX_REMEMBERED:
                self.first_linked.clear()
            first = self.first_linked.setdefault((origin, link), [])
            if key not in first:
                insort(first, key)
                del first[FIRST_AFTER_COUNT:]
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
        key = entry_key(entry_id)
        first = self.first_linked.get((origin, link), [])
        if key in first:
            first.remove(key)
        if self.seen.pop((origin, entry_id, link), None) is None:
            return
        counts = self.stats["skipped_entries"]
        counts[origin] = counts.get(origin, 1) - 1
        if counts[origin] <= 0:
            del counts[origin]
        self.stats["last_skipped_entry"] = next(reversed(self.seen.values()), None)
        log.info("entry %s of origin %s is its own after all: read before its writer took back the one before it",
                 entry_id, origin)
