"""The journal's promises under attack: tailing readers racing repairs, damaged last lines, a full disk, batches cut by
SIGKILL, planted symlinks, read-only journals (journal/SPEC.md sections 5-7)."""

from __future__ import annotations

import builtins
import errno
import fcntl
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import support
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from popkit_power.errors import JournalError, PowerModeError, UnsafePathError
from popkit_power.journal import reader as reader_module
from popkit_power.journal import writer as journal_module
from popkit_power.journal.records import record_head, scan_tail
from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Journal, checksum_ok, encode_record, segment_name
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"


# -- a tailing reader, a repair and the shared lock (item 1) -----------------------------------------------------------


def test_a_reader_that_saw_a_torn_tail_reads_the_records_written_over_it(journal: Journal) -> None:
    """A reader stops at a torn tail; another process's append then cuts the torn bytes and writes new records in
    their place. The reader must return those records, with no damage: it never glues the torn bytes it saw to what
    is in the file now (regression: it kept its file offset and reported a checksum mismatch that is not in the
    file, stepped past it and lost the new records)."""
    for number in range(1, 4):
        journal.append([support.body(f"record {number}")])
    torn = encode_record(4, support.body("torn " + "t" * 600))[:500]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(torn)
    damaged: list[object] = []
    reader = journal.reader(on_damage=damaged.append)
    records = iter(reader)
    first = [next(records) for _ in range(3)]  # the reader has now seen the torn bytes at the end
    pid = support.run_child(support.append_texts, journal.directory, [f"new {n} " + "n" * 300 for n in range(5)])
    assert os.waitpid(pid, 0)[1] == 0
    rest = list(records)
    later = list(reader)
    seqs = [r["seq"] for r in first + rest + later]
    assert damaged == []
    assert seqs == list(range(1, 9))
    assert [r["data"]["text"][:5] for r in rest + later] == [f"new {n}" for n in range(5)]


def _locked_by_someone(lock_path: str) -> bool:
    """True if any process (this one included, on another open file) holds a lock on `lock_path`."""
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class _RecordedReads:
    """A stand-in for os.pread in the reader that notes, for each read, the segment's inode and whether a lock on
    journal.lock was held meanwhile; `before_read(number)` may change the file first (what a racing repair does)."""

    def __init__(self, journal: Journal, before_read: Any = None) -> None:
        self.lock_path = journal.directory + ".lock"
        self.before_read = before_read
        self.reads: list[tuple[int, bool]] = []

    def __call__(self, fd: int, length: int, offset: int) -> bytes:
        if self.before_read is not None:
            self.before_read(len(self.reads))
        self.reads.append((os.fstat(fd).st_ino, _locked_by_someone(self.lock_path)))
        return os.pread(fd, length, offset)


def test_the_last_segment_is_read_only_under_the_shared_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of the last segment, where a repair may be cutting and writing, happens while the reader holds a
    shared lock on journal.lock (so no append is half done in what it reads); older segments never change and are
    read without it. Damage and batches in the last segment are so reported and returned as the file holds them."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=4096)
    journal.append([support.body("x" * 5000)])
    journal.append([support.body("a"), support.body("b")])
    with open(support.segment_path(journal, 2), "ab") as handle:
        handle.write(b"damage\n")
    journal.append([support.body("c"), support.body("d")])
    fake = _RecordedReads(journal)
    monkeypatch.setattr(reader_module, "_pread", fake)
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 2, 3, 5, 6] and [(d.seq, d.segment) for d in damaged] == [(4, 2)]
    last = os.stat(support.segment_path(journal, 2)).st_ino
    assert fake.reads and all(locked == (inode == last) for inode, locked in fake.reads), fake.reads
    assert any(inode == last for inode, _locked in fake.reads) and any(inode != last for inode, _ in fake.reads)


def _read_and_append_in_the_loop(directory: str) -> None:
    """Child: read a journal whose last segment has batches and damage (so the reader takes the shared lock) and
    append, through the same Journal and through another one, after every record returned."""
    journal = Journal(directory)
    other = Journal(directory)
    for count, _record in enumerate(journal.reader(on_damage=lambda damage: None)):
        journal.append([support.body("from the loop")])
        other.append([support.body("a"), support.body("b")])
        if count == 5:
            break


def test_a_reader_never_holds_the_lock_while_its_caller_appends(journal: Journal) -> None:
    """A caller that appends in the same process while it iterates (the hook does) never waits for a lock its own
    reader holds: the reader releases the shared lock before it returns a record."""
    journal.append([support.body("one"), support.body("two")])
    journal.append([support.body("three")])
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(b"a damaged line\n")
    journal.append([support.body("four"), support.body("five")])
    pid = support.run_child(_read_and_append_in_the_loop, journal.directory)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("reading and appending in one process dead-locked")
    assert status == 0
    assert verify_journal(journal)["damaged"] != [] and journal.has_torn_tail() is None


