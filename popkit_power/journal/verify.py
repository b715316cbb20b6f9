"""Checking a journal: record count, seq range, gaps and repeats, damaged lines (and records no segment holds), a torn
tail, segments not named by their first seq."""

from __future__ import annotations

import os
from typing import Any

from .._fs import open_file
from .writer import Damage, Journal, record_seq, segment_name


def verify_journal(journal: Journal) -> dict[str, Any]:
    """A report on every record of `journal`; `report["ok"]` is False when anything is damaged or missing."""
    damaged: list[Damage] = []
    gaps: list[dict[str, int]] = []
    repeats: list[int] = []
    records = 0
    first_seq: int | None = None
    last_seq: int | None = None
    reader = journal.reader(on_damage=damaged.append)
    for event in reader:
        seq = event["seq"]
        records += 1
        if first_seq is None:
            first_seq = seq
            if seq != 1 and not any(d.seq < seq for d in damaged):
                gaps.append({"after": 0, "before": seq})
        elif seq <= last_seq:
            repeats.append(seq)
        elif seq != last_seq + 1 and not any(last_seq < d.seq < seq for d in damaged):  # type: ignore[operator]
            gaps.append({"after": last_seq, "before": seq})  # type: ignore[dict-item]
        last_seq = seq if last_seq is None else max(last_seq, seq)
    torn = journal.has_torn_tail()
    misnamed = _misnamed(journal)
    report: dict[str, Any] = {
        "journal": journal.directory,
        "segments": [segment_name(segment) for segment in journal.segments()],
        "records": records,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "damaged": [{"seq": d.seq, "segment": segment_name(d.segment), "offset": d.offset, "reason": d.reason}
                    for d in damaged],
        "gaps": gaps,
        "repeats": repeats,
        "misnamed": misnamed,
        "torn_tail": None if torn is None else {"segment": segment_name(torn[0]), "offset": torn[1],
                                                 "bytes": torn[2]},
    }
    report["ok"] = not (damaged or gaps or repeats or torn or misnamed)
    return report


def _misnamed(journal: Journal) -> list[dict[str, Any]]:
    """The segments whose first line starts with a seq other than their name (readers go from segment to segment by
    name: such a segment's records would be reported missing, or read twice)."""
    found = []
    for segment in journal.segments():
        try:
            fd = open_file(journal.segment_path(segment), os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            first = record_seq(os.pread(fd, 64, 0))
        finally:
            os.close(fd)
        if first is not None and first != segment:
            found.append({"segment": segment_name(segment), "first_seq": first})
    return found
