"""An idle agent is woken by news (issue 11): the real Claude Code in an interactive session under tmux, with this
repository loaded as a plugin, against the scripted model server.

The agent makes one tool call, ends its turn and sits idle at its prompt; the model server sees nothing until
something starts a turn. Then `popkit-power send` (or an orphaned task offered to it) must start a turn carrying the
news within 2 s, exactly once: not again at the agent's next tool call, which the script makes it do.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from interactive import InteractiveClaude, tmux_missing
from model_server import ModelServer, Reply, Script, count_marker, is_side_query, text, tool_results, tool_use
from support import until
from test_power_mode import REPO, agent_env, journal_events, popkit

from popkit_power.home import safe_name
from popkit_power.hook.wake import read_claim
from popkit_power.session import Session

pytestmark = pytest.mark.skipif(tmux_missing() is not None, reason=tmux_missing() or "")

WAKE_DEADLINE = 2.0  # seconds from the news being appended to the model's request (the bound)
START_TIMEOUT = 90


class Idle:
    """Scripted model: one tool call, then idle; a turn that carries one of `follow_ups` makes one more tool call
    (so the next tool call's hook would show a repeated item), then it is idle again."""

    def __init__(self, follow_ups: list[str]) -> None:
        self.follow_ups = follow_ups

    def __call__(self, request: dict[str, Any]) -> Reply:
        if is_side_query(request):
            return Reply([text("ok")])
        results = len(tool_results(request))
        if results == 0:
            return Reply([tool_use("Bash", {"command": "echo first", "description": "first"})])
        last = json.dumps(request["messages"][-1])
        if any(marker in last for marker in self.follow_ups):
            return Reply([tool_use("Bash", {"command": f"echo after-wake-{results}", "description": "after"})])
        return Reply([text("idle now")])


def claim_of(home: Path, agent: str) -> tuple[int, int | None] | None:
    session = Session(str(home), (home / "active").read_text().strip())
    return read_claim(str(Path(session.dir, "agents", safe_name(agent) + ".waiter")))


def test_an_idle_agent_is_woken_by_a_message_and_by_an_orphaned_task_once_each(
        claude_bin: Path, model_server: Callable[[Script], ModelServer], tmp_path: Path) -> None:
    home = tmp_path / "power"
    home.mkdir()
    popkit(home, "start", "E2E wake")
    message, task = f"WAKE-{secrets.token_hex(4)}", f"t-orphan-{secrets.token_hex(3)}"
    server = model_server(Idle([message, task]))
    work = tmp_path / "work"
    work.mkdir()
    claude = InteractiveClaude(claude_bin, "WAKE-AGENT sit idle", cwd=work, base_url=server.base_url,
                               state_dir=tmp_path / "claude", plugin_dir=REPO, env=agent_env(home))
    try:
        agent = until(lambda: next((e["from"] for e in journal_events(home) if e["type"] == "agent.idle"), None),
                         START_TIMEOUT, f"the agent's first turn ends\n{claude.screen()}")
        for news, make in ((message, lambda: popkit(home, "send", agent, message)),
                           (f"[orphaned task] {task} ", lambda: popkit(home, "publish", "coordinator", json.dumps(
                               {"task": task, "agent": "gone:main", "context": {"title": "port the lexer"}}),
                               "--type", "task.orphaned", "--as", "coordinator"))):
            waiter = until(lambda: claim_of(home, agent), 30, f"the idle agent's waiter is up\n{claude.screen()}")
            before = len(server.requests)
            make()
            appended = time.monotonic()
            until(lambda: any(news in json.dumps(r) for r in server.requests[before:]),  # noqa: B023
                     WAKE_DEADLINE - (time.monotonic() - appended),
                     f"a model request carrying {news}\n{claude.screen()}")
            # the woken turn makes one more tool call, then ends: the agent is idle again with a new waiter
            until(lambda: (claim_of(home, agent) or waiter) != waiter, 30,  # noqa: B023
                     f"the agent idle again after the woken turn\n{claude.screen()}")
            woken = [r for r in server.requests[before:] if not is_side_query(r)]
            assert len(woken) == 2, "one woken turn: the request it starts, and the one after its tool call"
            assert [count_marker(r, news) for r in woken] == [1, 1], f"{news} delivered exactly once"
            assert "news arrived while you were idle" in json.dumps(woken[0]["messages"][-1])
        events = journal_events(home)
        assert [e["from"] for e in events if e["type"] == "agent.tool"].count(agent) == 3
    finally:
        claude.stop()
    assert not claude.alive()
