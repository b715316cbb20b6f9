"""The Upstash replicator's poll schedule, simulated: what `polling.poll_loop` (popkit_power/replication/
polling.py) sends, and when, for given local events, without a server or a clock. The benchmarks compare what
they measure with it, and it gives the figures at real time (an hour of an hour) that a run can only scale.

The rules, as the loop has them (checked against its code at the commit the figures in tools/BENCHMARKS.md name):

- a round runs when the poll is due or when a local event that is not quiet (anything but `coordinator.status`)
  is appended; appends of quiet events and of pulled events wake the loop too, but such a round sends nothing;
- a round pushes what is pending (one EVALSHA per batch: 1 command) when it polls, or when a pending event is not
  quiet; a round that polls then pulls: XREAD, 1 command, plus SMEMBERS at every MEMBERS_EVERY-th poll;
- "moved" counts the events pushed or pulled that are not quiet; a poll that moved sets the interval to FAST_POLL,
  one that did not doubles it up to
  `upstash_idle_poll_seconds`; a round between polls that moved brings the next poll to at most FAST_POLL away;
- each request takes `rtt` seconds; a poll sees on the server what was pushed before it was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BATCH = 500
MEMBERS_EVERY = 10


@dataclass
class Machine:
    """One replicator: its local events as (time, quiet), and `remote` times at which events of a machine that is
    not simulated are on the server. Filled in by `simulate`: the commands it sent, its polls and pushes, and
    when each `remote` event was pulled (the reply's arrival; None if never within the run)."""

    local: list[tuple[float, bool]] = field(default_factory=list)
    remote: list[float] = field(default_factory=list)
    commands: int = 0
    polls: int = 0
    pushes: int = 0
    pulled_at: list[float | None] = field(default_factory=list)


def simulate(machines: list[Machine], duration: float, fast: float, idle: float, rtt: float) -> list[Machine]:
    """Run every machine's loop from time 0 to `duration`; each sees the others' pushes on the server."""
    count = len(machines)
    for machine in machines:
        machine.local.sort()
        machine.remote.sort()
        machine.pulled_at = [None] * len(machine.remote)
    on_server: list[list[tuple[float, bool]]] = [[] for _ in machines]  # per machine: (landed, quiet) per event
    seen = [[0] * count for _ in machines]  # seen[m][j]: how many of j's pushed events m has pulled
    seen_remote = [0] * count
    pushed = [0] * count
    interval = [fast] * count
    next_poll = [0.0] * count
    next_round = [0.0] * count
    while True:
        m = min(range(count), key=next_round.__getitem__)
        t = next_round[m]
        if t > duration:
            break
        machine = machines[m]
        polling = t >= next_poll[m]
        end = pushed[m]
        while end < len(machine.local) and machine.local[end][0] <= t:
            end += 1
        pending = machine.local[pushed[m]:end]
        moved = 0
        if pending and (polling or not all(quiet for _t, quiet in pending)):
            machine.commands += math.ceil(len(pending) / BATCH)
            machine.pushes += 1
            t += rtt
            on_server[m] += [(t, quiet) for _when, quiet in pending]
            pushed[m] = end
            moved += sum(not quiet for _when, quiet in pending)
        if polling:
            machine.polls += 1
            machine.commands += 1 + (machine.polls % MEMBERS_EVERY == 1)
            sent = t
            t += rtt
            for j in range(count):
                if j != m:
                    while seen[m][j] < len(on_server[j]) and on_server[j][seen[m][j]][0] <= sent:
                        moved += not on_server[j][seen[m][j]][1]
                        seen[m][j] += 1
            while seen_remote[m] < len(machine.remote) and machine.remote[seen_remote[m]] <= sent:
                machine.pulled_at[seen_remote[m]] = t
                seen_remote[m] += 1
                moved += 1
            interval[m] = fast if moved else min(interval[m] * 2, idle)
            next_poll[m] = t + interval[m]
        elif moved:
            next_poll[m] = min(next_poll[m], t + fast)
        wake = next((when for when, quiet in machine.local[pushed[m]:] if not quiet), math.inf)
        next_round[m] = max(t, min(next_poll[m], wake))
    return machines
