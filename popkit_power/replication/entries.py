"""What the server's entries and replies mean to the replicator, trusted no further than they can be checked: anyone
with the credentials can write anything under the session's keys.

- A stream entry becomes an event to append only when it is a valid event of this session from the stream's own
  origin, under an id `<seq>-0` and linked (`p`) to the origin's entry taken before it, and fits the journal;
  anything else is skipped, counted and logged once (the journal stays whole and valid), and the next real entry is
  still taken, wherever the skipped one was.
- A stream's last id and last entry, for where to push from (positions.py); a key that is not a stream under this
  machine's own stream name is an error that says what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import orjson

from ..display import cut, quoted
from ..errors import ProtocolError
from ..journal import codec
from ..journal.records import largest_record_size
from ..keys import ARBITER
from ..protocol import validate
from ..timestamps import utc_now
from .errors import ReplicationError
from .positions import NOT_PUSHED
from .transport import ReplyError

log = logging.getLogger("popkit_power.replication")


@dataclass
class Entry:
    """What one stream entry is to the puller: `event` to append (None: skipped), whether it is its origin's own
    (`genuine`: the next one must link to it), and why it was skipped."""

    event: dict[str, Any] | None
    genuine: bool
    reason: str | None = None
    link: str = ""  # its `p`, as the stream holds it


def entry_key(entry_id: Any) -> tuple[int, int] | None:
    """A stream entry id as a pair of numbers, for comparing; None for anything else."""
    ms, _, number = str(entry_id).partition("-")
    return (int(ms), int(number)) if ms.isdigit() and number.isdigit() else None


def read_entry(entry_id: Any, fields: list[Any], origin: str, last: int, session_id: str, max_record_bytes: int,
               *, linked: bool, unlinked_ok: bool = False) -> Entry:
    """The entry `entry_id` of `origin`'s stream, read after that origin's entry `last` (the last one taken as its own).
    It is the origin's own only when its id is `<seq>-0` past `last`, it holds a valid event of this session from
    that origin, and (`linked`: every origin but the arbiter) its link `p` names `last`, as the push script
    writes it: an entry planted anywhere, however its body looks, is skipped with the reason, and the next real
    entry, linked to `last`, is still taken. With `unlinked_ok` (no entry of the origin read so far had a link:
    it was pushed by a version before links) an entry without one is taken too. An own event the journal cannot
    hold (over `max_record_bytes`) is skipped but stays the one the next links to. The event to append has its
    `oseq` and `rts` (received now, by this machine's clock: another machine's clock may be off)."""
    key = entry_key(entry_id)
    values = dict(zip(fields[::2], fields[1::2], strict=False)) if isinstance(fields, list) else {}
    link = str(values.get("p", "-"))  # kept with a skipped entry too: FIRST_AFTER's look must know it (taken_back)
    if key is None or key[1] != 0 or key[0] <= last:
        return Entry(None, False, f"its id is not an event's (<seq>-0, past {last}-0, where the last one read is)",
                     link)
    try:
        try:
            parsed = orjson.loads(values.get("e", ""))
        except orjson.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from None
        event = validate(parsed)
        if event.get("origin") != origin or event.get("session") != session_id:
            raise ProtocolError(f"origin {event.get('origin')!r} / session {event.get('session')!r}")
    except (ProtocolError, ValueError, TypeError) as error:
        return Entry(None, False, f"not an event of this session ({cut(str(error), 200)})", link)
    if linked and link != str(last) and not (unlinked_ok and "p" not in values):
        return Entry(None, False, f"its link p={quoted(link, 40)} does not name {last}, the last entry of origin "
                                  f"{origin} taken", link)
    oseq = key[0]
    pulled: dict[str, Any] = {}
    for name, value in event.items():
        if name in NOT_PUSHED:
            continue
        pulled[name] = value
        if name == "origin":
            pulled.update(oseq=oseq, rts=utc_now())
    # as Session.append_events writes it, in a batch of pulled events: wherever it lands, or the batch is refused
    size = largest_record_size(len(codec.dumps(pulled).encode("utf-8")))
    if size > max_record_bytes:
        return Entry(None, True, f"{size} bytes, over max_record_bytes ({max_record_bytes})", link)
    return Entry(pulled, True, None, link)


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
        if info.code == "WRONGTYPE":  # retryable: a person deletes it (the message says so), and the push goes on
            raise ReplicationError(f"{own} is not a stream, so popkit-power did not write it: this machine pushes "
                                   f"nothing until it is deleted (then it pushes its events there again)",
                                   retryable=True)
        raise ReplicationError(f"XINFO STREAM answered {info}", retryable=info.retryable)
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


def taken_back(past: list[str], reply: Any, read: dict[str, tuple[int, int]], last: dict[str, int],
               skipped: Container[tuple[str, str, str]]) -> list[str]:
    """The origins among `past` (`read` up to an entry that was skipped) whose writer has taken its stream back since
    (FIRST_AFTER's reply): its last id is now before where it was read to, or an entry after `last` (the origin's
    last one taken as its own) is linked to it and is not one skipped before (`skipped`: origin, entry id, link).
    They are read again from `last`."""
    if not isinstance(reply, list):
        return []
    again = []
    for origin, found in zip(past, reply, strict=False):
        if not isinstance(found, list) or len(found) != 2 or not isinstance(found[1], list):
            continue
        top, link = entry_key(found[0]), str(last.get(origin, 0))
        if (top is not None and top < read.get(origin, (0, 0))) or any(
                (origin, str(entry_id), link) not in skipped for entry_id in found[1]):
            log.warning("the stream of origin %s was taken back to %s: reading it again from there", origin, link)
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
