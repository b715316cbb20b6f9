"""`PowerModeCoordinator`: one process per power session that follows the journal, keeps the projection current and
appends its decisions (decide.py), with the original Power Mode's API:

    coordinator = PowerModeCoordinator(objective)
    if coordinator.connect():   # selects the mode and says why (coordinator.mode, coordinator.reason)
        coordinator.start()     # in the background; coordinator.stop() ends it; coordinator.run() in the foreground

It holds the session's lease (lease.py) while it runs. It wakes when the journal changes (follow.py) and when the
Claude Code process of an agent on this machine exits (a pidfd per process, where the OS has them), so an agent's
death is acted on at once, with no timer to wait out; otherwise it looks again every `POLL_SECONDS`. After a restart,
even after SIGKILL, it starts from the latest snapshot plus the journal after it, and finds in the journal what it
decided before, so it decides nothing twice.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import PowerModeError, SessionError
from ..follow import JournalWatch
from ..home import active_session, find_power_dir
from ..keys import COORDINATOR, host_name
from ..lease import Lease
from ..mode_selector import REDIS, UPSTASH, select_mode
from ..processes import still_running
from ..projector import apply, live_agents
from ..session import Session, start_session
from .decide import Rules, decide

if TYPE_CHECKING:
    from ..journal import JournalReader, Position
    from ..projector import Rules as FoldRules

log = logging.getLogger(__name__)

#: The longest a wait lasts: silence-based decisions and `coordinator.status` are looked at this often.
POLL_SECONDS = 1.0


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
        self._pidfds: dict[str, tuple[int, int]] = {}  # agent key -> (pid, pidfd)
        self._folded = threading.Condition()
        self.folded_seq = 0  # the journal is folded into the coordinator's state up to here
        self.steps = 0  # rounds of the loop so far: an idle coordinator makes about one per POLL_SECONDS
        self.stop_reason = "stopped"

    def connect(self) -> bool:
        """Select the mode (mode_selector.py: Upstash, Redis or the file journal) and say why (`mode`, `reason`,
        logged). False, with the original's "Upstash connection failed. Check your credentials." and the exact
        failure printed on stderr, when Upstash credentials are set but Upstash does not answer; True otherwise."""
        selected = select_mode(self.environ)
        self.mode, self.reason = selected.kind, selected.reason
        if selected.kind == UPSTASH and not selected.ok:
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
        with Lease(session.dir, stoppable=self._thread is None):
            state, position = session.projection()
            if state["closed"] is not None:
                raise SessionError(f"session {session.id} is closed: a coordinator coordinates an open session")
            session.publish("coordinator.started", {"pid": os.getpid(), "host": host_name()}, sender=COORDINATOR)
            self._watch = JournalWatch(session.journal.directory)
            replication = self._start_replication(session)
            try:
                self._loop(session, state, position)
            finally:
                self._watch.close()
                for _pid, fd in self._pidfds.values():
                    os.close(fd)
                self._pidfds.clear()
                try:  # before the replicator stops, so that it pushes this too (and a closing of the session)
                    session.publish("coordinator.stopped", {"reason": self.stop_reason}, sender=COORDINATOR)
                finally:
                    if replication is not None:
                        replication.stop()
                    session.journal.close()

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

    def _loop(self, session: Session, state: dict[str, Any], position: Position) -> None:
        config = session.config
        # On Upstash another machine's status reaches this one up to an idle poll on each end later
        slack = 2 * config.upstash_idle_poll_seconds + config.heartbeat_seconds if self.mode == UPSTASH else 0.0
        rules, fold_rules = Rules.from_config(config, machine_slack_seconds=slack), session.rules()
        reader = session.journal.reader(position)
        status = {"pid": os.getpid(), "host": host_name()}
        since_snapshot = 0
        self._ready.set()
        while not self._stop.is_set():
            self.steps += 1
            folded, decided = step(session, state, reader, fold_rules, rules, self._check_processes, status)
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
                try:  # kept fresh here, so that no agent's SessionStart folds a long tail
                    session.snapshots.save(state, reader.position)
                except OSError as error:
                    log.warning("snapshot not saved: %s", error)
            assert self._watch is not None
            self._watch.wait(POLL_SECONDS, [fd for _pid, fd in self._pidfds.values()])

    def _check_processes(self, state: dict[str, Any]) -> dict[str, bool | None]:
        """For each live agent whose Claude Code process is on this machine: does it still run? Keeps a pidfd open
        on each running one, so the wait ends the moment it exits."""
        here = host_name()
        running: dict[str, bool | None] = {}
        live = set(live_agents(state))
        for key, (watched, fd) in list(self._pidfds.items()):
            if key not in live or state["agents"][key].get("pid") != watched:  # gone, or joined again as another
                os.close(fd)                                                  # process: a readable stale pidfd
                del self._pidfds[key]                                         # would end every wait at once
        for key in live:
            agent = state["agents"][key]
            pid = agent.get("pid")
            if not isinstance(pid, int) or agent.get("host") != here:
                continue
            verdict = still_running(pid, agent.get("pid_start"))
            running[key] = verdict
            if verdict and key not in self._pidfds and hasattr(os, "pidfd_open"):
                try:
                    self._pidfds[key] = (pid, os.pidfd_open(pid))
                except OSError:
                    pass  # gone in between: the next look sees it
                else:  # the pid cannot be reused while the pidfd is open: check that it is still the agent's
                    running[key] = still_running(pid, agent.get("pid_start"))
        return running


def step(session: Session, state: dict[str, Any], reader: JournalReader, fold_rules: FoldRules, rules: Rules,
         check_processes: Callable[[dict[str, Any]], Mapping[str, bool | None]],
         status: Mapping[str, Any] | None) -> tuple[int, int]:
    """One round of the coordinator: fold what is new, look at the agents' processes, append what `decide` says (each
    batch one atomic append, sent as the coordinator). Returns (events folded, batches appended). The time is
    `time.time()`, read once, here."""
    folded = 0
    for event in reader:
        apply(state, event, fold_rules)
        folded += 1
    batches = decide(state, time.time(), check_processes(state), rules, status, session.origin)
    for batch in batches:
        session.append_events([session.event(kind, data, sender=COORDINATOR) for kind, data in batch])
        log.info("decided: %s", ", ".join(f"{kind} {data.get('agent') or data.get('task') or ''}"
                                           for kind, data in batch))
    return folded, len(batches)
