"""The hot path's JSON codec: the same answers as the standard library, compact output, clear errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from popkit_power.journal import codec

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@pytest.mark.slow
@given(JSON_VALUES)
def test_dumps_is_compact_json_with_text_kept_as_it_is(value: Any) -> None:
    """Property: codec.dumps equals json.dumps with compact separators and ensure_ascii=False, and reads back."""
    text = codec.dumps(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert codec.loads(text) == value


@given(JSON_VALUES)
def test_loads_reads_what_orjson_writes(value: Any) -> None:
    """Property: codec.loads parses orjson's output (what the off-hot-path code writes) to the same value."""
    assert codec.loads(orjson.dumps(value).decode()) == value


def test_loads_allows_surrounding_whitespace() -> None:
    """Whitespace before and after the document is fine, as in json.loads."""
    assert codec.loads(' \n\t{"a": [1, 2.5, "é"]}\r\n ') == {"a": [1, 2.5, "é"]}


@pytest.mark.parametrize("text", ["", "   ", "{", '{"a":}', "[1,]", "{'a': 1}", '{"a": 1} x', "nul", '"\\x"'])
def test_invalid_json_is_a_value_error_with_a_position(text: str) -> None:
    """Anything but one JSON document raises ValueError whose message says it is not valid JSON."""
    with pytest.raises(ValueError, match="not valid JSON"):
        codec.loads(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"a": [math.nan]}])
def test_dumps_refuses_nan_and_infinity(value: Any) -> None:
    """NaN and Infinity are not JSON: dumps raises ValueError instead of writing them."""
    with pytest.raises(ValueError):
        codec.dumps(value)


def test_dumps_refuses_what_json_cannot_hold() -> None:
    """Sets, bytes and other objects raise TypeError naming the type."""
    for value in ({1, 2}, b"x", object()):
        with pytest.raises(TypeError, match="is not JSON serializable"):
            codec.dumps({"v": value})


def test_dumps_keeps_non_ascii_and_escapes_control_characters() -> None:
    """Non-ASCII text is written as UTF-8 text; newlines and other control characters are escaped, so a record
    always stays one line."""
    text = codec.dumps({"t": "é\u2603\n\r\t\x00"})
    assert text == '{"t":"é\u2603\\n\\r\\t\\u0000"}'
    assert "\n" not in text and "\r" not in text


def test_importing_the_codec_does_not_import_json_or_re() -> None:
    """codec is on the hook's hot path: importing and using it loads neither `json` nor `re`."""
    code = ("import sys; from popkit_power.journal import codec; codec.loads(codec.dumps({'a': [1]})); "
            "heavy = ('json', 're', 'typing', 'dataclasses', 'logging', 'orjson'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
