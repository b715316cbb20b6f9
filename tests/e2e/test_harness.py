"""Proof that the e2e harness drives the real Claude Code, and a record of how hooks reach the model.

Each test runs ``claude -p`` against a scripted :class:`ModelServer` and asserts on what the model was
sent. The placement facts asserted here are the ones documented at the top of ``model_server.py``; if a
new Claude Code version moves hook context, these tests say where it went.
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from claude import ClaudeResult, run_claude, start_claude
from model_server import (
    ModelServer,
    Reply,
    Script,
    Turns,
    count_marker,
    is_task_notification,
    messages_containing,
    text,
    tool_result_text,
    tool_results,
    tool_use,
)

ServerFactory = Callable[[Script], ModelServer]

# Logs every event it is registered for and, for the events named after the prefix, answers with
# additionalContext "<prefix>-<event>-<agent_id or main>", so each marker says who it was meant for.
PROBE_HOOK = """\
import json, os, sys
log_path, prefix, *context_events = sys.argv[1:]
payload = json.load(sys.stdin)
event = payload["hook_event_name"]
env = {k: v for k, v in os.environ.items() if k.startswith("CLAUDE")}
with open(log_path, "a") as log:
    log.write(json.dumps({"event": event, "payload": payload, "env": env}) + "\\n")
if event in context_events:
    marker = prefix + "-" + event + "-" + payload.get("agent_id", "main")
    print(json.dumps({"hookSpecificOutput": {"hookEventName": event, "additionalContext": marker}}))
"""


def write_probe_plugin(
    root: Path, *, log: Path, prefix: str, events: Iterable[str], context_events: Iterable[str]
) -> Path:
    """A plugin folder (for ``--plugin-dir``) registering the probe hook for ``events``."""
    (root / ".claude-plugin").mkdir(parents=True)
    (root / "hooks").mkdir()
    (root / ".claude-plugin" / "plugin.json").write_text(
        json.dumps({"name": "probe", "version": "0.0.1", "author": {"name": "t"}})
    )
    script = root / "probe_hook.py"
    script.write_text(PROBE_HOOK)
    command = {"type": "command", "command": sys.executable, "args": [str(script), str(log), prefix, *context_events]}
    hooks = {event: [{"hooks": [command]}] for event in events}
    (root / "hooks" / "hooks.json").write_text(json.dumps({"hooks": hooks}))
    return root


def read_hook_log(log: Path) -> list[dict[str, Any]]:
    """The probe hook's records, in the order the hooks wrote them."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def conversation(server: ModelServer, script: Turns, key: str) -> list[dict[str, Any]]:
    """The requests of one scripted conversation, in order."""
    return [request for request in server.requests if script.conversation_of(request) == key]


def env_of(bash_output: str) -> dict[str, str]:
    """The ``CLAUDE*`` variables from the output of ``env``."""
    pairs = (line.split("=", 1) for line in bash_output.splitlines() if "=" in line)
    return {name: value for name, value in pairs if name.startswith("CLAUDE")}


