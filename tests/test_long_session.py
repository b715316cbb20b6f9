"""tools/make_long_session.py, the input of the long-run benchmarks (tools/bench_long_run.py), at a small size: the
day it writes is a journal `verify` passes, the fold takes every event of it, and it holds the mix it promises
(agents that joined, left and were lost; tasks finished, orphaned and claimed again; approvals answered; events pulled
from other machines and placed by the replication server)."""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from runners import run_cli

from popkit_power.journal.verify import verify_journal
from popkit_power.projector import AGENT_LEFT, AGENT_LOST, project
from popkit_power.session import Session

TOOLS = Path(__file__).resolve().parent.parent / "tools"
SIZES = {"events": 2000, "agents": 12, "tasks": 60, "approvals": 12, "machines": 3, "seed": 7}


def _generator() -> ModuleType:
    """tools/make_long_session.py, imported as the benchmarks do: with tools/ on the path for bench_common."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    return importlib.import_module("make_long_session")


@pytest.fixture
def day(power_dir: str) -> tuple[Session, list[dict[str, Any]]]:
    session = _generator().write_session(power_dir, **SIZES)
    return session, list(session.journal.reader())


def test_the_day_is_a_sound_journal_of_the_size_asked(day: tuple[Session, list[dict[str, Any]]]) -> None:
    session, events = day
    assert len(events) == SIZES["events"] and [event["seq"] for event in events] == list(range(1, 2001))
    report = verify_journal(session.journal)
    assert report["ok"], report
    result = run_cli("verify")
    assert result.exit_code == 0 and result.output.startswith("OK: 2000 records"), result.output
    stamps = [event["ts"] for event in events]
    assert stamps[0][:10] == "2026-11-24" and stamps[-1] > "2026-11-25T09"  # spread over the 24 hours


def test_the_fold_takes_every_event_and_holds_the_promised_mix(day: tuple[Session, list[dict[str, Any]]]) -> None:
    session, events = day
    state, _position = session.projection(save_snapshot=False)
    assert state == project(events, session.rules())  # through the session's reader as from a list
    assert "invalid" not in state["counts"] and state["seq"] == 2000
    kinds = Counter(event["type"] for event in events)
    assert kinds["agent.tool"] > len(events) / 2 and kinds["agent.heartbeat"] > 0
    statuses = Counter(agent["status"] for agent in state["agents"].values())
    assert len(state["agents"]) == SIZES["agents"] and statuses[AGENT_LEFT] and statuses[AGENT_LOST]
    assert kinds["task.created"] == SIZES["tasks"]
    finished = state["totals"]["tasks"]
    assert sum(finished.values()) + len(state["tasks"]) == SIZES["tasks"]  # each task open or finished, once
    assert finished.get("completed", 0) > SIZES["tasks"] / 2 and finished.get("failed", 0) > 0
    assert kinds["approval.requested"] == SIZES["approvals"]
    assert sum(state["totals"]["approvals"].values()) > SIZES["approvals"] / 2
    orphaned = {event["data"]["task"]: event["seq"] for event in events if event["type"] == "task.orphaned"}
    assert orphaned and any(event["type"] == "task.claimed" and event["seq"] > orphaned.get(event["data"]["task"], 2001)
                            for event in events)  # orphaned, then claimed again


def test_other_machines_events_are_as_replication_pulls_them(day: tuple[Session, list[dict[str, Any]]]) -> None:
    session, events = day
    origins = Counter(event["origin"] for event in events)
    assert len(origins) == SIZES["machines"] + 1 and origins["arbiter"] > 0  # this machine, two others, the arbiter
    for origin in origins:
        pulled = [event for event in events if event["origin"] == origin]
        if origin == session.origin:
            assert not any("oseq" in event for event in pulled)
            continue
        assert [event["oseq"] for event in pulled] == list(range(1, len(pulled) + 1))
        assert all(list(event)[list(event).index("origin") + 1:][:2] == ["oseq", "rts"] for event in pulled)
    by_id = {event["id"]: event for event in events}
    placed = [event for event in events if event["type"] == "arbiter.ordered"]
    assert placed and all(by_id[fact["data"]["event"]]["seq"] < fact["seq"] for fact in placed)
    state, _position = session.projection(save_snapshot=False)
    assert state["ordered"]


def test_a_seed_makes_the_same_day(tmp_path: Path) -> None:
    def kinds(seed: int, where: str) -> list[tuple[str, str]]:
        session = _generator().write_session(str(tmp_path / where), **{**SIZES, "events": 500, "seed": seed})
        return [(event["type"], event["from"]) for event in session.journal.reader()]

    assert kinds(3, "a") == kinds(3, "b") != kinds(4, "c")
