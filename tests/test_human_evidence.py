"""The human's word given by a same-user agent, the ways the issue found, with real processes: an agent's Bash (a
real process named `claude` above it, Claude Code's variables in its environment) answers an approval with
`env -i ... setsid -f popkit-power approve`, through a new window of the human's tmux, and with a line of Python
calling the library. Each answer is written (nothing can stop a process of the same user), but each records where it
came from, whatever API appended it, and `status`, `replay` and the timeline mark it doubtful. The human's own
answer, typed into a shell on a terminal, is not marked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import runners
import support
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal

from popkit_power import provenance
from popkit_power.replay.timeline import build_timeline
from popkit_power.session import Session

BIN = Path(sys.executable).parent
SCRIPT = BIN / "popkit-power"
AGENT = "c0ffee00-1111:main"
WAIT = 60.0


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session with one agent (main-c0ffee) joined."""
    created = session
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=AGENT)
    return created


def person_env(power_dir: str) -> dict[str, str]:
    """A person's shell: no variable of an agent's session, this venv's commands first on PATH."""
    env = runners.person_env(POPKIT_POWER_HOME=power_dir, PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    env.pop("TMUX", None)
    return env


def agent_bash(tmp_path: Path, power_dir: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run `command` as an agent's Bash tool runs it: `sh -c` under a process named `claude`, with Claude Code's
    variables set."""
    claude = tmp_path / "bin" / "claude"
    if not claude.exists():
        support.claude_parent(tmp_path, "/bin/sh")
    env = {**person_env(power_dir), "CLAUDE_CODE_SESSION_ID": "c0ffee00-1111", "CLAUDECODE": "1",
           "CLAUDE_PID": str(os.getpid())}
    return subprocess.run([str(claude), "-c", command], env=env, capture_output=True, text=True, timeout=WAIT,
                          stdin=subprocess.DEVNULL)


def ask(session: Session, request: str) -> None:
    session.publish("approval.requested", {"request": request, "question": "force-push main?"}, sender=AGENT)


def answer_of(session: Session, request: str) -> dict[str, Any]:
    """The answer to `request` once it is in the journal (a detached process writes it a moment later)."""
    found = support.until(lambda: [event for event in session.journal.reader() if event["type"] in (
        "approval.granted", "approval.denied") and event["data"].get("request") == request], WAIT,
                          f"an answer to {request}")
    answer: dict[str, Any] = found[0]
    return answer


def asked_at(session: Session, request: str) -> str:
    return str(next(event["ts"] for event in session.journal.reader()
                    if event["type"] == "approval.requested" and event["data"]["request"] == request))


def doubts_of(session: Session, request: str) -> list[str]:
    answer = answer_of(session, request)
    assert answer["from"] == "human"
    return provenance.doubts(answer["data"].get("evidence"), asked=asked_at(session, request), answered=answer["ts"])


def test_approve_from_an_agents_bash_is_refused_and_writes_nothing(session: Session, tmp_path: Path) -> None:
    ask(session, "r-plain")
    before = list(session.journal.reader())
    done = agent_bash(tmp_path, session.power_dir, "popkit-power approve r-plain")
    assert done.returncode == 2 and "refused: only the human answers approvals" in done.stderr
    assert list(session.journal.reader()) == before


def test_env_i_setsid_approve_is_written_but_doubtful(session: Session, tmp_path: Path) -> None:
    """Issue: `env -i ... setsid -f popkit-power approve` was accepted and the agent told "GRANTED by human"."""
    ask(session, "r-setsid")
    done = agent_bash(tmp_path, session.power_dir,
                      f"env -i PATH={BIN}:/usr/bin:/bin POPKIT_POWER_HOME={session.power_dir} "
                      f"setsid -f popkit-power approve r-setsid")
    assert done.returncode == 0, done.stderr
    reasons = doubts_of(session, "r-setsid")
    assert "no terminal" in reasons and any(reason.startswith("it leads a session of its own") for reason in reasons)
    assert any(reason.startswith("detached") for reason in reasons), reasons


def test_python_calling_the_library_records_evidence_it_cannot_choose(session: Session, tmp_path: Path) -> None:
    """Issue: one line of Python calling publish with sender `human` recorded no evidence at all. Now the evidence
    is that of the process that appends, whatever evidence the caller wrote, through publish or append_events."""
    ask(session, "r-python")
    ask(session, "r-batch")
    fake = {"pid": 1, "ppid": 0, "tty": "/dev/pts/0", "controlling_terminal": True, "ancestors": ["login"]}
    line = (f"from popkit_power.session import Session; s = Session.active({session.power_dir!r}); "
            f"s.publish('approval.granted', {{'request': 'r-python', 'evidence': {fake!r}}}, sender='human'); "
            f"s.append_events([s.event('approval.denied', {{'request': 'r-batch', 'evidence': {fake!r}}}, "
            f"sender='human')])")
    done = agent_bash(tmp_path, session.power_dir, f"{sys.executable} -c \"{line}\"")
    assert done.returncode == 0, done.stderr
    for request in ("r-python", "r-batch"):
        recorded = answer_of(session, request)["data"]["evidence"]
        assert recorded["ancestors"] != ["login"] and recorded["pid"] != 1 and recorded["program"] == "-c"
        reasons = doubts_of(session, request)
        assert reasons[0] == "inside an agent's session (CLAUDE_CODE_SESSION_ID, CLAUDECODE, CLAUDE_PID set)"
        assert any(reason.startswith("Claude Code (") for reason in reasons) and "no terminal" in reasons
    ask(session, "r-detached")
    done = agent_bash(tmp_path, session.power_dir,
                      f"env -i POPKIT_POWER_HOME={session.power_dir} setsid -f {sys.executable} -c "
                      f"\"{line.replace('r-python', 'r-detached').replace('r-batch', 'r-none')}\"")
    assert done.returncode == 0, done.stderr
    reasons = doubts_of(session, "r-detached")
    assert "no terminal" in reasons and any(reason.startswith("detached") for reason in reasons), reasons


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
@pytest.mark.parametrize("window", ["popkit-power approve {request}",
                                    "sleep 0; popkit-power approve {request}; sleep 0"])
def test_a_new_window_in_the_humans_tmux_is_doubtful(session: Session, tmp_path: Path, window: str) -> None:
    """Issue: a new window in the human's tmux gave the human's answer. The human's tmux runs before the question;
    the agent opens a window in it (the command as the window's first process, or under a shell started for it)."""
    sock = str(tmp_path / "tmux.sock")
    env = person_env(session.power_dir)
    subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-s", "human", "-x", "80", "-y", "24"],
                   env=env, check=True, timeout=WAIT)
    try:
        request = f"r-tmux-{len(window)}"
        ask(session, request)
        done = agent_bash(tmp_path, session.power_dir,
                          f"tmux -S {sock} new-window -d '{window.format(request=request)}'")
        assert done.returncode == 0, done.stderr
        reasons = doubts_of(session, request)
        assert reasons and reasons[0] in ("it leads a session of its own (setsid, or a window's first command)",
                                          "its terminal opened after the question was asked"), (
            reasons, answer_of(session, request))
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], env=env, timeout=WAIT, capture_output=True)