def claude(claude_bin: Path, tmp_path: Path, prompt: str, server: ModelServer, **kwargs: Any) -> ClaudeResult:
    """``run_claude`` in ``tmp_path/work`` with its state under ``tmp_path/claude``, asserting a clean exit."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    result = run_claude(
        prompt,
        cwd=work,
        base_url=server.base_url,
        claude_bin=claude_bin,
        state_dir=tmp_path / "claude",
        timeout=60,
        **kwargs,
    )
    assert result.returncode == 0, result.describe()
    return result


def test_bash_round_trip(claude_bin: Path, model_server: ServerFactory, tmp_path: Path) -> None:
    """The scripted model calls Bash; the command's output comes back as a tool_result and the run ends
    with the scripted final text."""
    token = f"harness-ok-{secrets.token_hex(4)}"
    prompt = f"ROUND-TRIP {token}"
    script = Turns({prompt: [tool_use("Bash", {"command": f"echo {token}", "description": "echo"}), text("all done")]})
    server = model_server(script)

    result = claude(claude_bin, tmp_path, prompt, server)

    requests = conversation(server, script, prompt)
    assert len(requests) == 2, [r["messages"][-1] for r in requests]
    assert tool_results(requests[0]) == []
    (result_block,) = tool_results(requests[1])
    assert tool_result_text(result_block).strip() == token
    assert result.result_text == "all done"


def test_post_tool_use_context_reaches_next_request(
    claude_bin: Path, model_server: ServerFactory, tmp_path: Path
) -> None:
    """A plugin's PostToolUse additionalContext is in the next request, once, right after the tool result."""
    prefix = f"PROBE-{secrets.token_hex(4)}"
    plugin = write_probe_plugin(
        tmp_path / "plugin",
        log=tmp_path / "hooks.jsonl",
        prefix=prefix,
        events=["PostToolUse"],
        context_events=["PostToolUse"],
    )
    prompt = "POST-TOOL-USE probe"
    script = Turns({prompt: [tool_use("Bash", {"command": "true", "description": "noop"}), text("done")]})
    server = model_server(script)

    claude(claude_bin, tmp_path, prompt, server, plugin_dir=plugin)

    first, second = conversation(server, script, prompt)
    assert count_marker(first, prefix) == 0
    assert count_marker(second, prefix) == 1
    _assert_context_after_tool_result(second, f"PostToolUse:Bash hook additional context: {prefix}-PostToolUse-main")


def test_hook_context_with_background_subagent(claude_bin: Path, model_server: ServerFactory, tmp_path: Path) -> None:
    """Where SessionStart, SubagentStart and PostToolUse context land when the main agent launches a
    (background) subagent, and that ``claude -p`` waits for that subagent before it exits."""
    prefix = f"CTX-{secrets.token_hex(4)}"
    log = tmp_path / "hooks.jsonl"
    plugin = write_probe_plugin(
        tmp_path / "plugin",
        log=log,
        prefix=prefix,
        events=["SessionStart", "SubagentStart", "PostToolUse", "SubagentStop", "Stop"],
        context_events=["SessionStart", "SubagentStart", "PostToolUse"],
    )
    main_prompt, sub_prompt = "MAIN-AGENT launch one helper", "SUBAGENT-TASK run one command"
    # The sleep makes the subagent outlive the main agent's first turn, so the run shows -p waiting for it.
    slow_echo = f"{sys.executable} -c 'import time; time.sleep(2)'; echo sub-ran"
    launch = {"description": "probe helper", "prompt": sub_prompt, "subagent_type": "general-purpose"}
    turns = Turns(
        {
            sub_prompt: [tool_use("Bash", {"command": slow_echo, "description": "slow echo"}), text("SUB-FINAL")],
            main_prompt: [tool_use("Agent", launch), text("MAIN-FIRST-END")],
        }
    )

    def script(request: dict[str, Any]) -> Reply:
        if turns.conversation_of(request) == main_prompt and is_task_notification(request):
            return Reply([text("MAIN-AFTER-NOTIFICATION")])
        return turns(request)

    server = model_server(script)
    result = claude(claude_bin, tmp_path, main_prompt, server, plugin_dir=plugin)

    records = read_hook_log(log)
    (subagent_start,) = [r["payload"] for r in records if r["event"] == "SubagentStart"]
    agent_id = subagent_start["agent_id"]
    assert subagent_start["agent_type"] == "general-purpose"
    main = conversation(server, turns, main_prompt)
    sub = conversation(server, turns, sub_prompt)
    # main: the prompt, the Agent tool's result, the task notification; sub: the prompt, the Bash result.
    assert len(main) == 3 and len(sub) == 2, (len(main), len(sub))

    session_marker = f"{prefix}-SessionStart-main"
    assert [count_marker(r, session_marker) for r in main + sub] == [1, 1, 1, 0, 0]
    _assert_context_at(main[0], 1, f"SessionStart hook additional context: {session_marker}")

    subagent_marker = f"{prefix}-SubagentStart-{agent_id}"
    assert [count_marker(r, subagent_marker) for r in main + sub] == [0, 0, 0, 1, 1]
    _assert_context_at(sub[0], 1, f"SubagentStart hook additional context: {subagent_marker}")

    agent_tool_marker = f"{prefix}-PostToolUse-main"
    assert [count_marker(r, agent_tool_marker) for r in main + sub] == [0, 1, 1, 0, 0]
    _assert_context_after_tool_result(main[1], f"PostToolUse:Agent hook additional context: {agent_tool_marker}")

    sub_bash_marker = f"{prefix}-PostToolUse-{agent_id}"
    assert [count_marker(r, sub_bash_marker) for r in main + sub] == [0, 0, 0, 0, 1]
    _assert_context_after_tool_result(sub[1], f"PostToolUse:Bash hook additional context: {sub_bash_marker}")

    post_tool_uses = [r["payload"] for r in records if r["event"] == "PostToolUse"]
    agent_launch = next(p for p in post_tool_uses if p["tool_name"] == "Agent")
    assert "agent_id" not in agent_launch
    assert agent_launch["tool_response"]["status"] == "async_launched"
    assert agent_launch["tool_response"]["agentId"] == agent_id
    sub_bash = next(p for p in post_tool_uses if p["tool_name"] == "Bash")
    assert sub_bash["agent_id"] == agent_id
    assert {r["payload"]["session_id"] for r in records} == {result.output["session_id"]}

    # The main agent's turn ends (Stop) while the subagent still runs; -p then waits, the subagent
    # finishes (SubagentStop), and the main agent is asked again with a task notification.
    events = [(r["event"], r["payload"].get("agent_id")) for r in records]
    first_stop = events.index(("Stop", None))
    assert events.index(("SessionStart", None)) == 0
    assert first_stop < events.index(("PostToolUse", agent_id)) < events.index(("SubagentStop", agent_id))
    assert events[-1] == ("Stop", None) and events.count(("Stop", None)) == 2
    assert is_task_notification(main[2]) and "<result>SUB-FINAL</result>" in json.dumps(main[2]["messages"][-1])
    assert result.result_text == "MAIN-AFTER-NOTIFICATION"


