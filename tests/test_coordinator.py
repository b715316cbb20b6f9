"""The coordinator: its decisions as a pure function (with the time given), and the real thing: a real Claude Code
stand-in process killed while its agent holds a task, a second coordinator refused, and a coordinator SIGKILLed and
restarted without losing or repeating a decision."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from freezegun import freeze_time
from support import EPOCH, Timeline, ts_at

from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.coordinator.decide import Rules, decide
from popkit_power.coordinator.runner import step
from popkit_power.errors import CoordinatorRunningError
from popkit_power.hook import entry as hook
from popkit_power.keys import host_name
from popkit_power.processes import start_time, still_running
from popkit_power.projector import project
from popkit_power.session import Session, start_session

RULES = Rules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3, max_reassign_attempts=2)
SCRIPT = Path(sys.executable).parent / "popkit-power"


def _team() -> Timeline:
    """Agent a1 (pid 4242 on this host) owns task t1; agent a2 is idle; agent a3 (another machine) owns t3."""
    timeline = Timeline()
    timeline.add("agent.joined", "a1", name="main-a1", pid=4242, pid_start=99, host=host_name())
    timeline.add("agent.joined", "a2", name="main-a2")
    timeline.add("agent.joined", "a3", name="main-a3", host="elsewhere")
    timeline.add("task.created", "human", task="t1", title="the lexer", owner="a1")
    timeline.add("task.created", "human", task="t3", title="the parser", owner="a3")
    timeline.add("agent.tool", "a1", tool="Edit", ok=True, file="/repo/lexer.py")
    timeline.add("agent.idle", "a2")
    return timeline


# -- decide: a pure function of the state, the processes and the time ------------------------------------------------

def test_a_gone_process_is_lost_at_once_and_its_task_orphaned_with_a_hand_over() -> None:
    timeline = _team()
    state = project(timeline.events)
    now = EPOCH + timeline.clock + 1  # one second later: no silence rule could fire
    (batch,) = decide(state, now, {"a1": False}, RULES)
    (lost_type, lost), (orphan_type, orphan) = batch
    assert (lost_type, lost["agent"]) == ("agent.lost", "a1") and "process 4242 is gone" in lost["reason"]
    assert lost["evidence"] == {"pid": 4242, "pid_start": 99, "host": host_name(), "checked": "process table"}
    assert orphan_type == "task.orphaned" and (orphan["task"], orphan["agent"]) == ("t1", "a1")
    assert orphan["context"]["title"] == "the lexer" and orphan["context"]["files"] == ["/repo/lexer.py"]


def test_a_running_process_is_never_lost_however_long_it_is_silent() -> None:
    """A long tool call keeps its process running: silence does not count for an agent checked on this machine."""
    timeline = _team()
    state = project(timeline.events)
    assert decide(state, EPOCH + timeline.clock + 86_400, {"a1": True, "a3": True}, RULES) == []


def test_silence_decides_only_where_no_process_can_be_checked_and_only_for_active_agents() -> None:
    """a3 (another machine) is lost after 60 s + 2 x 15 s of silence while active; a2 is idle, so never."""
    timeline = _team()
    state = project(timeline.events)
    a3_seen = EPOCH + 3.0  # a3 joined at t=3 s and has said nothing since
    assert state["agents"]["a3"]["last_seen"] == ts_at(3.0)
    assert decide(state, a3_seen + RULES.silence_limit, {"a1": True}, RULES) == []
    (batch,) = decide(state, a3_seen + RULES.silence_limit + 0.5, {"a1": True}, RULES)
    assert [kind for kind, _ in batch] == ["agent.lost", "task.orphaned"]
    assert batch[0][1]["agent"] == "a3" and batch[0][1]["evidence"]["limit_seconds"] == 90
    assert "'a2'" not in str(decide(state, a3_seen + 86_400, {"a1": True}, RULES))


def test_a_task_handed_over_too_often_is_parked_for_the_human() -> None:
    timeline = _team()
    for lost, claimant in (("a1", "b1"), ("b1", "b2")):  # t1 lost its agent and was claimed twice: two hand-overs
        timeline.add("task.orphaned", "coordinator", task="t1", agent=lost)
        timeline.add("agent.joined", claimant, name=claimant, pid=1, host=host_name())
        timeline.add("task.claimed", claimant, task="t1")
    state = project(timeline.events)
    assert state["tasks"]["t1"]["attempts"] == 3
    (batch,) = decide(state, EPOCH + timeline.clock, {"b2": False, "a1": True, "b1": True}, RULES)
    assert [kind for kind, _ in batch] == ["agent.lost", "task.parked"]
    assert "2 hand-over(s)" in batch[1][1]["reason"]
    for kind, data in batch:
        timeline.add(kind, "coordinator", **data)
    state = project(timeline.events)
    assert state["tasks"]["t1"]["status"] == "parked" and "t1" not in state["orphans"]
    timeline.add("task.claimed", "a2", task="t1")
    assert project(timeline.events)["tasks"]["t1"]["status"] == "parked", "no claim takes a parked task"


def test_what_was_decided_is_not_decided_again() -> None:
    timeline = _team()
    state = project(timeline.events)
    (batch,) = decide(state, EPOCH + timeline.clock, {"a1": False}, RULES)
    for kind, data in batch:
        timeline.add(kind, "coordinator", **data)
    assert decide(project(timeline.events), EPOCH + timeline.clock, {"a1": False}, RULES) == []


def test_the_coordinator_says_it_is_alive_every_heartbeat() -> None:
    timeline = _team()
    timeline.add("coordinator.status", "coordinator", agents=3, open_tasks=2)
    state = project(timeline.events)
    at = EPOCH + timeline.clock
    assert decide(state, at + 14, {}, RULES, {"pid": 1}) == []
    (batch,) = decide(state, at + 15, {}, RULES, {"pid": 1})
    assert batch == [("coordinator.status", {"agents": 3, "open_tasks": 2, "pid": 1})]


# -- the process table -----------------------------------------------------------------------------------------------

def test_a_reused_pid_is_not_taken_for_the_agent() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = start_time(child.pid)
        assert started is not None and still_running(child.pid, started) is True
        assert still_running(child.pid, started + 1) is False, "another start time: another process"
    finally:
        child.kill()
        child.wait()
    assert still_running(child.pid, started) is False


# -- the real coordinator --------------------------------------------------------------------------------------------

@pytest.fixture
def team(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A session whose config makes every timer far too long to matter; agent A's Claude Code stand-in is a real
    process it reports as CLAUDE_PID; agent B has no checkable process."""
    home = str(tmp_path / "power")
    session = start_session(home, "Coordinate", sender="human")
    Path(home, "config.json").write_text('{"agent_timeout_seconds": 3600, "heartbeat_seconds": 3600}')
    claude = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    _hook(home, "SessionStart", "aaaa0000", {"CLAUDE_PID": str(claude.pid)})
    _hook(home, "SessionStart", "bbbb0000", {})
    session.publish("task.created", {"task": "t1", "title": "the lexer", "owner": "aaaa0000:main"}, sender="human")
    yield {"home": home, "session": session, "claude": claude}
    claude.kill()
    claude.wait()


