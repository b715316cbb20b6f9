"""Entries planted in another machine's stream (issue 21): however they look, they are skipped without the pull
position moving past the real entries that come after them, counted, and shown in `status --json` and `doctor`.
Two machines (power directories with their own coordinator and replicator) through one real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from support import two_machines_of_one_session, until
from test_replication import sync

from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.keys import RedisLayout
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.session import Session, start_session

SCRIPT = Path(sys.executable).parent / "popkit-power"
LAYOUT = RedisLayout()
FAR = 9_000_000_000_000  # an id far ahead of any journal


@pytest.fixture
def machines(tmp_path: Path, redis_url: str) -> Iterator[dict[str, Any]]:
    homes, a, b = two_machines_of_one_session(tmp_path, "Planted entries",
                                              '{"agent_timeout_seconds": 3600, "heartbeat_seconds": 3600}')
    coordinators = [PowerModeCoordinator(power_dir=home, environ={"REDIS_URL": redis_url}) for home in homes]
    for coordinator in coordinators:
        assert coordinator.connect() and coordinator.mode == "redis"
        coordinator.start()
    yield {"homes": homes, "sessions": (a, b), "redis_url": redis_url}
    for coordinator in coordinators:
        coordinator.stop()


def broadcasts(session: Session, origin: str) -> list[str]:
    return [e["data"]["text"] for e in session.journal.reader()
            if e["type"] == "message.broadcast" and e.get("origin") == origin]


def copy_of_last(client: redis.Redis, stream: str, **changes: Any) -> dict[str, str]:
    """The fields of the stream's last entry, its event given a new id (and `changes`): a valid-looking event of
    that origin, as anyone holding the credentials can write."""
    [(_entry_id, fields)] = client.xrevrange(stream, count=1)
    event = orjson.loads(fields["e"])
    event.update(id=str(uuid.uuid4()), data={"text": "planted"}, type="message.broadcast", ch="broadcast", **changes)
    return {**fields, "e": orjson.dumps(event).decode()}


def plant(case: str, client: redis.Redis, stream: str, b: Session) -> str:
    """Write the case's entry into B's stream; its id."""
    top = int(client.xinfo_stream(stream)["last-generated-id"].split("-")[0])
    if case == "far ahead, a valid-looking event":
        entry_id = f"{FAR}-0"
        client.xadd(stream, copy_of_last(client, stream), id=entry_id)
    elif case == "at B's next seq, a valid-looking event with a wrong link":
        entry_id = f"{b.journal.end_position().seq}-0"  # where B's next event will go
        client.xadd(stream, copy_of_last(client, stream), id=entry_id)
    elif case == "far ahead, garbage":
        entry_id = f"{FAR}-0"
        client.xadd(stream, {"e": "{not json"}, id=entry_id)
    elif case == "between real ones":
        entry_id = f"{top}-5"  # after B's last entry, before its next (B's ids are <seq>-0)
        client.xadd(stream, copy_of_last(client, stream), id=entry_id)
    else:
        raise AssertionError(case)
    return entry_id


CASES = ["far ahead, a valid-looking event", "at B's next seq, a valid-looking event with a wrong link",
         "far ahead, garbage", "between real ones"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_a_planted_entry_is_skipped_counted_and_shown_and_b_s_next_broadcasts_reach_a(
        case: str, machines: dict[str, Any], tmp_path: Path) -> None:
    home_a, _home_b = machines["homes"]
    a, b = machines["sessions"]
    b.publish("message.broadcast", {"text": "before"}, sender="bob:main")
    until(lambda: "before" in broadcasts(a, b.origin), 30, "A pulled B's first broadcast")
    stream = LAYOUT.origin_stream(a.id, b.origin)
    client = redis.Redis.from_url(machines["redis_url"], decode_responses=True)
    try:
        planted_id = plant(case, client, stream, b)
        sent = [f"after {n}" for n in range(8)]
        for text in sent:
            b.publish("message.broadcast", {"text": text}, sender="bob:main")
        until(lambda: broadcasts(a, b.origin)[-8:] == sent, 60, f"B's next 8 broadcasts reach A ({case})")
    finally:
        client.close()
    assert "planted" not in broadcasts(a, b.origin), "the planted entry never reaches A's journal"
    assert broadcasts(a, b.origin) == broadcasts(b, b.origin), "A holds B's broadcasts, each once, in order"
    environ = {**os.environ, "REDIS_URL": machines["redis_url"]}
    info = until(lambda: (lambda found: found if (found.get("replication") or {}).get("skipped_entries") else None)(
        orjson.loads(subprocess.run([str(SCRIPT), "--home", home_a, "status", "--json"], capture_output=True,
                                    text=True, timeout=60, env=environ).stdout)), 30, "status --json counts it")
    skipped = info["replication"]["skipped_entries"]
    assert skipped == {b.origin: 1}, skipped
    assert planted_id in info["replication"]["last_skipped_entry"] and stream in info["replication"][
        "last_skipped_entry"], info["replication"]
    doctor = subprocess.run([str(SCRIPT), "--home", home_a, "doctor"], capture_output=True, text=True, timeout=60,
                            env=environ, cwd=str(tmp_path))
    line = next(line for line in doctor.stdout.splitlines() if "replication" in line)
    assert "1 entry skipped" in line and b.origin in line, doctor.stdout


def test_an_event_too_large_for_this_journal_is_skipped_and_the_next_one_still_taken(
        tmp_path: Path, redis_url: str) -> None:
    """B's own event over A's max_record_bytes is B's all the same: A skips it (logged), does not count it as planted,
    and takes B's next event, which is linked to it; after a restart A reads it again and still goes on."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    home_a.mkdir()
    (home_a / "config.json").write_text('{"max_record_bytes": 4096}')
    a = start_session(str(home_a), "Sizes", sender="human")
    b = Session(str(home_b), a.id, create=True)
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    b.publish("message.broadcast", {"text": "x" * 10_000}, sender="bob:main")
    b.publish("message.broadcast", {"text": "small"}, sender="bob:main")
    sync(one, two)
    assert broadcasts(a, b.origin) == ["small"]
    assert one.stats["skipped_entries"] == {} and one.stats["last_skipped_entry"] is None
    again = Replicator(Session(str(home_a), a.id), RedisStreams(redis_url))  # a restart: positions from the journal
    b.publish("message.broadcast", {"text": "after the restart"}, sender="bob:main")
    sync(again, two)
    assert broadcasts(a, b.origin) == ["small", "after the restart"]
    for replicator in (one, two, again):
        replicator.transport.close()


