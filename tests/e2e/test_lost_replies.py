"""A reply that Claude Code dropped is delivered again (issue 21 item 4), with the real Claude Code.

Claude Code 2.1.330 cancels a hook at its `timeout` and drops whatever it printed, even a whole reply. Here the
PostToolUse hook is wrapped so that its first run publishes a broadcast, lets popkit-power-hook answer with it, then
outstays its 3 s timeout. The model must still see the broadcast, once: the next tool call's hook finds in the
transcript that the reply never reached the model and delivers it again.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from claude import run_claude
from model_server import ModelServer, Script, Turns, count_marker, text, tool_use
from test_power_mode import VENV_BIN, agent_env, popkit

WRAPPER = """\
import os, subprocess, sys, time
payload = sys.stdin.buffer.read()
first = os.path.exists({marker!r})
if first:
    os.unlink({marker!r})
    from popkit_power.config import load_config
    from popkit_power.home import active_session, find_power_dir
    from popkit_power.session import Session
    power_dir = find_power_dir()
    Session(power_dir, active_session(power_dir), load_config(power_dir)).publish(
        "message.broadcast", {{"text": {news!r}}}, sender="human")
reply = subprocess.run([{hook!r}], input=payload, capture_output=True).stdout
sys.stdout.buffer.write(reply)
sys.stdout.flush()
if first:
    open({printed!r}, "wb").write(reply)
    time.sleep(60)  # past the hook's timeout: Claude Code cancels it and drops what it printed
"""


def test_a_reply_dropped_at_the_hook_timeout_reaches_the_model_at_the_next_call(
        claude_bin: Path, model_server: Callable[[Script], ModelServer], tmp_path: Path) -> None:
    home = tmp_path / "power"
    home.mkdir()
    popkit(home, "start", "E2E lost reply")
    news = f"LOST-{secrets.token_hex(4)}"
    work = tmp_path / "work"
    (work / ".claude").mkdir(parents=True)
    marker, printed = tmp_path / "first-call", tmp_path / "printed.json"
    marker.touch()
    wrapper = tmp_path / "slow_hook.py"
    wrapper.write_text(WRAPPER.format(marker=str(marker), news=news, hook=str(VENV_BIN / "popkit-power-hook"),
                                      printed=str(printed)))
    hook = {"type": "command", "command": f"{sys.executable} {wrapper}", "timeout": 3}
    (work / ".claude" / "settings.json").write_text(json.dumps({"hooks": {
        "SessionStart": [{"hooks": [{"type": "command", "command": str(VENV_BIN / "popkit-power-hook")}]}],
        "PostToolUse": [{"hooks": [hook]}]}}))
    calls = [tool_use("Bash", {"command": f"echo call{number}", "description": f"call {number}"})
             for number in range(4)]
    server = model_server(Turns({"LOST-REPLY": [*calls, text("done")]}))
    result = run_claude("LOST-REPLY work", cwd=work, base_url=server.base_url, env=agent_env(home),
                        claude_bin=claude_bin, state_dir=tmp_path / "claude", allowed_tools="Bash", timeout=180)
    assert result.returncode == 0, result.describe()
    assert news in printed.read_text(), "the first reply carried the broadcast"
    assert "timed out after 3000ms" in result.debug_log(), "and Claude Code cancelled that hook"
    requests = [request for request in server.requests if request.get("tools")]
    counts = [count_marker(request, news) for request in requests]
    # Dropped from the request after the first call; delivered again at the next call whose hook finds the model's
    # answer in the transcript (the second call's, or the third's when Claude Code has not yet written that answer
    # out when the second call's hook runs), and once: never twice in one request, never gone again.
    assert len(counts) == 5 and counts[:2] == [0, 0], counts
    assert counts[-1] == 1 and counts == sorted(counts) and set(counts) <= {0, 1}, counts
    assert counts[3] == 1, "delivered by the third call at the latest"
