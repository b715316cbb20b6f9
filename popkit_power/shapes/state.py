"""The shape of the projected state, as `TypedDict`s, so that `mypy --strict` checks every field name a reader
spells: `state["agnets"]` and `task["ownr"]` fail the type check. (A misspelt key given to `.get()` does not: mypy
answers it with `object`. A subscript is checked; `.get` is for the keys an entry may lack.) The events' shapes are
in shapes/events.py.

These are types only: at run time the state stays plain dicts (a snapshot is `orjson.dumps(state)`). Every module
imports this one only under `TYPE_CHECKING` (building the TypedDicts costs milliseconds); `fold/model.py` names
`State` a plain dict at run time.

The state (`fold/model.py`, `new_state`) holds what the fold wrote: the keys every entry of a kind has are required,
the ones only some get (an agent's `pid` when its join said so, a task's `owner_was_on` once taken) are in the
`total=False` part. Values copied from events are typed as the protocol (`protocol.EVENT_TYPES`) says; the fold still
checks the kinds it depends on, since a record from another writer may not hold to it. tests/test_shapes.py checks
the entries of a folded state against these shapes.
"""

from __future__ import annotations

from typing import Any, TypedDict


class LastMessage(TypedDict):
    """What an agent said last (a broadcast, a direct message or an insight), its text cut to MAX_KEPT_TEXT."""

    text: str
    ts: str | None
    type: str | None
    to: str | None


class _AgentKept(TypedDict):
    name: str
    status: str
    joined: str | None
    last_seen: str | None
    progress: float | None
    current_task: str | None
    files_touched: list[str]
    tool_counts: dict[str, int]
    tool_calls: int
    work_calls: int
    failures: int
    last_message: LastMessage | None


class Agent(_AgentKept, total=False):
    """One agent (`state["agents"][key]`): the fields above from when it is first heard of; those below from its
    join (as its `agent.joined` said), its leaving or its being declared lost."""

    origin: str | None
    claude_session: str
    agent_id: str
    agent_type: str
    parent: str
    pid: int
    pid_start: int
    host: str
    cwd: str
    left_reason: str | None
    lost_reason: str | None


class _TaskKept(TypedDict):
    title: str
    status: str
    owner: str | None
    attempts: int
    result: str | None
    created: str | None
    created_by: str | None
    parent: str | None
    updated: str | None


class Task(_TaskKept, total=False):
    """An open task (`state["tasks"][id]`); below, what only some tasks get: what its taker worked on before
    (`owner_was_on`), who held it before it was orphaned, why it was parked."""

    owner_was_on: str | None
    previous_owner: str | None
    parked_reason: str | None


class FinishedTask(TypedDict):
    """A finished task among the most recent ones (`state["finished"][id]`), its result cut to MAX_KEPT_TEXT."""

    title: str
    status: str
    owner: str | None
    completed_by: str | None
    result: str | None
    attempts: int
    previous_owner: str | None
    parent: str | None
    created: str | None
    finished: str | None


_ApprovalKept = TypedDict("_ApprovalKept", {
    "question": str | None, "options": list[str] | None, "from": str | None, "asked": str | None,
    "status": str, "answered": str | None, "by": str | None, "note": str | None,
})


class Approval(_ApprovalKept, total=False):
    """An approval request (`state["approvals"][request]`, pending) or an answered one (`state["answered"]`): an
    answer adds the seq of the answer that counts and where it was given (`provenance.kept_evidence`)."""

    answer_seq: int | None
    evidence: dict[str, Any] | None


#: One kept insight (`state["insights"]`): `key` its normalized form, `dup_of` the id of the insight it repeats.
Insight = TypedDict("Insight", {
    "id": str | None, "seq": int | None, "from": str | None, "text": str, "tags": list[str],
    "ts": str | None, "key": str, "dup_of": str | None,
})
#: One of the session's most recent broadcasts (`state["broadcasts"]`), for the welcome of agents that join later.
Broadcast = TypedDict("Broadcast", {"seq": int | None, "from": str | None, "text": str, "ts": str | None})


class Conflict(TypedDict):
    """Two or more live agents wrote one file within the conflict window (`state["conflicts"]`)."""

    file: str | None
    agents: list[str]
    seq: int | None
    ts: str | None


class Objective(TypedDict):
    """The session's objective (`state["objective"]`) and who set it when."""

    text: str | None
    by: str | None
    ts: str | None


class Coordinator(TypedDict, total=False):
    """The coordinator's health (`state["coordinator"]`, and each machine's in `state["coordinators"][origin]`):
    `status` is none, running or stopped; `heard` (machines only) is when this machine got its last word, by its own
    clock (the replicator's `rts`)."""

    status: str
    since: str | None
    last_seen: str | None
    by: str | None
    origin: str | None
    heard: str | None
    pid: int
    host: str
    reason: str
    outages: list[dict[str, str]]  # {"from": the last word of one, "to": the start of the next} (fold/exchange.py)


class Totals(TypedDict):
    """How many tasks and approvals finished with each status (`state["totals"]`), kept or not; how many departed
    agents left the state, by their status (left, lost)."""

    tasks: dict[str, int]
    approvals: dict[str, int]
    agents: dict[str, int]


#: A task transition as its task's log keeps it (fold/tasks.py, `_logged`): what a transition reads of its event, so
#: that it can be applied again in the server's order.
LoggedTransition = TypedDict("LoggedTransition", {
    "id": str | None, "type": str, "from": str | None, "ts": str | None, "data": dict[str, Any],
})

#: A `task_logs` entry: [the server's place or None, journal seq, LoggedTransition] (a JSON list, so not a tuple)
LogEntry = list[Any]


class State(TypedDict):
    """The projected state of a session (`fold/model.py`, `new_state`)."""

    seq: int
    session: str | None
    opened: str | None
    closed: str | None
    objective: Objective | None
    agents: dict[str, Agent]
    tasks: dict[str, Task]
    finished: dict[str, FinishedTask]
    departed: list[str]  # departed agents still in `agents`, by when they departed (fold/agents.py, `_departed`)
    finished_ids: dict[str, int]  # finished tasks' ids (the most recent MAX_FINISHED_IDS): 1 completed, 0 failed
    answered_ids: dict[str, int]  # answered requests' ids (as many): 1 granted, 0 denied
    departed_ids: dict[str, int]  # departed agents' keys no longer in `agents` (as many): 1 left, 0 lost
    orphans: list[str]
    insights: list[Insight]
    broadcasts: list[Broadcast]
    approvals: dict[str, Approval]
    answered: dict[str, Approval]
    conflicts: list[Conflict]
    writes: dict[str, dict[str, float]]  # file -> {agent: when it last wrote it, in seconds}
    coordinator: Coordinator
    coordinators: dict[str, Coordinator]
    totals: Totals
    counts: dict[str, int]  # events folded by type, and `invalid` and `ignored_answers`
    task_logs: dict[str, list[LogEntry] | None]  # None: too long to replay
    ordered: bool
