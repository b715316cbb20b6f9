"""`popkit-power demo`, run end to end as a person runs it: real processes, the real hook, the real coordinator. What
the story needs is checked in the journal and in what the agents' hooks answered, not in the printed text alone."""

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

from popkit_power.coordinator.daemon import running
from popkit_power.demo.story import story
from popkit_power.home import active_session, list_sessions
from popkit_power.journal.verify import verify_journal
from popkit_power.keys import HUMAN, agent_key
from popkit_power.processes import still_running
from popkit_power.session import Session

CLI = [sys.executable, "-m", "popkit_power.cli"]


def demo_folder(parent: Path) -> Path:
    folders = list(parent.glob("popkit-power-demo-*"))
    assert len(folders) == 1, folders
    return folders[0]


def journal_of(power: Path) -> tuple[Session, list[dict[str, Any]]]:
    sessions = list_sessions(str(power))
    assert len(sessions) == 1, sessions
    session = Session(str(power), sessions[0], read_only=True)
    return session, list(session.journal.reader())


def first(events: list[dict[str, Any]], kind: str, **data: Any) -> dict[str, Any]:
    for event in events:
        if event["type"] == kind and all(event["data"].get(key) == value for key, value in data.items()):
            return event
    raise AssertionError(f"no {kind} with {data}")


@pytest.mark.slow
def test_the_demo_tells_its_whole_story_with_real_processes(tmp_path: Path) -> None:
    completed = subprocess.run([*CLI, "demo", "--pace", "0", "--dir", str(tmp_path)], capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    folder = demo_folder(tmp_path)
    power = folder / "power"
    assert f"--home {power} status" in completed.stdout
    session, events = journal_of(power)
    plan = story()
    keys = {persona: agent_key(agent["claude_session"]) for persona, agent in plan["agents"].items()}

    joined = {event["from"]: event["data"] for event in events if event["type"] == "agent.joined"}
    assert set(joined) == set(keys.values()), "the seed's Claude Code sessions, one agent each"
    pids = {key: data["pid"] for key, data in joined.items()}
    assert len(set(pids.values())) == 3 and os.getpid() not in pids.values(), "each agent its own process"
    for key, data in joined.items():
        assert still_running(data["pid"], data["pid_start"]) is False, f"agent {key} outlived the demo"

    lost = first(events, "agent.lost", agent=keys["ana"])
    assert lost["from"] == "coordinator" and str(pids[keys["ana"]]) in lost["data"]["reason"]
    assert not [e for e in events if e["type"] == "agent.left" and e["from"] == keys["ana"]], "killed, not ended"
    orphaned = first(events, "task.orphaned", task="t-form", agent=keys["ana"])
    assert orphaned["seq"] == lost["seq"] + 1, "orphaned in the same append as the loss"
    claims = [e for e in events if e["type"] == "task.claimed" and e["data"]["task"] == "t-form"]
    assert [e["from"] for e in claims] == [keys["ana"], keys["ben"]], "ana's claim, then ben's take-over"
    assert claims[0]["seq"] < lost["seq"] < claims[1]["seq"]
    assert first(events, "task.completed", task="t-form")["from"] == keys["ben"]

    insight = first(events, "insight.shared")
    assert insight["from"] == keys["ben"] and insight["data"]["text"] == plan["insight"]
    asked = first(events, "approval.requested")
    assert asked["from"] == keys["cleo"] and asked["data"]["question"] == plan["question"]
    granted = first(events, "approval.granted", request=asked["data"]["request"])
    assert granted["from"] == HUMAN and granted["seq"] > asked["seq"]
    assert {first(events, "task.completed", task=t["task"])["data"].get("ok", True) for t in plan["tasks"]} == {True}

    # What the agents heard came through their hooks' replies: the approval reached cleo, the offer reached ben.
    heard = {persona: [orjson.loads(line) for line in (folder / "logs" / f"{persona}.log").read_bytes().splitlines()]
             for persona in keys}
    assert any(e["what"] == "heard" and "[approval GRANTED by human]" in e["text"] for e in heard["cleo"])
    assert any(e["what"] == "heard" and "[orphaned task]" in e["text"] and "t-form" in e["text"] for e in heard["ben"])
    assert any(e["what"] == "heard" and plan["insight"] in e["text"] for e in heard["cleo"]), "the insight was routed"

    kinds = [event["type"] for event in events]
    assert kinds.count("coordinator.started") == 1 and kinds.count("coordinator.stopped") == 1
    assert kinds[-1] == "session.closed" and active_session(str(power)) is None
    assert not running(session), "the coordinator's lease is free"
    assert verify_journal(session.journal)["ok"]
    page = (folder / "timeline.html").read_text()
    assert f"timeline:    {folder / 'timeline.html'}" in completed.stdout
    assert page.startswith("<!DOCTYPE html>") and all(
        (plan["agents"][persona].get("name") or persona) in page or keys[persona][:8] in page for persona in keys)


@pytest.mark.slow
def test_ctrl_c_ends_the_demo_and_every_process_it_started(tmp_path: Path) -> None:
    demo = subprocess.Popen([*CLI, "demo", "--pace", "1", "--dir", str(tmp_path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        joined: list[dict[str, Any]] = []
        while len(joined) < 3:
            assert time.monotonic() < deadline and demo.poll() is None, "the agents did not join"
            try:
                _session, events = journal_of(demo_folder(tmp_path) / "power")
            except AssertionError:
                events = []
            joined = [event["data"] for event in events if event["type"] == "agent.joined"]
            time.sleep(0.05)
        demo.send_signal(signal.SIGINT)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130, out + err
    assert "every process it started has ended" in err
    for data in joined:
        assert still_running(data["pid"], data["pid_start"]) is False
    session, events = journal_of(demo_folder(tmp_path) / "power")
    closed = [event for event in events if event["type"] == "session.closed"]
    assert closed and "interrupted" in closed[-1]["data"]["reason"]
    assert not running(session)


def test_the_same_seed_tells_the_same_story() -> None:
    assert story(7) == story(7)
    assert story(7)["agents"]["ana"]["claude_session"] != story(8)["agents"]["ana"]["claude_session"]
