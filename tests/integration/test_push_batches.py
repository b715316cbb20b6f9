"""The push in full batches: the batch after the one in flight is read while the server runs it (replication/
outbox.py), the batch travels as one string the push script cuts (effects.BatchText), and the original layout's
channel streams are capped. Whatever fails, and whenever, every event is once in every journal and stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from conftest import TOKEN
from test_replication import LAYOUT, assert_exactly_once, events, facts, join, sync

from popkit_power.replication import outbox
from popkit_power.replication.errors import TransportError
from popkit_power.replication.memory import FaultyTransport, MemoryTransport
from popkit_power.replication.positions import body
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.upstash_rest import UpstashRest
from popkit_power.session import Session, start_session

BATCH = 4


def small_batches(tmp_path: Path, **settings: Any) -> tuple[Session, Session]:
    """Two machines whose replicators push BATCH events at a time (so most batches are full)."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_bytes(orjson.dumps({"replication_batch_events": BATCH, **settings}))
    a = start_session(str(tmp_path / "a"), "Full batches", sender="human")
    return a, join(tmp_path / "b", a.id)


def write(session: Session, who: str, count: int) -> None:
    for n in range(count):
        session.publish("message.broadcast", {"text": f"{who} says {n}"}, sender=f"{who}:main")


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["timeout_after_applying", "timeout_before_sending", "reset_applied", "reset",
                                   "server_error_applied", "unreachable"])
def test_full_batches_read_ahead_under_faults_land_exactly_once(fault: str, redis_url: str, tmp_path: Path) -> None:
    """A fault every few calls, while batches are full and the next one is always read ahead: the batch read ahead
    is used only when the push goes on where it expected, so nothing is skipped or pushed twice."""
    a, b = small_batches(tmp_path)
    faulty = [FaultyTransport(RedisStreams(redis_url)), FaultyTransport(RedisStreams(redis_url))]
    one, two = Replicator(a, faulty[0]), Replicator(b, faulty[1])
    name, _, applied = fault.partition("_applied")
    for _ in range(5):
        write(a, "alice", 3 * BATCH + 1)
        write(b, "bob", 2 * BATCH)
        for transport in faulty:
            if name in ("server_error", "reset"):
                getattr(transport, {"reset": "connection_reset"}.get(name, name))(applied=bool(applied))
            else:
                getattr(transport, name)()
        sync(one, two, rounds=200)
    assert all(transport.raised for transport in faulty), "the faults struck"
    assert_exactly_once(faulty[0], [a, b])
    assert facts(a.projection()[0]) == facts(b.projection()[0])


