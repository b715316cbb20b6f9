"""An idle agent's waiter: `popkit-power-hook wake`, Claude Code's Stop hook marked `asyncRewake`.

Claude Code starts it in the background each time the main agent's turn ends. It waits only in an interactive
session: a headless `claude -p` has no idle time, and would wait for this hook before exiting (docs/claude-code.md,
"Waking an idle session"). It blocks, costing no CPU, on two things at once: the session's journal directory
(inotify, through `follow.JournalWatch`) and a pidfd on the agent's Claude Code process. When news that starts a
turn arrives (`wake.take_news`) it writes the news to stderr and exits 2, which makes Claude Code start a turn with
that text; the agent's cursor moves past the news only after the text went out, so the next tool call does not
repeat it. A SIGTERM (Claude Code closing the session, a newer waiter) cannot fall between writing the text and
exit 2 (`_Delivery`); a SIGKILL there is caught at the agent's next call from its transcript (transcript.py).

It ends, with exit 0 and nothing said, when: the Claude Code process exits (the pidfd; Claude Code also sends
SIGTERM to its hooks when the session closes), Power Mode is stopped or another session made active, the agent
starts a turn by other means (a tool call of its, seen in its state file), a newer waiter of the same agent takes
over (it ends this one by its claim file), SessionEnd removes the claim, or `wake_max_seconds` pass. Journal
appends are what wakes it to look at all of those, and each of them appends to the journal: the agent's own
PostToolUse and Stop hooks, SessionEnd, `popkit-power stop`.

Never on the tool-call path: watchdog is imported here only, in this background process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from ..config import usable_config
from ..follow import JournalWatch
from ..home import active_session
from ..keys import MAIN
from ..opened_dir import OpenedDirectory
from ..processes import start_time, still_running
from ..session import Session
from . import texts
from .agent_state import AgentState
from .handlers import Agent
from .log import SESSION_GONE, log_error
from .wake import claim_path, drop_claim, read_claim, take_news, write_claim

#: asyncRewake: exit code 2 wakes the model, with the hook's stderr as the new turn's text
WAKE_EXIT = 2
#: `CLAUDE_CODE_ENTRYPOINT` of an interactive session (2.1.330); `claude -p` has `sdk-cli`, and waits for its
#: asyncRewake hooks to end before it exits, so a waiter there would hold it up to the hook's timeout
INTERACTIVE = "cli"
#: How Claude Code ends a hook it no longer wants (the session closed, the hook's timeout), and how a newer waiter
#: ends an older one; SIGHUP when the terminal goes away first
ENDING_SIGNALS = {signal.SIGTERM, signal.SIGHUP}


def wait_for_news(power_dir: str, session_id: str, payload: dict[str, Any], environ: Any, deliver: Any) -> int:
    """Wait until news that starts a turn arrives for the payload's main agent, hand it to `deliver` (which writes
    and flushes it) and return WAKE_EXIT; return 0 when the wait ends for any other reason."""
    if environ.get("CLAUDE_CODE_ENTRYPOINT") != INTERACTIVE:
        return 0  # `claude -p` (and the SDKs) would wait for this hook before exiting: nothing sits idle there
    agent = Agent(payload["session_id"], payload, environ)
    if agent.agent_id != MAIN or agent.pid is None or not hasattr(os, "pidfd_open"):
        return 0  # a subagent has no idle time; without CLAUDE_PID there is no process to outlive
    try:
        pidfd = os.pidfd_open(agent.pid)
    except OSError:
        return 0  # its Claude Code has exited already
    ending = _Ending()
    for signum in ENDING_SIGNALS:
        signal.signal(signum, ending)
    try:
        session = Session(power_dir, session_id, usable_config(power_dir)[0])  # a broken config.json: what holds
        opened = OpenedDirectory(session.dir)
        me = (os.getpid(), start_time(os.getpid()))
        baseline = _take_over(session, agent.key, me)
        watch = JournalWatch(session.journal.directory)
        try:
            delivery = _Delivery(deliver, ending, agent.transcript(payload))
            return _wait(session, agent.key, me, baseline, watch, pidfd, opened, delivery)
        finally:  # the news may be out already: nothing here may turn exit 2 into an error (exit 0)
            with contextlib.suppress(Exception):
                watch.close()
                drop_claim(claim_path(_state(session, agent.key)), me)
    finally:
        os.close(pidfd)


class _Ending:
    """The waiter's handler of the signals that end it (Claude Code closing the session or at the hook's timeout, a
    newer waiter): before its news goes out it leaves with exit 0 and nothing said; while the news is written and
    the cursor saved the signal waits; after that it leaves with WAKE_EXIT. Only exit 2 makes Claude Code take the
    text on its stderr: any other end would drop news whose cursor had moved past it."""

    __slots__ = ("code", "delivering", "requested")

    def __init__(self) -> None:
        self.code = 0
        self.delivering = False
        self.requested = False

    def __call__(self, _signum: int, _frame: Any) -> None:
        # Python runs this in the main thread between two bytecodes, whichever thread the signal reached.
        if self.delivering:
            self.requested = True
            return
        os._exit(self.code)  # the lock and the pidfd go with the process


class _Delivery:
    """Writes the news and saves the cursor past it as one step that SIGTERM cannot split (see `_Ending`). A
    SIGKILL in that step is what the agent's transcript shows at its next call (hook/transcript.py)."""

    __slots__ = ("deliver", "ending", "transcript")

    def __init__(self, deliver: Any, ending: _Ending, transcript: str | None) -> None:
        self.deliver = deliver
        self.ending = ending
        self.transcript = transcript

    def __call__(self, state: AgentState, news: str) -> None:
        state.save_checkpoint()  # a signal before this point: the cursor stays before the news
        ending = self.ending
        ending.delivering = True
        try:
            self.deliver(news)
            state.save()
            ending.code = WAKE_EXIT
        finally:
            ending.delivering = False
        if ending.requested:
            os._exit(ending.code)


