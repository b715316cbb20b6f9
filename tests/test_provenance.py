"""Who runs a command: the environment, a process table (a made-up one, none at all, and the real one with a parent
process named `claude`), the evidence recorded with an answer, and which senders a process may use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from popkit_power import provenance
from popkit_power.errors import SessionError
from popkit_power.protocol import make_event
from popkit_power.provenance import ancestors, check_sender, evidence, inside_agent_session

SESSION = "c0ffee00-1111"
CLEAN: dict[str, str] = {}


def under_claude_code() -> bool:
    """Whether this test run itself was started from Claude Code (then a real process tree always has it above)."""
    return any(ancestor.is_claude for ancestor in ancestors() or ())


def fake_proc(root: Path, tree: list[tuple[int, str, int]], exe: dict[int, str] | None = None) -> str:
    """A process table under `root`: (pid, comm, ppid) entries written as /proc/<pid>/stat, exe links optional."""
    for pid, comm, ppid in tree:
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0\n")
        if exe and pid in exe:
            (root / str(pid) / "exe").symlink_to(exe[pid])
    return str(root)


@pytest.fixture
def no_proc(tmp_path: Path) -> str:
    """A process table that does not exist, as on a system without /proc."""
    return str(tmp_path / "no-proc")


# -- the environment -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CLAUDE_CODE_SESSION_ID", "CLAUDECODE", "CLAUDE_PID"])
def test_each_claude_code_variable_marks_an_agents_session(name: str, no_proc: str) -> None:
    """Any of the variables Claude Code gives its Bash tool, non-empty, marks an agent's session, named in the why."""
    assert inside_agent_session({name: "1"}, no_proc) == f"{name} is set in the environment"


@pytest.mark.parametrize("value", ["", "  ", "\t"])
def test_blank_variables_mark_nothing(value: str, no_proc: str) -> None:
    environ = {name: value for name in provenance.AGENT_ENVIRONMENT}
    assert inside_agent_session(environ, no_proc) is None
    assert inside_agent_session({"PATH": "/usr/bin", "CLAUDE_PROJECT_DIR": "/x"}, no_proc) is None


# -- a process table -------------------------------------------------------------------------------------------------


def test_ancestors_follow_parent_links_and_read_names_with_spaces_and_parentheses(tmp_path: Path) -> None:
    """The name in /proc/<pid>/stat sits in parentheses and may hold spaces and ')' itself."""
    root = fake_proc(tmp_path, [(40, "popkit-power", 30), (30, "bash", 20), (20, "tmux: server", 10),
                                (10, "a) (b", 1), (1, "systemd", 0)], exe={30: "/usr/bin/bash"})
    found = ancestors(root, pid=40)
    assert found is not None
    assert [(a.pid, a.name) for a in found] == [(30, "bash"), (20, "tmux: server"), (10, "a) (b"), (1, "systemd")]
    assert found[0].exe == "bash" and found[1].exe == "" and not any(a.is_claude for a in found)


@pytest.mark.parametrize(("comm", "exe"), [("claude", "/opt/node"), ("node", "/x/bin/claude.exe"),
                                           ("claude", "/home/u/.local/share/claude/versions/2.1.330")])
def test_claude_code_is_found_by_process_or_executable_name(tmp_path: Path, comm: str, exe: str) -> None:
    parent = os.getppid()
    root = fake_proc(tmp_path, [(parent, "bash", 77), (77, comm, 1), (1, "init", 0)], exe={77: exe})
    assert inside_agent_session(CLEAN, root) == f"process 77 ({comm}), an ancestor of this command, is Claude Code"


def test_names_that_only_resemble_claude_do_not_count(tmp_path: Path) -> None:
    parent = os.getppid()
    root = fake_proc(tmp_path, [(parent, "claude-helper", 77), (77, "Claude", 78), (78, "claudex", 1),
                                (1, "init", 0)], exe={77: "/bin/claude-code"})
    assert inside_agent_session(CLEAN, root) is None


