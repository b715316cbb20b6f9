"""News that Claude Code dropped is delivered again (issue 16 item 2, issue 21 item 4).

Claude Code 2.1.330 takes an idle agent's news only from a waiter that exits 2, and drops a tool hook's output at
its timeout (docs/claude-code.md, "When a hook's output is lost"). Real waiter and hook processes are ended at random
moments; what reaches the model is counted as Claude Code counts it, and written to a transcript in the shape it
writes (claude_transcript.py), which the hook reads at the agent's next call to find what was lost.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from claude_transcript import ClaudeTranscript, new_tool_use_id
from test_hook import CLAUDE, HOOK_SCRIPT, OTHER, call, context, payload, tool

from popkit_power.hook import entry as hook
from popkit_power.hook.agent_state import AgentState
from popkit_power.session import Session

WAIT = 60  # seconds a process may take on a busy machine (a deadline, never a measured speed)
AGENT = f"{CLAUDE}:main"



@pytest.fixture
def claude_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for Claude Code (`CLAUDE_PID`): the waiter waits only while it lives."""
    process = subprocess.Popen(["sleep", "3600"])
    yield process
    process.kill()
    process.wait()


def broadcasts_in(text: str) -> list[str]:
    return [orjson.loads(line.split("] ", 1)[1]) for line in text.splitlines() if line.startswith("- [broadcast from")]


