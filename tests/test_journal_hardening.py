"""The journal's promises under attack: tailing readers racing repairs, damaged last lines, a full disk, batches cut by
SIGKILL, planted symlinks, read-only journals (journal/SPEC.md sections 5-7)."""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import support

from popkit_power import reader as reader_module
from popkit_power.errors import JournalError
from popkit_power.journal import Journal, encode_record, segment_name
from popkit_power.verify import verify_journal

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
    records, damaged = support.read_all(Journal(str(directory), create=False))
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
