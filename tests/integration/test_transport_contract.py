"""The transport contract (popkit_power/replication/transport.py), kept alike by every transport: a real
redis-server, Upstash's REST API through the bridge over it (honouring `Upstash-Encoding: base64`, and ignoring it
as some compatible servers do), and the in-memory fake.

Faults are real where they can be: a slow command (DEBUG SLEEP) past the call's timeout, a redis-server killed and
started again, the bridge holding, refusing or resetting a request; the memory transport gets them through
FaultyTransport. Every error is checked for its class, `retryable`, `outcome_unknown`, and for the token or password
appearing nowhere in its message or repr.
"""

from __future__ import annotations

import socket
import threading
from contextlib import closing
from typing import Any

import pytest
import redis
from conftest import TOKEN, bridge_for, make_transport
from support import until
from upstash_bridge import Bridge

from popkit_power.replication.errors import (
    MalformedReplyError,
    ReplicationError,
    TransportAuthError,
    TransportError,
    TransportLimitError,
    TransportServerError,
    TransportTimeoutError,
    TransportUnreachableError,
)
from popkit_power.replication.memory import FaultyTransport, MemoryTransport
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.transport import ReplyError, Script, Transport
from popkit_power.replication.upstash_rest import UpstashRest

DUPLICATE = "ERR The ID specified in XADD is equal or smaller than the target stream top item"


def probes(transport: Transport) -> int:
    """The PINGs an Upstash transport added to learn the server's encoding (UpstashRest): sent, and billed."""
    return getattr(transport, "probes_sent", 0)


