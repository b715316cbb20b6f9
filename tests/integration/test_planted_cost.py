"""What entries planted in a stream cost a puller that skips them (issue 21 against Upstash's idle budget): the look
whether their writer took the stream back (FIRST_AFTER) must not add a billed command to every idle poll while the
planted entry stays, and an entry skipped for its id must not make every look read the stream again. Two machines
through a real Redis, straight or through the Upstash bridge."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import redis
from conftest import TOKEN
from test_replication import join, sync

from popkit_power.keys import ARBITER, RedisLayout
from popkit_power.replication.polling import MEMBERS_EVERY
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.skipped import MAX_REMEMBERED
from popkit_power.replication.upstash_rest import UpstashRest
from popkit_power.session import Session, start_session

LAYOUT = RedisLayout()


@pytest.fixture
def two(tmp_path: Path, redis_url: str, bridge: object) -> tuple[Session, Session, Replicator, Replicator]:
    a = start_session(str(tmp_path / "a"), "Planted cost", sender="human")
    b = join(tmp_path / "b", a.id)
    ra = Replicator(a, RedisStreams(redis_url))
    rb = Replicator(b, UpstashRest(bridge.url, TOKEN))  # type: ignore[attr-defined]
    a.publish("message.broadcast", {"text": "before"}, sender="human")
    sync(ra, rb)
    return a, b, ra, rb


def idle_pull_commands(replicator: Replicator) -> int:
    """The commands MEMBERS_EVERY idle polls' pulls send (the set of origins read at one of them, as polling.py)."""
    before = replicator.transport.commands_sent
    for poll in range(1, MEMBERS_EVERY + 1):
        assert replicator.pull_once(with_members=poll % MEMBERS_EVERY == 1) == 0
    return replicator.transport.commands_sent - before


def test_a_planted_arbiter_entry_adds_no_command_to_every_idle_poll(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str) -> None:
    """The arbiter's stream is never taken back (a real fact is written past a planted one only at the next task
    transition, which an idle session never makes): a look at every poll would cost Upstash 45 commands more an hour
    for good, over the ~105 an idle machine spends."""
    a, _b, _ra, rb = two
    idle = idle_pull_commands(rb)
    assert idle == MEMBERS_EVERY + 1, "each idle poll one XREAD, the set of origins at one of them"
    redis.Redis.from_url(redis_url).xadd(LAYOUT.origin_stream(a.id, ARBITER), {"e": "{not a fact"}, id="5-0")
    assert rb.pull_once() == 0
    assert rb.stats["skipped_entries"] == {ARBITER: 1}
    assert idle_pull_commands(rb) <= idle + 1, "at most one look in MEMBERS_EVERY polls whether it was taken back"


def test_a_planted_entry_of_a_silent_machine_adds_no_command_to_every_idle_poll(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str) -> None:
    """A machine that went quiet (powered off) never takes its stream back: its planted entry must not cost the
    others a command at every poll."""
    a, b, ra, rb = two
    idle = idle_pull_commands(rb)
    stream = LAYOUT.origin_stream(a.id, a.origin)
    redis.Redis.from_url(redis_url).xadd(stream, {"e": "{not json", "p": "0"}, id="9000000-0")
    assert rb.pull_once() == 0
    assert rb.stats["skipped_entries"] == {a.origin: 1}
    assert idle_pull_commands(rb) <= idle + 1
    a.publish("message.broadcast", {"text": "after"}, sender="human")
    for _ in range(MEMBERS_EVERY + 1):  # its writer takes it back: seen at the next look, within MEMBERS_EVERY polls
        ra.push_once()
        rb.pull_once(with_members=False)
    rb.pull_once(with_members=True)
    texts = [e["data"]["text"] for e in b.journal.reader() if e["type"] == "message.broadcast"]
    assert texts == ["before", "after"]


