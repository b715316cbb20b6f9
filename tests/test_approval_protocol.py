"""approvals.py, the approval protocols, called as a library (no CLI): asking, waiting for the answer (found, or
None at the deadline on an injected clock), and answering once; an answer that does not count raises
AnswerRefusedError whose fields name the first answer. Also PowerModeCoordinator's request and wait, which call
them."""

from __future__ import annotations

from typing import Any

import pytest
from test_cli_agents import MAIN

from popkit_power.approvals import (
    Answer,
    Answered,
    answer_request,
    request_approval,
    wait_for_answer,
)
from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.errors import AnswerRefusedError, SessionError
from popkit_power.session import Session


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session with one agent (main-c0ffee) joined."""
    created = session
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=MAIN)
    return created


def records(session: Session) -> list[dict[str, Any]]:
    return list(session.journal.reader())


class Clock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_request_is_recorded_under_a_new_id(session: Session) -> None:
    requested = request_approval(session, "drop the table?", sender=MAIN, options=["yes", "no"])
    last = records(session)[-1]
    assert (last["type"], last["from"], last["seq"]) == ("approval.requested", MAIN, requested.seq)
    assert last["data"] == {"request": requested.request, "question": "drop the table?", "options": ["yes", "no"]}
    assert requested.end == session.journal.end_position()
    with pytest.raises(SessionError, match="the question is empty"):
        request_approval(session, " \n", sender=MAIN)


def test_the_wait_returns_the_humans_answer(session: Session) -> None:
    requested = request_approval(session, "drop the table?", sender=MAIN)
    session.publish("approval.denied", {"request": requested.request, "note": "not today"}, sender=MAIN)  # not his
    answered = answer_request(session, requested.request, granted=True, note="go")
    answer = wait_for_answer(session, requested.request, after=requested.end, timeout=30)
    assert answer is not None
    assert (answer.granted, answer.status, answer.note, answer.seq) == (True, "granted", "go", answered.seq)


def test_the_wait_gives_up_at_the_deadline_and_the_request_stays_open(session: Session) -> None:
    requested = request_approval(session, "drop the table?", sender=MAIN)
    clock = Clock(step=4.0)  # start 4, deadline 14; ends at 8 (watch), 12 (a wait), 16: past
    assert wait_for_answer(session, requested.request, after=requested.end, timeout=10, clock=clock) is None
    assert clock.now == 16.0
    assert session.projection()[0]["approvals"][requested.request]["status"] == "pending"


def test_without_a_position_an_answer_given_already_is_returned_from_the_state(session: Session) -> None:
    requested = request_approval(session, "drop the table?", sender=MAIN)
    answered = answer_request(session, requested.request[:6], granted=False, note="no")  # a unique start
    answer = wait_for_answer(session, requested.request, timeout=0)
    assert answer == Answer(requested.request, False, "no", answered.seq, records(session)[-1]["ts"])


def test_an_answer_is_recorded_once(session: Session) -> None:
    requested = request_approval(session, "drop the table?", sender=MAIN)
    answered = answer_request(session, requested.request, granted=True)
    last = records(session)[-1]
    assert answered == Answered(requested.request, "granted", last["seq"])
    assert (last["type"], last["from"], last["data"]["request"]) == ("approval.granted", "human", requested.request)


def test_a_second_answer_is_refused_before_it_is_written_naming_the_first(session: Session) -> None:
    requested = request_approval(session, "drop the table?", sender=MAIN)
    first = answer_request(session, requested.request, granted=True)
    first_ts = records(session)[-1]["ts"]
    before = records(session)
    with pytest.raises(AnswerRefusedError) as refused:
        answer_request(session, requested.request, granted=False)
    error = refused.value
    assert (error.request, error.first_status, error.first_by, error.first_seq, error.first_ts, error.seq) == (
        requested.request, "granted", "human", first.seq, first_ts, None)
    assert error.code == "answer-refused" and isinstance(error, SessionError)
    assert str(error) == (f"request {requested.request} was already granted by human at {first_ts} (seq {first.seq}); "
                          f"an approval is answered once (ask again for a new one)")
    assert records(session) == before


def test_an_answer_written_second_does_not_count_and_names_the_first(session: Session,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Both answers saw the request pending; the deny reached the journal first. The grant is written, counts for
    nothing, and its refusal names the deny: its status, who gave it, its seq and time, and the grant's own seq."""
    requested = request_approval(session, "drop the table?", sender=MAIN)
    publish = Session.publish
    denied: list[dict[str, Any]] = []

    def deny_first(self: Session, kind: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        if kind == "approval.granted" and not denied:
            seq = publish(self, "approval.denied", {"request": requested.request}, sender="human").first_seq
            denied.extend(record for record in records(self) if record["seq"] == seq)
        return publish(self, kind, payload, **kwargs)

    monkeypatch.setattr(Session, "publish", deny_first)
    with pytest.raises(AnswerRefusedError) as refused:
        answer_request(session, requested.request, granted=True)
    error, ours = refused.value, records(session)[-1]
    assert ours["type"] == "approval.granted"
    assert (error.first_status, error.first_by, error.first_seq, error.first_ts, error.seq) == (
        "denied", "human", denied[0]["seq"], denied[0]["ts"], ours["seq"])
    assert str(error).startswith(f"your answer (seq {ours['seq']}) does not count: request {requested.request} was "
                                 f"already denied by human at {denied[0]['ts']} (seq {denied[0]['seq']})")
    assert session.projection()[0]["answered"][requested.request]["status"] == "denied"


def test_a_request_not_named_or_named_twice_is_refused(session: Session) -> None:
    with pytest.raises(SessionError, match="no approval request 'r-nothing'"):
        answer_request(session, "r-nothing", granted=True)
    for request in ("r-ab1", "r-ab2"):
        session.publish("approval.requested", {"request": request, "question": "?"}, sender=MAIN)
    before = records(session)
    with pytest.raises(SessionError, match=r"'r-ab' starts several approval requests \(r-ab1, r-ab2\)"):
        answer_request(session, "r-ab", granted=True)
    assert records(session) == before


def test_the_coordinator_asks_and_waits_through_the_same_protocols(session: Session) -> None:
    coordinator = PowerModeCoordinator(power_dir=session.power_dir, session_id=session.id)
    requested = coordinator.request_approval("drop the table?", agent=MAIN)
    assert coordinator.wait_for_approval(requested, timeout=0) is None
    answered = answer_request(session, requested.request, granted=False)
    for asked in (requested, requested.request):  # what request_approval returned, or the id alone
        answer = coordinator.wait_for_approval(asked, timeout=0)
        assert answer is not None and (answer.granted, answer.seq) == (False, answered.seq)
