"""A task taken from its holder, end to end (issue 16 item 6, issue 21 item 7): two real Claude Code agents against a
scripted model server; agent one claims a task, the human reassigns it to agent two while agent one waits for its
model, and agent one's model sees, after its next tool call, one line telling it to stop; its `popkit-power done`
is refused naming agent two, and the task stays agent two's."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from claude import start_claude
from model_server import Reply, Turns, count_marker, text, tool_results, tool_use
from test_power_mode import (
    GATE_TIMEOUT,
    REPO,
    Gate,
    ServerFactory,
    agent_env,
    journal_events,
    popkit,
    requests_of,
)

NOTICE = "[task taken from you by human] t-e2e was reassigned to "


@pytest.fixture
def power_home(tmp_path: Path) -> Path:
    home = tmp_path / "power"
    home.mkdir()
    return home


def test_the_former_holder_hears_it_once_and_its_done_is_refused(claude_bin: Path, model_server: ServerFactory,
                                                                 tmp_path: Path, power_home: Path) -> None:
    popkit(power_home, "start", "E2E reassignment")
    popkit(power_home, "task", "add", "port the lexer")
    task = next(e["data"]["task"] for e in journal_events(power_home) if e["type"] == "task.created")
    one, two = "AGENT-ONE reassign test", "AGENT-TWO reassign test"
    turns = Turns({
        one: [tool_use("Bash", {"command": f"popkit-power claim {task}", "description": "claim"}),
              tool_use("Bash", {"command": "echo next", "description": "next"}),
              tool_use("Bash", {"command": f"popkit-power done {task} --result lexed", "description": "done"}),
              text("done")],
        two: [tool_use("Bash", {"command": "echo first", "description": "first"}), text("done")],
    })
    hold_one, hold_two = Gate(), Gate()

    def script(request: dict[str, object]) -> Reply:
        prompt = turns.conversation_of(request)
        if len(tool_results(request)) == 1 and prompt in (one, two):
            (hold_one if prompt == one else hold_two).hold()
        return turns(request)

    server = model_server(script)
    processes = {prompt: start_claude(prompt, cwd=tmp_path, base_url=server.base_url, plugin_dir=REPO,
                                      env=agent_env(power_home), claude_bin=claude_bin,
                                      state_dir=tmp_path / f"claude-{index}", timeout=120)
                 for index, prompt in enumerate((one, two))}
    try:
        assert hold_one.reached.wait(GATE_TIMEOUT) and hold_two.reached.wait(GATE_TIMEOUT)
        status = orjson.loads(popkit(power_home, "status", "--json"))
        holder = status["tasks"][task]["owner"]
        (other,) = [key for key in status["agents"] if key != holder]
        popkit(power_home, "reassign", task, other)
    finally:
        hold_one.release.set()
        hold_two.release.set()
    for process in processes.values():
        assert process.wait().returncode == 0
    notice = NOTICE.replace("t-e2e", task)
    one_requests = requests_of(server, one)
    assert count_marker(one_requests[1], notice) == 0
    assert count_marker(one_requests[2], notice) == 1, "told at its next tool call"
    assert "stop working on it" in str(one_requests[2])
    assert count_marker(one_requests[-1], notice) == 1, "told once in the whole conversation"
    refusal = str(tool_results(one_requests[3])[-1])
    assert f"task {task} belongs to" in refusal and other in refusal, refusal
    events = journal_events(power_home)
    assert not any(e["type"] == "task.completed" and e["data"]["task"] == task for e in events), "nothing written"
    assert [e["data"]["agent"] for e in events if e["type"] == "task.assigned"] == [other]
