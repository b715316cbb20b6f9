"""Event timestamps: UTC, ISO 8601 with six fraction digits and a Z (2026-11-24T10:00:00.123456Z).

A timestamp records when an event was made; it orders nothing (the journal's seq does). Consumers that need time,
like the conflict window, read it from the events with `seconds_of`, never from a clock.

The one UTC text format of the project, written and read here: `utc_text` writes it (whole seconds for the hook's log
and the lease files: 2026-11-24T10:00:00Z), `seconds_of` reads either form back, `day_of` and `clock_of` take the
parts a person reads (`day_and_clock`: 2026-11-24 10:00:00).
This module is on the hook's hot path: it imports only `time`.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def utc_now() -> str:
    """The current UTC time as ISO 8601 with microseconds and a Z, e.g. 2026-11-24T10:00:00.123456Z."""
    return utc_text(time.time())


def utc_text(seconds: float | None = None, *, whole: bool = False) -> str:
    """`seconds` since the epoch (default: now) as ISO 8601 in UTC with a Z: with microseconds
    (2026-11-24T10:00:00.123456Z), or in `whole` seconds (2026-11-24T10:00:00Z)."""
    now = time.time() if seconds is None else seconds
    if whole:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    second, micros = divmod(round(now * 1_000_000), 1_000_000)  # rounded: 0.07 is 070000, not 069999
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{micros:06d}Z"


def seconds_of(ts: Any) -> float | None:
    """Seconds since the epoch of an event timestamp (2026-11-24T10:00:00.123456Z), or None if it is not one.

    Hand-written rather than `calendar.timegm` or `datetime`, which cost ~2 ms of imports on the hook's path.
    """
    if not isinstance(ts, str) or len(ts) < 20 or ts[4] != "-" or ts[10] != "T":
        return None
    try:
        year, month, day = int(ts[0:4]), int(ts[5:7]), int(ts[8:10])
        clock = int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + int(ts[17:19])
        fraction = float("0" + ts[19:].rstrip("Z")) if ts[19:20] == "." else 0.0
    except ValueError:
        return None
    # days from 1970-01-01 to year-month-day in the proleptic Gregorian calendar (H. Hinnant's days_from_civil)
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return (era * 146097 + day_of_era - 719468) * 86400 + clock + fraction


def day_of(ts: Any) -> str | None:
    """YYYY-MM-DD of an event timestamp, or None when it is not one."""
    if isinstance(ts, str) and len(ts) >= 19 and ts[4] == "-" and ts[7] == "-":
        day = ts[:10]
        if (day[:4] + day[5:7] + day[8:]).isdigit():
            return day
    return None


def clock_of(ts: Any) -> str:
    """HH:MM:SS of an event timestamp (2026-11-24T10:00:00.123456Z), or ??:??:?? when it is not one."""
    if isinstance(ts, str) and len(ts) >= 19 and ts[10] == "T":
        clock = ts[11:19]
        if clock[2] == ":" and clock[5] == ":" and (clock[:2] + clock[3:5] + clock[6:]).isdigit():
            return clock
    return "??:??:??"


def day_and_clock(ts: Any) -> str:
    """`YYYY-MM-DD HH:MM:SS` of an event timestamp, as a person reads it (UTC), or `?` when it is not one."""
    day = day_of(ts)
    return f"{day} {clock_of(ts)}" if day else "?"


def ago(seconds: float | None) -> str:
    """How long ago, for a person: "12 s ago", "4 min ago", "3 h ago", "2 d ago"; "never" for None."""
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def age_of(ts: Any, now: float) -> dict[str, Any]:
    """`age_seconds` and `ago` of an event timestamp. A time ahead of `now` (another machine's clock) is 0 s ago."""
    when = seconds_of(ts)
    age = None if when is None else max(0.0, now - when)
    return {"age_seconds": age, "ago": ago(age)}