def _hook(home: str, event: str, claude_session: str, environ: dict[str, str], **fields: Any) -> str | None:
    payload = {"session_id": claude_session, "transcript_path": "/t", "cwd": "/repo", "hook_event_name": event,
               **fields}
    return hook.run(io.BytesIO(orjson.dumps(payload)), home, environ)


def _wait_for(session: Session, kind: str, seconds: float, count: int = 1) -> list[dict[str, Any]]:
    """The events of `kind` once there are `count`, waiting at most `seconds` (a deadline for a promise, not a
    guess: the test fails if it is not kept)."""
    deadline = time.monotonic() + seconds
    while True:
        found = [event for event in session.journal.reader() if event["type"] == kind]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_a_killed_agent_s_task_is_offered_to_a_live_agent_within_two_seconds(team: dict[str, Any]) -> None:
    """Every timer is an hour long: only the process's exit can wake the coordinator. Within 2 s of the kill the
    task is orphaned, agent B hears the offer at its next tool call, and B's claim wins."""
    session, claude = team["session"], team["claude"]
    agent = session.projection(save_snapshot=False)[0]["agents"]["aaaa0000:main"]
    assert (agent["pid"], agent["pid_start"], agent["host"]) == (claude.pid, start_time(claude.pid), host_name())
    coordinator = PowerModeCoordinator(power_dir=team["home"])
    coordinator.start()
    try:
        killed = time.monotonic()
        claude.kill()
        orphaned = _wait_for(session, "task.orphaned", 2.0)
        latency = time.monotonic() - killed
        assert [event["data"]["task"] for event in orphaned] == ["t1"], f"nothing within 2 s ({latency:.2f} s)"
        (lost,) = [event for event in session.journal.reader() if event["type"] == "agent.lost"]
        assert lost["data"]["agent"] == "aaaa0000:main" and lost["from"] == "coordinator"
        reply = orjson.loads(_hook(team["home"], "PostToolUse", "bbbb0000", {}, tool_name="Bash",
                                   tool_input={}, tool_response={}) or "{}")
        assert '[orphaned task] t1 "the lexer" lost its agent' in reply["hookSpecificOutput"]["additionalContext"]
        claimed = subprocess.run([str(SCRIPT), "--home", team["home"], "claim", "t1", "--as", "bbbb0000:main"],
                                 capture_output=True, text=True, timeout=60)
        assert claimed.returncode == 0 and "task t1 is yours" in claimed.stdout
        print(f"kill -> task.orphaned: {latency * 1000:.0f} ms")
    finally:
        coordinator.stop()
    assert coordinator.error is None


