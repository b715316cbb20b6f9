"""verify_journal: counts, seq continuity, damage, repeats and a torn tail, each reported where it is."""

from __future__ import annotations

import os
from pathlib import Path

import support

from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Journal, encode_record, segment_name


def _write_lines(journal: Journal, segment: int, seqs: list[int]) -> None:
    with open(support.segment_path(journal, segment), "ab") as handle:
        for seq in seqs:
            handle.write(encode_record(seq, support.body(f"record {seq}")))


def test_a_healthy_journal_is_ok(tmp_path: Path) -> None:
    """Records, seq range and segments are counted; nothing is reported; ok is True."""
    journal = Journal(str(tmp_path / "j"), segment_max_bytes=4096)
    for number in range(30):
        journal.append([support.body(f"{number}" + "p" * 200)])
    report = verify_journal(journal)
    assert report["ok"] is True
    assert (report["records"], report["first_seq"], report["last_seq"]) == (30, 1, 30)
    assert report["segments"] == [segment_name(s) for s in journal.segments()] and len(report["segments"]) > 1
    assert report["damaged"] == report["gaps"] == report["repeats"] == [] and report["torn_tail"] is None
    assert report["journal"] == journal.directory


def test_an_empty_journal_is_ok(journal: Journal) -> None:
    """No segments, no records: nothing is wrong."""
    report = verify_journal(journal)
    assert report["ok"] and report["records"] == 0 and report["first_seq"] is None and report["segments"] == []


def test_a_missing_record_is_a_gap(journal: Journal) -> None:
    """Seqs 1, 2, 4, 5 (3 lost without trace) is a gap between 2 and 4."""
    _write_lines(journal, 1, [1, 2, 4, 5])
    report = verify_journal(journal)
    assert not report["ok"] and report["gaps"] == [{"after": 2, "before": 4}] and report["damaged"] == []


def test_a_journal_not_starting_at_seq_1_is_a_gap(journal: Journal) -> None:
    """The first record must be seq 1."""
    _write_lines(journal, 1, [3, 4])
    assert verify_journal(journal)["gaps"] == [{"after": 0, "before": 3}]


def test_a_repeated_seq_is_reported(journal: Journal) -> None:
    """Seq 2 twice is a repeat (a seq given twice is never fine)."""
    _write_lines(journal, 1, [1, 2, 2, 3])
    report = verify_journal(journal)
    assert not report["ok"] and report["repeats"] == [2] and report["gaps"] == []


def test_damage_is_reported_with_seq_segment_offset_and_reason_without_a_gap(journal: Journal) -> None:
    """A damaged line is reported where it is; the seq it held is not also reported as a gap."""
    journal.append([support.body(f"record {n}") for n in range(1, 4)])
    _segment, offset, line = support.raw_lines(journal)[1]
    with open(support.segment_path(journal), "r+b") as handle:
        handle.seek(offset + line.index(b"record 2"))
        handle.write(b"X")
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(b"garbage that is no record\n")
    end = os.path.getsize(support.segment_path(journal))
    report = verify_journal(journal)
    assert report["damaged"] == [
        {"seq": 2, "segment": segment_name(1), "offset": offset, "reason": "checksum does not match"},
        {"seq": 4, "segment": segment_name(1), "offset": end - 26, "reason": "not a record"},
    ]
    assert report["gaps"] == [] and report["records"] == 2 and not report["ok"]


def test_a_torn_tail_is_reported_and_verify_does_not_repair_it(journal: Journal) -> None:
    """verify reports a torn tail (segment, offset, length) and leaves the file as it is."""
    journal.append([support.body("one")])
    size = os.path.getsize(support.segment_path(journal))
    with open(support.segment_path(journal), "ab") as handle:
        handle.write(b'{"seq":2,"v":')
    report = verify_journal(journal)
    assert report["torn_tail"] == {"segment": segment_name(1), "offset": size, "bytes": 13}
    assert not report["ok"] and report["records"] == 1
    assert os.path.getsize(support.segment_path(journal)) == size + 13
    assert not [name for name in os.listdir(journal.directory) if ".torn-" in name]


def test_an_incomplete_line_at_the_end_of_an_older_segment_is_damage(tmp_path: Path) -> None:
    """Half a line at the end of a segment that is not the last is damage (no writer can still be writing it)."""
    journal = Journal(str(tmp_path / "j"))
    _write_lines(journal, 1, [1, 2])
    with open(support.segment_path(journal, 1), "ab") as handle:
        handle.write(b'{"seq":3,"v":1')
    _write_lines(journal, 4, [4])
    report = verify_journal(journal)
    assert [(d["seq"], d["reason"]) for d in report["damaged"]] == [(3, "incomplete last line of a segment")]
    assert report["gaps"] == [] and report["torn_tail"] is None and not report["ok"]
