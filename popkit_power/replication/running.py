"""Starting and stopping a session's replicator: with the coordinator (when credentials exist) or alone
(`popkit-power replicate`). One replicator per session: its lease (`replicator.lock`) refuses a second, naming the
first."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ReplicationError
from ..lease import Lease
from ..mode_selector import FILE, open_transport, select_mode
from ..session import Session
from .replicator import Replicator

REPLICATOR = "replicator"


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
    lease = Lease(session.dir, name=REPLICATOR, stoppable=stoppable)
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
