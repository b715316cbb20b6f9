"""JSON for the hook's hot path, without importing `json`.

`import json` costs ~5.6 ms here because `json.decoder` imports `re`; the interpreter itself starts in ~7.5 ms and the
hook's whole budget is 2x that (tools/BENCHMARKS.md). CPython's `_json` accelerator module is what `json` uses
underneath and costs ~1 ms, so this module drives it directly. Everything off the hot path uses orjson.
"""

from __future__ import annotations

try:
    import _json
except ImportError:  # pragma: no cover - interpreters without the C accelerator
    _json = None  # type: ignore[assignment]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

_WHITESPACE = " \t\n\r"


class _ScannerContext:
    """The attributes `_json.make_scanner` reads, with `json.loads`' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: ClassVar[dict[str, str]] = {}


def _refuse(obj: object) -> object:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


if _json is not None:
    _scan: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(_ScannerContext())  # type: ignore[arg-type]
    _encode: Callable[[Any, int], list[str]] = _json.make_encoder(
        None, _refuse, _json.encode_basestring, None, ":", ",", False, False, False
    )

    def loads(text: str) -> Any:
        """Parse one JSON document; raise ValueError (with the position) on anything else."""
        start = 0
        while start < len(text) and text[start] in _WHITESPACE:
            start += 1
        try:
            value, end = _scan(text, start)
        except StopIteration as stop:
            raise ValueError(f"not valid JSON at character {stop.value}") from None
        except Exception:  # the bare scanner can fail without a proper error (SystemError)
            _explain(text)
            raise
        while end < len(text) and text[end] in _WHITESPACE:
            end += 1
        if end != len(text):
            raise ValueError(f"not valid JSON: extra data at character {end}")
        return value

    def _explain(text: str) -> None:
        """Raise the standard library's error for text the scanner refused: only this error path imports `json`."""
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from None

    def dumps(value: Any) -> str:
        """Serialize compactly (no spaces), keeping non-ASCII text as it is; NaN and Infinity are refused."""
        return "".join(_encode(value, 0))

else:  # pragma: no cover
    import json as _std

    def loads(text: str) -> Any:
        """Parse one JSON document; raise ValueError on anything else."""
        return _std.loads(text)

    def dumps(value: Any) -> str:
        """Serialize compactly, keeping non-ASCII text as it is."""
        return _std.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
