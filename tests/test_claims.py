"""claims.claim_task, the claim protocol, called as a library (no CLI): a won claim, a task held already, a claim
that lands second (ClaimLostError names the winner in its fields), one refused before anything is written, and
the wait for the server's place with machines replicating. Also PowerModeCoordinator.claim_task, which calls it."""

from __future__ import annotations

from typing import Any

import pytest
from test_cli_agents import HELPER, MAIN

from popkit_power import claims
from popkit_power.claims import Claimed, claim_task, wait_for_place
from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.errors import ClaimLostError, SessionError
from popkit_power.journal.writer import Position
from popkit_power.keys import ARBITER
from popkit_power.protocol import make_event
from popkit_power.session import Session


@pytest.fixture
def session(session: Session) -> Session:
    """conftest's session with two live agents and one open task, t-1."""
    created = session
    created.publish("agent.joined", {"name": "main-c0ffee"}, sender=MAIN)
    created.publish("agent.joined", {"name": "Explore-a1b2c3", "agent_type": "Explore"}, sender=HELPER)
    created.publish("task.created", {"task": "t-1", "title": "the parser"}, sender="human")
    return created


def records(session: Session) -> list[dict[str, Any]]:
    return list(session.journal.reader())


def first_before(monkeypatch: pytest.MonkeyPatch, event_type: str, data: dict[str, Any], sender: str) -> list[int]:
    """Make the next claim of MAIN land second: just before it, `event_type` is appended; the list gets its seq."""
    publish = Session.publish
    seqs: list[int] = []

    def other_first(self: Session, kind: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        if kind == "task.claimed" and kwargs["sender"] == MAIN and not seqs:
            seqs.append(publish(self, event_type, data, sender=sender).first_seq)
        return publish(self, kind, payload, **kwargs)

    monkeypatch.setattr(Session, "publish", other_first)
    return seqs


def test_a_claim_that_wins_returns_its_record(session: Session) -> None:
    claimed = claim_task(session, "T-", sender=MAIN)  # a unique start, in any case
    last = records(session)[-1]
    assert claimed == Claimed("t-1", last["seq"], "claimed")
    assert (last["type"], last["from"], last["data"]) == ("task.claimed", MAIN, {"task": "t-1", "round": 0})
    assert session.projection()[0]["tasks"]["t-1"]["owner"] == MAIN


def test_a_task_held_already_writes_nothing(session: Session) -> None:
    claim_task(session, "t-1", sender=MAIN)
    before = records(session)
    claimed = claim_task(session, "t-1", sender=MAIN)
    assert (claimed.already, claimed.seq, claimed.status, claimed.task) == (True, None, "claimed", "t-1")
    assert records(session) == before


def test_a_claim_that_lands_second_names_the_winner_in_its_fields(session: Session,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Both looked at the open task; HELPER's claim reached the journal first. MAIN's is written and counts for
    nothing: ClaimLostError (a SessionError, as the CLI's exit 2) with the winner's key and its claim's seq."""
    winning = first_before(monkeypatch, "task.claimed", {"task": "t-1"}, HELPER)
    with pytest.raises(ClaimLostError) as lost:
        claim_task(session, "t-1", sender=MAIN)
    error = lost.value
    ours = records(session)[-1]
    assert (ours["type"], ours["from"]) == ("task.claimed", MAIN)
    assert (error.task, error.winner, error.winning_seq, error.seq) == ("t-1", HELPER, winning[0], ours["seq"])
    assert error.confirmed and error.code == "claim-lost" and isinstance(error, SessionError)
    assert "task t-1 was not claimed: Explore-a1b2c3" in str(error) and "claimed it first" in str(error)
    assert session.projection()[0]["tasks"]["t-1"]["owner"] == HELPER


def test_a_claim_overtaken_by_the_humans_assignment_names_the_assigned_agent(session: Session,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    winning = first_before(monkeypatch, "task.assigned", {"task": "t-1", "agent": HELPER}, "human")
    with pytest.raises(ClaimLostError) as lost:
        claim_task(session, "t-1", sender=MAIN)
    assert (lost.value.winner, lost.value.winning_seq) == (HELPER, winning[0])


def test_what_comes_after_the_claim_does_not_turn_a_win_into_a_loss(session: Session,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    publish = Session.publish

    def then_reassigned(self: Session, kind: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        appended = publish(self, kind, payload, **kwargs)
        if kind == "task.claimed":
            publish(self, "task.assigned", {"task": "t-1", "agent": HELPER}, sender="human")
        return appended

    monkeypatch.setattr(Session, "publish", then_reassigned)
    claimed = claim_task(session, "t-1", sender=MAIN)
    assert claimed.seq is not None and not claimed.already
    assert session.projection()[0]["tasks"]["t-1"]["owner"] == HELPER


def test_a_task_held_by_another_live_agent_is_refused_before_anything_is_written(session: Session) -> None:
    claim_task(session, "t-1", sender=HELPER)
    before = records(session)
    with pytest.raises(SessionError) as refused:
        claim_task(session, "t-1", sender=MAIN)
    assert not isinstance(refused.value, ClaimLostError)
    assert "it is claimed by Explore-a1b2c3" in str(refused.value)
    assert records(session) == before


# -- machines replicating: the server's place ----------------------------------------------------------------------


def place(session: Session, seq: int) -> int:
    """The server's place for this machine's task change at `seq`, as the replicator pulls it; its seq here."""
    claimed = next(record for record in records(session) if record["seq"] == seq)
    fact = make_event("arbiter.ordered", {"event": claimed["id"], "task": "t-1", "type": claimed["type"],
                                          "origin": session.origin, "seq": seq},
                      sender=ARBITER, session=session.id, origin=ARBITER)
    return session.append_events([fact]).first_seq


def test_with_a_replicator_the_claim_waits_for_its_place(session: Session,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With a replicator running, the outcome waits for the server's place of the claim, which the replicator
    appends while the claim waits (here on the injected clock's second reading, before the wait begins)."""
    monkeypatch.setattr(claims, "held", lambda directory, name="coordinator": name == "replicator")
    placed: list[int] = []
    readings = [0]

    def clock() -> float:
        readings[0] += 1
        if readings[0] == 2:
            claim_seq = next(r["seq"] for r in reversed(records(session)) if r["type"] == "task.claimed")
            placed.append(place(session, claim_seq))
        return 100.0 + readings[0]

    said: list[str] = []
    claimed = claim_task(session, "t-1", sender=MAIN, timeout=30, clock=clock,
                         on_unconfirmed=lambda: said.append("unconfirmed"))
    assert claimed.confirmed and said == [] and placed and claimed.seq is not None and claimed.seq < placed[0]


def test_with_a_replicator_and_no_place_in_time_the_outcome_is_this_machines_word(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(claims, "held", lambda directory, name="coordinator": name == "replicator")
    said: list[str] = []
    claimed = claim_task(session, "t-1", sender=MAIN, timeout=0, on_unconfirmed=lambda: said.append("unconfirmed"))
    assert (claimed.confirmed, said, claimed.status) == (False, ["unconfirmed"], "claimed")


def test_wait_for_place_finds_only_this_machines_place_of_that_seq(session: Session) -> None:
    start = session.journal.end_position()
    claimed = claim_task(session, "t-1", sender=MAIN)
    assert claimed.seq is not None
    place(session, claimed.seq - 1)  # another change's place: not this one
    assert wait_for_place(session, start, claimed.seq, timeout=0) is None
    placed = place(session, claimed.seq)
    assert wait_for_place(session, start, claimed.seq, timeout=0) == placed
    assert wait_for_place(session, Position(), claimed.seq, timeout=0) == placed


# -- the coordinator's API -------------------------------------------------------------------------------------------


def test_the_coordinator_claims_through_the_same_protocol(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    coordinator = PowerModeCoordinator(power_dir=session.power_dir, session_id=session.id)
    winning = first_before(monkeypatch, "task.claimed", {"task": "t-1"}, HELPER)
    with pytest.raises(ClaimLostError) as lost:
        coordinator.claim_task("t-1", agent=MAIN)
    assert (lost.value.winner, lost.value.winning_seq) == (HELPER, winning[0])
    session.publish("task.created", {"task": "t-2", "title": "the lexer"}, sender="human")
    claimed = PowerModeCoordinator(power_dir=session.power_dir).claim_task("t-2", agent=MAIN)  # the active session
    assert (claimed.task, claimed.status) == ("t-2", "claimed")
