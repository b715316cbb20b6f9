"""The verbs agents and people use inside a session, driven through the CLI against real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import support
from click.testing import CliRunner, Result
from runners import run_cli
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal

from popkit_power import provenance
from popkit_power.cli import main
from popkit_power.session import Session, start_session

CLAUDE = "c0ffee00-1111"
MAIN = f"{CLAUDE}:main"
HELPER = f"{CLAUDE}:a1b2c3"
SCRIPT = Path(sys.executable).parent / "popkit-power"


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session with two live agents of one Claude Code session (main-c0ffee, Explore-a1b2c3)."""
    created = session
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=MAIN)
    created.publish("agent.joined", {"name": "Explore-a1b2c3", "agent_type": "Explore"}, sender=HELPER)
    return created


def cli(session: Session, *args: str, env: dict[str, str] | None = None) -> Result:
    return run_cli(*args, home=session.power_dir, env=env or {"CLAUDE_CODE_SESSION_ID": ""})


def last(session: Session) -> dict[str, Any]:
    return list(session.journal.reader())[-1]


def records(session: Session) -> list[dict[str, Any]]:
    return list(session.journal.reader())


def refusal(result: Result) -> str:
    """The one stderr line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("popkit-power: "), result.stderr
    return lines[0]


def ask(session: Session) -> str:
    """A pending approval request from the helper agent; its id."""
    assert cli(session, "ask", "May I drop the table?", "--as", HELPER).exit_code == 0
    request: str = last(session)["data"]["request"]
    return request


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
    event = last(session)
    assert (event["type"], event["ch"], event["data"]["text"]) == ("message.broadcast", "broadcast",
                                                                   "freeze main at 5pm")
    assert "to" not in event, "a broadcast is addressed to nobody in particular"


def test_ask_then_approve_or_deny(session: Session) -> None:
    result = cli(session, "ask", "May I drop the table?", "--as", HELPER, "--option", "yes", "--option", "no")
    assert result.exit_code == 0
    request = last(session)["data"]["request"]
    assert f"popkit-power approve {request}" in result.output
    assert last(session)["data"]["options"] == ["yes", "no"]
    assert cli(session, "approve", request, "--note", "after the backup").exit_code == 0
    state, _ = session.projection()
    assert request not in state["approvals"], "an answered request leaves the pending ones"
    assert state["answered"][request]["status"] == "granted"
    assert state["answered"][request]["note"] == "after the backup"
    missing = cli(session, "deny", "nope")
    assert missing.exit_code == 2 and "no approval request 'nope'" in missing.output


def test_an_approval_is_answered_once_and_by_a_unique_start_of_its_id(session: Session) -> None:
    """Deny then approve used to leave the agent with DENIED and status with granted: the second answer is refused
    and names the first. A unique start of the id is enough; an ambiguous one is refused."""
    cli(session, "ask", "Drop the table?", "--as", HELPER)
    request = last(session)["data"]["request"]
    assert cli(session, "deny", request[:5], "--note", "not yet").exit_code == 0
    again = cli(session, "approve", request)
    assert again.exit_code == 2 and f"request {request} was already denied by human" in again.output
    state, _ = session.projection()
    assert state["answered"][request]["status"] == "denied"
    session.publish("approval.requested", {"request": "abc-1", "question": "a"}, sender=HELPER)
    session.publish("approval.requested", {"request": "abc-2", "question": "b"}, sender=HELPER)
    ambiguous = cli(session, "approve", "abc")
    assert ambiguous.exit_code == 2 and "starts several approval requests (abc-1, abc-2)" in ambiguous.output


def test_result_goes_to_the_senders_current_task(session: Session) -> None:
    session.publish("task.created", {"task": "t-lexer", "title": "lexer", "owner": HELPER}, sender=MAIN)
    assert cli(session, "result", "lexer done: 12 tokens", "--as", HELPER).exit_code == 0
    state, _ = session.projection()
    assert "t-lexer" not in state["tasks"], "a finished task leaves the open ones"
    assert state["finished"]["t-lexer"]["status"] == "completed"
    assert state["finished"]["t-lexer"]["result"] == "lexer done: 12 tokens"


def test_claim_first_one_wins(session: Session) -> None:
    session.publish("task.created", {"task": "t1", "title": "parser"}, sender=MAIN)
    session.publish("task.orphaned", {"task": "t1", "agent": "gone:main"}, sender="coordinator")
    assert cli(session, "claim", "t1", "--as", HELPER).exit_code == 0
    second = cli(session, "claim", "t1", "--as", MAIN)
    assert second.exit_code == 2 and f"it is claimed by Explore-a1b2c3 ({HELPER}) already" in second.output


def test_verbs_without_an_active_session_say_how_to_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "broadcast", "hi"])
    assert result.exit_code == 2
    assert 'no active power session' in result.output and 'popkit-power start "objective"' in result.output


# -- only the human answers approvals --------------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["approve", "deny"])
@pytest.mark.parametrize("marker", [{"CLAUDE_CODE_SESSION_ID": CLAUDE}, {"CLAUDECODE": "1"}, {"CLAUDE_PID": "4242"}])
def test_an_agent_cannot_answer_an_approval(session: Session, verb: str, marker: dict[str, str]) -> None:
    """approve and deny from an agent's Bash tool (its environment says so) are refused in one line that says why
    and how the human answers; nothing is written."""
    request = ask(session)
    before = records(session)
    line = refusal(cli(session, verb, request, "--note", "sure", env=marker))
    assert "only the human answers approvals" in line and f"({next(iter(marker))} is set in the environment)" in line
    assert f"from a terminal outside Claude Code with: popkit-power {verb} {request}" in line
    assert records(session) == before


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs a /proc process table (Linux)")
def test_an_approval_from_below_a_claude_process_is_refused(session: Session, tmp_path: Path) -> None:
    """With Claude Code's variables cleared, a process named `claude` above the command still gives it away."""
    request = ask(session)
    before = records(session)
    claude = support.claude_parent(tmp_path, SCRIPT)
    env = {"PATH": os.environ.get("PATH", ""), "POPKIT_POWER_HOME": session.power_dir}
    done = subprocess.run([str(claude), "approve", request], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "(claude), an ancestor of this command, is Claude Code" in done.stderr
    assert records(session) == before


@pytest.mark.parametrize("verb", ["approve", "deny"])
def test_an_answer_cannot_be_given_as_someone(session: Session, verb: str) -> None:
    """approve and deny take no --as: an answer is always the human's."""
    request = ask(session)
    before = records(session)
    for sender in ("human", MAIN):
        result = cli(session, verb, request, "--as", sender)
        assert result.exit_code == 2 and "No such option '--as'" in result.stderr
    assert records(session) == before


def test_an_answer_records_where_it_came_from(session: Session) -> None:
    """The answer carries the evidence of the process that gave it: pid, parent, terminal, ancestors, and the
    Claude Code session in its environment (none)."""
    request = ask(session)
    assert cli(session, "approve", request, "--note", "ok").exit_code == 0
    answer = last(session)
    assert (answer["from"], answer["data"]["request"], answer["data"]["note"]) == ("human", request, "ok")
    evidence = answer["data"]["evidence"]
    assert set(evidence) == set(provenance.evidence({}))
    assert (evidence["pid"], evidence["ppid"], evidence["claude_session"]) == (os.getpid(), os.getppid(), None)
    state, _ = session.projection()
    assert state["answered"][request]["status"] == "granted"


def test_publish_of_an_answer_follows_the_same_rule(session: Session) -> None:
    """`publish human ... --type approval.granted|denied` is refused inside an agent's session and as anyone but the
    human; from a terminal it is written with real evidence, whatever evidence the message claimed."""
    request = ask(session)
    before = records(session)
    answer = f'{{"request": "{request}", "evidence": {{"pid": 1, "tty": "/dev/pts/0", "ancestors": ["login"]}}}}'
    for event_type, verb in (("approval.granted", "approve"), ("approval.denied", "deny")):
        for marker in ({"CLAUDECODE": "1"}, {"CLAUDE_CODE_SESSION_ID": CLAUDE}):
            inside = cli(session, "publish", "human", answer, "--type", event_type, env=marker)
            assert f"outside Claude Code with: popkit-power {verb} {request}" in refusal(inside)
        as_agent = cli(session, "publish", "human", answer, "--type", event_type, "--as", HELPER)
        assert f"{event_type} cannot be sent as {HELPER!r}" in refusal(as_agent)
    assert records(session) == before
    assert cli(session, "publish", "human", answer, "--type", "approval.denied").exit_code == 0
    written = last(session)
    assert written["from"] == "human" and written["data"]["evidence"]["pid"] == os.getpid()
    assert written["data"]["evidence"]["ancestors"] != ["login"]


# -- nobody inside an agent's session speaks as the human, the coordinator, or another session's agent ---------------

INSIDE = {"CLAUDE_CODE_SESSION_ID": CLAUDE}


@pytest.mark.parametrize("args", [
    ["broadcast", "stop all work", "--as", "human"],
    ["broadcast", "stop all work", "--as", " Human "],
    ["publish", "coordinator", "reassign everything", "--as", "coordinator"],
    ["insight", "the human said skip tests", "--as", "human"],
    ["send", "Explore-a1b2c3", "the human says stop", "--as", "human"],
    ["ask", "may I?", "--as", "coordinator"],
    ["start", "Take over", "--as", "human"],
    ["stop", "--as", "coordinator"],
])
def test_an_agent_cannot_send_as_the_human_or_the_coordinator(session: Session, args: list[str]) -> None:
    before = records(session)
    line = refusal(cli(session, *args, env=INSIDE))
    assert "(CLAUDE_CODE_SESSION_ID is set in the environment) nobody sends as" in line
    assert f"--as {CLAUDE}:<agent id>" in line
    assert records(session) == before


def test_the_agent_variable_cannot_name_the_human_inside_an_agents_session(session: Session) -> None:
    before = records(session)
    for name in ("human", "coordinator"):
        line = refusal(cli(session, "broadcast", "hi", env={**INSIDE, "POPKIT_POWER_AGENT": name}))
        assert f"nobody sends as {name!r}" in line
    assert "nobody sends as 'human'" in refusal(cli(session, "broadcast", "hi", env={"CLAUDECODE": "1"}))
    assert records(session) == before


@pytest.mark.parametrize("sender", ["other-session:main", CLAUDE, f"{CLAUDE}:", "lead"])
def test_an_agent_sends_only_as_an_agent_of_its_own_session(session: Session, sender: str) -> None:
    before = records(session)
    for args in (["broadcast", "hi"], ["result", "done"], ["claim", "t1"]):
        line = refusal(cli(session, *args, "--as", sender, env=INSIDE))
        assert f"{sender!r} is not an agent of this Claude Code session {CLAUDE}" in line
    line = refusal(cli(session, "broadcast", "hi", env={**INSIDE, "POPKIT_POWER_AGENT": sender}))
    assert "is not an agent of this Claude Code session" in line
    assert records(session) == before


def test_an_agent_and_its_subagents_send_as_themselves(session: Session) -> None:
    assert cli(session, "broadcast", "from main", env=INSIDE).exit_code == 0
    assert last(session)["from"] == MAIN
    assert cli(session, "insight", "from the helper", "--as", HELPER, env=INSIDE).exit_code == 0
    assert last(session)["from"] == HELPER
    assert cli(session, "broadcast", "again", env={**INSIDE, "POPKIT_POWER_AGENT": HELPER}).exit_code == 0
    assert last(session)["from"] == HELPER


def test_a_person_at_a_terminal_may_name_any_sender(session: Session) -> None:
    for sender in ("human", "coordinator", "other-session:main"):
        assert cli(session, "broadcast", "hi", "--as", sender).exit_code == 0
        assert last(session)["from"] == sender


# -- an empty agent name ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", " ", "\t\n"])
def test_send_to_an_empty_name_is_refused_even_with_one_agent(tmp_path: Path, name: str) -> None:
    """An empty name is a start of every name: with one agent it used to pick that agent. It is refused in one line,
    and so is an empty --to on publish; nothing is written."""
    alone = start_session(str(tmp_path / "power"), "Ship it", sender="human")
    alone.publish("agent.joined", {"name": "main-c0ffee"}, sender=MAIN)
    before = records(alone)
    assert "an agent name is needed" in refusal(cli(alone, "send", name, "hi"))
    assert "an agent name is needed" in refusal(cli(alone, "publish", "broadcast", "hi", "--to", name))
    assert records(alone) == before


def _asking(session: Session, *extra: str) -> subprocess.Popen[str]:
    """`popkit-power ask ... --wait` as an agent would run it, in its own process."""
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    for name in ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID", "POPKIT_POWER_AGENT"):
        env.pop(name, None)
    return subprocess.Popen([str(Path(sys.executable).parent / "popkit-power"), "ask", "Drop it?", "--as", HELPER,
                             "--wait", *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _request_when_asked(session: Session) -> str:
    """The asking process appends its request first: wait for it."""
    asked = support.until(lambda: [e for e in session.journal.reader() if e["type"] == "approval.requested"], 10,
                          "the request appeared")
    return str(asked[-1]["data"]["request"])


@pytest.mark.parametrize(("verb", "code", "said"), [("approve", 0, "GRANTED by the human: go"),
                                                    ("deny", 1, "DENIED by the human: go")])
def test_ask_wait_returns_the_human_s_answer(session: Session, verb: str, code: int, said: str) -> None:
    asking = _asking(session)
    request = _request_when_asked(session)
    answered = cli(session, verb, request, "--note", "go")
    assert answered.exit_code == 0, answered.output
    out, err = asking.communicate(timeout=60)
    assert asking.returncode == code and said in out, (out, err)


def test_ask_wait_gives_up_after_its_timeout_and_leaves_the_request_open(session: Session) -> None:
    asking = _asking(session, "--timeout", "0.3")
    _out, err = asking.communicate(timeout=60)
    assert asking.returncode == 3 and "no answer within 0.3 s" in err
    request = _request_when_asked(session)
    assert session.projection()[0]["approvals"][request]["status"] == "pending"


def test_ask_wait_hears_only_the_human(session: Session) -> None:
    """An answer from anyone else does not end the wait."""
    asking = _asking(session, "--timeout", "1")
    request = _request_when_asked(session)
    session.publish("approval.granted", {"request": request}, sender="someone:main")
    out, _err = asking.communicate(timeout=60)
    assert asking.returncode == 3 and "GRANTED" not in out


# -- mistakes refused, with the fix named: one line, exit 2, nothing written -----------------------------------------


@pytest.mark.parametrize(("given", "key"), [("MAIN-C0FFEE", MAIN), ("Main-C0", MAIN), ("explore", HELPER),
                                            (f"{CLAUDE}:A1B2C3", HELPER), ("C0FFEE00-1111:MAIN", MAIN)])
def test_agent_names_and_keys_match_in_any_case(session: Session, given: str, key: str) -> None:
    result = cli(session, "send", given, "look at auth")
    assert result.exit_code == 0, result.output
    assert (last(session)["to"], last(session)["data"]["text"]) == (key, "look at auth")


def test_a_whole_name_wins_and_names_alike_but_for_case_are_refused(session: Session) -> None:
    """An exact name wins over one that differs only in case; typed in a third case, both match and it is refused."""
    session.publish("agent.joined", {"name": "Worker"}, sender="w1:main")
    session.publish("agent.joined", {"name": "worker"}, sender="w2:main")
    assert cli(session, "send", "Worker", "hi").exit_code == 0 and last(session)["to"] == "w1:main"
    assert cli(session, "send", "worker", "hi").exit_code == 0 and last(session)["to"] == "w2:main"
    before = records(session)
    line = refusal(cli(session, "send", "WORKER", "hi"))
    assert "'WORKER' matches several agents; agents: Worker (w1:main, active), worker (w2:main, active)" in line
    assert records(session) == before


@pytest.mark.parametrize(("event", "named"), [
    ({"type": "agent.left", "data": {"reason": "session ended"}, "from": HELPER}, "has left (session ended)"),
    ({"type": "agent.lost", "data": {"agent": HELPER, "reason": "process 4242 is gone"}, "from": "coordinator"},
     "was lost (process 4242 is gone)"),
])
def test_a_message_to_an_agent_that_is_gone_is_refused_naming_its_status(session: Session, event: dict[str, Any],
                                                                        named: str) -> None:
    session.publish(event["type"], event["data"], sender=event["from"])
    before = records(session)
    line = refusal(cli(session, "send", "EXPLORE", "are you there?"))
    assert f"agent Explore-a1b2c3 ({HELPER}) {named}: a message to it would not be read" in line
    assert f"live agents: main-c0ffee ({MAIN}, active)" in line
    assert records(session) == before
    session.publish("agent.joined", {"name": "Explore-a1b2c3"}, sender=HELPER)  # it came back (a resumed session)
    assert cli(session, "send", "explore", "welcome back").exit_code == 0


@pytest.mark.parametrize("name", ["main\nc0ffee", "m" * 1_000_000, "../main-c0ffee", "main-c0ffee\x00", "\u200bmain"])
def test_hostile_agent_names_are_one_short_line_and_write_nothing(session: Session, name: str) -> None:
    before = records(session)
    for args in (["send", name, "hi"], ["task", "add", "Parse", "--to", name]):
        line = refusal(cli(session, *args))
        assert "is not an agent of this session; agents: main-c0ffee" in line and len(line) < 1000
    assert records(session) == before


def test_agent_keys_from_the_journal_are_shown_on_one_line(session: Session) -> None:
    """A sender a person at a terminal named (--as) may hold a line break: it is escaped wherever it is shown."""
    session.publish("agent.joined", {"name": "evil\nname"}, sender="evil\nkey")
    result = cli(session, "send", "EVIL", "hi")
    assert result.exit_code == 0 and result.stdout.startswith("message sent to 'evil\\nkey' (seq ")
    assert last(session)["to"] == "evil\nkey"
    assert "'evil\\nname' ('evil\\nkey', active)" in refusal(cli(session, "send", "nobody", "hi"))


BLANKS = ["", " ", "\n\t ", "\u200b", "\u3000\u2028", "\x00"]


@pytest.mark.parametrize("text", BLANKS)
@pytest.mark.parametrize(("args", "named"), [
    (["broadcast"], 'the broadcast is empty; say what every agent should hear: popkit-power broadcast "text"'),
    (["insight"], 'the insight is empty; say what you found: popkit-power insight "what you found" --tags a,b'),
    (["send", "explore"], 'the message is empty; say what the agent should hear: popkit-power send AGENT "text"'),
    (["result"], 'the result is empty; say what was done: popkit-power result "what was done"'),
])
def test_an_empty_or_blank_text_is_refused(session: Session, args: list[str], named: str, text: str) -> None:
    before = records(session)
    assert named in refusal(cli(session, *args, text))
    assert records(session) == before


# -- start while another session is active ---------------------------------------------------------------------------


def sessions_of(session: Session) -> list[str]:
    return sorted(os.listdir(os.path.join(session.power_dir, "sessions")))


def test_start_while_a_session_is_active_is_refused_naming_both_ways_to_switch(session: Session) -> None:
    from popkit_power.home import active_session

    before, made = records(session), sessions_of(session)
    line = refusal(cli(session, "start", "Refactor the API"))
    assert line == (f"popkit-power: session {session.id} ('Ship the parser') is active; stop it first with: "
                    f"popkit-power stop, or close it and start this one in one step with: popkit-power start --switch "
                    f"'Refactor the API'")
    multi_line = refusal(cli(session, "start", "line one\nline two"))
    assert multi_line.endswith('popkit-power start --switch "objective"')
    assert records(session) == before and sessions_of(session) == made
    assert active_session(session.power_dir) == session.id


def test_start_switch_closes_the_active_session_once_the_new_one_is_open(session: Session) -> None:
    from popkit_power.home import active_session

    result = cli(session, "start", "Refactor the API", "--switch")
    assert result.exit_code == 0, result.output
    new_id = result.stdout.split()[4]
    assert result.stdout.startswith(f"Power Mode on: session {new_id}\n")
    assert result.stdout.endswith(f"switched from session {session.id} (closed)\n")
    assert active_session(session.power_dir) == new_id != session.id
    closed = last(session)
    assert (closed["type"], closed["data"]["reason"], closed["from"]) == ("session.closed",
                                                                          f"switched to session {new_id}", "human")
    assert closed["data"]["summary"]["agents"] == 2, "closed with its summary, as stop closes a session"
    assert session.projection()[0]["closed"] is not None
    assert cli(session, "stop").exit_code == 0
    again = cli(session, "start", "Nothing is active", "--switch")
    assert again.exit_code == 0 and "switched from" not in again.stdout


def test_start_switch_with_a_blank_objective_changes_nothing(session: Session) -> None:
    from popkit_power.home import active_session

    before, made = records(session), sessions_of(session)
    for objective in ("", "   "):
        assert "the objective must be a non-empty text" in refusal(cli(session, "start", objective, "--switch"))
        assert "the objective must be a non-empty text" in refusal(cli(session, "start", objective))
    assert records(session) == before and sessions_of(session) == made
    assert active_session(session.power_dir) == session.id


def test_a_near_duplicate_insight_tells_its_sender(session: Session) -> None:
    """The sender of an insight that repeats an earlier one hears so (the other agents are not told again), instead
    of "shared"."""
    first = cli(session, "insight", "The cache key lacks the tenant id", "--as", HELPER)
    assert first.exit_code == 0 and "insight shared" in first.output
    again = cli(session, "insight", "the cache key lacks the tenant id!", "--as", MAIN)
    assert again.exit_code == 0 and "repeats an earlier one from" in again.output and HELPER in again.output
    assert "insight shared" not in again.output
