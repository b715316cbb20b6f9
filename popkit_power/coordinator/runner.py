"""`PowerModeCoordinator`: one process per power session that follows the journal, keeps the projection current and
appends its decisions (decide.py), with the original Power Mode's API:

    coordinator = PowerModeCoordinator(objective)
    if coordinator.connect():   # selects the mode and says why (coordinator.mode, coordinator.reason)
        coordinator.start()     # in the background; coordinator.stop() ends it; coordinator.run() in the foreground

It holds the session's lease (journal/lease.py) while it runs. It wakes when the journal changes (follow.py) and when
the Claude Code process of an agent on this machine exits (a pidfd per process, where the OS has them), so an agent's
death is acted on at once, with no timer to wait out; otherwise it looks again every `POLL_SECONDS`. After a restart,
even after SIGKILL, it starts from the latest snapshot plus the journal after it, and finds in the journal what it
decided before, so it decides nothing twice.

At its edges: it measures silences on its monotonic clock (hearing.py), so a stepped clock moves no verdict; it
watches any number of agents' processes without taking an error of its own for a death (liveness.py); a full disk
(or a journal that refuses it otherwise, as through a planted link) does not end it (it retries with backoff and
says "disk full", or "failing" and why, in its lease file); and it ends, writing nothing
more, once its session directory is removed or replaced (opened_dir.py).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import JournalError, PowerModeError, SessionError, UnsafePathError
from ..follow import JournalWatch
from ..home import active_session, find_power_dir
from ..journal.lease import DISK_FULL, FAILING, RUNNING, Lease
from ..keys import COORDINATOR, host_name
from ..opened_dir import OpenedDirectory
from ..projector import apply
from ..replication.mode_selector import REDIS, UPSTASH, select_mode
from ..session import Session, start_session
from .decide import Rules, decide
from .hearing import Hearing
from .liveness import ProcessWatch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..approvals import Answer, Requested
    from ..claims import Claimed
    from ..journal.writer import JournalReader, Position
    from ..projector import Rules as FoldRules

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The longest a wait lasts: silence-based decisions and `coordinator.status` are looked at this often.
POLL_SECONDS = 1.0
#: After a round that failed (a full disk refused its appends), the next try waits twice as long, up to this
RETRY_MAX_SECONDS = 30.0


class PowerModeCoordinator:
    """The coordinator of one power session (the active one, or a new one for `objective` when none is active)."""

    def __init__(self, objective: str | None = None, *, power_dir: str | None = None,
                 session_id: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.objective = objective
        self.environ = os.environ if environ is None else environ  # where the Redis or Upstash credentials are
        self.replicator: Any = None
        self.power_dir = power_dir or find_power_dir()
        self.session_id = session_id
        self.mode: str | None = None
        self.reason: str | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: JournalWatch | None = None
        self._processes = ProcessWatch()
        self.monotonic: Callable[[], float] = time.monotonic  # how it measures silences (tests step it)
        self._folded = threading.Condition()
        self.folded_seq = 0  # the journal is folded into the coordinator's state up to here
        self.steps = 0  # rounds of the loop so far: an idle coordinator makes about one per POLL_SECONDS
        self.stop_reason = "stopped"
        self.gone: str | None = None  # why it ended when its session directory went away (then it says nothing)

    def connect(self) -> bool:
        """Select the mode (replication/mode_selector.py: Upstash, Redis or the file journal) and say why (`mode`,
        `reason`, logged). False, with the reason printed on stderr, when the server the credentials name cannot be
        used (for Upstash the original's "Upstash connection failed. Check your credentials." and the exact failure; for
        REDIS_URL a URL that is not one, or a server that does not answer PING); True otherwise."""
        selected = select_mode(self.environ)
        self.mode, self.reason = selected.kind, selected.reason
        if not selected.ok:
            log.error("mode: %s (%s)", self.mode, self.reason)
            print(self.reason, file=sys.stderr)
            return False
        log.info("mode: %s (%s)", self.mode, self.reason)
        return True

    def start(self, timeout: float = 30.0) -> None:
        """Coordinate in a background thread; return once it holds the lease and follows the journal (raising what
        stopped it from starting, such as another coordinator holding the lease)."""
        self._thread = threading.Thread(target=self._run_catching, name="popkit-power-coordinator", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop (from any thread, or a signal handler through `request_stop`) and wait for the end."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def request_stop(self) -> None:
        """Ask the loop to end after its current step; safe in a signal handler (it only sets a flag and wakes)."""
        self._stop.set()
        if self._watch is not None:
            self._watch.wake()

    def wait_folded(self, seq: int, timeout: float) -> bool:
        """Wait until the coordinator has folded the journal up to `seq`; False if `timeout` passed first."""
        with self._folded:
            return self._folded.wait_for(lambda: self.folded_seq >= seq, timeout)

    # -- the protocols, for a program that works in the session (claims.py, approvals.py) ------------------------

    def claim_task(self, task: str, *, agent: str, timeout: float | None = None) -> Claimed:
        """Claim `task` (its id or a unique start of it) for `agent`, as `popkit-power claim` does: Claimed, or
        ClaimLostError naming the winner (`winner`, `winning_seq`), or SessionError when it cannot be claimed."""
        from ..claims import claim_task

        return self._in_session(lambda session: claim_task(session, task, sender=agent, timeout=timeout))

    def request_approval(self, question: str, *, agent: str, options: Sequence[str] = ()) -> Requested:
        """Ask the human to approve `question`, as `agent` (`popkit-power ask`); wait with `wait_for_approval`."""
        from ..approvals import request_approval

        return self._in_session(lambda session: request_approval(session, question, sender=agent, options=options))

    def wait_for_approval(self, request: str | Requested, *, timeout: float | None) -> Answer | None:
        """The human's answer to `request` (an id, or what `request_approval` returned), waiting up to `timeout`
        seconds (None: as long as it takes); None when no answer came in time (`popkit-power ask --wait`)."""
        from ..approvals import Requested, wait_for_answer

        if isinstance(request, Requested):
            after = request.end
            return self._in_session(lambda session: wait_for_answer(session, request.request, after=after,
                                                                    timeout=timeout))
        return self._in_session(lambda session: wait_for_answer(session, request, timeout=timeout))

    def _in_session(self, call: Callable[[Session], T]) -> T:
        """`call` with the session this coordinator works in (`session_id`, else the active one), opened for it
        alone and closed after: apart from the loop's, so these calls may come from any thread."""
        session = Session(self.power_dir, self.session_id) if self.session_id else Session.active(self.power_dir)
        try:
            return call(session)
        finally:
            session.journal.close()

    def _run_catching(self) -> None:
        try:
            self.run()
        except BaseException as error:
            self.error = error
            self._ready.set()

    def run(self) -> None:
        """Coordinate in the foreground until `request_stop`."""
        if self.mode is None:
            self.connect()
        session = self._session()
        _ = session.origin  # read (or made) now, while the power directory surely exists: never made again later
        with Lease(session.dir, stoppable=self._thread is None) as lease:
            opened = OpenedDirectory(session.dir)
            state, position = session.projection()
            if state["closed"] is not None:
                raise SessionError(f"session {session.id} is closed: a coordinator coordinates an open session")
            session.publish("coordinator.started", {"pid": os.getpid(), "host": host_name()}, sender=COORDINATOR)
            self._watch = JournalWatch(session.journal.directory)
            replication = self._start_replication(session)
            try:
                self._loop(session, state, position, lease, opened)
            finally:
                self._watch.close()
                self._processes.close()
                try:  # before the replicator stops, so that it pushes this too (and a closing of the session)
                    self._say_stopped(session, opened)
                finally:
                    if replication is not None:
                        replication.stop()
                    session.journal.close()

    def _say_stopped(self, session: Session, opened: OpenedDirectory) -> None:
        """`coordinator.stopped`, unless the session directory went away (nothing is written anywhere then: not
        into files nobody sees, nor into a directory put in its place) or the journal refuses it (a full disk)."""
        try:
            if self.gone is None and opened.gone() is None:
                session.publish("coordinator.stopped", {"reason": self.stop_reason}, sender=COORDINATOR)
        except (JournalError, OSError) as error:
            log.warning("coordinator.stopped not appended: %s", error)

    def _start_replication(self, session: Session) -> Any:
        """With Redis or Upstash selected and answering: the session's replicator in this process (its own lease and
        its own Session, so its appends never share a file handle with the coordinator's); None otherwise."""
        if self.mode not in (REDIS, UPSTASH):
            return None
        from ..replication.running import start_replication

        try:
            self.replicator = start_replication(Session(session.power_dir, session.id), self.environ)
        except PowerModeError as error:
            log.warning("replication not started: %s", error)
            return None
        return self.replicator

    def _session(self) -> Session:
        if self.session_id is not None:
            return Session(self.power_dir, self.session_id)
        if active_session(self.power_dir) is not None:
            return Session.active(self.power_dir)
        if self.objective:
            return start_session(self.power_dir, self.objective, sender=COORDINATOR)
        raise SessionError(f"no active power session in {self.power_dir}, and no objective to start one")

    def _loop(self, session: Session, state: dict[str, Any], position: Position, lease: Lease,
              opened: OpenedDirectory) -> None:
        config = session.config
        # On Upstash another machine's status reaches this one up to an idle poll on each end later
        slack = 2 * config.upstash_idle_poll_seconds + config.heartbeat_seconds if self.mode == UPSTASH else 0.0
        rules, fold_rules = Rules.from_config(config, machine_slack_seconds=slack), session.rules()
        reader = session.journal.reader(position)
        status = {"pid": os.getpid(), "host": host_name()}
        hearing = Hearing(self.monotonic)
        since_snapshot, awaiting, retry, unread = 0, 0, 0.0, False
        self._ready.set()
        assert self._watch is not None
        while not self._stop.is_set():
            self.steps += 1
            self.gone = opened.gone()
            if self.gone is not None:
                log.warning("the coordinator of session %s ends: its session directory %s", session.id, self.gone)
                self.stop_reason = f"its session directory {self.gone}"
                break
            try:
                folded, decided, awaiting = step(session, state, reader, fold_rules, rules, self._processes.check,
                                                 status, hearing, awaiting)
            except (JournalError, OSError, UnsafePathError) as error:  # a full disk, a link planted among the
                # segments (refused by the journal): stay up, keep the state, say why in the lease, try again later
                retry = min(max(retry * 2, POLL_SECONDS), RETRY_MAX_SECONDS)
                full = _disk_full(error, session.dir)
                lease.note(DISK_FULL if full else FAILING, str(error)[:300])
                log.warning("%s (%s); trying again in %.0f s", "disk full" if full else "a round failed", error,
                            retry)
                self._watch.wait(retry)
                continue
            if not decided and reader.position.seq <= awaiting and not unread:
                unread = True  # said once: the next rounds wait as an idle coordinator does
                log.warning("its decisions up to seq %d do not come back from the journal in %s: it decides "
                            "nothing more until they do", awaiting, session.journal.directory)
            if retry:
                retry = 0.0
                lease.note(RUNNING)
                log.info("appending again")
            if state["closed"] is not None:  # closed under it (stop, start --switch): its work is over
                self.stop_reason = "the session was closed"
                break
            since_snapshot += folded
            if folded:
                with self._folded:
                    self.folded_seq = reader.position.seq - 1
                    self._folded.notify_all()
            if decided:
                continue  # fold what was just decided before deciding again
            if since_snapshot >= config.snapshot_every_events:
                since_snapshot = 0
                try:  # kept fresh here, so that no agent's SessionStart folds a long tail; only into its directory
                    session.snapshots.save(state, reader.position, within=opened.identity)
                except OSError as error:
                    log.warning("snapshot not saved: %s", error)
            self._watch.wait(POLL_SECONDS, self._processes.fds())


