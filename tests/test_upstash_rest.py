"""The Upstash transport against HTTP answers a real server rarely gives (respx in place of the network): what
each odd answer becomes, what is sent, and that the token never shows. The real round trips are in
tests/integration/test_transport_contract.py (through the bridge)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import orjson
import pytest
import respx

from popkit_power.errors import ConfigError
from popkit_power.replication.errors import (
    MalformedReplyError,
    ReplicationError,
    TransportAuthError,
    TransportError,
    TransportLimitError,
    TransportRejectedError,
    TransportServerError,
    TransportTimeoutError,
    TransportUnreachableError,
)
from popkit_power.replication.transport import ReplyError
from popkit_power.replication.upstash_rest import UpstashRest

URL = "https://eu1-sure-cat-31337.upstash.io"
TOKEN = "AYNgASQgSecretToken0123456789abcdefWXYZ"
PIPELINE = f"{URL}/pipeline"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def upstash() -> Iterator[UpstashRest]:
    transport = UpstashRest(URL, TOKEN, base64=True)
    yield transport
    transport.close()


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def fails(upstash: UpstashRest, kind: type[TransportError], *commands: list[str]) -> TransportError:
    with pytest.raises(kind) as raised:
        upstash.execute(list(commands) or [["PING"]], timeout=1)
    message = str(raised.value)
    assert TOKEN not in message and TOKEN not in repr(raised.value), message
    assert "\n" not in message and upstash.describe() in message
    return raised.value


def test_what_is_sent_and_how_replies_are_decoded(upstash: UpstashRest, mock: respx.MockRouter) -> None:
    route = mock.post(PIPELINE).respond(200, json=[
        {"result": "OK"}, {"result": b64("v\u00e9")}, {"result": None}, {"result": 3},
        {"result": [b64("s"), [[b64("1-0"), [b64("f"), b64("v")]]]]},
        {"error": "ERR The ID specified in XADD is equal or smaller than the target stream top item"}],
        headers={"upstash-sync-token": "sync-1"})
    replies = upstash.execute([["SET", "k", "v\u00e9"], ["GET", "k"], ["GET", "none"], ["XLEN", "s"],
                               ["XREAD", "STREAMS", "s", 0], ["XADD", "s", "1-0", "f", b"v"]], timeout=2)
    assert replies == ["OK", "v\u00e9", None, 3, ["s", [["1-0", ["f", "v"]]]],
                       ReplyError("ERR The ID specified in XADD is equal or smaller than the target stream top item")]
    request = route.calls.last.request
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["upstash-encoding"] == "base64" and "upstash-sync-token" not in request.headers
    assert orjson.loads(request.content) == [["SET", "k", "v\u00e9"], ["GET", "k"], ["GET", "none"], ["XLEN", "s"],
                                             ["XREAD", "STREAMS", "s", 0], ["XADD", "s", "1-0", "f", "v"]]
    assert upstash.commands_sent == 6
    # read-your-writes: the sync token of the last answer goes with the next request
    mock.post(PIPELINE).respond(200, json=[{"result": b64("PONG")}])
    assert upstash.execute([["PING"]], timeout=2) == ["PONG"]
    assert route.calls.last.request.headers["upstash-sync-token"] == "sync-1"


def test_bytes_that_are_not_utf8_come_back_whole(upstash: UpstashRest, mock: respx.MockRouter) -> None:
    mock.post(PIPELINE).respond(200, json=[{"result": base64.b64encode(b"\xff\xfe").decode()}])
    [reply] = upstash.execute([["GET", "k"]], timeout=2)
    assert reply.encode("utf-8", "surrogateescape") == b"\xff\xfe"


@pytest.mark.parametrize(("status", "body", "content_type", "kind", "words"), [
    (200, b"<html>hello</html>", "text/html", MalformedReplyError, "not JSON (text/html, 18 bytes)"),
    (200, b"", "application/json", MalformedReplyError, "an empty body"),
    (502, b"<html><h1>502 Bad Gateway</h1></html>", "text/html", TransportServerError, "server error HTTP 502"),
    (500, b'{"error":"ERR internal"}', "application/json", TransportServerError, "HTTP 500: ERR internal"),
    (200, b'[{"result":"UE9ORw=="}]', "application/json", MalformedReplyError, "1 results where the pipeline needs 2"),
    (200, b'{"result":"UE9ORw=="}', "application/json", MalformedReplyError, "a JSON dict where the pipeline"),
    (200, b'[{"result":"UE9ORw=="}, {"what": 1}]', "application/json", MalformedReplyError, "result 2 is neither"),
    (200, b'[{"result":"UE9ORw=="}, {"result": "not base64!"}]', "application/json", MalformedReplyError,
     "result 2 is not valid base64"),
    (401, b'{"error":"Unauthorized"}', "application/json", TransportAuthError, "token refused (HTTP 401: Unauthor"),
    (401, b"", "text/plain", TransportAuthError, "check UPSTASH_REDIS_REST_TOKEN"),
    (400, b'{"error":"WRONGPASS invalid password"}', "application/json", TransportAuthError, "WRONGPASS"),
    (400, b'{"error":"ERR max daily request limit exceeded"}', "application/json", TransportLimitError, "daily"),
    (400, b'{"error":"ERR max requests limit exceeded"}', "application/json", TransportLimitError, "requests limit"),
    (400, b'{"error":"ERR max request size exceeded"}', "application/json", TransportLimitError, "size exceeded"),
    (413, b"too big", "text/plain", TransportLimitError, "too large (HTTP 413)"),
    (400, b'{"error":"ERR syntax error"}', "application/json", TransportRejectedError, "refused (HTTP 400: ERR syn"),
    (405, b"", "text/plain", TransportRejectedError, "HTTP 405"),
    (301, b"", "text/plain", TransportRejectedError, "HTTP 301"),
])
def test_each_odd_answer_is_its_own_error(upstash: UpstashRest, mock: respx.MockRouter, status: int, body: bytes,
                                         content_type: str, kind: type[TransportError], words: str) -> None:
    mock.post(PIPELINE).respond(status, content=body, headers={"content-type": content_type})
    error = fails(upstash, kind, ["PING"], ["PING"])
    assert words in str(error)
    assert "<html>" not in str(error)
    assert error.outcome_unknown is (kind in (MalformedReplyError, TransportServerError))
    assert error.retryable is (kind in (MalformedReplyError, TransportServerError))
    assert upstash.commands_sent == 2  # sent, whatever came back


def test_a_server_that_echoes_the_token_does_not_get_it_printed(upstash: UpstashRest, mock: respx.MockRouter) -> None:
    mock.post(PIPELINE).respond(400, json={"error": f"ERR bad token {TOKEN} given"})
    error = fails(upstash, TransportRejectedError)
    assert "****WXYZ" in str(error)


@pytest.mark.parametrize(("raised", "kind", "unknown", "counted"), [
    (httpx.ConnectError("[Errno 111] Connection refused"), TransportUnreachableError, False, 0),
    (httpx.ConnectTimeout("timed out"), TransportUnreachableError, False, 0),
    (httpx.ReadTimeout("timed out"), TransportTimeoutError, True, 1),
    (httpx.WriteTimeout("timed out"), TransportTimeoutError, True, 1),
    (httpx.ReadError("[Errno 104] Connection reset by peer"), TransportUnreachableError, True, 1),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."), TransportUnreachableError,
     True, 1),
])
def test_network_failures(upstash: UpstashRest, mock: respx.MockRouter, raised: Exception,
                          kind: type[TransportError], unknown: bool, counted: int) -> None:
    route = mock.post(PIPELINE).mock(side_effect=raised)
    error = fails(upstash, kind)
    assert error.outcome_unknown is unknown and error.retryable
    assert ("may have been applied" in str(error)) is unknown
    assert route.call_count == 1  # never retried
    assert upstash.commands_sent == counted


def test_refused_before_sending(upstash: UpstashRest, mock: respx.MockRouter) -> None:
    route = mock.post(PIPELINE).respond(200, json=[{"result": "OK"}])
    for commands, words in [
        ([["XREAD", "BLOCK", 1000, "STREAMS", "s", "$"]], "no blocking reads"),
        ([["xread", "block", "5", "STREAMS", "s", "$"]], "no blocking reads"),
        ([["SET", "k", b"\xff"]], "not UTF-8"),
        ([["SET", "k", 1.5]], "arguments are str, int or bytes"),
        ([["SET", "k", True]], "arguments are str, int or bytes"),
        ([["SET", "k", None]], "arguments are str, int or bytes"),
        ([], "non-empty list of commands"),
        ([[]], "command 1 must be a non-empty list"),
        (["PING"], "command 1 must be a non-empty list"),
        ([[b"PING"]], "must start with its name as text"),
    ]:
        with pytest.raises(ReplicationError, match=words) as refused:
            upstash.execute(commands, timeout=1)  # type: ignore[arg-type]
        assert not isinstance(refused.value, TransportError)
    assert route.call_count == 0 and upstash.commands_sent == 0


@pytest.mark.parametrize(("url", "token", "words"), [
    ("eu1-sure-cat.upstash.io", TOKEN, "must be an https:// URL"),
    ("ftp://eu1-sure-cat.upstash.io", TOKEN, "must be an https:// URL"),
    ("https://", TOKEN, "must be an https:// URL"),
    (URL, "", "UPSTASH_REDIS_REST_TOKEN is empty"),
    (URL, TOKEN + "\n", "line breaks"),
    (URL, "two words", "spaces"),
])
def test_bad_credentials_are_named_without_printing_the_token(url: str, token: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as refused:
        UpstashRest(url, token)
    assert not token.strip() or token.strip() not in str(refused.value)


def test_describe_masks_the_token_and_drops_what_may_hold_it() -> None:
    transport = UpstashRest(f"https://user:pw@eu1-sure-cat.upstash.io:8443/?_token={TOKEN}", TOKEN)
    assert transport.describe() == "upstash https://eu1-sure-cat.upstash.io:8443 (token ****WXYZ)"
    assert TOKEN not in repr(transport)
    short = UpstashRest(URL, "abc123")
    assert short.describe().endswith("(token ****)")
    transport.close()
    short.close()


def test_without_base64_replies_are_taken_as_they_come(mock: respx.MockRouter) -> None:
    route = mock.post(PIPELINE).respond(200, json=[{"result": "PONG"}])
    transport = UpstashRest(URL, TOKEN, base64=False)
    assert transport.execute([["PING"]], timeout=1) == ["PONG"]
    assert "upstash-encoding" not in route.calls.last.request.headers
    transport.close()


def test_the_encoding_is_learned_from_the_first_ping_and_an_error_teaches_nothing(mock: respx.MockRouter) -> None:
    """The first call carries a PING (added in front when it has none); an error in its place teaches nothing and
    the next call asks again; "PONG" (not "UE9ORw==") means plain JSON, and the header is no longer sent."""
    transport = UpstashRest(URL, TOKEN)
    route = mock.post(PIPELINE).respond(200, json=[{"error": "ERR busy"}, {"result": b64("v")}])
    assert transport.execute([["GET", "k"]], timeout=1) == ["v"]  # read as base64, the encoding asked for
    assert orjson.loads(route.calls.last.request.content) == [["PING"], ["GET", "k"]]
    assert transport.base64 is None and transport.probes_sent == 1 and transport.commands_sent == 2
    mock.post(PIPELINE).respond(200, json=[{"result": "PONG"}, {"result": "v"}, {"result": "OK"}])
    assert transport.execute([["GET", "k"], ["SET", "k", "w"]], timeout=1) == ["v", "OK"]
    assert route.calls.last.request.headers["upstash-encoding"] == "base64"
    assert transport.base64 is False and transport.probes_sent == 2 and "plain JSON" in transport.describe()
    mock.post(PIPELINE).respond(200, json=[{"result": "UE9ORw=="}])
    assert transport.execute([["GET", "k"]], timeout=1) == ["UE9ORw=="]
    assert orjson.loads(route.calls.last.request.content) == [["GET", "k"]]
    assert "upstash-encoding" not in route.calls.last.request.headers and transport.probes_sent == 2
    transport.close()
