"""The fold's task transitions in the replication server's order (fold/tasks.py): two journals holding the same
transitions in different orders, with the same places from the server, fold to the same tasks and current tasks;
one journal without places folds as it always did."""

from __future__ import annotations

import copy
from typing import Any

from support import Timeline

from popkit_power.projector import project

ARBITER = "arbiter"


def transitions() -> list[dict[str, Any]]:
    """Task t1 made; alice (machine A) releases it while bob (machine B), looking at it as claimed by alice, then open,
    claims it; carol is assigned t2 and completes it: as one journal would hold them, events with seqs."""
    timeline = Timeline()
    timeline.add("task.created", "human", task="t1", title="the lexer")
    timeline.add("task.claimed", "alice:main", task="t1", round=0)
    timeline.add("task.created", "human", task="t2", title="the parser")
    timeline.add("task.released", "alice:main", task="t1")
    timeline.add("task.claimed", "bob:main", task="t1", round=1)
    timeline.add("task.assigned", "human", task="t2", agent="carol:main")
    timeline.add("task.claimed", "carol:main", task="t1", round=1)
    return timeline.events


def placed(events: list[dict[str, Any]], order: list[int], first_oseq: int = 100) -> list[dict[str, Any]]:
    """The server's places (`arbiter.ordered`, pulled: with an oseq) for `events` (by index), in `order`."""
    facts = []
    for n, index in enumerate(order):
        event = events[index]
        facts.append({"seq": 0, "v": 1, "id": f"fact{n}", "ts": event["ts"], "origin": ARBITER,
                      "session": event["session"], "from": ARBITER, "ch": "coordinator", "type": "arbiter.ordered",
                      "oseq": first_oseq + n, "data": {"event": event["id"], "task": event["data"]["task"],
                                                       "type": event["type"], "origin": event["origin"],
                                                       "seq": event["seq"]}})
    return facts


def journal(events: list[dict[str, Any]], arrival: list[int], facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One machine's journal: the three agents joining, the events in `arrival` order, then the places, renumbered
    as its own seqs."""
    joins = Timeline()
    for name in ("alice:main", "bob:main", "carol:main"):
        joins.add("agent.joined", name, name=name)
    held = joins.events + [copy.deepcopy(events[index]) for index in arrival] + copy.deepcopy(facts)
    for seq, event in enumerate(held, 1):
        event["seq"] = seq
    return held


def tasks_of(state: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": {key: (task["status"], task["owner"], task["attempts"]) for key, task in state["tasks"].items()},
            "current": {key: agent["current_task"] for key, agent in state["agents"].items()}}


def test_two_arrival_orders_with_the_same_places_fold_to_the_same_tasks() -> None:
    events = transitions()
    order = [0, 1, 2, 3, 5, 6, 4]  # the server saw carol's claim before bob's
    facts = placed(events, order)
    in_order = project(journal(events, list(range(7)), facts))
    other = project(journal(events, [0, 2, 5, 1, 4, 3, 6], facts))  # bob's claim came before alice's release
    assert tasks_of(in_order) == tasks_of(other)
    assert tasks_of(in_order)["tasks"] == {"t1": ("claimed", "carol:main", 2), "t2": ("assigned", "carol:main", 1)}
    assert tasks_of(in_order)["current"] == {"alice:main": None, "bob:main": None, "carol:main": "t1"}, \
        "carol took t1 after t2 in the server's order"
    assert in_order["ordered"] and other["ordered"]


def test_without_places_the_journal_order_rules_as_before() -> None:
    """One machine: no place ever comes; bob's claim, first in the journal after the release, wins, and his round
    is not checked."""
    state = project(journal(transitions(), list(range(7)), []))
    assert tasks_of(state)["tasks"]["t1"] == ("claimed", "bob:main", 2)
    assert not state["ordered"]


def test_a_claim_from_an_older_look_loses_once_the_server_orders() -> None:
    """bob claims t1 for round 0 (he saw it open, before alice's claim): the server placed it after alice's claim
    and release, and it loses there as the contest of round 0 did, though t1 is open at that point."""
    timeline = Timeline()
    timeline.add("task.created", "human", task="t1", title="t")
    timeline.add("task.claimed", "alice:main", task="t1", round=0)
    timeline.add("task.released", "alice:main", task="t1")
    timeline.add("task.claimed", "bob:main", task="t1", round=0)
    events = timeline.events
    state = project(journal(events, [0, 1, 2, 3], placed(events, [0, 1, 2, 3])))
    assert tasks_of(state)["tasks"]["t1"] == ("open", None, 1)
    assert project(journal(events, [0, 1, 2, 3], []))["tasks"]["t1"]["owner"] == "bob:main", "one machine: as before"


def test_a_transition_placed_before_a_completion_that_came_first_is_applied_before_it() -> None:
    """The completion was folded first here (the task left for `finished`); the server placed an assignment before
    it: the task is folded again in that order, so it is finished by the assignee."""
    timeline = Timeline()
    timeline.add("task.created", "human", task="t1", title="t")
    timeline.add("task.claimed", "alice:main", task="t1", round=0)
    timeline.add("task.assigned", "human", task="t1", agent="bob:main")
    timeline.add("task.completed", "bob:main", task="t1", ok=True, result="done")
    events = timeline.events
    facts = placed(events, [0, 1, 2, 3])
    late = project(journal(events, [0, 1, 3, 2], facts))  # the completion arrived before the assignment
    in_order = project(journal(events, [0, 1, 2, 3], facts))
    assert late["finished"]["t1"]["owner"] == in_order["finished"]["t1"]["owner"] == "bob:main"
    assert late["totals"] == in_order["totals"] and "t1" not in late["tasks"]


def test_heartbeats_do_not_set_the_current_task_once_the_server_orders() -> None:
    events = transitions()
    facts = placed(events, list(range(7)))
    timeline = Timeline()
    beat = timeline.add("agent.heartbeat", "carol:main", tool_calls=3, current_task="t9")
    before = project(journal([*events, beat], list(range(8)), facts))
    after = project([*journal(events, list(range(7)), facts), {**beat, "seq": 99}])
    assert before["agents"]["carol:main"]["current_task"] == after["agents"]["carol:main"]["current_task"] == "t2"


def test_the_server_orders_exactly_the_task_transitions_the_fold_applies() -> None:
    """The replication server places every task transition the fold knows, and nothing else: one list, and it is
    every task event of the protocol (a new task event left out would be applied in arrival order on each machine)."""
    from popkit_power.fold.tasks import TRANSITIONS
    from popkit_power.protocol import EVENT_TYPES
    from popkit_power.replication.effects import ORDERED_TYPES

    task_events = {kind for kind in EVENT_TYPES if kind.startswith("task.")}
    assert ORDERED_TYPES == set(TRANSITIONS) == task_events
    assert len(task_events) == 7, task_events