def test_a_journal_no_writer_ever_locked_is_read_without_a_lock_file(tmp_path: Path) -> None:
    """Without journal.lock (a copied journal, read-only) no writer ever wrote: it is read without a lock, none is
    made, and damage is reported."""
    directory = tmp_path / "j"
    directory.mkdir(mode=0o700)
    lines = [encode_record(1, support.body("one")), b"garbage\n", encode_record(3, support.body("three"))]
    (directory / segment_name(1)).write_bytes(b"".join(lines))
    records, damaged = support.read_all(Journal(str(directory), read_only=True))
    assert [r["seq"] for r in records] == [1, 3] and [(d.seq, d.reason) for d in damaged] == [(2, "not a record")]
    assert not (tmp_path / "j.lock").exists()


# -- the next seq after a damaged last line (item 5) -------------------------------------------------------------------


@pytest.mark.parametrize("digit", [b"1", b"9"], ids=["to-an-earlier-seq", "to-a-later-seq"])
def test_the_next_seq_never_comes_from_a_line_whose_checksum_fails(journal: Journal, digit: bytes) -> None:
    """The seq digits of the last line are damaged (3 becomes 1 or 9): the next append neither repeats a seq nor
    jumps ahead; the damaged line counts as the one seq after the last valid line."""
    for number in range(1, 4):
        journal.append([support.body(f"record {number}")])
    _segment, offset, line = support.raw_lines(journal)[-1]
    assert line.startswith(b'{"seq":3,')
    with open(support.segment_path(journal), "r+b") as handle:
        handle.seek(offset + len(b'{"seq":'))
        handle.write(digit)
    assert Journal(journal.directory).append([support.body("next")]).first_seq == 4
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 2, 4]
    assert len(damaged) == 1 and damaged[0].offset == offset


# -- a nearly full disk (item 3) ---------------------------------------------------------------------------------------


def _append_with_file_size_limit(directory: str, limit: int, report_fd: int) -> None:
    """Child: append one record with RLIMIT_FSIZE at `limit` bytes; report the JournalError message, or 'ok'."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        Journal(directory).append([support.body("written under the limit")])
        os.write(report_fd, b"ok")
    except JournalError as error:
        os.write(report_fd, str(error).encode())


def test_torn_bytes_are_kept_whole_or_the_repair_does_not_happen(journal: Journal) -> None:
    """A 100,031-byte torn tail, and the next writer may write files of at most 8,192 bytes (RLIMIT_FSIZE): keeping
    the torn bytes aside fails, so the repair does not happen: the append fails with a JournalError saying so, the
    partial .torn file is removed and the segment keeps its torn tail. A writer without the limit then repairs it
    and keeps all 100,031 bytes (regression: 8,192 bytes were kept, the rest dropped silently)."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    torn = encode_record(2, support.body("y" * 120_000))[:100_031]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(torn)
    read_fd, write_fd = os.pipe()
    pid = support.run_child(_append_with_file_size_limit, journal.directory, 8192, write_fd)
    os.close(write_fd)
    message = os.read(read_fd, 4096).decode()
    os.close(read_fd)
    assert os.waitpid(pid, 0)[1] == 0
    assert "torn" in message and segment_name(1) in message, message
    assert os.path.getsize(support.segment_path(journal)) == size + len(torn)
    assert [name for name in os.listdir(journal.directory) if ".torn-" in name] == []
    assert Journal(journal.directory).append([support.body("two")]).first_seq == 2
    assert Path(journal.directory, f"{segment_name(1)}.torn-{size}").read_bytes() == torn
    assert verify_journal(journal)["ok"]


