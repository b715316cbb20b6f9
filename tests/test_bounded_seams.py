"""The bounded state at its seams with the journal: segments rotating under it, snapshots saved part way (as an agent
verb or the coordinator saves them), and a reader killed at a random moment of a long fold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from runners import run_cli
from test_bounded_state import long_history

from popkit_power.projector import project
from popkit_power.session import Session


@pytest.fixture
def session_config() -> dict[str, Any]:
    """Segments of 4 KiB (the smallest allowed: a long history spans hundreds) and a snapshot every 100 records."""
    return {"segment_max_bytes": 4096, "snapshot_every_events": 100}


def canonical(state: dict[str, Any]) -> bytes:
    return orjson.dumps(state, option=orjson.OPT_SORT_KEYS)


class InSmallBatches:
    """A session whose appends go in batches of four records, as agents append them: a batch is written whole into
    one segment, so only many appends make the journal rotate."""

    def __init__(self, session: Session) -> None:
        self.event = session.event
        self._session = session

    def append_events(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), 4):
            self._session.append_events(events[start:start + 4])


def test_snapshots_saved_part_way_across_rotating_segments_resume_to_the_rebuilt_bounded_state(
        session: Session) -> None:
    long_history(InSmallBatches(session), agents=60, tasks=50, requests=40)  # type: ignore[arg-type]
    middle, _ = session.projection()  # saves a snapshot here (past snapshot_every_events)
    assert session.snapshots.latest(session.journal.end_position()) is not None
    long_history_after(session)
    resumed, position = session.projection(save_snapshot=False)
    rebuilt = project(session.journal.reader(), session.rules())
    assert len(session.journal.segments()) > 20, "the history spans many segments"
    assert canonical(resumed) == canonical(rebuilt)
    assert position == session.journal.end_position()
    assert sum(rebuilt["totals"]["agents"].values()) == 150 - 100 and len(rebuilt["departed_ids"]) == 50
    assert middle["seq"] < rebuilt["seq"]


def long_history_after(session: Session) -> None:
    """90 more agents that join and leave, after the first 60: 150 departures in all."""
    events = []
    for number in range(60, 150):
        agent = f"s{number:03d}:main"
        events += [session.event("agent.joined", {"name": agent}, sender=agent),
                   session.event("agent.left", {"reason": "done"}, sender=agent)]
    InSmallBatches(session).append_events(events)


def test_status_all_reads_every_segment_of_a_rotated_journal(session: Session) -> None:
    long_history(InSmallBatches(session))  # type: ignore[arg-type]
    assert len(session.journal.segments()) > 50
    everything = orjson.loads(run_cli("status", "--all", "--json").output)
    assert len(everything["agents"]) == 150 and len(everything["finished_tasks"]) == 120
    bounded = orjson.loads(run_cli("status", "--json").output)
    assert len(bounded["agents"]) == 100 and bounded["departed_not_listed"] == {"left": 50}


KILLED_FOLD = """
import sys
from popkit_power.session import Session
session = Session(sys.argv[1], sys.argv[2])
print("folding", flush=True)
session.projection()
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_a_fold_killed_at_a_random_moment_leaves_snapshots_that_resume_to_the_rebuild(
        session: Session, tmp_path: Path, rng: Any, kill: signal.Signals) -> None:
    """A process folding the whole rotated journal (saving snapshots on its way) killed at a random moment: whatever
    snapshot it left, the next read resumes from it to exactly the rebuilt bounded state."""
    long_history(InSmallBatches(session))  # type: ignore[arg-type]
    for snapshot in Path(session.dir, "snapshots").glob("*"):
        snapshot.unlink()  # the child folds from the start
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    snapshots = Path(session.dir, "snapshots")

    def fold(kill_after: float | None) -> int:
        for snapshot in snapshots.glob("*"):
            snapshot.unlink()  # the child folds from the start, and saves a snapshot at its end
        child = subprocess.Popen([sys.executable, "-c", KILLED_FOLD, session.power_dir, session.id], env=env,
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline() == "folding\n"
        started = time.monotonic()
        try:
            child.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            child.send_signal(kill)
            child.wait(timeout=30)
        fold_seconds[0] = time.monotonic() - started
        return child.returncode

    fold_seconds = [0.0]
    assert fold(None) == 0
    whole = fold_seconds[0]  # the fold and the snapshot's save, measured: the kills land within it
    landed = 0
    for _round in range(6):
        landed += fold(rng.uniform(0.3, 1.0) * whole) == -kill
        resumed, _ = session.projection(save_snapshot=False)
        assert canonical(resumed) == canonical(project(session.journal.reader(), session.rules()))
    assert landed >= 1, f"no kill landed before the fold ended ({whole:.3f} s)"