class Agent:
    """One main agent as Claude Code runs it: its hooks called with the transcript, what reached its model counted."""

    def __init__(self, session: Session, transcript: ClaudeTranscript, claude_pid: int) -> None:
        self.session = session
        self.transcript = transcript
        self.claude_pid = claude_pid
        self.heard: Counter[str] = Counter()

    def fields(self) -> dict[str, Any]:
        return {"transcript_path": str(self.transcript.path)}

    def tool_call(self) -> str | None:
        """The model calls a tool; the PostToolUse hook runs to its end, and its context reaches the model."""
        tool_use_id = self.transcript.answer(new_tool_use_id())
        assert tool_use_id is not None
        reply = call(self.session.power_dir, tool(tool_use_id=tool_use_id, **self.fields()))
        self.transcript.tool_result(tool_use_id, reply)
        if reply is not None:
            self.heard.update(broadcasts_in(context(reply)))
        return reply

    def stop(self) -> None:
        self.transcript.answer()
        assert call(self.session.power_dir, payload("Stop", stop_hook_active=False, last_assistant_message="done",
                                                    **self.fields())) is None

    def start_waiter(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "POPKIT_POWER_HOME": self.session.power_dir, "CLAUDE_PID": str(self.claude_pid),
               "CLAUDE_CODE_ENTRYPOINT": "cli"}
        process = subprocess.Popen([str(HOOK_SCRIPT), hook.WAKE_ARG], stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        assert process.stdin is not None
        process.stdin.write(orjson.dumps(payload("Stop", stop_hook_active=False, last_assistant_message="done",
                                                 **self.fields())))
        process.stdin.close()
        process.stdin = None
        return process

    def waiter_ended(self, waiter: subprocess.Popen[bytes]) -> bool:
        """Claude Code's side of a waiter's end: exit 2 starts a turn with its stderr; any other end says nothing,
        and the agent stays idle until the user types. Either way its next turn makes a tool call. True if woken."""
        _out, err = waiter.communicate(timeout=WAIT)
        woken = waiter.returncode == 2
        if woken:
            self.transcript.woken(err.decode())
            self.heard.update(broadcasts_in(err.decode()))
        else:
            self.transcript.prompt("go on")
        self.tool_call()
        return woken


def _a_round(agent: Agent, number: int) -> subprocess.Popen[bytes]:
    agent.stop()
    agent.session.publish("message.broadcast", {"text": f"b{number:03d}"}, sender="human")
    return agent.start_waiter()


@pytest.mark.slow
def test_waiters_ended_by_sigterm_or_sigkill_at_random_moments_lose_no_broadcast(
        session: Session, claude_process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    """200 rounds: the agent goes idle, a broadcast is published, its waiter (a real process) starts and is sent
    SIGTERM (as Claude Code closing the session, or a newer waiter, does) or SIGKILL at a random moment of its run.
    Every broadcast reaches the model at least once: through a waiter that exited 2, or a later tool call's reply."""
    rounds = 200
    randomness = random.Random(16)
    agent = Agent(session, ClaudeTranscript(tmp_path / "transcript.jsonl"), claude_process.pid)
    agent.tool_call()
    run_time, ends = 0.3, Counter[str]()
    for number in range(rounds):
        waiter = _a_round(agent, number)
        if number % 25 == 0:  # an unkilled round: how long a waiter takes to deliver on this machine now
            started = time.perf_counter()
            assert agent.waiter_ended(waiter)
            run_time = time.perf_counter() - started
            ends["unkilled"] += 1
            continue
        time.sleep(randomness.uniform(0, run_time * 1.3))
        ending = randomness.choice([signal.SIGTERM, signal.SIGKILL])
        waiter.send_signal(ending)
        woken = agent.waiter_ended(waiter)
        ends[f"{ending.name} {'exit 2' if woken else 'no wake'}"] += 1
    while agent.tool_call() is not None:  # the agent's later calls carry whatever is still owed
        pass
    lost = [f"b{number:03d}" for number in range(rounds) if agent.heard[f"b{number:03d}"] == 0]
    assert ends["SIGTERM exit 2"] and ends["SIGTERM no wake"] and ends["SIGKILL no wake"], ends
    assert lost == [], f"lost {len(lost)} of {rounds}: {lost[:10]} ({dict(ends)})"
    repeated = sum(count - 1 for count in agent.heard.values())
    print(f"{rounds} rounds, {dict(ends)}, 0 lost, {repeated} repeated")


@pytest.mark.slow
def test_with_nothing_killed_each_broadcast_reaches_an_idle_agent_exactly_once(
        session: Session, claude_process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    agent = Agent(session, ClaudeTranscript(tmp_path / "transcript.jsonl"), claude_process.pid)
    agent.tool_call()
    for number in range(30):
        assert agent.waiter_ended(_a_round(agent, number)), "each waiter wakes its agent"
    agent.stop()
    assert agent.tool_call() is None
    assert agent.heard == Counter({f"b{number:03d}": 1 for number in range(30)})


def test_a_waiter_sent_sigterm_after_writing_its_news_exits_2(session: Session,
                                                              claude_process: subprocess.Popen[bytes],
                                                              tmp_path: Path) -> None:
    """SIGTERM held while the news is written and the cursor saved, then sent: it ends the waiter with exit 2, so
    the news that went out counts (before, it exited 0 and Claude Code dropped it)."""
    agent = Agent(session, ClaudeTranscript(tmp_path / "transcript.jsonl"), claude_process.pid)
    agent.tool_call()
    agent.stop()
    session.publish("message.broadcast", {"text": "hold on"}, sender="human")
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_PID": str(claude_process.pid),
           "CLAUDE_CODE_ENTRYPOINT": "cli"}
    # Stand-in for a SIGTERM arriving between the write and the exit: the waiter's stderr is written by a deliver
    # function that sends the process SIGTERM itself right after writing.
    script = ("import os, signal, sys\n"
              "from popkit_power.hook import entry\n"
              "def deliver(text):\n"
              "    entry._print_stderr(text)\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "sys.exit(entry.wake(sys.stdin.buffer, entry.find_power_dir(), os.environ, deliver))\n")
    done = subprocess.run([str(Path(HOOK_SCRIPT).parent / "python"), "-c", script], env=env, capture_output=True,
                          input=orjson.dumps(payload("Stop", stop_hook_active=False, **agent.fields())), timeout=WAIT)
    assert done.returncode == 2 and broadcasts_in(done.stderr.decode()) == ["hold on"]
    agent.transcript.woken(done.stderr.decode())
    assert agent.tool_call() is None, "delivered once: not again at the next tool call"


@pytest.mark.slow
def test_a_newer_waiter_ending_an_older_one_loses_and_repeats_nothing(session: Session,
                                                                     claude_process: subprocess.Popen[bytes],
                                                                     tmp_path: Path) -> None:
    """60 rounds: a broadcast, then two waiters of the agent started one right after the other, as two turns'
    Stop hooks are; the one that claims the agent last ends the other with SIGTERM at whatever moment it has
    reached. Exactly one of them wakes the agent, with the broadcast: never both, never neither."""
    agent = Agent(session, ClaudeTranscript(tmp_path / "transcript.jsonl"), claude_process.pid)
    agent.tool_call()
    randomness = random.Random(162)
    woke = Counter[str]()
    for number in range(60):
        older = _a_round(agent, number)
        time.sleep(randomness.uniform(0, 0.3))
        newer = agent.start_waiter()
        deadline = time.monotonic() + WAIT
        while older.poll() is None and newer.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        first, second = (older, newer) if older.poll() is not None else (newer, older)
        assert first.poll() is not None, "one of them ends"
        if first.returncode == 2:
            agent.waiter_ended(first)
            second.send_signal(signal.SIGTERM)  # ended by its agent's turn, or (started after it) by the session's end
            _out, err = second.communicate(timeout=WAIT)
            assert second.returncode in (0, -signal.SIGTERM) and err == b"", "the other one has nothing to say"
            woke["older" if first is older else "newer"] += 1
        else:  # ended by the other one (the one that claimed the agent last) before it had anything to say
            assert first.communicate(timeout=WAIT)[1] == b""
            assert agent.waiter_ended(second), "the other one wakes it"
            woke["older" if second is older else "newer"] += 1
    assert agent.heard == Counter({f"b{number:03d}": 1 for number in range(60)}), dict(woke)
    print(f"woken by the older waiter {woke['older']} times, by the newer {woke['newer']} times")


# -- a tool hook's reply dropped at Claude Code's timeout (issue 21 item 4) ------------------------------------------

@pytest.mark.slow
def test_tool_hooks_killed_at_random_moments_and_dropped_as_at_a_timeout_lose_no_news(session: Session,
                                                                                    tmp_path: Path) -> None:
    """300 rounds: a broadcast, then a real PostToolUse hook process SIGKILLed at a random moment of its run, its
    output counted as Claude Code counts it at a timeout: dropped (the transcript says `hook_cancelled`). Every
    broadcast reaches the model in the reply of a hook that ran to its end."""
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    rounds = 300
    randomness = random.Random(21)
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    run_time, dropped = 0.05, 0
    for number in range(rounds):
        session.publish("message.broadcast", {"text": f"b{number:03d}"}, sender="human")
        if number % 50 == 0:  # how long a whole hook run takes on this machine now
            run_time = statistics.median(_timed_hook_run(env) for _ in range(3))
        tool_use_id = transcript.answer(new_tool_use_id())
        assert tool_use_id is not None
        process = subprocess.Popen([str(HOOK_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=env)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(orjson.dumps(tool(tool_use_id=tool_use_id, **agent.fields())))
        process.stdin.close()
        time.sleep(randomness.uniform(0, run_time * 1.3))
        process.send_signal(signal.SIGKILL)
        out = process.stdout.read()
        process.wait()
        if process.returncode == 0:  # it ended on its own in time: Claude Code takes its reply
            transcript.tool_result(tool_use_id, out.decode() or None)
            agent.heard.update(broadcasts_in(context(out.decode())) if out else [])
        else:  # ended at the timeout: whatever it printed is dropped
            transcript.tool_result(tool_use_id, None, cancelled=True)
            dropped += bool(out)
    while agent.tool_call() is not None:
        pass
    lost = [f"b{number:03d}" for number in range(rounds) if agent.heard[f"b{number:03d}"] == 0]
    assert dropped >= 5, "kills must land after replies were printed"
    assert lost == [], f"lost {len(lost)} of {rounds}: {lost[:10]} ({dropped} printed replies dropped)"


def _timed_hook_run(env: dict[str, str]) -> float:
    """The wall time of one whole hook process of another agent (so that it takes no news from this one)."""
    started = time.perf_counter()
    subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(tool(claude=OTHER)), env=env, capture_output=True,
                   timeout=WAIT, check=True)
    return time.perf_counter() - started


def test_a_reply_is_judged_only_once_the_model_answered_after_it(session: Session, tmp_path: Path) -> None:
    """Parallel tool calls: the second hook runs before Claude Code wrote the first one's result; nothing is
    delivered twice, and a reply is taken as lost only once the model answered without it."""
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    session.publish("message.broadcast", {"text": "first"}, sender="human")
    first, second = new_tool_use_id(), new_tool_use_id()
    transcript.answer(first)
    transcript.answer(second)
    reply = call(session.power_dir, tool(tool_use_id=first, **agent.fields()))
    assert broadcasts_in(context(reply)) == ["first"]
    assert call(session.power_dir, tool(tool_use_id=second, **agent.fields())) is None, "not known yet: kept"
    transcript.tool_result(first, None, cancelled=True)
    transcript.tool_result(second, None)
    assert call(session.power_dir, tool(tool_use_id=new_tool_use_id(), **agent.fields())) is None, \
        "the model has not answered after the dropped reply yet"
    assert agent.tool_call() is not None and agent.heard == Counter({"first": 1}), "then it is given again"
    assert agent.tool_call() is None, "and once it is seen, never again"


def test_a_reply_seen_only_in_the_log_of_the_hooks_stdout_did_not_reach_the_model(session: Session,
                                                                                 tmp_path: Path) -> None:
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    session.publish("message.broadcast", {"text": "for the model"}, sender="human")
    tool_use_id = transcript.answer(new_tool_use_id())
    assert tool_use_id is not None
    reply = call(session.power_dir, tool(tool_use_id=tool_use_id, **agent.fields()))
    transcript.tool_result(tool_use_id, reply, context_dropped=True)
    agent.tool_call()
    assert agent.heard == Counter({"for the model": 1}), "given again: the first reply never reached the model"


def test_a_transcript_that_is_gone_or_hostile_never_breaks_the_hook(session: Session, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from popkit_power.hook import transcript as confirm

    monkeypatch.setattr(confirm, "MAX_BEHIND", 3 * confirm.MAX_READ)  # a smaller bound, the same rule

    state = AgentState(session.dir, AGENT)
    path = tmp_path / "transcript.jsonl"
    path.write_bytes(b"")
    state.pending = ['- [broadcast from human] "x"']
    confirm.remember(state, str(path), "0011aabb", 'header:\n- [broadcast from human] "y"', None)
    state.unconfirmed.append({"ref": 5, "path": None, "at": "nowhere", "lines": [1, None]})
    hostile = b'{"type":"assistant","timestamp":"x"}\n\xff\xfe{"type":"assistant"}\n{"type":"assistant"'
    path.write_bytes(hostile)
    assert confirm.settle(state) == 0 and len(state.unconfirmed) == 1, "nothing tells yet: kept"
    path.write_bytes(hostile + b"\n" + b"\x00" * (4 * confirm.MAX_READ))  # one line longer than the bound
    calls = 0
    while state.unconfirmed:
        assert confirm.settle(state) == 0
        calls += 1
        assert calls <= 6, "each call reads on from where the last one stopped"
    assert calls > 1, "nothing told within one read: read on at the next call"
    assert state.pending == ['- [broadcast from human] "x"']
    confirm.remember(state, str(path), "0011aabb", 'header:\n- [broadcast from human] "y"', None)
    path.unlink()
    os.mkfifo(path)  # a FIFO put in its place would block a reader with no writer: refused, never waited on
    assert confirm.settle(state) == 0 and state.unconfirmed == []
    path.unlink()
    confirm.remember(state, str(path), "0011aabb", 'header:\n- [broadcast from human] "y"', None)
    assert state.unconfirmed == [], "no transcript, nothing remembered"


def test_an_answer_stamped_in_the_same_millisecond_as_the_reply_counts_as_after_it(tmp_path: Path) -> None:
    """Claude Code's stamps are cut to the millisecond: an answer written just after a reply went out can carry a
    stamp below the reply's own time (this made the test above fail about one run in ten)."""
    from popkit_power.hook.transcript import _answer_after

    sent = 1_800_000_000.0007  # the reply went out 0.7 ms into a millisecond
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent)) + ".000Z"  # the answer, written right after
    line = orjson.dumps({"type": "assistant", "isSidechain": False, "timestamp": stamp}) + b"\n"
    assert _answer_after(line, 0, sent)
    earlier = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent - 1)) + ".999Z"  # a millisecond wholly before
    assert not _answer_after(orjson.dumps({"type": "assistant", "timestamp": earlier}) + b"\n", 0, sent)
