"""The append-only journal: record layout, seqs, damage, torn tails, positions, durability, concurrency, crashes."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import random
import signal
import stat
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import support

from popkit_power.config import DURABILITY_FSYNC
from popkit_power.errors import JournalError, RecordTooLargeError
from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Journal, Position, checksum_ok, encode_record, record_seq, segment_name

# -- the record line ---------------------------------------------------------------------------------------------------


def test_record_line_starts_with_seq_and_ends_with_crc_of_everything_before_it(journal: Journal) -> None:
    """A record is one line `{"seq":N,<envelope fields>,"crc":"<8 hex>"}` whose CRC-32 covers the bytes before
    `,"crc":` (journal/SPEC.md), computed here independently of the journal's own code."""
    envelope = support.sample_event("task.completed")
    journal.append([support.body_of(envelope)])
    [(_segment, _offset, line)] = support.raw_lines(journal)
    assert line.startswith(b'{"seq":1,"v":1,')
    assert line.endswith(b'"}\n') and line.count(b"\n") == 1
    checked, crc_part = line[:-1].rsplit(b',"crc":"', 1)
    assert crc_part[-2:] == b'"}' and len(crc_part) == 10
    assert f"{zlib.crc32(checked):08x}".encode() == crc_part[:8]
    parsed = orjson.loads(line)
    assert next(iter(parsed)) == "seq" and list(parsed)[-1] == "crc"
    assert support.without_journal_fields(parsed) == envelope


def test_encode_record_and_checksum_ok_agree_and_catch_any_single_byte_change() -> None:
    """Changing any one byte of an encoded line (before its newline) makes its checksum fail."""
    line = encode_record(42, b'{"v":1,"type":"x","data":{"text":"abc"}}')
    assert checksum_ok(line) and record_seq(line) == 42
    for index in range(len(line) - 1):
        damaged = bytearray(line)
        damaged[index] ^= 0x01
        assert not checksum_ok(bytes(damaged)), f"a change at byte {index} went unnoticed"


@pytest.mark.parametrize("line", [b"", b"{}\n", b'{"seq":x,', b'{"seq":,"v":1}\n', b'["seq",1]\n', b'{"seq":1'])
def test_record_seq_is_none_for_lines_that_do_not_start_like_a_record(line: bytes) -> None:
    """Only a line starting with `{"seq":<digits>,` has a seq."""
    assert record_seq(line) is None


def test_appends_get_contiguous_seqs_and_read_back_in_order(journal: Journal) -> None:
    """Single and batched appends give consecutive seqs; a reader returns them in order with their envelopes."""
    first = journal.append([support.body("one")])
    batch = journal.append([support.body("two"), support.body("three"), support.body("four")])
    assert (first.first_seq, first.last_seq) == (1, 1)
    assert (batch.first_seq, batch.last_seq) == (2, 4)
    records, damaged = support.read_all(journal)
    assert damaged == []
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert [r["data"]["text"] for r in records] == ["one", "two", "three", "four"]
    assert batch.end == journal.end_position() == Position(1, os.path.getsize(support.segment_path(journal)), 5)


def test_unknown_type_and_extra_fields_round_trip_unchanged(journal: Journal) -> None:
    """Forward compatibility at the journal level: a record of a type this version does not know, with envelope
    and data fields it does not know, comes back exactly as it was appended."""
    future = {"v": 3, "id": "f" * 32, "ts": "2031-01-01T00:00:00.000001Z", "origin": "other-machine",
              "session": support.SESSION, "from": "agent-z", "ch": "insights", "type": "insight.voted",
              "priority": {"level": 2, "labels": ["x", "é", "\u2603"]}, "data": {"insight": "abc", "weight": 1.25,
                                                                               "nested": [1, [2, {"k": None}]]}}
    journal.append([support.body_of(future)])
    [record], _ = support.read_all(journal)
    assert support.without_journal_fields(record) == future
    assert list(record) == ["seq", *future, "crc"]


