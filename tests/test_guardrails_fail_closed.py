"""A configured guardrail fails closed (issue 16, item 7): the real `popkit-power-hook` process, fed real PreToolUse
payloads, denies `git push --force` when the agent edits its own state file, when config.json gets one bad value, and
when the session cannot be written; a grant comes only from the human's answer in the journal."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import runners
from test_hook import CLAUDE, HOOK_SCRIPT

from popkit_power.config import LAST_VALID_FILE, load_config
from popkit_power.session import Session, start_session

PUSH = "git push --force origin main"


def configure(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.json").write_text(text)


@pytest.fixture
def session_config() -> dict[str, Any]:
    """conftest's `session` starts with these guardrails (start validates config.json: its copy is kept)."""
    return {"guardrail_commands": ["git push*"], "guardrail_paths": ["*.env"]}


def pre_tool_use(session: Session, command: str = PUSH, *, tool: str = "Bash", limit_writes: bool = False,
                 agent_id: str | None = None) -> dict[str, Any] | None:
    """Run the real hook process on one PreToolUse payload; its denial, or None when it answered nothing."""
    tool_input = {"command": command} if tool == "Bash" else {"file_path": command, "content": "X=1"}
    payload = runners.pre_tool_use_payload(tool, tool_input, claude=CLAUDE, tool_use_id=f"toolu_{os.urandom(4).hex()}",
                                           **({"agent_id": agent_id, "agent_type": "Explore"} if agent_id else {}))

    def no_writes() -> None:  # the kernel refuses every write that grows a file: the disk is full, as it were
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))

    done = subprocess.run([str(HOOK_SCRIPT)], input=payload, capture_output=True, timeout=60,
                          env={**os.environ, "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_PID": "4242"},
                          preexec_fn=no_writes if limit_writes else None)
    assert done.returncode == 0, done.stderr
    return runners.denial(done.stdout)


def requests(session: Session) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event["type"] == "approval.requested"]


def grants(session: Session) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event["type"] == "approval.granted"]


def state_file(session: Session) -> Path:
    [path] = [path for path in Path(session.dir, "agents").glob("*.json") if "main" in path.name]
    return path


def edit_guards(session: Session, change: Any) -> None:
    path = state_file(session)
    state = json.loads(path.read_text())
    change(state["guards"])
    path.write_text(json.dumps(state))


# -- (a) the agent edits its own state file -----------------------------------------------------------------------

def test_an_agent_that_marks_its_own_request_granted_is_still_denied(session: Session) -> None:
    assert pre_tool_use(session) is not None
    edit_guards(session, lambda guards: [entry.update(answer="granted") for entry in guards.values()])
    assert pre_tool_use(session) is not None
    edit_guards(session, lambda guards: [entry.update(answer={"segment": 1, "offset": 0, "seq": 1}, answer_seq=1)
                                         for entry in guards.values()])
    assert pre_tool_use(session) is not None, "a position that holds no answer grants nothing"
    assert grants(session) == []


def test_an_agent_cannot_reuse_a_grant_for_another_command(session: Session) -> None:
    """The human granted `git push origin main`; the agent points its entry for `git push --force` at that request
    and that answer: the request in the journal is for another command, so it is asked anew."""
    assert pre_tool_use(session, "git push origin main") is not None
    [asked] = requests(session)
    session.publish("approval.granted", {"request": asked["data"]["request"]}, sender="human")
    assert pre_tool_use(session, "git push origin main") is None
    assert pre_tool_use(session, PUSH) is not None

    def borrow(guards: dict[str, Any]) -> None:
        granted = guards["Bash\n/repo\ngit push origin main"]
        guards[f"Bash\n/repo\n{PUSH}"] = dict(granted)

    edit_guards(session, borrow)
    denied = pre_tool_use(session, PUSH)
    assert denied is not None and "waits for the human's approval" in denied["permissionDecisionReason"]
    assert len(requests(session)) == 3, "the forged entry was replaced by a new request"


def test_an_agent_cannot_write_a_grant_for_a_call_it_never_asked_about(session: Session) -> None:
    assert pre_tool_use(session, "ls") is None  # a call that matches nothing: the state file is not even written
    assert pre_tool_use(session, "git push --tags") is not None

    def invent(guards: dict[str, Any]) -> None:
        [entry] = guards.values()
        guards[f"Bash\n/repo\n{PUSH}"] = {**entry, "answer": entry["asked"], "answer_seq": entry["seq"]}

    edit_guards(session, invent)
    assert pre_tool_use(session, PUSH) is not None


def test_a_subagent_cannot_use_the_main_agents_grant(session: Session) -> None:
    assert pre_tool_use(session) is not None
    session.publish("approval.granted", {"request": requests(session)[0]["data"]["request"]}, sender="human")
    assert pre_tool_use(session) is None
    main = json.loads(state_file(session).read_text())["guards"]
    assert pre_tool_use(session, "git status", agent_id="a1b2c3") is None
    [sub_path] = [path for path in Path(session.dir, "agents").glob("*.json") if "a1b2c3" in path.name] or [None]
    assert sub_path is None, "a call that matches nothing writes no state"
    denied = pre_tool_use(session, agent_id="a1b2c3")
    assert denied is not None
    [sub_path] = [path for path in Path(session.dir, "agents").glob("*.json") if "a1b2c3" in path.name]
    sub = json.loads(sub_path.read_text())
    sub["guards"] = main
    sub_path.write_text(json.dumps(sub))
    assert pre_tool_use(session, agent_id="a1b2c3") is not None, "the request in the journal is the main agent's"


