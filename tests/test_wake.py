"""News that starts a turn (issue 11): the Stop hook's `decision: block`, and the idle agent's waiter as the real
`popkit-power-hook wake` process, with a real process standing in for Claude Code (`CLAUDE_PID`)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import until
from test_hook import CLAUDE, HOOK_SCRIPT, call, context, events, payload, tool

from popkit_power.home import safe_name
from popkit_power.hook import entry as hook
from popkit_power.hook.wake import read_claim
from popkit_power.session import Session, start_session, stop_session

WAIT = 30  # seconds any condition below may take on a busy machine (a deadline, never a measured speed)
OTHER_AGENT = "beef0000-1111-2222-3333-444455556666:main"



def fake_claude(started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(["sleep", "3600"])
    started.append(process)
    return process


def stop(claude: str = CLAUDE, **fields: Any) -> dict[str, Any]:
    return payload("Stop", claude, **{"stop_hook_active": False, "last_assistant_message": "done", **fields})


def direct(session: Session, text: str, to: str = f"{CLAUDE}:main") -> None:
    session.publish("message.direct", {"text": text}, sender=OTHER_AGENT, to=to)


def start_waiter(session: Session, claude_pid: int, claude: str = CLAUDE) -> subprocess.Popen[bytes]:
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_PID": str(claude_pid),
           "CLAUDE_CODE_ENTRYPOINT": "cli"}
    process = subprocess.Popen([str(HOOK_SCRIPT), hook.WAKE_ARG], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    assert process.stdin is not None
    process.stdin.write(orjson.dumps(stop(claude)))
    process.stdin.close()
    process.stdin = None  # written and closed: communicate() only reads
    return process


def claim_of(session: Session, claude: str = CLAUDE) -> tuple[int, int | None] | None:
    return read_claim(str(Path(session.dir, "agents", safe_name(f"{claude}:main") + ".waiter")))


def wait_until(condition: Any, what: str) -> None:
    until(condition, WAIT, what)


def waiting(session: Session, waiter: subprocess.Popen[bytes], claude: str = CLAUDE) -> None:
    """Until `waiter` has claimed its agent: from then on it waits on the journal."""
    wait_until(lambda: (claim_of(session, claude) or (0,))[0] == waiter.pid or waiter.poll() is not None,
               "the waiter claims its agent")
    assert waiter.poll() is None, waiter.stderr.read() if waiter.stderr else ""


# -- the Stop hook -----------------------------------------------------------------------------------------------------

def test_an_agent_about_to_stop_goes_on_with_a_message_and_hears_it_once(session: Session) -> None:
    home = session.power_dir
    call(home, tool())
    direct(session, "please rebase")
    reply = orjson.loads(call(home, stop()) or "null")
    assert reply["decision"] == "block" and "please rebase" in reply["reason"]
    assert "news arrived before you stopped" in reply["reason"]
    assert not any(e["type"] == "agent.idle" for e in events(session)), "it goes on: not idle"
    assert call(home, tool()) is None, "not delivered a second time at the next tool call"
    assert call(home, stop(stop_hook_active=True)) is None
    assert [e["type"] for e in events(session)][-1] == "agent.idle"


def test_stop_hook_active_never_blocks_again(session: Session) -> None:
    """Claude Code says the agent already goes on because of a Stop hook: no block, whatever waits (no loop); the
    news stays for the waiter or the next tool call."""
    home = session.power_dir
    call(home, tool())
    direct(session, "one more thing")
    assert call(home, stop(stop_hook_active=True)) is None
    assert [e["type"] for e in events(session)][-1] == "agent.idle"
    assert "one more thing" in context(call(home, tool()))


def test_insights_and_conflicts_do_not_keep_an_agent_from_stopping(session: Session) -> None:
    home = session.power_dir
    call(home, tool())
    session.publish("insight.shared", {"text": "the cache key ignores locale", "tags": []}, sender=OTHER_AGENT)
    assert call(home, stop()) is None
    assert [e["type"] for e in events(session)][-1] == "agent.idle"
    assert "the cache key ignores locale" in context(call(home, tool())), "it waits for the next tool call"


def test_every_kind_that_matters_blocks_a_stop(session: Session) -> None:
    """A direct message, an orphaned task, an assignment, the human's answer, a broadcast: each one blocks."""
    home = session.power_dir
    key = f"{CLAUDE}:main"
    call(home, tool())
    call(home, tool(tool_input={"command": "popkit-power ask 'deploy?'"}))
    session.publish("approval.requested", {"request": "r-1", "question": "deploy?"}, sender=key)
    call(home, tool())
    news = [("message.direct", {"text": "hi"}, OTHER_AGENT, key),
            ("task.orphaned", {"task": "t-9", "agent": "gone:main"}, "coordinator", None),
            ("task.assigned", {"task": "t-8", "agent": key}, "coordinator", None),
            ("approval.granted", {"request": "r-1"}, "human", None),
            ("message.broadcast", {"text": "all hands"}, "human", None)]
    for event_type, data, sender, to in news:
        session.publish(event_type, data, sender=sender, to=to)
        reply = call(home, stop())
        assert reply is not None and orjson.loads(reply)["decision"] == "block", event_type