def test_a_short_write_of_torn_bytes_is_finished_not_dropped(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write may write less than asked without an error (a signal, a nearly full disk): the rest is written."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    torn = encode_record(2, support.body("z" * 50_000))[:30_000]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(torn)
    real_write = os.write

    def at_most_4096(fd: int, data: bytes) -> int:
        return real_write(fd, bytes(data[:4096]))

    monkeypatch.setattr(os, "write", at_most_4096)
    Journal(journal.directory).append([support.body("two")])
    monkeypatch.undo()
    assert Path(journal.directory, f"{segment_name(1)}.torn-{size}").read_bytes() == torn
    assert verify_journal(journal)["ok"]


def _append_batch_with_file_size_limit(directory: str, limit: int, report_fd: int) -> None:
    """Child: append a batch of three 40 KB records with RLIMIT_FSIZE at `limit`; report the error, or 'ok'."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        Journal(directory).append([support.body(f"{n}" * 40_000) for n in range(3)])
        os.write(report_fd, b"ok")
    except JournalError as error:
        os.write(report_fd, str(error).encode())


def test_a_batch_that_does_not_fit_under_the_file_size_limit_leaves_nothing(journal: Journal) -> None:
    """The disk takes only part of a batch's single write (RLIMIT_FSIZE): the append fails with a JournalError naming
    the cause, the segment is cut back to where it was (no torn tail, no record of the batch visible), and the next
    append gets the seq the failed one would have had."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    read_fd, write_fd = os.pipe()
    pid = support.run_child(_append_batch_with_file_size_limit, journal.directory, size + 50_000, write_fd)
    os.close(write_fd)
    message = os.read(read_fd, 4096).decode()
    os.close(read_fd)
    assert os.waitpid(pid, 0)[1] == 0
    assert "File too large" in message, message
    assert os.path.getsize(support.segment_path(journal)) == size and journal.has_torn_tail() is None
    assert [r["seq"] for r in journal.reader()] == [1]
    assert Journal(journal.directory).append([support.body("two")]).first_seq == 2
    assert verify_journal(journal)["ok"]


# -- multi-record appends under SIGKILL (item 4) -----------------------------------------------------------------------


BATCH_KILL_ROUNDS = 220


@pytest.mark.slow
def test_a_batch_cut_by_sigkill_is_never_partly_visible(tmp_path: Path) -> None:
    """220 times: a forked writer appends batches of 2-5 records (about a third of them 100-200 KB, so a kill lands
    inside a write) and reports each batch after its append returned; it is SIGKILLed at a random moment. A reader
    following the journal must never return part of a batch, and every reported batch is there whole. Each next
    writer repairs what the killed one left; in the end verify is OK. At least one kill must have left whole lines
    of a batch before its torn bytes (else the rounds proved nothing)."""
    rng = random.Random(20261129)
    directory = str(tmp_path / "j")
    journal = Journal(directory, segment_max_bytes=4 * 1024 * 1024)
    reader = journal.reader()
    batches: dict[tuple[int, int], list[dict[str, object]]] = {}
    acknowledged: list[tuple[int, int]] = []
    partial_rounds = open_batch_cut = 0
    seen_incomplete: set[tuple[int, int]] = set()
    for round_number in range(BATCH_KILL_ROUNDS):
        read_fd, write_fd = os.pipe()
        pid = support.run_child(support.append_batches_until_killed, directory, round_number, write_fd)
        os.close(write_fd)
        try:
            reports = support.read_reports(read_fd, rng.randint(1, 4), width=16)
            time.sleep(rng.random() * 0.003)
            os.kill(pid, signal.SIGKILL)
            reports += support.read_reports(read_fd, None, width=16)
        finally:
            os.close(read_fd)
            _pid, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        acknowledged += [(round_number, number) for number in range(len(reports))]
        for record in reader:
            data = record["data"]
            assert support.body_of(support.without_journal_fields(record)) == support.batch_body(
                data["round"], data["batch"], data["index"], data["size"])
            batches.setdefault((data["round"], data["batch"]), []).append(record)
        torn = journal.has_torn_tail()
        if torn is not None:
            with open(support.segment_path(journal, torn[0]), "rb") as handle:
                open_batch_cut += b"\n" in os.pread(handle.fileno(), torn[2], torn[1])
        incomplete = {key for key, records in batches.items() if len(records) != records[0]["data"]["size"]}
        partial_rounds += bool(incomplete - seen_incomplete)
        seen_incomplete |= incomplete
    visible_of_incomplete = sum(len(records) for records in batches.values()
                                if len(records) != records[0]["data"]["size"])
    lost = [key for key in acknowledged if key not in batches]
    assert (lost, visible_of_incomplete, partial_rounds) == ([], 0, 0)
    assert open_batch_cut > 0, "no kill landed after a whole record of a batch: the test proved nothing"
    for records in batches.values():
        seqs = [r["seq"] for r in records]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert [r["data"]["index"] for r in records] == list(range(len(records)))
        assert all("more" not in r for r in records)
    journal.append([support.body("after the last kill")])
    report = verify_journal(journal)
    assert report["ok"], report


# -- batches: the `more` framing (item 4) ------------------------------------------------------------------------------


def test_every_record_of_a_batch_but_the_last_says_how_many_follow(journal: Journal) -> None:
    """`{"seq":N,"more":K,...}`: K records of the same append follow. A single-record append has no `more`, and
    readers return the records without it."""
    journal.append([support.body("alone")])
    journal.append([support.body("a"), support.body("b"), support.body("c")])
    lines = [line for _segment, _offset, line in support.raw_lines(journal)]
    assert lines[0].startswith(b'{"seq":1,"v":1,')
    assert [line[:18] for line in lines[1:]] == [b'{"seq":2,"more":2,', b'{"seq":3,"more":1,', b'{"seq":4,"v":1,"id']
    assert all(checksum_ok(line) for line in lines)
    records, damaged = support.read_all(journal)
    assert damaged == [] and [r["seq"] for r in records] == [1, 2, 3, 4]
    assert all("more" not in r for r in records)
    assert [list(r)[:2] for r in records] == [["seq", "v"]] * 4


@pytest.mark.parametrize(("head", "expected"), [
    (b'{"seq":7,"v":1,', (7, 0)), (b'{"seq":7,"more":3,"v":1,', (7, 3)), (b'{"seq":7,"more":0,"v":1,', (7, -1)),
    (b'{"seq":7,"more":x,"v":1,', (7, -1)), (b'{"seq":7,"more":-2,"v":1,', (7, -1)), (b'{"seq":7,"more":3', (7, -1)),
    (b'{"seq":x,"more":3,', None), (b'["seq",7]', None),
])
def test_record_head_reads_seq_and_more_without_parsing_json(head: bytes, expected: tuple[int, int] | None) -> None:
    """`more` is a positive decimal number followed by a comma, right after the seq; anything else there is -1."""
    assert record_head(head) == expected


def test_a_line_whose_more_is_malformed_is_not_a_record(journal: Journal) -> None:
    """A line with a valid checksum but `"more":0` (no writer writes it) is damage, `not a record`, never held."""
    checked = b'{"seq":2,"more":0,"v":1,"data":{}}'[:-1]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(encode_record(1, support.body("one")))
        handle.write(checked + b',"crc":"%08x"}\n' % zlib.crc32(checked))
        handle.write(encode_record(3, support.body("three")))
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 3] and [(d.seq, d.reason) for d in damaged] == [(2, "not a record")]


