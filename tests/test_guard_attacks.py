"""Attacks on the guardrails (the hook process, real files, a real journal): what a grant covers, and lines built
so the human is asked about one thing while another runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import runners
from click.testing import CliRunner

from popkit_power.cli import main
from popkit_power.hook.guard_rules import MAX_SUBJECT_CHARS
from popkit_power.session import Session, start_session

AGENT = "c0ffee00-1111-2222-3333-444455556666"
HOOK = "import sys; from popkit_power.hook.entry import main; sys.exit(main())"  # the hook script's body


@pytest.fixture
def session_config() -> dict[str, Any]:
    """conftest's `session` starts with these guardrails."""
    return {"guardrail_paths": ["*.env"], "guardrail_commands": ["git push*"]}


def pre_tool_use(session: Session, command: str, cwd: str = "/repo") -> str | None:
    """The reason the hook denies this Bash command, or None when it lets it through."""
    denied = runners.pre_tool_use(session.power_dir, "Bash", {"command": command}, cwd=cwd, env={})
    return None if denied is None else str(denied["permissionDecisionReason"])


def hook_process(session: Session, command: str, cwd: str = "/repo") -> str:
    """What the hook, as a process of its own, answers a PreToolUse of Bash `command` (its stdout)."""
    payload = {"session_id": AGENT, "cwd": cwd, "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": command}}
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    done = subprocess.run([sys.executable, "-c", HOOK], input=orjson.dumps(payload), env=env, capture_output=True,
                          timeout=60, check=True)
    return done.stdout.decode()


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


@pytest.mark.parametrize("planted", ["fifo", "fifo-last-valid"])
def test_a_fifo_in_place_of_a_config_file_neither_stalls_nor_opens_the_guard(tmp_path: Path, planted: str) -> None:
    """A named pipe as config.json (or its last valid copy) blocked the hook's open() until Claude Code's hook
    timeout, which lets the call through. Opened without blocking, it is a file that cannot be read: the guard keeps
    the last valid guardrails (or, without them, denies). Run as the real hook process; a hang fails the test at the
    generous wait, which is not a timing assertion."""
    home = tmp_path / "power"
    home.mkdir()
    (home / "config.json").write_text(json.dumps({"guardrail_commands": ["git push*"]}))
    session = start_session(str(home), "Ship it", sender="human")
    target = home / ("config.json" if planted == "fifo" else "config.last-valid.json")
    if planted == "fifo-last-valid":
        (home / "config.json").write_text("{not json")
    target.unlink()
    os.mkfifo(target)

    held = hook_process(session, "git push --force", str(tmp_path))
    assert '"permissionDecision":"deny"' in held.replace(" ", "")
    if planted == "fifo":
        assert "git push*" in held and hook_process(session, "git status", str(tmp_path)) == ""
    else:  # no valid version to fall back on: every Bash call is denied, naming the error
        assert "cannot be read" in held