# -- the waiter --------------------------------------------------------------------------------------------------------

def test_the_waiter_wakes_its_idle_agent_with_a_message_once(session: Session,
                                                             claude_pids: list[subprocess.Popen[bytes]]) -> None:
    home = session.power_dir
    claude = fake_claude(claude_pids)
    call(home, tool())
    call(home, stop())
    waiter = start_waiter(session, claude.pid)
    waiting(session, waiter)
    session.publish("insight.shared", {"text": "tests need redis", "tags": []}, sender=OTHER_AGENT)
    wait_until(lambda: "tests need redis" in Path(session.dir, "agents", safe_name(f"{CLAUDE}:main") + ".json")
               .read_text(), "the waiter keeps the insight for the next tool call")
    assert waiter.poll() is None, "an insight does not wake the agent"
    direct(session, "your turn: review my patch")
    _out, err = waiter.communicate(timeout=WAIT)
    assert waiter.returncode == 2, err
    text = err.decode()
    assert text.startswith("Power Mode (popkit-power): news arrived while you were idle:")
    assert "your turn: review my patch" in text and "tests need redis" in text
    assert call(home, tool()) is None, "nothing is delivered a second time at the next tool call"
    assert claim_of(session) is None, "the waiter removes its claim when it ends"


def test_news_waiting_when_the_waiter_starts_wakes_the_agent_at_once(session: Session,
                                                                    claude_pids: list[subprocess.Popen[bytes]]) -> None:
    home = session.power_dir
    call(home, tool())
    call(home, stop(stop_hook_active=True))
    direct(session, "already here")
    waiter = start_waiter(session, fake_claude(claude_pids).pid)
    _out, err = waiter.communicate(timeout=WAIT)
    assert waiter.returncode == 2 and b"already here" in err


@pytest.mark.parametrize("ending", ["claude killed", "power mode stopped", "session end", "newer waiter",
                                    "agent works again"])
def test_the_waiter_ends_without_a_word(session: Session, claude_pids: list[subprocess.Popen[bytes]],
                                        ending: str) -> None:
    home = session.power_dir
    claude = fake_claude(claude_pids)
    call(home, tool())
    waiter = start_waiter(session, claude.pid)
    waiting(session, waiter)
    newer = None
    if ending == "claude killed":
        claude.send_signal(signal.SIGKILL)
    elif ending == "power mode stopped":
        stop_session(home, sender="human")
    elif ending == "session end":
        call(home, payload("SessionEnd", reason="prompt_input_exit"))
    elif ending == "newer waiter":
        newer = start_waiter(session, claude.pid)
        waiting(session, newer)
    else:
        call(home, tool())
    out, err = waiter.communicate(timeout=WAIT)
    assert (waiter.returncode, out, err) == (0, b"", b"")
    if newer is not None:
        assert newer.poll() is None, "the newer one waits on"
        direct(session, "for the newer one")
        assert newer.communicate(timeout=WAIT)[0:1] == (b"",) and newer.returncode == 2