def test_an_envelope_may_not_begin_with_a_more_member(journal: Journal) -> None:
    """A body whose first member is `more` would read as batch framing: refused, nothing written."""
    with pytest.raises(JournalError, match="more"):
        journal.append([b'{"more":1,"v":1}'])
    assert journal.segments() == []


def _cut_open_batch(journal: Journal, torn: bool) -> tuple[int, bytes]:
    """Append record 1, then the first two of three records of a batch (and, with `torn`, half of the third), as a
    writer killed inside its write leaves them; return where the batch begins and the bytes it left."""
    journal.append([support.body("one")])
    start = os.path.getsize(support.segment_path(journal))
    lines = [encode_record(2 + index, support.body(f"batch {index}"), 2 - index) for index in range(3)]
    left = lines[0] + lines[1] + (lines[2][:30] if torn else b"")
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(left)
    return start, left


@pytest.mark.parametrize("torn", [True, False], ids=["with-torn-bytes", "cut-at-a-line-end"])
def test_an_open_batch_is_a_torn_tail_invisible_until_the_next_append_cuts_it(journal: Journal, torn: bool) -> None:
    """The whole lines of a batch whose last record is missing: readers stop before them, end_position is before
    them, has_torn_tail and verify report them with the torn bytes; the next append moves them to the .torn file and
    reuses their seqs; then verify is OK and no reader ever returned them."""
    start, left = _cut_open_batch(journal, torn)
    reader = journal.reader()
    assert [r["seq"] for r in reader] == [1] and reader.position.offset == start
    assert journal.end_position() == journal_module.Position(1, start, 2)
    assert journal.has_torn_tail() == (1, start, len(left))
    report = verify_journal(journal)
    assert not report["ok"] and report["torn_tail"] == {"segment": segment_name(1), "offset": start,
                                                        "bytes": len(left)}
    assert report["damaged"] == [] and report["last_seq"] == 1
    appended = Journal(journal.directory).append([support.body("two")])
    assert appended.first_seq == 2
    assert Path(journal.directory, f"{segment_name(1)}.torn-{start}").read_bytes() == left
    assert [(r["seq"], r["data"]["text"]) for r in reader] == [(2, "two")]
    assert verify_journal(journal)["ok"]


