"""Promises of docs/design.md, "What the state keeps on a long run", that no other test pinned."""

from __future__ import annotations

from support import Timeline

from popkit_power.fold.model import Rules
from popkit_power.projector import project


def test_the_keys_of_departed_agents_are_bounded_too() -> None:
    """`departed_ids` keeps the newest keys only (design.md: "their keys kept in `departed_ids` (the newest
    20,000)"), as `finished_ids` does: 1 for one that left, 0 for one declared lost."""
    timeline = Timeline()
    for number in range(5):
        timeline.add("agent.joined", f"s{number}:main", name=f"s{number}")
        if number % 2:
            timeline.add("agent.lost", "coordinator", agent=f"s{number}:main", reason="gone")
        else:
            timeline.add("agent.left", f"s{number}:main", reason="ended")
    state = project(timeline.events, Rules(kept_departed=1, kept_finished_ids=3))
    assert state["departed_ids"] == {"s1:main": 0, "s2:main": 1, "s3:main": 0}
    assert list(state["agents"]) == ["s4:main"]


def test_a_pruned_agent_declared_lost_that_speaks_again_comes_back_with_a_new_entry() -> None:
    """design.md: "One declared lost that speaks again was not dead after all, and comes back with a new entry"
    (without joining again, unlike one that left), and is no longer counted among the agents gone."""
    timeline = Timeline()
    timeline.add("agent.joined", "back:main", name="back")
    timeline.add("agent.tool", "back:main", tool="Edit", ok=True, file="a.py")
    timeline.add("agent.lost", "coordinator", agent="back:main", reason="gone")
    for number in range(3):
        timeline.add("agent.joined", f"s{number}:main", name=f"s{number}")
        timeline.add("agent.left", f"s{number}:main", reason="ended")
    rules = Rules(kept_departed=2)
    gone = project(timeline.events, rules)
    assert "back:main" not in gone["agents"] and gone["departed_ids"]["back:main"] == 0
    assert gone["totals"]["agents"] == {"left": 1, "lost": 1}
    timeline.add("agent.heartbeat", "back:main", tool_calls=9)
    back = project(timeline.events, rules)
    assert back["agents"]["back:main"]["status"] == "active"
    assert back["agents"]["back:main"]["files_touched"] == [], "a new entry: a.py was its old one's"
    assert "back:main" not in back["departed_ids"] and back["totals"]["agents"] == {"left": 1}
