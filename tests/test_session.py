"""Sessions: starting and stopping, publishing, and the projection with its snapshots."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from popkit_power.config import Config
from popkit_power.errors import ProtocolError, SessionError
from popkit_power.home import active_session
from popkit_power.keys import SNAPSHOT_SUFFIX
from popkit_power.projector import project
from popkit_power.session import Session, start_session, stop_session


def test_start_records_the_objective_and_activates(power_dir: str) -> None:
    """start_session writes session.opened and objective.set as seqs 1-2 and makes the session active."""
    session = start_session(power_dir, "  Ship it  ", sender="lead")
    assert active_session(power_dir) == session.id
    opened, objective = session.journal.reader()
    assert (opened["type"], opened["data"], opened["seq"]) == ("session.opened", {"objective": "Ship it"}, 1)
    assert (objective["type"], objective["from"], objective["session"]) == ("objective.set", "lead", session.id)
    assert opened["origin"] == session.origin and Session.active(power_dir).id == session.id


def test_start_refuses_an_empty_objective(power_dir: str) -> None:
    """An objective of only spaces is a SessionError; nothing is created."""
    with pytest.raises(SessionError, match="objective"):
        start_session(power_dir, "   ", sender="lead")
    assert not os.path.exists(power_dir)


def test_stop_closes_and_turns_power_mode_off(session: Session) -> None:
    """stop_session appends session.closed with a summary of what was done and removes the active pointer; a second
    stop has nothing to stop."""
    session.publish("task.created", {"task": "t1", "title": "lexer"}, sender="lead")
    session.publish("task.claimed", {"task": "t1"}, sender="lead")
    session.publish("task.completed", {"task": "t1", "result": "done"}, sender="lead")
    session.publish("task.created", {"task": "t2", "title": "parser"}, sender="lead")
    session.publish("insight.shared", {"text": "use the cache"}, sender="lead")
    stop_session(session.power_dir, sender="lead", reason="done")
    assert list(session.journal.reader())[-1]["data"] == {
        "reason": "done", "summary": {"agents": 0, "tasks": {"completed": 1, "open": 1}, "insights": 1,
                                      "approvals": {}}}
    assert active_session(session.power_dir) is None
    with pytest.raises(SessionError, match="no active power session"):
        stop_session(session.power_dir, sender="lead")


def test_publish_validates_before_appending(session: Session) -> None:
    """An invalid event raises ProtocolError and nothing is appended."""
    with pytest.raises(ProtocolError, match=r"data\.task"):
        session.publish("task.claimed", {}, sender="a")
    assert [record["seq"] for record in session.journal.reader()] == [1, 2]


def test_a_batch_is_one_atomic_append(session: Session) -> None:
    """append_events gives consecutive seqs to a batch in its order."""
    events = [session.event("message.broadcast", {"text": str(n)}, sender="a") for n in range(5)]
    appended = session.append_events(events)
    assert (appended.first_seq, appended.last_seq) == (3, 7)
    assert [record["data"]["text"] for record in list(session.journal.reader())[2:]] == ["0", "1", "2", "3", "4"]


def _fill(session: Session, count: int) -> None:
    session.append_events([session.event("agent.tool", {"tool": "Edit", "ok": True, "file": f"f{n % 7}.py"},
                                         sender=f"agent-{n % 3}") for n in range(count)])


def test_projection_saves_a_snapshot_and_resumes_from_it(power_dir: str) -> None:
    """After a tail of at least snapshot_every_events, projection() writes a private snapshot; the next projection
    starts from it and gives the state a rebuild from zero gives."""
    config = Config(snapshot_every_events=100)
    session = start_session(power_dir, "Snapshots", sender="lead", config=config)
    _fill(session, 150)
    _state, position = session.projection()
    [name] = os.listdir(session.snapshots.directory)
    assert name == f"{position.seq - 1:016d}{SNAPSHOT_SUFFIX}" and position.seq == 153
    assert stat.S_IMODE(os.stat(session.snapshots.directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(session.snapshots.directory, name)).st_mode) == 0o600
    _fill(session, 20)
    loaded = session.snapshots.latest(session.journal.end_position())
    assert loaded is not None and loaded[1] == position
    resumed, end = session.projection()
    assert end.seq == 173 and len(os.listdir(session.snapshots.directory)) == 1  # a tail of 20 saves nothing
    rebuilt = project(session.journal.reader(), session.rules())
    assert orjson.dumps(resumed, option=orjson.OPT_SORT_KEYS) == orjson.dumps(rebuilt, option=orjson.OPT_SORT_KEYS)


def test_snapshots_that_do_not_fit_are_ignored(power_dir: str) -> None:
    """A snapshot made with other rules, one past the journal's end, or an unreadable one is not used."""
    session = start_session(power_dir, "Snapshots", sender="lead")
    _fill(session, 10)
    state, position = session.projection(save_snapshot=False)
    path = Path(session.snapshots.save(state, position))
    assert session.snapshots.latest(session.journal.end_position()) is not None
    other_rules = Session(power_dir, session.id, Config(conflict_window_seconds=5))
    assert other_rules.snapshots.latest(other_rules.journal.end_position()) is None
    document = orjson.loads(path.read_bytes())
    document["position"]["seq"] = 10_000
    path.write_bytes(orjson.dumps(document))
    assert session.snapshots.latest(session.journal.end_position()) is None
    path.write_bytes(b"{not json")
    assert session.snapshots.latest(session.journal.end_position()) is None
    assert session.projection(save_snapshot=False)[1] == position