def test_status_shows_the_human_the_whole_guarded_call(session: Session) -> None:
    """status cut every question to 400 characters: a guarded line of 900 showed the human `echo aaa...` and hid
    the `git push --force` at its end. It shows the whole question (any line the guard asks about)."""
    line = "echo " + "a" * 900 + "; git push --force"
    assert pre_tool_use(session, line) is not None
    shown = CliRunner().invoke(main, ["status"], env={"POPKIT_POWER_HOME": session.power_dir, "COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    letters = "".join(char for char in shown.output if char.isalnum() or char == "-")  # across the table's wrapping
    assert "a" * 900 + "gitpush--force" in letters


def test_a_granted_command_passes_only_in_the_folder_the_human_was_shown(session: Session) -> None:
    """A grant for `rm -rf build` asked in a scratch folder let the same words through in every folder (the
    fingerprint was the tool and the line only): the human approves a command where it runs. A grant stands for
    later runs of the same line in the same folder (the README's "the same call passes")."""
    config = {"guardrail_commands": ["rm -rf *"]}
    (Path(session.power_dir) / "config.json").write_text(json.dumps(config))
    assert pre_tool_use(session, "rm -rf build", cwd="/tmp/scratch") is not None
    [asked] = requests(session)
    assert "/tmp/scratch" in asked["data"]["question"]
    session.publish("approval.granted", {"request": asked["data"]["request"]}, sender="human")
    assert pre_tool_use(session, "rm -rf build", cwd="/tmp/scratch") is None
    assert pre_tool_use(session, "rm -rf build", cwd="/tmp/scratch") is None
    elsewhere = pre_tool_use(session, "rm -rf build", cwd="/repo")
    assert elsewhere is not None and "waits for the human's approval" in elsewhere
    assert len(requests(session)) == 2 and "/repo" in requests(session)[-1]["data"]["question"]


NESTED = """
import json, os, subprocess, sys
left = int(sys.argv[1])
if left:
    sys.exit(subprocess.run([sys.executable, "-c", sys.argv[2], str(left - 1), sys.argv[2]]).returncode)
from popkit_power.provenance import MAX_ANCESTORS, doubts, evidence
print(json.dumps(doubts(evidence({}))))
"""


@pytest.mark.slow
def test_an_answer_from_below_a_chain_deeper_than_is_read_is_doubtful() -> None:
    """Only MAX_ANCESTORS parents are read: an agent that runs `approve` under more wrappers than that (real nested
    processes here) hid Claude Code above the cut, and the chain, cut short of init, raised no doubt. A chain read
    to the bound without reaching its top is doubtful."""
    from popkit_power.provenance import MAX_ANCESTORS

    env = {name: value for name, value in os.environ.items() if not name.startswith("CLAUDE")}
    done = subprocess.run([sys.executable, "-c", NESTED, str(MAX_ANCESTORS + 2), NESTED], env=env,
                          capture_output=True, timeout=120, check=True)
    reasons = json.loads(done.stdout)
    assert any("parent chain" in reason and "deeper" in reason for reason in reasons), reasons


def test_a_guarded_call_is_denied_when_the_active_session_cannot_be_read(session: Session) -> None:
    """The `active` file garbled (a careless edit, a torn write): the hook raised before the guard ran, and exited 0
    with no output, so every guarded call passed. A call that matches is denied naming the error; others pass."""
    active = Path(session.power_dir) / "active"
    assert active.exists()
    active.write_text("not a session id!\n")

    held = hook_process(session, "git push --force")
    assert '"permissionDecision":"deny"' in held.replace(" ", "") and "git push*" in held and "active" in held
    assert hook_process(session, "git status") == ""


def test_a_second_request_under_the_same_id_does_not_change_what_the_human_is_shown(session: Session) -> None:
    """The agent's guarded `git push --force` raised request R; the agent then appended its own request R asking
    "may I run the tests?". status showed that question for R, the human approved R, and the push passed: the human
    never saw it. The first request under an id is the one shown (and answered); a later one changes nothing."""
    assert pre_tool_use(session, "git push --force") is not None
    [asked] = requests(session)
    request = asked["data"]["request"]
    session.publish("approval.requested", {"request": request, "question": "may I run the tests?"},
                    sender=f"{AGENT}:main")
    shown = CliRunner().invoke(main, ["status", "--json"], env={"POPKIT_POWER_HOME": session.power_dir})
    assert shown.exit_code == 0, shown.output
    approvals = json.loads(shown.output)["approvals"]
    assert approvals[request]["question"] == asked["data"]["question"]
    assert "git push --force" in approvals[request]["question"]


@pytest.mark.parametrize("line", ["a=(;); git push --force", "a=(x <y) git push", "a=(&)\ngit push",
                                  "for x in (; do git push; done", "case x in <) git push;; esac",
                                  "case x in a) ) git push;; esac"])
def test_an_operator_inside_an_array_neither_hangs_the_hook_nor_lets_the_call_through(session: Session,
                                                                                       line: str) -> None:
    """`a=(;)` (six characters, found by fuzzing) looped for ever in the parser: the hook outlived Claude Code's
    timeout, which lets the call through, on every such line. bash refuses it too: it is unreadable, so held. The
    real hook process; a hang fails at the generous wait."""
    payload = {"session_id": AGENT, "cwd": "/repo", "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": line}}
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    done = subprocess.run([sys.executable, "-c", HOOK], input=orjson.dumps(payload), env=env, capture_output=True,
                          timeout=60, check=True)
    assert "cannot be read as a shell command line" in done.stdout.decode()
