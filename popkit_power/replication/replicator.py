"""The replicator: this machine's events out to Redis Streams, the other machines' events into the local journal.

The local journal stays the truth. Positions are worked out from what the server and the journal hold, never
trusted from a side file:

- **Push.** Every local event (this origin's, not pulled) goes to the origin's stream under the id `<seq>-0`, in
  batches, through one script call each (scripts.py). Where to start is the stream's last id (`XINFO STREAM`): a
  resent batch, a timeout after the server applied it, a crash between send and acknowledgement, or a restart on
  either side makes the server skip what it has, so nothing is duplicated or lost there.
- **Pull.** Each other origin's stream (the server's set of origins) and the arbiter's stream are read from the
  highest `oseq` of that origin in the local journal, found by reading the journal once at start; a pulled event is
  appended with its `origin`, its `oseq` and everything else as it was, and is never pushed back. One replicator per
  session (a lease, `replicator.lock`) makes this exactly once: nothing else writes pulled events.
- **Waiting.** On Redis, a blocking `XREAD` waits for the others and a file watch for local events. Upstash has no
  blocking reads and bills every command, so there one loop polls: quickly while anything moves, then doubling up to
  `upstash_idle_poll_seconds`; local events wake it, except the coordinator's own status, which rides along with the
  next poll (an idle hour costs about 3600 / upstash_idle_poll_seconds commands).
- **Failures** back off (1 s doubling to 60 s) and are reported in `replication.json` beside the journal, which
  `status` reads for the lag; a refused token or a spent Upstash limit waits the longest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import codec
from .._fs import write_file_atomically
from ..errors import PowerModeError, ProtocolError, TransportAuthError, TransportError, TransportLimitError
from ..follow import JournalWatch
from ..journal import Position
from ..keys import ARBITER, RedisLayout
from ..protocol import validate
from ..session import Session
from .effects import effects
from .scripts import PUSH
from .transport import ReplyError, Script, Transport

log = logging.getLogger("popkit_power.replication")

STATUS_FILE = "replication.json"
BLOCK_MS = 1000  # a blocking read returns at least this often, so a stop is seen within a second
MIN_BACKOFF, MAX_BACKOFF = 1.0, 60.0
FAST_POLL = 0.5  # Upstash: the poll interval right after something moved
QUIET_TYPES = frozenset({"coordinator.status"})  # local events that do not wake an Upstash replicator
_PUSH_SCRIPT = Script(PUSH)


class Replicator:
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
        self.pushed_seq = 0  # this origin's events up to this seq are on the server
        self.imported: dict[str, int] = {}  # origin -> the highest oseq pulled into the local journal
        self.origins: set[str] = set()  # the other origins the server knows for this session
        self._push_from = Position()
        self._resumed = self._scanned = False
        self._resume_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watch: JournalWatch | None = None
        self._lock = threading.Lock()  # the status and the journal's appends of pulled events
        self.stats: dict[str, Any] = {"pushed": 0, "pulled": 0, "skipped": 0, "errors": 0, "last_error": None,
                                      "last_ok": None, "backoff_until": None}

    # -- positions ------------------------------------------------------------------------------------------------

    def resume(self) -> None:
        with self._resume_lock:
            self._resume()

    def _resume(self) -> None:
        """Find where to go on from: the origin's last id on the server, and per origin the highest oseq (and the
        first unpushed local event) in the journal. Also announces this origin in the session's set of origins.
        Called again after any failure: a server that lost data (a restart without persistence) is pushed again
        from what it still holds."""
        origins_key = self.layout.origins(self.session.id)
        info, _, members = self.transport.execute(
            [["XINFO", "STREAM", self.stream], ["SADD", origins_key, self.origin], ["SMEMBERS", origins_key]],
            timeout=self.timeout)
        on_server = _last_seq(info)
        if isinstance(members, list):
            self.origins |= {member for member in members if isinstance(member, str) and member != self.origin}
        if self._scanned and on_server == self.pushed_seq:
            self._resumed = True
            return
        self.pushed_seq = on_server
        before = Position()
        push_from: Position | None = None
        reader = self.session.journal.reader(Position())
        for event in reader:
            oseq = event.get("oseq")
            if isinstance(oseq, int):
                origin = str(event.get("origin"))
                self.imported[origin] = max(self.imported.get(origin, 0), oseq)
            elif push_from is None and event.get("origin") == self.origin and event["seq"] > self.pushed_seq:
                push_from = before
            before = reader.position
        self._push_from = push_from or reader.position
        self._scanned = self._resumed = True

    # -- one step each ----------------------------------------------------------------------------------------------

    def push_once(self, *, quiet_too: bool = True) -> int:
        """Push up to one batch of unpushed local events; the number the server took as new. With `quiet_too`
        False, a batch of only the coordinator's status waits (Upstash's idle economy)."""
        if not self._resumed:
            self.resume()
        reader = self.session.journal.reader(self._push_from)
        events: list[dict[str, Any]] = []
        for event in reader:
            if event.get("origin") == self.origin and "oseq" not in event and event["seq"] > self.pushed_seq:
                events.append(event)
                if len(events) >= self.batch:
                    break
        if not events:
            self._push_from = reader.position
            return 0
        if not quiet_too and all(event.get("type") in QUIET_TYPES for event in events):
            return 0
        args: list[str | int] = [len(events)]
        for event in events:
            body = _body(event)
            commands = effects(event, body, self.layout)
            args += [event["seq"], body, len(commands)]
            for command in commands:
                args += [len(command), *command]
        reply = _PUSH_SCRIPT.run(self.transport, [self.stream], args, timeout=self.timeout)
        if isinstance(reply, ReplyError) or not isinstance(reply, list) or len(reply) != 2:
            raise PowerModeError(f"the push script answered {str(reply)[:200]!r} for seqs "
                                 f"{events[0]['seq']}-{events[-1]['seq']}")
        new, old = int(reply[0]), int(reply[1])
        self.pushed_seq = events[-1]["seq"]
        self._push_from = reader.position
        self.stats["pushed"] += new
        self.stats["skipped"] += old
        return new

    def pull_once(self, block_ms: int | None = None) -> int:
        """Read what the other origins and the arbiter added since the journal's positions and append it; the
        number of events appended. `block_ms` waits that long for something new (Redis only)."""
        if not self._resumed:
            self.resume()
        origins_key = self.layout.origins(self.session.id)
        sources = sorted(self.origins | {ARBITER})
        streams = [self.layout.origin_stream(self.session.id, origin) for origin in sources]
        ids = [f"{self.imported.get(origin, 0)}-0" for origin in sources]
        block: list[str | int] = ["BLOCK", block_ms] if block_ms is not None else []
        read: list[str | int] = ["XREAD", "COUNT", self.batch, *block, "STREAMS", *streams, *ids]
        members, found = self.transport.execute([["SMEMBERS", origins_key], read],
                                                timeout=self.timeout)
        if isinstance(found, ReplyError):
            raise PowerModeError(f"XREAD answered {found}")
        pulled = self._import(dict(zip(streams, sources, strict=True)), found or [])
        joined = {member for member in members or () if isinstance(member, str) and member != self.origin} \
            - self.origins if isinstance(members, list) else set()
        if joined:  # a machine that joined since: read its stream now rather than after the next wait
            self.origins |= joined
            pulled += self.pull_once()
        return pulled

    def _import(self, origin_of: dict[str, str], found: list[Any]) -> int:
        events: list[dict[str, Any]] = []
        latest: dict[str, int] = {}
        for stream, entries in found:
            origin = origin_of.get(stream)
            if origin is None:
                continue
            for entry_id, fields in entries:
                oseq = int(str(entry_id).split("-", 1)[0])
                if oseq <= max(self.imported.get(origin, 0), latest.get(origin, 0)):
                    continue
                latest[origin] = oseq
                event = self._pulled(origin, oseq, fields)
                if event is not None:
                    events.append(event)
        if events:
            with self._lock:
                self.session.append_events(events)
        self.imported.update(latest)
        self.stats["pulled"] += len(events)
        return len(events)

    def _pulled(self, origin: str, oseq: int, fields: list[Any]) -> dict[str, Any] | None:
        """The event to append for one stream entry, with its `oseq`; None (logged) for one that is not an event of
        this session from that origin."""
        values = dict(zip(fields[::2], fields[1::2], strict=False))
        try:
            event = validate(codec.loads(values.get("e", "")))
            if event.get("origin") != origin or event.get("session") != self.session.id:
                raise ProtocolError(f"origin {event.get('origin')!r} / session {event.get('session')!r}")
        except (ProtocolError, ValueError, TypeError) as error:
            log.warning("skipped entry %s-0 of origin %s: not an event of this session (%s)", oseq, origin, error)
            return None
        pulled: dict[str, Any] = {}
        for key, value in event.items():
            if key in ("seq", "crc", "more", "oseq"):
                continue
            pulled[key] = value
            if key == "origin":
                pulled["oseq"] = oseq
        return pulled

    # -- running ----------------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Replicate in background threads until `stop`."""
        self._watch = JournalWatch(self.session.journal.directory)
        loops = [self._push_loop, self._pull_loop] if self.transport.blocking_reads else [self._poll_loop]
        for loop in loops:
            thread = threading.Thread(target=loop, name=f"popkit-power-replicator-{loop.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self.write_status()

    def run(self) -> None:
        """Replicate in the foreground until `stop` is called from another thread or a signal handler."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def _push_loop(self) -> None:
        assert self._watch is not None
        while not self._stop.is_set():
            if self._guarded(lambda: self.push_once()) == 0:
                self._watch.wait(1.0)

    def _pull_loop(self) -> None:
        while not self._stop.is_set():
            self._guarded(lambda: self.pull_once(BLOCK_MS))

    def _poll_loop(self) -> None:
        """Upstash: push and pull in one loop, fast while things move, slower and slower while nothing does."""
        assert self._watch is not None
        interval = FAST_POLL
        next_poll = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            polling = now >= next_poll
            moved = self._guarded(lambda polling=polling: self.push_once(quiet_too=polling)  # type: ignore[misc]
                                  + (self.pull_once() if polling else 0))
            if polling:
                interval = FAST_POLL if moved else min(interval * 2, self.idle_poll)
                next_poll = time.monotonic() + interval
            elif moved:
                next_poll = min(next_poll, time.monotonic() + FAST_POLL)
            self._watch.wait(max(0.0, next_poll - time.monotonic()))

    def _guarded(self, work: Callable[[], int]) -> int:
        """Run one step; on a failure note it, back off, and return 0."""
        try:
            moved = work()
        except (TransportError, PowerModeError, OSError) as error:
            self._failed(error)
            return 0
        self.stats.update(last_ok=self.clock(), backoff_until=None)
        self._backoff = MIN_BACKOFF
        if moved:
            self.write_status()
        return moved

    _backoff = MIN_BACKOFF

    def _failed(self, error: Exception) -> None:
        self._resumed = False  # positions are worked out again from the server and the journal
        self.stats["errors"] += 1
        self.stats["last_error"] = f"{type(error).__name__}: {error}"[:500]
        wait = MAX_BACKOFF if isinstance(error, (TransportAuthError, TransportLimitError)) else self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)
        self.stats["backoff_until"] = self.clock() + wait
        log.warning("replication: %s; next try in %.0f s", self.stats["last_error"], wait)
        self.write_status()
        self._stop.wait(wait)

    # -- status -------------------------------------------------------------------------------------------------------

    def lag(self) -> int:
        """Local events not yet on the server."""
        end = self.session.journal.end_position().seq - 1
        return max(0, end - self.pushed_seq) if self._resumed else end

    def write_status(self) -> None:
        """`replication.json` beside the journal: what `status` shows (never the token)."""
        with self._lock:
            status = {"pid": os.getpid(), "transport": self.transport.describe(), "kind": self.transport.kind,
                      "origin": self.origin, "pushed_through": self.pushed_seq, "imported": self.imported,
                      "origins": sorted(self.origins), "commands_sent": self.transport.commands_sent,
                      "written": self.clock(), **self.stats}
            try:
                write_file_atomically(os.path.join(self.session.dir, STATUS_FILE), codec.dumps(status).encode(),
                                      durable=False)
            except (OSError, PowerModeError) as error:
                log.warning("replication status not written: %s", error)


def read_status(session_dir: str) -> dict[str, Any] | None:
    """What the replicator last wrote, or None."""
    from .._fs import read_file

    try:
        found = codec.loads(read_file(os.path.join(session_dir, STATUS_FILE), 1 << 20).decode("utf-8"))
    except (OSError, ValueError, PowerModeError):
        return None
    return found if isinstance(found, dict) else None


def _body(event: dict[str, Any]) -> str:
    """The event as pushed: its envelope without the journal's framing (seq, crc)."""
    return codec.dumps({key: value for key, value in event.items() if key not in ("seq", "crc", "more")})


def _last_seq(info: Any) -> int:
    """The seq of the last id a stream was given (`XINFO STREAM`'s last-generated-id), 0 for no stream."""
    if isinstance(info, ReplyError):
        if "no such key" in info.message.lower():
            return 0
        raise PowerModeError(f"XINFO STREAM answered {info}")
    if isinstance(info, list):
        values = dict(zip(info[::2], info[1::2], strict=False))
        last = values.get("last-generated-id")
        if isinstance(last, str) and "-" in last:
            return int(last.split("-", 1)[0])
    return 0