def test_hot_path_modules_import_nothing_heavy(tmp_path: Path) -> None:
    """Opening a session and publishing (what the hook does) imports neither json, re, typing, dataclasses, logging
    nor orjson: journal, protocol, home, config, codec and session stay lean (measured budget, hot-path.md)."""
    code = """
import sys
from popkit_power.session import start_session
session = start_session(sys.argv[1], "objective", sender="hook")
session.publish("agent.tool", {"tool": "Edit", "ok": True, "file": "a.py"}, sender="hook")
print(sorted(m for m in ("json", "re", "typing", "dataclasses", "logging", "orjson") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "power")], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
    assert os.listdir(tmp_path / "power" / "sessions")


def test_session_ids_sort_by_their_utc_start_time(power_dir: str) -> None:
    """A new session's id is its UTC start time plus a random suffix, so listing sorts sessions by age."""
    from freezegun import freeze_time

    from popkit_power.home import list_sessions

    with freeze_time("2026-11-24 10:00:00"):
        first = start_session(power_dir, "First", sender="lead")
    with freeze_time("2026-11-25 09:30:05"):
        second = start_session(power_dir, "Second", sender="lead")
    assert first.id.startswith("20261124-100000-") and second.id.startswith("20261125-093005-")
    assert len(first.id) == len("20261124-100000-") + 6
    assert list_sessions(power_dir) == [first.id, second.id]
    assert next(iter(first.journal.reader()))["ts"] == "2026-11-24T10:00:00.000000Z"


def test_a_long_fold_saves_its_progress_and_keeps_two_snapshots(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A projection killed part way (a hook at its timeout) leaves snapshots the next one resumes from."""
    from popkit_power import session as session_module
    from popkit_power.session import start_session

    monkeypatch.setattr(session_module, "INTERMEDIATE_SNAPSHOT_EVERY", 100)
    created = start_session(str(tmp_path / "power"), "folds", sender="human")
    for index in range(348):
        created.publish("message.broadcast", {"text": f"m{index}"}, sender="human")
    _, position = created.projection()
    names = sorted(os.listdir(created.snapshots.directory))
    assert names == ["0000000000000200.snapshot.json", "0000000000000300.snapshot.json"]
    resumed = created.snapshots.latest(created.journal.end_position())
    assert resumed is not None and resumed[1].seq == 301 and position.seq == 351
