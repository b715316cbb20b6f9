"""The journal's promises under attack: tailing readers racing repairs, damaged last lines, a full disk, batches cut by
SIGKILL, planted symlinks, read-only journals (journal/SPEC.md sections 5-7)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
import support

from popkit_power.errors import JournalError
from popkit_power.journal import Journal, encode_record, segment_name
from popkit_power.verify import verify_journal

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
