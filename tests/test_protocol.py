"""The protocol: envelopes, the six channels, the known event types, and validation that names the bad field."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import support
from freezegun import freeze_time

from popkit_power.errors import ProtocolError
from popkit_power.keys import new_id
from popkit_power.protocol import (
    CHANNELS,
    DEFAULT_TYPE_OF_CHANNEL,
    EVENT_TYPES,
    SCHEMA_VERSION,
    channel_of,
    make_event,
    validate,
)
from popkit_power.timestamps import utc_now

ENVELOPE = ["v", "id", "ts", "origin", "session", "from", "ch", "type"]


def test_the_six_channels_of_the_seed_in_order() -> None:
    """The channels are the seed's six, in its order."""
    assert CHANNELS == ("broadcast", "heartbeat", "results", "insights", "coordinator", "human")


def test_the_design_s_event_types_are_all_known() -> None:
    """Every event the design lists has a type, on one of the six channels, with named fields of known kinds."""
    required = {"agent.joined", "agent.heartbeat", "agent.tool", "agent.idle", "agent.left", "agent.lost",
                "task.created", "task.claimed", "task.assigned", "task.completed", "task.orphaned", "task.released",
                "insight.shared", "message.broadcast", "message.direct", "approval.requested", "approval.granted",
                "approval.denied", "objective.set", "objective.updated", "coordinator.started",
                "coordinator.status", "coordinator.stopped", "file.conflict"}
    assert required <= set(EVENT_TYPES)
    for event_type, (channel, fields) in EVENT_TYPES.items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", event_type)
        assert channel in CHANNELS
        for name, (kind, required_flag) in fields.items():
            assert kind in support.KIND_SAMPLES and isinstance(required_flag, bool), (event_type, name)
    assert EVENT_TYPES["task.completed"][1]["result"] == ("string", True)


def test_default_type_of_each_channel_belongs_on_that_channel() -> None:
    """`publish CHANNEL` without --type writes a type that is valid on CHANNEL."""
    assert set(DEFAULT_TYPE_OF_CHANNEL) == set(CHANNELS)
    for channel, event_type in DEFAULT_TYPE_OF_CHANNEL.items():
        assert channel_of(event_type) == channel


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_make_event_builds_a_valid_envelope_for_every_type(event_type: str) -> None:
    """Every known type, with all its fields, builds an envelope in field order with its own channel."""
    event = support.sample_event(event_type)
    assert list(event)[: len(ENVELOPE)] == ENVELOPE and list(event)[-1] == "data"
    assert event["v"] == SCHEMA_VERSION and event["ch"] == EVENT_TYPES[event_type][0]
    assert event["type"] == event_type and event["session"] == support.SESSION and event["origin"] == support.ORIGIN
    assert validate(copy.deepcopy(event)) == event
    minimal = make_event(event_type, support.sample_data(event_type, optional=False), sender="a", session="s",
                         origin="o", to="b" if event_type == "message.direct" else None)
    assert set(minimal["data"]) == {name for name, (_k, required) in EVENT_TYPES[event_type][1].items() if required}


def test_ids_are_random_128_bit_hex() -> None:
    """new_id gives 32 lowercase hex digits, different every time."""
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in ids)


@pytest.mark.parametrize(("frozen", "expected"), [
    ("2026-11-24 10:00:00.123456", "2026-11-24T10:00:00.123456Z"),
    ("2026-11-24 23:59:59", "2026-11-24T23:59:59.000000Z"),
    ("2030-02-28 00:00:00.5", "2030-02-28T00:00:00.500000Z"),
])
def test_timestamps_are_utc_iso_with_microseconds_and_z(frozen: str, expected: str) -> None:
    """utc_now (and so make_event's ts) is UTC, ISO 8601, six fraction digits and a Z."""
    with freeze_time(frozen):
        assert utc_now() == expected
        assert make_event("agent.idle", {}, sender="a", session="s", origin="o")["ts"] == expected


def _valid() -> dict[str, Any]:
    return support.sample_event("task.completed")


def _with(path: str, value: Any) -> dict[str, Any]:
    event = _valid()
    target = event
    *parents, last = path.split(".")
    for parent in parents:
        target = target[parent]
    if value is _MISSING:
        del target[last]
    else:
        target[last] = value
    return event


_MISSING = object()