def test_redis_killed_while_the_next_batch_is_read_ahead(own_redis: Any, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The server dies after a full batch was sent and before its reply is read (while the next batch is being read
    ahead), and comes back empty: the batch in flight and the one read ahead are pushed again, once."""
    a, b = small_batches(tmp_path)
    write(a, "alice", 10 * BATCH)
    one, two = Replicator(a, RedisStreams(own_redis.url)), Replicator(b, RedisStreams(own_redis.url))
    prepared = outbox.Outbox.prepare
    ahead: list[int] = []

    def prepare_and_kill(self: outbox.Outbox, sent: outbox.Batch) -> None:
        ahead.append(sent.events[-1]["seq"])
        if len(ahead) == 3:
            own_redis.kill()
        prepared(self, sent)

    monkeypatch.setattr(outbox.Outbox, "prepare", prepare_and_kill)
    assert one.push_once() == BATCH and one.push_once() == BATCH
    with pytest.raises(TransportError):  # the third batch's reply may have left the server before it died: the
        one.push_once()                  # fourth then meets a dead server
        one.push_once()
    monkeypatch.setattr(outbox.Outbox, "prepare", prepared)
    own_redis.start()
    one._resumed = False
    write(b, "bob", 3)
    sync(one, two, rounds=200)
    assert len(ahead) >= 3, "the third batch was in flight when the server died"
    assert_exactly_once(RedisStreams(own_redis.url), [a, b])


def test_hostile_senders_types_and_text_travel_byte_for_byte(redis_url: str, tmp_path: Path) -> None:
    """The batch is one string of length-prefixed texts: senders, types and text with the separators in them
    (digits, spaces, colons, newlines), multi-byte characters and NULs come out as they went in."""
    a, b = small_batches(tmp_path)
    nasty = ["7 8 9 10 0:", "a:b\n12:xyz", "caf\u00e9 \u2603 \U0001f600", "nul\x00here", ":", "9" * 40]
    for n, text in enumerate(nasty):
        a.publish("message.broadcast", {"text": text * 3}, sender=f"{text}:{n}")
        a.publish("x.custom " + text, {"t": text}, sender="human", channel="broadcast")  # a type from the future
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    sync(one, two)
    mine = [e for e in events(a) if e["origin"] == a.origin]
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        stored = client.xrange(LAYOUT.origin_stream(a.id, a.origin))
        assert [fields["e"] for _id, fields in stored] == [body(e) for e in mine]
        channel = {orjson.loads(fields["event"])["id"]: fields for _id, fields in
                   client.xrange(LAYOUT.channel_stream("broadcast"))}
    for event in mine:
        if event["ch"] == "broadcast":
            entry = channel[event["id"]]
            assert (entry["type"], entry["from"], entry["origin"], entry["event"]) == (
                event["type"], event["from"], a.origin, body(event))
    pulled = {e["id"]: e for e in events(b) if e["origin"] == a.origin}
    assert [pulled[e["id"]]["data"] for e in mine] == [e["data"] for e in mine]
    assert {e["from"] for e in pulled.values()} >= {f"{text}:{n}" for n, text in enumerate(nasty)}


@pytest.mark.parametrize("cap", [0, 40])
def test_channel_streams_are_capped_and_the_origin_streams_keep_everything(cap: int, redis_url: str,
                                                                          tmp_path: Path) -> None:
    a, b = small_batches(tmp_path, redis_channel_maxlen=cap)
    write(a, "alice", 500)
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    sync(one, two, rounds=400)
    mine = [e for e in events(a) if e["origin"] == a.origin]
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.xlen(LAYOUT.origin_stream(a.id, a.origin)) == len(mine)
        kept = client.xrange(LAYOUT.channel_stream("broadcast"))
    broadcasts = [body(e) for e in mine if e["ch"] == "broadcast"]
    if cap:
        assert cap <= len(kept) <= cap + 100, "MAXLEN ~ trims whole nodes (100 entries)"
    else:
        assert len(kept) == len(broadcasts)
    assert [fields["event"] for _id, fields in kept] == broadcasts[-len(kept):], "the newest, in order"
    assert len([e for e in events(b) if e["origin"] == a.origin]) == len(mine), "the pull reads the origin stream"


def test_a_read_ahead_batch_is_dropped_when_the_push_goes_on_elsewhere(tmp_path: Path) -> None:
    a, _ = small_batches(tmp_path)
    write(a, "alice", 3 * BATCH)
    replicator = Replicator(a, MemoryTransport())
    replicator.resume()
    box = outbox.Outbox(a.journal, a.origin, BATCH, LAYOUT, 0)
    first = box.take(replicator._push_from, replicator.pushed_seq)
    box.prepare(first)
    second = box.take(first.end, first.events[-1]["seq"])
    assert second.start == first.end and second.events[0]["seq"] > first.events[-1]["seq"], "read ahead, used"
    box.prepare(second)
    again = box.take(first.end, first.events[-1]["seq"])  # the second batch failed: it is read again
    assert [e["id"] for e in again.events] == [e["id"] for e in second.events] and again is not second
    box.close()


@pytest.mark.slow
def test_large_events_go_in_batches_under_upstash_s_request_limit(bridge: Any, tmp_path: Path) -> None:
    """A batch is bounded in bytes as well as in events: 500 events near max_record_bytes would be a request of
    ~20 MB, which Upstash refuses whole ("max request size exceeded", 10 MB) every time it is sent again, and the
    push would never move. Through the bridge, which enforces Upstash's limit."""
    a = start_session(str(tmp_path / "a"), "Large events", sender="human")
    b = join(tmp_path / "b", a.id)
    for n in range(24):
        a.publish("message.broadcast", {"text": f"{n} " + "x" * 900_000}, sender="alice:main")
    one = Replicator(a, UpstashRest(bridge.url, TOKEN))
    two = Replicator(b, UpstashRest(bridge.url, TOKEN))
    sync(one, two)
    pulled = [e["data"]["text"][:3] for e in events(b) if e["origin"] == a.origin and e["from"] == "alice:main"]
    assert pulled == [f"{n} " + "x" * (1 if n < 10 else 0) for n in range(24)]
    assert_exactly_once(one.transport, [a, b])


def test_a_full_batch_that_read_nothing_prepares_nothing_and_raises_nothing(tmp_path: Path) -> None:
    """A batch can be full with no events (its reader crossed into a new segment without returning a record): the
    read-ahead then has no last seq to go on from, and must leave the next batch to be read when its time comes."""
    a, _ = small_batches(tmp_path)
    write(a, "alice", BATCH)
    box = outbox.Outbox(a.journal, a.origin, BATCH, LAYOUT, 0)
    start = a.journal.reader().position
    empty = outbox.Batch(start=start, after=0, events=[], end=start, args=[], full=True)
    box.prepare(empty)
    batch = box.take(start, 0)
    assert [event["seq"] for event in batch.events] == list(range(1, BATCH + 1)), "read for real, from its start"
