"""Power Mode end to end: the real Claude Code, with this repository loaded as a plugin (`--plugin-dir`), against a
scripted model server. What the model server receives is what the agents' models saw.

Agents are held between two tool calls by the model script itself (it does not answer until the test releases it),
so "a broadcast made between two tool calls" is exact, with no guessed sleeps.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from claude import ClaudeResult, start_claude
from model_server import (
    ModelServer,
    Reply,
    Script,
    Turns,
    count_marker,
    first_user_text,
    is_task_notification,
    messages_containing,
    text,
    tool_results,
    tool_use,
)

from popkit_power.session import Session

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
POPKIT = str(VENV_BIN / "popkit-power")
GATE_TIMEOUT = 90

ServerFactory = Callable[[Script], ModelServer]


@pytest.fixture
def power_home(tmp_path: Path) -> Path:
    home = tmp_path / "power"
    home.mkdir()
    return home


def popkit(home: Path, *args: str) -> str:
    """Run the installed `popkit-power` CLI as a person would, against `home`; return its stdout."""
    outside = {name: value for name, value in os.environ.items()  # a person's terminal, even if the suite runs
               if name not in ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID", "POPKIT_POWER_AGENT")}
    completed = subprocess.run([POPKIT, *args], env={**outside, "POPKIT_POWER_HOME": str(home)},
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def agent_env(home: Path) -> dict[str, str]:
    """What Claude Code (and so its hooks and Bash tool) needs: the venv's scripts on PATH, and the power dir."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "POPKIT_POWER_HOME": str(home)}


def run_agents(claude_bin: Path, tmp_path: Path, server: ModelServer, home: Path,
               prompts: list[str]) -> list[ClaudeResult]:
    """Start one `claude -p` per prompt at once, with the plugin loaded, and wait for all of them."""
    processes = []
    for index, prompt in enumerate(prompts):
        work = tmp_path / f"work{index}"
        work.mkdir()
        processes.append(start_claude(prompt, cwd=work, base_url=server.base_url, plugin_dir=REPO,
                                      env=agent_env(home), claude_bin=claude_bin,
                                      state_dir=tmp_path / f"claude{index}", timeout=120))
    results = [process.wait() for process in processes]
    for result in results:
        assert result.returncode == 0, result.describe()
    return results


def journal_events(home: Path) -> list[dict[str, Any]]:
    session = Session(str(home), (home / "active").read_text().strip())
    return list(session.journal.reader())


class Gate:
    """Holds a conversation's model request until released, and tells the test when it got there."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.reached.set()
        assert self.release.wait(GATE_TIMEOUT), "the test never released the gate"


def requests_of(server: ModelServer, prompt: str) -> list[dict[str, Any]]:
    return [request for request in server.requests if first_user_text(request).find(prompt) >= 0
            and not is_task_notification(request)]


def test_hooks_land_in_journal_with_agent_identities(claude_bin: Path, model_server: ServerFactory,
                                                     tmp_path: Path, power_home: Path) -> None:
    """A main agent and the subagent it launches: every hook lands in the journal under the right agent key, the
    subagent's work is a task owned by it with its final message as the result, and both got their welcome."""
    popkit(power_home, "start", "E2E identities")
    main_prompt, sub_prompt = "MAIN-IDENTITY launch one helper", "SUB-IDENTITY run one command"
    launch = {"description": "identity helper", "prompt": sub_prompt, "subagent_type": "general-purpose"}
    turns = Turns({
        sub_prompt: [tool_use("Bash", {"command": "echo sub", "description": "echo"}), text("SUB-FINAL-RESULT")],
        main_prompt: [tool_use("Agent", launch), text("main waits")],
    })

    def script(request: dict[str, Any]) -> Reply:
        if is_task_notification(request):
            return Reply([text("main done")])
        return turns(request)

    server = model_server(script)
    (result,) = run_agents(claude_bin, tmp_path, server, power_home, [main_prompt])

    events = journal_events(power_home)
    claude_session = result.output["session_id"] if result.output else None
    main_key = f"{claude_session}:main"
    joined = {e["from"]: e["data"] for e in events if e["type"] == "agent.joined"}
    (sub_key,) = [key for key in joined if key != main_key]
    agent_id = sub_key.split(":", 1)[1]
    assert joined[main_key]["agent_id"] == "main" and joined[main_key]["pid"] > 0
    assert joined[sub_key]["agent_type"] == "general-purpose" and joined[sub_key]["parent"] == main_key

    tools = [(e["from"], e["data"]["tool"]) for e in events if e["type"] == "agent.tool"]
    assert (main_key, "Agent") in tools and (sub_key, "Bash") in tools
    task = f"agent-{agent_id}"
    created = [e for e in events if e["type"] == "task.created" and e["data"]["task"] == task]
    assert created and all(e["data"]["owner"] == sub_key for e in created)
    assert any(e["data"]["title"] == "identity helper" for e in created)
    (completed,) = [e for e in events if e["type"] == "task.completed"]
    assert completed["from"] == sub_key and completed["data"]["task"] == task
    assert "SUB-FINAL-RESULT" in completed["data"]["result"]
    assert any(e["type"] == "agent.left" and e["from"] == sub_key for e in events)
    assert any(e["type"] == "agent.idle" and e["from"] == main_key for e in events)

    (main_first, *_), (sub_first, *_) = requests_of(server, main_prompt), requests_of(server, sub_prompt)
    assert count_marker(main_first, 'Objective: "E2E identities"') == 1
    assert count_marker(sub_first, f"--as {sub_key}") >= 1, "the subagent is told how to speak as itself"

    status = popkit(power_home, "status", "--json")
    assert f'"{task}"' in status and '"completed"' in status


