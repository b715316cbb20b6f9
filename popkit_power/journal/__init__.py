"""The storage core: the append-only event journal, the single truth of a power session (format: journal/SPEC.md).

    records.py    the line format: segment names, record lines, batch framing, the journal's setting defaults
    codec.py      JSON for the hook's hot path through CPython's `_json`, without importing `json` (elsewhere: orjson)
    reader.py     `JournalReader`: the whole, valid records after a `Position`, and the `Damage` it met
    repair.py     finding a segment's tail and cutting a torn line a killed writer left
    writer.py     `Journal`: appends under an exclusive file lock, segment rotation, reads under a shared one
    lease.py      one coordinator (and one replicator) per session, taken over when its holder is gone
    snapshots.py  saved projections bound to the journal they were made from
    verify.py     `popkit-power verify`: every segment read through, every damage reported

Imports run one way: records <- reader, repair <- writer <- snapshots, verify; codec and lease import none of them.
This `__init__` imports nothing, so that the hook, which imports the reader and the writer on every tool call, pays
for no other module; `Journal` and `Position` are also reachable from here, loaded on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .writer import Journal, Position

__all__ = ["Journal", "Position"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import writer

        return getattr(writer, name)
    raise AttributeError(f"module 'popkit_power.journal' has no attribute {name!r}")
