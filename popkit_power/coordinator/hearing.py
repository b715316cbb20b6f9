"""When this coordinator last heard each agent and each machine's coordinator, by its own monotonic clock.

The events' timestamps come from the clocks of the machines that wrote them, and a clock can be stepped (by NTP, by
hand, by a suspended laptop) minutes either way: judged by those stamps, a machine whose clock stepped back stopped
saying it was alive, and another machine's forward step made every agent look silent at once. So silence is
measured here, and only here: each round, a word is new when the fold's `last_seen` (or, for a machine, its `heard`)
of an agent or coordinator differs from the one this coordinator saw before, whatever its value, and it was heard at
that moment of `time.monotonic()`, which no clock step moves. An agent or machine first met (also every one, after a
restart) is heard when it is met: a restarted coordinator gives each silent one its full limit again rather than
trusting stamps it cannot judge.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..keys import COORDINATOR
from ..projector import State, live_agents
from .decide import Silences

if TYPE_CHECKING:
    from ..shapes.state import Coordinator


class Hearing:
    """The moments (monotonic seconds) this coordinator heard each live agent and each machine's coordinator."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._agents: dict[str, tuple[Any, float]] = {}  # key -> (the word last seen, when it was heard)
        self._machines: dict[str, tuple[Any, float]] = {}  # origin (or "" without replication) -> the same

    def silences(self, state: State, origin: str | None) -> Silences:
        """Note what is new in `state` as heard now, and return how long each one has been silent."""
        now = self._monotonic()
        agents = {key: now - _heard(self._agents, key, state["agents"][key].get("last_seen"), now)
                  for key in live_agents(state)}
        for key in [key for key in self._agents if key not in agents]:
            del self._agents[key]  # no longer live: state depends on live agents, not on history
        machines = {where: now - _heard(self._machines, where, _word(machine), now)
                    for where, machine in state["coordinators"].items()}
        coordinator = state["coordinator"] if origin is None else state["coordinators"].get(origin, {})
        own: float | None = None
        if coordinator.get("by") == COORDINATOR:
            own = machines.get(origin) if origin is not None else (
                now - _heard(self._machines, "", _word(coordinator), now))
        return Silences(agents, machines, own, "monotonic")


def _word(coordinator: Coordinator) -> Any:
    return coordinator.get("last_seen"), coordinator.get("heard"), coordinator.get("status")


def _heard(seen: dict[str, tuple[Any, float]], key: str, word: Any, now: float) -> float:
    """When `key` was last heard: now if its word changed (or it is new), else when it changed before."""
    before = seen.get(key)
    if before is not None and before[0] == word:
        return before[1]
    seen[key] = (word, now)
    return now
