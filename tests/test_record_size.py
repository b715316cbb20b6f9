"""The record size limit is exact: `records.record_size` is the size of the line the journal writes, and the journal
refuses exactly the records whose line would be over `max_record_bytes` (journal/SPEC.md section 3).

The regression: the framing was counted as 40 bytes wherever a limit was checked, but a line's framing grows with
its seq's digits and, in a batch, its `more`: a batch record of 1,026 bytes was written under a 1,024-byte limit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from popkit_power.errors import RecordTooLargeError
from popkit_power.journal import codec
from popkit_power.journal.records import LARGEST_SEQ, encode_batch, encode_record, largest_record_size, record_size
from popkit_power.journal.writer import Journal, segment_name

LIMIT = 1024

@given(data=st.dictionaries(st.text(max_size=10), st.one_of(st.text(), st.integers(), st.booleans()), max_size=6),
       seq=st.integers(1, LARGEST_SEQ), more=st.one_of(st.just(0), st.integers(1, LARGEST_SEQ)))
def test_record_size_is_the_length_of_the_line_written(data: dict[str, object], seq: int, more: int) -> None:
    body = codec.dumps({"v": 1, "data": data}).encode("utf-8")
    line = encode_record(seq, body, more)
    assert record_size(len(body), seq, more) == len(line)
    assert largest_record_size(len(body)) >= len(line)


def _journal_at(tmp_path: Path, first_seq: int, name: str = "journal") -> Journal:
    """A journal whose next seq is `first_seq`: an empty segment of that name (as a writer that died right after
    creating it leaves)."""
    directory = tmp_path / name
    directory.mkdir(mode=0o700)
    fd = os.open(directory / segment_name(first_seq), os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    return Journal(str(directory), max_record_bytes=LIMIT)


def _body(size: int) -> bytes:
    """A message body of exactly `size` bytes."""
    empty = support.body("")
    return support.body("x" * (size - len(empty)))


def test_a_batch_record_of_1026_bytes_is_refused_under_a_1024_byte_limit(tmp_path: Path) -> None:
    """At seq 10,000,000 (8 digits) the first record of a batch of two carries `"more":1,`: a 984-byte body is a
    1,026-byte line. It is refused, naming 1,026 bytes, and nothing is written."""
    journal = _journal_at(tmp_path, 10_000_000)
    with pytest.raises(RecordTooLargeError) as raised:
        journal.append([_body(984), _body(100)])
    assert (raised.value.size, raised.value.limit) == (1026, LIMIT)
    assert os.path.getsize(journal.segment_path(10_000_000)) == 0
    written = journal.append([_body(982), _body(100)])  # the 1,024-byte line fits exactly
    data = Path(journal.segment_path(10_000_000)).read_bytes()
    assert written.first_seq == 10_000_000 and len(data.splitlines(keepends=True)[0]) == LIMIT


def test_a_single_record_with_a_long_seq_is_held_to_the_limit(tmp_path: Path) -> None:
    """A 16-digit seq makes a single record's framing 41 bytes: a 984-byte body is a 1,025-byte line."""
    journal = _journal_at(tmp_path, 10**15)
    with pytest.raises(RecordTooLargeError) as raised:
        journal.append([_body(984)])
    assert raised.value.size == 1025
    journal.append([_body(983)])
    assert os.path.getsize(journal.segment_path(10**15)) == LIMIT


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_seq=st.sampled_from([1, 9, 99_999, 10_000_000, 10**15]),
       sizes=st.lists(st.integers(940, 1000), min_size=1, max_size=12))
def test_the_journal_refuses_exactly_the_appends_with_a_line_over_the_limit(tmp_path_factory: pytest.TempPathFactory,
                                                                           first_seq: int, sizes: list[int]) -> None:
    """Bodies near the limit, at seqs of 1 to 16 digits, single or in batches of up to 12 (`more` of two digits): an
    append is refused exactly when one of the lines it would write is over the limit (counted on the bytes
    `encode_batch` makes, not with record_size), and then nothing is written; else every line is in the file."""
    journal = _journal_at(tmp_path_factory.mktemp("j"), first_seq)
    bodies = [_body(size) for size in sizes]
    lines = encode_batch(first_seq, bodies).splitlines(keepends=True)
    if max(len(line) for line in lines) > LIMIT:
        with pytest.raises(RecordTooLargeError) as raised:
            journal.append(bodies)
        assert raised.value.size == next(len(line) for line in lines if len(line) > LIMIT)
        assert os.path.getsize(journal.segment_path(first_seq)) == 0
    else:
        journal.append(bodies)
        assert Path(journal.segment_path(first_seq)).read_bytes().splitlines(keepends=True) == lines
    journal.close()