def test_a_second_coordinator_is_refused_naming_the_first(team: dict[str, Any]) -> None:
    first = PowerModeCoordinator(power_dir=team["home"])
    first.start()
    try:
        with pytest.raises(CoordinatorRunningError, match=rf"pid {os.getpid()} on {host_name()}, since 20"):
            PowerModeCoordinator(power_dir=team["home"]).run()
        other = subprocess.run([str(SCRIPT), "--home", team["home"], "coordinator"], capture_output=True,
                               text=True, timeout=60)
        assert other.returncode == 2 and "a coordinator already runs for session" in other.stderr
    finally:
        first.stop()
    started = [e for e in team["session"].journal.reader() if e["type"] == "coordinator.started"]
    assert len(started) == 1


def test_a_coordinator_killed_and_restarted_loses_and_repeats_nothing(team: dict[str, Any]) -> None:
    """The coordinator process is SIGKILLed; while it is dead agent A's process dies; the restarted one decides A's
    loss once; restarted again, it decides nothing new."""
    home, session, claude = team["home"], team["session"], team["claude"]

    def run_coordinator() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([str(SCRIPT), "--home", home, "coordinator"], stderr=subprocess.DEVNULL)
        count = len([e for e in session.journal.reader() if e["type"] == "coordinator.started"]) + 1
        assert len(_wait_for(session, "coordinator.started", 30, count)) == count
        return process

    first = run_coordinator()
    first.send_signal(signal.SIGKILL)
    first.wait()
    claude.kill()
    claude.wait()
    second = run_coordinator()
    assert len(_wait_for(session, "task.orphaned", 10)) == 1
    second.send_signal(signal.SIGKILL)
    second.wait()
    third = run_coordinator()
    third.send_signal(signal.SIGTERM)
    assert third.wait(timeout=30) == 0
    events = list(session.journal.reader())
    assert [e["data"]["agent"] for e in events if e["type"] == "agent.lost"] == ["aaaa0000:main"]
    assert [e["data"]["task"] for e in events if e["type"] == "task.orphaned"] == ["t1"]
    assert [e["type"] for e in events].count("coordinator.stopped") == 1
    assert session.projection(save_snapshot=False)[0]["coordinator"]["status"] == "stopped"


def test_silence_through_the_coordinator_step_with_frozen_time(team: dict[str, Any]) -> None:
    """Agent B (no process to check) goes silent: one coordinator step at frozen times just before and just after
    the limit decides its loss exactly once."""
    session = team["session"]
    Path(team["home"], "config.json").write_text('{"agent_timeout_seconds": 60, "heartbeat_seconds": 15}')
    session = Session(team["home"], session.id)
    state, position = session.projection(save_snapshot=False)
    reader = session.journal.reader(position)
    rules = Rules.from_config(session.config)
    seen = max(event["ts"] for event in session.journal.reader() if event["from"] == "bbbb0000:main")
    with freeze_time(seen) as frozen:
        frozen.tick(rules.silence_limit - 1)
        assert step(session, state, reader, session.rules(), rules, lambda s: {"aaaa0000:main": True}, None)[1] == 0
        frozen.tick(2)
        assert step(session, state, reader, session.rules(), rules, lambda s: {"aaaa0000:main": True}, None)[1] == 1
        step(session, state, reader, session.rules(), rules, lambda s: {"aaaa0000:main": True}, None)
        assert step(session, state, reader, session.rules(), rules, lambda s: {"aaaa0000:main": True}, None)[1] == 0
    lost = [e for e in session.journal.reader() if e["type"] == "agent.lost"]
    assert [e["data"]["agent"] for e in lost] == ["bbbb0000:main"] and "no event for" in lost[0]["data"]["reason"]


