"""The fold drops the task logs of finished tasks no longer kept without scanning every log at each completion
(fold/tasks.py, `_forget_logs`), and leaves exactly the state of the plain rule it replaces: after every
`task.completed` whose handlers all ran, drop each log whose task is neither open nor among the kept finished ones.

The plain rule is kept here as the reference (`fold_by_scan`); random streams of task transitions (created, claimed,
assigned, completed, failed, orphaned, parked, released) and agents joining, leaving and being lost, some pulled from
another machine and placed by the server (`oseq`, `arbiter.ordered`), must give byte-identical states after every
event. Few finished tasks are kept (patched) so that streams of a few dozen events push some out.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from test_projector import orphans_as_the_tasks_say

from popkit_power.projector import Rules, State, apply, new_state

AGENTS = ["a1", "a2", "a3", "human", "coordinator"]
TASKS = [f"t{n}" for n in range(8)]
KINDS = ["task.created", "task.claimed", "task.assigned", "task.completed", "task.failed", "task.orphaned",
         "task.parked", "task.released", "agent.joined", "agent.left", "agent.lost", "arbiter.ordered"]


def fold_by_scan(state: State, event: dict[str, Any], rules: Rules) -> None:
    """The plain rule: fold the event, then, for a completion whose handlers all ran, scan every log."""
    invalid = state["counts"].get("invalid", 0)
    apply(state, event, rules)
    if event.get("type") == "task.completed" and state["counts"].get("invalid", 0) == invalid:
        logs = state["task_logs"]
        for gone in [key for key in logs if key not in state["tasks"] and key not in state["finished"]]:
            del logs[gone]


step = st.tuples(st.sampled_from(KINDS), st.sampled_from(AGENTS), st.sampled_from(TASKS), st.sampled_from(AGENTS),
                 st.booleans(), st.integers(0, 60))


def events_of(steps: list[tuple[str, str, str, str, bool, int]]) -> list[dict[str, Any]]:
    """Journal records for the drawn steps: a failure is a completion with ok false; a pulled event carries an
    `oseq`; `arbiter.ordered` places an earlier transition (by index among the events so far)."""
    events: list[dict[str, Any]] = []
    oseq = 0
    for seq, (kind, sender, task, other, pulled, pick) in enumerate(steps, start=1):
        data: dict[str, Any] = {"task": task}
        event_type = kind
        if kind == "task.failed":
            event_type, data["ok"] = "task.completed", False
        elif kind == "task.completed":
            data["result"] = f"done {seq}"
        elif kind == "task.created":
            data["title"] = f"title {task}"
            if pulled:
                data["owner"] = other
        elif kind in ("task.assigned", "task.orphaned", "task.parked"):
            data["agent"] = other
        elif kind.startswith("agent."):
            data = {"name": sender} if kind == "agent.joined" else {"reason": "test"}
            if kind == "agent.lost":
                data["agent"] = other
        elif kind == "arbiter.ordered":
            placed = [event for event in events if event["type"].startswith("task.")]
            if not placed:
                continue
            target = placed[pick % len(placed)]
            oseq += 1
            data = {"task": target["data"]["task"], "event": target["id"], "type": target["type"]}
            events.append({"seq": seq, "id": f"e{seq}", "type": kind, "from": "server", "ts": f"t{seq:04d}",
                           "oseq": oseq, "data": data})
            continue
        event = {"seq": seq, "id": f"e{seq}", "type": event_type, "from": sender, "ts": f"t{seq:04d}",
                 "data": data}
        if pulled and kind.startswith("task.") and pick % 3 == 0:
            oseq += 1
            event["oseq"] = oseq
        events.append(event)
    return events


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=80), st.integers(1, 4))
def test_logs_index_agrees_with_the_plain_scan(steps: list[tuple[str, str, str, str, bool, int]], kept: int) -> None:
    rules = Rules(kept_finished=kept)
    fast, slow = new_state(), new_state()
    for event in events_of(steps):
        apply(fast, orjson.loads(orjson.dumps(event)), rules)
        fold_by_scan(slow, orjson.loads(orjson.dumps(event)), rules)
        assert orjson.dumps(fast) == orjson.dumps(slow), event
        assert sorted(fast["orphans"]) == orphans_as_the_tasks_say(fast), event


def test_a_completion_pushes_the_oldest_finished_tasks_log_out() -> None:
    """The point of the index: the log of a finished task goes when the task leaves `finished`, not later."""
    rules = Rules(kept_finished=1)
    state = new_state()
    for seq, (kind, task) in enumerate([("task.created", "t1"), ("task.completed", "t1"),
                                         ("task.created", "t2"), ("task.completed", "t2")], start=1):
        event = {"seq": seq, "id": f"e{seq}", "type": kind, "from": "human", "ts": "t", "data": {"task": task}}
        apply(state, event, rules)
        if seq == 2:
            assert list(state["task_logs"]) == ["t1"]
    assert list(state["finished"]) == ["t2"]
    assert list(state["task_logs"]) == ["t2"]
