"""An Upstash-compatible server that ignores `Upstash-Encoding: base64` and answers plain JSON (some community
servers over a real Redis do): the transport learns it from its first PING ("PONG" where base64 gives "UE9ORw==")
and speaks plain JSON from then on. What plain JSON cannot carry is checked too: a value that is not UTF-8 comes
back with U+FFFD for its bad bytes. The whole transport contract runs over such a server as well
(test_transport_contract.py, kind "upstash-plain")."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from conftest import TOKEN, UPSTASH_KINDS, bridge_for
from test_push_batches import small_batches
from test_replication import LAYOUT, chatter, events, sync

from popkit_power.journal.verify import verify_journal
from popkit_power.replication.positions import body
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.upstash_rest import UpstashRest

CHECKS = 10
#: Text popkit-power writes that must travel as it is: separators, multi-byte characters, NUL, line and
#: paragraph separators, quotes, backslashes, and the very replies the encoding is learned from.
HOSTILE = ["7 8 9 10 0:", "a:b\n12:xyz", "caf\u00e9 \u2603 \U0001f600", "nul\x00here", ":", "9" * 40,
           'quote " back \\ slash', "\u2028\u2029\ufeff", "UE9ORw==", "PONG", "OK"]


def cli(*args: str, bridge: Any) -> subprocess.CompletedProcess[str]:
    """`popkit-power ARGS` as a new user runs it, with the bridge's credentials in the environment."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "UPSTASH_REDIS_REST_URL": bridge.url,
           "UPSTASH_REDIS_REST_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "popkit_power.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.slow
def test_ping_and_the_self_test_pass_against_a_server_that_ignores_base64(plain_bridge: Any) -> None:
    """Before: `PING answered '<\\udce3F', not PONG` ("PONG" read as base64), and the self-test failed."""
    pinged = cli("upstash", "ping", bridge=plain_bridge)
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    assert pinged.stdout.startswith(f"ok    PING upstash {plain_bridge.url} (token ****etZZ, plain JSON: the "
                                    f"server ignores Upstash-Encoding): PONG in ")
    tested = cli("upstash", "test", bridge=plain_bridge)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    lines = tested.stdout.splitlines()
    assert [line[:6] for line in lines[1:-1]] == ["ok    "] * CHECKS
    assert lines[-1].startswith(f"{CHECKS} of {CHECKS} checks passed")
    served = plain_bridge.requests
    status = cli("upstash", "status", bridge=plain_bridge)
    assert status.returncode == 0 and plain_bridge.requests == served  # status contacts nothing


def test_the_encoding_is_learned_from_the_first_call_whatever_it_holds(bridge: Any, plain_bridge: Any) -> None:
    """A first call without PING gets one in front (sent and counted, once); its reply decides the encoding."""
    for server, base64 in ((bridge, True), (plain_bridge, False)):
        with closing(UpstashRest(server.url, TOKEN)) as transport:
            assert transport.base64 is None
            assert transport.execute([["SET", "k", "UE9ORw=="], ["GET", "k"]], timeout=5) == ["OK", "UE9ORw=="]
            assert transport.base64 is base64 and transport.probes_sent == 1 and transport.commands_sent == 3
            assert transport.execute([["PING"], ["GET", "k"]], timeout=5) == ["PONG", "UE9ORw=="]
            assert transport.probes_sent == 1 and transport.commands_sent == 5


def test_hostile_text_replicates_as_it_is_over_plain_json(plain_bridge: Any, redis_url: str,
                                                          tmp_path: Path) -> None:
    """Everything popkit-power writes is UTF-8 JSON text, so plain JSON carries it unchanged: the streams hold
    each event's body byte for byte and both journals end with the same events."""
    a, b = small_batches(tmp_path)
    for n, text in enumerate(HOSTILE):
        a.publish("message.broadcast", {"text": text * 3}, sender=f"{text}:{n}")
        b.publish("x.custom " + text, {"t": text}, sender="human", channel="broadcast")
    one, two = (Replicator(session, UpstashRest(plain_bridge.url, TOKEN)) for session in (a, b))
    sync(one, two)
    assert one.transport.base64 is False and two.transport.base64 is False  # type: ignore[attr-defined]
    for session, other in ((a, b), (b, a)):
        mine = [e for e in events(session) if e["origin"] == session.origin]
        pulled = [e for e in events(other) if e["origin"] == session.origin]
        assert [(e["id"], e["type"], e["from"], e["data"]) for e in pulled] == [
            (e["id"], e["type"], e["from"], e["data"]) for e in mine]
        with redis.Redis.from_url(redis_url, decode_responses=True) as client:
            stored = client.xrange(LAYOUT.origin_stream(a.id, session.origin))
        assert [fields["e"] for _id, fields in stored] == [body(e) for e in mine]


def test_the_limit_of_plain_json_bytes_that_are_not_utf8(bridge: Any, plain_bridge: Any, redis_url: str) -> None:
    """A value that is not UTF-8 (written into Redis by something else) comes back through base64 with surrogate
    escapes, byte for byte, and through plain JSON with U+FFFD for each bad byte: the limit, stated in
    docs/replication.md."""
    with redis.Redis.from_url(redis_url) as client:
        client.set("raw", b"ok \xff\xfe end")
    with closing(UpstashRest(bridge.url, TOKEN)) as encoded, closing(UpstashRest(plain_bridge.url, TOKEN)) as plain:
        assert encoded.execute([["GET", "raw"]], timeout=5) == ["ok \udcff\udcfe end"]
        assert plain.execute([["GET", "raw"]], timeout=5) == ["ok \ufffd\ufffd end"]


@pytest.mark.parametrize("kind", UPSTASH_KINDS)
def test_planted_entries_with_bad_bytes_are_skipped_over_either_encoding(
        kind: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Entries planted in machine B's stream (not JSON, no body, bytes that are not UTF-8, and an event of B's with
    such bytes inside its text): over base64 and over plain JSON, machine A skips them all and goes on with every one
    of B's real events, and its journal stays whole. Over base64 the event with bad bytes does not even parse; over
    plain JSON its bad bytes arrive as U+FFFD and it parses, but it does not link to B's entry before it, so it is
    skipped like any planted entry (docs/replication.md)."""
    a, b = small_batches(tmp_path)
    bridge = bridge_for(kind, request)
    one, two = (Replicator(session, UpstashRest(bridge.url, TOKEN)) for session in (a, b))
    b.publish("message.broadcast", {"text": "before"}, sender="bob:main")
    sync(one, two)
    stream = LAYOUT.origin_stream(a.id, b.origin)
    with redis.Redis.from_url(redis_url) as client:
        top = int(client.xinfo_stream(stream)["last-generated-id"].split(b"-")[0])
        made = b.event("message.broadcast", {"text": "PLANTED"}, sender="mallory:main")
        inside = orjson.dumps({**made, "origin": b.origin}).replace(b"PLANTED", b"PLANTED \xff\xfe")
        for n, fields in enumerate([{"e": b"{not json"}, {"x": b"no body"}, {"e": b"\xff\xfe"}, {"e": inside}], 1):
            client.xadd(stream, fields, id=f"{top + n}-0")
    chatter(b, "bob", 5)
    sync(one, two)
    texts = [e["data"].get("text") for e in events(a) if e["origin"] == b.origin]
    assert texts == ["before"] + [f"bob says {n}" for n in range(5)], texts
    assert verify_journal(a.journal)["ok"]
