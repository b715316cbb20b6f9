"""Reading one agent's news from the journal: the inbox fold from its cursor, bounded per call.

Shared by every path that hands an agent its news: a tool call's reply (handlers.py), the Stop hook's decision and
the idle agent's waiter (wake.py). Whoever calls it holds the agent's lock and saves the cursor only after what it
read was delivered (or kept as pending). This module is on the hook's hot path: lean imports only.
"""

from __future__ import annotations

import time

from ..errors import JournalError, code_of
from ..journal import codec
from . import texts
from .inbox import STARTS_TURN
from .log import DamageLog, log_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..journal.writer import Damage
    from ..session import Session
    from .agent_state import AgentState
    from .inbox import Inbox

#: Reading news stops after this many records in one call (about 0.35 s here, tools/BENCHMARKS.md), or after
#: MAX_READ_SECONDS, well under PostToolUse's 10 s timeout: an agent far behind catches up over several calls.
MAX_RECORDS_PER_CALL = 50_000
MAX_READ_SECONDS = 1.0
MAX_PENDING = 50  # lines waiting for delivery; past this, reading stops and the cursor stays before the rest
MAX_PENDING_CHARS = 200_000  # likewise in characters, so one huge message does not pull in a hundred more


def read_news(session: Session, state: AgentState, inbox: Inbox) -> tuple[list[str], list[bool]]:
    """Fold the journal from the agent's cursor into `inbox`, move the cursor to where reading stopped, and return
    the news as lines, with whether each starts a turn (its item's kind is one of `inbox.STARTS_TURN`).

    Reading stops at the journal's end, when enough waits for delivery (`MAX_PENDING` lines or `MAX_PENDING_CHARS`
    characters, counting what this call found), after `max_insights_per_pull` insights (the rest come at the next
    calls), or after `MAX_RECORDS_PER_CALL` lines (damaged ones included) or `MAX_READ_SECONDS`: bounded work per
    call, and nothing is skipped.
    """
    journal = session.journal
    room = MAX_PENDING - len(state.pending)
    chars = sum(len(line) for line in state.pending)
    lines: list[str] = []
    turns: list[bool] = []
    if room <= 0 or chars >= MAX_PENDING_CHARS:
        return lines, turns  # enough is waiting already: the cursor stays where it is
    budget = _ReadBudget(session, MAX_RECORDS_PER_CALL, time.monotonic() + MAX_READ_SECONDS)
    reader = journal.reader(state.cursor or journal.end_position(), loads=_loads, on_damage=budget.damaged)
    try:
        reader.check()
    except JournalError as error:  # a cursor the journal cannot honour: log it, and go on from the end, unstuck
        log_error(session.power_dir, f"agent {inbox.agent_key}: {error}; its news goes on from the journal's end",
                  code=code_of(error))
        state.advance_to(journal.end_position())
        return lines, turns
    insights, most_insights = 0, session.config.max_insights_per_pull
    try:
        # The reader's position is just after each line it has passed: stopping after any of them skips nothing.
        for event in reader:
            inbox.apply(event)
            for item in inbox.news:
                lines.append(texts.news_line(item, state.names))
                turns.append(item[0] in STARTS_TURN)
                chars += len(lines[-1])
                insights += item[0] == "insight"
            inbox.news.clear()
            if len(lines) >= room or chars >= MAX_PENDING_CHARS or insights >= most_insights:
                break
            budget.spend()
    except _BudgetSpent:
        pass
    budget.damage_log.sum_up()
    state.advance_to(reader.position)
    return lines, turns


def pending_turns(state: AgentState) -> list[bool]:
    """For each of the agent's pending lines, whether it starts a turn: kept with them (`state.turns`) since they
    were read. Lines left by a version that did not keep it (or a state that does not agree with its lines) are
    judged by the label `texts.news_line` gave them, the only thing such a line has (`texts.matters`)."""
    pending, turns = state.pending, state.turns
    if turns is not None and any(index >= len(pending) for index in turns):
        turns = None
    return turns_of(pending, turns)


def turns_of(lines: list[str], turns: list[Any] | None) -> list[bool]:
    """For each of `lines`, whether it starts a turn: its index is in `turns`, or, when `turns` was not kept (None),
    the label `texts.news_line` gave it says so (`texts.matters`)."""
    if turns is None:
        return [texts.matters(line) for line in lines]
    starting = set(turns)
    return [index in starting for index in range(len(lines))]


def keep_pending(state: AgentState, lines: list[str], turns: list[bool]) -> None:
    """Keep `lines` as the agent's pending lines, with whether each starts a turn."""
    state.pending = lines
    state.turns = [index for index, starts in enumerate(turns) if starts]


def all_news(session: Session, state: AgentState, inbox: Inbox) -> tuple[list[str], list[bool]]:
    """What the agent has to hear: its pending lines, then the news read now (`read_news`), each with whether it
    starts a turn."""
    waiting = pending_turns(state)
    news, starts = read_news(session, state, inbox)
    return state.pending + news, waiting + starts


def reply_and_keep(state: AgentState, lines: list[str], turns: list[bool], limit: int, header: str = texts.HEADER,
                   reference: str | None = None) -> str:
    """The reply text for `lines` (`texts.reply`); what does not fit stays pending, each line with its turn (the rest
    is the last of `lines`, the first of it perhaps the continuation of a cut one, which has that line's turn)."""
    context, rest = texts.reply(lines, limit, header, reference)
    keep_pending(state, rest, turns[len(lines) - len(rest):])
    return context


class _BudgetSpent(Exception):
    """One call has read as much as it may."""


class _ReadBudget:
    """Counts the lines one call reads, valid or damaged, against its limits, and logs damage without flooding."""

    __slots__ = ("damage_log", "deadline", "limit", "lines")

    def __init__(self, session: Session, limit: int, deadline: float) -> None:
        self.damage_log = DamageLog(session)
        self.limit = limit
        self.deadline = deadline
        self.lines = 0

    def spend(self) -> None:
        self.lines += 1
        if self.lines >= self.limit or (self.lines % 256 == 0 and time.monotonic() > self.deadline):
            raise _BudgetSpent

    def damaged(self, damage: Damage) -> None:
        self.damage_log(damage)
        self.spend()  # raised here, the reader's position is already past the damaged line


def _loads(line: bytes) -> Any:
    return codec.loads(line.decode("utf-8"))