def test_record_over_the_size_limit_writes_nothing(tmp_path: Path) -> None:
    """RecordTooLargeError names the size and the limit, is raised before anything is written (also when only one
    record of a batch is too large), and the journal stays valid and usable."""
    journal = Journal(str(tmp_path / "j"), max_record_bytes=2048)
    journal.append([support.body("before")])
    size_before = os.path.getsize(support.segment_path(journal))
    with pytest.raises(RecordTooLargeError) as raised:
        journal.append([support.body("fine"), support.body("x" * 4096)])
    assert "max_record_bytes" in str(raised.value) and "2048" in str(raised.value)
    assert raised.value.limit == 2048 and raised.value.size > 4096
    assert os.path.getsize(support.segment_path(journal)) == size_before
    assert journal.append([support.body("after")]).first_seq == 2
    assert verify_journal(journal)["ok"]


@pytest.mark.parametrize(("bodies", "message"), [
    ([], "nothing to append"),
    ([b"[1,2]"], "JSON object"),
    ([b"{}"], "JSON object"),
    ([b'{"a":1}\n'], "JSON object"),
    ([b'{"a":\n1}'], "one line"),
])
def test_bodies_that_would_break_the_line_format_are_refused(journal: Journal, bodies: list[bytes],
                                                             message: str) -> None:
    """An empty batch, a body that is not one JSON object, or one holding a newline is refused with a message."""
    with pytest.raises(JournalError, match=message):
        journal.append(bodies)
    assert journal.segments() in ([], [1])
    assert support.read_all(journal) == ([], [])


def test_bad_durability_and_missing_journal_are_clear_errors(tmp_path: Path) -> None:
    """A durability other than flush/fsync, or opening a journal that does not exist without `create`, fails."""
    with pytest.raises(JournalError, match="durability"):
        Journal(str(tmp_path / "j"), durability="sometimes")
    with pytest.raises(JournalError, match="no journal at"):
        Journal(str(tmp_path / "missing"), create=False)