def test_a_broken_or_looping_table_ends_the_walk(tmp_path: Path) -> None:
    """Garbage in a stat file ends the walk where it is; a loop ends after MAX_ANCESTORS; neither raises."""
    root = fake_proc(tmp_path, [(50, "bash", 51), (52, "claude", 1)])
    (tmp_path / "51").mkdir()
    (tmp_path / "51" / "stat").write_bytes(b"51 no parentheses here")
    assert ancestors(root, pid=60) is None  # no such process
    assert ancestors(root, pid=50) is None  # its parent's entry cannot be read
    assert [a.name for a in ancestors(root, pid=53) or []] == []  # (53 is not there either)
    looping = fake_proc(tmp_path / "loop", [(7, "sh", 8), (8, "sh", 7)])
    assert len(ancestors(looping, pid=7) or []) == provenance.MAX_ANCESTORS


def test_claude_code_beyond_the_walk_is_not_seen(tmp_path: Path) -> None:
    """The walk is bounded (it runs on every command that needs it): a Claude Code further up than MAX_ANCESTORS is
    not found."""
    parent = os.getppid()
    depth = provenance.MAX_ANCESTORS
    chain = [(parent, "sh", 1000)] + [(1000 + level, "sh", 1001 + level) for level in range(depth)]
    root = fake_proc(tmp_path, [*chain, (1000 + depth, "claude", 1), (1, "init", 0)])
    assert inside_agent_session(CLEAN, root) is None


def test_without_a_process_table_only_the_environment_counts(no_proc: str) -> None:
    assert ancestors(no_proc) is None and ancestors(no_proc, pid=1) is None
    assert inside_agent_session(CLEAN, no_proc) is None
    assert inside_agent_session({"CLAUDECODE": "1"}, no_proc) == "CLAUDECODE is set in the environment"
    assert evidence(CLEAN, no_proc)["ancestors"] is None


# -- the real process table ------------------------------------------------------------------------------------------

PROBE = ("import json, os; from popkit_power.provenance import inside_agent_session, evidence; "
         "print(json.dumps([inside_agent_session(os.environ), evidence(os.environ)]))")


def run_under(tmp_path: Path, parent_name: str) -> tuple[str | None, dict[str, object]]:
    """Run PROBE as the child of a shell script named `parent_name`, with an environment free of Claude Code's
    variables, and return what it found."""
    script = tmp_path / parent_name
    script.write_text(f'#!/bin/sh\n"{sys.executable}" -c "$PROBE"\nexit $?\n')
    script.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", ""), "PROBE": PROBE}
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60, check=True)
    why, found = orjson.loads(done.stdout)
    return why, found


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a /proc process table (Linux)")
def test_a_real_parent_process_named_claude_is_found(tmp_path: Path) -> None:
    why, found = run_under(tmp_path, "claude")
    assert why is not None and "(claude), an ancestor of this command, is Claude Code" in why
    assert isinstance(found["ancestors"], list) and found["ancestors"][0] == "claude"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a /proc process table (Linux)")
@pytest.mark.skipif(under_claude_code(), reason="this test run itself is inside Claude Code")
def test_a_real_process_tree_without_claude_is_outside(tmp_path: Path) -> None:
    why, found = run_under(tmp_path, "not-claude")
    assert why is None
    assert isinstance(found["ancestors"], list) and found["ancestors"][0] == "not-claude"
    assert found["claude_session"] is None and found["ppid"] != found["pid"]


# -- evidence --------------------------------------------------------------------------------------------------------


def test_evidence_is_plain_data_that_the_protocol_accepts(tmp_path: Path) -> None:
    """Evidence holds the process, its parent chain, user, terminal, session and Claude Code's traces; in an
    answer's data it passes validation."""
    found = evidence({"CLAUDE_CODE_SESSION_ID": SESSION})
    assert set(found) == {"pid", "ppid", "uid", "program", "tty", "controlling_terminal", "own_session",
                          "terminal_age", "ancestors", "claude_ancestor", "claude_session", "agent_environment"}
    assert (found["pid"], found["ppid"], found["claude_session"]) == (os.getpid(), os.getppid(), SESSION)
    assert found["tty"] is None or found["tty"].startswith("/dev/")
    event = make_event("approval.granted", {"request": "r1", "evidence": found}, sender="human", session="s",
                       origin="o")
    assert orjson.loads(orjson.dumps(event))["data"]["evidence"] == found