def test_with_power_mode_off_nothing_waits(tmp_path: Path) -> None:
    env = {**os.environ, "POPKIT_POWER_HOME": str(tmp_path / "power"), "CLAUDE_PID": str(os.getpid()),
           "CLAUDE_CODE_ENTRYPOINT": "cli"}
    done = subprocess.run([str(HOOK_SCRIPT), hook.WAKE_ARG], input=orjson.dumps(stop()), env=env,
                          capture_output=True, timeout=WAIT)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_a_headless_session_has_no_waiter(session: Session, claude_pids: list[subprocess.Popen[bytes]]) -> None:
    """`claude -p` (entry point `sdk-cli`) waits for its asyncRewake hooks before it exits: the waiter must not
    wait there, even with news on the way."""
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_PID": str(fake_claude(claude_pids).pid),
           "CLAUDE_CODE_ENTRYPOINT": "sdk-cli"}
    call(session.power_dir, tool())
    direct(session, "for later")
    done = subprocess.run([str(HOOK_SCRIPT), hook.WAKE_ARG], input=orjson.dumps(stop()), env=env,
                          capture_output=True, timeout=WAIT)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    assert "for later" in context(call(session.power_dir, tool())), "the news waits for the next tool call"


def test_the_waiter_is_only_a_stop_hook(session: Session) -> None:
    with pytest.raises(hook.HookInputError, match="Stop hook, not PostToolUse"):
        hook.wake(io.BytesIO(orjson.dumps(tool())), session.power_dir, {}, deliver=print)


@pytest.mark.slow
def test_a_hundred_sessions_leave_no_waiter_behind(session: Session,
                                                   claude_pids: list[subprocess.Popen[bytes]]) -> None:
    """100 Claude Code sessions (25 at a time), each with SessionStart, a tool call, Stop and its real waiter, end
    the ways sessions end: SessionEnd (the waiter ends while its Claude Code still runs), Claude Code killed, Power
    Mode stopped. Afterwards none of the waiter processes is alive."""
    home = session.power_dir
    all_waiters: list[subprocess.Popen[bytes]] = []
    assert waiters_of(home) == []
    for batch in range(4):
        if batch:
            session = start_session(home, f"batch {batch}", sender="human")
        agents = []
        for number in range(25):
            claude_id = f"{batch:04x}{number:04x}-1111-2222-3333-444455556666"
            claude = fake_claude(claude_pids)
            environ = {"CLAUDE_PID": str(claude.pid)}
            call(home, payload("SessionStart", claude_id, source="startup"), environ)
            call(home, tool(claude=claude_id), environ)
            waiter = start_waiter(session, claude.pid, claude_id)
            call(home, stop(claude_id), environ)
            agents.append((claude_id, claude, waiter))
            all_waiters.append(waiter)
        for claude_id, _claude, waiter in agents:
            waiting(session, waiter, claude_id)
        assert len(waiters_of(home)) == 25, "the scan finds the running waiters"
        ended = [waiter for _claude_id, _claude, waiter in agents[::3]]
        for claude_id, _claude, _waiter in agents[::3]:
            call(home, payload("SessionEnd", claude_id, reason="prompt_input_exit"))
        wait_until(lambda: all(waiter.poll() is not None for waiter in ended),  # noqa: B023
                   "SessionEnd ends the waiter while its Claude Code still runs")
        for _claude_id, claude, _waiter in agents[1::3]:
            claude.kill()
        stop_session(home, sender="human")
        for _claude_id, claude, _waiter in agents:
            claude.kill()
            claude.wait()
    wait_until(lambda: all(waiter.poll() is not None for waiter in all_waiters), "every waiter has ended")
    assert [(waiter.returncode, waiter.stdout.read() if waiter.stdout else b"") for waiter in all_waiters] \
        == [(0, b"")] * 100
    assert waiters_of(home) == [], "no waiter of this power directory runs, whoever started it"


def waiters_of(home: str) -> list[int]:
    """The pids of running `popkit-power-hook wake` processes (the marker in their argv) working for `home`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if hook.WAKE_ARG.encode() in argv[1:] and any(part.endswith(b"popkit-power-hook") for part in argv) \
                and f"POPKIT_POWER_HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found