def _wait(session: Session, agent_key: str, me: tuple[int, int | None], baseline: int, watch: JournalWatch,
          pidfd: int, opened: OpenedDirectory, delivery: _Delivery) -> int:
    deadline = time.monotonic() + session.config.wake_max_seconds
    while True:
        gone = opened.gone()
        if gone is not None:  # removed, or another in its place (restored from a copy): not the session it waits on
            log_error(session.power_dir, f"the waiter of {agent_key} ends: its session directory {gone}",
                      code=SESSION_GONE)
            return 0
        if active_session(session.power_dir) != session.id:
            return 0  # Power Mode stopped (or another session made active)
        state = _state(session, agent_key)
        with state.lock:
            state.load()
            if read_claim(claim_path(state)) != me or state.tool_calls != baseline:
                return 0  # a newer waiter, the session's end, or the agent working again: not idle any more
            news = take_news(session, state, agent_key, texts.WAKE_HEADER, delivery.transcript)
            if news is None:
                state.save()  # what was read but does not start a turn waits for the next tool call
            else:
                delivery(state, news)
                return WAKE_EXIT
        left = deadline - time.monotonic()
        if left <= 0 or watch.wait(left, [pidfd]):
            return 0  # its lifetime is over, or its Claude Code process exited


def _take_over(session: Session, agent_key: str, me: tuple[int, int | None]) -> int:
    """Claim the agent's waiting, ending an older waiter of it that still runs; return its tool calls so far.

    Under the agent's lock, so the older one is never ended in the middle of a delivery."""
    state = _state(session, agent_key)
    with state.lock:
        state.load()
        path = claim_path(state)
        old = read_claim(path)
        if old is not None and old[0] != me[0] and still_running(*old):
            try:
                os.kill(old[0], signal.SIGTERM)
            except OSError:
                pass
        write_claim(path, me)
        return state.tool_calls


def _state(session: Session, agent_key: str) -> AgentState:
    return AgentState(session.dir, agent_key, durable=session.config.durability == "fsync")
