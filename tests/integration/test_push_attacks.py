"""Attacks on the push rewrite that found defects (commits a584344, da1217c), kept as tests: a pulled event's size
counted by one JSON encoder and written by another, bodies that must stay what an earlier version pushed, a channel
cap Lua cannot carry, and a key of the original layout planted with another type."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from conftest import TOKEN
from test_replication import LAYOUT, assert_exactly_once, chatter, events, join, sync

from popkit_power.config import load_config
from popkit_power.errors import ConfigError, PowerModeError
from popkit_power.journal import codec
from popkit_power.keys import ARBITER
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.upstash_rest import UpstashRest
from popkit_power.session import Session, start_session


def machines(tmp_path: Path, **settings: Any) -> tuple[Session, Session]:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_bytes(orjson.dumps({"replication_batch_events": 3, **settings}))
    a = start_session(str(tmp_path / "a"), "attack", sender="human")
    return a, join(tmp_path / "b", a.id)


def test_pulled_floats_counted_by_orjson_but_written_by_codec_stall_the_pull(redis_url: str, tmp_path: Path) -> None:
    """entries.pulled_event counts a pulled event's size with orjson.dumps, but Session.append_events writes it with
    codec.dumps: 1e-07 is 4 bytes in orjson ("1e-7") and 5 in codec ("1e-07"). An event that fits by the orjson
    count and not by the journal's makes the journal refuse the whole append (RecordTooLargeError), every time: the
    pull from every origin stalls for good."""
    limit = 8192
    a, b = machines(tmp_path, max_record_bytes=limit)
    floats = [1e-07] * 1200  # 1200 bytes longer in codec than in orjson
    probe = a.event("message.broadcast", {"text": "", "xs": floats}, sender="alice")
    text = "x" * (limit - 40 - len(codec.dumps(probe)) - 5)  # A's journal takes it, 5 bytes to spare
    a.publish("message.broadcast", {"text": text, "xs": floats}, sender="alice")
    a.publish("message.broadcast", {"text": "later"}, sender="alice")
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    while one.push_once():
        pass
    errors = []
    for _ in range(5):  # what the pull loop does: Replicator._guarded catches PowerModeError, backs off, tries again
        try:
            two.pull_once()
        except PowerModeError as error:
            errors.append(type(error).__name__)
    assert not errors, "the pull is refused every time, and nothing after the event ever arrives"
    assert "later" in [e["data"].get("text") for e in events(b) if e["origin"] == a.origin]


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_events_pushed_before_the_upgrade_are_pushed_again_after_it(redis_url: str, tmp_path: Path) -> None:
    """The version before da1217c (e44dfd6) pushed bodies serialized by codec; had this one compared the server's
    bodies with orjson's, and the two write some floats differently (1e-05 vs 0.00001). After an upgrade, resume's scan
    (positions.scan: body(event) == top_body) no longer recognizes the stream's top as this machine's and pushes from
    the start; the push script finds the body "foreign", drops it and everything after (drop_from) and writes them
    again as new: their channel stream entries and effects a second time."""
    import sys

    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", "e44dfd6^{commit}"], capture_output=True).returncode:
        pytest.skip("the checkout does not hold commit e44dfd6 (a shallow clone)")
    old = tmp_path / "old"
    old.mkdir()
    subprocess.run(f"git -C {REPO} archive e44dfd6 popkit_power | tar -x -C {old}", shell=True, check=True)
    a, b = machines(tmp_path)
    a.publish("message.broadcast", {"text": "one"}, sender="alice")
    a.publish("task.orphaned", {"task": "t1", "agent": "alice"}, sender="alice")
    a.publish("message.broadcast", {"text": "two", "ratio": 1e-05}, sender="alice")  # the last pushed before
    push_with_the_old_version = (
        "import sys; from popkit_power.session import Session; from popkit_power.replication.redis_streams import "
        "RedisStreams; from popkit_power.replication.replicator import Replicator; "
        f"s = Session({str(tmp_path / 'a')!r}, {a.id!r}); r = Replicator(s, RedisStreams({redis_url!r}));\n"
        "while r.push_once(): pass")
    subprocess.run([sys.executable, "-c", push_with_the_old_version], check=True, cwd=old,
                   env={"PYTHONPATH": str(old), "PATH": "/usr/bin:/bin"})
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.xlen(LAYOUT.origin_stream(a.id, a.origin)) == 5
        assert client.lrange(LAYOUT.orphaned_tasks, 0, -1) == ["t1"]
    # upgraded: the same machine goes on with this version
    a.publish("message.broadcast", {"text": "three"}, sender="alice")
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    sync(one, two)
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.lrange(LAYOUT.orphaned_tasks, 0, -1) == ["t1"], "task.orphaned's effect ran again"
    assert_exactly_once(RedisStreams(redis_url), [a, b])


def test_pulled_floats_counted_by_orjson_skip_an_event_the_journal_would_hold(redis_url: str, tmp_path: Path) -> None:
    """The other direction of the same miscount: 1e-05 is "0.00001" in orjson, 2 bytes longer than codec's "1e-05".
    An event whose pulled record fits the journal (codec, what Session.append_events writes) is counted too large by
    entries.pulled_event and skipped: machine B never gets it."""
    limit = 8192
    a, b = machines(tmp_path, max_record_bytes=limit)
    floats = [1e-05] * 1000  # 2000 bytes longer in orjson than in codec
    probe = a.event("message.broadcast", {"text": "", "xs": floats}, sender="alice")
    # A's record and B's (with oseq and rts, ~60 bytes more) both fit by codec's count, with room to spare
    text = "x" * (limit - 40 - len(codec.dumps(probe)) - 200)
    a.publish("message.broadcast", {"text": text, "xs": floats}, sender="alice")
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    sync(one, two)
    [pulled] = [e for e in events(b) if e["origin"] == a.origin and e["data"].get("xs")]
    assert len(codec.dumps(pulled)) + 40 <= limit


def test_a_channel_cap_lua_cannot_carry_is_refused_by_the_config(tmp_path: Path) -> None:
    """2**63-1 would reach the script as the double 2**63, which XADD MAXLEN refuses after the event's origin entry is
    written: the config refuses it first, naming the setting and its bound."""
    (tmp_path / "config.json").write_bytes(orjson.dumps({"redis_channel_maxlen": 2**63 - 1}))
    with pytest.raises(ConfigError, match=r"redis_channel_maxlen.*at most 1e\+09"):
        load_config(str(tmp_path))


def test_a_key_of_the_original_layout_planted_with_another_type_does_not_stop_the_push(
        redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Anyone with the credentials can write `pop:tasks:orphaned` as a hash: the RPUSH of an orphaned task is then
    refused. Before, that error ended the script after the event's origin entry was written: the event counted as
    pushed with its other writes never made, and every later push stopped at the same key. Now the refusal is
    counted and logged, and replication goes on."""
    a, b = machines(tmp_path)
    with redis.Redis.from_url(redis_url) as client:
        client.hset(LAYOUT.orphaned_tasks, "planted", "1")
    a.publish("task.orphaned", {"task": "t1", "agent": "alice"}, sender="alice")
    for n in range(7):
        a.publish("message.broadcast", {"text": f"after {n}"}, sender="alice")
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    with caplog.at_level(logging.WARNING, logger="popkit_power.replication"):
        sync(one, two)
    assert "1 writes of the original layout refused" in caplog.text
    assert [e["data"].get("text") for e in events(b) if e["type"] == "message.broadcast"] == [
        f"after {n}" for n in range(7)]
    assert_exactly_once(RedisStreams(redis_url), [a, b])