def test_a_stepped_wall_clock_moves_no_verdict_and_stops_no_heartbeat(team: dict[str, Any]) -> None:
    """The wall clock (frozen, then stepped 10 minutes forward and 20 back) and the monotonic one (injected, moved
    by hand) apart: agent B (no process to check) is judged by how long this coordinator has not heard it on the
    monotonic clock, and the heartbeat comes every heartbeat_seconds of it, whatever the stamps say."""
    from popkit_power.coordinator.hearing import Hearing

    Path(team["home"], "config.json").write_text('{"agent_timeout_seconds": 60, "heartbeat_seconds": 15}')
    session = Session(team["home"], team["session"].id)
    state, position = session.projection(save_snapshot=False)
    reader = session.journal.reader(position)
    rules, fold_rules = Rules.from_config(session.config), session.rules()
    monotonic = [1000.0]
    hearing = Hearing(lambda: monotonic[0])

    def round_() -> list[str]:
        before = session.journal.end_position().seq
        step(session, state, reader, fold_rules, rules, lambda s: {"aaaa0000:main": True}, {"pid": 1}, hearing)
        return [event["type"] for event in session.journal.reader() if event["seq"] >= before]

    with freeze_time("2026-12-01T12:00:00Z") as frozen:
        assert round_() == ["coordinator.status"]  # none before: due at once
        assert round_() == []
        frozen.move_to("2026-12-01T12:10:00Z")  # forward: every stamp is now 10 minutes old
        assert round_() == []
        frozen.move_to("2026-12-01T11:50:00Z")  # back: the last heartbeat's stamp is 10 minutes ahead
        monotonic[0] += 15
        assert round_() == ["coordinator.status"]
        assert round_() == []
        monotonic[0] += rules.silence_limit - 15 + 1
        assert "agent.lost" in round_()
    (lost,) = [event for event in session.journal.reader() if event["type"] == "agent.lost"]
    assert lost["data"]["agent"] == "bbbb0000:main"
    assert lost["data"]["evidence"]["measured"] == "monotonic"
    assert lost["data"]["evidence"]["silent_seconds"] == rules.silence_limit + 1


def test_the_daemon_starts_holds_the_lease_and_stop_ends_it_and_closes_the_session(team: dict[str, Any]) -> None:
    """spawn() starts the coordinator in its own process session, logging beside the journal; `popkit-power stop`
    stops it (its coordinator.stopped comes before session.closed) and the lease is free again."""
    from popkit_power import keys
    from popkit_power.coordinator import daemon

    session = team["session"]
    pid = daemon.spawn(session)
    try:
        assert daemon.running(session) and os.getpgid(pid) == pid, "a process session of its own"
        stopped = subprocess.run([str(SCRIPT), "--home", team["home"], "stop"], capture_output=True, text=True,
                                 timeout=60)
        assert stopped.returncode == 0 and f"coordinator stopped (pid {pid})" in stopped.stdout, stopped
        assert not daemon.running(session)
    finally:
        daemon.stop(session)  # never leave a daemon behind, even when an assertion failed
    kinds = [event["type"] for event in session.journal.reader()]
    assert kinds.index("coordinator.stopped") < kinds.index("session.closed")
    assert "mode" in Path(session.dir, keys.COORDINATOR_LOG).read_text()


def test_an_idle_coordinator_waits_instead_of_spinning(team: dict[str, Any]) -> None:
    """Its own reads of the journal are file events too (opened, closed without writing): they must not wake it.
    Idle for 1.5 s it makes a round about once per POLL_SECONDS, not thousands."""
    from popkit_power.coordinator import runner

    coordinator = PowerModeCoordinator(power_dir=team["home"])
    coordinator.start()
    try:
        team["session"].publish("message.broadcast", {"text": "one change"}, sender="human")
        assert coordinator.wait_folded(team["session"].journal.end_position().seq - 1, 10)
        before = coordinator.steps
        time.sleep(1.5)  # the scenario: 1.5 s of nothing happening, whose rounds are counted
        rounds = coordinator.steps - before
    finally:
        coordinator.stop()
    assert rounds <= 1.5 / runner.POLL_SECONDS + 2, f"{rounds} rounds in 1.5 s of nothing happening"


