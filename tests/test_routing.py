"""Who hears what: insights routed by tag overlap with an agent's files and task, orphaned work offered only to
agents that work (a person's own session looking on is not one), the hand-over an orphaned task carries, and the
live state that keeps only open work."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from support import Timeline

from popkit_power.coordinator.decide import Rules as DecideRules
from popkit_power.coordinator.decide import decide
from popkit_power.fold.model import MAX_FINISHED_KEPT
from popkit_power.hook import entry as hook
from popkit_power.projector import project, watching
from popkit_power.session import Session
from popkit_power.status import session_status
from popkit_power.timestamps import seconds_of
from popkit_power.tool_calls import runs_only_popkit_power

WORKER = "c0ffee00-1111-2222-3333-444455556666"
OTHER = "beef0000-1111-2222-3333-444455556666"
PERSON = "facade00-1111-2222-3333-444455556666"



def hook_call(session: Session, claude: str, tool_name: str = "Bash", **tool_input: Any) -> str:
    """The additionalContext the hook answers a PostToolUse with ('' for no answer)."""
    payload = {"session_id": claude, "transcript_path": "/t.jsonl", "cwd": "/repo", "hook_event_name": "PostToolUse",
               "tool_name": tool_name, "tool_input": tool_input or {"command": "ls"}, "tool_response": {}}
    reply = hook.run(io.BytesIO(orjson.dumps(payload)), session.power_dir, {"CLAUDE_PID": "4242"})
    return str(orjson.loads(reply)["hookSpecificOutput"]["additionalContext"]) if reply else ""


def _now(timeline: Timeline) -> float:
    now = seconds_of(timeline.events[-1]["ts"])
    assert now is not None
    return now


@pytest.mark.parametrize(("command", "only_power"), [
    ("popkit-power status", True),
    ("  popkit-power   send main 'hi there'", True),
    ("POPKIT_POWER_HOME=/x popkit-power status --json", True),
    ("/home/me/.venv/bin/popkit-power approve abc", True),
    ("python -m popkit_power status", True),
    ("python3.11 -m popkit_power.cli status", True),
    ("popkit-power status && rm -rf build", False),
    ("popkit-power status; make", False),
    ("popkit-power status | head", False),
    ("echo $(popkit-power status)", False),
    ("popkit-power status > out.txt", False),
    ("make test", False),
    ("python -m pytest", False),
    ("popkit-powerful", False),
    ("", False),
    ("A=1", False),
    (None, False),
])
def test_which_commands_only_run_popkit_power(command: Any, only_power: bool) -> None:
    assert runs_only_popkit_power(command) is only_power


def test_a_person_s_own_session_that_only_runs_popkit_power_is_watching(session: Session) -> None:
    """The session that ran `/popkit:power status` is shown as watching, not working (the coordinator gives it no
    work); it still hears an orphaned task offered, as every agent does (an agent whose first calls only ran
    popkit-power may be about to work: news skipped would be lost to it); once it does work it is working."""
    hook_call(session, WORKER, "Edit", file_path="/repo/src/parser.py", old_string="a", new_string="b")
    hook_call(session, PERSON, command="popkit-power status")
    session.publish("task.created", {"task": "t1", "title": "the lexer"}, sender="human")
    session.publish("task.orphaned", {"task": "t1", "agent": "gone:main", "context": {"title": "the lexer"}},
                    sender="coordinator")
    assert "[orphaned task] t1" in hook_call(session, PERSON, command="popkit-power status --json")
    assert "[orphaned task] t1" in hook_call(session, WORKER, command="ls")
    state, position = session.projection()
    person, worker = state["agents"][f"{PERSON}:main"], state["agents"][f"{WORKER}:main"]
    assert (person["tool_calls"], person["work_calls"], watching(person)) == (2, 0, True)
    assert (worker["work_calls"], watching(worker)) == (2, False)
    agents = session_status(session, state, position)["agents"]
    assert (agents[f"{PERSON}:main"]["state"], agents[f"{WORKER}:main"]["state"]) == ("watching", "active")
    assert [event["data"].get("power") for event in session.journal.reader()
            if event["type"] == "agent.tool" and event["from"] == f"{PERSON}:main"] == [True, True]
    hook_call(session, PERSON, "Read", file_path="/repo/README.md")
    state, position = session.projection()
    assert not watching(state["agents"][f"{PERSON}:main"])
    assert session_status(session, state, position)["agents"][f"{PERSON}:main"]["state"] == "active"


def test_auto_reassignment_never_hands_work_to_an_agent_that_only_watches() -> None:
    timeline = Timeline()
    timeline.add("agent.joined", "person:main", name="person")
    timeline.add("agent.tool", "person:main", tool="Bash", ok=True, power=True)
    timeline.add("agent.joined", "worker:main", name="worker")
    timeline.add("agent.tool", "worker:main", tool="Edit", ok=True, file="a.py")
    timeline.add("agent.tool", "worker:main", tool="Edit", ok=True, file="b.py")
    timeline.add("task.created", "human", task="t1", title="the lexer")
    timeline.add("task.orphaned", "coordinator", task="t1", agent="gone:main")
    state = project(timeline.events)
    rules = DecideRules(agent_timeout_seconds=600, heartbeat_seconds=60, heartbeat_miss_threshold=3,
                        max_reassign_attempts=3, auto_reassign_orphaned=True)
    decisions = [d for batch in decide(state, _now(timeline), {}, rules) for d in batch if d[0] == "task.assigned"]
    assert decisions == [("task.assigned", {"task": "t1", "agent": "worker:main"})]


def test_an_orphaned_task_carries_the_lost_agent_s_hand_over_to_whoever_is_offered_it(session: Session) -> None:
    """Last progress, the files it touched, and the last thing it said: in the decision and in the offer's text."""
    timeline = Timeline()
    timeline.add("agent.joined", "a1:main", name="a1", pid=999999999)
    timeline.add("agent.tool", "a1:main", tool="Edit", ok=True, file="src/lexer.py")
    timeline.add("agent.heartbeat", "a1:main", tool_calls=1, progress=0.4)
    timeline.add("task.created", "human", task="t1", title="the lexer", owner="a1:main")
    timeline.add("message.broadcast", "a1:main", text="the lexer chokes on tabs; fixing tokens next")
    state = project(timeline.events)
    assert state["agents"]["a1:main"]["last_message"]["text"] == "the lexer chokes on tabs; fixing tokens next"
    rules = DecideRules(agent_timeout_seconds=600, heartbeat_seconds=60, heartbeat_miss_threshold=3,
                        max_reassign_attempts=3, auto_reassign_orphaned=False)
    decisions = decide(state, _now(timeline), {"a1:main": False}, rules)
    [(_, orphaned)] = [d for batch in decisions for d in batch if d[0] == "task.orphaned"]
    assert orphaned["context"] == {"title": "the lexer", "progress": 0.4, "files": ["src/lexer.py"],
                                   "last_seen": state["agents"]["a1:main"]["last_seen"],
                                   "last_message": "the lexer chokes on tabs; fixing tokens next"}
    hook_call(session, WORKER, "Edit", file_path="/repo/x.py", old_string="a", new_string="b")
    session.publish("task.orphaned", {"task": "t1", **orphaned}, sender="coordinator")
    offer = hook_call(session, WORKER, command="ls")
    assert ('[orphaned task] t1 "the lexer" (progress 0.4; files src/lexer.py; its last message "the lexer chokes '
            'on tabs; fixing tokens next") lost its agent; take it over with: popkit-power claim t1') in offer


