"""The journal's line format (journal/SPEC.md sections 2 and 3): segment names, record lines, batch framing.

A record is one line that starts with its `seq` and ends with a CRC-32 of everything before `,"crc":`:

    {"seq":42,"v":1,...,"data":{...},"crc":"1c291ca3"}

Every record of a multi-record append except its last carries `"more":K` right after its seq, K being how many
records of the same append follow it; a reader holds such a record until a whole line is there for each of the K
that follow, so an append is visible whole or not at all:

    {"seq":7,"more":2,...}  {"seq":8,"more":1,...}  {"seq":9,...}

This module is pure (bytes in, numbers out) so that the journal and a replicator read lines the same way. It is on the
hook's hot path: it imports only `zlib` (and keys.py, for the segment's file name).
"""

from __future__ import annotations

import zlib

from ..keys import SEGMENT_SUFFIX

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

SEGMENT_DIGITS = 16
SEQ_PREFIX = b'{"seq":'
MORE_PREFIX = b'"more":'
CRC_OPEN = b',"crc":"'
CRC_CLOSE = b'"}\n'
CRC_TAIL = len(CRC_OPEN) + 8 + len(CRC_CLOSE)  # the bytes after the checked part of a line
_SEQ_DIGITS_END = len(SEQ_PREFIX) + 21  # a comma after at most 20 digits
#: The largest seq a line can carry (20 digits: readers look no further for its comma), and so the largest `more`.
LARGEST_SEQ = 10**20 - 1
# What a line adds to its body besides the digits: `{"seq":` and `,` before the body's members, `,"crc":"<8 hex>"}\n`
# after them, less the body's own braces; and `"more":` and `,` in a batch's record.
_FRAMING = len(SEQ_PREFIX) + 1 + CRC_TAIL - 2
_MORE_FRAMING = len(MORE_PREFIX) + 1

