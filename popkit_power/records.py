"""The journal's line format (journal/SPEC.md sections 2 and 3): segment names and record lines.

A record is one line that starts with its `seq` and ends with a CRC-32 of everything before `,"crc":`:

    {"seq":42,"v":1,...,"data":{...},"crc":"1c291ca3"}

This module is pure (bytes in, numbers out) so that the journal and a replicator read lines the same way. It is on the
hook's hot path: it imports only `zlib`.
"""

from __future__ import annotations

import zlib

SEGMENT_SUFFIX = ".jsonl"
SEGMENT_DIGITS = 16
SEQ_PREFIX = b'{"seq":'
CRC_OPEN = b',"crc":"'
CRC_CLOSE = b'"}\n'
CRC_TAIL = len(CRC_OPEN) + 8 + len(CRC_CLOSE)  # the bytes after the checked part of a line
_SEQ_DIGITS_END = len(SEQ_PREFIX) + 21  # a comma after at most 20 digits


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record is `first_seq`: 16 digits and `.jsonl`."""
    return f"{first_seq:0{SEGMENT_DIGITS}d}{SEGMENT_SUFFIX}"


def encode_record(seq: int, body: bytes) -> bytes:
    """The journal line for `seq` and a serialized envelope `body` (a JSON object without seq and crc)."""
    checked = b"%s%d,%s" % (SEQ_PREFIX, seq, body[1:-1])
    return b"%s%s%08x%s" % (checked, CRC_OPEN, zlib.crc32(checked), CRC_CLOSE)


def record_seq(line: bytes) -> int | None:
    """The seq a line starts with, or None if it does not start like a record (checksum not checked)."""
    if not line.startswith(SEQ_PREFIX):
        return None
    comma = line.find(b",", 7, _SEQ_DIGITS_END)
    digits = line[7:comma]
    return int(digits) if comma > 0 and digits.isdigit() else None


def checksum_ok(line: bytes) -> bool:
    """True if `line` (with its newline) ends in a CRC-32 that matches everything before it."""
    if len(line) <= CRC_TAIL or not line.endswith(CRC_CLOSE) or line[-CRC_TAIL:-11] != CRC_OPEN:
        return False
    try:
        expected = int(line[-11:-3], 16)
    except ValueError:
        return False
    return zlib.crc32(line[:-CRC_TAIL]) == expected


def scan_tail(data: bytes, from_start: bool) -> tuple[int, int | None, int] | None:
    """Where the last bytes `data` of a segment stop being part of the journal, and the seq they end with.

    Returns `(cut, seq, lines)`: `cut` is the index in `data` where the torn tail begins (the bytes after the last
    newline); `seq` is the seq of the last line before `cut` whose checksum holds, and `lines` how many whole lines
    (damaged ones) follow that line before `cut`. `seq` is None when no such line is in `data`; then, with
    `from_start`, `lines` counts every line before `cut`, and without it the caller must count the lines from the
    segment's start. Returns None when `data` does not reach back far enough to find `cut` and does not begin at the
    segment's start: call again with more.
    """
    cut = data.rfind(b"\n") + 1
    if cut == 0 and not from_start:
        return None
    lines = 0
    end = cut
    while end > 0:  # the last line whose checksum holds, counting the damaged ones after it
        begin = data.rfind(b"\n", 0, end - 1) + 1
        if begin == 0 and not from_start:
            break  # that line may begin before `data`
        line = data[begin:end]
        seq = record_seq(line)
        if seq is not None and checksum_ok(line):
            return cut, seq, lines
        lines += 1
        end = begin
    return cut, None, lines
