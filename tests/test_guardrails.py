"""Guardrails: a call that matches a configured pattern waits for the human's approval (PreToolUse), and the hook
that checks it is registered only where guardrails are set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import runners

from popkit_power.config import Config, load_config
from popkit_power.errors import ConfigError
from popkit_power.hook.guard_rules import matching_rule
from popkit_power.session import Session, start_session
from popkit_power.setup.install import GUARD_EVENT, GUARD_MATCHER, HOOK_EVENTS

AGENT = "c0ffee00-1111-2222-3333-444455556666"


def configure(home: Path, **values: Any) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(json.dumps(values))


@pytest.fixture
def session_config() -> dict[str, Any]:
    """conftest's `session` starts with these guardrails."""
    return {"guardrail_paths": ["*.env", "migrations/*"], "guardrail_commands": ["git push*", "rm -rf *"]}


def pre_tool_use(session: Session, tool: str, **tool_input: Any) -> dict[str, Any] | None:
    return runners.pre_tool_use(session.power_dir, tool, tool_input)


def requests(session: Session) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event["type"] == "approval.requested"]


@pytest.mark.parametrize(("tool", "tool_input", "expected"), [
    ("Write", {"file_path": "/repo/.env"}, ("/repo/.env", "*.env")),
    ("Edit", {"file_path": "/repo/config/prod.env"}, ("/repo/config/prod.env", "*.env")),
    ("Edit", {"file_path": "/repo/migrations/0042_drop.py"}, ("/repo/migrations/0042_drop.py", "migrations/*")),
    ("NotebookEdit", {"notebook_path": "/repo/migrations/a/b.ipynb"}, ("/repo/migrations/a/b.ipynb", "migrations/*")),
    ("Read", {"file_path": "/repo/.env"}, None),  # reading is not guarded
    ("Edit", {"file_path": "/repo/src/env.py"}, None),
    ("Edit", {"file_path": "/elsewhere/migrations/x.py"}, None),  # relative to the agent's folder, or absolute
    ("Bash", {"command": "git push origin main"}, ("git push origin main", "git push*")),
    ("Bash", {"command": "cd app && git push --force"}, ("cd app && git push --force", "git push*")),
    ("Bash", {"command": "make; rm -rf build"}, ("make; rm -rf build", "rm -rf *")),
    ("Bash", {"command": "git status"}, None),
    ("Bash", {"command": "echo 'git push'"}, None),
    ("Bash", {"command": 42}, None),
])
def test_which_calls_a_guardrail_matches(tool: str, tool_input: dict[str, Any], expected: Any) -> None:
    config = Config(guardrail_paths=["*.env", "migrations/*"], guardrail_commands=["git push*", "rm -rf *"])
    assert matching_rule(config, tool, tool_input, "/repo") == expected


@pytest.mark.parametrize(("value", "problem"), [
    ("*.env", "must be a list of patterns"),
    (["*.env", 3], "must be a list of patterns"),
    (["  "], "empty or over 500 characters"),
    (["x" * 501], "empty or over 500 characters"),
    (["*"] * 101, "at most 100 patterns"),
])
def test_bad_guardrails_are_refused_naming_the_setting(tmp_path: Path, value: Any, problem: str) -> None:
    configure(tmp_path, guardrail_commands=value)
    with pytest.raises(ConfigError, match=f"'guardrail_commands' .*{problem}"):
        load_config(str(tmp_path))


def test_a_guarded_call_waits_for_the_human_and_passes_once_granted(session: Session) -> None:
    """Denied with a reason naming the request it raised; asking again raises no second request; once the human
    approves, the same call passes (no output: Claude Code's own rules apply), and another command asks anew."""
    first = pre_tool_use(session, "Bash", command="git push origin main")
    assert first is not None
    [asked] = requests(session)
    request = asked["data"]["request"]
    assert asked["from"] == f"{AGENT}:main"
    assert asked["data"]["guard"] == {"tool": "Bash", "subject": "git push origin main", "pattern": "git push*",
                                      "cwd": "/repo"}
    assert f"request {request}" in first["permissionDecisionReason"]
    assert f"popkit-power approve {request}" in first["permissionDecisionReason"]
    again = pre_tool_use(session, "Bash", command="git push origin main")
    assert again is not None and f"request {request}" in again["permissionDecisionReason"]
    assert len(requests(session)) == 1
    state, _ = session.projection()
    assert state["approvals"][request]["question"].startswith("guardrail 'git push*': may main-c0ffee")
    session.publish("approval.granted", {"request": request}, sender="human")
    assert pre_tool_use(session, "Bash", command="git push origin main") is None
    assert pre_tool_use(session, "Bash", command="git push origin main") is None
    other = pre_tool_use(session, "Bash", command="git push --tags")
    assert other is not None and len(requests(session)) == 2


