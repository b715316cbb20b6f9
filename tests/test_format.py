"""The written format (journal/SPEC.md, journal/event.schema.json) agrees with the code and with what is written."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
import recorded_sessions
import support

from popkit_power.journal.writer import Journal
from popkit_power.protocol import CHANNELS, EVENT_TYPES, SCHEMA_VERSION
from popkit_power.session import Session

FORMAT_DIR = Path(__file__).resolve().parent.parent / "journal"
SCHEMA = orjson.loads((FORMAT_DIR / "event.schema.json").read_bytes())
SPEC = (FORMAT_DIR / "SPEC.md").read_text()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def _type_rules() -> dict[str, dict[str, Any]]:
    """event type -> the `then` part of its if/then rule in the schema."""
    rules: dict[str, dict[str, Any]] = {}
    for rule in SCHEMA["allOf"]:
        event_type = rule["if"]["properties"]["type"]["const"]
        if "properties" in rule["then"]:
            assert event_type not in rules, f"{event_type} has two rules"
            rules[event_type] = rule["then"]
    return rules


def test_the_schema_is_valid_draft_2020_12() -> None:
    """The schema itself is a valid JSON Schema of draft 2020-12."""
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_protocol_type_is_in_the_schema_with_its_channel_and_fields() -> None:
    """The schema and protocol.EVENT_TYPES cannot drift: the same types, each with its channel, its fields, their
    kinds, and which are required (an optional one may be null); the same channels; the same envelope version."""
    rules = _type_rules()
    assert set(rules) == set(EVENT_TYPES)
    assert SCHEMA["properties"]["ch"]["enum"] == list(CHANNELS)
    for event_type, (channel, fields) in EVENT_TYPES.items():
        assert rules[event_type]["properties"]["ch"] == {"const": channel}, event_type
        data = SCHEMA["$defs"][rules[event_type]["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
        assert set(data["required"]) == {name for name, (_kind, required) in fields.items() if required}, event_type
        assert set(data["properties"]) == set(fields), event_type
        for name, (kind, required) in fields.items():
            assert data["properties"][name] == {"type": kind if required else [kind, "null"]}, (event_type, name)
    assert f"version {SCHEMA_VERSION}" in SCHEMA["properties"]["v"]["description"]


def test_the_spec_lists_every_type_with_its_channel_and_fields() -> None:
    """journal/SPEC.md's table of event types has one row per type of protocol.EVENT_TYPES, naming its channel and
    every field with its kind, required ones marked."""
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| `([a-z]+\.[a-z_]+)` \|.*$", SPEC, re.M)}
    assert set(rows) == set(EVENT_TYPES)
    for event_type, (channel, fields) in EVENT_TYPES.items():
        cells = [cell.strip() for cell in rows[event_type].strip("|").split("|")]
        assert cells[1] == f"`{channel}`", event_type
        for name, (kind, required) in fields.items():
            assert f"`{name}`{'*' if required else ''} {kind}" in cells[2], (event_type, name)


@pytest.mark.parametrize("name", sorted(recorded_sessions.SESSIONS))
def test_every_record_of_the_recorded_sessions_follows_the_schema(name: str) -> None:
    """Every whole, valid record of each recorded session validates against the schema."""
    journal = Journal(str(recorded_sessions.segment_file(name).parent), read_only=True)
    records, _damaged = support.read_all(journal)
    assert records
    for record in records:
        VALIDATOR.validate(record)


def test_a_freshly_written_journal_of_every_type_follows_the_schema(session: Session) -> None:
    """A session where every known type is published (all fields, then required fields only), plus an event of an
    unknown type with unknown fields, validates record by record."""
    for event_type in EVENT_TYPES:
        to = "agent-b" if event_type == "message.direct" else None
        session.publish(event_type, support.sample_data(event_type), sender="agent-a", to=to)
        session.publish(event_type, support.sample_data(event_type, optional=False), sender="agent-a", to=to)
    session.publish("insight.voted", {"insight": "x", "weight": 1}, sender="agent-a", channel="insights")
    records, damaged = support.read_all(session.journal)
    assert damaged == [] and len(records) == 2 + 2 * len(EVENT_TYPES) + 1
    for record in records:
        VALIDATOR.validate(record)


@pytest.mark.parametrize(("change", "path"), [
    ({"seq": 0}, "seq"), ({"crc": "ABCDEF12"}, "crc"), ({"ch": "news"}, "ch"), ({"ts": "2026-11-24 10:00"}, "ts"),
    ({"data": {"task": 5, "result": "x"}}, "data"), ({"data": {"result": "x"}}, "data"), ({"ch": "broadcast"}, "ch"),
    ({"from": ""}, "from"),
])
def test_the_schema_refuses_what_the_spec_forbids(change: dict[str, Any], path: str) -> None:
    """The schema is not vacuous: a bad seq, crc, channel, timestamp, data field, missing required field, a type on
    the wrong channel, or an empty sender fail."""
    record = {"seq": 1, **support.sample_event("task.completed"), "crc": "0a1b2c3d"}
    VALIDATOR.validate(record)
    record.update(change)
    errors = list(VALIDATOR.iter_errors(record))
    assert errors and any(path in "/".join(map(str, error.absolute_path)) or path in error.message
                          for error in errors)


def test_the_schema_wants_a_recipient_for_direct_messages() -> None:
    """message.direct without `to` fails the schema, as it fails protocol.validate."""
    record = {"seq": 1, **support.sample_event("message.direct"), "crc": "0a1b2c3d"}
    VALIDATOR.validate(record)
    del record["to"]
    assert not VALIDATOR.is_valid(record)


def test_the_spec_names_the_constants_the_code_uses() -> None:
    """The numbers and names a second reader needs match the code: segment name width, crc marker, lock and torn
    file names, snapshot suffix."""
    from popkit_power import keys
    from popkit_power.journal import writer as journal

    assert f"{journal.SEGMENT_DIGITS} decimal digits" in SPEC
    assert journal.segment_name(1) in SPEC and keys.SEGMENT_SUFFIX in SPEC
    lock = os.path.basename(keys.journal_lock_file(os.path.join("s", keys.JOURNAL_DIR)))
    torn = os.path.basename(keys.torn_file(keys.JOURNAL_DIR, journal.segment_name(743), 5120))
    assert ',"crc":"' in SPEC and lock == "journal.lock" and lock in SPEC and torn in SPEC
    assert keys.SNAPSHOT_SUFFIX in SPEC


def test_the_spec_worked_example_line_checks_out() -> None:
    """The example line in SPEC.md section 3 is the first line of team-of-two, and its stated checked-part length
    and CRC are right when computed the way the SPEC describes."""
    import zlib

    from popkit_power.journal.writer import checksum_ok

    example = next(line for line in SPEC.splitlines() if line.startswith('{"seq":1,')).encode() + b"\n"
    assert example == recorded_sessions.segment_file("team-of-two").read_bytes().splitlines(keepends=True)[0]
    assert checksum_ok(example) and f"{len(example)} bytes with its newline" in SPEC
    checked = example[:-19]
    assert example[-19:-11] == b',"crc":"' and f"first {len(checked)} bytes" in SPEC
    assert f"0x{zlib.crc32(checked):08x}" in SPEC


def test_the_spec_batch_example_is_framed_as_the_code_frames_it() -> None:
    """The batch example in SPEC.md section 3 is what the journal writes for those two envelopes (one `more`, on the
    first line, right after its seq), each line's checksum holds, the raw lines follow the schema (which lists
    `more`), and a reader returns the two records without `more`."""
    from popkit_power.journal import codec
    from popkit_power.journal.records import MORE_PREFIX, encode_batch, valid_head

    example = [line.encode() + b"\n" for line in SPEC.splitlines() if line.startswith('{"seq":4')]
    assert len(example) == 2 and example[0].startswith(b'{"seq":41,' + MORE_PREFIX + b"1,")
    assert [valid_head(line) for line in example] == [(41, 1), (42, 0)]
    envelopes = [orjson.loads(line) for line in example]
    for envelope in envelopes:
        VALIDATOR.validate(envelope)
    bodies = [codec.dumps({k: v for k, v in e.items() if k not in ("seq", "more", "crc")}).encode() for e in envelopes]
    assert encode_batch(41, bodies) == b"".join(example)
    assert SCHEMA["properties"]["more"] == {"type": "integer", "minimum": 1,
                                            "description": SCHEMA["properties"]["more"]["description"]}
    assert f"`{MORE_PREFIX.decode()}`" in SPEC


def test_a_batch_appended_through_the_journal_follows_the_schema_line_by_line(tmp_path: Path) -> None:
    """The raw lines of a multi-record append (with `more`) validate; the records a reader returns validate too."""
    journal = Journal(str(tmp_path / "j"))
    journal.append([support.body_of(support.sample_event(t)) for t in ("task.completed", "agent.left", "agent.idle")])
    lines = support.raw_lines(journal)
    assert [orjson.loads(line).get("more") for _segment, _offset, line in lines] == [2, 1, None]
    for _segment, _offset, line in lines:
        VALIDATOR.validate(orjson.loads(line))
    for record in journal.reader():
        assert "more" not in record
        VALIDATOR.validate(record)
