"""Attacks on what an agent hears: replies Claude Code dropped, judged from transcripts that are big or hostile.

Real hook calls, a transcript in the shape Claude Code 2.1.330 writes it (claude_transcript.py), real files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from claude_transcript import ClaudeTranscript, new_tool_use_id
from test_delivery_confirmed import AGENT, Agent, broadcasts_in
from test_hook import call, context, tool

from popkit_power.hook import transcript as confirm
from popkit_power.hook.agent_state import AgentState
from popkit_power.session import Session, start_session


def _dropped_reply(session: Session, agent: Agent, text: str) -> str:
    """A broadcast, then a tool call whose hook's reply (carrying it) Claude Code drops at its timeout; returns the
    call's tool_use id (its result is not written yet)."""
    session.publish("message.broadcast", {"text": text}, sender="human")
    tool_use_id = agent.transcript.answer(new_tool_use_id())
    assert tool_use_id is not None
    reply = call(session.power_dir, tool(tool_use_id=tool_use_id, **agent.fields()))
    assert broadcasts_in(context(reply)) == [text]
    return tool_use_id


def test_a_dropped_reply_behind_a_tool_result_bigger_than_one_read_is_given_again(session: Session,
                                                                                tmp_path: Path) -> None:
    """A Read of a big file: its result (written twice in its line) is more than one read of the transcript. The
    reply dropped beside it is still judged by what follows, and given again, once (it was taken as delivered)."""
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    tool_use_id = _dropped_reply(session, agent, "behind a big read")
    transcript.tool_result(tool_use_id, None, cancelled=True, output="x" * confirm.MAX_READ)
    for _ in range(4):  # the model goes on working: each call reads a bounded part of what was written since
        agent.tool_call()
    assert agent.heard == Counter({"behind a big read": 1})