def test_broadcast_between_tool_calls_reaches_every_agent_once(claude_bin: Path, model_server: ServerFactory,
                                                              tmp_path: Path, power_home: Path) -> None:
    """Two agents run at once; a `popkit-power broadcast` made while both sit between their first and second tool
    call is in the very next model request of each, exactly once, and in none before."""
    popkit(power_home, "start", "E2E broadcast")
    token = f"BROADCAST-{secrets.token_hex(4)}"
    prompts = ["AGENT-ONE broadcast test", "AGENT-TWO broadcast test"]
    gates = {prompt: Gate() for prompt in prompts}
    turns = Turns({prompt: [tool_use("Bash", {"command": "echo first", "description": "first"}),
                            tool_use("Bash", {"command": "echo second", "description": "second"}),
                            text("done")] for prompt in prompts})

    def script(request: dict[str, Any]) -> Reply:
        prompt = turns.conversation_of(request)
        if prompt in gates and len(tool_results(request)) == 1:
            gates[prompt].hold()
        return turns(request)

    server = model_server(script)
    runner = threading.Thread(target=lambda: results.extend(
        run_agents(claude_bin, tmp_path, server, power_home, prompts)))
    results: list[ClaudeResult] = []
    runner.start()
    try:
        for gate in gates.values():
            assert gate.reached.wait(GATE_TIMEOUT), "an agent never reached its first tool result"
        popkit(power_home, "broadcast", token)
    finally:
        for gate in gates.values():
            gate.release.set()
        runner.join(GATE_TIMEOUT * 2)
    assert len(results) == 2

    for prompt in prompts:
        requests = requests_of(server, prompt)
        assert [len(tool_results(r)) for r in requests] == [0, 1, 2]
        assert [count_marker(r, token) for r in requests] == [0, 0, 1], prompt
        assert len(messages_containing(requests[2], token)) == 1