def test_a_complete_batch_with_a_damaged_record_returns_the_others(journal: Journal) -> None:
    """A flipped byte in the middle record of a complete batch (acknowledged data): the damaged line counts as the
    batch's record and is reported; the batch's valid records are returned, not hidden."""
    journal.append([support.body(f"record {n}") for n in range(1, 4)])
    journal.append([support.body("after")])
    _segment, offset, line = support.raw_lines(journal)[1]
    with open(support.segment_path(journal), "r+b") as handle:
        handle.seek(offset + line.index(b"record 2"))
        handle.write(b"R")
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 3, 4]
    assert [(d.seq, d.offset, d.reason) for d in damaged] == [(2, offset, "checksum does not match")]
    assert Journal(journal.directory).append([support.body("next")]).first_seq == 5


def test_a_batch_broken_in_the_middle_is_reported_as_an_incomplete_batch(journal: Journal) -> None:
    """A batch whose next line is a valid record that does not continue it can never be completed: its records are
    reported as an incomplete batch (with their seqs), never returned; the record after them is returned."""
    lines = [encode_record(1, support.body("one")), encode_record(2, support.body("two"), 2),
             encode_record(3, support.body("three"), 1), encode_record(4, support.body("four"), 0)[:0],
             encode_record(5, support.body("five"))]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(b"".join(lines))
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 5]
    assert [(d.seq, d.reason) for d in damaged] == [(2, "incomplete batch"), (3, "incomplete batch")]


def test_an_open_batch_at_the_end_of_an_older_segment_is_an_incomplete_batch(tmp_path: Path) -> None:
    """Only the last segment is written to: an open batch at the end of an older one is reported, not waited for."""
    journal = Journal(str(tmp_path / "j"))
    with open(support.segment_path(journal, 1), "ab") as handle:
        handle.write(encode_record(1, support.body("one")) + encode_record(2, support.body("two"), 1))
    with open(support.segment_path(journal, 3), "ab") as handle:
        handle.write(encode_record(3, support.body("three")))
    records, damaged = support.read_all(journal)
    assert [r["seq"] for r in records] == [1, 3]
    assert [(d.seq, d.segment, d.reason) for d in damaged] == [(2, 1, "incomplete batch")]


# Lines for the agreement test: a record alone, the first records of a batch of up to 4, a damaged line (whose head
# may say `more`), garbage.


@pytest.mark.parametrize("segment_max_bytes", [64 * 1024 * 1024, 4096], ids=["last-segment", "older-segment"])
def test_a_batch_larger_than_one_read_is_returned_whole(tmp_path: Path, segment_max_bytes: int) -> None:
    """A batch of five 900 KB records spans several 1 MiB reads: it is held across them and returned whole, in the
    last segment (read under the lock) as in an older one."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=segment_max_bytes)
    journal.append([support.body("one")])
    journal.append([support.body(str(n) * 900_000) for n in range(5)])
    journal.append([support.body("after")])
    records, damaged = support.read_all(journal)
    assert damaged == [] and [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["data"]["text"][:1] for r in records[1:6]] == ["0", "1", "2", "3", "4"]


def test_a_batch_held_across_two_reads_is_not_glued_to_what_a_repair_wrote(
        journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader holds the whole lines of batch A (seqs 2-3 of 3) at the end of one read; before its next read a repair
    cuts A (its writer died) and batch B of the same shape is written in its place, so B's last record starts where
    A's would have. The reader must not complete A with B's last record: it sees that A's lines are gone, and
    returns B's records, never A's."""
    journal.append([support.body("one")])
    start = os.path.getsize(support.segment_path(journal))
    batch_a = [support.body("A" * 50), support.body("a" * 800_000), support.body("a" * 400_000)]
    batch_b = [support.body("B" * 50), support.body("b" * 800_000), support.body("b" * 400_000)]
    lines_a = [encode_record(2 + i, body, 2 - i) for i, body in enumerate(batch_a)]
    lines_b = [encode_record(2 + i, body, 2 - i) for i, body in enumerate(batch_b)]
    assert [len(line) for line in lines_a] == [len(line) for line in lines_b]
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(lines_a[0] + lines_a[1] + lines_a[2][:300_000])  # A's writer was killed in its write

    def repair_and_write_b(reads_so_far: int) -> None:
        if reads_so_far == 1:  # after the read that ended inside A's torn last line
            with open(support.segment_path(journal), "r+b") as handle:
                handle.truncate(start)
                handle.seek(start)
                handle.write(b"".join(lines_b))

    fake = _RecordedReads(journal, repair_and_write_b)
    monkeypatch.setattr(reader_module, "_pread", fake)
    records, damaged = support.read_all(journal)
    assert len(fake.reads) >= 2 and damaged == []
    assert [(r["seq"], r["data"]["text"][:3]) for r in records] == [(1, "one"), (2, "BBB"), (3, "bbb"), (4, "bbb")]


