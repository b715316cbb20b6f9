"""What is said and decided above the agents' work: insights (with near-duplicates held back), the most recent
broadcasts (for the welcome of agents that join later), approval requests and their one answer, the objective, the
session's opening and closing, and the coordinator's health.

An answered approval leaves `approvals` for `answered` (the most recent `rules.kept_finished`), the count in
`totals` and its id in `answered_ids` (so that it is answered once, and its id never asks again, however long ago it
was answered), so the live state holds only what still waits for the human.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ..insights import insight_index, insight_key
from ..keys import HUMAN
from ..provenance import kept_evidence
from .model import APPROVAL_PENDING, MAX_BROADCASTS_KEPT, Event, Rules, State, cut, index_finished, keep_recent

if TYPE_CHECKING:
    from ..shapes.events import ApprovalAnswer, ApprovalRequested, InsightShared, Said, SessionClosed, SessionOpened
    from ..shapes.state import Coordinator, Insight
    from .model import Handler


def _insight(state: State, event: Event, data: InsightShared, rules: Rules) -> None:
    text = data.get("text")
    if not isinstance(text, str):
        return
    key, words = insight_key(text)
    insights = state["insights"]
    index = insight_index(insights, rules.insight_similarity_threshold)
    prefix = index.prefix(words)
    duplicate_of = index.first_match(key, words, prefix)
    tags = [tag for tag in data.get("tags") or () if isinstance(tag, str)]
    entry: Insight
    entry = {"id": event.get("id"), "seq": event.get("seq"), "from": event.get("from"), "text": text, "tags": tags,
             "ts": event.get("ts"), "key": key, "dup_of": duplicate_of}
    insights.append(entry)
    index.appended(entry, words, prefix)
    if len(insights) > rules.max_insights_kept:
        del insights[0]
        index.dropped_first()


def _broadcast(state: State, event: Event, data: Said, rules: Rules) -> None:
    text = data.get("text")
    if not isinstance(text, str):
        return
    broadcasts = state["broadcasts"]
    broadcasts.append({"seq": event.get("seq"), "from": event.get("from"), "text": cut(text), "ts": event.get("ts")})
    del broadcasts[: max(0, len(broadcasts) - MAX_BROADCASTS_KEPT)]


def _approval_requested(state: State, event: Event, data: ApprovalRequested, rules: Rules) -> None:
    """The first request under an id is the one shown and answered: a later one with the same id (an agent asking
    something harmless under the id of its guarded call's request) would change what the human approves."""
    request = data.get("request")
    if isinstance(request, str) and request not in state["answered_ids"] and request not in state["approvals"]:
        state["approvals"][request] = {"question": data.get("question"), "options": data.get("options"),
                                       "from": event.get("from"), "status": APPROVAL_PENDING, "asked": event.get("ts"),
                                       "answered": None, "by": None, "note": None}


def _approval_answered(state: State, event: Event, data: ApprovalAnswer, rules: Rules) -> None:
    """The human's first answer to a request is the answer (the agent hears only that one); a later answer, or one
    from anyone but the human, is counted and changes nothing."""
    request = data.get("request")
    if not isinstance(request, str):
        return
    if event.get("from") != HUMAN or request in state["answered_ids"]:
        state["counts"]["ignored_answers"] = state["counts"].get("ignored_answers", 0) + 1
        return
    approval = state["approvals"].pop(request, None)
    if approval is None:  # an answer to a request never seen (status, answered, by and note are set below)
        approval = {"question": None, "options": None, "from": None, "asked": None, "status": APPROVAL_PENDING,
                    "answered": None, "by": None, "note": None}
    status = "granted" if event["type"] == "approval.granted" else "denied"
    # `answer_seq` tells the command that wrote an answer whether its answer is the one that counts; `evidence` is
    # where the answer was given (provenance.py), for the doubtful-evidence mark in status
    approval.update({"status": status, "answered": event.get("ts"), "by": event.get("from"), "note": data.get("note"),
                     "answer_seq": event.get("seq"), "evidence": kept_evidence(data.get("evidence"))})
    keep_recent(state["answered"], request, approval, state["totals"]["approvals"], status, rules.kept_finished)
    index_finished(state["answered_ids"], request, status == "granted", rules)


def _objective(state: State, event: Event, data: Said, rules: Rules) -> None:
    state["objective"] = {"text": data.get("text"), "by": event.get("from"), "ts": event.get("ts")}


def _opened(state: State, event: Event, data: SessionOpened, rules: Rules) -> None:
    state["session"] = event.get("session")
    state["opened"] = event.get("ts")
    if state["objective"] is None and isinstance(data.get("objective"), str):
        state["objective"] = {"text": data["objective"], "by": event.get("from"), "ts": event.get("ts")}


def _closed(state: State, event: Event, data: SessionClosed, rules: Rules) -> None:
    state["closed"] = event.get("ts")


def _coordinator(state: State, event: Event, data: dict[str, Any], rules: Rules) -> None:
    status = {"started": "running", "status": "running", "stopped": "stopped"}[event["type"].split(".")[1]]
    coordinator = state["coordinator"]
    if status == "running" and coordinator.get("status") != "running":
        coordinator["since"] = event.get("ts")
    coordinator.update({"status": status, "last_seen": event.get("ts"), "by": event.get("from"),
                        "origin": event.get("origin")})
    coordinator.update(_told(data))
    origin = event.get("origin")
    if isinstance(origin, str):  # each machine's own, for the liveness of machines (replication)
        machine = state["coordinators"].setdefault(origin, {})
        if event["type"] == "coordinator.started":
            _outage(machine, event.get("ts"))
        if status == "running" and machine.get("status") != "running":
            machine["since"] = event.get("ts")
        # `heard`: when this machine got it, by its own clock (`rts`, set by the replicator), so that another
        # machine's clock being off does not make it look silent (or alive) for longer than it was
        machine.update({"status": status, "last_seen": event.get("ts"), "by": event.get("from"),
                        "heard": event.get("rts") or event.get("ts")})
        machine.update(_told(data))


#: Each machine's coordinator's last outages kept (status shows them: with hooks over HTTP, no tool call was
#: recorded then). Per machine only: one machine's coordinator starting says nothing of another's.
MAX_OUTAGES = 10


def _outage(coordinator: Coordinator, started: str | None) -> None:
    """A machine's coordinator starts where one ran before on it in the session: the time between the last word of
    the one before (its last status, or its stop) and this start is an outage, kept in `outages` (the last
    MAX_OUTAGES)."""
    last = coordinator.get("last_seen")
    if coordinator.get("status") not in ("running", "stopped") or not isinstance(last, str) \
            or not isinstance(started, str):
        return
    outages = coordinator.setdefault("outages", [])
    outages.append({"from": last, "to": started})
    del outages[:-MAX_OUTAGES]


def _told(data: dict[str, Any]) -> Coordinator:
    """What a coordinator's event says of it (`pid`, `host`, `reason`), in the event's order."""
    # from the event as it came (coordinator.started, .status and .stopped each have some of these): a cast, as the
    # fold keeps what an event says without checking its kind
    return cast("Coordinator", {key: value for key, value in data.items() if key in ("pid", "host", "reason")})


HANDLERS: dict[str, Handler] = {
    "insight.shared": _insight, "message.broadcast": _broadcast, "approval.requested": _approval_requested,
    "approval.granted": _approval_answered,
    "approval.denied": _approval_answered, "objective.set": _objective, "objective.updated": _objective,
    "session.opened": _opened, "session.closed": _closed, "coordinator.started": _coordinator,
    "coordinator.status": _coordinator, "coordinator.stopped": _coordinator,
}