def test_a_failed_write_leaves_no_partial_record(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that fills up in the middle of an append (a short write, then ENOSPC): JournalError naming the cause,
    the partial bytes are truncated away (no torn tail), and the next append gets the seq that failed
    (regression: the segment's fd was closed before the truncation, which then failed silently)."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    real_write = os.write
    calls: list[int] = []

    def short_write_then_full(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", short_write_then_full)
    with pytest.raises(JournalError, match="No space left on device"):
        journal.append([support.body("two " * 100)])
    monkeypatch.undo()
    assert len(calls) == 2
    assert os.path.getsize(support.segment_path(journal)) == size
    assert journal.has_torn_tail() is None
    assert journal.append([support.body("two")]).first_seq == 2
    assert verify_journal(journal)["ok"]


# -- damage in the middle ---------------------------------------------------------------------------------------------


def _flip(path: str, offset: int, new: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes([new]))


def test_corrupt_line_in_the_middle_is_skipped_with_a_warning_and_reported(
        journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    """One flipped byte in record 3 of 5: readers log a warning naming seq 3 and its byte position and return the
    other four; verify reports it; the next append still gets seq 6."""
    journal.append([support.body(f"record {n}") for n in range(1, 6)])
    segment, offset, line = support.raw_lines(journal)[2]
    _flip(support.segment_path(journal), offset + line.index(b"record 3"), ord("R"))
    with caplog.at_level(logging.WARNING, logger="popkit_power.journal.writer"):
        records = list(journal.reader())
    assert [r["seq"] for r in records] == [1, 2, 4, 5]
    [warning] = [r for r in caplog.records if r.name == "popkit_power.journal.writer"]
    assert warning.levelno == logging.WARNING
    assert f"seq 3 at {segment_name(segment)} byte {offset}" in warning.getMessage()
    report = verify_journal(journal)
    assert not report["ok"]
    assert report["damaged"] == [{"seq": 3, "segment": segment_name(segment), "offset": offset,
                                  "reason": "checksum does not match"}]
    assert report["gaps"] == [] and report["repeats"] == [] and report["torn_tail"] is None
    assert journal.append([support.body("next")]).first_seq == 6
    assert [r["seq"] for r in journal.reader()] == [1, 2, 4, 5, 6]


def test_a_flip_to_carriage_return_is_one_damaged_line_not_two(journal: Journal) -> None:
    """A byte flipped into `\\r` does not split the line: the damage is reported once, at the line's start, with
    its own seq (regression: bytes.splitlines also splits at `\\r`)."""
    journal.append([support.body(f"record {n}") for n in range(1, 5)])
    _segment, offset, line = support.raw_lines(journal)[1]
    _flip(support.segment_path(journal), offset + line.index(b"record 2"), ord("\r"))
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 3, 4]
    assert [(d.seq, d.offset) for d in damaged] == [(2, offset)]


def test_a_checksummed_line_that_is_not_json_is_damage(journal: Journal) -> None:
    """A line with a valid CRC but not valid JSON is reported as 'not valid JSON' and stepped over."""
    journal.append([support.body("one")])
    bad = b'{"seq":2,"v":1,this is not json'
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(bad + b',"crc":"%08x"}\n' % zlib.crc32(bad))
    assert journal.append([support.body("three")]).first_seq == 3
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 3]
    assert [(d.seq, d.reason) for d in damaged] == [(2, "not valid JSON")]
    report = verify_journal(journal)
    assert report["damaged"][0]["reason"] == "not valid JSON" and not report["ok"]


def test_damaged_last_line_still_counts_as_a_seq(journal: Journal) -> None:
    """A whole but damaged last line keeps its seq: the next append does not reuse it."""
    journal.append([support.body("one"), support.body("two")])
    _segment, offset, line = support.raw_lines(journal)[1]
    _flip(support.segment_path(journal), offset + line.index(b"two"), ord("T"))
    other = Journal(journal.directory)
    assert other.append([support.body("three")]).first_seq == 3
    records, damaged = support.read_all(other)
    assert [r["seq"] for r in records] == [1, 3] and [d.seq for d in damaged] == [2]


# -- torn tails --------------------------------------------------------------------------------------------------------


def test_torn_tail_is_invisible_to_readers_and_repaired_by_the_next_append(journal: Journal) -> None:
    """Half a line at the end: readers stop before it, verify reports it, the next append moves the torn bytes to
    `<segment>.torn-<offset>` and continues the seqs; then verify is OK."""
    journal.append([support.body("one"), support.body("two")])
    size = os.path.getsize(support.segment_path(journal))
    torn = encode_record(3, support.body("three"))[:25]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(torn)
    assert [r["seq"] for r in journal.reader()] == [1, 2]
    assert journal.has_torn_tail() == (1, size, len(torn))
    assert journal.end_position() == Position(1, size, 3)
    before = verify_journal(journal)
    assert not before["ok"] and before["torn_tail"] == {"segment": segment_name(1), "offset": size,
                                                        "bytes": len(torn)}
    other = Journal(journal.directory)  # a different writer, as after a crash
    assert other.append([support.body("three")]).first_seq == 3
    kept = Path(journal.directory, f"{segment_name(1)}.torn-{size}")
    assert kept.read_bytes() == torn
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert [r["data"]["text"] for r in other.reader()] == ["one", "two", "three"]
    assert verify_journal(other)["ok"]
    assert other.has_torn_tail() is None


def test_long_torn_tail_beyond_the_scan_window_is_repaired(journal: Journal) -> None:
    """A torn tail longer than the tail scan's first read (8 KiB) is still found whole and kept aside."""
    journal.append([support.body("x" * 100)])
    size = os.path.getsize(support.segment_path(journal))
    torn = encode_record(2, support.body("y" * 50_000))[:40_000]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(torn)
    journal.repair()
    assert os.path.getsize(support.segment_path(journal)) == size
    assert Path(journal.directory, f"{segment_name(1)}.torn-{size}").read_bytes() == torn
    assert journal.append([support.body("z")]).first_seq == 2


def test_empty_segment_left_by_a_crash_after_roll_over(tmp_path: Path) -> None:
    """A writer that died right after creating a new segment leaves it empty; the next append writes into it with
    the seq that follows the previous segment."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=4096)
    journal.append([support.body("a" * 5000)])
    Path(journal.directory, segment_name(2)).touch(mode=0o600)
    assert Journal(journal.directory, segment_max_bytes=4096).append([support.body("b")]).first_seq == 2
    assert [r["seq"] for r in journal.reader()] == [1, 2]
    assert verify_journal(journal)["ok"]


# -- segments and positions --------------------------------------------------------------------------------------------


def test_segments_roll_over_at_the_size_limit_and_are_named_by_their_first_seq(tmp_path: Path) -> None:
    """With a small limit, each segment is named by the seq of its first record and seqs run on across them."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=4096)
    for n in range(60):
        journal.append([support.body(f"{n:03d}" + "p" * 200)])
    segments = journal.segments()
    assert len(segments) > 3 and segments[0] == 1
    for segment in segments:
        with open(support.segment_path(journal, segment), "rb") as handle:
            assert record_seq(handle.readline()) == segment
    assert [r["seq"] for r in journal.reader()] == list(range(1, 61))
    assert sorted(os.listdir(journal.directory)) == [segment_name(s) for s in segments]


def test_stale_writer_does_not_reuse_seqs_after_another_writer_rolled_over(tmp_path: Path) -> None:
    """Writer A fills a segment; writer B rolls over to a new one; A's next append must see B's records
    (regression: A trusted its cached tail, whose size had not changed, and wrote seq 2 twice)."""
    directory = str(tmp_path / "j")
    writer_a = Journal(directory, segment_max_bytes=4096)
    writer_b = Journal(directory, segment_max_bytes=4096)
    writer_a.append([support.body("a" * 5000)])
    assert writer_b.append([support.body("b")]).first_seq == 2
    assert writer_a.append([support.body("a again")]).first_seq == 3
    report = verify_journal(writer_a)
    assert report["ok"] and report["repeats"] == [] and report["last_seq"] == 3


def test_reader_resumes_from_a_saved_position_reading_only_new_records(tmp_path: Path) -> None:
    """A position saved as JSON resumes a new reader at exactly the next record, across segment roll-overs. The
    bytes and segments before the position are never read: they are overwritten with garbage and deleted first."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=4096)
    journal.append([support.body(f"old {n}" + "p" * 150) for n in range(30)])
    reader = journal.reader()
    assert len(list(reader)) == 30
    saved = orjson.dumps(reader.position.as_dict())
    assert reader.position == journal.end_position()
    for n in range(40):
        journal.append([support.body(f"new {n}" + "q" * 150)])
    position = Position.from_dict(orjson.loads(saved))
    for segment in journal.segments():
        path = support.segment_path(journal, segment)
        if segment < position.segment:
            os.unlink(path)
        elif segment == position.segment:
            with open(path, "r+b") as handle:
                handle.write(b"#" * position.offset)
    damaged: list[object] = []
    resumed = journal.reader(position, on_damage=damaged.append)
    records = list(resumed)
    assert [r["seq"] for r in records] == list(range(31, 71))
    assert [r["data"]["text"][:6] for r in records[:2]] == ["new 0q", "new 1q"]
    assert damaged == []
    assert len({r["seq"] for r in records}) == 40 and len(journal.segments()) > 2
    assert resumed.position == journal.end_position()
    assert list(journal.reader(resumed.position)) == []


def test_reader_fails_clearly_when_its_segment_is_gone(tmp_path: Path) -> None:
    """A position inside a segment that no longer exists is an error naming the segment, not a silent skip."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=4096)
    journal.append([support.body("a" * 5000)])
    journal.append([support.body("b")])
    os.unlink(support.segment_path(journal, 1))
    with pytest.raises(JournalError, match=segment_name(1)):
        list(journal.reader(Position(1, 10, 1)))


@pytest.mark.parametrize("value", [None, [], {"segment": 1}, {"segment": 1, "offset": -1, "seq": 1},
                                   {"segment": True, "offset": 0, "seq": 1}, {"segment": "1", "offset": 0, "seq": 1}])
def test_position_from_dict_refuses_what_is_not_a_position(value: object) -> None:
    """Position.from_dict raises JournalError for anything but three non-negative integers."""
    with pytest.raises(JournalError, match="not a journal position"):
        Position.from_dict(value)


# -- files, modes, durability ------------------------------------------------------------------------------------------


def test_journal_files_are_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    """Directories are 0700 and segments, the lock and torn files 0600, set explicitly rather than via the umask."""
    old = os.umask(0)
    try:
        journal = Journal(str(tmp_path / "a" / "j"), segment_max_bytes=4096)
        journal.append([support.body("x" * 5000)])
        journal.append([support.body("y")])
        with open(support.segment_path(journal, 2), "ab") as handle:
            handle.write(b'{"seq":3,')
        journal.append([support.body("z")])
    finally:
        os.umask(old)
    paths = [Path(journal.directory), Path(tmp_path / "a"), *Path(tmp_path / "a").rglob("*")]
    assert any(p.name.endswith(".lock") for p in paths) and any(".torn-" in p.name for p in paths)
    for path in paths:
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_fsync_durability_syncs_every_append_and_flush_does_not(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With durability "fsync" each append fsyncs the segment before it returns (and the directory on roll-over);
    with "flush" nothing is fsynced. Both read back the same."""
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    flush = Journal(str(tmp_path / "flush"))
    for n in range(3):
        flush.append([support.body(f"{n}")])
    assert synced == []
    durable = Journal(str(tmp_path / "fsync"), durability=DURABILITY_FSYNC, segment_max_bytes=4096)
    durable.append([support.body("first")])  # creates segment 1: fsync of the directory, then of the segment
    assert len(synced) == 2
    for n in range(3):
        durable.append([support.body(f"{n}")])
    assert len(synced) == 5
    durable.append([support.body("r" * 5000)])
    durable.append([support.body("rolled")])  # a new segment: directory and segment
    assert len(synced) == 8 and durable.segments() == [1, 6]
    assert [r["data"]["text"][:6] for r in durable.reader()][-1] == "rolled"


# -- many processes ---------------------------------------------------------------------------------------------------

WRITERS, PER_WRITER = 16, 500


@pytest.mark.slow
@pytest.mark.parametrize(("method", "segment_max_bytes"), [("spawn", 64 * 1024 * 1024), ("fork", 4096)],
                         ids=["spawn-one-segment", "fork-small-segments"])
def test_sixteen_processes_appending_at_once_lose_and_repeat_nothing(tmp_path: Path, method: str,
                                                                     segment_max_bytes: int) -> None:
    """16 OS processes released together append 500 records each: exactly 8,000 records, seqs 1..8,000 without a
    gap or repeat, every checksum valid, each writer's records in its own order. With 4 KiB segments the
    roll-over happens hundreds of times under contention."""
    directory = str(tmp_path / "j")
    context: Any = multiprocessing.get_context(method)
    barrier = context.Barrier(WRITERS)
    processes = [context.Process(target=support.append_many,
                                 args=(directory, writer, PER_WRITER, segment_max_bytes, barrier))
                 for writer in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * WRITERS

    journal = Journal(directory, segment_max_bytes=segment_max_bytes)
    lines = support.raw_lines(journal)
    assert len(lines) == WRITERS * PER_WRITER
    assert all(checksum_ok(line) for _segment, _offset, line in lines)
    records, damaged = support.read_all(journal)
    assert damaged == []
    assert [r["seq"] for r in records] == list(range(1, WRITERS * PER_WRITER + 1))
    numbers_by_writer: dict[int, list[int]] = {}
    for record in records:
        numbers_by_writer.setdefault(record["data"]["writer"], []).append(record["data"]["number"])
    assert numbers_by_writer == {writer: list(range(PER_WRITER)) for writer in range(WRITERS)}
    if segment_max_bytes == 4096:
        assert len(journal.segments()) > 100
    assert verify_journal(journal)["ok"]


# -- writers killed ----------------------------------------------------------------------------------------------------


def _read_reports(fd: int, wanted: int | None) -> list[int]:
    """Seqs a child reported: `wanted` of them (blocking), or all until the pipe closes when None."""
    data = b""
    while wanted is None or len(data) < 8 * wanted:
        chunk = os.read(fd, 8 * wanted - len(data) if wanted else 65536)
        if not chunk:
            break
        data += chunk
    return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data) - len(data) % 8, 8)]


def _expected_record(record: dict[str, object]) -> bytes:
    data = record["data"]
    assert isinstance(data, dict)
    return support.kill_round_body(data["round"], data["number"])


KILL_ROUNDS = 120


@pytest.mark.slow
def test_writer_killed_at_random_moments_never_leaves_a_half_record(tmp_path: Path) -> None:
    """120 times: a forked writer appends (records up to ~200 KB) in a tight loop, reporting each returned seq over
    a pipe; after a random number of reports (seeded RNG) it gets SIGKILL. Readers only ever return whole records
    equal to what was appended, with contiguous seqs; every reported append is there; a torn tail is repaired by
    the next writer and its bytes kept aside; in the end verify is OK."""
    rng = random.Random(20261124)
    directory = str(tmp_path / "j")
    journal = Journal(directory, segment_max_bytes=512 * 1024)
    position = Position()
    seen: list[int] = []
    reported: set[int] = set()
    torn_seen: list[tuple[int, int, bytes]] = []
    for round_number in range(KILL_ROUNDS):
        read_fd, write_fd = os.pipe()
        pid = support.run_child(support.append_until_killed, directory, round_number, write_fd, 512 * 1024)
        os.close(write_fd)
        try:
            reported.update(_read_reports(read_fd, rng.randint(1, 12)))
            os.kill(pid, signal.SIGKILL)
            reported.update(_read_reports(read_fd, None))
        finally:
            os.close(read_fd)
            _pid, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL

        damaged: list[object] = []
        reader = journal.reader(position, on_damage=damaged.append)
        for record in reader:
            assert support.body_of(support.without_journal_fields(record)) == _expected_record(record)
            seen.append(record["seq"])
        position = reader.position
        assert damaged == []
        assert seen == list(range(1, len(seen) + 1))
        assert reported <= set(seen)
        torn = journal.has_torn_tail()
        if torn is not None:
            segment, offset, length = torn
            with open(support.segment_path(journal, segment), "rb") as handle:
                handle.seek(offset)
                torn_seen.append((segment, offset, handle.read(length)))

    journal.append([support.body("after the last kill")])
    for segment, offset, torn_bytes in torn_seen:
        assert Path(directory, f"{segment_name(segment)}.torn-{offset}").read_bytes() == torn_bytes
    report = verify_journal(journal)
    assert report["ok"], report
    assert report["records"] == len(seen) + 1 and len(seen) >= KILL_ROUNDS


@pytest.mark.slow
def test_torn_write_by_a_killed_writer_is_reported_then_repaired(tmp_path: Path) -> None:
    """A writer whose append writes half its line and then dies by SIGKILL (inside the real append path): verify
    reports the torn tail at the right offset, readers return every reported record and not the torn one, the next
    append keeps the torn bytes in `.torn-<offset>` and gets the next seq, and verify is then OK. Repeated 20 times."""
    directory = str(tmp_path / "j")
    journal = Journal(directory)
    rng = random.Random(7)
    next_seq = 1
    for round_number in range(20):
        whole = rng.randint(1, 4)
        read_fd, write_fd = os.pipe()
        pid = support.run_child(support.append_then_tear, directory, round_number, write_fd, whole)
        os.close(write_fd)
        reported = _read_reports(read_fd, None)
        os.close(read_fd)
        _pid, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert reported == list(range(next_seq, next_seq + whole))

        size = os.path.getsize(support.segment_path(journal))
        line = encode_record(next_seq + whole, support.kill_round_body(round_number, whole))
        torn = journal.has_torn_tail()
        assert torn == (1, size - len(line) // 2, len(line) // 2)
        report = verify_journal(journal)
        assert not report["ok"] and report["damaged"] == []
        assert report["torn_tail"] == {"segment": segment_name(1), "offset": torn[1], "bytes": torn[2]}
        assert report["last_seq"] == next_seq + whole - 1
        records = [r for r in journal.reader() if r["seq"] >= next_seq]
        assert [r["seq"] for r in records] == reported

        appended = journal.append([support.body(f"after round {round_number}")])
        assert appended.first_seq == next_seq + whole
        kept = Path(directory, f"{segment_name(1)}.torn-{torn[1]}")
        assert kept.read_bytes() == line[: len(line) // 2]
        assert verify_journal(journal)["ok"]
        next_seq = appended.last_seq + 1


def test_torn_bytes_at_the_same_offset_twice_are_both_kept(journal: Journal) -> None:
    """Two writers torn at the same offset (the second one died on the append that repaired the first) leave two
    files, `.torn-<offset>` and `.torn-<offset>.1`; the first torn bytes are not overwritten."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    for torn in (b'{"seq":2,"v":1,"first', b'{"seq":2,"v":1,"second'):
        with open(support.segment_path(journal), "ab") as handle:
            handle.write(torn)
        journal.repair()
    assert Path(journal.directory, f"{segment_name(1)}.torn-{size}").read_bytes() == b'{"seq":2,"v":1,"first'
    assert Path(journal.directory, f"{segment_name(1)}.torn-{size}.1").read_bytes() == b'{"seq":2,"v":1,"second'
    assert journal.append([support.body("two")]).first_seq == 2