def test_start_starts_the_coordinator_and_stop_stops_it(tmp_path: Path) -> None:
    """`popkit-power start` opens the session and its coordinator daemon; `stop` ends both."""
    from popkit_power.coordinator import daemon

    home = str(tmp_path / "power")
    env = {key: value for key, value in os.environ.items() if key != "POPKIT_POWER_NO_COORDINATOR"}
    env["POPKIT_POWER_HOME"] = home
    started = subprocess.run([str(SCRIPT), "start", "Daemon"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stderr
    session = Session.active(home)
    try:
        assert daemon.running(session) and "coordinator: pid" in started.stdout
        stopped = subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and "coordinator stopped" in stopped.stdout, stopped
        assert not daemon.running(session)
    finally:
        daemon.stop(session)  # never leave a daemon behind, even when an assertion failed


# -- from the attack on the coordinator ------------------------------------------------------------------------------

def test_an_agent_that_ended_holding_a_task_leaves_it_to_the_others() -> None:
    timeline = _team()
    timeline.add("agent.left", "a1", reason="prompt_input_exit")
    (batch,) = decide(project(timeline.events), EPOCH + timeline.clock, {}, RULES)
    assert [(kind, data["task"]) for kind, data in batch] == [("task.orphaned", "t1")]
    for kind, data in batch:
        timeline.add(kind, "coordinator", **data)
    assert decide(project(timeline.events), EPOCH + timeline.clock, {}, RULES) == []


def test_a_lost_agent_that_speaks_again_is_alive_and_can_be_lost_again() -> None:
    timeline = _team()
    timeline.add("agent.lost", "coordinator", agent="a3", reason="silent")
    timeline.add("agent.tool", "a3", tool="Bash", ok=True)
    state = project(timeline.events)
    assert state["agents"]["a3"]["status"] == "active"
    (batch,) = decide(state, EPOCH + timeline.clock + RULES.silence_limit + 1, {"a1": True}, RULES)
    assert batch[0] == ("agent.lost", batch[0][1]) and batch[0][1]["agent"] == "a3"


def test_an_orphaning_decided_before_a_reassignment_was_seen_does_not_undo_it() -> None:
    timeline = _team()
    timeline.add("task.assigned", "human", task="t1", agent="a2")
    timeline.add("agent.lost", "coordinator", agent="a1", reason="gone")
    timeline.add("task.orphaned", "coordinator", task="t1", agent="a1")
    timeline.add("task.parked", "coordinator", task="t1", agent="a1", reason="too often")
    task = project(timeline.events)["tasks"]["t1"]
    assert (task["status"], task["owner"]) == ("assigned", "a2")


def test_an_agent_that_joins_again_as_another_process_is_watched_as_that_one(team: dict[str, Any]) -> None:
    """The first process exits after the agent joined again with a second: the coordinator does not spin on the
    first one's pidfd, and the second one's death is acted on."""
    home, session, first = team["home"], team["session"], team["claude"]
    coordinator = PowerModeCoordinator(power_dir=home)
    coordinator.start()
    second = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        _hook(home, "SessionStart", "aaaa0000", {"CLAUDE_PID": str(second.pid)}, source="resume")
        assert coordinator.wait_folded(session.journal.end_position().seq - 1, 10)
        first.kill()
        first.wait()
        before = coordinator.steps
        time.sleep(1.5)  # the scenario: 1.5 s after the first process's death, whose rounds are counted
        assert coordinator.steps - before <= 4, "a stale pidfd keeps waking it"
        assert not [e for e in session.journal.reader() if e["type"] == "agent.lost"]
        second.kill()
        second.wait()
        assert [e["data"]["task"] for e in _wait_for(session, "task.orphaned", 2.0)] == ["t1"]
    finally:
        second.kill()
        coordinator.stop()


def test_stop_never_signals_a_program_that_runs_a_coordinator_inside(team: dict[str, Any], tmp_path: Path) -> None:
    """A program runs PowerModeCoordinator(...).start(); `popkit-power stop` closes the session, and the
    coordinator ends by itself (recording why), without the program being signalled."""
    script = tmp_path / "host.py"
    script.write_text(
        "import sys, time\n"
        "from popkit_power.coordinator import PowerModeCoordinator\n"
        f"c = PowerModeCoordinator(power_dir={team['home']!r}); c.start()\n"
        "print('started', flush=True)\n"
        "c._thread.join(60)\n"
        "print('coordinator ended by itself' if not c._thread.is_alive() else 'still running', flush=True)\n")
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert host.stdout is not None and host.stdout.readline().strip() == "started"
    stopped = subprocess.run([str(SCRIPT), "--home", team["home"], "stop"], capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert host.stdout.readline().strip() == "coordinator ended by itself"
    assert host.wait(timeout=60) == 0, "the host program was not signalled"
    last = list(team["session"].journal.reader())[-1]
    assert (last["type"], last["data"]["reason"]) == ("coordinator.stopped", "the session was closed")


def test_a_coordinator_for_a_closed_session_is_refused(team: dict[str, Any]) -> None:
    session = team["session"]
    subprocess.run([str(SCRIPT), "--home", team["home"], "stop"], check=True, capture_output=True, timeout=60)
    refused = subprocess.run([str(SCRIPT), "--home", team["home"], "coordinator", "--session", session.id],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and f"session {session.id} is closed" in refused.stderr
    assert "coordinator.started" not in [e["type"] for e in session.journal.reader()]


def test_auto_reassign_gives_an_orphaned_task_to_the_least_busy_live_agent() -> None:
    """Off by default. On: once t1 is orphaned from a1, it goes to the live agent holding the fewest open tasks (a2
    holds none, a3 holds t3), never back to a1; then nothing more is decided."""
    timeline = _team()
    (batch,) = decide(project(timeline.events), EPOCH + timeline.clock, {"a1": False}, RULES)
    for kind, data in batch:
        timeline.add(kind, "coordinator", **data)
    state = project(timeline.events)
    assert decide(state, EPOCH + timeline.clock, {"a1": False}, RULES) == []
    eager = Rules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3,
                  max_reassign_attempts=2, auto_reassign_orphaned=True)
    (assigned,) = decide(state, EPOCH + timeline.clock, {}, eager)
    assert assigned == [("task.assigned", {"task": "t1", "agent": "a2"})]
    timeline.add("task.assigned", "coordinator", **assigned[0][1])
    state = project(timeline.events)
    assert state["tasks"]["t1"]["owner"] == "a2" and decide(state, EPOCH + timeline.clock, {}, eager) == []


def test_start_with_no_coordinator_starts_none(tmp_path: Path) -> None:
    from popkit_power.coordinator import daemon

    home = str(tmp_path / "power")
    env = {key: value for key, value in os.environ.items() if key != "POPKIT_POWER_NO_COORDINATOR"}
    env["POPKIT_POWER_HOME"] = home
    started = subprocess.run([str(SCRIPT), "start", "By hand", "--no-coordinator"], env=env, capture_output=True,
                             text=True, timeout=60)
    assert started.returncode == 0 and "coordinator:" not in started.stdout, started
    assert not daemon.running(Session.active(home))


def test_the_coordinator_keeps_snapshots_fresh_so_an_agent_start_folds_a_short_tail(tmp_path: Path) -> None:
    """Every `snapshot_every_events` folded events the coordinator saves a snapshot: after 1,000 events with a
    setting of 100, the newest snapshot is at most 100 events (plus its own decisions) behind the journal's end."""
    home = str(tmp_path / "power")
    session = start_session(home, "Snapshots", sender="human")
    Path(home, "config.json").write_text('{"snapshot_every_events": 100, "heartbeat_seconds": 3600}')
    session = Session(home, session.id)
    coordinator = PowerModeCoordinator(power_dir=home)
    coordinator.start()
    try:
        for n in range(1000):
            session.publish("message.broadcast", {"text": f"note {n}"}, sender="human")
        end = session.journal.end_position()
        assert coordinator.wait_folded(end.seq - 1, 30)
        deadline = time.monotonic() + 30
        latest = session.snapshots.latest(end)
        while (latest is None or end.seq - latest[1].seq > 110) and time.monotonic() < deadline:
            time.sleep(0.02)  # the snapshot is written right after the fold it follows
            latest = session.snapshots.latest(end)
    finally:
        coordinator.stop()
    assert latest is not None and end.seq - latest[1].seq <= 110, latest and latest[1]
    assert latest[0]["counts"]["message.broadcast"] >= 890
