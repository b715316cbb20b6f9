"""The verbs agents and people use inside a session, driven through the CLI against real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from popkit_power.cli import main
from popkit_power.session import Session, start_session

MAIN = "c0ffee00-1111:main"
HELPER = "c0ffee00-1111:a1b2c3"


@pytest.fixture
def session(tmp_path: Path) -> Session:
    created = start_session(str(tmp_path / "power"), "Ship it", sender="human")
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=MAIN)
    created.publish("agent.joined", {"name": "Explore-a1b2c3", "agent_type": "Explore"}, sender=HELPER)
    return created


def cli(session: Session, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["--home", session.power_dir, *args], env=env or {"CLAUDE_CODE_SESSION_ID": ""})


def last(session: Session) -> dict[str, Any]:
    return list(session.journal.reader())[-1]


def test_insight_with_tags_from_the_claude_code_session_environment(session: Session) -> None:
    result = cli(session, "insight", "tokens expire after 5 min", "--tags", "auth, api",
                 env={"CLAUDE_CODE_SESSION_ID": "c0ffee00-1111"})
    assert result.exit_code == 0, result.output
    event = last(session)
    assert (event["type"], event["from"], event["data"]) == (
        "insight.shared", MAIN, {"text": "tokens expire after 5 min", "tags": ["auth", "api"]})


def test_send_resolves_names_and_prefixes_and_refuses_unknown_agents(session: Session) -> None:
    assert cli(session, "send", "Explore-a1b2c3", "look at auth", "--as", MAIN).exit_code == 0
    assert last(session)["to"] == HELPER and last(session)["type"] == "message.direct"
    assert cli(session, "send", "main-c0", "done").exit_code == 0
    assert last(session)["to"] == MAIN and last(session)["from"] == "human"
    result = cli(session, "send", "nobody", "hi")
    assert result.exit_code == 2
    assert "'nobody' is not an agent of this session; agents: main-c0ffee" in result.output
    ambiguous = cli(session, "send", "c0ffee00-1111", "hi")
    assert ambiguous.exit_code == 2 and "matches several agents" in ambiguous.output


def test_broadcast(session: Session) -> None:
    assert cli(session, "broadcast", "freeze main at 5pm").exit_code == 0
    assert (last(session)["ch"], last(session)["data"]["text"]) == ("broadcast", "freeze main at 5pm")


def test_ask_then_approve_or_deny(session: Session) -> None:
    result = cli(session, "ask", "May I drop the table?", "--as", HELPER, "--option", "yes", "--option", "no")
    assert result.exit_code == 0
    request = last(session)["data"]["request"]
    assert f"popkit-power approve {request}" in result.output
    assert last(session)["data"]["options"] == ["yes", "no"]
    assert cli(session, "approve", request, "--note", "after the backup").exit_code == 0
    state, _ = session.projection()
    assert state["approvals"][request]["status"] == "granted"
    assert state["approvals"][request]["note"] == "after the backup"
    missing = cli(session, "deny", "nope")
    assert missing.exit_code == 2 and "no approval request 'nope'" in missing.output


def test_result_goes_to_the_senders_current_task(session: Session) -> None:
    session.publish("task.created", {"task": "t-lexer", "title": "lexer", "owner": HELPER}, sender=MAIN)
    assert cli(session, "result", "lexer done: 12 tokens", "--as", HELPER).exit_code == 0
    state, _ = session.projection()
    assert state["tasks"]["t-lexer"]["status"] == "completed"
    assert state["tasks"]["t-lexer"]["result"] == "lexer done: 12 tokens"


def test_claim_first_one_wins(session: Session) -> None:
    session.publish("task.created", {"task": "t1", "title": "parser"}, sender=MAIN)
    session.publish("task.orphaned", {"task": "t1", "agent": "gone:main"}, sender="coordinator")
    assert cli(session, "claim", "t1", "--as", HELPER).exit_code == 0
    second = cli(session, "claim", "t1", "--as", MAIN)
    assert second.exit_code == 2 and f"it belongs to {HELPER}" in second.output


def test_verbs_without_an_active_session_say_how_to_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "broadcast", "hi"])
    assert result.exit_code == 2
    assert 'no active power session' in result.output and 'popkit-power start "objective"' in result.output


def test_every_command_has_help() -> None:
    for name, command in main.commands.items():
        assert command.help, f"{name} has no help"
        assert CliRunner().invoke(main, [name, "--help"]).exit_code == 0
    assert {"insight", "send", "broadcast", "ask", "result", "approve", "deny", "claim"} <= set(main.commands)