def assert_secret_free(error: BaseException, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in str(error) and secret not in repr(error), error


# -- the replies ------------------------------------------------------------------------------------------------------

def test_ping_and_the_count_of_commands_sent(transport: Transport) -> None:
    assert transport.commands_sent == 0
    assert transport.execute([["PING"]], timeout=5) == ["PONG"]
    assert transport.execute([["PING"], ["PING"], ["PING"]], timeout=5) == ["PONG"] * 3
    assert transport.commands_sent == 4
    assert transport.kind in ("redis", "upstash", "memory") and transport.kind in transport.describe()


def test_a_duplicate_xadd_in_the_middle_of_a_pipeline_is_an_error_in_its_place(transport: Transport) -> None:
    replies = transport.execute([["XADD", "s", "1-0", "n", "1"], ["XADD", "s", "2-0", "n", "2"],
                                 ["XADD", "s", "2-0", "n", "dup"], ["XADD", "s", "3-0", "n", "3"],
                                 ["XRANGE", "s", "-", "+"]], timeout=5)
    assert replies[:2] == ["1-0", "2-0"] and replies[3] == "3-0"
    assert replies[2] == ReplyError(DUPLICATE) and replies[2].code == "ERR"
    assert replies[4] == [["1-0", ["n", "1"]], ["2-0", ["n", "2"]], ["3-0", ["n", "3"]]]
    # sent again as a whole (a retry after an unknown outcome): every entry is a no-op, nothing doubles
    again = transport.execute([["XADD", "s", f"{n}-0", "n", str(n)] for n in (1, 2, 3)] + [["XLEN", "s"]], timeout=5)
    assert again == [ReplyError(DUPLICATE)] * 3 + [3]
    assert transport.commands_sent == 9 + probes(transport)


def test_each_command_has_its_own_result_in_redis_shapes(transport: Transport) -> None:
    replies = transport.execute([
        ["SET", "k", "v", "EX", 60], ["GET", "k"], ["GET", "missing"], ["HSET", "h", "a", 1, "b", "two"],
        ["HGETALL", "h"], ["EXPIRE", "h", 60], ["TTL", "h"], ["INCR", "k"], ["XADD", "k", "1-0", "f", "v"],
        ["SET", "text", "h\u00e9llo \u2603"], ["GET", "text"], ["SET", "raw", b"bytes"], ["GET", "raw"],
        ["DEL", "k", "h"], ["EXISTS", "k", "h"]], timeout=5)
    assert replies[:7] == ["OK", "v", None, 2, ["a", "1", "b", "two"], 1, replies[6]]
    assert isinstance(replies[6], int) and 0 < replies[6] <= 60
    assert replies[7] == ReplyError("ERR value is not an integer or out of range")
    assert isinstance(replies[8], ReplyError) and replies[8].code == "WRONGTYPE"
    assert replies[9:] == ["OK", "h\u00e9llo \u2603", "OK", "bytes", 2, 0]


def test_xread_over_several_streams_in_one_command(transport: Transport) -> None:
    transport.execute([["XADD", "a", "1-0", "f", "a1"], ["XADD", "b", "1-0", "f", "b1"],
                       ["XADD", "b", "2-0", "f", "b2"]], timeout=5)
    read = transport.execute([["XREAD", "COUNT", 10, "STREAMS", "a", "b", "c", "0-0", "0-0", "0-0"]], timeout=5)
    assert read == [[["a", [["1-0", ["f", "a1"]]]], ["b", [["1-0", ["f", "b1"]], ["2-0", ["f", "b2"]]]]]]
    assert transport.execute([["XREAD", "COUNT", 1, "STREAMS", "b", "1-0"]], timeout=5) == [
        [["b", [["2-0", ["f", "b2"]]]]]]
    assert transport.execute([["XREAD", "STREAMS", "a", "b", "1-0", "2-0"]], timeout=5) == [None]


def test_a_script_runs_by_sha_and_falls_back_to_eval_after_script_flush(transport: Transport) -> None:
    script = Script("return redis.call('XADD', KEYS[1], ARGV[1], 'f', ARGV[2])")
    transport.execute([["SCRIPT", "FLUSH"]], timeout=5)
    raw = transport.execute([script.evalsha(["s"], ["1-0", "x"])], timeout=5)
    assert isinstance(raw[0], ReplyError) and raw[0].code == "NOSCRIPT"
    sent = transport.commands_sent
    assert script.run(transport, ["s"], ["1-0", "one"], timeout=5) == "1-0"
    assert transport.commands_sent == sent + 2  # EVALSHA answered NOSCRIPT, then EVAL
    assert script.run(transport, ["s"], ["2-0", "two"], timeout=5) == "2-0"
    assert transport.commands_sent == sent + 3  # cached now: the EVALSHA alone
    replies = script.run_many(transport, [(["s"], ["3-0", "3"]), (["s"], ["3-0", "dup"]), (["s"], ["4-0", "4"])],
                              timeout=5)
    assert replies[0] == "3-0" and replies[2] == "4-0"
    assert isinstance(replies[1], ReplyError) and "equal or smaller" in replies[1].message
    transport.execute([["SCRIPT", "FLUSH"]], timeout=5)
    assert script.run_many(transport, [(["s"], ["5-0", "5"]), (["s"], ["6-0", "6"])], timeout=5) == ["5-0", "6-0"]
    assert transport.execute([["XLEN", "s"]], timeout=5) == [6]


def test_blocking_reads_block_or_are_refused_before_anything_is_sent(transport: Transport) -> None:
    transport.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5)
    sent = transport.commands_sent
    if not transport.blocking_reads:
        with pytest.raises(ReplicationError, match="no blocking reads") as refused:
            transport.execute([["XREAD", "BLOCK", 100, "STREAMS", "s", "$"]], timeout=5)
        assert not isinstance(refused.value, TransportError) and transport.commands_sent == sent
        return
    # BLOCK 600 ms with a call timeout of 0.1 s: the wait is added to the timeout, so the reply (nil) comes
    assert transport.execute([["XREAD", "BLOCK", 600, "STREAMS", "s", "1-0"]], timeout=0.1) == [None]
    with pytest.raises(ReplicationError, match="BLOCK 0 would wait forever"):
        transport.execute([["XREAD", "BLOCK", 0, "STREAMS", "s", "$"]], timeout=1)


def test_meanwhile_runs_once_per_call_and_the_replies_are_the_same(transport: Transport) -> None:
    calls: list[int] = []
    replies = transport.execute([["XADD", "s", "1-0", "f", "v"], ["XADD", "s", "1-0", "f", "dup"], ["XLEN", "s"]],
                                timeout=5, meanwhile=lambda: calls.append(transport.commands_sent))
    assert replies[0] == "1-0" and replies[1] == ReplyError(DUPLICATE) and replies[2] == 1
    assert calls == [3 + probes(transport)], "once, after the three commands were counted as sent"


