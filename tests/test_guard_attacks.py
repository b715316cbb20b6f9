"""Attacks on the guardrails (the hook process, real files, a real journal): what a grant covers, and lines built
so the human is asked about one thing while another runs."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from popkit_power.hook import entry as hook
from popkit_power.hook.guard_rules import MAX_SUBJECT_CHARS
from popkit_power.session import Session, start_session

AGENT = "c0ffee00-1111-2222-3333-444455556666"


@pytest.fixture
def session(tmp_path: Path) -> Session:
    home = tmp_path / "power"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"guardrail_paths": ["*.env"], "guardrail_commands": ["git push*"]}))
    return start_session(str(home), "Ship it", sender="human")


def pre_tool_use(session: Session, command: str) -> str | None:
    payload = {"session_id": AGENT, "cwd": "/repo", "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": command}}
    reply = hook.run(io.BytesIO(orjson.dumps(payload)), session.power_dir, {})
    return None if reply is None else str(orjson.loads(reply)["hookSpecificOutput"]["permissionDecisionReason"])


def requests(session: Session) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event["type"] == "approval.requested"]


def test_the_human_is_never_asked_about_a_cut_line(session: Session) -> None:
    """A line longer than a request can show was cut to its first MAX_SUBJECT_CHARS characters: the human was asked
    about `echo aaaa...` while the part past the cut held the `git push`, and a grant for the cut text then let any
    line starting with it through. Such a line is denied without a request, and says why."""
    hidden = "echo " + "a" * MAX_SUBJECT_CHARS + "; git push --force"
    reason = pre_tool_use(session, hidden)
    assert reason is not None and "too long" in reason and "git push*" in reason
    assert requests(session) == []
    shown = "git push origin " + "x" * (MAX_SUBJECT_CHARS - 16)  # as long as a request can show: asked
    assert pre_tool_use(session, shown) is not None
    [asked] = requests(session)
    assert asked["data"]["guard"]["subject"] == shown and shown in asked["data"]["question"]
    session.publish("approval.granted", {"request": asked["data"]["request"]}, sender="human")
    assert pre_tool_use(session, shown) is None
    longer = pre_tool_use(session, shown + "; git push --force --all")  # the granted text, and more: not granted
    assert longer is not None and "too long" in longer