def test_insight_and_approval_reach_the_right_agents(claude_bin: Path, model_server: ServerFactory,
                                                    tmp_path: Path, power_home: Path) -> None:
    """Agent one shares an insight and asks the human; agent two gets the insight (and one doesn't get its own),
    and agent one gets the human's answer after its next tool call."""
    popkit(power_home, "start", "E2E insight")
    token = f"INSIGHT-{secrets.token_hex(4)}"
    one, two = "AGENT-ONE insight test", "AGENT-TWO insight test"
    turns = Turns({
        one: [tool_use("Bash", {"command": f"popkit-power insight '{token} cache keys need the tenant id' --tags db && "
                                           "popkit-power ask 'May I drop the legacy table?'",
                                "description": "share"}),
              tool_use("Bash", {"command": "echo next", "description": "next"}),
              text("done")],
        two: [tool_use("Bash", {"command": "echo first", "description": "first"}),
              tool_use("Bash", {"command": "echo second", "description": "second"}),
              text("done")],
    })
    hold_one, hold_two = Gate(), Gate()

    def script(request: dict[str, Any]) -> Reply:
        prompt = turns.conversation_of(request)
        done = len(tool_results(request))
        if prompt == one and done == 0:  # agent two's first tool call must be over before anything is shared
            assert hold_two.reached.wait(GATE_TIMEOUT), "agent two never reached its first tool result"
        if done == 1 and prompt in (one, two):
            (hold_one if prompt == one else hold_two).hold()
        return turns(request)

    server = model_server(script)
    results: list[ClaudeResult] = []
    runner = threading.Thread(target=lambda: results.extend(
        run_agents(claude_bin, tmp_path, server, power_home, [one, two])))
    runner.start()
    try:
        assert hold_one.reached.wait(GATE_TIMEOUT) and hold_two.reached.wait(GATE_TIMEOUT)
        status = popkit(power_home, "status", "--json")
        (request_id,) = orjson.loads(status)["pending_approvals"]
        popkit(power_home, "approve", request_id, "--note", "yes, after the backup")
    finally:
        for gate in (hold_one, hold_two):
            gate.release.set()
        runner.join(GATE_TIMEOUT * 2)
    assert len(results) == 2

    one_requests, two_requests = requests_of(server, one), requests_of(server, two)
    assert [count_marker(r, token) for r in two_requests] == [0, 0, 1]
    assert count_marker(two_requests[2], "[insight from main-") == 1
    assert all(count_marker(r, "[insight from") == 0 for r in one_requests), "no agent hears its own insight"
    assert count_marker(one_requests[2], f"[approval GRANTED by human] your request {request_id}") == 1
    assert count_marker(one_requests[2], "yes, after the backup") == 1
    assert count_marker(two_requests[2], "GRANTED") == 0, "only the asking agent hears the answer"


def test_a_killed_agent_s_task_is_offered_to_another_who_claims_it(claude_bin: Path, model_server: ServerFactory,
                                                                   tmp_path: Path, power_home: Path) -> None:
    """Agent one claims a task and is killed (SIGKILL of its Claude Code process) while it waits for the model; the
    coordinator orphans the task; agent two hears the offer after its next tool call and claims the task."""
    from popkit_power.coordinator import PowerModeCoordinator

    popkit(power_home, "start", "E2E hand-over")
    popkit(power_home, "publish", "coordinator", '{"task": "t-e2e", "title": "port the lexer"}',
           "--type", "task.created")
    one, two = "AGENT-ONE hand-over test", "AGENT-TWO hand-over test"
    turns = Turns({
        one: [tool_use("Bash", {"command": "popkit-power claim t-e2e", "description": "claim"}),
              text("never reached")],
        two: [tool_use("Bash", {"command": "echo first", "description": "first"}),
              tool_use("Bash", {"command": "echo second", "description": "second"}),
              tool_use("Bash", {"command": "popkit-power claim t-e2e", "description": "take it over"}),
              text("done")],
    })
    hold_one, hold_two = Gate(), Gate()

    def script(request: dict[str, Any]) -> Reply:
        prompt = turns.conversation_of(request)
        if len(tool_results(request)) == 1 and prompt in (one, two):
            (hold_one if prompt == one else hold_two).hold()
        return turns(request)

    server = model_server(script)
    coordinator = PowerModeCoordinator(power_dir=str(power_home))
    coordinator.start()
    processes = {prompt: start_claude(prompt, cwd=tmp_path, base_url=server.base_url, plugin_dir=REPO,
                                      env=agent_env(power_home), claude_bin=claude_bin,
                                      state_dir=tmp_path / f"claude-{index}", timeout=120)
                 for index, prompt in enumerate((one, two))}
    try:
        assert hold_one.reached.wait(GATE_TIMEOUT) and hold_two.reached.wait(GATE_TIMEOUT)
        owner = orjson.loads(popkit(power_home, "status", "--json"))["tasks"]["t-e2e"]["owner"]
        assert owner and owner.endswith(":main")
        processes[one].popen.kill()
        processes[one].wait()
        deadline = threading.Event()
        for _ in range(100):  # the coordinator wakes on the process's exit: at most 2 s (100 x 20 ms)
            if any(event["type"] == "task.orphaned" for event in journal_events(power_home)):
                break
            deadline.wait(0.02)
        assert any(event["type"] == "task.orphaned" for event in journal_events(power_home)), "not within 2 s"
    finally:
        hold_one.release.set()
        hold_two.release.set()
    result = processes[two].wait()
    coordinator.stop()
    assert result.returncode == 0, result.describe()
    two_requests = requests_of(server, two)
    assert count_marker(two_requests[2], "[orphaned task] t-e2e ") == 1
    assert "lost its agent; take it over with: popkit-power claim t-e2e" in str(two_requests[2])
    assert "task t-e2e is yours" in str(tool_results(two_requests[3]))
    events = journal_events(power_home)
    (claimed_by_two,) = [e["from"] for e in events if e["type"] == "task.claimed" and e["from"] != owner]
    orphaned = [e["data"]["agent"] for e in events if e["type"] == "task.orphaned"]
    # agent two ended (claude -p exits) still holding the task: the coordinator hands it on again
    assert orphaned[0] == owner and orphaned[1:] in ([], [claimed_by_two])


