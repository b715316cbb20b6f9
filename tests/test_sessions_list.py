"""`popkit-power sessions` and `sessions prune`: every session in brief, read from the two ends of its journal, and
old sessions removed (never the active one)."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from freezegun import freeze_time
from runners import run_cli as run

from popkit_power.errors import ConfigError
from popkit_power.home import active_session, list_sessions
from popkit_power.session import Session, start_session, stop_session
from popkit_power.session_index import TAIL_BYTES, parse_age, prune, summaries


def three_sessions(power_dir: str) -> tuple[str, str, str]:
    """An old closed session (2020) with a task done by one agent, one never closed (2021), and an active one."""
    with freeze_time("2020-03-01T10:00:00Z"):
        old = start_session(power_dir, "Old work", sender="human")
        old.publish("agent.joined", {"name": "a"}, sender="s1:main")
        old.publish("task.created", {"task": "t-1", "title": "one", "owner": "s1:main"}, sender="human")
        old.publish("task.completed", {"task": "t-1", "result": "ok"}, sender="s1:main")
    with freeze_time("2020-03-01T11:30:00Z"):
        stop_session(power_dir, sender="human")
    with freeze_time("2021-06-01T08:00:00Z"):
        crashed = start_session(power_dir, "Died with its process", sender="human")
        crashed.publish("agent.joined", {"name": "b"}, sender="s2:main")
    current = start_session(power_dir, "Now", sender="human")  # the active one; the 2021 one was never closed
    return old.id, crashed.id, current.id


def test_sessions_lists_each_with_objective_times_agents_events_and_outcome(power_dir: str) -> None:
    old, crashed, current = three_sessions(power_dir)
    found = {one["session"]: one for one in summaries(power_dir)}
    assert found[old]["outcome"] == "closed" and found[old]["ended"].startswith("2020-03-01T11:30:00")
    assert found[old]["started"].startswith("2020-03-01T10:00:00") and found[old]["objective"] == "Old work"
    assert (found[old]["agents"], found[old]["events"], found[old]["tasks"]) == (1, 6, {"completed": 1})
    assert found[crashed]["outcome"] == "not closed" and found[crashed]["agents"] == 1
    assert found[crashed]["ended"] is None and found[crashed]["last_event"].startswith("2021-06-01")
    assert found[current]["outcome"] == "active" and found[current]["events"] == 2

    result = run("sessions")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"3 sessions in {power_dir}, oldest first:")
    assert f"  {old}  2020-03-01 10:00:00 to 2020-03-01 11:30:00, closed (stopped)" in result.stdout
    assert "      Old work: 1 agent, 6 events, 1 completed" in result.stdout
    assert f"  {crashed}  2021-06-01 08:00:00 not closed (last event 2021-06-01 08:00:00)" in result.stdout
    assert "ACTIVE" in result.stdout.split(current)[1].splitlines()[0]
    lines = run("sessions", "--json").stdout.splitlines()
    assert [orjson.loads(line)["session"] for line in lines] == [old, crashed, current]


def test_a_long_session_is_summed_up_from_its_tail(power_dir: str) -> None:
    session = start_session(power_dir, "Long", sender="human")
    text = "x" * 1000
    session.journal.append([orjson.dumps(session.event("message.broadcast", {"text": text}, sender="human"))
                            for _ in range(2 * TAIL_BYTES // 1000)])
    stop_session(power_dir, sender="human")
    [found] = summaries(power_dir)
    assert found["outcome"] == "closed" and found["events"] == 2 + 2 * TAIL_BYTES // 1000 + 1


def test_no_sessions_says_how_to_start(power_dir: str) -> None:
    result = run("sessions")
    assert result.exit_code == 0 and "no sessions in" in result.stdout and "popkit-power demo" in result.stdout


def test_prune_removes_old_sessions_but_never_the_active_one(power_dir: str) -> None:
    old, crashed, current = three_sessions(power_dir)
    dry = run("sessions", "prune", "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0 and f"would remove: {old} (Old work)" in dry.stdout
    assert len(list_sessions(power_dir)) == 3, "a dry run removes nothing"
    result = run("sessions", "prune", "--older-than", "30d")
    assert result.exit_code == 0, result.output
    assert f"removed: {old}" in result.stdout and f"removed: {crashed}" in result.stdout
    assert result.stdout.strip().endswith("removed 2 sessions that ended more than 30d ago")
    assert list_sessions(power_dir) == [current] and active_session(power_dir) == current


def test_prune_keeps_an_old_active_session_and_says_why(power_dir: str) -> None:
    with freeze_time("2020-03-01T10:00:00Z"):
        old = start_session(power_dir, "Still on", sender="human")
    removed, kept = prune(power_dir, 86400)
    assert removed == [] and kept == [(old.id, "it is the active session (popkit-power stop closes it)")]
    removed, kept = prune(power_dir, 86400, running=lambda directory: True)
    assert os.path.isdir(Path(power_dir, "sessions", old.id))


def test_prune_keeps_a_session_whose_coordinator_runs(power_dir: str) -> None:
    with freeze_time("2020-03-01T10:00:00Z"):
        start_session(power_dir, "One", sender="human")
        stop_session(power_dir, sender="human")
    removed, kept = prune(power_dir, 86400, running=lambda directory: True)
    assert removed == [] and kept[0][1] == "its coordinator still runs"


def test_a_session_link_planted_in_sessions_is_not_followed(power_dir: str, tmp_path: Path) -> None:
    with freeze_time("2020-03-01T10:00:00Z"):
        session = start_session(power_dir, "One", sender="human")
        stop_session(power_dir, sender="human")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    os.symlink(outside, Path(power_dir, "sessions", "20200101-000000-aaaaaa"))
    removed, kept = prune(power_dir, 86400)
    assert [one["session"] for one in removed] == [session.id]
    assert (outside / "keep.txt").read_text() == "mine"
    assert kept and "link" in kept[0][1]


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400),
                                               ("90s", 90), ("1.5m", 90)])
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["30", "d", "-1d", "xd", "nand", "infd"])
def test_bad_ages_are_refused_naming_the_form(text: str) -> None:
    with pytest.raises(ConfigError, match="--older-than"):
        parse_age(text)


def test_prune_with_a_bad_age_is_one_line(power_dir: str) -> None:
    result = run("sessions", "prune", "--older-than", "soon")
    assert result.exit_code == 2 and "give a number and a unit" in result.stderr


def test_session_still_readable_after_prune_of_others(power_dir: str) -> None:
    _old, _crashed, current = three_sessions(power_dir)
    prune(power_dir, 30 * 86400)
    assert Session(power_dir, current, read_only=True).id == current