def test_insights_are_routed_by_tag_overlap_with_each_agent_s_files_and_task(session: Session) -> None:
    """An agent working on src/auth hears the insight tagged `auth`, not the one tagged `billing`; an untagged one
    reaches everyone; an agent with no files and no task yet hears all (nothing tells what it works on); a tag may
    also name a path, or a word of the agent's task title."""
    hook_call(session, WORKER, "Edit", file_path="/repo/src/auth/login_form.py", old_string="a", new_string="b")
    hook_call(session, OTHER, "Edit", file_path="/repo/billing/invoice.py", old_string="a", new_string="b")
    session.publish("task.created", {"task": "t-9", "title": "Speed up the Tokenizer", "owner": f"{OTHER}:main"},
                    sender="human")
    hook_call(session, WORKER, command="ls")
    hook_call(session, OTHER, command="ls")
    for text, tags in (("sessions expire after 5 minutes", ["Auth"]), ("invoices round half-up", ["#billing"]),
                       ("the CI runner has 2 cores", []), ("login_form validates on blur", ["src/auth/login"]),
                       ("tokenizer allocates per byte", ["tokenizer"])):
        session.publish("insight.shared", {"text": text, "tags": tags}, sender="human")
    worker, other = hook_call(session, WORKER, command="ls"), hook_call(session, OTHER, command="ls")
    newcomer = hook_call(session, "0ddba11-1111-2222-3333-444455556666", command="ls")
    heard = {name: {text for text in ("sessions expire", "invoices round", "CI runner", "validates on blur",
                                      "allocates per byte") if text in reply}
             for name, reply in (("worker", worker), ("other", other), ("newcomer", newcomer))}
    assert heard["worker"] == {"sessions expire", "CI runner", "validates on blur"}
    assert heard["other"] == {"invoices round", "CI runner", "allocates per byte"}
    assert heard["newcomer"] == set(), "a newcomer's news starts at its join"
    session.publish("insight.shared", {"text": "staging is down until noon", "tags": ["deploy"]}, sender="human")
    assert "staging is down" in hook_call(session, "0ddba11-1111-2222-3333-444455556666", command="ls")