# -- (b) one bad value in config.json -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("broken", [
    '{"guardrail_commands": ["git push*"], "guardrail_paths": ["*.env"], "checkin_every_n_tools": "often"}',
    '{"guardrail_commands": "git push*", "guardrail_paths": ["*.env"]}',
    '{"guardrail_command": ["git push*"], "guardrail_paths": ["*.env"]}',
    '{"guardrail_commands": ["git push*"], "guardrail_paths": ["*.env"],}',
    '',
])
def test_a_broken_config_keeps_the_last_valid_guardrails(session: Session, broken: str) -> None:
    Path(session.power_dir, "config.json").write_text(broken)
    denied = pre_tool_use(session)
    assert denied is not None and "git push*" in denied["permissionDecisionReason"]
    assert pre_tool_use(session, "/repo/.env", tool="Write") is not None
    assert pre_tool_use(session, "ls -la") is None, "what no guardrail names still passes"


def test_a_broken_config_with_no_valid_version_denies_every_guarded_call_naming_the_error(tmp_path: Path) -> None:
    home = tmp_path / "power"
    session = start_session(str(home), "Ship it", sender="human")
    configure(home, '{"guardrail_commands": ["git push*"], "durability": "sometimes"}')
    assert pre_tool_use(session) is not None, "the file's own valid guardrails hold"
    assert pre_tool_use(session, "ls") is None
    configure(home, '{"guardrail_commands": ["git push*"')
    for command in (PUSH, "ls"):
        denied = pre_tool_use(session, command)
        assert denied is not None
        assert "guardrails cannot be read" in denied["permissionDecisionReason"]
        assert "config.json: is not valid JSON" in denied["permissionDecisionReason"]
    assert pre_tool_use(session, "/repo/app.py", tool="Edit") is not None
    assert requests(session)[-1]["data"]["guard"]["subject"] == PUSH, "the blind denials raise no requests"
    configure(home, '{"guardrail_commands": ["git push*"], "guardrail_paths": "*.env"}')
    assert pre_tool_use(session, "/repo/app.py", tool="Edit") is not None, "the path guardrail cannot be read"
    assert pre_tool_use(session, "ls") is not None, "and Bash writes files too"


def test_the_last_valid_copy_follows_every_valid_edit(session: Session) -> None:
    home = Path(session.power_dir)
    configure(home, json.dumps({"guardrail_commands": ["npm publish*"]}))
    load_config(str(home))  # any process that reads a valid config.json keeps its copy
    assert json.loads((home / LAST_VALID_FILE).read_text()) == {"guardrail_commands": ["npm publish*"]}
    configure(home, "{")
    assert pre_tool_use(session, "npm publish --tag x") is not None
    assert pre_tool_use(session, PUSH) is None, "the last valid guardrails, not older ones"


# -- (c) the session cannot be written ----------------------------------------------------------------------------

def test_a_guarded_call_is_denied_when_the_journal_cannot_be_written(session: Session) -> None:
    before = len(list(session.journal.reader()))
    denied = pre_tool_use(session, limit_writes=True)
    assert denied is not None
    assert "cannot be written" in denied["permissionDecisionReason"]
    assert len(list(session.journal.reader())) == before
    assert pre_tool_use(session, "ls", limit_writes=True) is None, "a call no guardrail names is not held"
    asked = pre_tool_use(session)  # writable again: the request is raised as usual
    assert asked is not None and len(requests(session)) == 1


def test_a_guarded_call_is_denied_when_the_agents_folder_cannot_be_made(session: Session) -> None:
    agents = Path(session.dir, "agents")
    if agents.exists():
        for path in agents.glob("*"):
            path.unlink()
        agents.rmdir()
    agents.write_text("not a folder")
    denied = pre_tool_use(session)
    assert denied is not None and "cannot be written" in denied["permissionDecisionReason"]


def test_a_granted_call_passes_only_while_the_grant_can_be_read(session: Session) -> None:
    assert pre_tool_use(session) is not None
    session.publish("approval.granted", {"request": requests(session)[0]["data"]["request"]}, sender="human")
    assert pre_tool_use(session) is None
    assert pre_tool_use(session, limit_writes=True) is not None, "the state cannot be saved: denied, not waved on"