def test_on_redis_meanwhile_runs_after_sending_and_before_the_reply_is_read(redis_url: str) -> None:
    """The XREAD blocks on the server for up to 5 s; what `meanwhile` appends from another connection wakes it, so
    the reply holds that entry: `meanwhile` ran while the server held the call, not after its reply."""
    transport, other = RedisStreams(redis_url), RedisStreams(redis_url)
    [read] = transport.execute([["XREAD", "BLOCK", 5000, "STREAMS", "s", "$"]], timeout=5,
                               meanwhile=lambda: other.execute([["XADD", "s", "7-0", "f", "woke"]], timeout=5))
    assert read == [["s", [["7-0", ["f", "woke"]]]]], "after the reply, the read would have found nothing (nil)"
    transport.close()
    other.close()


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_a_blocked_xread_returns_once_another_thread_appends(kind: str, redis_url: str) -> None:
    transport = make_transport(kind, redis_url, None)
    other = transport.sibling() if isinstance(transport, MemoryTransport) else make_transport(kind, redis_url, None)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(
        transport.execute([["XREAD", "BLOCK", 30_000, "STREAMS", "s", "0-0"]], timeout=2)))
    reader.start()
    if kind == "redis":  # the read is really blocked in the server before the append
        with redis.Redis.from_url(redis_url) as probe:
            until(lambda: probe.info("clients")["blocked_clients"] == 1, 10, "the XREAD blocks")
    other.execute([["XADD", "s", "7-0", "f", "v"]], timeout=5)
    reader.join(30)
    assert got == [[[["s", [["7-0", ["f", "v"]]]]]]]
    other.close()
    transport.close()


# -- faults -----------------------------------------------------------------------------------------------------------

def plan_fault(transport: Transport, fault: str, bridge: Any) -> Transport:
    """The transport whose next call meets `fault`: the bridge's own for Upstash, FaultyTransport otherwise."""
    if transport.kind == "upstash":
        {"timeout_after_applying": lambda: bridge.delay_after_applying(5),
         "server_error": lambda: bridge.fail_before_applying(500),
         "connection_reset": lambda: bridge.reset(applied=False),
         "auth_refused": bridge.unauthorized, "daily_limit": bridge.daily_limit}[fault]()
        return transport
    faulty = FaultyTransport(transport)
    getattr(faulty, fault)()
    return faulty


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "error", "retryable", "applied"), [
    ("timeout_after_applying", TransportTimeoutError, True, True),
    ("server_error", TransportServerError, True, False),
    ("connection_reset", TransportUnreachableError, True, False),
    ("auth_refused", TransportAuthError, False, False),
    ("daily_limit", TransportLimitError, False, False),
])
def test_every_fault_is_its_own_error_and_says_whether_to_retry(
        transport: Transport, request: pytest.FixtureRequest, fault: str, error: type[TransportError],
        retryable: bool, applied: bool) -> None:
    faulty = plan_fault(transport, fault, bridge_for(request.node.callspec.params["transport"], request))
    with pytest.raises(error) as raised:
        faulty.execute([["XADD", "s", "1-0", "f", "v"], ["XADD", "s", "2-0", "f", "v"]], timeout=0.5)
    assert raised.value.retryable is retryable
    assert raised.value.outcome_unknown is (error in (TransportTimeoutError, TransportServerError,
                                                      TransportUnreachableError))
    assert "XADD" in str(raised.value) and transport.kind in str(raised.value)
    assert_secret_free(raised.value, TOKEN)
    # whether the commands took effect is what the fault says, and the next call works
    assert faulty.execute([["XLEN", "s"]], timeout=5) == [2 if applied else 0]


def test_a_slow_redis_command_times_out_after_the_commands_before_it_applied(redis_url: str) -> None:
    with closing(RedisStreams(redis_url)) as transport:
        with pytest.raises(TransportTimeoutError, match="may have been applied") as raised:
            transport.execute([["XADD", "s", "1-0", "f", "v"], ["DEBUG", "SLEEP", "0.5"]], timeout=0.1)
        assert raised.value.outcome_unknown and raised.value.retryable
        assert transport.execute([["XLEN", "s"]], timeout=5) == [1]


