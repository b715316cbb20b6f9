"""Upstash's poll schedule: its REST API has no blocking reads and bills every command, so one loop pushes and pulls,
every FAST_POLL seconds while anything moves, then twice as long after each quiet poll, up to
`upstash_idle_poll_seconds`. A local event wakes it at once; the coordinators' own statuses (pushed or pulled) neither
wake it nor keep it fast: they ride along with the next poll. Each idle poll is two billed commands (the push script
with the statuses, and XREAD), and the set of origins is read only at every MEMBERS_EVERY-th poll, so an idle machine
spends about 2 x 3600 / upstash_idle_poll_seconds commands an hour (docs/replication.md).
"""

from __future__ import annotations

import time
from typing import Any

FAST_POLL = 0.5  # the poll interval right after something moved
MEMBERS_EVERY = 10  # the set of origins is read at every tenth poll (a machine that joins is announced sooner, on
# the joined stream every poll's XREAD reads; the set is what tells that the server lost the session's data)


def poll_loop(replicator: Any) -> None:
    """Run the schedule for `replicator` (replicator.Replicator) until it is stopped."""
    assert replicator._watch is not None
    interval = FAST_POLL
    next_poll = 0.0
    polls = 0
    while not replicator._stop.is_set():
        now = time.monotonic()
        polling = now >= next_poll
        loud = replicator.loud
        polls += polling
        def step(polling: bool = polling, polls: int = polls) -> int:
            pushed = replicator.push_once(quiet_too=polling)
            return int(pushed) + (replicator.pull_once(with_members=polls % MEMBERS_EVERY == 1) if polling else 0)

        replicator._guarded(step)
        moved = replicator.loud > loud  # the coordinators' own statuses, pushed or pulled, do not speed polling up
        if polling:
            interval = FAST_POLL if moved else min(interval * 2, replicator.idle_poll)
            next_poll = time.monotonic() + interval
        elif moved:
            next_poll = min(next_poll, time.monotonic() + FAST_POLL)
        replicator._watch.wait(max(0.0, next_poll - time.monotonic()))

