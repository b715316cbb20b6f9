"""Every session of a power directory in brief (objective, start and end, agents, events, outcome), and removing old
ones: what `popkit-power sessions` and `sessions prune` show and do.

A session is summed up from the two ends of its journal, not by reading all of it: its first record (the objective
and the start) and the last `TAIL_BYTES` of its last segment, where a closed session has its `session.closed` with
the summary `stop` wrote and the last seq (the number of events). Only a session that was never closed (the active
one, or one whose process died) is folded, from its snapshot plus the tail, for its agents and tasks.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import orjson

from ._fs import check_dir, open_file
from .errors import ConfigError, PowerModeError, SessionError
from .home import active_session, existing_session_dir, list_sessions
from .journal.records import checksum_ok
from .session import Session, summarize
from .timestamps import seconds_of

TAIL_BYTES = 256 * 1024
#: The units --older-than takes, in seconds.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """Seconds in an age such as `30d`, `12h`, `45m`, `2w` or `90s`; ConfigError naming the problem otherwise."""
    value = text.strip().lower()
    number, unit = value[:-1], value[-1:]
    if unit not in UNITS or not number:
        raise ConfigError(f"--older-than {text!r}: give a number and a unit (s, m, h, d or w), such as 30d or 12h")
    try:
        amount = float(number)
    except ValueError:
        raise ConfigError(f"--older-than {text!r}: {number!r} is not a number") from None
    if not amount >= 0 or amount == float("inf"):
        raise ConfigError(f"--older-than {text!r}: the age must be a finite number of at least 0")
    return amount * UNITS[unit]


def summaries(power_dir: str) -> list[dict[str, Any]]:
    """One summary per session, oldest first (session ids sort by their start)."""
    active = active_session(power_dir)
    return [summary(power_dir, session_id, active=session_id == active) for session_id in list_sessions(power_dir)]


def summary(power_dir: str, session_id: str, *, active: bool) -> dict[str, Any]:
    """One session in brief: id, objective, started, ended (None while open), agents, events, outcome ("closed",
    "active", "not closed": a session whose last process died, "damaged": one that cannot be read), the reason it
    was closed, and the counts of its tasks and approvals."""
    found: dict[str, Any] = {"session": session_id, "active": active, "objective": None, "started": None,
                             "ended": None, "last_event": None, "agents": None, "events": 0, "outcome": "damaged",
                             "reason": None, "tasks": {}, "approvals": {}, "insights": None, "problem": None}
    try:
        session = Session(power_dir, session_id, read_only=True)
    except (OSError, PowerModeError) as error:
        found["problem"] = str(error)
        return found
    try:
        first = next(iter(session.journal.reader()), None)
        if first is not None:
            found["objective"] = (first.get("data") or {}).get("objective")
            found["started"] = first.get("ts")
        tail = _tail(session)
        if tail:
            found["events"] = tail[-1].get("seq", 0)
            found["last_event"] = tail[-1].get("ts")
        closed = next((event for event in reversed(tail) if event.get("type") == "session.closed"), None)
        if closed is not None and not active:
            data = closed.get("data") or {}
            totals = data.get("summary") or {}
            found.update(outcome="closed", ended=closed.get("ts"), reason=data.get("reason"),
                         agents=totals.get("agents"), tasks=totals.get("tasks") or {},
                         approvals=totals.get("approvals") or {}, insights=totals.get("insights"))
        else:
            state, _position = session.projection(save_snapshot=False, on_damage=lambda _damage: None)
            totals = summarize(state)
            found.update(outcome="active" if active else "not closed", agents=totals["agents"],
                         tasks=totals["tasks"], approvals=totals["approvals"], insights=totals["insights"])
    except (OSError, PowerModeError, ValueError) as error:
        found["problem"] = str(error)
    finally:
        session.journal.close()
    return found


def _tail(session: Session) -> list[dict[str, Any]]:
    """The whole, valid records in the last TAIL_BYTES of the journal's last segment, in order."""
    segments = session.journal.segments()
    if not segments:
        return []
    fd = open_file(session.journal.segment_path(segments[-1]), os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - TAIL_BYTES)
        data = os.pread(fd, size - start, start)
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first one is cut
    records = []
    for line in lines[:-1]:  # the last piece has no newline: empty, or a torn tail
        if checksum_ok(line + b"\n"):
            records.append(orjson.loads(line))
    return records


def ended_at(found: dict[str, Any]) -> float | None:
    """When a session ended, for pruning: its close, else its last event, else its start (seconds)."""
    for field in ("ended", "last_event", "started"):
        when = seconds_of(found.get(field))
        if when is not None:
            return when
    return None


def prune(power_dir: str, older_than: float, *, now: float | None = None, dry_run: bool = False,
          running: Any = None) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Remove the sessions that ended more than `older_than` seconds before `now`: never the active one, nor one
    whose coordinator still runs (`running(session_dir)`), nor one whose end cannot be told. Returns (removed,
    kept with the reason) for the sessions that were old enough; with `dry_run`, removes nothing."""
    now = time.time() if now is None else now
    removed: list[dict[str, Any]] = []
    kept: list[tuple[str, str]] = []
    for found in summaries(power_dir):
        ended = ended_at(found)
        if ended is None:
            if found["problem"]:
                kept.append((found["session"], f"its end cannot be told ({found['problem']})"))
            continue
        if now - ended <= older_than:
            continue
        if found["active"]:
            kept.append((found["session"], "it is the active session (popkit-power stop closes it)"))
            continue
        directory = existing_session_dir(power_dir, found["session"])
        if running is not None and running(directory):
            kept.append((found["session"], "its coordinator still runs"))
            continue
        if not dry_run:
            _remove(directory)
        removed.append(found)
    return removed, kept


def _remove(directory: str) -> None:
    """Delete one session's directory; it is checked to be a real directory of ours first (never a link), and
    rmtree removes links inside it without following them."""
    check_dir(directory)
    if os.path.islink(directory):  # pragma: no cover - check_dir refuses links
        raise SessionError(f"{directory} is a link; not removed")
    shutil.rmtree(directory)
