"""The events written into the journal: the envelope, the six channels and the known event types.

Every journal record is one JSON object (journal/SPEC.md, journal/event.schema.json):

    {"seq": 7, "v": 1, "id": "…", "ts": "2026-11-24T10:00:00.123456Z", "origin": "host-1a2b3c",
     "session": "20261124-100000-ab12cd", "from": "<sender>", "ch": "results", "type": "task.completed",
     "to": "<agent>"?, "data": {…}, "crc": "0a1b2c3d"}

`seq` and `crc` are given by the journal when the record is appended; the rest is built here. Unknown types and
unknown fields (from newer versions) are kept and ignored, never fatal: validation only checks what it knows.
This module is on the hook's hot path, so it imports only the project's lean modules.
"""

from __future__ import annotations

from .errors import ProtocolError
from .keys import new_id
from .timestamps import utc_now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

SCHEMA_VERSION = 1

BROADCAST, HEARTBEAT, RESULTS, INSIGHTS, COORDINATOR, HUMAN = (
    "broadcast", "heartbeat", "results", "insights", "coordinator", "human",
)
#: The seed's six pub/sub channels, in its order; `pop:{channel}` outside the journal.
CHANNELS = (BROADCAST, HEARTBEAT, RESULTS, INSIGHTS, COORDINATOR, HUMAN)

_STR, _INT, _NUM, _BOOL, _LIST, _DICT = "string", "integer", "number", "boolean", "array", "object"

#: type -> (channel, {field: (kind, required)}) for every type this version knows.
EVENT_TYPES: dict[str, tuple[str, dict[str, tuple[str, bool]]]] = {
    # agents
    "agent.joined": (HEARTBEAT, {"name": (_STR, True), "claude_session": (_STR, False), "agent_id": (_STR, False),
                                 "agent_type": (_STR, False), "parent": (_STR, False), "pid": (_INT, False),
                                 "pid_start": (_INT, False), "host": (_STR, False), "cwd": (_STR, False)}),
    "agent.heartbeat": (HEARTBEAT, {"tool_calls": (_INT, True), "files_touched": (_LIST, False),
                                    "tool_counts": (_DICT, False), "current_task": (_STR, False),
                                    "progress": (_NUM, False)}),
    "agent.tool": (HEARTBEAT, {"tool": (_STR, True), "ok": (_BOOL, True), "file": (_STR, False),
                               "ms": (_NUM, False), "error": (_STR, False), "power": (_BOOL, False)}),
    "agent.idle": (HEARTBEAT, {}),
    "agent.left": (HEARTBEAT, {"reason": (_STR, False)}),
    "agent.lost": (COORDINATOR, {"agent": (_STR, True), "reason": (_STR, True), "evidence": (_DICT, False)}),
    # tasks
    "task.created": (COORDINATOR, {"task": (_STR, True), "title": (_STR, True), "owner": (_STR, False),
                                   "parent": (_STR, False)}),
    "task.claimed": (COORDINATOR, {"task": (_STR, True), "round": (_INT, False)}),
    "task.assigned": (COORDINATOR, {"task": (_STR, True), "agent": (_STR, True), "holder": (_STR, False)}),
    "task.completed": (RESULTS, {"task": (_STR, True), "result": (_STR, True), "ok": (_BOOL, False),
                                    "holder": (_STR, False)}),
    "task.orphaned": (COORDINATOR, {"task": (_STR, True), "agent": (_STR, True), "context": (_DICT, False)}),
    "task.parked": (COORDINATOR, {"task": (_STR, True), "reason": (_STR, True), "agent": (_STR, False),
                                  "attempts": (_INT, False)}),
    "task.released": (COORDINATOR, {"task": (_STR, True), "reason": (_STR, False), "holder": (_STR, False)}),
    # sharing
    "insight.shared": (INSIGHTS, {"text": (_STR, True), "tags": (_LIST, False)}),
    "message.broadcast": (BROADCAST, {"text": (_STR, True)}),
    "message.direct": (BROADCAST, {"text": (_STR, True)}),
    # the human
    "approval.requested": (HUMAN, {"request": (_STR, True), "question": (_STR, True), "options": (_LIST, False),
                                   "guard": (_DICT, False)}),
    "approval.granted": (HUMAN, {"request": (_STR, True), "note": (_STR, False)}),
    "approval.denied": (HUMAN, {"request": (_STR, True), "note": (_STR, False)}),
    # the objective and the session
    "objective.set": (COORDINATOR, {"text": (_STR, True)}),
    "objective.updated": (COORDINATOR, {"text": (_STR, True)}),
    "session.opened": (COORDINATOR, {"objective": (_STR, True)}),
    "session.closed": (COORDINATOR, {"reason": (_STR, False), "summary": (_DICT, False)}),
    # the coordinator
    "coordinator.started": (COORDINATOR, {"pid": (_INT, False), "host": (_STR, False)}),
    "coordinator.status": (COORDINATOR, {"agents": (_INT, False), "open_tasks": (_INT, False)}),
    "coordinator.stopped": (COORDINATOR, {"reason": (_STR, False)}),
    "coordinator.command": (COORDINATOR, {"text": (_STR, True)}),
    "file.conflict": (COORDINATOR, {"file": (_STR, True), "agents": (_LIST, True)}),
    "arbiter.decided": (COORDINATOR, {"contest": (_STR, True), "event": (_STR, True), "type": (_STR, True),
                                      "task": (_STR, False), "agent": (_STR, False), "origin": (_STR, False),
                                      "claim_seq": (_INT, False)}),
    "arbiter.ordered": (COORDINATOR, {"event": (_STR, True), "task": (_STR, True), "type": (_STR, True),
                                      "origin": (_STR, True), "seq": (_INT, True)}),
}

