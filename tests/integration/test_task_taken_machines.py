"""A task taken from its holder across two machines (issue 16 item 6, issue 21 item 7), through one real Redis with a
real `popkit-power replicate` process per machine: the human on machine A reassigns a task that an agent on machine B
holds, while B's replicator is stopped (SIGSTOP), so B's agent reports it done on a stale view. The server places
the reassignment first: the `done` command learns so once its result is placed and exits 2 naming the new holder,
both machines fold the result to nothing, and the former holder is told at its next tool call."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import two_machines_of_one_session, until
from test_convergence import three_machines
from test_machines import hook_call, work
from test_replication import facts, sync

from popkit_power.replication.errors import TransportError
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"
ANN, BOB = "aaaa0000:main", "bbbb0000:main"
WAIT = 30  # seconds a condition may take on a busy machine (a deadline, never a measured speed)


def outside_claude(redis_url: str) -> dict[str, str]:
    """The environment of a person's terminal (no Claude Code variables), with the Redis URL."""
    return {**{key: value for key, value in os.environ.items() if not key.startswith("CLAUDE")},
            "REDIS_URL": redis_url}


@pytest.fixture
def machines(tmp_path: Path, redis_url: str) -> Iterator[dict[str, Any]]:
    homes, a, b = two_machines_of_one_session(tmp_path, "Two machines", '{"replication_timeout_seconds": 60}')
    env = outside_claude(redis_url)
    replicators = [subprocess.Popen([str(SCRIPT), "--home", home, "replicate"], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL) for home in homes]
    try:
        yield {"homes": homes, "sessions": (a, b), "replicators": replicators, "env": env}
    finally:
        for process in replicators:
            process.send_signal(signal.SIGCONT)
            process.terminate()
            process.wait(WAIT)


def owner_on(session: Session, task: str) -> Any:
    state = session.projection(save_snapshot=False)[0]
    return (state["tasks"].get(task) or state["finished"].get(task) or {}).get("owner")


@pytest.mark.slow
def test_a_late_done_after_a_reassign_on_another_machine_is_refused_and_folded_to_nothing(
        machines: dict[str, Any]) -> None:
    home_a, home_b = machines["homes"]
    a, b = machines["sessions"]
    env = machines["env"]
    work(home_b, ANN.split(":")[0])  # ann works on machine B, bob on machine A
    work(home_a, BOB.split(":")[0])
    a.publish("task.created", {"task": "t1", "title": "the lexer"}, sender="human")
    until(lambda: "t1" in b.projection(save_snapshot=False)[0]["tasks"], WAIT, "machine B hears of t1")
    claimed = subprocess.run([str(SCRIPT), "--home", home_b, "claim", "t1", "--as", ANN], env=env,
                             capture_output=True, text=True, timeout=120)
    assert claimed.returncode == 0, claimed.stderr
    work(home_b, ANN.split(":")[0])  # ann hears its own claim: t1 is the task it works on
    until(lambda: owner_on(a, "t1") == ANN and BOB in b.projection(save_snapshot=False)[0]["agents"], WAIT,
          "machine A sees ann hold t1, machine B knows bob")

    replicator_b = machines["replicators"][1]
    replicator_b.send_signal(signal.SIGSTOP)  # machine B hears nothing more for now
    reassigned = subprocess.run([str(SCRIPT), "--home", home_a, "reassign", "t1", BOB], env=env,
                                capture_output=True, text=True, timeout=120)
    assert reassigned.returncode == 0, reassigned.stderr
    until(lambda: any(e["type"] == "arbiter.ordered" and e["data"].get("type") == "task.assigned"
                      for e in a.journal.reader()), WAIT, "the server placed the reassignment")

    done = subprocess.Popen([str(SCRIPT), "--home", home_b, "done", "t1", "--result", "lexed", "--as", ANN], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    until(lambda: any(e["type"] == "task.completed" for e in b.journal.reader()), WAIT,
          "ann's result is in machine B's journal (its view still says t1 is ann's)")
    replicator_b.send_signal(signal.SIGCONT)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 2, (out, err)
    assert "t1 was not recorded as done" in err and BOB in err and "counts for nothing" in err, err

    for session in (a, b):
        until(lambda session=session: owner_on(session, "t1") == BOB, WAIT, "both machines give t1 to bob")
        state = session.projection(save_snapshot=False)[0]
        assert state["tasks"]["t1"]["status"] == "assigned" and "t1" not in state["finished"]
        assert state["agents"][ANN]["current_task"] is None and state["agents"][BOB]["current_task"] == "t1"
    notice = work(home_b, ANN.split(":")[0])
    assert "- [task taken from you by human] t1 was reassigned to" in notice and "stop working on it" in notice
    assert "task taken from you" not in work(home_b, ANN.split(":")[0]), "told once"
    assert hook_call(home_a, "PostToolUse", BOB.split(":")[0], {}, tool_name="Bash", tool_input={"command": "ls"},
                     tool_response={}).count("[task assigned to you by human] t1") == 1


# -- an attack: late and hostile results and releases from every machine's stale view -------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_results_and_releases_from_agents_that_do_not_hold_the_task_converge_to_nothing(seed: int,
                                                                                        tmp_path: Path) -> None:
    """Three machines (the real Replicator over an in-memory server); agents report results and give tasks back for
    any task of their stale view, held or not, while the human reassigns and releases: every machine ends with the
    same tasks, owners, finished tasks and current tasks, and every finished task was finished by its holder or by
    the human."""
    rng = random.Random(seed)
    _a, sessions, _server, replicators, agents = three_machines(tmp_path)
    for _step in range(150):
        n = rng.randrange(3)
        session, agent, roll = sessions[n], rng.choice(agents[n]), rng.random()
        tasks = session.projection(save_snapshot=False)[0]["tasks"]
        if not tasks:
            break
        task = rng.choice(sorted(tasks))
        if roll < 0.3 and tasks[task]["status"] in ("open", "orphaned"):
            session.publish("task.claimed", {"task": task, "round": tasks[task]["attempts"]}, sender=agent)
        elif roll < 0.4:
            session.publish("task.completed", {"task": task, "ok": True, "result": "done"}, sender=agent)
        elif roll < 0.45:
            session.publish("task.released", {"task": task}, sender=agent)
        elif roll < 0.55:
            session.publish("task.assigned", {"task": task, "agent": rng.choice(agents[rng.randrange(3)])},
                            sender="human")
        elif roll < 0.6:
            session.publish("task.released", {"task": task}, sender="human")
        else:
            replicator = rng.choice(replicators)
            try:
                replicator.push_once() if rng.random() < 0.5 else replicator.pull_once()
            except TransportError:
                replicator._resumed = False
    sync(*replicators, rounds=200)
    states = [session.projection(save_snapshot=False)[0] for session in sessions]
    first, *others = [facts(state) for state in states]
    assert all(machine == first for machine in others)
    assert first["finished"], "the run finished tasks"
    for task_id, task in states[0]["finished"].items():
        assert task["completed_by"] in ("human", task["owner"]), (task_id, task)
