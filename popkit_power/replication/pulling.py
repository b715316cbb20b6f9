"""The replicator's pull side: what the other machines and the arbiter added to their streams, read from the local
journal's positions, checked entry by entry (entries.py), and appended to the journal (replicator.py says how)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import PowerModeError
from ..home import active_session, set_active_session
from ..keys import ARBITER, RedisLayout
from ..session import Session
from .entries import announcements, entry_key, newly_joined, not_streams, read_entry, taken_back
from .errors import ReplicationError
from .positions import decided_contest
from .scripts import FIRST_AFTER
from .skipped import SkippedEntries
from .transport import ReplyError, Transport

log = logging.getLogger("popkit_power.replication")

QUIET_TYPES = frozenset({"coordinator.status"})  # local events that do not wake an Upstash replicator


class PullSide:
    """The pull half of `replicator.Replicator`, which sets these attributes and owns its positions."""

    session: Session
    transport: Transport
    layout: RedisLayout
    batch: int
    timeout: float
    origin: str
    origins: set[str]
    loud: int
    stats: dict[str, Any]
    _resumed: bool
    _cursor: dict[str, tuple[int, int]]
    _taken: dict[str, int]
    _linked: set[str]
    _appended: dict[str, int]
    _contests: set[str]
    _refused: set[str]
    _announced_at: str
    _deferred: bool
    _look: set[str]  # origins with an entry skipped since their last look (FIRST_AFTER) whether it was taken back
    _resume_lock: threading.Lock
    _skipped: SkippedEntries

    def resume(self) -> None:
        raise NotImplementedError  # the replicator's: positions from the server and the journal

    def pull_once(self, block_ms: int | None = None, *, with_members: bool = True) -> int:
        """Read what the other origins and the arbiter added since the journal's positions and append it; the
        number of events appended. `block_ms` waits that long for something new (Redis only). Without `with_members`,
        the server's set of origins is not read (Upstash's polls read it at every `polling.MEMBERS_EVERY`th). Machines
        that joined since, and streams their writer took back, are read at once, in one more read (what that one
        finds in turn, at the next call)."""
        pulled, again = self._pull(block_ms, with_members)
        return pulled + (self._pull(None, False)[0] if again else 0)

    def _pull(self, block_ms: int | None, with_members: bool) -> tuple[int, bool]:
        """One read: the events appended, and whether to read again at once (it learned of machines that joined, or
        of streams taken back)."""
        if not self._resumed:
            self.resume()
        origins_key = self.layout.origins(self.session.id)
        sources = sorted((self.origins | {ARBITER}) - self._refused)
        streams = [self.layout.origin_stream(self.session.id, origin) for origin in sources]
        ids = ["{}-{}".format(*self._cursor.get(origin, (0, 0))) for origin in sources]
        announced = [self.layout.joined(self.session.id)] if self._announced_at else []
        # read past entries that could not be used: has their writer taken its stream back since? Looked at the read
        # after one is skipped, then with the set of origins (every read on Redis, every MEMBERS_EVERY-th poll on
        # Upstash): an entry planted where nobody takes it back (a silent machine's stream, the arbiter's) must not
        # cost a billed command at every idle poll
        past = [origin for origin in sources if self._cursor.get(origin, (0, 0)) > (self._taken.get(origin, 0), 0)
                and (with_members or origin in self._look)]
        self._look -= set(past)
        block: list[str | int] = ["BLOCK", block_ms] if block_ms is not None else []
        commands: list[list[str | int]] = [["SMEMBERS", origins_key]] if with_members else []
        if past:
            commands.append(["EVAL", FIRST_AFTER, len(past),
                             *(self.layout.origin_stream(self.session.id, origin) for origin in past),
                             *(word for origin in past for word in (f"{self._taken.get(origin, 0)}-1",
                                                                     self._taken.get(origin, 0)))])
        commands.append(["XREAD", "COUNT", self.batch, *block, "STREAMS", *streams, *announced, *ids,
                         *([self._announced_at] if announced else [])])
        replies = self.transport.execute(commands, timeout=self.timeout)
        members, found = (replies[0] if with_members else None), replies[-1]
        first_after = replies[1 if with_members else 0] if past else None
        again = taken_back(past, first_after, self._cursor, self._taken, self._skipped) if past else []
        for origin in again:
            self._cursor[origin] = (self._taken.get(origin, 0), 0)  # read again what its writer took back
        if isinstance(found, ReplyError):
            if found.code == "WRONGTYPE":
                self._refuse_non_streams(sources, streams, announced)
                return 0, bool(again)
            raise ReplicationError(f"XREAD answered {found}", retryable=found.retryable)
        found, heard_of, at = announcements(found or [], announced[0] if announced else "")
        self._announced_at = at or self._announced_at
        pulled = self._import(dict(zip(streams, sources, strict=True)), found)
        if isinstance(members, list) and self.origin not in members:
            log.warning("this machine is missing from %s: the server lost the session's data (a restart without "
                        "persistence?); working out again what to push", origins_key)
            self._resumed = False
        joined = newly_joined(members if isinstance(members, list) else [], heard_of, self.origins | {self.origin})
        self.origins |= joined
        return pulled, bool(joined or again)

    def _refuse_non_streams(self, sources: list[str], streams: list[str], announced: list[str]) -> None:
        """XREAD refused a key that is not a stream: find which, and read the others without it."""
        kinds = self.transport.execute([["TYPE", stream] for stream in streams + announced], timeout=self.timeout)
        refused, announcing = not_streams(sources, streams, announced, kinds)
        self._refused |= refused
        if not announcing:
            self._announced_at = ""
        if not refused and announcing:
            raise ReplicationError("XREAD answered WRONGTYPE, yet every key it read is a stream or missing")

    def _import(self, origin_of: dict[str, str], found: list[Any]) -> int:
        """Append what one read found: the origins' events first, then the arbiter's decisions, each only once the
        claim it decides is in the journal (else it and those after it wait for a later read), so that every machine
        folds a claim before its decision. An entry that is not its origin's own (entries.read_entry) is skipped and
        counted; the read goes on past it, and the next real entry must link to the last one taken."""
        events: list[dict[str, Any]] = []
        read: dict[str, tuple[int, int]] = {}
        taken: dict[str, int] = {}
        appended: dict[str, int] = {}
        contests: set[str] = set()
        self._deferred = False
        for stream, entries in sorted(found, key=lambda pair: origin_of.get(pair[0]) == ARBITER):
            origin = origin_of.get(stream)
            if origin is None:
                continue
            for entry_id, fields in entries:
                key = entry_key(entry_id)
                if key is None or key <= max(self._cursor.get(origin, (0, 0)), read.get(origin, (0, 0))):
                    continue
                last = taken.get(origin, self._taken.get(origin, 0))
                if key == (last, 0):  # the last one taken, read again after a resume: only its link is news
                    read[origin] = key
                    if "p" in fields[::2]:
                        self._linked.add(origin)
                    continue
                entry = read_entry(entry_id, fields, origin, last, self.session.id,
                                   self.session.journal.max_record_bytes, linked=origin != ARBITER,
                                   unlinked_ok=origin not in self._linked)
                event = entry.event
                if origin == ARBITER and event is not None and self._claim_missing(event["data"], appended):
                    self._deferred = True
                    break
                read[origin] = key
                if not entry.genuine:
                    self._skipped.skipped(origin, stream, str(entry_id), str(entry.reason), entry.link)
                    self._look.add(origin)
                    continue
                self._skipped.taken(origin, str(entry_id), entry.link)
                taken[origin] = key[0]
                if entry.link != "-":
                    self._linked.add(origin)
                if event is None:
                    log.warning("skipped entry %s of origin %s: %s", entry_id, origin, entry.reason)
                    continue
                contest = decided_contest(event)
                if contest is not None and (contest in self._contests or contest in contests):
                    log.warning("skipped decision %s of the arbiter: contest %s is decided already", entry_id, contest)
                    continue
                events.append(event)
                appended[origin] = key[0]
                if contest is not None:
                    contests.add(contest)
        with self._resume_lock:  # a resume reads the journal to set these: never half of an append
            if events:
                self.session.append_events(events)
            for origin, key in read.items():
                self._cursor[origin] = max(self._cursor.get(origin, (0, 0)), key)
            for origin, seq in taken.items():
                self._taken[origin] = max(self._taken.get(origin, 0), seq)
            for origin, seq in appended.items():
                self._appended[origin] = max(self._appended.get(origin, 0), seq)
            self._contests |= contests
        if any(event["type"] == "session.closed" for event in events):
            self._closed_elsewhere()
        self.stats["pulled"] += len(events)
        self.loud += sum(event.get("type") not in QUIET_TYPES for event in events)
        return len(events)

    def _closed_elsewhere(self) -> None:
        """Another machine closed the session (`stop` there): it is closed here too. Power Mode is turned off on this
        machine when the session is still its active one, so that its agents' hooks stop recording into it (the
        coordinator stops by itself once it folds the closing)."""
        try:
            if active_session(self.session.power_dir) == self.session.id:
                set_active_session(self.session.power_dir, None)
                log.warning("session %s was closed on another machine: Power Mode is off here too", self.session.id)
        except (OSError, PowerModeError) as error:
            log.warning("session %s was closed on another machine, but Power Mode could not be turned off here: %s",
                        self.session.id, error)

    def _claim_missing(self, data: dict[str, Any], appended: dict[str, int]) -> bool:
        """Whether the event an arbiter's fact settles (a decision's claim, an ordered transition) is from another
        machine and not yet in the journal."""
        where, seq = data.get("origin"), data.get("claim_seq", data.get("seq"))
        return isinstance(seq, int) and where in self.origins and seq > max(self._appended.get(where, 0),
                                                                             appended.get(where, 0))
