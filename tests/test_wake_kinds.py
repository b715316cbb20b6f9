"""Whether news starts a turn (the Stop hook's block, the idle agent's waiter) is decided by the kind of its news
item, kept beside each line while it waits, never by the line's text; only lines left by a version that did not keep
the kind are judged by their label."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_hook import CLAUDE, OTHER, call, context, payload, tool

from popkit_power.hook import texts
from popkit_power.hook import transcript as confirm
from popkit_power.hook.agent_state import AgentState
from popkit_power.hook.inbox import STARTS_TURN
from popkit_power.hook.news import keep_pending, pending_turns
from popkit_power.hook.wake import take_news
from popkit_power.session import Session

AGENT = f"{CLAUDE}:main"
#: One news item of every kind `texts.news_line` renders
ITEMS = [("broadcast", "human", "all hands"), ("direct", f"{OTHER}:main", "hi"),
         ("insight", f"{OTHER}:main", "tests need redis", []), ("approval", "human", True, "r-1", "deploy?", None),
         ("orphaned", "coordinator", "t-1", {}), ("claim_lost", "coordinator", "t-2", f"{OTHER}:main"),
         ("assigned", "coordinator", "t-3"), ("taken", "human", "t-4", None), ("taken", "human", "t-5", None, "done"),
         ("wrote_after_you", f"{OTHER}:main", "a.py", 5), ("they_wrote_first", f"{OTHER}:main", "a.py", 5)]


def state_of(session: Session) -> AgentState:
    state = AgentState(session.dir, AGENT)
    state.load()
    return state


def test_the_labels_of_older_lines_agree_with_the_kinds() -> None:
    """The fallback for lines without a kept kind judges every kind as the kinds do."""
    assert {item[0] for item in ITEMS} >= STARTS_TURN
    for item in ITEMS:
        assert texts.matters(texts.news_line(item, {})) == (item[0] in STARTS_TURN), item


def test_a_waiting_line_starts_a_turn_by_its_kept_kind_not_its_text(session: Session) -> None:
    """Two waiting lines whose labels say the opposite of their kinds: the kinds decide."""
    call(session.power_dir, tool())
    state = state_of(session)
    looks_urgent, looks_quiet = "- [message to you from x] \"not urgent\"", "- [insight from x] \"urgent\""
    keep_pending(state, [looks_urgent], [False])
    assert take_news(session, state, AGENT, texts.STOP_HEADER) is None, "kept as not starting a turn"
    assert state.pending == [looks_urgent] and pending_turns(state) == [False]
    keep_pending(state, [looks_quiet, looks_urgent], [True, False])
    told = take_news(session, state, AGENT, texts.STOP_HEADER)
    assert told is not None and looks_quiet in told and looks_urgent in told
    assert state.pending == [] and state.turns == []


def test_lines_of_an_older_state_are_judged_by_their_label(session: Session) -> None:
    call(session.power_dir, tool())
    path = Path(session.dir, "agents")
    state = state_of(session)
    state.pending = ['- [insight from x] "quiet"']
    state.save()
    saved = orjson.loads(Path(state.path).read_bytes())
    del saved["turns"]  # as an older version wrote it
    Path(state.path).write_bytes(orjson.dumps(saved))
    old = state_of(session)
    assert old.turns is None and pending_turns(old) == [False]
    assert take_news(session, old, AGENT, texts.STOP_HEADER) is None
    old.pending.append('- [message to you from x] "urgent"')
    old.turns = None
    assert pending_turns(old) == [False, True]
    assert path.is_dir()


def test_a_message_left_over_from_a_capped_reply_still_blocks_the_stop(session: Session) -> None:
    """A tool call's reply too small for all its news keeps the rest waiting with its kinds: the direct message in
    the rest blocks the agent's stop; the insights alone would not."""
    home = session.power_dir
    Path(home, "config.json").write_text('{"context_max_chars": 1000, "max_insights_per_pull": 10}')
    call(home, tool())
    for number in range(3):
        session.publish("insight.shared", {"text": f"insight {number} " + "x" * 400, "tags": []},
                        sender=f"{OTHER}:main")
    session.publish("message.direct", {"text": "please review a.py"}, sender=f"{OTHER}:main", to=AGENT)
    first = context(call(home, tool()))
    assert "insight 0" in first and "please review" not in first
    state = state_of(session)
    assert state.pending and pending_turns(state)[-1] is True and not any(pending_turns(state)[:-1])
    reply = call(home, payload("Stop", CLAUDE, stop_hook_active=False, last_assistant_message="done"))
    assert reply is not None and orjson.loads(reply)["decision"] == "block"
    state = state_of(session)  # this reply too had room for one insight: the message still waits, still urgent
    assert "please review a.py" in state.pending[-1] and pending_turns(state)[-1] is True


@pytest.mark.parametrize("kept", [True, False])
def test_a_lost_reply_s_lines_come_back_with_their_kinds(session: Session, tmp_path: Path, kept: bool) -> None:
    """A reply the model never got goes back in front of the waiting lines: with the kinds it was made of, or, for a
    reply remembered by an older version (no kinds kept), judged by the lines' labels."""
    state = state_of(session)
    transcript = tmp_path / "transcript.jsonl"
    transcript.write_bytes(b"")
    keep_pending(state, ['- [insight from x] "later"'], [False])
    context_text = 'header:\n- [broadcast from human] "now"\n- [insight from x] "also"'
    confirm.remember(state, str(transcript), "0011aabb", context_text, None, [True, False, False])
    (record,) = state.unconfirmed
    assert record["turns"] == [0]
    if not kept:
        del record["turns"]
    record["sent"] = None  # any answer of the model counts as made after it
    transcript.write_bytes(b'{"type":"assistant"}\n')
    assert confirm.settle(state) == 1
    assert state.pending == ['- [broadcast from human] "now"', '- [insight from x] "also"',
                             '- [insight from x] "later"']
    assert pending_turns(state) == [True, False, False]