def test_an_answer_from_anyone_but_the_human_does_not_open_the_guard(session: Session) -> None:
    pre_tool_use(session, "Write", file_path="/repo/.env", content="X=1")
    request = requests(session)[0]["data"]["request"]
    session.publish("approval.granted", {"request": request}, sender=f"{AGENT}:main")
    assert pre_tool_use(session, "Write", file_path="/repo/.env", content="X=1") is not None
    session.publish("approval.denied", {"request": request, "note": "not the prod keys"}, sender="human")
    denied = pre_tool_use(session, "Write", file_path="/repo/.env", content="X=1")
    assert denied is not None and f"the human denied request {request}" in denied["permissionDecisionReason"]
    session.publish("approval.granted", {"request": request}, sender="human")  # a second answer changes nothing
    assert pre_tool_use(session, "Write", file_path="/repo/.env", content="X=1") is not None


def test_calls_that_match_nothing_and_sessions_without_guardrails_get_no_answer(tmp_path: Path,
                                                                                session: Session) -> None:
    assert pre_tool_use(session, "Bash", command="pytest -q") is None
    assert pre_tool_use(session, "Edit", file_path="/repo/src/app.py") is None
    plain = start_session(str(tmp_path / "plain"), "No guardrails", sender="human")
    assert pre_tool_use(plain, "Bash", command="git push origin main") is None
    assert requests(session) == [] and requests(plain) == []


def test_a_damaged_guard_entry_looks_for_the_answer_from_the_start_rather_than_break_the_hook(
        session: Session) -> None:
    pre_tool_use(session, "Bash", command="rm -rf /tmp/x")
    [state_file] = Path(session.dir, "agents").glob("*.json")
    state = json.loads(state_file.read_text())
    for entry in state["guards"].values():
        entry["scan"] = {"segment": "nope"}
    state_file.write_text(json.dumps(state))
    denied = pre_tool_use(session, "Bash", command="rm -rf /tmp/x")
    assert denied is not None and len(requests(session)) == 1
    session.publish("approval.granted", {"request": requests(session)[0]["data"]["request"]}, sender="human")
    assert pre_tool_use(session, "Bash", command="rm -rf /tmp/x") is None
    for entry in state["guards"].values():
        entry["request"] = None
    state_file.write_text(json.dumps(state))
    assert pre_tool_use(session, "Bash", command="rm -rf /tmp/x") is not None, "an unreadable entry asks anew"
    assert len(requests(session)) == 2


def run_cli(home: Path, *args: str) -> Any:
    return runners.run_cli(*args, home=home)


def test_the_pretooluse_hook_is_registered_only_where_guardrails_are_set(tmp_path: Path) -> None:
    """`install` adds PreToolUse only with guardrails in config.json; `guardrails on` refuses without them and adds
    just that hook (for plugin users); `guardrails off` removes just that one; `uninstall` removes all."""
    home, project = tmp_path / "power", tmp_path / "project"
    settings = project / ".claude" / "settings.local.json"
    assert run_cli(home, "install", "--project-dir", str(project)).exit_code == 0
    assert set(json.loads(settings.read_text())["hooks"]) == set(HOOK_EVENTS)
    refused = run_cli(home, "guardrails", "on", "--project-dir", str(project))
    assert refused.exit_code == 2 and "no guardrails are set" in refused.output and "guardrail_paths" in refused.output
    configure(home, guardrail_commands=["git push*"])
    assert run_cli(home, "install", "--project-dir", str(project)).exit_code == 0
    hooks = json.loads(settings.read_text())["hooks"]
    assert set(hooks) == {*HOOK_EVENTS, GUARD_EVENT} and hooks[GUARD_EVENT][0]["matcher"] == GUARD_MATCHER
    off = run_cli(home, "guardrails", "off", "--project-dir", str(project))
    assert off.exit_code == 0 and set(json.loads(settings.read_text())["hooks"]) == set(HOOK_EVENTS)
    plugin_only = tmp_path / "plugin-user"
    assert run_cli(home, "guardrails", "on", "--project-dir", str(plugin_only)).exit_code == 0
    assert set(json.loads((plugin_only / ".claude" / "settings.local.json").read_text())["hooks"]) == {GUARD_EVENT}
    again = run_cli(home, "guardrails", "on", "--project-dir", str(plugin_only))
    assert "already on" in again.output
    assert run_cli(home, "uninstall", "--project-dir", str(plugin_only)).exit_code == 0
    assert not (plugin_only / ".claude").exists(), "the settings file install made, left empty, is removed"
