"""Changing the hook settings mid-session: `uninstall` refuses while agents of the active session run here (naming
them) unless --force, and `status` and `doctor` name a live agent (its Claude Code process running, by pid and start
time) that works unrecorded (its transcript shows tool calls finished after its last record). Real processes stand
for Claude Code; the real hook script records them; the transcripts are lines in Claude Code's own format, the one
part a test cannot make the real binary write on demand. Time moves by freezegun, never by sleeping."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from popkit_power.cli import main
from popkit_power.setup.install import settings_path
from popkit_power.setup.unreported import GRACE_SECONDS, unreported

HOOK = Path(sys.executable).parent / "popkit-power-hook"
CLAUDE_SESSION = "0b6f7c1e-2d3a-4c5b-9e8f-112233445566"


def stamp(seconds: float) -> str:
    """A timestamp as Claude Code writes it in a transcript (milliseconds, Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"


class Agent:
    """A process standing for one Claude Code agent, recorded through the real hook, with its transcript."""

    def __init__(self, power_dir: str, project: Path, claude_dir: Path, session: str = CLAUDE_SESSION) -> None:
        self.power_dir, self.project, self.session = power_dir, project, session
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        self.transcript = claude_dir / "projects" / str(project).replace("/", "-") / f"{session}.jsonl"
        self.transcript.parent.mkdir(parents=True, exist_ok=True)
        self.calls = 0

    def hook(self, event: str, **fields: Any) -> None:
        payload = {"session_id": self.session, "transcript_path": str(self.transcript), "cwd": str(self.project),
                   "hook_event_name": event, **fields}
        env = {**os.environ, "CLAUDE_PID": str(self.process.pid), "POPKIT_POWER_HOME": self.power_dir}
        done = subprocess.run([str(HOOK)], input=orjson.dumps(payload), capture_output=True, env=env, timeout=60)
        assert done.returncode == 0, done.stderr

    def tool_call(self, at: float, *, finished: bool = True, recorded: bool = True) -> None:
        """One Bash call in the transcript at `at` (its result too when `finished`), and through the hook."""
        self.calls += 1
        use = f"toolu_{self.calls:04d}"
        lines = [{"type": "assistant", "sessionId": self.session, "timestamp": stamp(at), "message": {
            "role": "assistant", "content": [{"type": "tool_use", "id": use, "name": "Bash",
                                              "input": {"command": "make test"}}]}}]
        if finished:
            lines.append({"type": "user", "sessionId": self.session, "timestamp": stamp(at + 1), "message": {
                "role": "user", "content": [{"tool_use_id": use, "type": "tool_result", "content": "ok"}]}})
        with open(self.transcript, "ab") as out:
            out.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        if finished and recorded:
            self.hook("PostToolUse", tool_name="Bash", tool_input={"command": "make test"}, tool_response={},
                      tool_use_id=use)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def world(power_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A project with the hooks installed, an active session, and one agent that joined and made one call."""
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(home / ".claude"))
    runner = CliRunner()
    assert runner.invoke(main, ["start", "Overnight"]).exit_code == 0
    assert runner.invoke(main, ["install", "--project-dir", str(project)]).exit_code == 0
    agent = Agent(power_dir, project, home / ".claude")
    agent.hook("SessionStart", source="startup")
    agent.tool_call(time.time())
    yield {"runner": runner, "project": project, "agent": agent, "power_dir": power_dir}
    agent.kill()


def status_problems(runner: CliRunner, at: float) -> list[str]:
    with freeze_time(datetime.fromtimestamp(at, timezone.utc)):
        done = runner.invoke(main, ["status", "--json"], catch_exceptions=False)
    problems: list[str] = orjson.loads(done.stdout)["problems"]
    return problems


def doctor_recording(runner: CliRunner, project: Path, at: float) -> dict[str, Any]:
    with freeze_time(datetime.fromtimestamp(at, timezone.utc)):
        done = runner.invoke(main, ["doctor", "--json", "--project-dir", str(project)], catch_exceptions=False)
    [check] = [c for c in map(orjson.loads, done.stdout.splitlines()) if c["name"] == "recording"]
    return dict(check)


def test_uninstall_while_agents_run_is_refused_naming_them_unless_forced(world: dict[str, Any]) -> None:
    """Before: removed at once, and the agent went on unrecorded without a word."""
    runner, project, agent = world["runner"], world["project"], world["agent"]
    settings = Path(settings_path(user=False, project_dir=str(project)))
    before = settings.read_bytes()
    refused = runner.invoke(main, ["uninstall", "--project-dir", str(project)])
    assert refused.exit_code == 1
    assert f"(pid {agent.process.pid})" in refused.output and "would stop being recorded" in refused.output
    assert "popkit-power uninstall --force" in refused.output and "popkit-power stop" in refused.output
    assert settings.read_bytes() == before, "nothing removed"
    forced = runner.invoke(main, ["uninstall", "--force", "--project-dir", str(project)])
    assert forced.exit_code == 0 and f"(pid {agent.process.pid}) go on working unrecorded" in forced.stderr
    assert not settings.exists()
    # with the agent's process gone nothing is cut off: no refusal
    assert runner.invoke(main, ["install", "--project-dir", str(project)]).exit_code == 0
    agent.kill()
    assert runner.invoke(main, ["uninstall", "--project-dir", str(project)]).exit_code == 0


def test_status_and_doctor_name_a_live_agent_that_works_unrecorded(world: dict[str, Any]) -> None:
    """Before: the agent showed as "active, 13 min ago" with no problem, and doctor said "registered once"."""
    runner, project, agent = world["runner"], world["project"], world["agent"]
    start = time.time()
    assert runner.invoke(main, ["uninstall", "--force", "--project-dir", str(project)]).exit_code == 0
    # Claude Code no longer runs the hook: the calls land in the transcript only
    for minute in range(2, 13):
        agent.tool_call(start + 60 * minute, recorded=False)
    later = start + 13 * 60
    [problem] = status_problems(runner, later)
    assert problem.startswith("agent ") and f"(pid {agent.process.pid}) works but is no longer recorded" in problem
    assert "11 tool call(s) since 10 min ago, none recorded (last recorded 13 min ago)" in problem, problem
    assert "popkit-power install brings it back" in problem
    check = doctor_recording(runner, project, later)
    assert check["verdict"] == "FAIL" and f"(pid {agent.process.pid})" in check["found"]
    # installed again, its next call is recorded: nothing to say any more
    assert runner.invoke(main, ["install", "--project-dir", str(project)]).exit_code == 0
    agent.tool_call(time.time())
    assert status_problems(runner, time.time()) == []
    assert doctor_recording(runner, project, time.time())["verdict"] == "ok"


def test_a_long_tool_call_and_a_dead_process_are_not_flagged(world: dict[str, Any]) -> None:
    """An hour in one Bash call (started, not finished) is not silence; nor are calls of a process that is gone."""
    runner, agent = world["runner"], world["agent"]
    start = time.time()
    agent.tool_call(start + 5, finished=False)
    assert status_problems(runner, start + 3600) == []
    agent.tool_call(start + 3600, recorded=False)  # it finished, and the hook did not record it
    assert len(status_problems(runner, start + 3600 + 2 * GRACE_SECONDS)) == 1
    agent.kill()
    assert status_problems(runner, start + 3600 + 2 * GRACE_SECONDS) == []


def test_a_transcript_that_is_long_or_broken_is_read_by_its_end(tmp_path: Path) -> None:
    """Only the last part of a transcript is read; lines cut or not JSON are passed over."""
    claude = tmp_path / "claude"
    transcript = claude / "projects" / "-p" / f"{CLAUDE_SESSION}.jsonl"
    transcript.parent.mkdir(parents=True)
    now = time.time()
    filler = orjson.dumps({"type": "user", "timestamp": stamp(now), "message": {"content": "x" * 1000}}) + b"\n"
    late = orjson.dumps({"type": "user", "timestamp": stamp(now), "message": {"content": [
        {"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}}) + b"\n"
    transcript.write_bytes(late + filler * 400 + b'{"type": "tool_result", cut\n' + late)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        from popkit_power.processes import start_time

        agents = {"k": {"status": "active", "pid": process.pid, "pid_start": start_time(process.pid),
                        "claude_session": CLAUDE_SESSION, "last_seen": stamp(now - 600).replace("Z", "000Z")}}
        [found] = unreported(agents, now=now, claude=str(claude))
        assert found["calls"] == 1 and found["transcript"] == str(transcript)
    finally:
        process.kill()
        process.wait()


def test_uninstall_of_one_registration_while_another_remains_cuts_nobody_off(world: dict[str, Any]) -> None:
    """With the hooks also in the user's settings, removing the project's leaves the agents recorded: no refusal."""
    runner, project, agent = world["runner"], world["project"], world["agent"]
    assert runner.invoke(main, ["install", "--user"]).exit_code == 0
    done = runner.invoke(main, ["uninstall", "--project-dir", str(project)])
    assert done.exit_code == 0 and "go on working unrecorded" not in done.output
    refused = runner.invoke(main, ["uninstall", "--user"])  # the last one: now it would cut the agent off
    assert refused.exit_code == 1 and f"(pid {agent.process.pid})" in refused.output
