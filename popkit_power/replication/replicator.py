"""The replicator: this machine's events out to Redis Streams, the other machines' events into the local journal.

The local journal stays the truth. Positions are worked out from what the server and the journal hold, never
trusted from a side file (positions.py):

- **Push.** Every local event (this origin's, not pulled) goes to the origin's stream under the id `<seq>-0`, in
  batches, through one script call each (scripts.py), the next full batch read while the server runs one
  (outbox.py). Where to start is the stream's last entry, when it is this machine's: a resent batch, a timeout
  after the server applied it, a crash between send and acknowledgement, or a restart on either side makes the
  server skip what it has, so nothing is duplicated or lost there. Each batch names the seq the stream must hold
  already, so a server that lost data under a running replicator (a restart without persistence: redis-py
  reconnects without a word) is noticed and filled again, not left with a hole.
- **Pull** (pulling.py). Each other origin's stream (the server's set of origins, and the stream announcing the
  machines that join, read by the same XREAD) and the arbiter's stream are read from the highest
  `oseq` of that origin in the local journal, found by reading the journal once at start; a pulled event is
  appended with its `origin`, its `oseq`, `rts` (when this machine received it, by its own clock) and everything
  else as it was, and is never pushed back. One replicator per session (a lease, `replicator.lock`) makes this
  exactly once: nothing else writes pulled events. This machine missing from the server's set of origins means the
  server lost the session's data: positions are worked out again, and the arbiter's lost decisions put back.
- **Hostile entries** (not an event, another origin's or session's, too large, a key that is not a stream, an id far
  ahead or between real ones, a valid-looking event that does not link to the origin's last entry taken) are skipped,
  counted per origin in `replication.json` (`skipped_entries`) and logged once (entries.py); the read goes on past
  them, but never past a real entry: the first entry after the last one taken is looked at again (FIRST_AFTER) until
  its writer takes the stream back, and the next real entry must link to the last one taken. The journal gets only
  whole, valid events.
- **Waiting.** On Redis, a blocking `XREAD` waits for the others and a file watch for local events. Upstash has no
  blocking reads and bills every command, so there one loop polls: quickly while anything moves, then doubling up to
  `upstash_idle_poll_seconds`; local events wake it, except the coordinator's own status, which rides along with the
  next poll (polling.py: an idle hour costs about 2 x 3600 / upstash_idle_poll_seconds commands).
- **Failures** back off (1 s doubling to 60 s) and are reported in `replication.json` beside the journal, which
  `status` reads for the lag; an error whose `retryable` says resending cannot help (a refused token, a spent
  Upstash limit, a refused request) waits the longest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..display import quoted
from ..errors import PowerModeError
from ..follow import JournalWatch
from ..journal.writer import Position
from ..keys import ARBITER, RedisLayout
from ..opened_dir import OpenedDirectory
from ..session import Session
from . import polling
from .entries import last_seq, newly_joined, top_body
from .errors import ReplicationError
from .outbox import Batch, Outbox
from .polling import poll_loop
from .positions import put_back, scan
from .pulling import QUIET_TYPES, PullSide
from .scripts import BEHIND, PUSH
from .skipped import SkippedEntries
from .status_file import write_status
from .transport import ReplyError, Script, Transport

log = logging.getLogger("popkit_power.replication")

BLOCK_MS = 1000  # a blocking read returns at least this often, so a stop is seen within a second
MIN_BACKOFF, MAX_BACKOFF = 1.0, 60.0
LAST_NUMBER = 2**64 - 1  # the largest sequence part of a stream id
_PUSH_SCRIPT = Script(PUSH)


class Replicator(PullSide):
    """Replicates one session through one transport; `start`/`stop` run it in background threads, `run` in the
    foreground, `push_once`/`pull_once` one step at a time (tests, benchmarks)."""

    def __init__(self, session: Session, transport: Transport, *, layout: RedisLayout | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        config = session.config
        self.session = session
        self.transport = transport
        self.layout = layout or RedisLayout(config.redis_prefix)
        self.batch = config.replication_batch_events
        self.timeout = config.replication_timeout_seconds
        self.idle_poll = config.upstash_idle_poll_seconds
        self.clock = clock
        self.origin = session.origin
        self.stream = self.layout.origin_stream(session.id, self.origin)
        self.arbiter_stream = self.layout.origin_stream(session.id, ARBITER)
        self.pushed_seq = 0  # this origin's events up to this seq are on the server
        self._cursor: dict[str, tuple[int, int]] = {}  # origin -> the id its stream is read after (skipped ones too)
        self._taken: dict[str, int] = {}  # origin -> its last entry taken as its own: the next one must link to it
        self._linked: set[str] = set()  # origins whose entries carry links (else: pushed by a version before them)
        self.origins: set[str] = set()  # the other origins the server knows for this session
        self._appended: dict[str, int] = {}  # origin -> the highest oseq in the local journal
        self._contests: set[str] = set()  # contests the local journal holds the arbiter's decision of
        self._refused: set[str] = set()  # origins whose key is not a stream: not read until the next resume
        self._announced_at = "0-0"  # where the joined stream is read from ("": not read, it is not a stream)
        self._deferred = False  # the last read left decisions whose claims it did not have yet
        self._look: set[str] = set()  # origins to look at (FIRST_AFTER) at the next read, not only with the members
        self._push_refused: ReplicationError | None = None  # why nothing can be pushed now (this machine's stream
        # name taken, or its XINFO refused): raised again, with its `retryable`, at each push until a resume
        self._push_from = Position()
        self._outbox = Outbox(session.journal, self.origin, self.batch, self.layout, config.redis_channel_maxlen)
        self._resumed = self._scanned = False
        self._resume_lock = threading.Lock()  # positions: a resume, and an append of pulled events with its cursors
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch: JournalWatch | None = None
        self._lock = threading.Lock()  # the status file
        self._opened = OpenedDirectory(session.dir)  # ended when it is removed or replaced (`_guarded`)
        self.gone: str | None = None
        self.loud = 0  # events pushed or pulled that are not QUIET_TYPES: what keeps Upstash's polling fast
        self.stats: dict[str, Any] = {"pushed": 0, "already_there": 0, "pulled": 0, "errors": 0, "last_error": None,
                                      "last_ok": None, "backoff_until": None}
        self._skipped = SkippedEntries(self.stats)

    # -- positions ------------------------------------------------------------------------------------------------

    def resume(self) -> None:
        with self._resume_lock:
            self._resume()

    def _resume(self) -> None:
        """Find where to go on from (positions.py), and announce this origin in the session's set of origins.
        Called again after any failure and whenever the server seems to have lost data: a server that lost data (a
        restart without persistence) gets again what it no longer holds, the arbiter's decisions first."""
        origins_key = self.layout.origins(self.session.id)
        info, top, arbiter, added, members = self.transport.execute(
            [["XINFO", "STREAM", self.stream], ["XREVRANGE", self.stream, "+", "-", "COUNT", 1],
             ["XINFO", "STREAM", self.arbiter_stream], ["SADD", origins_key, self.origin], ["SMEMBERS", origins_key]],
            timeout=self.timeout)
        joined = self.layout.joined(self.session.id)
        if added == 1:  # new to the set: told to the machines whose polls do not read it (a crash here: they do later)
            [told] = self.transport.execute([["XADD", joined, "MAXLEN", "~", 1000, "*", "origin", self.origin]],
                                            timeout=self.timeout)
            if isinstance(told, ReplyError):
                log.warning("could not announce this machine on %s (%s): others see it in the set", joined, told)
        try:
            on_server, self._push_refused = last_seq(info, self.stream), None
        except ReplicationError as error:  # this machine's stream name is taken: no push, but the pull goes on
            on_server, self._push_refused = self.pushed_seq, error
        arbiter_held = last_seq(arbiter, None)
        self.origins |= newly_joined(members if isinstance(members, list) else [], set(), {self.origin})
        self._refused.clear()
        self._announced_at = "0-0"  # read again (short): a stream deleted or planted ahead must not hide joiners
        if self._scanned and on_server == self.pushed_seq and arbiter_held >= self._appended.get(ARBITER, 0):
            self._resumed = True
            return
        found = scan(self.session, self.origin, on_server, top_body(top, on_server), arbiter_held)
        if found.pushed_seq != on_server:
            log.warning("the last entry of %s is not this machine's event %s: pushing again from the start (what the "
                        "server holds is skipped, what this machine never wrote dropped)", self.stream, on_server)
        if found.lost_decisions:
            put_back(self.transport, self.layout, self.session.id, found.lost_decisions, self.batch, self.timeout)
        self.pushed_seq, self._push_from = found.pushed_seq, found.push_from
        self._appended, self._contests = found.appended, found.contests
        self._taken = dict(found.appended)
        # read from the last entry taken on, that one included: whether it has a link tells what the next must have
        self._cursor = {origin: (seq - 1, LAST_NUMBER) for origin, seq in found.appended.items()}
        self._linked.clear()
        self._scanned = self._resumed = True

    @property
    def imported(self) -> dict[str, int]:
        """Origin -> the seq its stream is read after (entries skipped count: nothing before is waited for)."""
        return {origin: at[0] for origin, at in self._cursor.items()}

    @property
    def pushed_through(self) -> int:
        """The journal seq up to which every event of this origin is on the server (pulled ones count as done)."""
        return max(self.pushed_seq, self._push_from.seq - 1) if self._resumed else self.pushed_seq

    # -- one step each ----------------------------------------------------------------------------------------------

    def push_once(self, *, quiet_too: bool = True) -> int:
        """Push up to one batch of unpushed local events; the number the server took as new. With `quiet_too`
        False, a batch of only the coordinator's status waits (Upstash's idle economy)."""
        for attempt in (1, 2):
            if not self._resumed:
                self.resume()
            blocked = self._push_refused
            if blocked is not None:
                raise ReplicationError(str(blocked), retryable=blocked.retryable)
            with self._resume_lock:  # a pair: a resume in the pull's thread sets both (the links depend on it)
                start, after = self._push_from.copy(), self.pushed_seq
            batch = self._outbox.take(start, after)
            events = batch.events
            if not events:
                self._pushed(start, after, after, batch.end)
                return 0
            if not quiet_too and all(event.get("type") in QUIET_TYPES for event in events):
                return 0
            reply = self._send(batch)
            if isinstance(reply, ReplyError) and BEHIND in reply.message.split()[:2] and attempt == 1:
                log.warning("the server lost this machine's events (%s): pushing again what it lost", reply.message)
                self._resumed = False
                continue
            if isinstance(reply, ReplyError) or not isinstance(reply, list) or len(reply) != 5:
                # a server busy or loading may run it later; any other answer is not what the script returns
                raise ReplicationError(f"the push script answered {quoted(str(reply), 200)} for seqs "
                                       f"{events[0]['seq']}-{events[-1]['seq']}",
                                       retryable=isinstance(reply, ReplyError) and reply.retryable)
            new, old, removed, undecided, refused = (int(value) for value in reply)
            if removed or undecided or refused:
                log.warning("removed %s entries this machine never wrote from %s (where its events go); %s claims "
                            "not decided (the arbiter's stream is at its largest id); %s writes of the original "
                            "layout refused (a key of another type there?)", removed, self.stream, undecided, refused)
            self._pushed(start, after, events[-1]["seq"], batch.end)
            self.stats["pushed"] += new
            self.stats["already_there"] += old  # resent, or pushed before a crash
            self.loud += sum(event.get("type") not in QUIET_TYPES for event in events)
            return new
        raise AssertionError("unreachable")

    def _pushed(self, start: Position, after: int, seq: int, end: Position) -> None:
        """The push went from (`start`, `after`) to (`end`, `seq`), unless a resume has set other positions since."""
        with self._resume_lock:
            if self._push_from == start and self.pushed_seq == after:
                self.pushed_seq, self._push_from = seq, end

    def _send(self, batch: Batch) -> Any:
        """The push script's reply for `batch`; after a full batch the next one is read and built while the server
        runs this one (outbox.py)."""
        return _PUSH_SCRIPT.run(self.transport, [self.stream], batch.args, timeout=self.timeout,
                                meanwhile=(lambda: self._outbox.prepare(batch)) if batch.full else None)

    # -- running ----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Replicate in background threads until `stop`. Once stopped, a replicator is not started again (its
        transport is closed with it): a new one picks up where this one ended."""
        if self._stop.is_set() or self._threads:
            raise ReplicationError("this replicator is running or was stopped: one start, then a new Replicator")
        self._watch = JournalWatch(self.session.journal.directory)
        loops = [self._push_loop, self._pull_loop] if self.transport.blocking_reads else [self._poll]
        for loop in loops:
            thread = threading.Thread(target=loop, name=f"popkit-power-replicator-{loop.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """End the loops, then push what the journal still holds (at most `timeout` seconds more: a session's end,
        the coordinator's last words), so that the other machines hear this one's last events."""
        self._stop.set()
        if self._watch is not None:
            self._watch.wake()
        for thread in self._threads:
            thread.join(timeout)
        if not any(thread.is_alive() for thread in self._threads):  # else a push may still be reading
            if self._threads:
                self.push_all(timeout)
            self._outbox.close()
        self._threads.clear()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self.write_status()

    def push_all(self, timeout: float) -> bool:
        """Push until the server holds every local event, for at most about `timeout` seconds (a call under way is
        not cut short); whether it got there. A failure is reported as the loops report theirs, without a wait."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.push_once() == 0 and self.lag() == 0:
                    self.stats.update(last_ok=self.clock(), last_error=None, backoff_until=None)
                    return True
        except Exception as error:  # reported: the caller says what it means
            self._resumed = False
            self.stats["errors"] += 1
            self.stats["last_error"] = f"{type(error).__name__}: {error}"[:500]
            log.warning("replication: pushing what is left: %s", self.stats["last_error"])
        finally:
            self.write_status()
        return False

    def run(self) -> None:
        """Replicate in the foreground until `stop` is called from another thread or a signal handler."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _poll(self) -> None:
        poll_loop(self)

    def _push_loop(self) -> None:
        assert self._watch is not None
        while not self._stop.is_set():
            if self._guarded(lambda: self.push_once()) == 0:
                self._watch.wait(1.0)

    def _pull_loop(self) -> None:
        while not self._stop.is_set():
            if self._guarded(lambda: self.pull_once(BLOCK_MS)) == 0 and self._deferred:
                self._stop.wait(polling.FAST_POLL)  # a decision waits for its claim: XREAD would not block

    def _guarded(self, work: Callable[[], int]) -> int:
        """Run one step; on a failure note it, back off, and return 0. Every loop's step: once the session directory
        is removed or replaced, replication ends instead (with one log line), and writes nothing more."""
        gone = self._opened.gone()
        if gone is not None:
            with self._lock:
                if self.gone is None:
                    log.warning("replication of session %s ends: its session directory %s", self.session.id, gone)
                    self.gone = gone
            self._stop.set()
            return 0
        try:
            moved = work()
        except Exception as error:  # anything else too, logged with its traceback: a loop must not die
            if not isinstance(error, (PowerModeError, OSError)):
                log.exception("replication: unexpected failure")
            self._failed(error)
            return 0
        self.stats.update(last_ok=self.clock(), backoff_until=None)
        self._backoff = MIN_BACKOFF
        if moved:
            self.write_status()
        return moved

    _backoff = MIN_BACKOFF

    def _failed(self, error: Exception) -> None:
        """Note a failed step and wait before the next: the backoff (doubling) after an error that trying again can
        fix, the longest wait after a replication error that says it cannot (`retryable` False: a refused token, a
        spent limit, a request or script answer the server will refuse again). An error of this machine (the disk,
        the journal) is retried like a passing one: nothing on the server decides it."""
        self._resumed = False  # positions are worked out again from the server and the journal
        self.stats["errors"] += 1
        self.stats["last_error"] = f"{type(error).__name__}: {error}"[:500]
        hopeless = isinstance(error, ReplicationError) and not error.retryable
        wait = MAX_BACKOFF if hopeless else self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self.stats["backoff_until"] = self.clock() + wait
        log.warning("replication: %s; next try in %.0f s", self.stats["last_error"], wait)
        self.write_status()
        self._stop.wait(wait)

    # -- status -------------------------------------------------------------------------------------------------------

    def lag(self) -> int:
        """Journal events not yet looked at by the push: an upper bound of this machine's events not on the server
        (0 once it has caught up)."""
        end = self.session.journal.end_position().seq - 1
        return max(0, end - self.pushed_through)

    def write_status(self) -> None:
        """`replication.json` beside the journal (status_file.py); none once the session directory went away."""
        with self._lock:
            directory = None if self.gone is not None else self._opened.fd()  # None: removed or replaced
            if directory is None:
                return
            try:
                write_status(directory, {
                    "pid": os.getpid(), "transport": self.transport.describe(), "kind": self.transport.kind,
                    "origin": self.origin, "pushed_through": self.pushed_through, "imported": self.imported,
                    "origins": sorted(self.origins), "commands_sent": self.transport.commands_sent,
                    "written": self.clock(), **self.stats})
            finally:
                os.close(directory)
