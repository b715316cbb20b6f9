"""`records.valid_head` (the readers' test of every line, written out in one function for speed) says exactly what
`record_head` and `checksum_ok` together say: (seq, more) of a framed line whose CRC holds, else None."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from popkit_power.journal.records import checksum_ok, encode_record, record_head, valid_head


def plain_rule(line: bytes) -> tuple[int, int] | None:
    head = record_head(line)
    return head if head is not None and head[1] >= 0 and checksum_ok(line) else None


def with_crc(checked: bytes) -> bytes:
    return b'%s,"crc":"%08x"}\n' % (checked, zlib.crc32(checked))


heads = st.sampled_from([b'{"seq":', b'{"seq":-', b'{"seq": ', b'{"sq":', b""])
numbers = st.one_of(st.integers(0, 10**22).map(lambda n: str(n).encode()), st.sampled_from([b"", b"0x1", b"1_0"]))
mores = st.one_of(st.just(b""), st.tuples(st.sampled_from([b'"more":', b'"more": ', b'"mor":']), numbers)
                  .map(lambda parts: parts[0] + parts[1] + b","))
bodies = st.sampled_from([b'"v":1,"type":"x"', b'"v":1', b"", b'"a":"\\r"'])


@settings(max_examples=500, deadline=None)
@given(heads, numbers, mores, bodies, st.sampled_from(["good", "bad", "none", "short", "flip"]), st.integers(0, 400))
def test_valid_head_agrees_with_record_head_and_checksum_ok(head: bytes, seq: bytes, more: bytes, body: bytes,
                                                            ending: str, where: int) -> None:
    checked = head + seq + b"," + more + body
    if ending == "good":
        line = with_crc(checked)
    elif ending == "bad":
        line = checked + b',"crc":"zzzzzzzz"}\n'
    elif ending == "none":
        line = checked + b"}\n"
    elif ending == "short":
        line = with_crc(checked)[-(where % 25):]
    else:
        line = bytearray(with_crc(checked))
        line[where % len(line)] ^= 1 << (where % 8)
        line = bytes(line)
    assert valid_head(line) == plain_rule(line)


def test_valid_head_reads_the_writers_lines() -> None:
    assert valid_head(encode_record(42, b'{"v":1,"type":"x"}')) == (42, 0)
    assert valid_head(encode_record(7, b'{"v":1}', more=3)) == (7, 3)
    assert valid_head(encode_record(7, b'{"v":1}', more=3).replace(b"7", b"8", 1)) is None
