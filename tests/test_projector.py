"""The projector: a pure fold whose rebuild and snapshot-resume agree byte for byte, and each of its rules."""

from __future__ import annotations

import copy
import datetime
import itertools
import os
import tempfile
from typing import Any

import orjson
import pytest
import support
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Timeline

from popkit_power.fold.model import MAX_CONFLICTS, MAX_WATCHED_FILES
from popkit_power.projector import (
    Rules,
    apply,
    live_agents,
    new_state,
    open_tasks_of,
    project,
)
from popkit_power.protocol import EVENT_TYPES
from popkit_power.session import Session
from popkit_power.timestamps import seconds_of


def dumps(state: dict[str, Any]) -> bytes:
    """The canonical bytes of a state, for byte-for-byte comparison."""
    return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)


# -- random realistic sessions --------------------------------------------------------------------------------------

AGENTS = ["a1", "a2", "a3:sub-1"]
SENDERS = [*AGENTS, "coordinator", "human"]
TASKS = ["t1", "t2", "t3"]
FILES = ["src/app.py", "src/db.py", "README.md"]
TOOLS = ["Edit", "Write", "MultiEdit", "Read", "Bash", "Grep"]
INSIGHTS = ["The cache key ignores the locale", "the cache key ignores the LOCALE!", "Cache key ignores locale",
            "Tests need a running Redis server", "tests need a running redis", "Use the fixture in conftest.py"]
REQUESTS = ["r1", "r2"]
TEXTS = ["done", "failed: timeout", "hello everyone", ""]
UNKNOWN_TYPES = ["insight.voted", "agent.dreamed"]

#: A strategy for a data field, by its name in protocol.EVENT_TYPES (anything else falls back to its kind).
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "task": st.sampled_from(TASKS), "agent": st.sampled_from(AGENTS), "owner": st.sampled_from(AGENTS),
    "name": st.sampled_from(AGENTS), "parent": st.sampled_from(AGENTS + TASKS),
    "current_task": st.sampled_from(TASKS) | st.none(), "file": st.sampled_from(FILES),
    "tool": st.sampled_from(TOOLS), "request": st.sampled_from(REQUESTS), "result": st.sampled_from(TEXTS),
    "agents": st.lists(st.sampled_from(AGENTS), min_size=1, max_size=3, unique=True),
    "files_touched": st.lists(st.sampled_from(FILES), max_size=3),
    "tool_counts": st.dictionaries(st.sampled_from(TOOLS), st.integers(0, 40), max_size=3),
    "tool_calls": st.integers(0, 60), "progress": st.integers(0, 1) | st.floats(0, 1),
    "tags": st.lists(st.sampled_from(["cache", "tests", "db"]), max_size=2),
    "options": st.lists(st.sampled_from(["yes", "no", "later"]), max_size=3),
}
KIND_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.sampled_from(TEXTS), "integer": st.integers(0, 100), "number": st.floats(0, 1000),
    "boolean": st.booleans(), "array": st.lists(st.sampled_from(TEXTS), max_size=2),
    "object": st.dictionaries(st.sampled_from(TEXTS), st.integers(0, 5), max_size=2),
}


@st.composite
def event_body(draw: st.DrawFn) -> tuple[str, str, str | None, dict[str, Any], dict[str, Any]]:
    """(type, sender, recipient, data, extra envelope fields) of one realistic event of any type, known or not."""
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES) + UNKNOWN_TYPES))
    data: dict[str, Any]
    if event_type in EVENT_TYPES:
        data = {}
        for name, (kind, required) in EVENT_TYPES[event_type][1].items():
            if required or draw(st.booleans()):
                if name == "text" and event_type == "insight.shared":
                    data[name] = draw(st.sampled_from(INSIGHTS))
                else:
                    data[name] = draw(FIELD_VALUES.get(name, KIND_VALUES[kind]))
    else:
        data = {"insight": draw(st.sampled_from(INSIGHTS)), "weight": draw(st.integers(-1, 1))}
    if draw(st.integers(0, 9)) == 0:
        data["added_in_v2"] = draw(st.sampled_from(TEXTS))  # an unknown field of a newer version
    if event_type.startswith("agent.") and event_type != "agent.lost":
        sender = draw(st.sampled_from(AGENTS))
    elif event_type.startswith("coordinator.") or event_type in ("agent.lost", "task.orphaned", "file.conflict"):
        sender = "coordinator"
    else:
        sender = draw(st.sampled_from(SENDERS))
    to = draw(st.sampled_from(AGENTS)) if event_type == "message.direct" else None
    extra = {"trace": draw(st.sampled_from(TEXTS))} if draw(st.integers(0, 9)) == 0 else {}
    return event_type, sender, to, data, extra