@pytest.mark.parametrize("value", ["caf\udce9", "x" * 100_000, "line\nbreak\x00", "\ud800"])
def test_hostile_environment_values_make_storable_evidence(value: str, no_proc: str) -> None:
    """A session id with undecodable bytes, control characters or 100,000 characters is stored cut and cleaned."""
    found = evidence({"CLAUDE_CODE_SESSION_ID": value}, no_proc)
    stored = orjson.loads(orjson.dumps(found))["claude_session"]
    assert isinstance(stored, str) and 0 < len(stored) <= 200


# -- senders ---------------------------------------------------------------------------------------------------------


def refused(sender: str, event_type: str, environ: dict[str, str], proc: str, named: bool = True) -> str:
    with pytest.raises(SessionError) as caught:
        check_sender(sender, event_type, environ, named=named, proc=proc)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_only_the_human_answers_approvals(no_proc: str) -> None:
    check_sender("human", "approval.granted", CLEAN, named=False, proc=no_proc)
    for sender in (f"{SESSION}:main", "coordinator", "Human"):
        assert "only the human answers approvals" in refused(sender, "approval.denied", CLEAN, no_proc)


@pytest.mark.parametrize("marker", ["CLAUDE_CODE_SESSION_ID", "CLAUDECODE", "CLAUDE_PID"])
def test_no_answer_from_inside_an_agents_session(marker: str, no_proc: str) -> None:
    with pytest.raises(SessionError) as caught:
        check_sender("human", "approval.granted", {marker: SESSION}, named=False, request="abc123", proc=no_proc)
    message = str(caught.value)
    assert f"({marker} is set in the environment)" in message
    assert "from a terminal outside Claude Code with: popkit-power approve abc123" in message
    with pytest.raises(SessionError, match="popkit-power deny REQUEST"):
        check_sender("human", "approval.denied", {marker: SESSION}, named=False, proc=no_proc)


@pytest.mark.parametrize("sender", ["human", "coordinator", " Human ", "COORDINATOR"])
def test_reserved_senders_inside_an_agents_session(sender: str, no_proc: str) -> None:
    for environ in ({"CLAUDE_CODE_SESSION_ID": SESSION}, {"CLAUDECODE": "1"}):
        for named in (True, False):
            message = refused(sender, "message.broadcast", environ, no_proc, named)
            assert "nobody sends as" in message and "--as " in message
    check_sender(sender, "message.broadcast", CLEAN, named=True, proc=no_proc)  # a person at a terminal may


def test_a_chosen_sender_must_be_an_agent_of_the_same_claude_session(no_proc: str) -> None:
    inside = {"CLAUDE_CODE_SESSION_ID": SESSION}
    for sender in (f"{SESSION}:main", f"{SESSION}:a1b2c3"):
        check_sender(sender, "insight.shared", inside, named=True, proc=no_proc)
    for sender in ("other-session:main", SESSION, f"{SESSION}:", f"x{SESSION}:main", "lead"):
        message = refused(sender, "insight.shared", inside, no_proc)
        assert f"is not an agent of this Claude Code session {SESSION}" in message
        assert f"--as {SESSION}:<agent id>" in message
    # Derived from the environment, the sender is not checked; without a session id, any non-reserved name goes.
    check_sender(f"{SESSION}:main", "insight.shared", inside, named=False, proc=no_proc)
    check_sender("lead", "insight.shared", {"CLAUDECODE": "1"}, named=True, proc=no_proc)


def test_refusals_stay_short_whatever_the_environment_holds(no_proc: str) -> None:
    """A 100,000-character session id or sender makes a refusal of one short line, not of 200,000 characters."""
    huge = "a" * 100_000
    for sender, environ, event_type in ((f"{huge}x:main", {"CLAUDE_CODE_SESSION_ID": huge}, "message.broadcast"),
                                        ("human", {"CLAUDE_CODE_SESSION_ID": huge}, "message.broadcast"),
                                        (huge, CLEAN, "approval.granted")):
        message = refused(sender, event_type, environ, no_proc)
        assert len(message) < 500, message[:200]
    with pytest.raises(SessionError) as caught:
        check_sender("human", "approval.denied", {"CLAUDECODE": "1"}, named=False, request=huge, proc=no_proc)
    assert len(str(caught.value)) < 500
