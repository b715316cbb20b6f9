"""Claiming a task: the protocol every claimant follows, whether it is the CLI's `claim`, a program through
`PowerModeCoordinator.claim_task`, or a dashboard.

    claim_task(session, "t-1a2b", sender=agent)  ->  Claimed (the task is the sender's)
                                                  or ClaimLostError (another claim came first: `winner` names it)

A claim is refused before anything is written when the task cannot be claimed (finished, held by another:
roster.check_claim). Otherwise it is appended, and which claim won is what the journal says as of this claim,
whatever was appended after it: the first claim in journal order wins (fold/tasks.py). With machines replicating,
it is what the journal says once the server has placed the claim in the order of all machines' task changes (its
`arbiter.ordered` fact, pulled by the replicator); when that does not come within the configured
`replication_timeout_seconds`, the outcome is this machine's word, and `confirmed` is False.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ClaimLostError, SessionError
from .journal.lease import held
from .keys import REPLICATOR_LEASE
from .projector import State, find_task_anywhere
from .roster import check_claim, claim_outcome, find_task
from .session import Session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .journal.writer import Position

#: The transitions by which an agent takes a task, and who takes it by each: its sender, or whom its data names.
_TAKER: dict[str, Callable[[dict[str, Any]], Any]] = {
    "task.claimed": lambda transition: transition.get("from"),
    "task.assigned": lambda transition: (transition.get("data") or {}).get("agent"),
    "task.created": lambda transition: (transition.get("data") or {}).get("owner"),
}


@dataclass(frozen=True)
class Claimed:
    """A claim that won, or a task the claimant held already.

    `seq` is the claim's record, None when nothing was written (`already`: the task was the claimant's when it
    looked, `status` then says how, claimed or assigned). `confirmed` is False only with machines replicating when
    the server's place for the claim did not come in time: the outcome is then this machine's word, and another
    machine's claim that reached the server first still takes the task (the claimant hears so from its hook)."""

    task: str
    seq: int | None
    status: str
    already: bool = False
    confirmed: bool = True


def claim_task(session: Session, task: str, *, sender: str, timeout: float | None = None,
               on_unconfirmed: Callable[[], None] | None = None, clock: Callable[[], float] | None = None) -> Claimed:
    """Claim `task` (its id or a unique start of it, in any case) for `sender`.

    Returns Claimed when the claim won or `sender` held the task already; raises ClaimLostError (a SessionError
    naming the winner, with `winner` and `winning_seq`) when another agent's claim came first, and SessionError
    when the task cannot be claimed (nothing written then). `timeout`: how long to wait for the server's place
    with machines replicating (default: the config's `replication_timeout_seconds`); `on_unconfirmed` is called
    when it passes without it, before the outcome is decided on this machine's word (to say so whatever it is)."""
    state, position = session.projection()
    task_id = find_task(state, task)
    if check_claim(state, task_id, sender):
        return Claimed(task_id, None, str(state["tasks"][task_id]["status"]), already=True)
    seen = position.copy()
    appended = session.publish("task.claimed", {"task": task_id, "round": state["tasks"][task_id]["attempts"]},
                               sender=sender)
    through, confirmed = appended.first_seq, True
    if held(session.dir, REPLICATOR_LEASE):
        wait = session.config.replication_timeout_seconds if timeout is None else timeout
        placed = wait_for_place(session, seen, appended.first_seq, timeout=wait, clock=clock)
        confirmed = placed is not None
        if not confirmed and on_unconfirmed is not None:
            on_unconfirmed()
        through = placed or through
    after = session.fold_through(state, seen, through)
    outcome(after, task_id, sender, appended.first_seq, confirmed=confirmed)
    found = find_task_anywhere(after, task_id)
    status = found["status"] if found is not None else None
    return Claimed(task_id, appended.first_seq, str(status), confirmed=confirmed)


def outcome(state: State, task_id: str, sender: str, seq: int, *, confirmed: bool = True) -> None:
    """Nothing when `sender` holds the task in `state` (folded through its claim at `seq`); ClaimLostError naming
    the winner when another agent does; SessionError when nobody does (roster.claim_outcome says which, in words)."""
    try:
        claim_outcome(state, task_id, sender)
    except SessionError as lost:
        found = find_task_anywhere(state, task_id)
        winner = found.get("owner") if found is not None else None
        if not isinstance(winner, str) or not winner:
            raise  # nobody holds it: no claim won
        raise ClaimLostError(str(lost), task=task_id, winner=winner, winning_seq=taken_at(state, task_id, winner),
                             seq=seq, confirmed=confirmed) from None


def taken_at(state: State, task_id: str, agent: str) -> int | None:
    """The seq of the record by which `agent` took the task last (its claim, an assignment, a creation for it), from
    the task's log (fold/tasks.py); None when the log does not hold it (another machine's claim that the server's
    contest gave the task to before it was pulled here, or a log too long to keep)."""
    for _place, seq, transition in reversed((state.get("task_logs") or {}).get(task_id) or ()):
        taker = _TAKER.get(transition.get("type"))
        if taker is not None and taker(transition) == agent and isinstance(seq, int):
            return seq
    return None


def wait_for_place(session: Session, after: Position, seq: int, *, timeout: float,
                   clock: Callable[[], float] | None = None) -> int | None:
    """The seq of the server's place (`arbiter.ordered`) for this machine's task change at `seq`, following the
    journal from `after` until the replicator has pulled it; None after `timeout` seconds."""
    origin = session.origin

    def place(event: dict[str, Any]) -> int | None:
        data = event.get("data") or {}
        if event.get("type") == "arbiter.ordered" and data.get("origin") == origin and data.get("seq") == seq:
            return int(event["seq"])
        return None

    from .follow import follow_until  # here: the verbs that never wait do not import it (nor logging)

    return follow_until(session.journal, after, place, timeout=timeout, clock=clock)
