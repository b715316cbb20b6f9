"""A task taken from its holder (issue 16 item 6, issue 21 item 7): when the human releases or reassigns a task, the
agent that held it is told at its next call (and woken if idle), no longer shows on it, and its `done` or `result` is
refused naming the owner, by the CLI, by the library, and by the fold itself, the same on every machine."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal
from test_cli_agents import cli, records, refusal
from test_hook import CLAUDE, HOOK_SCRIPT, payload, tool
from test_task_order_attacks import event, joined, journal, placed, view
from test_wake import WAIT, fake_claude, start_waiter, stop, waiting

from popkit_power.errors import SessionError
from popkit_power.projector import find_task_anywhere, project
from popkit_power.session import Session

HOLDER = f"{CLAUDE}:main"  # the agent of the hook payloads (test_hook.CLAUDE)
OTHER = "beef0000-1111:main"
TASK = "t-parser"
NOTICE = "- [task taken from you by human] "


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session where the holder (the agent of the hook's payloads, joined through a real hook call) holds
    TASK; OTHER is live."""
    created = session
    Path(created.power_dir, "config.json").write_text('{"checkin_every_n_tools": 1}')  # a heartbeat every call
    assert hook(created).returncode == 0
    created.publish("agent.joined", {"name": "other"}, sender=OTHER)
    created.publish("task.created", {"task": TASK, "title": "Write the parser"}, sender="human")
    created.publish("task.claimed", {"task": TASK, "round": 0}, sender=HOLDER)  # its `popkit-power claim`
    assert hook(created).returncode == 0  # it has heard its own claim: the task is its current one
    assert current_task(created, HOLDER) == TASK
    return created


def hook(session: Session, data: dict[str, Any] | None = None) -> subprocess.CompletedProcess[bytes]:
    """The real `popkit-power-hook` process, as Claude Code runs it after a Bash call."""
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_PID": "4242"}
    return subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(data or tool()), env=env, capture_output=True,
                          timeout=60)


def told(completed: subprocess.CompletedProcess[bytes]) -> str:
    assert completed.returncode == 0 and completed.stderr == b"", completed.stderr
    if not completed.stdout:
        return ""
    text: str = orjson.loads(completed.stdout)["hookSpecificOutput"]["additionalContext"]
    return text


def state_of(session: Session) -> dict[str, Any]:
    return session.projection(save_snapshot=False)[0]


def current_task(session: Session, agent: str) -> str | None:
    return state_of(session)["agents"][agent]["current_task"]  # type: ignore[no-any-return]


def take_away(session: Session, how: str) -> None:
    """The human's `release` or `reassign` of TASK, from a terminal."""
    args = ("release", TASK) if how == "release" else ("reassign", TASK, OTHER)
    result = cli(session, *args)
    assert result.exit_code == 0, result.output


# -- the fold ---------------------------------------------------------------------------------------------------------

def test_the_fold_ignores_a_completion_or_release_from_an_agent_that_no_longer_holds_the_task() -> None:
    ann, bob = "ann:main", "bob:main"
    n = iter(range(1, 100))

    def at(kind: str, sender: str, **data: Any) -> dict[str, Any]:
        number = next(n)
        return event("m0", number, kind, sender, number, task="t", **data)

    made = [joined(ann), joined(bob), at("task.created", "human", title="t"), at("task.claimed", ann, round=0)]
    released = project(journal(made, [at("task.released", "human"), at("task.completed", ann, result="x")]))
    assert view(released)["tasks"] == {"t": ("open", None, 1)} and released["finished"] == {}
    given = project(journal(made, [at("task.assigned", "human", agent=bob), at("task.completed", ann, result="x"),
                                   at("task.released", ann)]))
    assert view(given)["tasks"] == {"t": ("assigned", bob, 2)}, "ann's late done and release change nothing"
    assert view(given)["current"] == {ann: None, bob: "t"}
    never_held = project(journal([joined(bob), at("task.created", "human", title="t"),
                                  at("task.completed", bob, result="x")]))
    assert view(never_held)["tasks"] == {"t": ("open", None, 0)}, "an agent claims a task before it finishes it"
    by_human = project(journal(made, [at("task.completed", "human", result="x")]))
    assert view(by_human)["finished"] == {"t": ("completed", ann, "human")}, "the human reports any task's result"
    without_task = project(journal([joined(bob), {**at("task.completed", bob, result="x"), "data": {
        "task": "result-1", "result": "x"}}]))
    assert view(without_task)["finished"] == {"result-1": ("completed", None, bob)}, "a result reported alone"


