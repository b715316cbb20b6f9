"""Three machines whose agents act on their own, possibly stale, view of the tasks, with replication steps between
their actions in a random (seeded) order: do all three project the same tasks once everything is replicated?

What holds today, and is checked: claims (with the tasks they need created anywhere) converge to the same owners,
statuses, attempts and finished tasks, whatever the interleaving, because the arbiter decides every claim once.

What does not hold yet, and is kept here as strict xfails so that the fix shows (they fail the run once they pass):
task transitions other than claims (release, assignment, completion) are applied in each journal's own order, which
differs between machines, and the arbiter orders none of them; an agent's `current_task` depends on the order its
tasks reached each journal; and after a Redis restart without persistence a contest can be decided a second time,
differently, on a machine that never pulled the first decision.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from test_replication import facts, join, sync

from popkit_power.replication.errors import TransportError
from popkit_power.replication.memory import MemoryTransport
from popkit_power.replication.replicator import Replicator
from popkit_power.session import Session, start_session

CLAIMS = "claim,create"
EVERYTHING = "claim,create,release,assign,complete"


def three_machines(tmp_path: Path) -> tuple[Session, list[Session], MemoryTransport, list[Replicator],
                                             dict[int, list[str]]]:
    """Three machines of one session over one memory server, two agents each and six open tasks, all synced: the
    session opened on the first, its sessions, the server, their replicators and each machine's agents."""
    a = start_session(str(tmp_path / "m0"), "Convergence", sender="human")
    sessions = [a, join(tmp_path / "m1", a.id), join(tmp_path / "m2", a.id)]
    server = MemoryTransport()
    replicators = [Replicator(session, transport)
                   for session, transport in zip(sessions, [server, server.sibling(), server.sibling()], strict=True)]
    agents = {n: [f"ag{n}{k}:main" for k in range(2)] for n in range(3)}
    for n, session in enumerate(sessions):
        for agent in agents[n]:
            session.publish("agent.joined", {"name": agent}, sender=agent)
    for n in range(6):
        a.publish("task.created", {"task": f"t{n}", "title": f"task {n}"}, sender="human")
    sync(*replicators)
    return a, sessions, server, replicators, agents


def interleaved(tmp_path: Path, seed: int, actions: str, *, restarts: bool = False,
                steps: int = 120) -> list[dict[str, Any]]:
    """Run the seeded interleaving and return each machine's facts (test_replication.facts) once all is synced."""
    rng = random.Random(seed)
    _a, sessions, server, replicators, agents = three_machines(tmp_path)
    allowed = set(actions.split(","))
    for step in range(steps):
        n = rng.randrange(3)
        session, agent, roll = sessions[n], rng.choice(agents[n]), rng.random()
        tasks = session.projection(save_snapshot=False)[0]["tasks"]
        mine = [key for key, task in tasks.items() if task["owner"] == agent]
        if roll < 0.35 and "claim" in allowed:
            free = [key for key, task in tasks.items() if task["status"] in ("open", "orphaned")]
            if free:
                task = rng.choice(free)
                session.publish("task.claimed", {"task": task, "round": tasks[task]["attempts"]}, sender=agent)
        elif roll < 0.45 and "release" in allowed and mine:
            session.publish("task.released", {"task": rng.choice(mine)}, sender=agent)
        elif roll < 0.5 and "assign" in allowed and tasks:
            session.publish("task.assigned", {"task": rng.choice(sorted(tasks)),
                                              "agent": rng.choice(agents[rng.randrange(3)])}, sender="human")
        elif roll < 0.55 and "create" in allowed:
            session.publish("task.created", {"task": f"t{step}x", "title": "more"}, sender="human")
        elif roll < 0.6 and "complete" in allowed and mine:
            session.publish("task.completed", {"task": rng.choice(mine), "ok": True, "result": "done"}, sender=agent)
        elif roll < 0.65 and restarts:
            server._client.flushall()  # a Redis restarted without persistence (fakeredis: the one way to lose all)
        else:
            replicator = rng.choice(replicators)
            try:
                replicator.push_once() if rng.random() < 0.5 else replicator.pull_once()
            except TransportError:
                replicator._resumed = False
    sync(*replicators, rounds=200)
    return [facts(session.projection(save_snapshot=False)[0]) for session in sessions]


def without_current_tasks(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for machine in found:
        machine["agents"] = {key: (status, calls) for key, (status, _current, calls) in machine["agents"].items()}
    return found


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_claims_from_stale_views_converge_to_the_same_tasks_everywhere(seed: int, tmp_path: Path) -> None:
    first, *others = interleaved(tmp_path, seed, CLAIMS)
    assert first["tasks"] or first["finished"], "the run made tasks"
    assert all(machine == first for machine in others)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_every_task_transition_from_stale_views_converges(seed: int, tmp_path: Path) -> None:
    """Releases, assignments and completions too, with the agents' current tasks: the server places every task
    transition in one order, and each machine applies a task's transitions in it (fold/tasks.py)."""
    first, *others = interleaved(tmp_path, seed, EVERYTHING)
    assert first["tasks"] and first["finished"], "the run made and finished tasks"
    assert all(machine == first for machine in others)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="after a restart without persistence, a machine that never pulled a contest's "
                                       "decision can have it decided again, differently")
def test_claims_converge_across_redis_restarts_without_persistence(tmp_path: Path) -> None:
    first, *others = without_current_tasks(interleaved(tmp_path, 6, CLAIMS, restarts=True))
    assert all(machine["tasks"] == first["tasks"] for machine in others)