@st.composite
def sessions(draw: st.DrawFn, max_size: int = 60) -> list[dict[str, Any]]:
    """A journal's records: realistic events with seq 1..n and timestamps that grow by 0 to 400 s."""
    timeline = Timeline()
    size = draw(st.integers(0, max_size))  # uniform lengths: st.lists alone mostly makes short ones
    for event_type, sender, to, data, extra in draw(st.lists(event_body(), min_size=size, max_size=size)):
        after = draw(st.integers(0, 400_000_000)) / 1_000_000
        channel = "insights" if event_type not in EVENT_TYPES else None
        event = timeline.add(event_type, sender, to=to, after=after, channel=channel, **data)
        event.update(extra)
    return timeline.events


#: Small bounds, so that random sessions reach them.
RULES = Rules(max_insights_kept=4, max_files_per_agent=2, conflict_window_seconds=600,
              insight_similarity_threshold=0.8)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(sessions())
def test_rebuild_and_resume_from_a_snapshot_after_any_prefix_agree_byte_for_byte(events: list[dict[str, Any]]) -> None:
    """Property: for every prefix, a snapshot of the state (through orjson, like a real snapshot) plus the rest of
    the events gives exactly the state of one rebuild from zero. The fold never changes the events it reads."""
    pristine = orjson.dumps(events)
    full = dumps(project(orjson.loads(pristine), RULES))
    state = new_state()
    for prefix in range(len(events) + 1):
        snapshot = orjson.loads(orjson.dumps(state))
        assert dumps(project(events[prefix:], RULES, snapshot)) == full, f"resumed after {prefix} events"
        if prefix < len(events):
            apply(state, events[prefix], RULES)
    assert dumps(state) == full
    assert orjson.dumps(events) == pristine


def orphans_as_the_tasks_say(state: dict[str, Any]) -> list[str]:
    """The orphan list as the tasks' statuses make it: the fold keeps `orphans` exactly the open tasks whose status
    is orphaned (fold/tasks.py relies on it to tell an orphan without searching the list)."""
    return sorted(task_id for task_id, task in state["tasks"].items() if task["status"] == "orphaned")


