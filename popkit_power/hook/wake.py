"""News that starts a turn: what the Stop hook and an idle agent's waiter hand over, and the waiter's claim file.

An agent hears most news after its next tool call. Some news should not wait for one (`inbox.STARTS_TURN`, decided
by the kind of each news item, never by its text: a message to it, an orphaned task offered to it, an assignment, a
task taken from it, the human's answer to its request, a broadcast): when the agent is about to stop, the Stop hook
lets it go on with that news; when it sits idle, its waiter (waiter.py) wakes it with it. Both read through the same
cursor as the tool-call path (`news.read_news`), under the agent's lock, and the caller saves the new cursor only
after the text went out: delivered exactly once, never again at the next tool call. News that does not start a turn
(insights, edit conflicts) is kept as the agent's pending lines, which its next tool call delivers first.

`agents/<agent>.waiter` names the one waiter of an agent (`pid start-time`): a new waiter takes it over and ends the
old one, and SessionEnd removes it. This module is on the hook's hot path: lean imports only.
"""

from __future__ import annotations

import os
import time

from .._fs import read_file
from ..home import write_private_file
from ..keys import AGENT_STATE_SUFFIX, WAITER_CLAIM_SUFFIX
from .inbox import Inbox
from .news import MAX_PENDING, MAX_PENDING_CHARS, all_news, keep_pending, reply_and_keep
from .transcript import new_reference, remember, settle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..session import Session
    from .agent_state import AgentState

def take_news(session: Session, state: AgentState, agent_key: str, header: str,
              transcript: str | None = None) -> str | None:
    """The text of the agent's news under `header` if some of it starts a turn, else None (what was read is kept
    as pending lines for the next tool call). Takes the state's checkpoint first: the caller saves that before it
    delivers the text and the state itself after, as a tool call's reply does. With the agent's `transcript`, the
    text is remembered until the transcript shows the model got it (hook/transcript.py)."""
    config = session.config
    settle(state)  # what an earlier reply carried and Claude Code dropped goes out again
    state.checkpoint()
    inbox = Inbox(state, agent_key, conflict_window=config.conflict_window_seconds,
                  similarity_threshold=config.insight_similarity_threshold, now=time.time())
    lines, turns = all_news(session, state, inbox)
    # So much waiting that reading stopped: what comes after it cannot be seen, so the agent hears it all now.
    full = len(lines) >= MAX_PENDING or sum(len(line) for line in lines) >= MAX_PENDING_CHARS
    if not full and not any(turns):
        keep_pending(state, lines, turns)
        return None
    reference = new_reference() if transcript else None
    context = reply_and_keep(state, lines, turns, config.context_max_chars, header, reference)
    if context and transcript and reference:
        remember(state, transcript, reference, context, None, turns)
    return context or None


def claim_path(state: AgentState) -> str:
    """`agents/<agent>.waiter`, beside the agent's state file."""
    return state.path[: -len(AGENT_STATE_SUFFIX)] + WAITER_CLAIM_SUFFIX


def read_claim(path: str) -> tuple[int, int | None] | None:
    """The waiter a claim file names, `(pid, start time)`, or None when there is none (or it cannot be read)."""
    try:
        fields = read_file(path, 100).split()
        return int(fields[0]), int(fields[1]) if len(fields) > 1 and fields[1] != b"-" else None
    except (OSError, ValueError, IndexError):
        return None


def write_claim(path: str, waiter: tuple[int, int | None]) -> None:
    pid, started = waiter
    write_private_file(path, f"{pid} {'-' if started is None else started}\n", durable=False)


def drop_claim(path: str, waiter: tuple[int, int | None] | None = None) -> None:
    """Remove the claim file (only if it still names `waiter`, when given): the waiter it names ends at once."""
    if waiter is not None and read_claim(path) != waiter:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
