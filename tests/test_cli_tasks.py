"""The task verbs (task add, claim, done, result, release, reassign) through the CLI against real files, and two real
`popkit-power claim` processes racing for one orphaned task."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import support
from click.testing import Result
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal
from test_cli_agents import CLAUDE, HELPER, MAIN, cli, last, records, refusal

from popkit_power.projector import find_task_anywhere
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"
GONE = "dead0000-2222:main"
MAIN_LABEL = f"main-c0ffee ({MAIN})"
HELPER_LABEL = f"Explore-a1b2c3 ({HELPER})"


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session with two live agents of one Claude Code session (main-c0ffee, Explore-a1b2c3) and one the
    coordinator lost."""
    created = session
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=MAIN)
    created.publish("agent.joined", {"name": "Explore-a1b2c3", "agent_type": "Explore"}, sender=HELPER)
    created.publish("agent.joined", {"name": "main-dead00"}, sender=GONE)
    created.publish("agent.lost", {"agent": GONE, "reason": "process 4242 is gone"}, sender="coordinator")
    return created


def task_in(session: Session, state: str, task: str | None = None) -> str:
    """A task `t-<state>` brought into `state` the way agents and the coordinator do it; its id."""
    task = task or f"t-{state}"
    session.publish("task.created", {"task": task, "title": f"the {state} one"}, sender="human")
    steps: dict[str, list[tuple[str, dict[str, Any], str]]] = {
        "open": [],
        "claimed": [("task.claimed", {"task": task}, HELPER)],
        "assigned": [("task.assigned", {"task": task, "agent": HELPER}, "human")],
        "orphaned": [("task.claimed", {"task": task}, GONE), ("task.orphaned", {"task": task, "agent": GONE},
                                                               "coordinator")],
        "completed": [("task.claimed", {"task": task}, HELPER),
                      ("task.completed", {"task": task, "result": "shipped", "ok": True}, HELPER)],
        "failed": [("task.claimed", {"task": task}, HELPER),
                   ("task.completed", {"task": task, "result": "broke", "ok": False}, HELPER)],
        "released": [("task.claimed", {"task": task}, HELPER), ("task.released", {"task": task}, HELPER)],
    }
    for event_type, data, sender in steps[state]:
        session.publish(event_type, data, sender=sender)
    expected = "open" if state == "released" else state
    assert task_state(session, task)["status"] == expected
    return task


def task_state(session: Session, task: str) -> dict[str, Any]:
    state = find_task_anywhere(session.projection()[0], task)  # finished tasks are kept among the recent ones
    assert state is not None
    return state


# -- task add -------------------------------------------------------------------------------------------------------


def test_task_add_prints_only_a_new_short_id(session: Session) -> None:
    result = cli(session, "task", "add", "  Write the parser\n")
    assert result.exit_code == 0, result.output
    task = result.stdout.strip()
    assert re.fullmatch(r"t-[0-9a-f]{6}", task) and result.stdout == f"{task}\n"
    event = last(session)
    evidence = event["data"].pop("evidence")  # every event sent as the human records where it was sent from
    assert (event["type"], event["from"], event["data"]) == ("task.created", "human",
                                                              {"task": task, "title": "Write the parser"})
    assert evidence["pid"] == os.getpid()
    assert task_state(session, task)["status"] == "open"
    assert cli(session, "task", "add", "Write the lexer").stdout.strip() != task


@pytest.mark.parametrize("given", ["Explore-a1b2c3", "EXPLORE", "explore-A1", f"{CLAUDE}:A1B2C3", HELPER])
def test_task_add_to_an_agent_named_in_any_case(session: Session, given: str) -> None:
    result = cli(session, "task", "add", "Write the parser", "--to", given, "--as", MAIN)
    assert result.exit_code == 0, result.output
    task = result.stdout.strip()
    assert last(session)["data"] == {"task": task, "title": "Write the parser", "owner": HELPER}
    assert last(session)["from"] == MAIN
    assert (task_state(session, task)["status"], task_state(session, task)["owner"]) == ("assigned", HELPER)


