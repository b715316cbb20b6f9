"""What the server's entries and replies mean to the replicator, trusted no further than they can be checked: anyone
with the credentials can write anything under the session's keys.

- A stream entry becomes an event to append only when it is a valid event of this session from the stream's own
  origin, and fits the journal; anything else is logged and skipped (the journal stays whole and valid).
- A stream's last id and last entry, for where to push from (positions.py); a key that is not a stream under this
  machine's own stream name is an error that says what to do.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from .. import codec
from ..errors import ProtocolError, ReplicationError
from ..keys import ARBITER
from ..protocol import validate
from ..records import largest_record_size
from ..timestamps import utc_now
from .positions import NOT_PUSHED
from .transport import ReplyError

log = logging.getLogger("popkit_power.replication")


def pulled_event(fields: list[Any], origin: str, oseq: int, session_id: str,
                 max_record_bytes: int) -> dict[str, Any] | None:
    """The event to append for the entry `oseq` of `origin`'s stream, with its `oseq` and `rts` (received now, by
    this machine's clock: another machine's clock may be off); None (logged) for an entry that is not an event of
    this session from that origin, or that the journal cannot hold."""
    values = dict(zip(fields[::2], fields[1::2], strict=False))
    try:
        try:
            parsed = orjson.loads(values.get("e", ""))
        except orjson.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from None
        event = validate(parsed)
        if event.get("origin") != origin or event.get("session") != session_id:
            raise ProtocolError(f"origin {event.get('origin')!r} / session {event.get('session')!r}")
    except (ProtocolError, ValueError, TypeError) as error:
        log.warning("skipped entry %s-0 of origin %s: not an event of this session (%s)", oseq, origin,
                    str(error)[:200])
        return None
    pulled: dict[str, Any] = {}
    for key, value in event.items():
        if key in NOT_PUSHED:
            continue
        pulled[key] = value
        if key == "origin":
            pulled.update(oseq=oseq, rts=utc_now())
    # as Session.append_events writes it, in a batch of pulled events: wherever it lands, or the batch is refused
    size = largest_record_size(len(codec.dumps(pulled).encode("utf-8")))
    if size > max_record_bytes:
        log.warning("skipped entry %s-0 of origin %s: %s bytes, over max_record_bytes (%s)", oseq, origin, size,
                    max_record_bytes)
        return None
    return pulled


def top_body(reply: Any, on_server: int) -> str | None:
    """The body of a stream's last entry (XREVRANGE ... COUNT 1) when that entry is the one under `on_server`."""
    if not isinstance(reply, list) or not reply or not isinstance(reply[0], list) or len(reply[0]) != 2:
        return None
    entry_id, fields = reply[0]
    values = dict(zip(fields[::2], fields[1::2], strict=False)) if isinstance(fields, list) else {}
    top = values.get("e")
    return top if entry_id == f"{on_server}-0" and isinstance(top, str) else None


def last_seq(info: Any, own: str | None) -> int:
    """The seq of the last id a stream was given (`XINFO STREAM`'s last-generated-id), 0 for no stream. A key that
    is not a stream is an error for this origin's own stream (`own`: its name), and no stream for another."""
    if isinstance(info, ReplyError):
        if "no such key" in info.message.lower() or (info.code == "WRONGTYPE" and own is None):
            return 0
        if info.code == "WRONGTYPE":
            raise ReplicationError(f"{own} is not a stream, so popkit-power did not write it: this machine pushes "
                                   f"nothing until it is deleted (then it pushes its events there again)")
        raise ReplicationError(f"XINFO STREAM answered {info}")
    if isinstance(info, list):
        values = dict(zip(info[::2], info[1::2], strict=False))
        last = values.get("last-generated-id")
        if isinstance(last, str) and "-" in last:
            return int(last.split("-", 1)[0])
    return 0


def announcements(found: list[Any], announced: str) -> tuple[list[Any], set[str], str | None]:
    """Split what an XREAD found into the origins' streams, the origins the joined stream (`announced`) named, and the
    id of its last entry read (None when it had none)."""
    rest, origins, last = [], set(), None
    for stream, entries in found:
        if stream != announced:
            rest.append((stream, entries))
            continue
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            if isinstance(values.get("origin"), str):
                origins.add(values["origin"])
            last = str(entry_id)
    return rest, origins, last


def taken_back(past: list[str], reply: Any, imported: dict[str, int]) -> list[str]:
    """The origins among `past` whose stream now ends before where it is read from (LAST_IDS' reply): its writer
    removed what it never wrote, and it is read again from what the journal holds."""
    if not isinstance(reply, list):
        return []
    again = []
    for origin, last in zip(past, reply, strict=False):
        if isinstance(last, int) and last < imported.get(origin, 0):
            log.warning("the stream of origin %s was taken back to %s: reading it again from there", origin, last)
            again.append(origin)
    return again


def not_streams(sources: list[str], streams: list[str], announced: list[str],
                kinds: list[Any]) -> tuple[set[str], bool]:
    """After XREAD answered WRONGTYPE, from the TYPE of each key it read (the origins' streams, then the joined
    stream when it was read): the origins whose key is not a stream, and whether the joined stream still is one."""
    refused: set[str] = set()
    announcing = True
    for origin, stream, kind in zip([*sources, None], streams + announced, kinds, strict=False):
        if kind in ("stream", "none"):
            continue
        if origin is None:
            log.warning("%s holds a %s, not a stream: machines that join are seen with the set of origins only",
                        stream, kind)
            announcing = False
        else:
            log.warning("%s holds a %s, not a stream: origin %s is not pulled until it is one", stream, kind, origin)
            refused.add(origin)
    return refused, announcing


MAX_JOINED_PER_READ = 100  # machines taken from one read of the set or the joined stream (the rest at later reads)


def newly_joined(members: list[Any], announced: set[str], known: set[str]) -> set[str]:
    """The origins the server's set of origins and the joined stream name that are not `known` yet: only names an
    origin can have (no whitespace or control characters, at most 200 characters, not the arbiter's), and at most
    MAX_JOINED_PER_READ of them, so that planted names can neither make a read unbounded nor a key unusable."""
    found = sorted({name for name in [*members, *announced] if isinstance(name, str)} - known)
    plausible = [name for name in found if 0 < len(name) <= 200 and name != ARBITER
                 and not any(char.isspace() or not char.isprintable() for char in name)]
    return set(plausible[:MAX_JOINED_PER_READ])
