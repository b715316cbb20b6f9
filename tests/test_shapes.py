"""The typed shapes of the state and the events (popkit_power/shapes/state.py, events.py) against what they
describe: the data of every event type against protocol.EVENT_TYPES, the entries of a folded state against their
TypedDicts, and mypy failing on a misspelt field."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import typing
from typing import Any

import pytest

from popkit_power import provenance
from popkit_power.projector import Rules, apply, new_state
from popkit_power.protocol import EVENT_TYPES, make_event
from popkit_power.shapes import events as event_shapes
from popkit_power.shapes import state as shapes

#: The one field the protocol does not list: the evidence added to whatever the human sends (session.py).
PROVENANCE = {"evidence"}
#: What each protocol kind may be typed as (the value's type, without None).
KINDS: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (float,), "boolean": (bool,),
                                      "array": (list,), "object": (dict,)}


def _kind_of(hint: Any) -> type:
    """The run-time class a field's type stands for (`list[str] | None` -> list; a TypedDict -> dict)."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        assert len(args) == 1, hint
        return _kind_of(args[0])
    if typing.is_typeddict(hint):
        return dict
    return typing.get_origin(hint) or hint


def test_every_event_type_has_a_data_shape():
    assert sorted(event_shapes.DATA_SHAPES) == sorted(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_a_data_shape_has_the_protocols_fields_required_as_the_protocol_says(event_type):
    shape: Any = event_shapes.DATA_SHAPES[event_type]
    fields = EVENT_TYPES[event_type][1]
    assert set(fields) <= set(shape.__annotations__)
    assert set(shape.__annotations__) - set(fields) <= PROVENANCE
    assert set(shape.__required_keys__) == {name for name, (_kind, required) in fields.items() if required}
    hints = typing.get_type_hints(shape)
    for name, (kind, _required) in fields.items():
        assert _kind_of(hints[name]) in KINDS[kind], f"{event_type} {name}: {hints[name]} is not {kind}"


def test_the_envelope_has_every_field_of_a_record():
    """A record as the journal holds it (make_event's envelope, plus seq and crc), and the replicator's marks."""
    event = make_event("message.direct", {"text": "hi"}, sender="a1", session="s1", origin="o1", to="a2")
    assert {*event, "seq", "crc", "oseq", "rts"} == set(event_shapes.Event.__annotations__)


def test_the_evidence_shape_has_every_field_the_library_records():
    assert {*provenance.evidence(os.environ), "oversized"} == set(event_shapes.Evidence.__annotations__)


def test_what_a_join_copies_into_the_agent_has_the_same_names_and_types():
    """fold/agents.py copies the join's fields into the agent by name (a cast there relies on this)."""
    joined, agent = typing.get_type_hints(event_shapes.AgentJoined), typing.get_type_hints(shapes.Agent)
    assert {name: agent.get(name) for name in joined} == joined


def _shape_check(entry: dict[str, Any], shape: Any, where: str) -> None:
    """Every key of `entry` is one of its shape's, and every required one is there."""
    assert isinstance(entry, dict), where
    keys = set(entry)
    assert keys <= set(shape.__annotations__), f"{where}: not in {shape.__name__}: {keys - set(shape.__annotations__)}"
    assert set(shape.__required_keys__) <= keys, f"{where}: missing {set(shape.__required_keys__) - keys}"


def _folded() -> dict[str, Any]:
    """A state that went through every kind of entry: agents joined, working, leaving and lost; tasks open,
    claimed, orphaned, parked and finished; insights, broadcasts, approvals asked and answered (one never asked),
    a conflict, the objective, the session and the coordinators of two machines."""
    steps: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        ("session.opened", "human", {"objective": "ship it"}, {}),
        ("coordinator.started", "coordinator", {"pid": 10, "host": "h1"}, {}),
        ("agent.joined", "a1", {"name": "one", "claude_session": "c1", "agent_id": "main", "agent_type": "general",
                                "parent": "p", "pid": 11, "pid_start": 5, "host": "h1", "cwd": "/w"}, {}),
        ("agent.joined", "a2", {"name": "two"}, {}),
        ("agent.tool", "a1", {"tool": "Edit", "ok": True, "file": "/w/x.py", "ms": 3.5}, {}),
        ("agent.tool", "a2", {"tool": "Write", "ok": False, "file": "/w/x.py", "error": "no"}, {}),
        ("agent.tool", "a2", {"tool": "Bash", "ok": True, "power": True}, {}),
        ("agent.heartbeat", "a1", {"tool_calls": 3, "files_touched": ["/w/y.py"], "tool_counts": {"Edit": 2},
                                   "progress": 0.5}, {}),
        ("task.created", "human", {"task": "t1", "title": "one", "parent": "t0"}, {}),
        ("task.created", "human", {"task": "t2", "title": "two", "owner": "a2"}, {}),
        ("task.claimed", "a1", {"task": "t1", "round": 0}, {}),
        ("task.created", "human", {"task": "t3", "title": "three"}, {}),
        ("task.assigned", "human", {"task": "t3", "agent": "a1", "holder": "nobody"}, {}),
        ("task.orphaned", "coordinator", {"task": "t3", "agent": "a1", "context": {"title": "three"}}, {}),
        ("task.parked", "coordinator", {"task": "t3", "reason": "lost too often", "attempts": 3}, {}),
        ("task.created", "human", {"task": "t4", "title": "four"}, {}),
        ("task.claimed", "a2", {"task": "t4"}, {}),
        ("task.released", "a2", {"task": "t4", "reason": "stuck"}, {}),
        ("task.completed", "a1", {"task": "t1", "result": "done", "ok": True}, {}),
        ("task.completed", "human", {"task": "t9", "result": "failed", "ok": False}, {}),
        ("insight.shared", "a1", {"text": "the cache ignores the locale", "tags": ["cache"]}, {}),
        ("insight.shared", "a2", {"text": "The cache ignores the LOCALE"}, {}),
        ("message.broadcast", "a1", {"text": "hello"}, {}),
        ("message.direct", "a2", {"text": "hi one"}, {"to": "a1"}),
        ("approval.requested", "a1", {"request": "r1", "question": "may I?", "options": ["yes", "no"]}, {}),
        ("approval.requested", "a2", {"request": "r2", "question": "and I?"}, {}),
        ("approval.granted", "human", {"request": "r1", "note": "go", "evidence": {"pid": 1, "tty": "/dev/pts/1"}},
         {}),
        ("approval.denied", "human", {"request": "r7"}, {}),
        ("objective.updated", "human", {"text": "ship it well"}, {}),
        ("file.conflict", "coordinator", {"file": "/w/z.py", "agents": ["a1", "a2"]}, {}),
        ("coordinator.status", "coordinator", {"agents": 2, "open_tasks": 2}, {}),
        ("coordinator.status", "coordinator", {"agents": 1},
         {"origin": "o2", "oseq": 1, "rts": "2026-12-01T10:00:09Z"}),
        ("arbiter.ordered", "coordinator", {"event": "e", "task": "t2", "type": "task.created", "origin": "o1",
                                            "seq": 9}, {"oseq": 2}),
        ("agent.idle", "a2", {}, {}),
        ("agent.left", "a2", {"reason": "done"}, {}),
        ("agent.lost", "coordinator", {"agent": "a1", "reason": "gone", "evidence": {"pid": 11}}, {}),
        ("coordinator.stopped", "coordinator", {"reason": "stop"}, {}),
        ("session.closed", "human", {"reason": "over"}, {}),
    ]
    state = new_state()
    for seq, (event_type, sender, data, extra) in enumerate(steps, 1):
        to = extra.pop("to", None)
        event = make_event(event_type, data, sender=sender, session="s1", origin=extra.pop("origin", "o1"), to=to,
                           ts=f"2026-12-01T10:00:{seq:02d}Z")
        apply(state, {"seq": seq, **event, **extra}, Rules())
    return state