def test_upstash_odd_answers_from_the_bridge(bridge: Any) -> None:
    with closing(UpstashRest(bridge.url, TOKEN)) as transport:
        bridge.fail_before_applying(502, b"<html><body>Bad Gateway " + TOKEN.encode() + b"</body></html>",
                                    "text/html")
        with pytest.raises(TransportServerError, match="HTTP 502") as raised:
            transport.execute([["PING"]], timeout=5)
        assert "<html>" not in str(raised.value)
        assert_secret_free(raised.value, TOKEN)
        bridge.fail_before_applying(200, b"not json", "text/plain")
        with pytest.raises(MalformedReplyError, match="not JSON"):
            transport.execute([["PING"]], timeout=5)
        bridge.fail_before_applying(200, b'[{"result":"UE9ORw=="}]')  # one result for two commands
        with pytest.raises(MalformedReplyError, match="1 results where the pipeline needs 2"):
            transport.execute([["PING"], ["PING"]], timeout=5)
        assert transport.execute([["PING"]], timeout=5) == ["PONG"]


def test_a_wrong_upstash_token_is_refused(bridge: Any) -> None:
    wrong = "wrong-token-abcdefghijklmnop"
    with closing(UpstashRest(bridge.url, wrong)) as transport, \
            pytest.raises(TransportAuthError, match=r"token refused .*HTTP 401") as raised:
        transport.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5)
    assert not raised.value.retryable and not raised.value.outcome_unknown
    assert_secret_free(raised.value, wrong, TOKEN)
    assert "****mnop" in str(raised.value)


# -- a real server dying, and no retries ------------------------------------------------------------------------------

def test_redis_killed_and_started_again_mid_use(own_redis: Any) -> None:
    with closing(RedisStreams(own_redis.url)) as transport:
        assert transport.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5) == ["1-0"]
        own_redis.kill()
        with pytest.raises(TransportUnreachableError) as raised:
            transport.execute([["XADD", "s", "2-0", "f", "v"]], timeout=5)
        assert raised.value.retryable
        with pytest.raises(TransportUnreachableError, match="cannot connect") as refused:
            transport.execute([["XADD", "s", "2-0", "f", "v"]], timeout=5)
        assert not refused.value.outcome_unknown  # nothing listens: surely not applied
        sent = transport.commands_sent
        own_redis.start()  # the same port, empty (no persistence)
        assert transport.execute([["XADD", "s", "2-0", "f", "v"], ["XLEN", "s"]], timeout=5) == ["2-0", 1]
        assert transport.commands_sent == sent + 2


def test_redis_killed_under_a_blocked_read(own_redis: Any) -> None:
    with closing(RedisStreams(own_redis.url)) as transport:
        failed: list[BaseException] = []

        def read() -> None:
            try:
                transport.execute([["XREAD", "BLOCK", 30_000, "STREAMS", "s", "$"]], timeout=2)
            except BaseException as error:
                failed.append(error)

        reader = threading.Thread(target=read)
        reader.start()
        with redis.Redis.from_url(own_redis.url) as probe:
            until(lambda: probe.info("clients")["blocked_clients"] == 1, 10, "the XREAD blocks")
        own_redis.kill()
        reader.join(30)
        assert len(failed) == 1 and isinstance(failed[0], TransportUnreachableError), failed
        assert failed[0].outcome_unknown and "connection lost mid-call" in str(failed[0])
        own_redis.start()
        assert transport.execute([["PING"]], timeout=5) == ["PONG"]


def test_upstash_over_a_redis_that_died_is_a_server_error_and_recovers(own_redis: Any) -> None:
    with Bridge(own_redis.url, TOKEN) as bridge, closing(UpstashRest(bridge.url, TOKEN)) as transport:
        assert transport.execute([["PING"]], timeout=5) == ["PONG"]
        own_redis.kill()
        with pytest.raises(TransportServerError, match="HTTP 502") as raised:
            transport.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5)
        assert raised.value.retryable and raised.value.outcome_unknown
        own_redis.start()
        assert transport.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5) == ["1-0"]


