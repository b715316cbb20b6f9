"""Attacks on the bounded state (departed agents leaving `agents`, finished ids in an index), kept as tests."""

from __future__ import annotations

from typing import Any

from test_task_order_attacks import event, journal, placed

from popkit_power.coordinator.decide import Rules as DecideRules
from popkit_power.coordinator.decide import decide
from popkit_power.fold.model import Rules
from popkit_power.projector import project

SMALL = Rules(kept_departed=1)
DECIDE = DecideRules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3,
                     max_reassign_attempts=2)


def orphaned(state: dict[str, Any], origin: str) -> set[str]:
    """The tasks this machine's coordinator would hand over now."""
    return {data["task"] for batch in decide(state, 1.9e9, {}, DECIDE, origin=origin) for kind, data in batch
            if kind in ("task.orphaned", "task.parked")}


def test_a_task_the_server_gives_to_an_agent_pruned_here_is_still_handed_over() -> None:
    """m1's x claims t (pulled by m0 after m0's own y claimed it), then leaves; on m0 x held nothing when it left, so
    the next departure pruned it. The server placed x's claim first: t is x's. m1 kept x (it held t when it left)
    and hands t over; m0 had no entry for x and no departed holder, so t stayed with an agent gone from the state."""
    create = event("m0", 1, "task.created", "human", 1, task="t", title="x")
    y_claims = event("m0", 2, "task.claimed", "y", 3, task="t", round=0)
    x_claims = event("m1", 1, "task.claimed", "x", 2, task="t", round=0)
    x_joined = event("m1", 2, "agent.joined", "x", 2, name="x")
    x_left = event("m1", 3, "agent.left", "x", 4, reason="ended")
    z = [event("m0", 3, "agent.joined", "z", 5, name="z"), event("m0", 4, "agent.left", "z", 6, reason="ended")]
    facts = placed([create, x_claims, y_claims])
    for e in (x_joined, x_left, *z):
        e["ch"] = "presence"
    m0 = project(journal([create, y_claims], [x_joined, x_claims, x_left], z, facts, mine="m0"), SMALL)
    m1 = project(journal([create], [x_joined, x_claims, x_left], [y_claims], z, facts, mine="m1"), SMALL)
    assert m0["tasks"]["t"]["owner"] == m1["tasks"]["t"]["owner"] == "x"
    assert orphaned(m1, "m1") == {"t"}
    assert orphaned(m0, "m0") == {"t"}, "the leader's coordinator must hand t on"


def test_a_task_assigned_to_an_agent_pruned_here_is_still_handed_over() -> None:
    """m1's coordinator gives t to x before it hears that x left (m0's event); on m0 x left and was pruned before
    the assignment arrived. Before the bound x stayed (status left) and t was handed on."""
    create = event("m0", 1, "task.created", "human", 1, task="t", title="x")
    x = [event("m0", 2, "agent.joined", "x", 2, name="x"), event("m0", 3, "agent.left", "x", 3, reason="ended")]
    z = [event("m0", 4, "agent.joined", "z", 4, name="z"), event("m0", 5, "agent.left", "z", 5, reason="ended")]
    for e in (*x, *z):
        e["ch"] = "presence"
    assign = event("m1", 1, "task.assigned", "coordinator", 6, task="t", agent="x")
    m0 = project(journal([create], x, z, [assign], mine="m0"), SMALL)
    full = project(journal([create], x, z, [assign], mine="m0"), SMALL.everything())
    assert orphaned(full, "m0") == {"t"}
    assert m0["tasks"]["t"]["owner"] == "x"
    assert orphaned(m0, "m0") == {"t"}, "t must not stay with an agent gone from the state"