def test_every_entry_of_a_folded_state_has_its_shape():
    state = _folded()
    assert state["counts"].get("invalid", 0) == 0
    _shape_check(state, shapes.State, "state")
    kinds = {"agents": shapes.Agent, "tasks": shapes.Task, "finished": shapes.FinishedTask,
             "approvals": shapes.Approval, "answered": shapes.Approval, "coordinators": shapes.Coordinator}
    for field, shape in kinds.items():
        assert state[field], f"the session leaves no {field}"
        for key, entry in state[field].items():
            _shape_check(entry, shape, f"{field}[{key}]")
    for field, shape in {"insights": shapes.Insight, "broadcasts": shapes.Broadcast,
                         "conflicts": shapes.Conflict}.items():
        assert state[field], f"the session leaves no {field}"
        for n, entry in enumerate(state[field]):
            _shape_check(entry, shape, f"{field}[{n}]")
    _shape_check(state["objective"], shapes.Objective, "objective")
    _shape_check(state["coordinator"], shapes.Coordinator, "coordinator")
    _shape_check(state["totals"], shapes.Totals, "totals")
    assert {key for agent in state["agents"].values() for key in agent} == set(shapes.Agent.__annotations__)
    assert {key for task in state["tasks"].values() for key in task} == set(shapes.Task.__annotations__)
    logged = [entry for log in state["task_logs"].values() for entry in log or ()]
    assert logged
    for entry in logged:
        assert len(entry) == 3
        _shape_check(entry[2], shapes.LoggedTransition, "task_logs")


# -- mypy ------------------------------------------------------------------------------------------------------------

READER = '''
    from popkit_power.shapes.state import State


    def owner(state: State, task_id: str) -> str | None:
        return state["tasks"][task_id]["{owner}"]


    def names(state: State) -> list[str]:
        return [agent["name"] for agent in state["{agents}"].values()]


    def asked(state: State, request: str) -> str | None:
        return state["answered"][request]["{question}"]
'''


def _mypy(tmp_path: Any, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "reader.py"
    path.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir",
                           str(tmp_path / "mypy-cache"), str(path)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path, env={**os.environ, "MYPYPATH": ""})


def test_mypy_fails_on_a_misspelt_field_and_passes_the_right_one(tmp_path):
    """mypy is a test dependency (pyproject's `test` extra): without it this fails rather than skips, since it is
    the proof that the shapes catch a misspelt field."""
    wrong = _mypy(tmp_path, READER.format(owner="ownr", agents="agnets", question="qestion"))
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    for misspelt in ("ownr", "agnets", "qestion"):
        assert f'has no key "{misspelt}"' in wrong.stdout, wrong.stdout
    right = _mypy(tmp_path, READER.format(owner="owner", agents="agents", question="question"))
    assert right.returncode == 0, right.stdout + right.stderr