@pytest.mark.parametrize(("path", "value", "message"), [
    ("v", _MISSING, "event field 'v' must be a positive integer, got None"),
    ("v", 0, "event field 'v' must be a positive integer"),
    ("v", "1", "event field 'v' must be a positive integer"),
    ("v", True, "event field 'v' must be a positive integer"),
    ("id", "", "event field 'id' must be a non-empty string, got ''"),
    ("ts", 5, "event field 'ts' must be a non-empty string, got 5"),
    ("origin", _MISSING, "event field 'origin' must be a non-empty string, got nothing"),
    ("session", None, "event field 'session' must be a non-empty string"),
    ("from", ["a"], "event field 'from' must be a non-empty string"),
    ("type", "", "event field 'type' must be a non-empty string"),
    ("ch", "news", "event field 'ch' must be one of broadcast, heartbeat, results, insights, coordinator, human"),
    ("ch", "broadcast", "event field 'ch' is 'broadcast' but type 'task.completed' belongs on 'results'"),
    ("to", "", "event field 'to' must be a non-empty string when present"),
    ("to", 3, "event field 'to' must be a non-empty string when present"),
    ("data", _MISSING, "event field 'data' must be an object, got null"),
    ("data", [], "event field 'data' must be an object, got an array"),
    ("data.task", _MISSING, "event field 'data.task' is required for task.completed"),
    ("data.task", None, "event field 'data.task' is required for task.completed"),
    ("data.task", 7, "event field 'data.task' must be a string, got an integer"),
    ("data.ok", "yes", "event field 'data.ok' must be a boolean, got a string"),
])
def test_validation_names_the_first_bad_field(path: str, value: Any, message: str) -> None:
    """Each kind of bad envelope or data field is a ProtocolError whose one-line message names the field."""
    with pytest.raises(ProtocolError) as raised:
        validate(_with(path, value))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("event_type", "field", "value", "message"), [
    ("agent.heartbeat", "tool_calls", True, "must be an integer, got a boolean"),
    ("agent.heartbeat", "tool_calls", 1.5, "must be an integer, got a number"),
    ("agent.heartbeat", "progress", False, "must be a number, got a boolean"),
    ("agent.heartbeat", "files_touched", "a.py", "must be an array, got a string"),
    ("agent.heartbeat", "tool_counts", [], "must be an object, got an array"),
])
def test_field_kinds_are_checked_exactly(event_type: str, field: str, value: Any, message: str) -> None:
    """Booleans are not integers or numbers, floats are not integers, arrays and objects are told apart."""
    event = support.sample_event(event_type)
    event["data"][field] = value
    with pytest.raises(ProtocolError, match=f"'data.{field}' {message}"):
        validate(event)


def test_progress_accepts_integers_and_floats() -> None:
    """A number field takes both 1 and 0.25."""
    for progress in (1, 0.25):
        event = support.sample_event("agent.heartbeat")
        event["data"]["progress"] = progress
        validate(event)


def test_direct_message_needs_a_recipient() -> None:
    """message.direct without `to` is refused, naming `to`."""
    with pytest.raises(ProtocolError, match=r"'to' is required for message\.direct"):
        make_event("message.direct", {"text": "hi"}, sender="a", session="s", origin="o")
    assert make_event("message.direct", {"text": "hi"}, sender="a", session="s", origin="o", to="b")["to"] == "b"


def test_not_an_object_is_refused() -> None:
    """A list, string or null event is a ProtocolError saying what it was."""
    for value, kind in (([], "an array"), ("x", "a string"), (None, "null")):
        with pytest.raises(ProtocolError, match=f"event must be a JSON object, got {kind}"):
            validate(value)


def test_unknown_types_and_fields_are_accepted_as_they_are() -> None:
    """Forward compatibility: a newer type (with its own channel and data) and unknown envelope or data fields pass
    validation unchanged; so does a newer schema version."""
    future = make_event("insight.voted", {"insight": "abc", "weight": 2}, sender="a", session="s", origin="o",
                        channel="insights")
    future["priority"] = {"level": 1}
    future["v"] = 9
    assert validate(copy.deepcopy(future)) == future
    known = support.sample_event("task.claimed")
    known["data"]["estimate_minutes"] = 30
    known["trace"] = "abc"
    assert validate(copy.deepcopy(known)) == known


def test_an_unknown_type_needs_an_explicit_channel() -> None:
    """Without a channel there is no way to place an unknown type: the error names 'ch'."""
    with pytest.raises(ProtocolError, match="event field 'ch' must be a non-empty string"):
        make_event("future.thing", {}, sender="a", session="s", origin="o")