def test_the_humans_answer_typed_at_a_terminal_is_not_doubtful(session: Session, tmp_path: Path) -> None:
    """The rule does not cry wolf: a shell on a terminal (a real pseudo-terminal from `script`), open before the
    question, where the person types `popkit-power approve`."""
    shell = subprocess.Popen(["script", "-qfec", "bash --norc --noprofile -i", "/dev/null"],
                             env=person_env(session.power_dir), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        assert shell.stdin is not None
        ready = tmp_path / "shell-pid"
        shell.stdin.write(f"echo $$ > {ready}.tmp && mv {ready}.tmp {ready}\n")
        shell.stdin.flush()
        deadline = time.monotonic() + WAIT
        while not ready.exists() or (provenance._age(provenance.PROC, int(ready.read_text()))
                                     or 0) <= 2 * provenance.CLOCK_SLACK_SECONDS:
            assert time.monotonic() < deadline, "the shell did not start"
            time.sleep(0.01)  # waiting for the shell to have been open a while before the question, not guessing
        ask(session, "r-person")
        shell.stdin.write("popkit-power approve r-person; exit\n")
        shell.stdin.flush()
        assert doubts_of(session, "r-person") == []
        recorded = answer_of(session, "r-person")["data"]["evidence"]
        assert recorded["controlling_terminal"] is True and recorded["ancestors"][0] == "bash"
    finally:
        shell.stdin.close() if shell.stdin else None
        shell.wait(timeout=WAIT)


@pytest.mark.slow
def test_status_replay_and_the_timeline_mark_a_doubtful_answer(session: Session, tmp_path: Path) -> None:
    ask(session, "r-forged")
    agent_bash(tmp_path, session.power_dir, f"env -i PATH={BIN}:/usr/bin:/bin POPKIT_POWER_HOME={session.power_dir} "
                                            f"setsid -f popkit-power approve r-forged")
    reasons = doubts_of(session, "r-forged")
    env = person_env(session.power_dir)
    status = subprocess.run([str(SCRIPT), "status"], env=env, capture_output=True, text=True, timeout=WAIT)
    assert status.returncode == 0, status.stderr
    assert "problem      approval r-forged was granted as the human with doubtful evidence (no terminal;" \
        in status.stdout, status.stdout
    shown = subprocess.run([str(SCRIPT), "status", "--json"], env=env, capture_output=True, text=True, timeout=WAIT)
    info = orjson.loads(shown.stdout)
    assert info["doubtful_answers"]["r-forged"]["reasons"] == reasons
    assert info["doubtful_answers"]["r-forged"]["status"] == "granted"
    assert [problem for problem in info["problems"] if "r-forged" in problem] == [
        f"approval r-forged was granted as the human with doubtful evidence ({'; '.join(reasons)}): an agent may have "
        f"given it; see popkit-power replay --type approval"]
    replay = subprocess.run([str(SCRIPT), "replay"], env=env, capture_output=True, text=True, timeout=WAIT)
    (line,) = [line for line in replay.stdout.splitlines() if "granted" in line]
    assert f"granted main-c0ffee's request r-forged [DOUBTFUL evidence: {'; '.join(reasons)}" in line, line
    timeline = build_timeline(session)
    kinds = [kind["id"] for kind in timeline["kinds"]]
    doubtful = [mark for mark in timeline["marks"] if kinds[mark[1]] == "doubtful"]
    assert len(doubtful) == 1 and timeline["samples"][doubtful[0][6]]["data"]["doubtful"] == "; ".join(reasons)
    assert not [mark for mark in timeline["marks"] if kinds[mark[1]] == "answered"]


HOSTILE_EVIDENCE = [
    "not a dict", 42, [], {"ancestors": [{"pid": 1}], "tty": "/dev/pts/0", "controlling_terminal": True},
    {"ppid": "1", "controlling_terminal": True}, {"controlling_terminal": 1}, {"pid": True},
    {"agent_environment": "CLAUDECODE"}, {"terminal_age": "old", "controlling_terminal": True},
    {"claude_ancestor": "\x1b[31m" + "x" * 100_000, "controlling_terminal": True, "ancestors": ["bash"]},
    {"controlling_terminal": True, "tty": "/dev/pts/1", "ancestors": ["bash"], "ppid": 5, "pad": "x" * 200_000},
]


@pytest.mark.slow
def test_hostile_evidence_written_by_hand_is_shown_doubtful_and_breaks_nothing(session: Session) -> None:
    """Evidence written into the journal by hand (Journal.append, under the library's stamping) with values of any
    kind: status, replay and the timeline read it, and mark every answer doubtful."""
    from popkit_power.journal import codec

    for n, hostile in enumerate(HOSTILE_EVIDENCE):
        ask(session, f"r-hostile-{n}")
        event = session.event("approval.granted", {"request": f"r-hostile-{n}"}, sender="human")
        event["data"]["evidence"] = hostile
        session.journal.append([codec.dumps(event).encode("utf-8")])
    env = person_env(session.power_dir)
    shown = subprocess.run([str(SCRIPT), "status", "--json"], env=env, capture_output=True, text=True, timeout=WAIT)
    assert shown.returncode == 0, shown.stderr
    doubtful = orjson.loads(shown.stdout)["doubtful_answers"]
    assert set(doubtful) == {f"r-hostile-{n}" for n in range(len(HOSTILE_EVIDENCE))}, doubtful
    assert all(len(" ".join(answer["reasons"])) < 400 for answer in doubtful.values())
    kept = session.projection()[0]["answered"]
    assert all(len(repr(kept[request].get("evidence"))) <= provenance.MAX_KEPT_EVIDENCE_CHARS for request in doubtful)
    replay = subprocess.run([str(SCRIPT), "replay"], env=env, capture_output=True, text=True, timeout=WAIT)
    assert replay.returncode == 0, replay.stderr
    assert sum("[DOUBTFUL evidence: " in line for line in replay.stdout.splitlines()) == len(HOSTILE_EVIDENCE)
    assert "\x1b" not in replay.stdout
    timeline = build_timeline(session)
    assert next(kind for kind in timeline["kinds"] if kind["id"] == "doubtful")["count"] == len(HOSTILE_EVIDENCE)


def test_an_event_sent_as_the_human_from_another_origin_is_stamped_unless_pulled(session: Session) -> None:
    """Only an event pulled from another machine (its origin, and the `oseq` the replicator gives it) keeps the
    evidence it came with; one that merely names another origin gets this process's."""
    fake = {"pid": 1, "tty": "/dev/pts/0", "controlling_terminal": True, "ancestors": ["login"]}
    ask(session, "r-elsewhere")
    ask(session, "r-pulled")
    named = {**session.event("approval.granted", {"request": "r-elsewhere", "evidence": fake}, sender="human"),
             "origin": "elsewhere-1234"}
    pulled = {**session.event("approval.denied", {"request": "r-pulled", "evidence": fake}, sender="human"),
              "origin": "elsewhere-1234", "oseq": 7}
    session.append_events([named, pulled])
    assert answer_of(session, "r-elsewhere")["data"]["evidence"]["pid"] == os.getpid()
    assert answer_of(session, "r-pulled")["data"]["evidence"] == fake