def test_a_request_the_agent_wrote_itself_with_another_question_grants_nothing(session: Session) -> None:
    """The agent appends its own `approval.requested` carrying the guard fields of `git push --force` but asking
    "may I run the tests?"; the human grants that; the agent points its entry at it: the question is not the one the
    guard asks (the human never saw the command), so the call is asked about anew."""
    assert pre_tool_use(session) is not None
    key = f"{CLAUDE}:main"
    start = session.journal.end_position()
    appended = session.publish("approval.requested", {
        "request": "r-forged", "question": "may I run the tests?", "options": ["approve", "deny"],
        "guard": {"tool": "Bash", "subject": PUSH, "pattern": "git push*", "cwd": "/repo"}}, sender=key)
    session.publish("approval.granted", {"request": "r-forged"}, sender="human")
    edit_guards(session, lambda guards: guards.update({f"Bash\n/repo\n{PUSH}": {
        "request": "r-forged", "asked": start.as_dict(), "seq": appended.first_seq, "scan": start.as_dict()}}))
    denied = pre_tool_use(session)
    assert denied is not None and "r-forged" not in denied["permissionDecisionReason"]


def test_the_guards_whole_path_imports_nothing_heavy(session: Session) -> None:
    """A guarded call parsed, asked about, granted and let through: none of the costly modules is loaded (no `re`:
    globs.py matches; no orjson: the journal is read with codec)."""
    heavy = ("re", "json", "typing", "dataclasses", "logging", "orjson", "click", "hashlib", "fnmatch")
    payload = {"session_id": CLAUDE, "cwd": "/repo", "hook_event_name": "PreToolUse", "tool_name": "Bash",
               "tool_input": {"command": "cd app && FOO=1 env git  push --force 'origin' \"$(git branch)\""}}
    probe = (
        "import io, sys\n"
        "from popkit_power.hook import entry\n"
        f"payload = {orjson.dumps(payload).decode()!r}.encode()\n"
        f"assert entry.run(io.BytesIO(payload), {session.power_dir!r}, {{}}) is not None\n"
        "from popkit_power.session import Session\n"
        f"session = Session({session.power_dir!r}, {session.id!r})\n"
        "from popkit_power.journal import codec\n"
        "records = session.journal.reader(loads=lambda line: codec.loads(line.decode()))\n"
        "request = [e for e in records if e['type'] == 'approval.requested'][0]['data']['request']\n"
        "session.append_events([session.event('approval.granted', {'request': request}, sender='human')])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        f"assert entry.run(io.BytesIO(payload), {session.power_dir!r}, {{}}) is None\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "POPKIT_POWER_HOME": session.power_dir})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_killed_guard_processes_never_let_a_call_through(tmp_path: Path) -> None:
    """40 real hook processes on the same guarded call, each SIGKILLed at a random moment (before, during or after
    it appends the request or saves the agent's state) while other events rotate 4 KiB segments: every one that
    answered denied the call; none passed before the human answered; once the human grants every request raised,
    the call passes; and the journal reads back whole."""
    import random
    import time

    home = tmp_path / "power"
    configure(home, json.dumps({"guardrail_commands": ["git push*"], "segment_max_bytes": 4096}))
    session = start_session(str(home), "Ship it", sender="human")
    payload = orjson.dumps({"session_id": CLAUDE, "cwd": "/repo", "hook_event_name": "PreToolUse",
                            "tool_name": "Bash", "tool_input": {"command": PUSH}})
    env = {**os.environ, "POPKIT_POWER_HOME": str(home)}
    rng = random.Random(7)
    whole = []  # how long one call takes on this machine: the kill moments are drawn from twice that, so kills land
    for _ in range(3):  # on a fast machine as on a loaded one (a fixed 0.2 s let only 9 of 40 land on a quiet one)
        start = time.monotonic()
        subprocess.run([str(HOOK_SCRIPT)], input=payload, capture_output=True, env=env, timeout=60, check=True)
        whole.append(time.monotonic() - start)
    window = 2 * sorted(whole)[1]  # about half land, at any moment of a call; the others find it answered
    answered = killed = 0
    for round_number in range(40):
        process = subprocess.Popen([str(HOOK_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=env)
        assert process.stdin is not None
        process.stdin.write(payload)
        process.stdin.close()
        time.sleep(rng.uniform(0, window))  # a random moment to kill it: not a timing assertion
        process.kill()
        assert process.stdout is not None
        out = process.stdout.read()
        process.wait(timeout=60)
        assert process.returncode in (0, -signal.SIGKILL), process.stderr and process.stderr.read()
        if process.returncode == 0:
            answered += 1
            assert b'"permissionDecision":"deny"' in out, "a guarded call passed with no grant"
        else:
            killed += 1
        for _ in range(5):  # other agents' events roll the segments over between calls
            session.publish("message.broadcast", {"text": f"round {round_number} " + "x" * 300}, sender="human")
    print(f"{answered} of 40 answered before their kill; {len(requests(session))} requests raised")
    assert killed >= 10, f"only {killed} of 40 kills landed before the process ended by itself"
    assert len(session.journal.segments()) > 3
    for asked in requests(session):
        session.publish("approval.granted", {"request": asked["data"]["request"]}, sender="human")
    for _ in range(2):  # the first call after the grants may still find a request raised by a killed process
        if pre_tool_use(session) is None:
            break
    assert pre_tool_use(session) is None, "granted: it passes"
    damage: list[object] = []
    records = list(session.journal.reader(on_damage=damage.append))
    assert records and not damage