def test_finished_tasks_and_answered_approvals_leave_the_live_state() -> None:
    """Thousands of finished tasks and answered approvals: the live state keeps the open ones, the most recent
    finished ones (so a second `done` can name the first), and counts; its size does not grow with history."""
    timeline = Timeline()
    sizes = []
    for round_number in range(3):
        for n in range(1000):
            task, request = f"t{round_number}-{n}", f"r{round_number}-{n}"
            timeline.add("task.created", "human", task=task, title=f"task {n}")
            timeline.add("task.claimed", "a1:main", task=task)
            timeline.add("task.completed", "a1:main", task=task, result="x" * 2000, ok=n % 2 == 0)
            timeline.add("approval.requested", "a1:main", request=request, question="ok?")
            timeline.add("approval.granted" if n % 3 else "approval.denied", "human", request=request)
        timeline.add("task.created", "human", task=f"open-{round_number}", title="still open")
        state = project(timeline.events)
        sizes.append(len(orjson.dumps({key: value for key, value in state.items()
                                       if key not in ("finished_ids", "answered_ids")})))
    assert set(state["tasks"]) == {"open-0", "open-1", "open-2"} and state["approvals"] == {}
    assert len(state["finished"]) == len(state["answered"]) == MAX_FINISHED_KEPT
    assert "t2-999" in state["finished"] and "t0-0" not in state["finished"]
    assert len(state["finished"]["t2-999"]["result"]) == 500
    assert state["totals"] == {"tasks": {"completed": 1500, "failed": 1500},
                               "approvals": {"denied": 1002, "granted": 1998}, "agents": {}}
    assert sizes[2] < sizes[0] * 1.1, sizes
    # only the indices of finished ids grow, by a few bytes an item
    assert len(state["finished_ids"]) == len(state["answered_ids"]) == 3000
    assert len(orjson.dumps([state["finished_ids"], state["answered_ids"]])) < 6000 * 15
    timeline.add("task.claimed", "a2:main", task="t2-999")
    timeline.add("approval.granted", "human", request="r2-999")
    again = project(timeline.events)
    assert "t2-999" not in again["tasks"], "a late claim does not bring a finished task back"
    assert again["counts"]["ignored_answers"] == 1


def test_an_insight_tagged_with_a_word_of_a_task_created_before_the_agent_joined_reaches_it(session: Session) -> None:
    """The demo's cleo, on a busy machine: her task "Test the login flow" was created before she joined, she claimed
    it, and she has touched only tests/conftest.py when an insight tagged `login` comes. Her welcome taught her the
    open tasks' titles, so the word of her task's title routes it to her."""
    session.publish("task.created", {"task": "t-tests", "title": "Test the login flow"}, sender="human")
    payload = {"session_id": WORKER, "transcript_path": "/t.jsonl", "cwd": "/repo", "hook_event_name": "SessionStart",
               "source": "startup"}
    hook.run(io.BytesIO(orjson.dumps(payload)), session.power_dir, {"CLAUDE_PID": "4242"})
    session.publish("task.claimed", {"task": "t-tests"}, sender=f"{WORKER}:main")
    hook_call(session, WORKER, "Read", file_path="/repo/tests/conftest.py")
    session.publish("insight.shared", {"text": "the session cookie must be SameSite=Lax", "tags": ["login", "cookie"]},
                    sender=f"{OTHER}:main")
    assert "SameSite=Lax" in hook_call(session, WORKER, "Read", file_path="/repo/tests/conftest.py")
