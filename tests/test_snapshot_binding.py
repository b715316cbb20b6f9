"""A snapshot is bound to the journal it was folded from (journal/SPEC.md section 8): after the journal was replaced it
is discarded, with a log line, and the state is folded from the journal there now.

The regression: a snapshot was reused whenever its position was not past the journal's end, so after the journal was
replaced by a longer one `status` showed a task that no record held."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from popkit_power.config import Config
from popkit_power.journal.writer import Journal, Position
from popkit_power.projector import apply, new_state, project
from popkit_power.session import Session, start_session

SCRIPT = Path(sys.executable).parent / "popkit-power"


def _fill(session: Session, count: int, sender: str) -> None:
    session.append_events([session.event("message.broadcast", {"text": f"{sender} {n}"}, sender=sender)
                           for n in range(count)])


def _replace_journal(session: Session, donor: Session) -> None:
    """What a restore from another copy, or a hand-made journal, does: another journal in this one's place."""
    directory = session.journal.directory
    shutil.rmtree(directory)
    shutil.copytree(donor.journal.directory, directory)


def _status_tasks(power_dir: str, session_id: str) -> list[str]:
    completed = subprocess.run([str(SCRIPT), "status", "--json", session_id], capture_output=True, text=True,
                               timeout=120, env={**os.environ, "POPKIT_POWER_HOME": power_dir}, check=True)
    return sorted(orjson.loads(completed.stdout)["tasks"])


def test_a_snapshot_of_a_replaced_journal_is_discarded(power_dir: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    Path(power_dir).mkdir(parents=True, exist_ok=True)
    Path(power_dir, "config.json").write_text('{"snapshot_every_events": 100}')
    session = start_session(power_dir, "The first journal", sender="lead")
    session.publish("task.created", {"task": "t-ghost", "title": "only in the old journal"}, sender="lead")
    _fill(session, 150, "old")
    state, _position = session.projection()
    assert "t-ghost" in state["tasks"] and os.listdir(session.snapshots.directory)
    # another journal, longer than the snapshot's position, with a task of its own
    donor = start_session(str(tmp_path / "donor"), "The second journal", sender="lead", config=Config())
    donor.publish("task.created", {"task": "t-real", "title": "in the journal now"}, sender="lead")
    _fill(donor, 300, "new")
    _replace_journal(session, donor)

    assert _status_tasks(power_dir, session.id) == ["t-real"]  # status (read-only) folds the journal there now
    reopened = Session(power_dir, session.id)
    with caplog.at_level(logging.WARNING, logger="popkit_power.journal.snapshots"):
        state, end = reopened.projection()
    assert sorted(state["tasks"]) == ["t-real"]
    assert any("not made from this journal" in record.getMessage() for record in caplog.records)
    rebuilt = project(reopened.journal.reader(), reopened.rules())
    assert orjson.dumps(state, option=orjson.OPT_SORT_KEYS) == orjson.dumps(rebuilt, option=orjson.OPT_SORT_KEYS)
    # the stale snapshot is gone; the one saved now is used again, silently
    caplog.clear()
    loaded = reopened.snapshots.latest(reopened.journal.end_position())
    assert loaded is not None and loaded[1] == end and caplog.records == []


def test_a_snapshot_is_kept_across_a_copy_of_the_same_journal_and_at_a_segment_start(power_dir: str,
                                                                                       tmp_path: Path) -> None:
    """The binding holds the journal's content, not its files: a copy of the same journal (a backup restored, the
    directory moved) keeps its snapshots; a position at the start of a segment is bound to the previous segment's
    last line."""
    session = start_session(power_dir, "Bound", sender="lead", config=Config(segment_max_bytes=4096))
    for number in range(60):
        session.publish("message.broadcast", {"text": f"a {number}"}, sender="a")
    assert len(session.journal.segments()) > 2
    second = session.journal.segments()[1]
    at_start = Position(second, 0, second)
    folded = new_state()
    for event in session.journal.reader():
        if event["seq"] >= second:
            break
        apply(folded, event, session.rules())
    session.snapshots.save(folded, at_start)
    copy = tmp_path / "copy"
    shutil.copytree(session.journal.directory, copy)
    shutil.rmtree(session.journal.directory)
    shutil.copytree(copy, session.journal.directory)
    loaded = session.snapshots.latest(session.journal.end_position())
    assert loaded is not None and loaded[1] == at_start
    # the record before the snapshot's position changed (same length, other content): not the same journal
    path = Journal(session.journal.directory).segment_path(session.journal.segments()[0])
    data = bytearray(Path(path).read_bytes())
    data[-40] = ord("0") if data[-40] != ord("0") else ord("1")
    Path(path).write_bytes(bytes(data))
    assert session.snapshots.latest(session.journal.end_position()) is None


def test_an_unbound_snapshot_is_discarded_but_a_read_only_session_deletes_nothing(
        power_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    """A snapshot without a binding (written before snapshots had one) is not used: a read-only session (status,
    replay) says so and leaves the file; a writable one deletes it."""
    session = start_session(power_dir, "Unbound", sender="lead")
    _fill(session, 20, "a")
    path = Path(session.snapshots.save(*session.projection(save_snapshot=False)))
    document = orjson.loads(path.read_bytes())
    del document["journal"]
    path.write_bytes(orjson.dumps(document))
    read_only = Session(power_dir, session.id, read_only=True)
    with caplog.at_level(logging.WARNING, logger="popkit_power.journal.snapshots"):
        assert read_only.snapshots.latest(read_only.journal.end_position()) is None
    assert path.exists() and "made before snapshots were bound" in caplog.text
    assert session.snapshots.latest(session.journal.end_position()) is None and not path.exists()
