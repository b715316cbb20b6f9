"""Where a replicator goes on from, worked out from the local journal and what the server says it holds, never from a
side file: one pass over the journal (flat memory: only what the server lost is kept).

- **Push.** The server's last entry of this origin's stream counts only when it is this machine's event with that
  seq, body for body. Anything else (an entry planted there, a stream emptied and refilled by someone else) is not
  trusted: the push starts again from the beginning, where the push script skips what the server holds and removes
  what this machine never wrote (scripts.py).
- **Pull.** Per origin, the highest `oseq` the journal holds; and the contests the arbiter decided, so that a
  decision is taken once per contest even when a server that lost its data decides one again.
- **The arbiter's memory.** Decisions and task transitions' places in the order that the journal holds beyond the
  server's arbiter stream (the server lost them) are kept, to be put back (scripts.RESTORE) before anything is
  pushed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ..journal import codec
from ..journal.reader import Position
from ..keys import ARBITER, RedisLayout
from ..session import Session
from .errors import ReplicationError
from .scripts import RESTORE
from .transport import ReplyError, Script, Transport

log = logging.getLogger("popkit_power.replication")
_RESTORE = Script(RESTORE)

FRAMING = ("seq", "crc", "more")  # the journal's own fields, never pushed
PULLED = ("oseq", "rts")  # what pulling adds to an event, never taken from a server's entry
NOT_PUSHED = frozenset(FRAMING + PULLED)


@dataclass
class Scan:
    """What one pass over the journal found."""

    pushed_seq: int = 0  # this origin's events up to here are on the server (verified)
    push_from: Position = field(default_factory=Position)  # no unpushed event of this origin before this position
    appended: dict[str, int] = field(default_factory=dict)  # origin -> the highest oseq in the journal
    contests: set[str] = field(default_factory=set)  # contests the journal holds a decision of
    lost_decisions: list[dict[str, Any]] = field(default_factory=list)  # decisions the server no longer holds


def scan(session: Session, origin: str, on_server: int, top_body: str | None, arbiter_held: int) -> Scan:
    """Read the journal once. `on_server` is the last id the server gave this origin's stream and `top_body` the body
    of its last entry (None when that is not the entry under `on_server`); `arbiter_held` the arbiter stream's last
    id."""
    found = Scan()
    verified = on_server == 0
    before = Position()
    push_from: Position | None = None
    reader = session.journal.reader(Position())
    for event in reader:
        oseq = event.get("oseq")
        if isinstance(oseq, int):
            source = str(event.get("origin"))
            found.appended[source] = max(found.appended.get(source, 0), oseq)
            if source == ARBITER:
                contest = decided_contest(event)
                if contest is not None:
                    found.contests.add(contest)
                if oseq > arbiter_held and (contest is not None or event.get("type") == "arbiter.ordered"):
                    found.lost_decisions.append(event)
        elif event.get("origin") == origin:
            seq = event["seq"]
            if seq == on_server and top_body is not None and body(event) == top_body:
                verified = True
            if push_from is None and seq > on_server:
                push_from = before
        at = reader.position  # the reader moves this very object on: keep a copy
        before = at.copy()
    if verified:
        found.pushed_seq, found.push_from = on_server, push_from or reader.position
    return found


def body(event: dict[str, Any]) -> str:
    """An event as pushed: its envelope without the journal's framing (seq, crc) or what pulling added, in the
    journal's own JSON (codec, as `Session.append_events` writes it). Not orjson, though it is five times faster:
    the two write some floats differently (1e-05 / 0.00001), and a body must compare equal to what an earlier
    version pushed, or the push takes the server's entry for a foreign one (scripts.py)."""
    return codec.dumps({key: value for key, value in event.items() if key not in NOT_PUSHED})


def decided_contest(event: dict[str, Any]) -> str | None:
    """The contest an arbiter's decision settles, None for anything else."""
    data = event.get("data")
    contest = data.get("contest") if isinstance(data, dict) else None
    return contest if event.get("type") == "arbiter.decided" and isinstance(contest, str) else None


def restore_args(decisions: list[dict[str, Any]]) -> list[str | int]:
    """scripts.RESTORE's ARGV for the arbiter's facts pulled before the server lost them: number, body, contest (''
    for a task transition's place in the order), claim."""
    args: list[str | int] = []
    for event in decisions:
        data = event["data"]
        args += [event["oseq"], body(event), str(data.get("contest") or ""), str(data.get("event"))]
    return args


def put_back(transport: Transport, layout: RedisLayout, session_id: str, decisions: list[dict[str, Any]],
             batch: int, timeout: float) -> int:
    """Put back the arbiter's decisions the server lost (this journal holds them), before any claim is pushed again:
    a claim's contest then stays decided as every machine already knows it. The number put back (the stream may
    hold some already: another machine put them back first)."""
    keys = [layout.origin_stream(session_id, ARBITER), layout.contests(session_id), layout.arbiter_counter(session_id)]
    restored = 0
    for start in range(0, len(decisions), batch):
        reply = _RESTORE.run(transport, keys, restore_args(decisions[start:start + batch]), timeout=timeout)
        if isinstance(reply, ReplyError):
            raise ReplicationError(f"putting back the arbiter's decisions: the server answered {reply}",
                                   retryable=reply.retryable)
        restored += int(reply)
    log.warning("the server had lost %s of the arbiter's decisions; put back %s", len(decisions), restored)
    return restored