def test_a_guarded_command_waits_for_the_human_and_passes_once_approved(claude_bin: Path, model_server: ServerFactory,
                                                                       tmp_path: Path, power_home: Path) -> None:
    """With a guardrail on `echo DEPLOY*` and its PreToolUse hook registered in the project's settings (as
    `popkit-power guardrails on` writes them, beside the plugin's hooks), the agent's first try is denied with a
    reason naming the approval request; the human approves it; the same command then runs."""
    (power_home / "config.json").write_text('{"guardrail_commands": ["echo DEPLOY*"]}')
    popkit(power_home, "start", "E2E guardrails")
    work = tmp_path / "work"
    work.mkdir()
    popkit(power_home, "guardrails", "on", "--project-dir", str(work))
    prompt = "AGENT guardrail test"
    command = {"command": "echo DEPLOY-e2e", "description": "deploy"}
    turns = Turns({prompt: [tool_use("Bash", command), tool_use("Bash", command), text("done")]})
    gate = Gate()

    def script(request: dict[str, Any]) -> Reply:
        if len(tool_results(request)) == 1 and turns.conversation_of(request) == prompt:
            gate.hold()
        return turns(request)

    server = model_server(script)
    process = start_claude(prompt, cwd=work, base_url=server.base_url, plugin_dir=REPO, env=agent_env(power_home),
                           claude_bin=claude_bin, state_dir=tmp_path / "claude", timeout=120)
    try:
        assert gate.reached.wait(GATE_TIMEOUT)
        (request_id,) = orjson.loads(popkit(power_home, "status", "--json"))["pending_approvals"]
        popkit(power_home, "approve", request_id)
    finally:
        gate.release.set()
    result = process.wait()
    assert result.returncode == 0, result.describe()
    requests = requests_of(server, prompt)
    first, second = tool_results(requests[1])[-1], tool_results(requests[2])[-1]
    assert first["is_error"] and f"request {request_id}" in str(first["content"])
    assert "Power Mode guardrail" in str(first["content"])
    assert (second["is_error"], second["content"]) == (False, "DEPLOY-e2e")
    tools = [event["data"] for event in journal_events(power_home) if event["type"] == "agent.tool"]
    assert [data["tool"] for data in tools] == ["Bash"], "the denied call never ran; the approved one did"


def test_hooks_registered_both_ways_record_each_event_once(claude_bin: Path, model_server: ServerFactory,
                                                           tmp_path: Path, power_home: Path) -> None:
    """The plugin loaded (`--plugin-dir`) and `popkit-power install` run in the project: the real Claude Code runs
    two hook processes per event, and the journal still has each event once, the agent one welcome, and hook.log one
    line naming both registrations."""
    popkit(power_home, "start", "E2E twice")
    work = tmp_path / "work"
    work.mkdir()
    popkit(power_home, "install", "--project-dir", str(work))
    prompt = "AGENT twice test"
    turns = Turns({prompt: [tool_use("Bash", {"command": "echo one", "description": "one"}),
                            tool_use("Bash", {"command": "echo two", "description": "two"}), text("done")]})
    server = model_server(turns)
    process = start_claude(prompt, cwd=work, base_url=server.base_url, plugin_dir=REPO, env=agent_env(power_home),
                           claude_bin=claude_bin, state_dir=tmp_path / "claude", timeout=120)
    result = process.wait()
    assert result.returncode == 0, result.describe()
    events = journal_events(power_home)
    agents = [e for e in events if e["type"] == "agent.joined"]
    assert len(agents) == 1, "one agent, joined once"
    assert [e["data"]["tool"] for e in events if e["type"] == "agent.tool"] == ["Bash", "Bash"]
    logged = (power_home / "hook.log").read_text()
    assert logged.count("reached popkit-power-hook twice") == 1, logged
    assert "the plugin at" in logged and "a settings file" in logged
