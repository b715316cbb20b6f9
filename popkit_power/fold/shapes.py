"""The shapes of the projected state and of the events, as `TypedDict`s, so that `mypy --strict` checks every field
name a reader spells (`state["agnets"]` and `task["ownr"]` fail the type check).

These are types only: at run time the state and the events stay plain dicts (a snapshot is `orjson.dumps(state)`),
and nothing here is called by the fold. The hook's modules import this one only under `TYPE_CHECKING`; the fold's
`model` imports it (off the hook's path) so that `State` and `Event` can still be imported from `projector`.

The state (`fold/model.py`, `new_state`) holds what the fold wrote: the keys of an entry that every entry has are
required, the ones only some get (an agent's `pid` when its join said so, a task's `owner_was_on` once taken) are in
the `total=False` part. Values copied from events are typed as the protocol (`protocol.EVENT_TYPES`) says; the fold
still checks the kinds it depends on, since a record from another writer may not hold to it.

An event's `data` has one shape per type (`DATA_SHAPES`, checked against `protocol.EVENT_TYPES` by
tests/test_shapes.py); a handler takes the shape of the types it is registered for.
"""

from __future__ import annotations

from typing import Any, TypedDict

# -- the state -------------------------------------------------------------------------------------------------------


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


class Totals(TypedDict):
    """How many tasks and approvals finished with each status (`state["totals"]`), kept or not."""

    tasks: dict[str, int]
    approvals: dict[str, int]


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


# -- the events ------------------------------------------------------------------------------------------------------

#: A journal record (protocol.py): `protocol.validate` makes sure of v, id, ts, origin, session, from, ch, type and
#: data, and the journal adds seq and crc; but a task log's transition (`LoggedTransition`) is folded as an event too,
#: and a record from another writer is only checked by the fold, so no key is required here. `data`'s shape depends
#: on the type (`DATA_SHAPES`).
Event = TypedDict("Event", {
    "seq": int, "v": int, "id": str, "ts": str, "origin": str, "session": str, "from": str, "ch": str, "type": str,
    "to": str, "data": dict[str, Any], "crc": str,
    # set by the replicator on an event pulled from another machine: the server's number, and when it was received
    "oseq": int, "rts": str,
}, total=False)


class Evidence(TypedDict, total=False):
    """Where the process that sent an event as the human runs (`provenance.evidence`): added to the data of every
    event this machine sends as the human (session.py), whatever its type. Fields missing from older versions."""

    pid: int | None
    ppid: int | None
    uid: int | None
    program: str | None
    tty: str | None
    controlling_terminal: bool | None
    own_session: bool
    terminal_age: float | None
    ancestors: list[str] | None
    claude_ancestor: str | None
    claude_session: str | None
    agent_environment: list[str]
    oversized: bool


# The data of each event type, as protocol.EVENT_TYPES says (required there, required here).

class _AgentJoinedRequired(TypedDict):
    name: str


class AgentJoined(_AgentJoinedRequired, total=False):
    claude_session: str
    agent_id: str
    agent_type: str
    parent: str
    pid: int
    pid_start: int
    host: str
    cwd: str


class _AgentHeartbeatRequired(TypedDict):
    tool_calls: int


class AgentHeartbeat(_AgentHeartbeatRequired, total=False):
    files_touched: list[str]
    tool_counts: dict[str, int]
    current_task: str | None
    progress: float


class _AgentToolRequired(TypedDict):
    tool: str
    ok: bool


class AgentTool(_AgentToolRequired, total=False):
    file: str
    ms: float
    error: str
    power: bool  # the call only ran popkit-power itself: counted, but not work


class NoData(TypedDict):
    """agent.idle: nothing."""


class Reason(TypedDict, total=False):
    """agent.left, coordinator.stopped."""

    reason: str


class _AgentLostRequired(TypedDict):
    agent: str
    reason: str


class AgentLost(_AgentLostRequired, total=False):
    evidence: dict[str, Any]