_line_kinds = st.lists(st.one_of(
    st.tuples(st.just("single"), st.integers(1, 12)),
    st.tuples(st.just("batch"), st.integers(2, 4), st.integers(1, 4), st.integers(1, 12)),
    st.tuples(st.just("damaged"), st.integers(1, 12), st.integers(0, 3)),
    st.tuples(st.just("garbage"), st.integers(0, 3)),
), max_size=8)


def _lines_of(kinds: list[tuple[int | str, ...]]) -> list[bytes]:
    lines: list[bytes] = []
    for kind in kinds:
        if kind[0] == "single":
            lines.append(encode_record(int(kind[1]), support.body("s")))
        elif kind[0] == "batch":  # the first `kept` records of a batch of `size` starting at `seq`
            size, kept, seq = int(kind[1]), min(int(kind[2]), int(kind[1])), int(kind[3])
            lines += [encode_record(seq + index, support.body("b"), size - 1 - index) for index in range(kept)]
        elif kind[0] == "damaged":  # its head still reads (seq, more), but its checksum fails
            line = bytearray(encode_record(int(kind[1]), support.body("d"), int(kind[2])))
            line[-15] ^= 1
            lines.append(bytes(line))
        else:
            lines.append(b"x" * int(kind[1]) + b"\n")
    return lines


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=_line_kinds, torn=st.binary(max_size=3))
def test_readers_stop_exactly_where_a_repair_cuts(tmp_path: Path, kinds: list[tuple[int | str, ...]],
                                                 torn: bytes) -> None:
    """For any lines (records, batches whole or cut short, damaged lines, garbage) and torn bytes at the end of the
    last segment, a reader stops exactly where the next append's repair cuts (records.scan_tail); records it
    returned or damage it reported are never cut."""
    data = b"".join(_lines_of(kinds)) + torn.replace(b"\n", b"")
    directory = Path(tempfile.mkdtemp(dir=tmp_path))
    (directory / segment_name(1)).write_bytes(data)
    reader = Journal(str(directory), read_only=True).reader(on_damage=lambda damage: None)
    for _record in reader:
        pass
    found = scan_tail(data, True)
    assert found is not None and reader.position.offset == found[0]


# -- symlinks, modes, clear errors (items 9, 12, 15) -------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the journal that a planted symlink points at; its bytes and mode must never change."""
    path = tmp_path / "outside.txt"
    path.write_bytes(b"precious\n")
    path.chmod(0o644)
    return path


def _unchanged(path: Path) -> bool:
    return path.read_bytes() == b"precious\n" and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_planted_symlink_as_journal_lock_is_refused(journal: Journal, outside: Path, tmp_path: Path) -> None:
    """journal.lock is a symlink to a file outside (or to where none is yet): appending, repairing and verifying
    raise UnsafePathError (a PowerModeError) naming it, and nothing is written or created outside."""
    journal.append([support.body("one")])
    journal.close()
    lock = journal.directory + ".lock"
    for target in (outside, tmp_path / "not-yet"):
        os.unlink(lock)
        os.symlink(target, lock)
        for action in (lambda: Journal(journal.directory).append([support.body("two")]),
                       lambda: Journal(journal.directory).repair(),
                       lambda: verify_journal(Journal(journal.directory, read_only=True))):
            with pytest.raises(UnsafePathError, match="symbolic link") as raised:
                action()
            assert isinstance(raised.value, PowerModeError) and lock in str(raised.value)
    assert _unchanged(outside) and not (tmp_path / "not-yet").exists()


def test_a_planted_symlink_as_a_segment_is_refused(journal: Journal, outside: Path, tmp_path: Path) -> None:
    """A segment file that is a symlink to a file outside: appends and readers raise UnsafePathError; the file outside
    is neither read into the journal nor written. The same for a link planted where the next segment will go."""
    journal.append([support.body("x" * 100)])
    journal.close()
    segment = support.segment_path(journal)
    os.rename(segment, tmp_path / "moved")
    os.symlink(outside, segment)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        Journal(journal.directory).append([support.body("two")])
    with pytest.raises(UnsafePathError, match="symbolic link"):
        list(Journal(journal.directory, read_only=True).reader())
    os.unlink(segment)
    os.rename(tmp_path / "moved", segment)
    small = Journal(journal.directory, segment_max_bytes=4096)
    small.append([support.body("y" * 5000)])
    os.symlink(outside, support.segment_path(journal, 3))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        small.append([support.body("rolls over")])
    assert _unchanged(outside)


