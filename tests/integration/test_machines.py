"""Two "machines" (power directories with their own origin, coordinator and replicator) through one real Redis: an
agent killed on one machine has its task offered to, and claimed by, an agent on the other; a machine that falls
silent has its agents declared lost by the other."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import Timeline, two_machines_of_one_session, until

from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.coordinator.decide import Rules, decide
from popkit_power.hook import entry as hook
from popkit_power.projector import project
from popkit_power.timestamps import seconds_of

SCRIPT = Path(sys.executable).parent / "popkit-power"
CONFIG = '{"agent_timeout_seconds": 3600, "heartbeat_seconds": 3600}'


def hook_call(home: str, event: str, claude: str, environ: dict[str, str], **fields: Any) -> str:
    payload = {"session_id": claude, "transcript_path": "/t", "cwd": "/repo", "hook_event_name": event, **fields}
    reply = hook.run(io.BytesIO(orjson.dumps(payload)), home, environ)
    return str(orjson.loads(reply)["hookSpecificOutput"]["additionalContext"]) if reply else ""


def work(home: str, claude: str) -> str:
    return hook_call(home, "PostToolUse", claude, {}, tool_name="Edit", tool_input={"file_path": "/repo/x.py"},
                     tool_response={})


@pytest.fixture
def two_machines(tmp_path: Path, redis_url: str) -> Iterator[dict[str, Any]]:
    homes, a, b = two_machines_of_one_session(tmp_path, "Two machines", CONFIG)
    environ = {"REDIS_URL": redis_url}
    coordinators = [PowerModeCoordinator(power_dir=home, environ=environ) for home in homes]
    for coordinator in coordinators:
        assert coordinator.connect() and coordinator.mode == "redis"
        coordinator.start()
    yield {"homes": homes, "sessions": (a, b), "coordinators": coordinators, "redis_url": redis_url}
    for coordinator in coordinators:
        coordinator.stop()


@pytest.mark.slow
def test_an_agent_killed_on_one_machine_leaves_its_task_to_an_agent_on_the_other(two_machines: dict[str, Any]) -> None:
    home_a, home_b = two_machines["homes"]
    a, b = two_machines["sessions"]
    claude = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        hook_call(home_a, "SessionStart", "aaaa0000", {"CLAUDE_PID": str(claude.pid)}, source="startup")
        work(home_b, "bbbb0000")
        a.publish("task.created", {"task": "t1", "title": "the lexer", "owner": "aaaa0000:main"}, sender="human")
        until(lambda: b.projection(save_snapshot=False)[0]["tasks"].get("t1", {}).get("owner") == "aaaa0000:main",
              10, "machine B hears of t1 and its owner")
        claude.kill()
        claude.wait()
        until(lambda: "t1" in b.projection(save_snapshot=False)[0]["orphans"], 10, "t1 orphaned on machine B")
        offer = work(home_b, "bbbb0000")
        assert '[orphaned task] t1 "the lexer"' in offer
        claimed = subprocess.run([str(SCRIPT), "--home", home_b, "claim", "t1", "--as", "bbbb0000:main"],
                                 capture_output=True, text=True, timeout=60)
        assert claimed.returncode == 0 and "task t1 is yours" in claimed.stdout, claimed.stderr
        assert "not confirmed" not in claimed.stderr, "the arbiter decided while the claim waited"
        until(lambda: a.projection(save_snapshot=False)[0]["tasks"]["t1"]["owner"] == "bbbb0000:main", 10,
              "machine A sees B's agent own t1")
        lost = [e for e in a.journal.reader() if e["type"] == "agent.lost"]
        assert [e["origin"] for e in lost] == [a.origin], "the dead agent's own machine decided it, once"
        assert [e["origin"] for e in b.journal.reader() if e["type"] == "agent.lost"] == [a.origin]
    finally:
        claude.kill()


@pytest.mark.slow
def test_two_machines_claiming_at_once_are_both_told_one_winner(two_machines: dict[str, Any]) -> None:
    """Two agents on two machines claim one task at the same moment: exactly one command succeeds, the other exits
    2 naming the winner, and both machines agree."""
    home_a, home_b = two_machines["homes"]
    a, b = two_machines["sessions"]
    a.publish("task.created", {"task": "t2", "title": "the parser"}, sender="human")
    until(lambda: "t2" in b.projection(save_snapshot=False)[0]["tasks"], 10, "machine B hears of t2")
    claims = [subprocess.Popen([str(SCRIPT), "--home", home, "claim", "t2", "--as", f"{who}:main"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for home, who in ((home_a, "aaaa0000"), (home_b, "bbbb0000"))]
    results = [(claim.wait(60), claim.stdout.read(), claim.stderr.read()) for claim in claims if claim.stdout
               and claim.stderr]
    assert sorted(code for code, _, _ in results) == [0, 2], results
    winner = "aaaa0000:main" if results[0][0] == 0 else "bbbb0000:main"
    loser_out = results[1][2] if results[0][0] == 0 else results[0][2]
    assert winner in loser_out and "was not claimed" in loser_out, loser_out  # refused, or lost at the arbiter
    for session in (a, b):
        until(lambda session=session: session.projection(save_snapshot=False)[0]["tasks"]["t2"]["owner"] == winner,
              10, "both machines agree on the winner")


def test_a_silent_machine_s_agents_are_declared_lost_by_the_leader_only() -> None:
    """Machine M2's coordinator said it was alive, then nothing for longer than the limit: machine M1 (the lowest
    origin of the live ones) declares M2's agents lost and hands their tasks on; M3 (not the leader) does not; M2's
    own agents are never judged by silence while M2 is alive."""
    timeline = Timeline()
    for origin in ("m1", "m2", "m3"):
        timeline.origin = origin
        timeline.add("coordinator.started", "coordinator", pid=1, host=origin)
    timeline.origin = "m2"
    timeline.add("agent.joined", "b1:main", name="b1")
    timeline.add("task.created", "human", task="t1", title="t", owner="b1:main")
    for origin in ("m1", "m3"):
        timeline.origin = origin
        timeline.add("coordinator.status", "coordinator", after=50, pid=1, host=origin)
    state = project(timeline.events)
    assert state["agents"]["b1:main"]["origin"] == "m2"
    rules = Rules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3,
                  max_reassign_attempts=2)
    now = seconds_of(timeline.events[-1]["ts"])
    assert now is not None
    leader = [d for batch in decide(state, now, {}, rules, None, "m1") for d in batch]
    follower = [d for batch in decide(state, now, {}, rules, None, "m3") for d in batch]
    assert [kind for kind, _ in leader] == ["agent.lost", "task.orphaned"]
    assert "its machine m2 has been silent" in leader[0][1]["reason"]
    assert follower == []
    timeline.origin = "m2"
    timeline.add("coordinator.status", "coordinator", after=1, pid=1, host="m2")
    state = project(timeline.events)
    assert decide(state, now + 1, {}, rules, None, "m1") == [], "m2 alive again: its agents are its own to judge"


def test_doctor_and_status_show_the_replicator_and_the_other_machine(two_machines: dict[str, Any],
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    from popkit_power.setup.doctor import run_all
    from popkit_power.status import session_status

    home_a, home_b = two_machines["homes"]
    a, b = two_machines["sessions"]
    monkeypatch.setenv("REDIS_URL", two_machines["redis_url"])
    a.publish("message.broadcast", {"text": "hello B"}, sender="human")
    until(lambda: any(e["type"] == "message.broadcast" for e in b.journal.reader()), 10, "B pulled A's message")
    until(lambda: {b.origin} <= set((session_status(a, *a.projection(save_snapshot=False))["replication"] or {})
                                    .get("origins") or []), 10, "A's replicator knows B")
    info = session_status(a, *a.projection(save_snapshot=False))
    assert info["replication"]["running"] and info["replication"]["transport"].startswith("redis")
    assert b.origin in info["machines"] and info["machines"][b.origin]["health"] == "alive"
    [check] = [c for c in run_all(home_a, str(tmp_path), home=str(tmp_path)) if c.name == "replication"]
    assert check.verdict == "ok" and "other machine" in check.found, check
    two_machines["coordinators"][1].stop()
    [check] = [c for c in run_all(home_b, str(tmp_path), home=str(tmp_path)) if c.name == "replication"]
    assert check.verdict == "FAIL" and "no replicator runs" in check.found, check


def test_on_upstash_a_machine_is_silent_only_after_the_slack_of_two_idle_polls() -> None:
    """Another machine's status may reach this one up to two idle polls late on Upstash: with that slack, its agents
    are not declared lost at the plain silence limit, only past limit + slack."""
    timeline = Timeline()
    for origin in ("m1", "m2"):
        timeline.origin = origin
        timeline.add("coordinator.started", "coordinator", pid=1, host=origin)
    timeline.origin = "m2"
    timeline.add("agent.joined", "b1:main", name="b1")
    timeline.origin = "m1"
    timeline.add("coordinator.status", "coordinator", after=150, pid=1, host="m1")
    state = project(timeline.events)
    now = seconds_of(timeline.events[-1]["ts"])
    assert now is not None
    plain = Rules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3, max_reassign_attempts=2)
    slack = Rules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3, max_reassign_attempts=2,
                  machine_slack_seconds=2 * 80 + 15)
    assert [kind for batch in decide(state, now, {}, plain, None, "m1") for kind, _ in batch] == ["agent.lost"]
    assert decide(state, now, {}, slack, None, "m1") == []
    later = [d for batch in decide(state, now + 120, {}, slack, None, "m1") for d in batch]
    assert [kind for kind, _ in later] == ["agent.lost"] and "the limit is 265 s" in later[0][1]["reason"]