def test_a_heartbeat_does_not_put_a_released_task_back_as_the_agents_current_one() -> None:
    """The hook's heartbeat names the task the agent thinks it works on; one built before it heard of the release
    must not make the task its current one again (status showed it on the task)."""
    ann = "ann:main"
    made = [joined(ann), event("m0", 1, "task.created", "human", 1, task="t", title="t"),
            event("m0", 2, "task.claimed", ann, 2, task="t", round=0),
            event("m0", 3, "task.released", "human", 3, task="t")]
    beat = {**event("m0", 4, "agent.heartbeat", ann, 4, tool_calls=9, current_task="t"), "ch": "presence"}
    assert view(project(journal(made, [beat])))["current"] == {ann: None}


@pytest.mark.parametrize("first", ["assign", "done"])
def test_a_late_done_after_a_reassign_on_another_machine_is_decided_by_the_servers_order(first: str) -> None:
    """m0's human reassigns t from ann (on m1) to bob while ann reports it done on m1: whichever the server placed
    first wins on both machines, in either arrival order; the other changes nothing."""
    ann, bob = "ann:main", "bob:main"
    setup = [event("m0", 1, "task.created", "human", 1, task="t", title="t"),
             event("m1", 1, "task.claimed", ann, 2, task="t", round=0)]
    assign = event("m0", 2, "task.assigned", "human", 3, task="t", agent=bob)
    done = event("m1", 2, "task.completed", ann, 4, task="t", result="did it", ok=True)
    order = [assign, done] if first == "assign" else [done, assign]
    facts = placed([*setup, *order])
    people = [joined(ann), joined(bob)]
    # a place is pulled only after the event it places (the replicator defers it)
    on_m0 = project(journal(people, setup, [assign], facts[:2], [done], facts[2:], mine="m0"))
    on_m1 = project(journal(people, setup, [done], facts[:2], [assign], facts[2:], mine="m1"))
    assert view(on_m0) == view(on_m1)
    if first == "assign":
        assert view(on_m0)["tasks"] == {"t": ("assigned", bob, 2)} and on_m0["finished"] == {}
        assert view(on_m0)["current"] == {ann: None, bob: "t"}
    else:
        assert view(on_m0)["finished"] == {"t": ("completed", ann, ann)} and on_m0["tasks"] == {}


# -- the CLI and the library ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["release", "reassign"])
@pytest.mark.parametrize("verb", ["done", "result"])
def test_done_or_result_from_the_former_holder_is_refused_naming_the_owner(session: Session, how: str,
                                                                          verb: str) -> None:
    take_away(session, how)
    before = records(session)
    args = ["done", TASK, "--result", "did it"] if verb == "done" else ["result", "did it", "--task", TASK]
    line = refusal(cli(session, *args, "--as", HOLDER))
    if how == "reassign":
        assert f"task {TASK} belongs to other ({OTHER}): only its owner or the human reports its result" in line
    else:
        assert f"task {TASK} is open: nobody holds it; claim it first with: popkit-power claim {TASK}" in line
    assert records(session) == before, "nothing written"
    result = cli(session, "result", "other work", "--as", HOLDER)  # without --task: not the task it lost
    assert result.exit_code == 0 and records(session)[-1]["data"]["task"].startswith("result-")
    assert (find_task_anywhere(state_of(session), TASK) or {}).get("status") in ("open", "assigned")


@pytest.mark.parametrize("how", ["release", "reassign"])
def test_the_library_refuses_the_former_holders_completion_naming_the_owner(session: Session, how: str) -> None:
    take_away(session, how)
    before = records(session)
    with pytest.raises(SessionError) as refused:
        session.complete_task(TASK, "did it", sender=HOLDER)
    owner = "other" if how == "reassign" else "nobody"
    assert f"task {TASK}" in str(refused.value) and owner in str(refused.value)
    assert records(session) == before
    if how == "reassign":
        appended = session.complete_task(TASK, "did it", sender=OTHER)  # the owner's is accepted
        assert appended.first_seq == before[-1]["seq"] + 1
        assert state_of(session)["finished"][TASK]["completed_by"] == OTHER


