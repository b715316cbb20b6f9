"""The coordinator: one process per power session that notices agents die and hands their work on.

    runner.py   PowerModeCoordinator: the original Power Mode's API (connect, start, stop, run) and the loop
    decide.py   what it decides, as a pure function of the state, the agents' processes and the time
    lease.py    one coordinator per session, and who holds it
"""

from __future__ import annotations

from .runner import PowerModeCoordinator

__all__ = ["PowerModeCoordinator"]
