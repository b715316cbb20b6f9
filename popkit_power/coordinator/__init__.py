"""The coordinator: one process per power session that notices agents die and hands their work on.

    runner.py    `PowerModeCoordinator`: the original Power Mode's API (connect, start, stop, run; claims and
                 approvals through claims.py and approvals.py) and the loop that follows the journal, keeps the
                 projection current and appends the decisions
    decide.py    what it decides, as a pure function of the state, the agents' processes and the time
    hearing.py   when it last heard each agent and each machine's coordinator, by its own monotonic clock
    liveness.py  which agents' Claude Code processes still run on this machine (pidfds, /proc)
    daemon.py    the coordinator as a daemon of its session: started by `start`, stopped by `stop`
    __main__.py  `python -m popkit_power.coordinator`: the daemon's process, started without the CLI

One coordinator per session is the lease's word (journal/lease.py); it wakes on journal changes through follow.py,
and with replication credentials it runs the session's replicator too (replication/running.py). This `__init__`
imports `PowerModeCoordinator`, so `from popkit_power.coordinator import PowerModeCoordinator` works; the hook never
imports this package.
"""

from __future__ import annotations

from .runner import PowerModeCoordinator

__all__ = ["PowerModeCoordinator"]