@settings(max_examples=200, deadline=None)
@given(sessions())
def test_the_orphan_list_is_exactly_the_tasks_whose_status_is_orphaned(events: list[dict[str, Any]]) -> None:
    state = new_state()
    for event in events:
        apply(state, event, RULES)
        assert sorted(state["orphans"]) == orphans_as_the_tasks_say(state), event
        assert len(set(state["orphans"])) == len(state["orphans"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(max_size=40), st.data())
def test_session_snapshot_on_a_real_journal_resumes_to_the_rebuilt_state(events: list[dict[str, Any]],
                                                                         data: st.DataObject) -> None:
    """Property: the events appended to a real journal; a snapshot saved with Snapshots.save after a random
    prefix and found again by Snapshots.latest; Session.projection() from it equals a rebuild from zero."""
    with tempfile.TemporaryDirectory() as tmp:
        power_dir = os.path.join(tmp, "power")
        os.makedirs(power_dir)
        with open(os.path.join(power_dir, "config.json"), "w") as handle:
            handle.write('{"max_insights_kept": 4, "max_files_per_agent": 2, "conflict_window_seconds": 600}')
        session = Session(power_dir, "20261124-100000-proper", create=True)
        if events:
            session.append_events([support.without_journal_fields(event) for event in events])
        prefix = data.draw(st.integers(0, len(events)), label="prefix")
        reader = session.journal.reader()
        state = project(itertools.islice(reader, prefix), session.rules())
        session.snapshots.save(state, reader.position)
        loaded = session.snapshots.latest(session.journal.end_position())
        assert loaded is not None and loaded[1] == reader.position and loaded[1].seq == prefix + 1
        resumed, position = session.projection(save_snapshot=False)
        rebuilt = project(session.journal.reader(), session.rules())
        assert dumps(resumed) == dumps(rebuilt)
        assert position == session.journal.end_position()
        assert rebuilt["seq"] == len(events)


# -- the fold is pure ------------------------------------------------------------------------------------------------


def test_the_fold_reads_no_clock() -> None:
    """Projecting the same events at two different wall-clock times gives the same state: time comes from events."""
    timeline = _two_agents_editing(gap=30)
    with freeze_time("2026-11-24 10:00:00"):
        early = dumps(project(copy.deepcopy(timeline.events), RULES))
    with freeze_time("2031-01-01 00:00:00"):
        late = dumps(project(copy.deepcopy(timeline.events), RULES))
    assert early == late


# -- tasks ----------------------------------------------------------------------------------------------------------


def test_first_claim_in_journal_order_wins() -> None:
    """Two agents claim one open task: the earlier record wins, the later claim changes nothing (not even attempts),
    whatever the timestamps say."""
    timeline = Timeline()
    timeline.add("task.created", "coordinator", task="t1", title="Fix login")
    timeline.add("task.claimed", "a2", task="t1")
    timeline.add("task.claimed", "a1", task="t1", after=0)
    state = project(timeline.events)
    task = state["tasks"]["t1"]
    assert (task["owner"], task["status"], task["attempts"]) == ("a2", "claimed", 1)
    assert task["title"] == "Fix login"
    swapped = Timeline()
    swapped.add("task.created", "coordinator", task="t1", title="Fix login")
    swapped.add("task.claimed", "a1", task="t1")
    swapped.add("task.claimed", "a2", task="t1")
    assert project(swapped.events)["tasks"]["t1"]["owner"] == "a1"


def test_a_task_created_with_an_owner_cannot_be_claimed_away() -> None:
    """A task created with an owner is assigned; a claim by another agent does not take it."""
    timeline = Timeline()
    timeline.add("agent.joined", "a1", name="a1")
    timeline.add("task.created", "a1", task="t1", title="Explore", owner="a1")
    timeline.add("task.claimed", "a2", task="t1")
    state = project(timeline.events)
    assert (state["tasks"]["t1"]["owner"], state["tasks"]["t1"]["status"]) == ("a1", "assigned")
    assert state["agents"]["a1"]["current_task"] == "t1"


def test_orphan_list_follows_orphaned_claimed_released_and_completed_tasks() -> None:
    """Orphaned tasks are listed once each, in order; a claim, an assignment or a result takes them off; a task
    finished before it was orphaned is never listed."""
    timeline = Timeline()
    for task in ("t1", "t2", "t3", "t4"):
        timeline.add("task.created", "coordinator", task=task, title=task)
        timeline.add("task.claimed", "a1", task=task)
    timeline.add("task.completed", "a1", task="t4", result="done")
    timeline.add("agent.lost", "coordinator", agent="a1", reason="process gone")
    for task in ("t1", "t2", "t3", "t4", "t1"):
        timeline.add("task.orphaned", "coordinator", task=task, agent="a1")
    state = project(copy.deepcopy(timeline.events))
    assert state["orphans"] == ["t1", "t2", "t3"]
    assert "t4" not in state["tasks"] and state["finished"]["t4"]["status"] == "completed"
    assert state["tasks"]["t1"]["previous_owner"] == "a1" and state["tasks"]["t1"]["owner"] is None
    assert open_tasks_of(state, "a1") == []
    timeline.add("task.claimed", "a2", task="t2")
    timeline.add("task.assigned", "coordinator", task="t3", agent="a3")
    timeline.add("task.completed", "human", task="t1", result="done anyway")  # only the holder or the human
    state = project(timeline.events)
    assert state["orphans"] == []
    assert (state["tasks"]["t2"]["owner"], state["tasks"]["t3"]["owner"]) == ("a2", "a3")
    assert open_tasks_of(state, "a2") == ["t2"] and open_tasks_of(state, "a3") == ["t3"]


def test_attempts_count_every_claim_and_assignment() -> None:
    """Each claim or assignment of a task counts one attempt; orphaning and releasing do not; a failed result
    (ok false) marks the task failed, and a finished task cannot be assigned again."""
    timeline = Timeline()
    timeline.add("task.created", "coordinator", task="t1", title="Migrate")
    timeline.add("task.claimed", "a1", task="t1")
    timeline.add("task.orphaned", "coordinator", task="t1", agent="a1")
    timeline.add("task.claimed", "a2", task="t1")
    timeline.add("task.released", "a2", task="t1", reason="blocked")
    timeline.add("task.assigned", "coordinator", task="t1", agent="a3")
    state = project(copy.deepcopy(timeline.events))
    assert (state["tasks"]["t1"]["attempts"], state["tasks"]["t1"]["owner"]) == (3, "a3")
    timeline.add("task.completed", "a3", task="t1", result="migration failed", ok=False)
    timeline.add("task.assigned", "coordinator", task="t1", agent="a1")
    timeline.add("task.claimed", "a1", task="t1")
    state = project(timeline.events)
    task = state["finished"]["t1"]
    assert (task["status"], task["attempts"], task["owner"], task["result"]) == ("failed", 3, "a3",
                                                                                 "migration failed")
    assert "t1" not in state["tasks"], "a late claim or assignment does not bring a finished task back"


def test_a_result_for_a_task_never_created_here_is_still_recorded() -> None:
    """A claim or result for a task created on another machine makes the task known."""
    timeline = Timeline()
    timeline.add("task.completed", "a1", task="remote-7", result="ok")
    task = project(timeline.events)["finished"]["remote-7"]
    assert (task["status"], task["result"], task["completed_by"]) == ("completed", "ok", "a1")


# -- agents ---------------------------------------------------------------------------------------------------------


def test_agent_status_and_counters() -> None:
    """Joined agents are active; tool calls count per tool and failures; idle and back; left and lost agents are
    not live; heartbeats set progress and current task (one the agent holds)."""
    timeline = Timeline()
    timeline.add("task.created", "human", task="t9", title="t9")
    timeline.add("task.claimed", "a1", task="t9")
    timeline.add("agent.joined", "a1", name="main", pid=42)
    timeline.add("agent.joined", "a2", name="helper", parent="a1", agent_type="Explore")
    timeline.add("agent.tool", "a1", tool="Read", ok=True, file="src/app.py")
    timeline.add("agent.tool", "a1", tool="Bash", ok=False, error="exit 1")
    timeline.add("agent.heartbeat", "a1", tool_calls=2, progress=0.5, current_task="t9")
    timeline.add("agent.idle", "a2")
    state = project(copy.deepcopy(timeline.events))
    first = state["agents"]["a1"]
    assert (first["tool_calls"], first["failures"], first["tool_counts"]) == (2, 1, {"Read": 1, "Bash": 1})
    assert (first["progress"], first["current_task"], first["pid"]) == (0.5, "t9", 42)
    assert first["files_touched"] == ["src/app.py"] and first["last_seen"] == timeline.events[6]["ts"]
    assert state["agents"]["a2"]["status"] == "idle" and state["agents"]["a2"]["parent"] == "a1"
    assert live_agents(state) == ["a1", "a2"]
    timeline.add("agent.left", "a2", reason="done")
    timeline.add("agent.lost", "coordinator", agent="a1", reason="missed heartbeats")
    state = project(timeline.events)
    assert live_agents(state) == []
    assert (state["agents"]["a1"]["status"], state["agents"]["a1"]["lost_reason"]) == ("lost", "missed heartbeats")
    assert state["agents"]["a2"]["left_reason"] == "done"


# -- insights -------------------------------------------------------------------------------------------------------


def test_insight_duplicates_exact_and_near() -> None:
    """An insight equal after normalizing case and punctuation is a duplicate of the first; one whose word set
    overlaps by at least the threshold (Jaccard) is a near-duplicate; a different one is new. dup_of names the
    original, never another duplicate."""
    timeline = Timeline()
    original = timeline.add("insight.shared", "a1", text="The cache key ignores the user locale", tags=["cache"])
    timeline.add("insight.shared", "a2", text="the CACHE key ignores the user locale!!")  # the same words
    timeline.add("insight.shared", "a2", text="The cache key ignores the locale")  # 5 of 6 words: 0.83
    timeline.add("insight.shared", "a3", text="Cache key ignores locale")  # 4 of 6 words: 0.67
    timeline.add("insight.shared", "a3", text="Tests need a running Redis server")
    insights = project(timeline.events, Rules(insight_similarity_threshold=0.8))["insights"]
    assert [insight["dup_of"] for insight in insights] == [None, original["id"], original["id"], None, None]
    assert insights[0]["tags"] == ["cache"] and insights[1]["from"] == "a2"
    assert insights[1]["key"] == insights[0]["key"] == "the cache key ignores the user locale"
    looser = project(timeline.events, Rules(insight_similarity_threshold=0.6))["insights"]
    assert looser[3]["dup_of"] == original["id"]


def test_insights_are_bounded() -> None:
    """Only the newest `max_insights_kept` insights are kept."""
    timeline = Timeline()
    for number in range(12):
        timeline.add("insight.shared", "a1", text=f"finding number {number} " + "word " * number)
    insights = project(timeline.events, Rules(max_insights_kept=5))["insights"]
    assert [insight["seq"] for insight in insights] == [8, 9, 10, 11, 12]


# -- approvals ------------------------------------------------------------------------------------------------------


def test_approvals_asked_then_granted_or_denied() -> None:
    """A request is pending until answered; the answer records status, who, when and the note; an answer to a
    request not seen here is kept too."""
    timeline = Timeline()
    timeline.add("approval.requested", "a1", request="r1", question="Drop the legacy table?", options=["yes", "no"])
    timeline.add("approval.requested", "a2", request="r2", question="Force-push main?")
    assert {key: value["status"] for key, value in project(timeline.events)["approvals"].items()} == {
        "r1": "pending", "r2": "pending"}
    granted = timeline.add("approval.granted", "human", request="r1", note="go ahead")
    timeline.add("approval.denied", "human", request="r2")
    timeline.add("approval.granted", "human", request="r-elsewhere")
    state = project(timeline.events)
    assert state["approvals"] == {}, "answered requests leave the pending ones"
    approvals = state["answered"]
    assert approvals["r1"]["status"] == "granted" and approvals["r1"]["by"] == "human"
    assert approvals["r1"]["note"] == "go ahead" and approvals["r1"]["answered"] == granted["ts"]
    assert approvals["r1"]["question"] == "Drop the legacy table?" and approvals["r1"]["from"] == "a1"
    assert approvals["r2"]["status"] == "denied"
    assert approvals["r-elsewhere"]["status"] == "granted" and approvals["r-elsewhere"]["question"] is None


def test_an_approval_is_answered_once_by_the_human() -> None:
    """Deny then approve: the first answer stands (it is the one the agent heard); an answer from anyone but the
    human changes nothing; both are counted."""
    timeline = Timeline()
    timeline.add("approval.requested", "a1", request="r1", question="Drop it?")
    timeline.add("approval.granted", "a2", request="r1")
    timeline.add("approval.denied", "human", request="r1", note="no")
    timeline.add("approval.granted", "human", request="r1")
    state = project(timeline.events)
    assert (state["answered"]["r1"]["status"], state["answered"]["r1"]["note"]) == ("denied", "no")
    assert state["counts"]["ignored_answers"] == 2


# -- file conflicts -------------------------------------------------------------------------------------------------


def _two_agents_editing(gap: float, *, second_tool: str = "Edit", leave: str | None = None) -> Timeline:
    timeline = Timeline()
    timeline.add("agent.joined", "a1", name="a1")
    timeline.add("agent.joined", "a2", name="a2")
    timeline.add("agent.tool", "a1", tool="Edit", ok=True, file="src/app.py")
    if leave == "left":
        timeline.add("agent.left", "a1")
    elif leave == "lost":
        timeline.add("agent.lost", "coordinator", agent="a1", reason="gone")
    timeline.add("agent.tool", "a2", tool=second_tool, ok=True, file="src/app.py", after=gap)
    return timeline


def test_file_conflict_between_two_live_agents_within_the_window() -> None:
    """Two live agents writing one file within the window is a conflict naming the file and both agents."""
    timeline = _two_agents_editing(gap=599)
    conflicts = project(timeline.events, Rules(conflict_window_seconds=600))["conflicts"]
    assert conflicts == [{"file": "src/app.py", "agents": ["a1", "a2"], "seq": timeline.events[-1]["seq"],
                          "ts": timeline.events[-1]["ts"]}]


@pytest.mark.parametrize(("gap", "tool", "leave"), [(601, "Edit", None), (5, "Read", None), (5, "Edit", "left"),
                                                    (5, "Edit", "lost")],
                         ids=["outside-window", "only-read", "other-left", "other-lost"])
def test_no_file_conflict_outside_the_window_for_reads_or_when_the_other_agent_is_gone(gap: float, tool: str,
                                                                                       leave: str | None) -> None:
    """No conflict when the second write comes after the window, when it is only a read, or when the first writer
    left or was lost."""
    assert project(_two_agents_editing(gap, second_tool=tool, leave=leave).events, Rules())["conflicts"] == []


def test_one_agent_writing_its_own_file_again_is_no_conflict() -> None:
    """An agent editing the same file repeatedly never conflicts with itself."""
    timeline = Timeline()
    timeline.add("agent.joined", "a1", name="a1")
    for _ in range(3):
        timeline.add("agent.tool", "a1", tool="Write", ok=True, file="src/app.py")
    assert project(timeline.events)["conflicts"] == []


def test_reported_file_conflicts_are_kept() -> None:
    """A file.conflict event (the coordinator's decision) is recorded as it is."""
    timeline = Timeline()
    timeline.add("file.conflict", "coordinator", file="src/db.py", agents=["a1", "a2"])
    assert project(timeline.events)["conflicts"][0]["agents"] == ["a1", "a2"]


# -- bounds ---------------------------------------------------------------------------------------------------------


def test_collections_that_grow_with_history_are_bounded() -> None:
    """Files per agent, conflicts and watched files stay within their limits however long the session is."""
    timeline = Timeline()
    timeline.add("agent.joined", "a1", name="a1")
    timeline.add("agent.joined", "a2", name="a2")
    for number in range(MAX_CONFLICTS + 20):
        timeline.add("agent.tool", "a1" if number % 2 else "a2", tool="Edit", ok=True, file="shared.py")
    for number in range(MAX_WATCHED_FILES + 50):
        timeline.add("agent.tool", "a1", tool="Write", ok=True, file=f"gen/{number}.py", after=0.01)
    state = project(timeline.events, Rules(max_files_per_agent=3))
    assert len(state["conflicts"]) == MAX_CONFLICTS
    assert state["conflicts"][-1]["seq"] == MAX_CONFLICTS + 22
    assert len(state["writes"]) == MAX_WATCHED_FILES
    assert f"gen/{MAX_WATCHED_FILES + 49}.py" in state["writes"] and "gen/0.py" not in state["writes"]
    assert state["agents"]["a1"]["files_touched"] == [f"gen/{MAX_WATCHED_FILES + n}.py" for n in (47, 48, 49)]
    assert len(dumps(state)) < 200_000


# -- forward compatibility ------------------------------------------------------------------------------------------


def test_unknown_types_and_fields_are_counted_and_otherwise_ignored() -> None:
    """An event of an unknown type changes nothing but its count and the seq; unknown fields in known events and in
    the envelope change nothing at all."""
    plain = Timeline()
    plain.add("agent.joined", "a1", name="a1")
    plain.add("task.claimed", "a1", task="t1")
    extended = Timeline()
    extended.add("agent.joined", "a1", name="a1", mood="curious")["priority"] = 3
    extended.add("task.claimed", "a1", task="t1", estimate_minutes=30)
    baseline = project(copy.deepcopy(plain.events))
    assert dumps(project(copy.deepcopy(extended.events))) == dumps(baseline)
    extended.add("insight.voted", "a1", channel="insights", insight="x", weight=1, after=0)
    with_unknown = project(extended.events)
    assert with_unknown["counts"]["insight.voted"] == 1 and with_unknown["seq"] == 3
    del with_unknown["counts"]["insight.voted"]
    baseline["seq"] = 3
    assert dumps(with_unknown) == dumps(baseline)


def test_known_types_missing_their_fields_do_not_crash_the_fold() -> None:
    """Known types whose data lacks its fields (a writer of another version, or a damaged writer) are folded without
    an exception and leave a state that still serializes as a snapshot (regression: a tool call without `tool`
    put a null key into the agent's tool counts)."""
    timeline = Timeline()
    for event_type in sorted(EVENT_TYPES):
        timeline.add(event_type, "a1")
    state = project(timeline.events)
    assert state["seq"] == len(timeline.events)
    assert state["agents"]["a1"]["tool_counts"] == {} and state["agents"]["a1"]["tool_calls"] == 1
    assert orjson.loads(dumps(state))["seq"] == len(timeline.events)


# -- timestamps -----------------------------------------------------------------------------------------------------


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2400, 12, 31)))
def test_seconds_of_agrees_with_datetime(moment: datetime.datetime) -> None:
    """Property: seconds_of (hand-written calendar arithmetic) equals datetime's POSIX time for any UTC instant."""
    ts = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    expected = moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    assert seconds_of(ts) == pytest.approx(expected, abs=1e-6)


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 1), max_value=datetime.datetime(2037, 12, 31)))
def test_utc_text_writes_what_datetime_writes_and_seconds_of_reads_it_back(moment: datetime.datetime) -> None:
    """Property: the one UTC writer (timestamps.utc_text) gives datetime's text for any instant, with microseconds or
    in whole seconds (the hook's log, the leases), and the one reader takes both back; day_of and clock_of read the
    parts a person sees. (Until 2038: later, a float's seconds are coarser than a microsecond.)"""
    from popkit_power.timestamps import clock_of, day_of, utc_text

    seconds = moment.replace(tzinfo=datetime.timezone.utc).timestamp()
    ts = utc_text(seconds)
    assert ts == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert utc_text(seconds, whole=True) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert seconds_of(ts) == pytest.approx(seconds, abs=1e-6)
    assert seconds_of(utc_text(seconds, whole=True)) == int(seconds)
    assert (day_of(ts), clock_of(ts)) == (moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S"))


@pytest.mark.parametrize("ts", [None, 5, "", "yesterday", "2026-11-24", "2026/11/24T10:00:00Z", "2026-11-24 10:00:00Z"])
def test_seconds_of_is_none_for_what_is_not_a_timestamp(ts: Any) -> None:
    """Anything but an ISO UTC timestamp gives None (and so never a conflict), not an exception."""
    assert seconds_of(ts) is None


def test_records_with_wrong_field_kinds_are_counted_not_fatal() -> None:
    """A record whose checksum holds but whose fields have the wrong kinds never stops the fold, and rebuilding
    gives the same state (so snapshots still agree)."""
    from popkit_power.projector import project

    events = [
        {"seq": 1, "type": "agent.tool", "from": ["a list"], "data": {"tool": "Bash"}},
        {"seq": 2, "type": "agent.heartbeat", "from": "a", "data": {"tool_calls": 1, "files_touched": 5}},
        {"seq": 3, "type": "insight.shared", "from": "a", "data": {"text": "x", "tags": 7}},
        {"seq": 4, "type": ["not", "a", "type"], "from": "b", "data": {}},
        {"seq": 5, "type": "agent.joined", "from": "b", "data": {"name": "bee"}},
    ]
    state = project(events)
    assert state["counts"]["invalid"] == 4
    assert state["agents"]["b"]["name"] == "bee" and state["seq"] == 5
    assert orjson.dumps(project(events), option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        state, option=orjson.OPT_SORT_KEYS)