def test_a_planted_symlink_where_torn_bytes_go_is_left_alone(journal: Journal, outside: Path) -> None:
    """`.torn-<offset>` is a symlink to a file outside: the torn bytes go to `.torn-<offset>.1`, the link is never
    followed and the file outside keeps its bytes."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(b'{"seq":2,"v":1,"torn')
    os.symlink(outside, Path(journal.directory, f"{segment_name(1)}.torn-{size}"))
    assert Journal(journal.directory).append([support.body("two")]).first_seq == 2
    assert Path(journal.directory, f"{segment_name(1)}.torn-{size}.1").read_bytes() == b'{"seq":2,"v":1,"torn'
    assert _unchanged(outside)


def test_a_journal_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    """The journal directory itself may not be a link, whether the journal is opened to write or to read."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    os.symlink(real, tmp_path / "link")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        Journal(str(tmp_path / "link"))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        Journal(str(tmp_path / "link"), read_only=True)
    assert list(real.iterdir()) == []


def test_files_are_0600_and_directories_0700_even_under_umask_0277(tmp_path: Path) -> None:
    """Under umask 0277 (which would make new files 0400 and directories 0500) every directory the journal makes is
    0700 and every file (segments, journal.lock, .torn files) is 0600."""
    old = os.umask(0o277)
    try:
        journal = Journal(str(tmp_path / "a" / "b" / "journal"), segment_max_bytes=4096)
        journal.append([support.body("x" * 5000)])
        journal.append([support.body("y"), support.body("z")])
        with open(support.segment_path(journal, 2), "ab") as handle:
            handle.write(b'{"seq":4,')
        Journal(journal.directory, segment_max_bytes=4096).append([support.body("w")])
    finally:
        os.umask(old)
    paths = [tmp_path / "a", *(tmp_path / "a").rglob("*")]
    names = {p.name for p in paths}
    assert {"b", "journal", "journal.lock", segment_name(1), segment_name(2)} <= names
    assert any(".torn-" in name for name in names)
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_a_segment_that_is_a_directory_is_one_clear_error(session: Session) -> None:
    """A directory where the last segment should be a file: readers and appends raise UnsafePathError naming it,
    and `popkit-power verify` prints one line naming it and exits 2, without a traceback."""
    bad = support.segment_path(session.journal, 100)
    os.mkdir(bad, 0o700)
    with pytest.raises(UnsafePathError, match=segment_name(100)):
        list(session.journal.reader())
    with pytest.raises(UnsafePathError, match=segment_name(100)):
        Journal(session.journal.directory).append([support.body("x")])
    result = subprocess.run([str(SCRIPT), "verify", session.id], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "POPKIT_POWER_HOME": session.power_dir})
    assert result.returncode == 2, result
    assert result.stderr.count("\n") == 1 and segment_name(100) in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# -- read-only journals (item 15) --------------------------------------------------------------------------------------


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class _NoWrites:
    """Fails, with EROFS, every call that could change a file or directory: what a read-only file system does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.refused: list[str] = []
        real_open = os.open

        def checked_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
            if flags & _WRITE_FLAGS:
                return self._refuse(f"open {path} for writing")
            return real_open(path, flags, mode, *args, **kwargs)

        monkeypatch.setattr(os, "open", checked_open)
        for name in ("mkdir", "makedirs", "unlink", "remove", "rename", "replace", "chmod", "fchmod", "ftruncate",
                     "truncate", "pwrite", "link", "symlink", "rmdir"):
            monkeypatch.setattr(os, name, lambda *args, _name=name, **kwargs: self._refuse(f"{_name}{args[:1]}"))
        real_builtin_open = builtins.open

        def checked_builtin_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(flag in mode for flag in "wax+"):
                return self._refuse(f"open {file} with mode {mode}")
            return real_builtin_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", checked_builtin_open)

    def _refuse(self, what: str) -> Any:
        self.refused.append(what)
        raise OSError(errno.EROFS, "Read-only file system", what)


def _journal_to_check(directory: str) -> tuple[int, int]:
    """A journal with a damaged last-segment line and a torn tail, as verify should report it: (damage offset, torn
    offset)."""
    journal = Journal(directory)
    journal.append([support.body("one"), support.body("two")])
    journal.append([support.body("three")])
    [(offset, line)] = [(offset, line) for _segment, offset, line in support.raw_lines(journal) if b'"two"' in line]
    with open(support.segment_path(journal), "r+b") as handle:
        handle.seek(offset + line.index(b"two"))
        handle.write(b"T")
    torn_at = os.path.getsize(support.segment_path(journal))
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(b'{"seq":4,"more":1,"v"')
    journal.close()
    return offset, torn_at


def test_verify_checks_a_journal_it_may_only_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every write refused (as on a read-only file system), a journal opened with read_only=True is verified:
    damage read under the shared lock, the torn tail found, and not one write even tried. Appending to it or
    repairing it is a clear JournalError; opening a missing one creates nothing."""
    directory = str(tmp_path / "session" / "journal")
    damaged_at, torn_at = _journal_to_check(directory)
    guard = _NoWrites(monkeypatch)
    journal = Journal(directory, read_only=True)
    report = verify_journal(journal)
    assert [(d["seq"], d["offset"]) for d in report["damaged"]] == [(2, damaged_at)]
    assert report["torn_tail"] == {"segment": segment_name(1), "offset": torn_at, "bytes": 21}
    assert (report["records"], report["ok"]) == (2, False)
    assert journal.end_position() == journal_module.Position(1, torn_at, 4)
    with pytest.raises(JournalError, match="read-only"):
        journal.append([support.body("no")])
    with pytest.raises(JournalError, match="read-only"):
        journal.repair()
    with pytest.raises(JournalError, match="no journal at"):
        Journal(str(tmp_path / "missing" / "journal"), read_only=True)
    Journal(directory).close()  # an existing journal opened to write checks its directory without writing
    assert guard.refused == []
    monkeypatch.undo()
    assert not (tmp_path / "missing").exists()