DURABILITY_FLUSH = "flush"  # each append is handed to the OS (survives a killed process, not a power cut)
DURABILITY_FSYNC = "fsync"  # each append is fsynced before it returns (survives a power cut; see tools/BENCHMARKS.md)
#: The defaults of the journal's settings; config.DEFAULTS refers to these, so each is written once.
DEFAULT_SEGMENT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
#: How much a reader (and the tail repair) reads at once.
READ_CHUNK = 1 << 20


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record is `first_seq`: 16 digits and `.jsonl`."""
    return f"{first_seq:0{SEGMENT_DIGITS}d}{SEGMENT_SUFFIX}"


def encode_record(seq: int, body: bytes, more: int = 0) -> bytes:
    """The journal line for `seq` and a serialized envelope `body` (a JSON object without seq and crc); `more` > 0
    frames it as a record of a batch that `more` records follow."""
    if more:
        checked = b'%s%d,"more":%d,%s' % (SEQ_PREFIX, seq, more, body[1:-1])
    else:
        checked = b"%s%d,%s" % (SEQ_PREFIX, seq, body[1:-1])
    return b"%s%s%08x%s" % (checked, CRC_OPEN, zlib.crc32(checked), CRC_CLOSE)


def record_size(body_bytes: int, seq: int, more: int = 0) -> int:
    """The bytes of the line `encode_record(seq, body, more)` writes for a body of `body_bytes` bytes: what
    `max_record_bytes` limits. The one place that counts the framing."""
    size = body_bytes + _FRAMING + len(str(seq))
    return size + _MORE_FRAMING + len(str(more)) if more else size


def largest_record_size(body_bytes: int) -> int:
    """The most bytes a body of `body_bytes` bytes can take as a line, whatever seq and `more` the journal gives it:
    for a check made before the append (a body that fits this fits wherever it lands)."""
    return record_size(body_bytes, LARGEST_SEQ, LARGEST_SEQ)


def encode_batch(first_seq: int, bodies: Sequence[bytes]) -> bytes:
    """The lines of one multi-record append: consecutive seqs, each but the last framed with how many follow."""
    last = len(bodies) - 1
    return b"".join([encode_record(first_seq + index, body, last - index) for index, body in enumerate(bodies)])


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


def record_head(line: bytes) -> tuple[int, int] | None:
    """(seq, more) from a line's start, checksum not checked, or None if it does not start like a record. `more` is
    the number after `"more":` right after the seq, 0 without one, -1 if it is malformed (not a positive decimal
    number followed by a comma). Readers call it for every line."""
    if not line.startswith(SEQ_PREFIX):
        return None
    comma = line.find(b",", 7, _SEQ_DIGITS_END)
    digits = line[7:comma]
    if comma < 0 or not digits.isdigit():
        return None
    if not line.startswith(MORE_PREFIX, comma + 1):
        return int(digits), 0
    start = comma + 1 + len(MORE_PREFIX)
    end = line.find(b",", start, start + 21)
    more = line[start:end]
    return int(digits), (int(more) or -1) if end > 0 and more.isdigit() else -1


def valid_head(line: bytes) -> tuple[int, int] | None:
    """(seq, more) of a whole line whose checksum holds and whose framing is well formed, else None (damage).

    The tests of `record_head` and `checksum_ok` (which say what a damaged line is), written out in one function:
    readers call it for every line, and the two calls cost ~10 times the CRC itself (tools/BENCHMARKS.md, "The
    fold"); tests/test_valid_head.py keeps it in step with them."""
    if line[-CRC_TAIL:-11] != CRC_OPEN or line[-3:] != CRC_CLOSE or line[:7] != SEQ_PREFIX:
        return None  # a line not longer than CRC_TAIL fails here too (no seq prefix, or a slice too short)
    comma = line.find(b",", 7, _SEQ_DIGITS_END)
    digits = line[7:comma]
    if comma < 0 or not digits.isdigit():
        return None
    more = 0
    if line.startswith(MORE_PREFIX, comma + 1):
        start = comma + 1 + len(MORE_PREFIX)
        end = line.find(b",", start, start + 21)
        number = line[start:end]
        if end < 0 or not number.isdigit():
            return None
        more = int(number)
        if not more:
            return None  # `"more":0` is malformed (record_head's -1)
    try:
        expected = int(line[-11:-3], 16)
    except ValueError:
        return None
    return (int(digits), more) if zlib.crc32(line[:-CRC_TAIL]) == expected else None


def open_batch(heads: Sequence[tuple[int, int] | None]) -> int:
    """The index of the first line of the batch that `heads` leave open, or len(heads) if they leave none.

    `heads` are whole lines in order, each `(seq, more)` when its checksum holds (`valid_head`) and None when it is
    damaged; no batch is open before the first. A line with `more` K starts a batch; each of the K lines after it is
    one of its records: a damaged line counts as one, a valid line must have the next seq and one `more` less (the
    last none). A valid line that does not is not part of it: the batch is broken (readers report its records as an
    incomplete batch) and that line stands on its own. Readers apply this rule line by line (reader.py); a repair
    applies it to the last lines of a segment to find what to cut.
    """
    start, expect = -1, (0, 0)
    for index, head in enumerate(heads):
        if start >= 0:
            if head is None or head == expect:
                start, expect = (start, (expect[0] + 1, expect[1] - 1)) if expect[1] else (-1, expect)
                continue
            start = -1  # broken by a valid line that does not continue it
        if head is not None and head[1] > 0:
            start, expect = index, (head[0] + 1, head[1] - 1)
    return start if start >= 0 else len(heads)


def scan_tail(data: bytes, from_start: bool) -> tuple[int, int | None, int] | None:
    """Where the last bytes `data` of a segment stop being part of the journal, and the seq they end with.

    Returns `(cut, seq, lines)`: `cut` is the index in `data` where the torn tail begins (the bytes after the last
    newline) together with the lines before it of a batch left open (`open_batch`: a writer died before its last
    record); `seq` is the seq of the last line before `cut` whose checksum holds, and `lines` how many whole lines
    (damaged ones) follow that line before `cut`. `seq` is None when no such line is in `data`; then, with
    `from_start`, `lines` counts every line before `cut`, and without it the caller must count the lines from the
    segment's start. Returns None when `data` does not reach back far enough to find `cut` and does not begin at the
    segment's start: call again with more.
    """
    cut = data.rfind(b"\n") + 1
    if cut == 0 and not from_start:
        return None
    heads: list[tuple[int, int] | None] = []
    begins: list[int] = []
    end = cut
    while end > 0:  # back to the last valid line without `more`: no batch is open after it
        begin = data.rfind(b"\n", 0, end - 1) + 1
        if begin == 0 and not from_start:
            return None  # that line may begin before `data`
        head = valid_head(data[begin:end])
        if head is not None and head[1] == 0:
            break
        heads.append(head)
        begins.append(begin)
        end = begin
    heads.reverse()
    begins.reverse()
    index = open_batch(heads)
    if index < len(heads):
        cut = begins[index]
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
