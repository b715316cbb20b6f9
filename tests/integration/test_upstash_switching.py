"""An Upstash-compatible server that changes how it encodes after the transport learned it (a proxy restarted with
another setting, an upgrade behind a load balancer): the transport learned base64 from the first PING, then the
server answers plain JSON. A call may fail, but the next ones learn again and replication goes on; it must not
fail at every call for good. Two machines through the bridge over a real Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import TOKEN
from test_replication import join

from popkit_power.replication.errors import TransportError
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.upstash_rest import UpstashRest
from popkit_power.session import start_session


def test_a_server_that_stops_honouring_base64_is_learned_again(tmp_path: Path, redis_url: str, bridge: Any) -> None:
    a = start_session(str(tmp_path / "a"), "Switching server", sender="human")
    b = join(tmp_path / "b", a.id)
    ra = Replicator(a, RedisStreams(redis_url))
    transport = UpstashRest(bridge.url, TOKEN)
    rb = Replicator(b, transport)
    ra.push_once()
    rb.pull_once()
    assert transport.base64 is True
    bridge.ignore_encoding = True  # from now on, every reply is plain JSON
    a.publish("message.broadcast", {"text": "after the switch"}, sender="human")
    ra.push_once()
    failures = 0
    for _ in range(5):
        try:
            rb.push_once()
            rb.pull_once()
        except TransportError:
            failures += 1
            rb._resumed = False  # what the loop does after a failure
    texts = [e["data"]["text"] for e in b.journal.reader() if e["type"] == "message.broadcast"]
    assert texts == ["after the switch"], (texts, failures)
    assert transport.base64 is False and "plain JSON" in transport.describe()
    assert failures <= 1
