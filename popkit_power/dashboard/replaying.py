"""A past session on the dashboard: the range its time slider covers, and its status as of any seq (what
`popkit-power replay --at SEQ --json` prints, folded from the newest snapshot before that seq when there is one)."""

from __future__ import annotations

from typing import Any

from ..errors import SessionError
from ..replay.playback import Playback
from ..replay.story import last_ts
from ..status import session_status
from ..timestamps import seconds_of
from .feed import LIVE_HANDOVERS, Feed, extras


def replay_range(feed: Feed) -> dict[str, Any] | None:
    """The seqs and times of the first and last records the feed read; None for an empty journal."""
    if feed.first is None or feed.last is None:
        return None
    return {"first_seq": feed.first[0], "first_ts": feed.first[1], "last_seq": feed.last[0], "last_ts": feed.last[1]}


def status_at(feed: Feed, seq: int) -> dict[str, Any]:
    """{"status": the status of the feed's session through record `seq` (with the page's extras: the hand-overs
    and answers up to there), "seq", "ts": that record's time}; SessionError when the journal holds no such
    record."""
    session = feed.session
    if seq < 1:
        raise SessionError(f"seq {seq} is before the first record (seqs start at 1)")
    playback = Playback(session, start_seq=seq + 1, full=True)
    for _event in playback.events(until=lambda event: isinstance(event.get("seq"), int) and event["seq"] > seq):
        pass
    book = playback.book
    assert book is not None
    through = playback.covered.seq - 1
    if through < seq and not playback.stopped:
        raise SessionError(f"seq {seq} is past the end of session {session.id}, whose records go through seq "
                           f"{through}")
    ts = playback.last_ts or last_ts(book.state)
    status = session_status(session, book.state, playback.covered, now=seconds_of(ts))
    handovers = [handover for handover in feed.handovers if (handover.get("seq") or 0) <= through][-LIVE_HANDOVERS:]
    status.update(extras(book.state, handovers, [], through))
    return {"status": status, "seq": through, "ts": ts}