def _disk_full(error: BaseException, where: str) -> bool:
    """Whether `error` (or what it was raised from) is the disk refusing space, or the disk at `where` is full."""
    for cause in (error, error.__cause__, error.__context__):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
    try:
        return os.statvfs(where).f_bavail == 0
    except OSError:
        return False


def step(session: Session, state: dict[str, Any], reader: JournalReader, fold_rules: FoldRules, rules: Rules,
         check_processes: Callable[[dict[str, Any]], Mapping[str, bool | None]],
         status: Mapping[str, Any] | None, hearing: Hearing | None = None, awaiting: int = 0) -> tuple[int, int, int]:
    """One round of the coordinator: fold what is new, look at the agents' processes, append what `decide` says (each
    batch one atomic append, sent as the coordinator). Returns (events folded, batches appended, the seq of the last
    decision appended so far).

    Nothing is decided before the fold has read back the decisions appended up to `awaiting`: a decision counts as
    made only once the state holds it, and deciding again before that appends the same decision again (after the
    journal went where the reader cannot follow, the first heartbeat was appended in a tight loop). Silences come
    from `hearing` (monotonic); without it, from the events' timestamps against `time.time()`."""
    folded = 0
    for event in reader:
        apply(state, event, fold_rules)
        folded += 1
    if reader.position.seq <= awaiting:
        return folded, 0, awaiting
    silences = hearing.silences(state, session.origin) if hearing is not None else None
    batches = decide(state, time.time(), check_processes(state), rules, status, session.origin, silences)
    for batch in batches:
        events = [session.event(kind, data, sender=COORDINATOR) for kind, data in batch]
        awaiting = session.append_events(events).last_seq
        log.info("decided: %s", ", ".join(f"{kind} {data.get('agent') or data.get('task') or ''}"
                                           for kind, data in batch))
    return folded, len(batches), awaiting
