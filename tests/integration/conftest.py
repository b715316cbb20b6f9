"""Fixtures with real servers: a redis-server of the tests' own (never the machine's 6379) and the Upstash bridge
(tools/upstash_bridge.py) over it, plus the transports of popkit_power/replication over each.

    redis_server     one redis-server for the whole run (each test that uses `redis_url` starts on an empty one)
    redis_url        its URL, flushed before the test
    own_redis        a redis-server for this test alone, to stop, kill and start again (RedisServer in support.py)
    bridge           the Upstash bridge over `redis_url`, with TOKEN; faults planned on it are this test's
    plain_bridge     the same, ignoring `Upstash-Encoding: base64` (plain JSON replies), as some compatible servers do
    transport        the contract's transport, once per kind: "redis", "upstash" (through the bridge),
                     "upstash-plain" (through the plain bridge), "memory"
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import RedisServer

_TOOLS = Path(__file__).resolve().parents[2] / "tools"
if str(_TOOLS) not in sys.path:
    sys.path.insert(0, str(_TOOLS))

from upstash_bridge import Bridge  # noqa: E402

from popkit_power.replication.memory import MemoryTransport  # noqa: E402
from popkit_power.replication.redis_streams import RedisStreams  # noqa: E402
from popkit_power.replication.transport import Transport  # noqa: E402
from popkit_power.replication.upstash_rest import UpstashRest  # noqa: E402

#: The bridge's token in the tests: long enough that its mask shows its last 4 characters.
TOKEN = "AXtestTOKEN0123456789secretZZ"
KINDS = ("redis", "upstash", "upstash-plain", "memory")
UPSTASH_KINDS = ("upstash", "upstash-plain")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path_factory.mktemp("redis"))).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.answers():  # a test before stopped it: bring it back
        redis_server.start()
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
        client.script_flush()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(str(tmp_path / "redis")).start()
    yield server
    server.kill()


@pytest.fixture
def bridge(redis_url: str) -> Iterator[Bridge]:
    with Bridge(redis_url, TOKEN) as running:
        yield running


@pytest.fixture
def plain_bridge(redis_url: str) -> Iterator[Bridge]:
    with Bridge(redis_url, TOKEN, ignore_encoding=True) as running:
        yield running


def bridge_for(kind: str, request: pytest.FixtureRequest) -> Any:
    """The bridge a transport of `kind` goes through (the test's own fixture), or None for redis and memory."""
    if kind not in UPSTASH_KINDS:
        return None
    return request.getfixturevalue("plain_bridge" if kind == "upstash-plain" else "bridge")


def make_transport(kind: str, redis_url: str, bridge: Bridge | None) -> Transport:
    if kind == "redis":
        return RedisStreams(redis_url)
    if kind in UPSTASH_KINDS:
        assert bridge is not None and bridge.ignore_encoding is (kind == "upstash-plain")
        return UpstashRest(bridge.url, TOKEN)
    return MemoryTransport()


@pytest.fixture(params=KINDS)
def transport(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Transport]:
    running = bridge_for(request.param, request)
    made = make_transport(request.param, redis_url, running)
    yield made
    made.close()


@pytest.fixture(autouse=True)
def _no_credentials_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    assert "REDIS_URL" not in os.environ
