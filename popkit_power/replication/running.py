"""Starting and stopping a session's replicator: with the coordinator (when credentials exist) or alone
(`popkit-power replicate`), and pushing a session to its end once (`stop`, `replicate --once`). One replicator per
session: its lease (`replicator.lock`) refuses a second, naming the first."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import CoordinatorRunningError, PowerModeError
from ..journal.lease import Lease, holder
from ..keys import REPLICATOR_LEASE
from ..session import Session
from .errors import ReplicationError
from .mode_selector import FILE, open_transport, select_mode
from .replicator import Replicator
from .status_file import read_status


class RunningReplication:
    """A started replicator with its lease and transport; `stop` ends all three."""

    def __init__(self, replicator: Replicator, lease: Lease) -> None:
        self.replicator = replicator
        self.lease = lease

    def stop(self) -> None:
        try:
            self.replicator.stop()
        finally:
            self.replicator.transport.close()
            self.lease.release()


def start_replication(session: Session, environ: Mapping[str, str], *, stoppable: bool = False) -> RunningReplication:
    """Select the mode from `environ`, take the replicator's lease, and replicate in background threads. Raises
    ReplicationError when no server is configured or it does not answer, CoordinatorRunningError (naming the
    holder) when another replicator runs for the session."""
    mode = select_mode(environ)
    if mode.kind == FILE or not mode.ok:
        raise ReplicationError(f"nothing to replicate to: {mode.reason}")
    lease = Lease(session.dir, name=REPLICATOR_LEASE, stoppable=stoppable)
    lease.acquire()
    try:
        transport = open_transport(mode.kind, environ)
        assert transport is not None
        replicator = Replicator(session, transport)
        replicator.start()
    except BaseException:
        lease.release()
        raise
    return RunningReplication(replicator, lease)


@dataclass
class Pushed:
    """Whether a push to the journal's end got there (`ok`), to which server (`where`), and else why not."""

    ok: bool
    where: str
    problem: str | None = None


def push_to_end(session: Session, environ: Mapping[str, str], timeout: float) -> Pushed | None:
    """Make sure the server holds every event of `session` this machine wrote (as `stop` does for a session's end),
    waiting at most about `timeout` seconds: the replicator that ran says so in `replication.json` (no command
    sent), else this process pushes, with the replicator's lease (or waits for the replicator that holds it). None
    when the session is not replicated: file mode, and no replicator ever ran for it."""
    end = session.journal.end_position().seq - 1
    report = read_status(session.dir)
    where = str((report or {}).get("transport") or "the server")
    if report is not None and _pushed_through(report) >= end:
        return Pushed(True, where)  # known from the report: no PING (a billed command on Upstash)
    mode = select_mode(environ)
    if mode.kind == FILE and report is None:
        return None
    if mode.kind == FILE or not mode.ok:
        return Pushed(False, where, mode.reason)
    deadline = time.monotonic() + timeout
    lease = Lease(session.dir, name=REPLICATOR_LEASE)
    try:
        lease.acquire()
    except CoordinatorRunningError:  # a replicator runs (`popkit-power replicate`): it pushes, this waits for it
        while time.monotonic() < deadline:
            report = read_status(session.dir)
            if _pushed_through(report) >= end:
                return Pushed(True, str((report or {}).get("transport") or where))
            time.sleep(0.1)
        found = holder(session.dir, REPLICATOR_LEASE) or {}
        return Pushed(False, where, f"the replicator running for it (pid {found.get('pid')}) has not pushed it "
                                    f"within {timeout:g} s; last error: {(report or {}).get('last_error')}")
    try:
        transport = open_transport(mode.kind, environ)
        assert transport is not None
        try:
            replicator = Replicator(session, transport)
            ok = replicator.push_all(max(0.0, deadline - time.monotonic()))
            return Pushed(ok, transport.describe(), None if ok else replicator.stats["last_error"]
                          or f"not done within {timeout:g} s")
        finally:
            transport.close()
    except PowerModeError as error:
        return Pushed(False, where, str(error))
    finally:
        lease.release()


def _pushed_through(report: dict[str, object] | None) -> int:
    pushed = (report or {}).get("pushed_through")
    return pushed if isinstance(pushed, int) else -1