def test_popkit_power_verify_on_a_read_only_power_directory(session: Session, tmp_path: Path) -> None:
    """`popkit-power verify` in a power directory mounted read-only (root: a private read-only bind mount; others:
    chmod a-w) reports the damage and the torn tail (exit 1, no traceback) and changes nothing."""
    _journal_to_check(session.journal.directory)
    before = {str(p): (p.read_bytes() if p.is_file() else None) for p in Path(session.power_dir).rglob("*")}
    command = [str(SCRIPT), "--home", session.power_dir, "verify", "--json"]
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            pytest.skip("no unshare(1) to make a read-only mount as root (the write-refusing test covers it)")
        script = 'mount --bind -o ro "$1" "$1" || exit 97; touch "$1/probe" 2>/dev/null && exit 98; shift; exec "$@"'
        command = ["unshare", "--mount", "sh", "-c", script, "sh", session.power_dir, *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode == 97:
            pytest.skip(f"cannot bind-mount read-only here: {result.stderr.strip()}")
    else:
        subprocess.run(["chmod", "-R", "a-w", session.power_dir], check=True)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        finally:
            subprocess.run(["chmod", "-R", "u+w", session.power_dir], check=True)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    report = orjson.loads(result.stdout)
    assert [d["seq"] for d in report["damaged"]] == [4] and report["torn_tail"]["bytes"] == 21
    after = {str(p): (p.read_bytes() if p.is_file() else None) for p in Path(session.power_dir).rglob("*")}
    assert after == before


# -- layering ----------------------------------------------------------------------------------------------------------


def test_the_journal_imports_only_lean_modules_and_neither_config_nor_home() -> None:
    """journal.py, reader.py, records.py and repair.py import only os/zlib/errno/stat and the project's _fs, _lock,
    errors, keys (the file names, which imports only os) and each other (config and home are above them); importing
    the journal loads nothing else."""
    allowed = {"popkit_power._fs", "popkit_power._lock", "popkit_power.errors", "popkit_power.keys",
               "popkit_power.journal",
               "popkit_power.journal.records", "popkit_power.journal.reader", "popkit_power.journal.repair",
               "popkit_power.journal.writer", "popkit_power"}
    code = ("import sys; before = set(sys.modules); import popkit_power.journal.writer; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(result.stdout.split())
    assert loaded - allowed <= {"__future__", "errno", "stat", "fcntl", "zlib"}, loaded - allowed
    assert not {"popkit_power.config", "popkit_power.home"} & loaded


# -- stress: a few seconds of tools/stress_journal.py ------------------------------------------------------------------


@pytest.mark.slow
def test_stress_writers_killed_at_random_while_tailing_readers_follow() -> None:
    """tools/stress_journal.py for 3 seconds (the 60-second run is in tools/BENCHMARKS.md): writers appending single
    records and batches are SIGKILLed at random moments and restarted while two tailing reader processes follow the
    journal. Each reader returns every record written after its start, once, in order, without damage; no
    acknowledged record is lost; no batch is partly there; verify is OK."""
    tool = Path(__file__).resolve().parent.parent / "tools" / "stress_journal.py"
    result = subprocess.run([sys.executable, str(tool), "--seconds", "3", "--writers", "3", "--pause-ms", "2",
                             "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = orjson.loads(result.stdout)
    assert summary["failures"] == [] and summary["verify_ok"]
    assert summary["kills"] > 10 and summary["lost"] == 0 and summary["partial_batches"] == 0
    assert [r["returned"] == r["expected"] > 0 and r["damage"] == 0 for r in summary["readers"]] == [True, True]