def test_task_add_refuses_a_blank_title_and_an_agent_that_is_gone_or_unknown(session: Session) -> None:
    session.publish("agent.left", {"reason": "session ended"}, sender=HELPER)
    before = records(session)
    for title in ("", "  ", "\n\t", "\u200b"):
        assert 'the task title is empty; say what is to be done: popkit-power task add "title"' in refusal(
            cli(session, "task", "add", title))
    gone = refusal(cli(session, "task", "add", "Parse", "--to", "explore"))
    assert f"agent {HELPER_LABEL} has left (session ended): it cannot take a task" in gone
    assert f"live agents: {MAIN_LABEL[:-1]}, active)" in gone
    lost = refusal(cli(session, "task", "add", "Parse", "--to", "main-dead"))
    assert "agent main-dead00 (dead0000-2222:main) was lost (process 4242 is gone)" in lost
    assert "'nobody' is not an agent of this session" in refusal(cli(session, "task", "add", "Parse", "--to", "nobody"))
    assert records(session) == before


def test_task_add_draws_again_when_the_id_is_taken(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    import popkit_power.task_changes as tasks_module

    task_in(session, "open", "t-aaaaaa")
    drawn = iter(["t-aaaaaa", "t-bbbbbb"])
    monkeypatch.setattr(tasks_module, "new_task_id", lambda: next(drawn))
    assert cli(session, "task", "add", "Another").stdout.strip() == "t-bbbbbb"
    assert task_state(session, "t-aaaaaa")["title"] == "the open one"


# -- every verb on a task in every state ----------------------------------------------------------------------------

STATES = ("open", "claimed", "assigned", "orphaned", "completed", "failed", "released")
OK = "ok"
HELD_BY_HELPER = f"belongs to {HELPER_LABEL}"
NOBODY = "nobody holds it, so there is nothing to release"
CLAIM_FIRST = "nobody holds it; claim it first with: popkit-power claim"
#: What each verb, sent by each actor, does to a task in each state: OK, or a piece of its one-line refusal.
OUTCOMES: dict[tuple[str, str], tuple[str, ...]] = {
    #                      open    claimed                       assigned                       orphaned
    #                      completed                    failed                    released
    ("claim", MAIN): (OK, f"it is claimed by {HELPER_LABEL} already", f"it is assigned to {HELPER_LABEL} already",
                      OK, "is already completed by", "is already failed by", OK),
    ("done", MAIN): (f"is open: {CLAIM_FIRST}", HELD_BY_HELPER, HELD_BY_HELPER, f"is orphaned: {CLAIM_FIRST}",
                     "is already completed", "is already failed", f"is open: {CLAIM_FIRST}"),
    ("result", MAIN): (f"is open: {CLAIM_FIRST}", HELD_BY_HELPER, HELD_BY_HELPER, f"is orphaned: {CLAIM_FIRST}",
                       "is already completed", "is already failed", f"is open: {CLAIM_FIRST}"),
    ("done", HELPER): (f"is open: {CLAIM_FIRST}", OK, OK, f"is orphaned: {CLAIM_FIRST}", "is already completed",
                       "is already failed", f"is open: {CLAIM_FIRST}"),
    ("done", "human"): (OK, OK, OK, OK, "is already completed", "is already failed", OK),
    ("release", HELPER): (f"is open: {NOBODY}", OK, OK, f"is orphaned: {NOBODY}", "is already completed",
                          "is already failed", f"is open: {NOBODY}"),
    ("release", MAIN): (NOBODY, f"{HELD_BY_HELPER}: only its owner or the human releases it",
                        f"{HELD_BY_HELPER}: only its owner or the human releases it", NOBODY, "is already completed",
                        "is already failed", NOBODY),
    ("release", "human"): (NOBODY, OK, OK, NOBODY, "is already completed", "is already failed", NOBODY),
    ("reassign", "human"): (OK, OK, OK, OK, "is already completed", "is already failed", OK),
}


def verb_args(verb: str, task: str, actor: str) -> list[str]:
    return {
        "claim": ["claim", task, "--as", actor],
        "done": ["done", task, "--result", "did it", "--as", actor],
        "result": ["result", "did it", "--task", task, "--as", actor],
        "release": ["release", task, "--as", actor],
        "reassign": ["reassign", task, "MAIN-C0FFEE"],
    }[verb]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize(("verb", "actor"), list(OUTCOMES))
def test_each_verb_on_a_task_in_each_state(session: Session, verb: str, actor: str, state: str) -> None:
    """A verb that may act writes one event with the expected effect; one that may not is one line naming why and
    the fix, exit 2, and nothing is written."""
    task = task_in(session, state)
    expected = OUTCOMES[(verb, actor)][STATES.index(state)]
    before = records(session)
    result = cli(session, *verb_args(verb, task, actor))
    if expected != OK:
        assert expected in refusal(result)
        assert records(session) == before
        return
    assert result.exit_code == 0, result.output
    assert len(records(session)) == len(before) + 1
    after = task_state(session, task)
    owner_after = {"claim": MAIN, "reassign": MAIN, "release": None}
    status_after = {"claim": "claimed", "reassign": "assigned", "release": "open"}
    if verb in ("done", "result"):
        assert (after["status"], after["result"], after["completed_by"]) == ("completed", "did it", actor)
    else:
        assert (after["status"], after["owner"]) == (status_after[verb], owner_after[verb])


def test_a_task_held_by_an_agent_that_is_gone_takes_only_the_humans_result(session: Session) -> None:
    """The owner was lost and the coordinator has not orphaned its task yet: another agent's result would change
    nothing (the fold counts only the holder's or the human's, the same on every machine), so it is refused with what
    to do; the human's is taken."""
    session.publish("task.created", {"task": "t-9", "title": "parser", "owner": GONE}, sender="human")
    before = records(session)
    line = refusal(cli(session, "done", "t-9", "--result", "finished it", "--as", MAIN))
    assert "belongs to main-dead00 (dead0000-2222:main), who was lost" in line
    assert "offered to the others once the coordinator orphans it" in line and "reassign t-9 AGENT" in line
    assert records(session) == before
    assert cli(session, "done", "t-9", "--result", "finished it").exit_code == 0
    assert task_state(session, "t-9")["status"] == "completed"


def test_a_parked_task_takes_no_agents_result(session: Session) -> None:
    session.publish("task.created", {"task": "t-p", "title": "parser", "owner": GONE}, sender="human")
    session.publish("task.parked", {"task": "t-p", "reason": "lost too often", "agent": GONE}, sender="coordinator")
    line = refusal(cli(session, "done", "t-p", "--result", "finished it", "--as", MAIN))
    assert "is parked: nobody holds it, and it waits for the human, who hands it out with: popkit-power " \
           "reassign t-p AGENT" in line


def test_done_with_failed_and_without_a_result(session: Session) -> None:
    task = task_in(session, "claimed")
    before = records(session)
    for args in ([], ["--result", ""], ["--result", " \n"]):
        line = refusal(cli(session, "done", task, *args, "--as", HELPER))
        assert 'the result is empty; say what was done: popkit-power done TASK --result "what was done"' in line
    assert records(session) == before
    result = cli(session, "done", task, "--failed", "--result", "the API is down", "--as", HELPER)
    assert result.exit_code == 0 and f"result recorded for task {task}: failed" in result.stdout
    assert last(session)["data"] == {"task": task, "result": "the API is down", "ok": False}
    assert task_state(session, task)["status"] == "failed"


def test_claim_of_a_task_already_yours_writes_nothing(session: Session) -> None:
    for state in ("claimed", "assigned"):
        task = task_in(session, state)
        before = records(session)
        result = cli(session, "claim", task, "--as", HELPER)
        assert result.exit_code == 0 and f"task {task} is already yours ({state}); nothing written" in result.stdout
        assert records(session) == before


def test_release_records_the_reason_and_refuses_a_blank_one(session: Session) -> None:
    task = task_in(session, "claimed")
    before = records(session)
    assert "the reason is empty; say why, or leave --reason out" in refusal(
        cli(session, "release", task, "--reason", " ", "--as", HELPER))
    assert records(session) == before
    result = cli(session, "release", task, "--reason", "blocked on the schema", "--as", HELPER)
    assert result.exit_code == 0 and "open for any agent to claim" in result.stdout
    assert (last(session)["type"], last(session)["data"]) == ("task.released", {
        "task": task, "holder": HELPER, "reason": "blocked on the schema"})


@pytest.mark.parametrize("away", ["released", "reassigned"])
def test_a_result_without_a_task_does_not_go_to_a_task_the_sender_gave_up(session: Session, away: str) -> None:
    """A released or reassigned task stays the agent's `current_task` in the projection; a later result without
    --task must not complete it."""
    task = task_in(session, "claimed")
    if away == "released":
        session.publish("task.released", {"task": task}, sender=HELPER)
    else:
        session.publish("task.assigned", {"task": task, "agent": MAIN}, sender="human")
    assert cli(session, "result", "unrelated work", "--as", HELPER).exit_code == 0
    assert last(session)["data"]["task"].startswith("result-")
    assert task_state(session, task)["status"] != "completed"


# -- naming a task --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["claim", "done", "result", "release", "reassign"])
def test_a_task_that_does_not_exist_is_refused_naming_the_open_tasks(session: Session, verb: str) -> None:
    """Claiming, reporting or releasing a task nobody created used to create it (the fold makes a task of any id it
    hears of); now it is refused, naming the open tasks, and nothing is written."""
    before = records(session)
    line = refusal(cli(session, *verb_args(verb, "t-nope", MAIN)))
    assert "no task 't-nope' in this session; no open tasks; add one with: popkit-power task add \"title\"" in line
    orphaned, claimed = task_in(session, "orphaned"), task_in(session, "claimed")
    task_in(session, "completed")
    before = records(session)
    line = refusal(cli(session, *verb_args(verb, "t-nope", MAIN)))
    assert (f"no task 't-nope' in this session; open tasks: {orphaned} 'the orphaned one' (orphaned), {claimed} "
            f"'the claimed one' (claimed by {HELPER_LABEL})") in line
    assert "t-completed" not in line
    assert records(session) == before


def test_a_task_is_named_by_a_unique_start_in_any_case_and_a_whole_id_wins(session: Session) -> None:
    for task in ("t-1", "t-1a", "t-1b", "Ab-2", "aB-2"):
        task_in(session, "open", task)
    before = records(session)
    several = refusal(cli(session, "claim", "t-", "--as", MAIN))
    assert "'t-' matches several tasks: t-1 'the open one' (open), t-1a" in several and "type more of the id" in several
    assert "'ab-2' matches several tasks: Ab-2" in refusal(cli(session, "claim", "ab-2", "--as", MAIN))
    assert records(session) == before
    for given, task in (("t-1", "t-1"), ("T-1A", "t-1a"), ("t-1B", "t-1b"), ("aB-2", "aB-2")):
        result = cli(session, "claim", given, "--as", MAIN)
        assert result.exit_code == 0 and f"task {task} is yours" in result.stdout, result.output
        assert last(session)["data"] == {"task": task, "round": 0}  # the round: how many owners it had


@pytest.mark.parametrize("given", ["t-open\nt-claimed", "t" + "x" * 1_000_000, "../t-open", "../../etc/passwd",
                                   "t-open/..", "t-open\x00", "\u200bt-open"])
@pytest.mark.parametrize("verb", ["claim", "done", "result", "release", "reassign"])
def test_hostile_task_ids_are_one_short_line_and_write_nothing(session: Session, verb: str, given: str) -> None:
    task_in(session, "open")
    task_in(session, "claimed")
    before = records(session)
    line = refusal(cli(session, *verb_args(verb, given, MAIN)))
    assert line.startswith("popkit-power: no task ") and len(line) < 1000
    assert records(session) == before


@pytest.mark.parametrize("given", ["", " ", "\t\n"])
@pytest.mark.parametrize("verb", ["claim", "done", "result", "release", "reassign"])
def test_an_empty_task_id_is_refused_even_with_one_task(session: Session, verb: str, given: str) -> None:
    """An empty id is a start of every id: with one task it would name that one."""
    task_in(session, "open")
    before = records(session)
    assert "a task id is needed (the id, or a unique start of it)" in refusal(cli(session, *verb_args(verb, given,
                                                                                                       MAIN)))
    assert records(session) == before


def test_hostile_ids_of_existing_tasks_are_listed_on_one_line(session: Session) -> None:
    """Tasks made by anyone who can append (publish, another machine) may have any id and title: a refusal that
    lists them stays one short line, and the verbs still reach them by a start of their id."""
    session.publish("task.created", {"task": "evil\nid", "title": "line one\nline two"}, sender="human")
    session.publish("task.created", {"task": "y" * 5000, "title": "long"}, sender="human")
    for number in range(30):
        session.publish("task.created", {"task": f"t-many-{number}", "title": "many"}, sender="human")
    line = refusal(cli(session, "claim", "nope", "--as", MAIN))
    assert "'evil\\nid' 'line one\\nline two' (open)" in line and "and 22 more" in line and len(line) < 2000
    result = cli(session, "claim", "EVIL", "--as", MAIN)
    assert result.exit_code == 0 and result.stdout == "task 'evil\\nid' is yours (seq 39)\n"
    assert last(session)["data"] == {"task": "evil\nid", "round": 0}


# -- the first claim in the journal wins ----------------------------------------------------------------------------


def test_claim_first_one_wins_and_the_later_claimant_is_told_the_winner(session: Session) -> None:
    task = task_in(session, "orphaned")
    assert cli(session, "claim", task, "--as", HELPER).stdout.startswith(f"task {task} is yours")
    before = records(session)
    line = refusal(cli(session, "claim", task, "--as", MAIN))
    assert f"task {task} was not claimed: it is claimed by {HELPER_LABEL} already" in line
    assert records(session) == before


def test_a_claim_that_lands_second_loses_and_names_the_winner(session: Session,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Both saw the task orphaned; the other claim reached the journal first: ours is written, changes nothing, and
    the command exits 2 naming the winner."""
    task = task_in(session, "orphaned")
    publish = Session.publish

    def other_claim_first(self: Session, event_type: str, data: dict[str, Any], **kwargs: Any) -> Any:
        if event_type == "task.claimed" and kwargs["sender"] == MAIN:
            publish(self, "task.claimed", {"task": task}, sender=HELPER)
        return publish(self, event_type, data, **kwargs)

    monkeypatch.setattr(Session, "publish", other_claim_first)
    line = refusal(cli(session, "claim", task, "--as", MAIN))
    assert f"task {task} was not claimed: {HELPER_LABEL} claimed it first" in line
    claims = [record["from"] for record in records(session) if record["type"] == "task.claimed"]
    assert claims[-2:] == [HELPER, MAIN]
    assert task_state(session, task)["owner"] == HELPER


def test_the_winner_is_decided_as_of_its_own_claim(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """What is appended after the claim (here the human hands the task on at once) does not turn a win into a loss."""
    task = task_in(session, "orphaned")
    publish = Session.publish

    def then_reassigned(self: Session, event_type: str, data: dict[str, Any], **kwargs: Any) -> Any:
        appended = publish(self, event_type, data, **kwargs)
        if event_type == "task.claimed":
            publish(self, "task.assigned", {"task": task, "agent": HELPER}, sender="human")
        return appended

    monkeypatch.setattr(Session, "publish", then_reassigned)
    result = cli(session, "claim", task, "--as", MAIN)
    assert result.exit_code == 0 and f"task {task} is yours" in result.stdout, result.output
    assert task_state(session, task)["owner"] == HELPER


#: Loaded by the claim processes of the race below (through PYTHONPATH): each waits, after it has read the task as
#: orphaned and before it appends its claim, until every racer has come that far, so both claims reach the journal.
RACE_BARRIER = support.race_barrier("task.claimed", "CLAIM_BARRIER")


@pytest.mark.slow
@pytest.mark.parametrize("meeting", ["after reading the task", "as they come"])
def test_two_claim_processes_at_once_exactly_one_wins_and_both_are_told(session: Session, tmp_path: Path,
                                                                        meeting: str) -> None:
    """Two real `popkit-power claim` processes for one orphaned task, started together: exactly one wins, the other
    exits 2 naming it, and the journal agrees. Met "after reading the task", both have seen it orphaned, so both
    claims are written and the journal's order decides; "as they come", the later one may see the winner first."""
    env = {"PATH": os.environ.get("PATH", ""), "POPKIT_POWER_HOME": session.power_dir}
    if meeting == "after reading the task":
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(RACE_BARRIER)
        env["PYTHONPATH"] = str(tmp_path / "site")
    for round_number in range(3):
        task = task_in(session, "orphaned", f"t-race-{round_number}")
        barrier = tmp_path / f"barrier-{round_number}"
        barrier.mkdir()
        racers = {agent: subprocess.Popen([str(SCRIPT), "claim", task, "--as", agent],
                                          env={**env, "CLAIM_BARRIER": str(barrier)}, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
                  for agent in (MAIN, HELPER)}
        outcomes = {agent: (racer.wait(timeout=60), *racer.communicate()) for agent, racer in racers.items()}
        winners = [agent for agent, (code, _out, _err) in outcomes.items() if code == 0]
        assert len(winners) == 1, outcomes
        winner = winners[0]
        loser = HELPER if winner == MAIN else MAIN
        code, out, err = outcomes[loser]
        assert code == 2 and out == "" and err.count("\n") == 1, outcomes
        assert f"task {task} was not claimed: " in err and (MAIN_LABEL if winner == MAIN else HELPER_LABEL) in err
        assert outcomes[winner][1].startswith(f"task {task} is yours (seq ")
        claims = [record["from"] for record in records(session)
                  if record["type"] == "task.claimed" and record["data"]["task"] == task and record["from"] != GONE]
        assert claims[0] == winner and task_state(session, task)["owner"] == winner
        if meeting == "after reading the task":
            assert claims == [winner, loser] and "claimed it first" in err


# -- reassign: the human's override ---------------------------------------------------------------------------------


def test_reassign_takes_a_task_from_an_agent_that_died(session: Session) -> None:
    """The issue's case: an agent that claimed a task is killed and nothing has noticed; `claim` is refused, and the
    human takes the task back and gives it to a live agent, by any case and a unique start of its name."""
    session.publish("task.created", {"task": "t-5", "title": "parser"}, sender="human")
    session.publish("task.claimed", {"task": "t-5"}, sender=GONE)
    line = refusal(cli(session, "claim", "t-5", "--as", MAIN))
    assert "it is claimed by main-dead00 (dead0000-2222:main), who was lost (process 4242 is gone); it is offered " \
           "to the others once the coordinator orphans it, or the human hands it over with: popkit-power reassign " \
           "t-5 AGENT" in line
    assert "popkit-power send" not in line, "a message to an agent that is gone is refused: it is not the fix"
    result = cli(session, "reassign", "T-5", "EXPLORE")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"task t-5 reassigned to {HELPER_LABEL} (from main-dead00 (dead0000-2222:main);")
    event = last(session)
    assert (event["type"], event["from"], event["data"]["task"], event["data"]["agent"]) == (
        "task.assigned", "human", "t-5", HELPER)
    assert set(event["data"]["evidence"]) >= {"pid", "ppid", "tty", "ancestors", "claude_session"}
    assert (task_state(session, "t-5")["owner"], task_state(session, "t-5")["status"]) == (HELPER, "assigned")


def test_reassign_refuses_an_agent_that_is_gone_and_writes_nothing_for_the_owner(session: Session) -> None:
    task = task_in(session, "claimed")
    before = records(session)
    line = refusal(cli(session, "reassign", task, "main-dead00"))
    assert "agent main-dead00 (dead0000-2222:main) was lost (process 4242 is gone): it cannot take the task" in line
    assert f"live agents: {MAIN_LABEL[:-1]}, active), {HELPER_LABEL[:-1]}, active)" in line
    result = cli(session, "reassign", task, "explore")
    assert result.exit_code == 0 and f"is already {HELPER_LABEL}'s (claimed); nothing written" in result.stdout
    assert records(session) == before
    assert "No such option '--as'" in cli(session, "reassign", task, "main", "--as", "human").stderr


INSIDE_MARKERS = [{"CLAUDE_CODE_SESSION_ID": CLAUDE}, {"CLAUDECODE": "1"}, {"CLAUDE_PID": "4242"}]


@pytest.mark.parametrize("marker", INSIDE_MARKERS)
def test_reassign_is_refused_inside_an_agents_session(session: Session, marker: dict[str, str]) -> None:
    """Reassigning overrides whoever holds a task, around "the first claim wins": it is the human's, so inside an
    agent's session it is refused, naming how the human does it and what an agent does instead."""
    task = task_in(session, "claimed")
    before = records(session)
    line = refusal(cli(session, "reassign", task, "main", env=marker))
    assert f"only the human reassigns a task, and this command runs inside an agent's session ({next(iter(marker))} " \
           f"is set in the environment)" in line
    assert "from a terminal outside Claude Code with: popkit-power reassign TASK AGENT" in line
    assert "an agent takes an open or orphaned task with: popkit-power claim TASK" in line
    published = cli(session, "publish", "coordinator", f'{{"task": "{task}", "agent": "{MAIN}"}}', "--type",
                    "task.assigned", env=marker)
    assert "only the human reassigns a task" in refusal(published)
    assert records(session) == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a /proc process table (Linux)")
def test_reassign_from_below_a_claude_process_is_refused(session: Session, tmp_path: Path) -> None:
    task = task_in(session, "claimed")
    before = records(session)
    claude = support.claude_parent(tmp_path, SCRIPT)
    env = {"PATH": os.environ.get("PATH", ""), "POPKIT_POWER_HOME": session.power_dir}
    done = subprocess.run([str(claude), "reassign", task, "main"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "only the human reassigns a task" in done.stderr and "is Claude Code" in done.stderr
    assert records(session) == before


def test_agents_still_create_claim_report_and_release_from_their_session(session: Session) -> None:
    """Only reassigning is the human's: an agent adds a task for another, claims, reports and releases as itself."""
    inside = {"CLAUDE_CODE_SESSION_ID": CLAUDE}
    added: Result = cli(session, "task", "add", "Split the parser", "--to", "explore", env=inside)
    assert added.exit_code == 0 and last(session)["from"] == MAIN
    other = cli(session, "task", "add", "Write docs", env=inside).stdout.strip()
    assert cli(session, "claim", other, env=inside).exit_code == 0
    assert cli(session, "release", other, env=inside).exit_code == 0
    assert cli(session, "claim", other, env=inside).exit_code == 0
    assert cli(session, "done", other, "--result", "docs written", env=inside).exit_code == 0
    assert task_state(session, other)["completed_by"] == MAIN