def test_an_entry_skipped_for_its_id_is_not_read_again_at_every_look(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """An entry between real ones (`<seq>-5`) linked to the last one taken, a valid-looking event: skipped, and
    remembered with its link, so a look whether the stream was taken back does not take it for its writer's own and
    read the stream again (a log line and a read each time, for as long as it stays)."""
    a, _b, _ra, rb = two
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = LAYOUT.origin_stream(a.id, a.origin)
    [(top, fields)] = client.xrevrange(stream, count=1)
    event = orjson.loads(fields["e"])
    event.update(id="planted", data={"text": "planted"})
    seq = int(top.split("-")[0])
    client.xadd(stream, {"e": orjson.dumps(event).decode(), "p": str(seq)}, id=f"{seq}-5")
    assert rb.pull_once() == 0
    with caplog.at_level(logging.WARNING, logger="popkit_power.replication"):
        for _ in range(3):
            rb.pull_once()
    assert not [r for r in caplog.records if "taken back" in r.getMessage()]
    assert rb.stats["skipped_entries"] == {a.origin: 1}


@pytest.mark.slow
def test_more_planted_entries_than_remembered_do_not_make_the_puller_read_them_again_and_again(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str) -> None:
    """More planted entries linked to the last entry taken than the skipped ones remembered (MAX_REMEMBERED): once
    read past, the looks must not take the first of them, forgotten, for their writer's own and read them all again
    (which it would do at every look, for good, counting them again each time)."""
    a, b, ra, rb = two
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = LAYOUT.origin_stream(a.id, a.origin)
    [(top, _fields)] = client.xrevrange(stream, count=1)
    seq = int(top.split("-")[0])
    pipe = client.pipeline(transaction=False)
    for number in range(1, MAX_REMEMBERED + 2):
        pipe.xadd(stream, {"e": "{planted", "p": str(seq)}, id=f"{seq}-{number}")
    pipe.execute()
    while rb.pull_once():  # read past them all (nothing appended)
        pass
    for _ in range(-(-(MAX_REMEMBERED + 1) // rb.batch) + 2):
        rb.pull_once()
    read_again = rb.transport.commands_sent
    for _ in range(3):
        rb.pull_once()
    assert rb.transport.commands_sent - read_again <= 3 * 3, "idle reads: SMEMBERS, a look, XREAD; no read again"
    assert rb.stats["skipped_entries"] == {a.origin: MAX_REMEMBERED + 1}
    a.publish("message.broadcast", {"text": "after"}, sender="human")
    ra.push_once()
    rb.pull_once()
    texts = [e["data"]["text"] for e in b.journal.reader() if e["type"] == "message.broadcast"]
    assert texts == ["before", "after"]


@pytest.mark.xfail(strict=True, reason="an entry forged with the right link at the writer's next seq is taken, and "
                   "the writer's real event at that seq, put in its place when it takes the stream back, is never "
                   "read: lost on the puller, silently (nothing signs entries; see docs/replication.md)")
def test_a_forged_entry_with_the_right_link_does_not_cost_the_real_event_at_its_seq(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str) -> None:
    a, b, ra, rb = two
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = LAYOUT.origin_stream(a.id, a.origin)
    [(_top, fields)] = client.xrevrange(stream, count=1)
    event = orjson.loads(fields["e"])
    nxt = a.journal.end_position().seq  # where A's next event goes
    event.update(id="forged", seq=nxt, type="message.broadcast", ch="broadcast", data={"text": "forged"})
    client.xadd(stream, {"e": orjson.dumps(event).decode(), "p": str(ra.pushed_seq)}, id=f"{nxt}-0")
    rb.pull_once()
    a.publish("message.broadcast", {"text": "real"}, sender="human")
    a.publish("message.broadcast", {"text": "next"}, sender="human")
    sync(ra, rb)
    texts = [e["data"]["text"] for e in b.journal.reader() if e["type"] == "message.broadcast"]
    assert "real" in texts and "next" in texts


def _delete_an_entry_b_has_not_read(two: tuple[Session, Session, Replicator, Replicator],
                                    redis_url: str) -> tuple[redis.Redis, str]:
    """A pushes "deleted", which is deleted (XDEL) from its stream before B reads it, then "after"; both synced.
    Returns a client of the server and A's stream."""
    a, _b, ra, rb = two
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = LAYOUT.origin_stream(a.id, a.origin)
    a.publish("message.broadcast", {"text": "deleted"}, sender="human")
    ra.push_once()
    [(top, _fields)] = client.xrevrange(stream, count=1)
    client.xdel(stream, top)
    a.publish("message.broadcast", {"text": "after"}, sender="human")
    sync(ra, rb)
    return client, stream


@pytest.mark.xfail(strict=True, reason="one real entry deleted (XDEL) from a machine's stream before another machine "
                   "read it cuts that machine off for good: every later entry links to the deleted one, so each is "
                   "skipped as planted, and its writer never pushes the deleted one again (its stream's last id "
                   "still passes)")
def test_a_deleted_entry_does_not_cut_its_machine_off(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str) -> None:
    b = two[1]
    _delete_an_entry_b_has_not_read(two, redis_url)
    texts = [e["data"]["text"] for e in b.journal.reader() if e["type"] == "message.broadcast"]
    assert "after" in texts, texts


def test_a_machine_cut_off_by_a_deleted_entry_comes_back_when_its_stream_is_deleted(
        two: tuple[Session, Session, Replicator, Replicator], redis_url: str) -> None:
    """The way back docs/replication.md gives for the xfail above: its writer pushes everything again, and the
    other machine takes what it missed, once each."""
    a, b, ra, rb = two
    client, stream = _delete_an_entry_b_has_not_read(two, redis_url)
    client.delete(stream)
    a.publish("message.broadcast", {"text": "later"}, sender="human")
    sync(ra, rb)
    texts = [e["data"]["text"] for e in b.journal.reader() if e["type"] == "message.broadcast"]
    assert texts == ["before", "deleted", "after", "later"]