class TaskNamed(TypedDict):
    """What every task event names."""

    task: str


class _TaskCreatedRequired(TaskNamed):
    title: str


class TaskCreated(_TaskCreatedRequired, total=False):
    owner: str
    parent: str


class TaskClaimed(TaskNamed, total=False):
    round: int  # the task's attempts when the claimant looked


class _TaskAssignedRequired(TaskNamed):
    agent: str


class TaskAssigned(_TaskAssignedRequired, total=False):
    holder: str
    evidence: Evidence  # sent by the human


class _TaskCompletedRequired(TaskNamed):
    result: str


class TaskCompleted(_TaskCompletedRequired, total=False):
    ok: bool
    holder: str


class _TaskOrphanedRequired(TaskNamed):
    agent: str


class TaskOrphaned(_TaskOrphanedRequired, total=False):
    context: dict[str, Any]


class _TaskParkedRequired(TaskNamed):
    reason: str


class TaskParked(_TaskParkedRequired, total=False):
    agent: str
    attempts: int


class TaskReleased(TaskNamed, total=False):
    reason: str
    holder: str


class Said(TypedDict):
    """message.broadcast, message.direct, objective.set, objective.updated, coordinator.command."""

    text: str


class _InsightSharedRequired(TypedDict):
    text: str


class InsightShared(_InsightSharedRequired, total=False):
    tags: list[str]


class _ApprovalRequestedRequired(TypedDict):
    request: str
    question: str


class ApprovalRequested(_ApprovalRequestedRequired, total=False):
    options: list[str]
    guard: dict[str, Any]


class _ApprovalAnswerRequired(TypedDict):
    request: str


class ApprovalAnswer(_ApprovalAnswerRequired, total=False):
    """approval.granted, approval.denied."""

    note: str
    evidence: Evidence  # sent by the human


class SessionOpened(TypedDict):
    objective: str


class SessionClosed(TypedDict, total=False):
    reason: str
    summary: dict[str, Any]


class CoordinatorStarted(TypedDict, total=False):
    pid: int
    host: str


class CoordinatorStatus(TypedDict, total=False):
    agents: int
    open_tasks: int


class FileConflict(TypedDict):
    file: str
    agents: list[str]


class _ArbiterDecidedRequired(TypedDict):
    contest: str
    event: str
    type: str


class ArbiterDecided(_ArbiterDecidedRequired, total=False):
    task: str
    agent: str
    origin: str
    claim_seq: int


class ArbiterOrdered(TypedDict):
    event: str
    task: str
    type: str
    origin: str
    seq: int


#: The data shape of every event type the protocol knows; `evidence` (provenance) is the one field the protocol does
#: not list, since it is added to whatever the human sends.
DATA_SHAPES: dict[str, type] = {
    "agent.joined": AgentJoined, "agent.heartbeat": AgentHeartbeat, "agent.tool": AgentTool, "agent.idle": NoData,
    "agent.left": Reason, "agent.lost": AgentLost,
    "task.created": TaskCreated, "task.claimed": TaskClaimed, "task.assigned": TaskAssigned,
    "task.completed": TaskCompleted, "task.orphaned": TaskOrphaned, "task.parked": TaskParked,
    "task.released": TaskReleased,
    "insight.shared": InsightShared, "message.broadcast": Said, "message.direct": Said,
    "approval.requested": ApprovalRequested, "approval.granted": ApprovalAnswer, "approval.denied": ApprovalAnswer,
    "objective.set": Said, "objective.updated": Said, "session.opened": SessionOpened, "session.closed": SessionClosed,
    "coordinator.started": CoordinatorStarted, "coordinator.status": CoordinatorStatus, "coordinator.stopped": Reason,
    "coordinator.command": Said, "file.conflict": FileConflict, "arbiter.decided": ArbiterDecided,
    "arbiter.ordered": ArbiterOrdered,
}