def test_a_dropped_reply_among_parallel_calls_with_big_results_is_given_again(session: Session,
                                                                             tmp_path: Path) -> None:
    """Three parallel Reads, the first one's reply dropped; their results together are more than one read."""
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    first = _dropped_reply(session, agent, "among parallel reads")
    others = [transcript.answer(new_tool_use_id()) for _ in range(2)]
    replies = [call(session.power_dir, tool(tool_use_id=other, **agent.fields())) for other in others]
    assert replies == [None, None], "nothing new for them; the first one's fate is not known yet"
    transcript.tool_result(first, None, cancelled=True, output="a" * (confirm.MAX_READ // 3))
    for other in others:
        assert other is not None
        transcript.tool_result(other, None, output="b" * (confirm.MAX_READ // 3))
    for _ in range(4):
        agent.tool_call()
    assert agent.heard == Counter({"among parallel reads": 1})



def test_a_dropped_replys_reference_inside_other_hex_in_a_tool_result_does_not_count_as_delivered(
        session: Session, tmp_path: Path) -> None:
    """Hex is everywhere in tool output (hashes, dumps, ids): the reference's 8 digits inside a longer run of hex,
    as a `sha256sum` run in parallel prints them, are not the reply's header; the dropped reply is given again."""
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    first = _dropped_reply(session, agent, "hashed over")
    record = agent_state(session).unconfirmed[-1]
    parallel = transcript.answer(new_tool_use_id())
    assert parallel is not None and call(session.power_dir, tool(tool_use_id=parallel, **agent.fields())) is None
    transcript.tool_result(first, None, cancelled=True)
    transcript.tool_result(parallel, None, output=f"9f86d081884c7d65{record['ref']}5d6d3b0a0c4f2d2e  parser.py\n")
    agent.tool_call()
    assert agent.heard == Counter({"hashed over": 1})


def agent_state(session: Session) -> AgentState:
    state = AgentState(session.dir, AGENT)
    state.load()
    return state


def test_broadcasts_sent_while_agents_join_are_each_heard_once_in_the_welcome_or_as_news(session: Session) -> None:
    """A process publishes broadcasts as fast as it can while agents start (SessionStart) one after another: each
    agent hears every broadcast sent after it joined once, as news, and those sent just before, at most once, in its
    welcome; never the same one in both."""
    import subprocess
    import sys

    from test_hook import payload

    script = ("import sys\nfrom popkit_power.session import Session\n"
              "session = Session(sys.argv[1], sys.argv[2])\n"
              "for number in range(300):\n"
              "    session.publish('message.broadcast', {'text': f'r{number:03d}'}, sender='human')\n")
    publisher = subprocess.Popen([sys.executable, "-c", script, session.power_dir, session.id])
    heard: dict[str, Counter[str]] = {}
    agents = 0
    while publisher.poll() is None or agents < 3:
        claude = f"c0ffee00-0000-0000-0000-{agents:012d}"
        agents += 1
        welcome = context(call(session.power_dir, payload("SessionStart", claude, source="startup")))
        heard[claude] = Counter(broadcasts_in(welcome))
    publisher.wait()
    assert sum(bool(counts) for counts in heard.values()) >= 2, "agents joined while broadcasts were sent"
    for claude, counts in heard.items():
        while (reply := call(session.power_dir, tool(claude=claude))) is not None:
            counts.update(broadcasts_in(context(reply)))
        assert max(counts.values(), default=1) == 1, (claude, [text for text, n in counts.items() if n > 1])
        numbers = sorted(int(text[1:]) for text in counts)
        assert numbers == list(range(numbers[0], 300)), (claude, "every broadcast after the first heard is heard")


@pytest.mark.parametrize("parallel", [10, 16])
def test_a_dropped_reply_among_many_parallel_calls_is_given_again(session: Session, tmp_path: Path,
                                                                  parallel: int) -> None:
    """Many parallel calls in one answer (10 Reads at once is common), each hook's reply carrying a new broadcast,
    the first one's dropped: every reply is undecided until the model answers after all their results, so all of
    them must be remembered (8 were: the first was pushed out, taken as delivered, and its news lost)."""
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    calls = [transcript.answer(new_tool_use_id()) for _ in range(parallel)]
    replies = []
    for number, tool_use_id in enumerate(calls):
        session.publish("message.broadcast", {"text": f"p{number}"}, sender="human")
        replies.append(call(session.power_dir, tool(tool_use_id=tool_use_id, **agent.fields())))
    for number, (tool_use_id, reply) in enumerate(zip(calls, replies, strict=True)):
        assert tool_use_id is not None and reply is not None
        if number == 0:
            transcript.tool_result(tool_use_id, None, cancelled=True)
        else:
            transcript.tool_result(tool_use_id, reply)
            agent.heard.update(broadcasts_in(context(reply)))
    while agent.tool_call() is not None:
        pass
    assert agent.heard == Counter({f"p{number}": 1 for number in range(len(calls))})


def test_one_call_reads_a_bounded_amount_of_transcript_for_all_its_replies(session: Session, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Replies behind big, telling-nothing parts of their transcripts: each call reads at most MAX_READ_PER_CALL
    bytes in all; the replies it did not get to are kept, untouched, for the next call."""
    monkeypatch.setattr(confirm, "MAX_READ_PER_CALL", confirm.MAX_READ)
    state = AgentState(session.dir, AGENT)
    paths = [tmp_path / f"t{number}.jsonl" for number in range(3)]
    for number, path in enumerate(paths):
        path.write_bytes(b"")
        confirm.remember(state, str(path), f"0000000{number}", '- [broadcast from human] "x"', None)
        path.write_bytes((b"{}\n" * 1000) * (3 * confirm.MAX_READ // 3000))
    assert confirm.settle(state) == 0 and len(state.unconfirmed) == 3
    first = state.unconfirmed[0]["at"]
    assert first > 0 and [record["at"] for record in state.unconfirmed[1:]] == [0, 0]
    assert confirm.settle(state) == 0 and len(state.unconfirmed) == 3
    assert state.unconfirmed[0]["at"] > first and [record["at"] for record in state.unconfirmed[1:]] == [0, 0]


@pytest.mark.slow
def test_an_agent_far_behind_hears_every_broadcast_once_in_order_across_segment_rotations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """4 KiB segments, an agent far behind, and each call allowed only a few records (the 50,000 / 1 s bound made
    small): its bounded reads stop anywhere, at a segment's end too, and resume there; every broadcast is heard
    once, in the order sent, and the journal has rotated many times meanwhile."""
    import json

    from popkit_power.hook import news

    power = tmp_path / "power"
    power.mkdir()
    (power / "config.json").write_text(json.dumps({"segment_max_bytes": 4096}))
    session = start_session(str(power), "Ship the parser", sender="human")
    call(session.power_dir, tool())
    for number in range(400):
        if number % 7 == 0:
            session.publish("message.broadcast", {"text": f"f{number:03d}"}, sender="human")
        else:
            session.publish("agent.tool", {"tool": "Read", "ok": True}, sender="someone:main")
    assert len(session.journal.segments()) > 20
    monkeypatch.setattr(news, "MAX_RECORDS_PER_CALL", 5)
    order: list[str] = []
    for _ in range(400):  # 5 records a call (its own tool event among them): a few hundred calls at most
        reply = call(session.power_dir, tool())
        order += broadcasts_in(context(reply)) if reply is not None else []
    assert order == [f"f{number:03d}" for number in range(0, 400, 7)]


def test_a_task_taken_notice_dropped_at_a_hooks_timeout_is_given_again_once(session: Session,
                                                                           tmp_path: Path) -> None:
    """The human releases the agent's task; the reply that tells it is dropped at Claude Code's timeout (the
    transcript says `hook_cancelled`): the notice comes with the next call's reply, once."""
    transcript = ClaudeTranscript(tmp_path / "transcript.jsonl")
    agent = Agent(session, transcript, 0)
    agent.tool_call()
    session.publish("task.created", {"task": "t-parser", "title": "parser"}, sender="human")
    session.publish("task.claimed", {"task": "t-parser", "round": 0}, sender=AGENT)
    agent.tool_call()  # it hears its own claim: its current task
    session.publish("task.released", {"task": "t-parser", "holder": AGENT}, sender="human")
    tool_use_id = transcript.answer(new_tool_use_id())
    assert tool_use_id is not None
    dropped = context(call(session.power_dir, tool(tool_use_id=tool_use_id, **agent.fields())))
    notice = "- [task taken from you by human] t-parser"
    assert dropped.count(notice) == 1
    transcript.tool_result(tool_use_id, None, cancelled=True)
    told = [agent.tool_call() for _ in range(3)]
    assert sum(context(reply).count(notice) for reply in told if reply is not None) == 1