def test_bash_environment_of_main_and_subagent(claude_bin: Path, model_server: ServerFactory, tmp_path: Path) -> None:
    """A Bash command sees the session id and Claude Code's pid, but nothing that names its agent: a
    subagent's commands get exactly the main agent's CLAUDE* variables."""
    log = tmp_path / "hooks.jsonl"
    plugin = write_probe_plugin(
        tmp_path / "plugin", log=log, prefix="ENV", events=["SubagentStart", "PostToolUse"], context_events=[]
    )
    main_prompt, sub_prompt = "MAIN-ENV print the environment", "SUBAGENT-ENV print the environment"
    launch = {"description": "env helper", "prompt": sub_prompt, "subagent_type": "general-purpose"}
    script = Turns(
        {
            sub_prompt: [tool_use("Bash", {"command": "env", "description": "env"}), text("sub env done")],
            main_prompt: [
                tool_use("Bash", {"command": "env", "description": "env"}),
                tool_use("Agent", launch),
                text("main env done"),
            ],
        }
    )
    server = model_server(script)

    result = claude(claude_bin, tmp_path, main_prompt, server, plugin_dir=plugin)

    main_env = env_of(tool_result_text(tool_results(conversation(server, script, main_prompt)[1])[0]))
    sub_env = env_of(tool_result_text(tool_results(conversation(server, script, sub_prompt)[1])[0]))
    (agent_id,) = [r["payload"]["agent_id"] for r in read_hook_log(log) if r["event"] == "SubagentStart"]
    assert main_env["CLAUDECODE"] == "1"
    assert main_env["CLAUDE_CODE_SESSION_ID"] == result.output["session_id"]
    assert main_env["CLAUDE_PID"] == str(result.pid)
    assert sub_env == main_env
    assert not any(agent_id in value for value in sub_env.values())
    # Hooks get more than Bash commands: the project dir and the plugin's folders.
    hook_env = read_hook_log(log)[0]["env"]
    assert "CLAUDE_PROJECT_DIR" in hook_env and "CLAUDE_PROJECT_DIR" not in main_env
    assert hook_env["CLAUDE_PID"] == main_env["CLAUDE_PID"]


