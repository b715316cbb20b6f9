"""The status model (status.py) and its text (cli/render.py), with frozen time: the coordinator's health, ages, one
short name per agent in every section, lost agents, parked tasks, duplicate insights; and what a hostile or huge
session does to it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory, StepTickTimeFactory, TickingDateTimeFactory
from rich.console import Console

from popkit_power.cli import render
from popkit_power.display import clean, short_names
from popkit_power.keys import agent_name
from popkit_power.projector import project
from popkit_power.session import Session
from popkit_power.status import StatusReader, coordinator_health, session_status
from popkit_power.timestamps import ago

T0 = "2026-11-24 10:00:00"
Clock = FrozenDateTimeFactory | StepTickTimeFactory | TickingDateTimeFactory
ALICE = "3f2a9b1c-5d4e-4f60-8a7b-1c2d3e4f5a6b:main"
BOB = "9c41d2e3-f4a5-4b6c-9d7e-8f9a0b1c2d3e:main"
EXPLORER = "3f2a9b1c-5d4e-4f60-8a7b-1c2d3e4f5a6b:a7e3c9"


def joined(session: Session, key: str, cwd: str, name: str | None = None, **extra: Any) -> None:
    """agent.joined as the hook writes it (hook/handlers.py): its name, Claude Code ids, pid, host and cwd."""
    claude_session, agent_id = key.split(":")
    data = {"name": name or agent_name(key, extra.get("agent_type")), "claude_session": claude_session,
            "agent_id": agent_id, "pid": 5000, "host": "laptop", "cwd": cwd, **extra}
    session.publish("agent.joined", data, sender=key)


@pytest.fixture
def clock() -> Iterator[Clock]:
    """Time frozen at T0 for the whole test (events are stamped with it, and status reads it as now)."""
    with freeze_time(T0) as frozen:
        yield frozen


def status_now(session: Session) -> dict[str, Any]:
    return session_status(session, *session.projection())


def text_of(session: Session) -> str:
    return render.status_text(status_now(session))


def terminal_text(info: dict[str, Any]) -> str:
    """The status as drawn on a (forced) colour terminal."""
    console = Console(file=io.StringIO(), force_terminal=True, color_system="standard", width=120, markup=False,
                      highlight=False)
    return render.status_output(console, info)


# -- the coordinator's health ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("silence", "health"), [(0, "alive"), (45, "alive"), (45.5, "silent"), (3600, "silent")])
def test_the_coordinator_is_alive_while_its_status_is_at_most_three_heartbeats_old(
        clock: Clock, session: Session, silence: float, health: str) -> None:
    """heartbeat_seconds is 15 by default: a status 45 s old is alive, one a moment older is silent."""
    session.publish("coordinator.started", {"pid": 4242, "host": "laptop"}, sender="coordinator")
    clock.tick(10)
    session.publish("coordinator.status", {"agents": 0, "open_tasks": 0}, sender="coordinator")
    clock.tick(silence)
    coordinator = status_now(session)["coordinator"]
    assert (coordinator["health"], coordinator["alive"]) == (health, health == "alive")
    assert (coordinator["pid"], coordinator["host"], coordinator["age_seconds"]) == (4242, "laptop", silence)
    line = next(line for line in render.status_text(status_now(session)).splitlines()
                if line.startswith("coordinator"))
    if health == "alive":
        assert f"alive  pid 4242 on laptop, last status {ago(silence)}" in line
    else:
        assert "silent" in line and "it may have died" in line and "expected every 15 s" in line


def test_the_heartbeat_comes_from_the_config(clock: Clock, session: Session) -> None:
    """With heartbeat_seconds 2, six seconds of silence is too long."""
    session.publish("coordinator.started", {"pid": 1}, sender="coordinator")
    clock.tick(6.5)
    assert status_now(session)["coordinator"]["health"] == "alive"
    session.config.heartbeat_seconds = 2
    assert status_now(session)["coordinator"]["health"] == "silent"


def test_a_stopped_coordinator_and_none_at_all(clock: Clock, session: Session) -> None:
    assert status_now(session)["coordinator"]["health"] == "none"
    assert "no coordinator has run in this session" in text_of(session)
    session.publish("coordinator.started", {"pid": 4242, "host": "laptop"}, sender="coordinator")
    session.publish("coordinator.stopped", {"reason": "stopped by human"}, sender="coordinator")
    clock.tick(120)
    info = status_now(session)
    assert (info["coordinator"]["health"], info["coordinator"]["alive"]) == ("stopped", False)
    assert "stopped  2 min ago (stopped by human)" in render.status_text(info)


def test_a_clock_ahead_of_ours_is_not_a_negative_age() -> None:
    """A status stamped by a machine whose clock runs ahead is 0 s old, not -3 s."""
    health = coordinator_health({"status": "running", "last_seen": "2026-11-24T10:00:03.000000Z"},
                                now=1795514400.0, heartbeat_seconds=15)
    assert (health["health"], health["age_seconds"], health["ago"]) == ("alive", 0.0, "0 s ago")


@pytest.mark.parametrize(("seconds", "text"), [(None, "never"), (0, "0 s ago"), (12.9, "12 s ago"),
                                               (59.99, "59 s ago"), (60, "1 min ago"), (3599, "59 min ago"),
                                               (3600, "1 h ago"), (86400 * 3 + 5, "3 d ago")])
def test_ago(seconds: float | None, text: str) -> None:
    assert ago(seconds) == text


# -- agents, tasks, approvals, insights -----------------------------------------------------------------------------


def test_an_agent_seen_12_s_ago_with_its_place_task_and_files(clock: Clock, session: Session) -> None:
    joined(session, ALICE, "/home/dev/webapp")
    session.publish("task.created", {"task": "t-callback", "title": "Implement the OAuth callback"}, sender=BOB)
    session.publish("task.claimed", {"task": "t-callback"}, sender=ALICE)
    for path in ("/home/dev/webapp/src/a.py", "/home/dev/webapp/src/b.py", "/elsewhere/c.py", "/home/dev/webapp/d.py"):
        session.publish("agent.tool", {"tool": "Edit", "ok": True, "file": path}, sender=ALICE)
    clock.tick(12.4)
    agent = status_now(session)["agents"][ALICE]
    assert (agent["age_seconds"], agent["ago"], agent["label"]) == (pytest.approx(12.4), "12 s ago", "webapp")
    assert (agent["current_task"], agent["current_task_title"]) == ("t-callback", "Implement the OAuth callback")
    assert agent["recent_files"] == ["d.py", "/elsewhere/c.py", "src/b.py"]  # newest first, inside cwd relative
    row = next(line for line in text_of(session).splitlines() if line.startswith("  main-3f2a9b"))
    assert row.split() == ["main-3f2a9b", "webapp", "active", "12", "s", "ago", "t-callback", "Implement", "the",
                           "OAuth", "callback", "d.py,", "/elsewhere/c.py,", "src/b.py"]


def test_the_label_names_the_host_when_agents_work_on_several_machines(session: Session) -> None:
    joined(session, ALICE, "/home/dev/webapp/")
    assert status_now(session)["agents"][ALICE]["label"] == "webapp"
    joined(session, BOB, "C:\\work\\api", host="desk")
    agents = status_now(session)["agents"]
    assert (agents[ALICE]["label"], agents[BOB]["label"]) == ("laptop:webapp", "desk:api")


def test_one_short_name_per_agent_in_every_section(session: Session) -> None:
    """The agent that owns a task, asks for approval, shares an insight and edits a contested file is `main-3f2a9b`
    wherever it appears; its key is shown nowhere. An agent never joined gets keys.agent_name of its key."""
    joined(session, ALICE, "/home/dev/webapp")
    session.publish("task.created", {"task": "t1", "title": "Parser"}, sender="human")
    session.publish("task.claimed", {"task": "t1"}, sender=ALICE)
    session.publish("approval.requested", {"request": "r-drop", "question": "Drop the table?",
                                           "options": ["drop", "keep"]}, sender=ALICE)
    session.publish("insight.shared", {"text": "The cache ignores the locale"}, sender=ALICE)
    session.publish("agent.tool", {"tool": "Edit", "ok": True, "file": "/repo/x.py"}, sender=ALICE)
    session.publish("agent.tool", {"tool": "Edit", "ok": True, "file": "/repo/x.py"}, sender=BOB)  # never joined
    info = status_now(session)
    assert info["names"][ALICE] == "main-3f2a9b" and info["names"][BOB] == "main-9c41d2"
    text = render.status_text(info)
    assert ALICE not in text and BOB not in text
    sections = text.split("\n\n")
    for title, expected in (("agents", "main-3f2a9b"), ("tasks", "main-3f2a9b"), ("approvals", "main-3f2a9b"),
                            ("insights", "main-3f2a9b"), ("file conflicts", "main-3f2a9b, main-9c41d2")):
        section = next(part for part in sections if part.startswith(title))
        assert expected in section, section
    approvals = next(part for part in sections if part.startswith("approvals"))
    assert "r-drop" in approvals and "Drop the table?" in approvals and "drop / keep" in approvals
    assert "1 pending (answer with: popkit-power approve REQUEST, or deny REQUEST)" in approvals


def test_names_are_unique_ignoring_case_and_never_the_human_or_the_coordinator(session: Session) -> None:
    joined(session, ALICE, "/a", name="builder")
    joined(session, BOB, "/b", name="Builder")
    joined(session, EXPLORER, "/c", name="Human", agent_type="Explore")
    session.publish("insight.shared", {"text": "hello from the human"}, sender="human")
    names = status_now(session)["names"]
    assert (names[ALICE], names[BOB], names[EXPLORER], names["human"]) == ("builder", "Builder#2", "Explore-a7e3c9",
                                                                           "human")


def test_lost_and_left_agents_with_their_reasons(session: Session) -> None:
    joined(session, ALICE, "/srv/billing")
    joined(session, BOB, "/srv/billing")
    joined(session, EXPLORER, "/srv/billing", agent_type="Explore", name="Explore-a7e3c9")
    session.publish("task.created", {"task": "t-schema", "title": "Port the schema"}, sender="coordinator")
    session.publish("task.claimed", {"task": "t-schema"}, sender=ALICE)
    session.publish("agent.lost", {"agent": ALICE, "reason": "process 7201 is gone"}, sender="coordinator")
    session.publish("task.orphaned", {"task": "t-schema", "agent": ALICE}, sender="coordinator")
    session.publish("agent.left", {"reason": "subagent finished"}, sender=EXPLORER)
    info = status_now(session)
    assert list(info["agents"]) == [BOB, ALICE, EXPLORER]  # live ones first, then lost, then left
    assert info["agents"][ALICE]["lost_reason"] == "process 7201 is gone"
    text = render.status_text(info)
    assert "agents  3 (1 active, 1 lost, 1 left)" in text
    assert "lost: process 7201 is gone" in text and "left: subagent finished" in text
    orphan = next(line for line in text.splitlines() if line.startswith("  t-schema"))
    assert orphan.split()[:4] == ["t-schema", "orphaned", "was", "main-3f2a9b"]


def test_parked_orphaned_and_open_tasks_are_listed_and_finished_ones_counted(session: Session) -> None:
    """Tasks waiting for someone come first. `parked` is what the coordinator's task.parked leaves in the state; the
    fold does not know that event yet, so the test puts it there as the fold will."""
    for n in range(1, 7):
        session.publish("task.created", {"task": f"t{n}", "title": f"Task {n}"}, sender="human")
    session.publish("task.claimed", {"task": "t1"}, sender=ALICE)
    session.publish("task.completed", {"task": "t2", "result": "done"}, sender="human")
    session.publish("task.completed", {"task": "t3", "result": "no", "ok": False}, sender="human")
    session.publish("task.claimed", {"task": "t4"}, sender=BOB)
    session.publish("task.orphaned", {"task": "t4", "agent": BOB}, sender="coordinator")
    state, position = session.projection()
    state["tasks"]["t5"].update(status="parked", previous_owner=BOB, attempts=3)
    info = session_status(session, state, position)
    assert info["unfinished_tasks"] == ["t5", "t4", "t6", "t1"]
    assert info["task_counts"] == {"claimed": 1, "completed": 1, "failed": 1, "orphaned": 1, "parked": 1, "open": 1}
    text = render.status_text(info)
    assert "tasks  4 unfinished (1 parked, 1 orphaned, 1 open); 2 finished (1 completed, 1 failed)" in text
    rows = [line.split()[:2] for line in text.splitlines() if line.startswith("  t") and "title" not in line]
    assert rows == [["t5", "parked"], ["t4", "orphaned"], ["t6", "open"], ["t1", "claimed"]]
    assert "Task 2" not in text and "Task 3" not in text


def test_duplicate_insights_are_counted_not_listed(session: Session) -> None:
    session.publish("insight.shared", {"text": "OAuth state parameter is not validated in callback.py"}, sender=ALICE)
    session.publish("insight.shared", {"text": "The OAuth state parameter is not validated in callback.py!"},
                    sender=BOB)
    session.publish("insight.shared", {"text": "OAuth state parameter is not validated in callback.py"}, sender=BOB)
    session.publish("insight.shared", {"text": "Tests need a database"}, sender=BOB)
    info = status_now(session)
    assert [(insight["duplicates"], insight["dup_of"] is None) for insight in info["insights"]] == [
        (2, True), (0, False), (0, False), (0, True)]
    text = render.status_text(info)
    assert "insights  2 (2 duplicates held back)" in text
    assert "OAuth state parameter is not validated in callback.py (+2 similar)" in text
    assert "The OAuth state" not in text
    assert text.index("Tests need a database") < text.index("OAuth state")  # newest first


def test_a_session_with_no_agents_and_no_tasks(session: Session) -> None:
    text = text_of(session)
    assert "agents  none yet (an agent joins when Claude Code starts with the hooks" in text
    assert "tasks  none yet" in text
    assert "approvals" not in text and "insights" not in text and "\x1b" not in text


def test_reading_again_folds_only_what_is_new(clock: Clock, session: Session) -> None:
    reader = StatusReader(session)
    first = reader.read()
    assert first["agents"] == {}
    joined(session, ALICE, "/w")
    session.publish("task.created", {"task": "t1", "title": "x"}, sender=ALICE)
    again = reader.read()
    assert list(again["agents"]) == [ALICE] and again["journal"] == status_now(session)["journal"]
    assert {key: value for key, value in again.items() if key != "now"} == {
        key: value for key, value in status_now(session).items() if key != "now"}


# -- attacks ------------------------------------------------------------------------------------------------------


def test_markup_and_escape_sequences_in_names_and_texts_are_shown_as_written(session: Session) -> None:
    """Rich markup from an agent is text, not styling; a terminal escape sequence or a newline in a name cannot
    move the cursor, colour the screen or start a line that looks like another section."""
    joined(session, ALICE, "/w/[red]dir", name="[red]boom[/red]")
    joined(session, BOB, "/w", name="evil\x1b[2J\x1b[31m\ninsights  fake")
    session.publish("insight.shared", {"text": "[bold]not bold[/bold] [link=http://x]y[/link]"}, sender=ALICE)
    session.publish("approval.requested", {"request": "r1", "question": "ok?\x07\x1b]0;title\x07",
                                           "options": ["[blink]yes", "no\nway"]}, sender=BOB)
    info = status_now(session)
    for text in (render.status_text(info), terminal_text(info)):
        assert "[red]boom[/red]" in text and "[red]dir" in text
        assert "[bold]not bold[/bold] [link=http://x]y[/link]" in text and "[blink]yes / no way" in text
        assert "\x07" not in text and "\x1b[2J" not in text and "\x1b]" not in text
        assert "evil\ufffd[2J\ufffd[31m insights fake" in text
        assert not any(line.startswith("insights  fake") for line in text.splitlines())
    assert "\x1b" not in render.status_text(info)


def test_a_huge_name_and_text_are_cut_and_every_line_fits(session: Session) -> None:
    joined(session, ALICE, "/w/" + "d" * 5000, name="n" * 100_000)
    session.publish("task.created", {"task": "t" * 3000, "title": "T" * 100_000}, sender=ALICE)
    session.publish("task.claimed", {"task": "t" * 3000}, sender=ALICE)
    session.publish("insight.shared", {"text": "word " * 50_000}, sender=ALICE)
    info = status_now(session)
    assert info["names"][ALICE] == "n" * 31 + "\u2026"
    text = render.status_text(info)
    assert max(len(line) for line in text.splitlines()) <= render.PLAIN_WIDTH
    assert "n" * 31 + "\u2026" in text
    assert len(text) < 6000


def test_thousands_of_agents_and_tasks_stay_readable(session: Session) -> None:
    """3,000 agents and 3,000 tasks: the text shows the first of each and says how many more there are; --json
    keeps them all."""
    events: list[dict[str, Any]] = []
    for n in range(3000):
        key = f"{n:08x}-0000-4000-8000-000000000000:main"
        events.append({"seq": len(events) + 1, "ts": "2026-11-24T10:00:00.000000Z", "from": key,
                       "type": "agent.joined", "data": {"name": f"main-{n:06d}", "cwd": f"/w/{n}"}})
        events.append({"seq": len(events) + 1, "ts": "2026-11-24T10:00:01.000000Z", "from": key,
                       "type": "task.created", "data": {"task": f"t{n}", "title": f"Task {n}"}})
    for n in range(0, 60, 3):
        events.append({"seq": len(events) + 1, "ts": "2026-11-24T10:00:02.000000Z", "from": "human",
                       "type": "approval.requested", "data": {"request": f"r{n}", "question": f"q{n}?"}})
    state = project(events)
    with freeze_time("2026-11-24 10:00:30"):
        info = session_status(session, state, session.journal.end_position())
    assert len(info["agents"]) == 3000 and len(set(info["names"].values())) == 3001  # the agents and the human
    text = render.status_text(info)
    lines = text.splitlines()
    assert len(lines) < 100
    assert "agents  3000 (3000 active)" in text and "tasks  3000 unfinished (3000 open)" in text
    assert "  ... and 2975 more agents (popkit-power status --json lists them all)" in lines
    assert "  ... and 2975 more unfinished tasks (popkit-power status --json lists them all)" in lines
    assert "  ... and 10 more pending approvals (popkit-power status --json lists them all)" in lines


def test_records_with_fields_of_the_wrong_kinds_do_not_break_status(session: Session) -> None:
    """Another writer's bug (or a newer version) can put any JSON where a string belongs: the fold keeps it, and
    status shows it as text instead of failing."""
    odd: list[Any] = [["a", "list"], {"an": "object"}, 7, None, True]
    events = [{"seq": 1, "ts": 12345, "from": "agent-a", "type": "agent.joined",
               "data": {"name": odd[0], "cwd": odd[1], "host": odd[2]}},
              {"seq": 2, "ts": "2026-11-24T10:00:00.000000Z", "from": "agent-a", "type": "agent.heartbeat",
               "data": {"tool_calls": 1, "current_task": odd[0]}},
              {"seq": 3, "ts": None, "from": "coordinator", "type": "coordinator.started",
               "data": {"pid": odd[1], "host": odd[0]}},
              {"seq": 4, "ts": "x", "from": "human", "type": "task.created", "data": {"task": "t1", "title": odd[1]}},
              {"seq": 5, "ts": "x", "from": "coordinator", "type": "task.orphaned", "data": {"task": "t1", "agent": 7}},
              {"seq": 6, "ts": "x", "from": "agent-a", "type": "approval.requested",
               "data": {"request": "r1", "question": odd[0], "options": "not a list"}},
              {"seq": 7, "ts": "x", "from": "coordinator", "type": "file.conflict",
               "data": {"file": odd[1], "agents": [7, None, "agent-a"]}},
              {"seq": 8, "ts": "x", "from": "human", "type": "objective.updated", "data": {"text": odd[1]}}]
    with freeze_time(T0):
        info = session_status(session, project(events), session.journal.end_position())
    text = render.status_text(info) + terminal_text(info)
    assert "['a', 'list']" in text and "{'an': 'object'}" in text and "was -" in text
    assert info["coordinator"]["health"] == "silent" and info["agents"]["agent-a"]["ago"] == "never"


def test_short_names_of_an_empty_state_and_clean() -> None:
    assert short_names(project([])) == {}
    assert clean("a\tb\n\nc", 10) == "a b c" and clean("abcdef", 4) == "abc\u2026" and clean(None, 9) == "None"