def test_a_joined_stream_planted_with_another_type_does_not_stop_the_pull(redis_url: str, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The stream announcing machines that join is read by every pull's XREAD: as a string, it would make every XREAD
    fail. It is left out until the next resume, and machines that join are seen through the set of origins."""
    a, b = machines(tmp_path)
    with redis.Redis.from_url(redis_url) as client:
        client.set(LAYOUT.joined(a.id), "planted")
    a.publish("message.broadcast", {"text": "from a"}, sender="alice")
    b.publish("message.broadcast", {"text": "from b"}, sender="bob")
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    with caplog.at_level(logging.WARNING, logger="popkit_power.replication"):
        sync(one, two)
    assert "machines that join are seen with the set of origins only" in caplog.text
    assert [e["data"]["text"] for e in events(a) if e["origin"] == b.origin] == ["from b"]
    assert [e["data"]["text"] for e in events(b) if e["origin"] == a.origin and e["type"] == "message.broadcast"] == [
        "from a"]


# -- the second attack (the joined stream, the batch's bytes, the arbiter's keys, start) -----------------------------

def test_a_thousand_planted_announcements_neither_recurse_nor_flood_the_origins(redis_url: str, tmp_path: Path) -> None:
    """A pull used to call itself once per read that named new machines: 1,200 planted entries with a batch of one
    event passed Python's recursion limit and killed the pull thread. Now one more read at most, at most 100 new
    origins a read, and only names an origin can have."""
    a, b = machines(tmp_path, replication_batch_events=1)
    with redis.Redis.from_url(redis_url) as client:
        pipe = client.pipeline(transaction=False)
        for n in range(1200):
            pipe.xadd(LAYOUT.joined(a.id), {"origin": f"fake-{n}"})
        for name in ("with space", "arbiter", "x" * 300, "tab\\there"):
            pipe.xadd(LAYOUT.joined(a.id), {"origin": name.replace("\\\\t", "\\t")})
        pipe.execute()
    one = Replicator(a, RedisStreams(redis_url))
    for _ in range(30):
        one.pull_once(with_members=False)
    assert len(one.origins) <= 100 * 31 and not {"with space", "arbiter", "x" * 300} & one.origins
    write_b = Replicator(b, RedisStreams(redis_url))
    b.publish("message.broadcast", {"text": "real"}, sender="bob")
    write_b.push_once()
    sync(one, write_b)
    assert [e["data"]["text"] for e in events(a) if e["origin"] == b.origin] == ["real"]


@pytest.mark.slow
def test_effect_copies_of_emoji_text_stay_under_upstash_s_request_limit(bridge: Any, tmp_path: Path) -> None:
    """A batch is bounded by the bytes of its whole string, effects' copies included: nine insights of 250,000 emoji
    each (the text once in the body and once in its pattern's hash) made one request of ~18 MB, refused whole by
    Upstash every time it was sent again."""
    a, b = machines(tmp_path)
    for n in range(9):
        a.publish("insight.shared", {"text": f"{n}" + "\U0001F600" * 250_000, "tags": []}, sender="alice:main")
    one, two = Replicator(a, UpstashRest(bridge.url, TOKEN)), Replicator(b, UpstashRest(bridge.url, TOKEN))
    sync(one, two, rounds=20)
    assert len([e for e in events(b) if e["type"] == "insight.shared"]) == 9
    assert_exactly_once(one.transport, [a, b])


def test_a_planted_arbiter_counter_holds_claims_back_until_it_is_deleted(redis_url: str, tmp_path: Path) -> None:
    """The counter planted as text made the decision fail after the claim was on its stream: pushed, never decided,
    on any machine. Now the push stops before the claim, says which key to delete, and decides it after."""
    a, b = machines(tmp_path)
    with redis.Redis.from_url(redis_url) as client:
        client.set(LAYOUT.arbiter_counter(a.id), "planted")
    a.publish("task.created", {"task": "t1", "title": "t"}, sender="alice:main")
    a.publish("task.claimed", {"task": "t1", "round": 0}, sender="alice:main")
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    with pytest.raises(PowerModeError, match=f"{LAYOUT.arbiter_counter(a.id)} cannot hold the decisions"):
        while one.push_once():
            pass
    with redis.Redis.from_url(redis_url) as client:
        client.delete(LAYOUT.arbiter_counter(a.id))
    one._resumed = False
    sync(one, two)
    decided = [e for e in events(b) if e["origin"] == ARBITER and e["type"] == "arbiter.decided"]
    assert [e["data"]["agent"] for e in decided] == ["alice:main"]
    placed = [e["data"]["type"] for e in events(b) if e["type"] == "arbiter.ordered"]
    assert placed == ["task.created", "task.claimed"], "and both task changes placed in the order"


def test_a_joined_stream_deleted_behind_its_readers_announces_again_after_a_resume(redis_url: str,
                                                                                  tmp_path: Path) -> None:
    """An entry planted far ahead and then deleted leaves a reader's cursor above every later id: it reads the stream
    from its start again at every resume (after any failure), and the set of origins tells meanwhile."""
    a, b = machines(tmp_path)
    one = Replicator(a, RedisStreams(redis_url))
    one.push_once()
    with redis.Redis.from_url(redis_url) as client:
        client.xadd(LAYOUT.joined(a.id), {"origin": a.origin}, id="99999999999999-0")
    one.pull_once(with_members=False)
    with redis.Redis.from_url(redis_url) as client:
        client.delete(LAYOUT.joined(a.id))
    chatter(b, "bob", 3)
    Replicator(b, RedisStreams(redis_url)).push_once()
    assert one.pull_once(with_members=False) == 0, "the cursor is past b's announcement"
    one._resumed = False
    assert one.pull_once(with_members=False) == 3


def test_a_joined_stream_at_the_largest_id_is_said_and_the_set_still_tells(redis_url: str, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    a, b = machines(tmp_path)
    with redis.Redis.from_url(redis_url) as client:
        client.xadd(LAYOUT.joined(a.id), {"origin": "nobody"}, id="18446744073709551615-18446744073709551615")
    one = Replicator(a, RedisStreams(redis_url))
    one.push_once()
    chatter(b, "bob", 3)
    with caplog.at_level(logging.WARNING, logger="popkit_power.replication"):
        Replicator(b, RedisStreams(redis_url)).push_once()
    assert "could not announce this machine" in caplog.text
    assert one.pull_once(with_members=True) == 3


def test_a_replicator_is_started_once(redis_url: str, tmp_path: Path) -> None:
    """Two start() calls ran two pull loops that appended every event twice."""
    a, _ = machines(tmp_path)
    one = Replicator(a, RedisStreams(redis_url))
    one.start()
    try:
        with pytest.raises(PowerModeError, match="one start"):
            one.start()
    finally:
        one.stop()
