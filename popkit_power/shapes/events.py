"""The shapes of the events, as `TypedDict`s: the envelope (`Event`) and the data of every event type
(`DATA_SHAPES`), as protocol.EVENT_TYPES lists them (tests/test_shapes.py checks that they agree), so that a handler
of the fold, or the hook building a record, that misspells a field fails the type check.

Types only, imported under `TYPE_CHECKING` (see shapes/state.py): at run time an event is the dict read from the
journal, and a handler takes the shape of the types it is registered for (projector.apply checks the type and the
sender; the handlers check the kinds of the rest, since a record from another writer may not hold to the protocol).
"""

from __future__ import annotations

from typing import Any, TypedDict

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