def test_the_library_learns_from_the_fold_when_a_reassign_came_between_its_look_and_its_append(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check and the append are two steps: a reassign appended between them makes the completion one the fold
    ignores, and the caller is told so, naming the new owner, as a late claimant is."""
    looked = session.projection

    def look_then_reassign(**kwargs: Any) -> Any:
        seen = looked(**kwargs)
        session.publish("task.assigned", {"task": TASK, "agent": OTHER}, sender="human")
        return seen

    monkeypatch.setattr(session, "projection", look_then_reassign)
    with pytest.raises(SessionError) as refused:
        session.complete_task(TASK, "did it", sender=HOLDER)
    assert "other" in str(refused.value) and "was not recorded" in str(refused.value)
    monkeypatch.undo()
    assert state_of(session)["tasks"][TASK]["owner"] == OTHER


# -- the holder is told -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["release", "reassign"])
def test_the_holders_next_hook_call_carries_the_notice_once_and_it_no_longer_shows_on_the_task(
        session: Session, how: str) -> None:
    take_away(session, how)
    text = told(hook(session))
    (line,) = [line for line in text.splitlines() if line.startswith(NOTICE)]
    assert TASK in line and "stop working on it" in line
    assert ("released" in line) if how == "release" else ("reassigned to other" in line)
    assert NOTICE not in told(hook(session)), "told once"
    assert current_task(session, HOLDER) is None, "status no longer shows it on the task"
    beats = [r for r in records(session) if r["type"] == "agent.heartbeat" and r["from"] == HOLDER]
    assert "current_task" not in beats[-1]["data"], "its heartbeats no longer name the task"
    if how == "reassign":
        assert current_task(session, OTHER) == TASK


@pytest.mark.parametrize("how", ["release", "reassign"])
def test_an_idle_holder_is_woken_by_its_waiter(session: Session, how: str,
                                              claude_pids: list[subprocess.Popen[bytes]]) -> None:
    assert hook(session, stop()).returncode == 0  # its turn ended: idle
    waiter = start_waiter(session, fake_claude(claude_pids).pid)
    waiting(session, waiter)
    take_away(session, how)
    _out, err = waiter.communicate(timeout=WAIT)
    assert waiter.returncode == 2, err
    text = err.decode()
    assert text.startswith("Power Mode (popkit-power): news arrived while you were idle:")
    assert text.count(NOTICE) == 1 and TASK in text
    assert NOTICE not in told(hook(session)), "not told again at the next tool call"
    assert hook(session, payload("Stop", stop_hook_active=False)).stdout == b"", "nor when it stops again"


@pytest.mark.parametrize(("verb", "between", "became"), [
    (("release", TASK, "--as", HOLDER), ("task.assigned", {"task": TASK, "agent": OTHER}, "human"),
     f"assigned by other ({OTHER})"),
    (("reassign", TASK, OTHER), ("task.completed", {"task": TASK, "result": "x"}, HOLDER), "completed by "),
])
def test_a_release_or_reassignment_overtaken_between_look_and_append_says_it_counts_for_nothing(
        session: Session, monkeypatch: pytest.MonkeyPatch, verb: tuple[str, ...],
        between: tuple[str, dict[str, Any], str], became: str) -> None:
    """The holder's release after the human gave its task away, the human's reassignment after the holder finished
    it: the command looked before the other change was appended, and the fold ignores its own change; it exits 2
    saying what the task became, as a late claimant learns it lost."""
    looked = Session.projection
    calls = []

    def look_then_change(self: Session, **kwargs: Any) -> Any:
        seen = looked(self, **kwargs)
        if not calls:
            calls.append(1)
            self.publish(between[0], between[1], sender=between[2])
        return seen

    monkeypatch.setattr(Session, "projection", look_then_change)
    line = refusal(cli(session, *verb))
    monkeypatch.undo()
    assert f"task {TASK} was not {'released' if verb[0] == 'release' else 'reassigned'}" in line
    assert became in line and "counts for nothing" in line, line
    task = find_task_anywhere(state_of(session), TASK) or {}
    assert (task["owner"], task["status"]) == ((OTHER, "assigned") if verb[0] == "release" else (HOLDER, "completed"))


@pytest.mark.slow
def test_the_notice_survives_hooks_killed_at_random_moments(session: Session) -> None:
    """Round after round the human takes the holder's task away and the hook that should tell it is SIGKILLed at a
    random moment: the notice of each round is in the output of the killed hook or of a later one (at least once;
    a killed hook that printed nothing never moved the cursor past it), and exactly once when the hook was not
    killed."""
    rng = random.Random(16)
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_PID": "4242"}
    take_away(session, "release")
    assert hook(session).returncode == 0  # the fixture's task: told; from here each round has its own task
    for round_number in range(30):
        task = f"t-round{round_number}"
        session.publish("task.created", {"task": task, "title": "again"}, sender="human")
        session.publish("task.claimed", {"task": task, "round": 0}, sender=HOLDER)
        assert hook(session).returncode == 0  # it hears its own claim
        result = cli(session, "release", task) if round_number % 2 else cli(session, "reassign", task, OTHER)
        assert result.exit_code == 0, result.output
        process = subprocess.Popen([str(HOOK_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(orjson.dumps(tool()))
        process.stdin.close()
        killed = False
        try:
            process.wait(rng.uniform(0.0, 0.06))  # a hook call takes a few tens of ms here: about a third killed
        except subprocess.TimeoutExpired:
            process.kill()
            killed = True
        process.wait()
        heard = process.stdout.read().decode().count(f"{NOTICE}{task} ")
        later = told(hook(session)).count(f"{NOTICE}{task} ")
        if killed:
            assert heard + later >= 1, round_number
        else:
            assert (heard, later) == (1, 0), round_number
        assert current_task(session, HOLDER) is None