def test_concurrent_sessions(claude_bin: Path, model_server: ServerFactory, tmp_path: Path) -> None:
    """Two ``claude -p`` processes started together share one model server and keep their conversations apart."""
    tokens = [f"parallel-{n}-{secrets.token_hex(4)}" for n in range(2)]
    prompts = [f"SESSION-{n}" for n in range(2)]
    script = Turns(
        {
            prompt: [tool_use("Bash", {"command": f"echo {token}", "description": "echo"}), text(f"{prompt} done")]
            for prompt, token in zip(prompts, tokens, strict=True)
        }
    )
    server = model_server(script)
    processes = []
    for n, prompt in enumerate(prompts):
        work = tmp_path / f"work-{n}"
        work.mkdir()
        processes.append(
            start_claude(
                prompt,
                cwd=work,
                base_url=server.base_url,
                claude_bin=claude_bin,
                state_dir=tmp_path / f"claude-{n}",
                timeout=60,
            )
        )
    results = [process.wait() for process in processes]

    assert len({result.pid for result in results}) == 2
    for prompt, token, result in zip(prompts, tokens, results, strict=True):
        assert result.returncode == 0, result.describe()
        assert result.result_text == f"{prompt} done"
        (block,) = tool_results(conversation(server, script, prompt)[1])
        assert tool_result_text(block).strip() == token


def test_model_server_routes(model_server: ServerFactory) -> None:
    """count_tokens, a non-streamed side query, the SSE event order, and a JSON 404 for anything else."""
    server = model_server(Turns({"SCRIPTED": [tool_use("Bash", {"command": "true"}), text("end")]}))

    def post(path: str, body: Mapping[str, Any]) -> tuple[int, bytes]:
        request = urllib.request.Request(
            server.base_url + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = post("/v1/messages/count_tokens?beta=true", {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and json.loads(body)["input_tokens"] > 0

    side_query = {"model": "m", "messages": [{"role": "user", "content": "title?"}], "stream": False}
    status, body = post("/v1/messages?beta=true", side_query)
    assert status == 200 and json.loads(body)["content"] == [{"type": "text", "text": "ok"}]

    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    scripted = {"model": "m", "messages": [{"role": "user", "content": "SCRIPTED"}], "tools": tools, "stream": True}
    status, body = post("/v1/messages?beta=true", scripted)
    events = [line.split(": ", 1)[1] for line in body.decode().splitlines() if line.startswith("event: ")]
    assert status == 200
    assert events == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert b'"stop_reason": "tool_use"' in body and b'"partial_json": "{\\"command\\": \\"true\\"}"' in body

    status, body = post("/v1/models", {})
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    assert len(server.requests) == 2


def _texts(message: Mapping[str, Any]) -> list[str]:
    """The texts of one message, whether its content is a string or a list of blocks."""
    content = message["content"]
    return [content] if isinstance(content, str) else [b.get("text", "") for b in content]


def _assert_context_at(request: Mapping[str, Any], index: int, expected_start: str) -> None:
    """Hook context sits in ``messages[index]``, a ``system`` message whose text starts with ``expected_start``."""
    assert messages_containing(request, expected_start) == [index]
    message = request["messages"][index]
    assert message["role"] == "system", message
    assert _texts(message)[0].startswith(expected_start), _texts(message)[0][:300]


def _assert_context_after_tool_result(request: Mapping[str, Any], expected_start: str) -> None:
    """Hook context is a ``system`` message that directly follows the message holding the last tool_result."""
    messages = request["messages"]
    last_result = max(i for i, m in enumerate(messages) if tool_results({"messages": [m]}))
    _assert_context_at(request, last_result + 1, expected_start)
