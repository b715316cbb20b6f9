"""Approvals: an agent asks the human, waits for the answer, and the human answers once. The protocols the CLI's
`ask`, `approve` and `deny` follow, and `PowerModeCoordinator` and a dashboard with them:

    request_approval(session, "drop the table?", sender=agent)      ->  Requested (its id, where it landed)
    wait_for_answer(session, request, timeout=110)                  ->  Answer, or None at the deadline
    answer_request(session, request, granted=True, sender="human")  ->  Answered, or AnswerRefusedError

The human's first answer is the answer (fold/exchange.py): an answer to a request answered already is refused
before anything is written, and of two answers written at once the one that came second in the journal is told
that it does not count; either way AnswerRefusedError names the first answer in its fields. Who may answer (only
the human, from outside every agent's session) is for the caller to check before it calls (provenance.py, as the
CLI does); the fold counts only the human's answers whatever is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import AnswerRefusedError, SessionError
from .keys import HUMAN, new_request_id
from .protocol import APPROVAL_ANSWERS
from .session import Session

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .journal.writer import Position
    from .shapes.state import Approval

GRANTED = "approval.granted"
DENIED = "approval.denied"


@dataclass(frozen=True)
class Requested:
    """An approval request in the journal: its id, its record, and the journal's end after it (where a wait for
    its answer starts)."""

    request: str
    seq: int
    end: Position


@dataclass(frozen=True)
class Answer:
    """The human's answer to a request: `granted` or not, with the note, its record's seq and time."""

    request: str
    granted: bool
    note: str | None
    seq: int | None
    ts: str | None

    @property
    def status(self) -> str:
        return "granted" if self.granted else "denied"


@dataclass(frozen=True)
class Answered:
    """An answer that counts: the request it answers (the full id) and its record."""

    request: str
    status: str
    seq: int

    @property
    def text(self) -> str:
        """What a person reads: "granted c383dc7ba86e (seq 41)"."""
        return f"{self.status} {self.request} (seq {self.seq})"


def request_approval(session: Session, question: str, *, sender: str,
                     options: Sequence[str] = ()) -> Requested:
    """Ask the human to approve `question` (with possible answers `options`), as `sender`, under a new id."""
    check_question(question)
    request = new_request_id()
    data: dict[str, Any] = {"request": request, "question": question}
    if options:
        data["options"] = list(options)
    appended = session.publish("approval.requested", data, sender=sender)
    return Requested(request, appended.first_seq, appended.end)


def check_question(question: str) -> None:
    """SessionError for a question that says nothing."""
    if not question.strip():
        raise SessionError("the question is empty: say what the human should approve")


def wait_for_answer(session: Session, request: str, *, timeout: float | None, after: Position | None = None,
                    clock: Callable[[], float] | None = None) -> Answer | None:
    """The human's answer to `request`, following the journal from `after` (where the request landed) as it grows;
    None when `timeout` seconds pass first (the request stays open). Without `after`, an answer the session's state
    holds already is returned at once, and the wait follows the journal from the end of that state."""
    if after is None:
        state, after = session.projection()
        known = state["answered"].get(request)
        if known is not None:
            return Answer(request, known.get("status") == "granted", known.get("note"), known.get("answer_seq"),
                          known.get("answered"))
        if request in state["answered_ids"]:  # answered before the most recent ones: only how is kept
            return Answer(request, state["answered_ids"][request] == 1, None, None, None)

    def answer(event: dict[str, Any]) -> Answer | None:
        data = event.get("data") or {}
        if event.get("type") in APPROVAL_ANSWERS and event.get("from") == HUMAN and data.get("request") == request:
            return Answer(request, event["type"] == GRANTED, data.get("note"), event.get("seq"), event.get("ts"))
        return None

    from .follow import follow_until  # here: the verbs that never wait do not import it (nor logging)

    return follow_until(session.journal, after, answer, timeout=timeout, clock=clock)


def answer_request(session: Session, request: str, *, granted: bool, sender: str = HUMAN,
                   note: str | None = None) -> Answered:
    """Grant (or deny) `request`, its id or the only one it starts, as `sender`: once. AnswerRefusedError, naming
    the first answer, when it was answered already (nothing written) or another answer reached the journal just
    before this one (written, and counting for nothing); SessionError when no request, or several, is named."""
    state, position = session.projection()
    approvals = {**state["answered"], **state["approvals"]}  # pending and recently answered: a second answer is named
    if request not in approvals and request in state["answered_ids"]:  # answered before the most recent ones
        raise refused(request, {"status": "granted" if state["answered_ids"][request] else "denied", "by": HUMAN})
    request = request_named(request, approvals, session.id)
    if approvals[request].get("status") != "pending":
        raise refused(request, approvals[request])
    event_type = GRANTED if granted else DENIED
    appended = session.publish(event_type, {"request": request, **({"note": note} if note else {})}, sender=sender)
    # Two answers written at once both passed the check above; the first in the journal is the answer (the fold's
    # rule), so the caller whose answer came second learns it lost, as a late claimant does.
    answered: Approval | dict[str, Any] = session.fold_through(state, position, appended.first_seq)["answered"].get(
        request) or {}
    if answered.get("answer_seq") != appended.first_seq:
        raise refused(request, answered, seq=appended.first_seq)
    return Answered(request, event_type.split(".")[1], appended.first_seq)


def refused(request: str, first: Approval | dict[str, Any], *, seq: int | None = None) -> AnswerRefusedError:
    """The refusal of an answer to `request`, whose `first` answer (as the state holds it) counts instead; `seq`:
    the refused answer's own record, when it was written."""
    first_seq = first.get("answer_seq")
    at = f" (seq {first_seq})" if isinstance(first_seq, int) else ""
    when = f" at {first['answered']}" if first.get("answered") else ""
    text = (f"request {request} was already {first.get('status')} by {first.get('by')}{when}"
            f"{at}; an approval is answered once (ask again for a new one)")
    if seq is not None:
        text = f"your answer (seq {seq}) does not count: {text}"
    return AnswerRefusedError(text, request=request, first_status=str(first.get("status")), first_by=first.get("by"),
                              first_seq=first_seq if isinstance(first_seq, int) else None,
                              first_ts=first.get("answered"), seq=seq)


def request_named(given: str, approvals: dict[str, Any], session_id: str) -> str:
    """The request id `given` names: the id itself, or the only one it starts (ids are long to type)."""
    if given in approvals:
        return given
    matches = [key for key in approvals if given and key.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    pending = [key for key, value in approvals.items() if value.get("status") == "pending"]
    problem = (f"{given!r} starts several approval requests ({', '.join(matches)})" if matches
               else f"no approval request {given!r} in session {session_id}")
    raise SessionError(f"{problem}; pending: {', '.join(pending) or 'none'}")
