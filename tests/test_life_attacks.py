"""Attacks on the lives of tasks: the human finishing an agent's task from a terminal. The agent that held it must
be told (as when the human releases or reassigns it), at its next call or woken if idle, and stop showing on it."""

from __future__ import annotations

import subprocess

import pytest
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal
from test_cli_agents import cli, records
from test_task_taken import (
    HOLDER,
    OTHER,
    TASK,
    current_task,
    hook,
    session,  # noqa: F401  - a fixture
    told,
)
from test_wake import WAIT, claude_pids, fake_claude, start_waiter, stop, waiting  # noqa: F401  - a fixture

from popkit_power.session import Session

NOTICE = "- [task taken from you by human] "


@pytest.mark.parametrize("verb", [("done", TASK, "--result", "finished it myself"),
                                  ("done", TASK, "--result", "no longer needed", "--failed"),
                                  ("result", "finished it myself", "--task", TASK)])
def test_the_humans_done_on_an_agents_task_tells_the_holder_once(session: Session,  # noqa: F811
                                                                 verb: tuple[str, ...]) -> None:
    completed = cli(session, *verb)
    assert completed.exit_code == 0, completed.output
    (event,) = [r for r in records(session) if r["type"] == "task.completed"]
    assert event["data"]["holder"] == HOLDER, "the completion names whose task it was, as a release does"
    text = told(hook(session))
    (line,) = [line for line in text.splitlines() if line.startswith(NOTICE)]
    assert TASK in line and "stop working on it" in line
    assert ("failed" in line) if "--failed" in verb else ("done" in line)
    assert NOTICE not in told(hook(session)), "told once"
    assert current_task(session, HOLDER) is None
    beats = [r for r in records(session) if r["type"] == "agent.heartbeat" and r["from"] == HOLDER]
    assert "current_task" not in beats[-1]["data"], "its heartbeats no longer name the task"


def test_the_holders_own_done_names_no_holder_and_tells_nobody(session: Session) -> None:  # noqa: F811
    completed = cli(session, "done", TASK, "--result", "mine", "--as", HOLDER)
    assert completed.exit_code == 0, completed.output
    (event,) = [r for r in records(session) if r["type"] == "task.completed"]
    assert "holder" not in event["data"]
    assert NOTICE not in told(hook(session))


def test_an_idle_holder_is_woken_when_the_human_finishes_its_task(
        session: Session, claude_pids: list[subprocess.Popen[bytes]]) -> None:  # noqa: F811
    assert hook(session, stop()).returncode == 0  # its turn ended: idle
    waiter = start_waiter(session, fake_claude(claude_pids).pid)
    waiting(session, waiter)
    completed = cli(session, "done", TASK, "--result", "finished it myself")
    assert completed.exit_code == 0, completed.output
    _out, err = waiter.communicate(timeout=WAIT)
    assert waiter.returncode == 2, err
    assert err.decode().count(NOTICE) == 1 and TASK in err.decode()
    assert OTHER not in err.decode()