#: The human's answers to an approval request: only the human sends them (provenance.py, hook/inbox.py).
APPROVAL_ANSWERS = frozenset({"approval.granted", "approval.denied"})

#: What `publish CHANNEL MESSAGE` writes when no --type is given.
DEFAULT_TYPE_OF_CHANNEL = {
    BROADCAST: "message.broadcast",
    HEARTBEAT: "agent.heartbeat",
    RESULTS: "task.completed",
    INSIGHTS: "insight.shared",
    COORDINATOR: "coordinator.command",
    HUMAN: "approval.requested",
}

_ENVELOPE_STR_FIELDS = ("id", "ts", "origin", "session", "from", "ch", "type")
_PY_TYPES: dict[str, type | tuple[type, ...]] = {
    _STR: str, _INT: int, _NUM: (int, float), _BOOL: bool, _LIST: list, _DICT: dict,
}


def channel_of(event_type: str) -> str | None:
    """The channel a known event type is written to, or None for a type this version does not know."""
    known = EVENT_TYPES.get(event_type)
    return known[0] if known else None


def make_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    sender: str,
    session: str,
    origin: str,
    to: str | None = None,
    channel: str | None = None,
    ts: str | None = None,
) -> dict[str, Any]:
    """Build and validate an event envelope (without `seq` and `crc`, which the journal adds)."""
    event: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "id": new_id(),
        "ts": ts or utc_now(),
        "origin": origin,
        "session": session,
        "from": sender,
        "ch": channel or channel_of(event_type) or "",
        "type": event_type,
    }
    if to is not None:
        event["to"] = to
    event["data"] = data
    validate(event)
    return event


def validate(event: Any) -> dict[str, Any]:
    """Check an event against the protocol and return it; raise ProtocolError naming the first bad field.

    Fields and types this version does not know are accepted as they are (forward compatibility).
    """
    if not isinstance(event, dict):
        raise ProtocolError(f"event must be a JSON object, got {_kind(event)}")
    version = event.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ProtocolError(f"event field 'v' must be a positive integer, got {version!r}")
    for name in _ENVELOPE_STR_FIELDS:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise ProtocolError(f"event field '{name}' must be a non-empty string, got {_show(value)}")
    channel = event["ch"]
    if channel not in CHANNELS:
        raise ProtocolError(f"event field 'ch' must be one of {', '.join(CHANNELS)}; got {channel!r}")
    to = event.get("to")
    if to is not None and (not isinstance(to, str) or not to):
        raise ProtocolError(f"event field 'to' must be a non-empty string when present, got {_show(to)}")
    data = event.get("data")
    if not isinstance(data, dict):
        raise ProtocolError(f"event field 'data' must be an object, got {_kind(data)}")
    known = EVENT_TYPES.get(event["type"])
    if known is None:
        return event  # a type from a newer version: kept, ignored by this one
    expected_channel, fields = known
    if channel != expected_channel:
        raise ProtocolError(
            f"event field 'ch' is {channel!r} but type {event['type']!r} belongs on {expected_channel!r}"
        )
    for name, (kind, required) in fields.items():
        value = data.get(name)
        if value is None:
            if required:
                raise ProtocolError(f"event field 'data.{name}' is required for {event['type']}")
            continue
        if not isinstance(value, _PY_TYPES[kind]) or (kind != _BOOL and isinstance(value, bool)):
            raise ProtocolError(f"event field 'data.{name}' must be {_article(kind)}, got {_kind(value)}")
    if event["type"] == "message.direct" and not to:
        raise ProtocolError("event field 'to' is required for message.direct")
    return event


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    return "nothing" if value is None else f"{value!r}"


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def remember_recent(items: list[str], value: str, limit: int) -> None:
    """Move `value` to the end of `items` (adding it if new), keeping only the last `limit` items."""
    if items and items[-1] == value:
        return
    if value in items:
        items.remove(value)
    items.append(value)
    if len(items) > limit:
        del items[: len(items) - limit]
