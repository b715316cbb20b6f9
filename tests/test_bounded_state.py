"""The live state is bounded by what is live, not by history (issue 18): finished tasks, answered approvals and
departed agents leave it for counts, finished task ids stay in a compact index, and what it keeps is exactly what the
full fold (no bounds) has for the same items.

The random sessions here are shaped as real ones are: an agent that left or was declared lost does not speak again
(the case where one does is an example test of its own, below), tasks are created, claimed, released, completed or
failed, approvals asked and answered, and late words about finished work arrive.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from runners import run_cli
from support import Timeline

from popkit_power.approvals import wait_for_answer
from popkit_power.fold.model import AGENT_LEFT, AGENT_LOST, Rules
from popkit_power.projector import apply, new_state, project
from popkit_power.session import Session, summarize, why_not_finished

AGENTS = [f"s{number}:main" for number in range(8)]
TASKS = [f"t{number}" for number in range(8)]
REQUESTS = ["r1", "r2", "r3", "r4"]
#: Small bounds, so that short random sessions pass them many times over.
BOUNDED = Rules(kept_finished=2, kept_departed=2)
#: The full fold: nothing leaves (as `status --all` folds).
FULL = Rules().everything()


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@st.composite
def real_sessions(draw: st.DrawFn, max_size: int = 80) -> list[dict[str, Any]]:
    """Records of a session whose departed agents never join again: one that was declared lost stays silent, one
    that left may still have late words on their way (a tool call, a heartbeat, an idle)."""
    timeline = Timeline()
    departed: set[str] = set()
    left: list[str] = []
    steps = draw(st.integers(0, max_size))
    for _ in range(steps):
        present = [agent for agent in AGENTS if agent not in departed]
        kind = draw(st.sampled_from(["joined", "tool", "heartbeat", "left", "lost", "created", "claimed", "released",
                                     "completed", "assigned", "orphaned", "asked", "answered", "said", "late"]))
        agent = draw(st.sampled_from(present)) if present else None
        if kind == "late":
            if left:
                late = draw(st.sampled_from(left))
                late_type = draw(st.sampled_from(["agent.tool", "agent.heartbeat", "agent.idle"]))
                fields = {"tool": "Edit", "ok": True, "file": "a.py"} if late_type == "agent.tool" else (
                    {"tool_calls": 3} if late_type == "agent.heartbeat" else {})
                timeline.add(late_type, late, after=draw(st.integers(0, 200)), **fields)
            continue
        task = draw(st.sampled_from(TASKS))
        after = draw(st.integers(0, 200))
        if kind in ("joined", "tool", "heartbeat", "left", "claimed", "said") and agent is None:
            continue
        if kind == "joined":
            timeline.add("agent.joined", agent, after=after, name=agent)
        elif kind == "tool":
            timeline.add("agent.tool", agent, after=after, tool=draw(st.sampled_from(["Edit", "Read", "Bash"])),
                         ok=draw(st.booleans()), file=draw(st.sampled_from(["a.py", "b.py"])))
        elif kind == "heartbeat":
            timeline.add("agent.heartbeat", agent, after=after, tool_calls=draw(st.integers(0, 9)),
                         current_task=draw(st.sampled_from([None, task])))
        elif kind == "left":
            timeline.add("agent.left", agent, after=after, reason="session ended")
            departed.add(agent)  # type: ignore[arg-type]
            left.append(agent)  # type: ignore[arg-type]
        elif kind == "lost" and present:  # the coordinator declares lost only agents it counts as live
            victim = draw(st.sampled_from(present))
            timeline.add("agent.lost", "coordinator", after=after, agent=victim, reason="gone")
            departed.add(victim)
        elif kind == "created":
            owner = draw(st.sampled_from([None, *present]))
            timeline.add("task.created", draw(st.sampled_from(["human", "coordinator"])), after=after, task=task,
                         title=f"do {task}", **({"owner": owner} if owner else {}))
        elif kind == "claimed":
            timeline.add("task.claimed", agent, after=after, task=task)
        elif kind == "released":
            timeline.add("task.released", draw(st.sampled_from(["human", *AGENTS])), after=after, task=task)
        elif kind == "completed":  # from anyone: the holder's counts, a late or foreign one changes nothing
            timeline.add("task.completed", draw(st.sampled_from(["human", *AGENTS])), after=after, task=task,
                         result="done", ok=draw(st.booleans()))
        elif kind == "assigned" and present:
            timeline.add("task.assigned", "human", after=after, task=task, agent=draw(st.sampled_from(present)))
        elif kind == "orphaned":
            timeline.add("task.orphaned", "coordinator", after=after, task=task,
                         agent=draw(st.sampled_from(AGENTS)))
        elif kind == "asked" and present:
            timeline.add("approval.requested", draw(st.sampled_from(present)), after=after,
                         request=draw(st.sampled_from(REQUESTS)), question="may I?")
        elif kind == "answered":
            timeline.add(draw(st.sampled_from(["approval.granted", "approval.denied"])), "human", after=after,
                         request=draw(st.sampled_from(REQUESTS)))
        elif kind == "said":
            timeline.add("message.broadcast", agent, after=after, text=f"news from {agent}")
    return timeline.events


@settings(max_examples=300, deadline=None)
@given(real_sessions())
def test_the_bounded_state_equals_the_full_fold_on_everything_it_keeps(events: list[dict[str, Any]]) -> None:
    bounded, full = project(events, BOUNDED), project(events, FULL)
    # what is live is all there, and the same
    assert dumps(bounded["tasks"]) == dumps(full["tasks"])
    assert dumps(bounded["approvals"]) == dumps(full["approvals"])
    assert bounded["orphans"] == full["orphans"]
    live = {key: agent for key, agent in full["agents"].items() if agent["status"] not in (AGENT_LEFT, AGENT_LOST)}
    assert live.keys() <= bounded["agents"].keys()
    # what it keeps of history equals the full fold's entry for it
    for key, agent in bounded["agents"].items():
        assert dumps(agent) == dumps(full["agents"][key]), key
    for task_id, finished in bounded["finished"].items():
        assert dumps(finished) == dumps(full["finished"][task_id]), task_id
    for request, answered in bounded["answered"].items():
        assert dumps(answered) == dumps(full["answered"][request]), request
    assert bounded["finished_ids"] == full["finished_ids"]
    assert bounded["answered_ids"] == full["answered_ids"]
    # the most recent ones are kept, the rest counted
    assert list(bounded["finished"]) == list(full["finished"])[-BOUNDED.kept_finished:]
    assert list(bounded["answered"]) == list(full["answered"])[-BOUNDED.kept_finished:]
    assert bounded["totals"]["tasks"] == full["totals"]["tasks"]
    assert bounded["totals"]["approvals"] == full["totals"]["approvals"]
    gone = {key: agent["status"] for key, agent in full["agents"].items() if key not in bounded["agents"]}
    assert all(status in (AGENT_LEFT, AGENT_LOST) for status in gone.values())
    assert sum(bounded["totals"]["agents"].values()) == len(gone)
    assert bounded["departed_ids"].keys() == gone.keys(), "their keys stay, for a task that still comes to one"
    assert full["totals"]["agents"] == {}
    holders = {task["owner"] for task in full["tasks"].values()}
    departed_kept = [key for key in bounded["departed"] if key not in holders]
    assert len(departed_kept) <= BOUNDED.kept_departed, "only agents that hold a task stay past the bound"
    # and everything else is the same
    for name in ("insights", "broadcasts", "conflicts", "writes", "counts", "objective", "coordinator", "seq"):
        assert dumps(bounded[name]) == dumps(full[name]), name


@settings(max_examples=150, deadline=None)
@given(real_sessions())
def test_resuming_the_bounded_fold_from_a_snapshot_after_any_prefix_equals_a_rebuild(
        events: list[dict[str, Any]]) -> None:
    rebuilt = dumps(project(events, BOUNDED))
    state = new_state()
    for prefix in range(len(events) + 1):
        snapshot = orjson.loads(orjson.dumps(state))
        assert snapshot == state, "a snapshot round-trips"
        assert dumps(project(events[prefix:], BOUNDED, snapshot)) == rebuilt, f"resumed after {prefix} events"
        if prefix < len(events):
            apply(state, events[prefix], BOUNDED)


def departures(agents: int) -> Timeline:
    """`agents` agents that each join, finish a task of their own (every tenth fails) and leave (every third is
    declared lost instead)."""
    timeline = Timeline()
    for number in range(agents):
        agent = f"s{number}:main"
        timeline.add("agent.joined", agent, name=agent)
        timeline.add("task.created", "human", task=f"t{number}", title="x")
        timeline.add("task.claimed", agent, task=f"t{number}")
        timeline.add("task.completed", agent, task=f"t{number}", result="ok", ok=number % 10 != 0)
        timeline.add("agent.left" if number % 3 else "agent.lost", agent if number % 3 else "coordinator",
                     reason="done", agent=agent)
    return timeline


def test_a_day_of_departures_and_finished_work_leaves_only_counts_and_ids() -> None:
    """1,000 agents each join, finish a task and leave: the state keeps the last 100 of each, counts the rest, and
    remembers every finished id, so that a late claim or second result of the first task brings nothing back."""
    timeline = departures(1000)
    rules = Rules()
    state = project(timeline.events, rules)
    assert len(state["agents"]) == rules.kept_departed == len(state["departed"])
    assert state["totals"]["agents"] == {"left": 600, "lost": 300}
    assert len(state["finished"]) == rules.kept_finished
    assert state["totals"]["tasks"] == {"completed": 900, "failed": 100}
    assert len(state["finished_ids"]) == 1000 and state["finished_ids"]["t0"] == 0 and state["finished_ids"]["t1"]
    size = len(orjson.dumps(state))
    timeline.add("task.claimed", "s999:main", task="t1")
    timeline.add("task.completed", "human", task="t1", result="again", ok=True)
    again = project(timeline.events, rules)
    assert "t1" not in again["tasks"] and "t1" not in again["finished"]
    assert again["totals"]["tasks"] == state["totals"]["tasks"]
    assert why_not_finished(again, "t1") == "task t1 is already completed"
    # ten times the history is not ten times the state: only the indices of ids grow, by ~15 bytes a finished task
    # and as much a departed agent (departed_ids: a task that still comes to it is handed on)
    grown = len(orjson.dumps(project(departures(10_000).events, rules))) - size
    assert grown < 9000 * 2 * 15, grown


def test_a_departed_agent_that_holds_a_task_stays_until_its_task_is_handed_on() -> None:
    timeline = Timeline()
    timeline.add("agent.joined", "holder:main", name="holder")
    timeline.add("task.created", "human", task="t", title="x", owner="holder:main")
    timeline.add("agent.left", "holder:main", reason="ended")
    for number in range(150):
        timeline.add("agent.joined", f"s{number}:main", name=f"s{number}")
        timeline.add("agent.left", f"s{number}:main", reason="ended")
    rules = Rules()
    state = project(timeline.events, rules)
    assert state["agents"]["holder:main"]["status"] == AGENT_LEFT, "its hand-over needs it"
    assert "holder:main" in state["departed"]
    timeline.add("task.orphaned", "coordinator", task="t", agent="holder:main")
    timeline.add("agent.joined", "late:main", name="late")
    timeline.add("agent.left", "late:main", reason="ended")
    state = project(timeline.events, rules)
    assert "holder:main" not in state["agents"] and "holder:main" not in state["departed"]
    assert sum(state["totals"]["agents"].values()) == 152 - rules.kept_departed


def test_a_pruned_agent_that_comes_back_starts_a_new_entry() -> None:
    """An agent that departed long ago (past the kept ones) and speaks again, as a resumed Claude Code session does,
    is in the state again with what it says from then on, and no longer counted among the agents gone from the
    state (the session's agents are counted once: summarize agrees with the full fold)."""
    timeline = Timeline()
    timeline.add("agent.joined", "back:main", name="back")
    timeline.add("agent.tool", "back:main", tool="Edit", ok=True, file="a.py")
    timeline.add("agent.left", "back:main", reason="ended")
    for number in range(3):
        timeline.add("agent.joined", f"s{number}:main", name=f"s{number}")
        timeline.add("agent.left", f"s{number}:main", reason="ended")
    timeline.add("agent.joined", "back:main", name="back")
    state = project(timeline.events, Rules(kept_departed=2))
    assert state["agents"]["back:main"]["status"] == "active"
    assert state["agents"]["back:main"]["tool_calls"] == 0, "a new entry"
    assert state["totals"]["agents"] == {"left": 1}, "s0 only"
    assert summarize(state)["agents"] == summarize(project(timeline.events, FULL))["agents"] == 4


def test_event_types_are_counted_by_name_up_to_a_bound() -> None:
    """Records of any type may come from another writer: past MAX_COUNTED_TYPES names, new ones count as other."""
    from popkit_power.fold.model import MAX_COUNTED_TYPES

    timeline = Timeline()
    for number in range(MAX_COUNTED_TYPES + 50):
        timeline.add(f"made.up{number}", "s1:main")
    timeline.add("made.up0", "s1:main")
    counts = project(timeline.events)["counts"]
    assert len(counts) == MAX_COUNTED_TYPES + 1
    assert counts["other"] == 50 and counts["made.up0"] == 2


# -- the commands on a long session ---------------------------------------------------------------------------------


def long_history(session: Session, agents: int = 150, tasks: int = 120, requests: int = 110) -> None:
    """A session where more agents departed, and more tasks and approvals finished, than the state keeps."""
    events = []
    for number in range(agents):
        agent = f"s{number:03d}:main"
        events.append(session.event("agent.joined", {"name": agent}, sender=agent))
        if number < tasks:
            events += [session.event("task.created", {"task": f"t{number:03d}", "title": f"task {number}"},
                                     sender="human"),
                       session.event("task.claimed", {"task": f"t{number:03d}"}, sender=agent),
                       session.event("task.completed", {"task": f"t{number:03d}", "result": "ok", "ok": True},
                                     sender=agent)]
        if number < requests:
            events += [session.event("approval.requested", {"request": f"r{number:03d}", "question": "ok?"},
                                     sender=agent),
                       session.event("approval.denied", {"request": f"r{number:03d}"}, sender="human")]
        events.append(session.event("agent.left", {"reason": "done"}, sender=agent))
    session.append_events(events)


def test_status_counts_what_it_no_longer_lists_and_status_all_lists_everything(session: Session) -> None:
    long_history(session)
    text = run_cli("status").output
    assert "100 (100 left); 50 more departed earlier (status --all lists them)" in text
    bounded = orjson.loads(run_cli("status", "--json").output)
    assert len(bounded["agents"]) == 100 and bounded["departed_not_listed"] == {"left": 50}
    assert len(bounded["finished_tasks"]) == 100 and bounded["task_counts"] == {"completed": 120}
    everything = orjson.loads(run_cli("status", "--all", "--json").output)
    assert len(everything["agents"]) == 150 and everything["departed_not_listed"] == {}
    assert sorted(everything["finished_tasks"]) == [f"t{number:03d}" for number in range(120)]
    assert everything["task_counts"] == {"completed": 120}
    assert "more departed earlier" not in run_cli("status", "--all").output


def test_a_task_or_request_finished_long_ago_is_refused_by_name_and_nothing_is_written(session: Session) -> None:
    long_history(session)
    end = session.journal.end_position()
    state, _ = session.projection()
    assert "t000" not in state["finished"] and "r000" not in state["answered"], "past the kept ones"
    done = run_cli("done", "t000", "--result", "again")
    assert done.exit_code == 2 and "task t000 is already completed" in done.output
    claim = run_cli("claim", "t000", env={"POPKIT_POWER_AGENT": "s149:main"})
    assert claim.exit_code == 2 and "task t000 is already completed" in claim.output, claim.output
    approve = run_cli("approve", "r000")
    assert approve.exit_code != 0 and "request r000 was already denied by human;" in approve.output
    assert session.journal.end_position() == end, "nothing written"
    answer = wait_for_answer(session, "r000", timeout=0)
    assert answer is not None and not answer.granted


def test_a_departed_agent_keeps_the_files_its_hand_over_names() -> None:
    from popkit_power.projector import HANDOVER_FILES

    timeline = Timeline()
    timeline.add("agent.joined", "a:main", name="a")
    for number in range(30):
        timeline.add("agent.tool", "a:main", tool="Edit", ok=True, file=f"src/{number}.py")
    assert len(project(timeline.events)["agents"]["a:main"]["files_touched"]) == 30
    timeline.add("agent.lost", "coordinator", agent="a:main", reason="gone")
    kept = project(timeline.events)["agents"]["a:main"]["files_touched"]
    assert kept == [f"src/{number}.py" for number in range(30 - HANDOVER_FILES, 30)]


def test_the_indices_of_finished_ids_are_bounded_too() -> None:
    from popkit_power.fold.model import MAX_FINISHED_IDS

    timeline = Timeline()
    for number in range(5):
        timeline.add("task.created", "human", task=f"t{number}", title="x")
        timeline.add("task.completed", "human", task=f"t{number}", result="ok", ok=True)
        timeline.add("approval.requested", "a:main", request=f"r{number}", question="?")
        timeline.add("approval.granted", "human", request=f"r{number}")
    state = project(timeline.events, Rules(kept_finished=1, kept_finished_ids=3))
    assert list(state["finished_ids"]) == ["t2", "t3", "t4"] and list(state["answered_ids"]) == ["r2", "r3", "r4"]
    assert Rules().kept_finished_ids == MAX_FINISHED_IDS


def test_an_agent_that_departed_long_ago_is_named_as_departed_not_as_unknown_or_live(session: Session) -> None:
    """An agent gone from the state (past the kept departures) is not "not an agent of this session" to `send`, and
    a task that came to it afterwards is not one to ask it for: it is offered to the others once orphaned."""
    long_history(session)
    session.publish("task.created", {"task": "late", "title": "late", "owner": "s000:main"}, sender="human")
    state, _ = session.projection()
    assert "s000:main" not in state["agents"] and "s000:main" in state["departed_ids"]
    send = run_cli("send", "s000:main", "hello")
    assert send.exit_code == 2 and "agent s000:main left long ago" in send.output, send.output
    claim = run_cli("claim", "late", env={"POPKIT_POWER_AGENT": "s149:main"})
    assert claim.exit_code == 2 and "who left long ago" in claim.output, claim.output
    assert "offered to the others once the coordinator orphans it" in claim.output
    assert "popkit-power send" not in claim.output


def test_late_words_of_an_agent_that_left_leave_it_left_pruned_or_not() -> None:
    """A Stop hook's idle or a heartbeat that arrives after the agent's leaving does not bring it back: kept, it
    stays left (the full fold's rule); pruned, it stays gone and counted. Only joining again brings it back."""
    timeline = Timeline()
    timeline.add("agent.joined", "late:main", name="late")
    timeline.add("agent.left", "late:main", reason="ended")
    timeline.add("agent.idle", "late:main")
    assert project(timeline.events)["agents"]["late:main"]["status"] == AGENT_LEFT
    for number in range(3):
        timeline.add("agent.joined", f"s{number}:main", name=f"s{number}")
        timeline.add("agent.left", f"s{number}:main", reason="ended")
    timeline.add("agent.heartbeat", "late:main", tool_calls=9)
    timeline.add("agent.idle", "late:main")
    timeline.add("agent.left", "late:main", reason="ended again")
    rules = Rules(kept_departed=2)
    state = project(timeline.events, rules)
    assert "late:main" not in state["agents"] and state["totals"]["agents"] == {"left": 2}
    assert "late:main" in state["departed_ids"]
    timeline.add("agent.joined", "late:main", name="late")
    back = project(timeline.events, rules)
    assert back["agents"]["late:main"]["status"] == "active" and back["totals"]["agents"] == {"left": 1}