class CountingServer:
    """A TCP server that speaks just enough RESP for redis-py's handshake (+OK to anything but XADD) and closes the
    connection on every XADD without answering: it counts how often an XADD arrives."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.xadds = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as stream:
                while True:
                    header = stream.readline()
                    if not header.startswith(b"*"):
                        break
                    args = []
                    for _ in range(int(header[1:])):
                        size = int(stream.readline()[1:])
                        args.append(stream.read(size + 2)[:-2])
                    if args[0].upper() == b"XADD":
                        self.xadds += 1
                        break
                    conn.sendall(b"+OK\r\n")

    def close(self) -> None:
        self.listener.close()


@pytest.mark.slow
def test_redis_calls_are_never_retried() -> None:
    server = CountingServer()
    try:
        with closing(RedisStreams(f"redis://127.0.0.1:{server.port}/0")) as transport, \
                pytest.raises(TransportUnreachableError, match="may have been applied"):
            transport.execute([["XADD", "s", "*", "f", "v"]], timeout=5)
        assert server.xadds == 1
        # the test can fail: redis-py's default retry sends the same XADD again after the connection drops
        with redis.Redis(port=server.port, protocol=2) as default, pytest.raises(redis.ConnectionError):
            default.execute_command("XADD", "s", "*", "f", "v")
        assert server.xadds > 2
    finally:
        server.close()


def test_upstash_calls_are_never_retried(bridge: Any) -> None:
    with closing(UpstashRest(bridge.url, TOKEN)) as transport:
        bridge.reset(applied=True)
        with pytest.raises(TransportUnreachableError, match="may have been applied"):
            transport.execute([["XADD", "s", "*", "f", "v"]], timeout=5)
        assert bridge.requests == 1 and bridge.applied == 1 + probes(transport)
        assert transport.execute([["XLEN", "s"]], timeout=5) == [1]


def test_redis_refuses_wrong_credentials_and_commands_without_them(own_redis: Any) -> None:
    password = "redis-password-0123456789"
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.execute_command("ACL", "SETUSER", "replica", "on", f">{password}", "~*", "+@all")
    wrong = own_redis.url.replace("redis://", "redis://replica:not-the-password-xyz@")
    with closing(RedisStreams(wrong)) as transport, pytest.raises(TransportAuthError) as refused:
        transport.execute([["PING"]], timeout=5)
    assert not refused.value.retryable and not refused.value.outcome_unknown
    assert_secret_free(refused.value, "not-the-password-xyz")
    right = own_redis.url.replace("redis://", f"redis://replica:{password}@")
    with closing(RedisStreams(right)) as transport:
        assert transport.execute([["PING"]], timeout=5) == ["PONG"]
        assert password not in transport.describe() and "****6789" in transport.describe()
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.config_set("requirepass", password)  # from now on, a client without a password gets NOAUTH
    with closing(RedisStreams(own_redis.url)) as transport, pytest.raises(TransportAuthError, match="NOAUTH"):
        transport.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5)


def test_redis_over_a_unix_socket(redis_server: Any, redis_url: str) -> None:
    with closing(RedisStreams(redis_server.unix_url)) as transport:
        assert transport.execute([["XADD", "s", "1-0", "f", "v"], ["PING"]], timeout=5) == ["1-0", "PONG"]
        assert transport.describe() == f"redis unix://{redis_server.socket_path}"


def test_faulty_transport_wraps_a_real_redis(redis_url: str) -> None:
    faulty = FaultyTransport(RedisStreams(redis_url))
    faulty.timeout_after_applying().unreachable()
    with pytest.raises(TransportTimeoutError):
        faulty.execute([["XADD", "s", "1-0", "f", "v"]], timeout=5)
    with pytest.raises(TransportUnreachableError) as refused:
        faulty.execute([["XADD", "s", "2-0", "f", "v"]], timeout=5)
    assert not refused.value.outcome_unknown
    assert faulty.execute([["XRANGE", "s", "-", "+"]], timeout=5) == [[["1-0", ["f", "v"]]]]
    assert faulty.commands_sent == 2 and len(faulty.calls) == 3 and len(faulty.raised) == 2
    faulty.close()