def test_after_a_restart_an_unlinked_entry_planted_far_ahead_is_still_refused(tmp_path: Path, redis_url: str) -> None:
    """Entries without a link are taken only from a stream pushed by a version before links. A restarted replicator
    learns which kind a stream is from the last entry it took (read again at resume), so a valid-looking event
    planted far ahead without a link is refused then too, and B's next events reach A."""
    a = start_session(str(tmp_path / "a"), "Restart", sender="human")
    b = Session(str(tmp_path / "b"), a.id, create=True)
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    b.publish("message.broadcast", {"text": "first"}, sender="bob:main")
    sync(one, two)
    again = Replicator(Session(str(tmp_path / "a"), a.id), RedisStreams(redis_url))
    stream = LAYOUT.origin_stream(a.id, b.origin)
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        planted = copy_of_last(client, stream)
        del planted["p"]
        client.xadd(stream, planted, id=f"{FAR}-0")
    b.publish("message.broadcast", {"text": "second"}, sender="bob:main")
    sync(again, two)
    assert broadcasts(a, b.origin) == ["first", "second"]
    assert again.stats["skipped_entries"] == {b.origin: 1}
    for replicator in (one, two, again):
        replicator.transport.close()


def test_links_stay_one_chain_while_resumes_run_under_the_push(tmp_path: Path, redis_url: str) -> None:
    """Resumes forced again and again (as failures cause them, in either thread) while a machine writes: every entry
    of its stream links to the entry before it, so that the other machine takes every one."""
    import threading
    import time

    a = start_session(str(tmp_path / "a"), "Links", sender="human")
    b = Session(str(tmp_path / "b"), a.id, create=True)
    replicators = [Replicator(Session(session.power_dir, session.id), RedisStreams(redis_url)) for session in (a, b)]
    for replicator in replicators:
        replicator.start()
    done = threading.Event()

    def resume_again() -> None:
        while not done.is_set():
            replicators[0]._resumed = False
            time.sleep(0.002)

    forcing = threading.Thread(target=resume_again, daemon=True)
    forcing.start()
    try:
        for n in range(300):
            a.publish("message.broadcast", {"text": f"m{n}"}, sender="alice:main")
            if n % 50 == 0:
                time.sleep(0.05)  # the scenario: bursts with pauses, so that the forced resumes meet pulls between
        until(lambda: len(broadcasts(b, a.origin)) == 300, 60, "B took every broadcast")
    finally:
        done.set()
        forcing.join(10)
        for replicator in replicators:
            replicator.stop()
            replicator.transport.close()
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        entries = client.xrange(LAYOUT.origin_stream(a.id, a.origin))
    links = [(int(entry_id.split("-")[0]), int(fields["p"])) for entry_id, fields in entries]
    assert all(link == (links[n - 1][0] if n else 0) for n, (_seq, link) in enumerate(links)), links[:20]
    assert broadcasts(b, a.origin) == [f"m{n}" for n in range(300)]
    assert replicators[1].stats["skipped_entries"] == {}
