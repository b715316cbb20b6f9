"""The Upstash bridge (tools/upstash_bridge.py) speaks Upstash's REST API as documented: the endpoints, the auth,
the base64 encoding and the error shapes, checked with plain HTTP requests."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post(bridge: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{bridge.url}{path}", json=body, headers=AUTH if headers is None else headers, timeout=5)


def test_one_command_at_the_root(bridge: Any) -> None:
    assert post(bridge, "/", ["SET", "k", "v", "EX", 100]).json() == {"result": "OK"}
    assert post(bridge, "/", ["GET", "k"]).json() == {"result": "v"}
    wrong = post(bridge, "/", ["INCR", "k"])
    assert wrong.status_code == 400 and wrong.json() == {"error": "ERR value is not an integer or out of range"}


def test_a_pipeline_is_not_atomic_and_answers_each_command(bridge: Any) -> None:
    answer = post(bridge, "/pipeline", [["XADD", "s", "1-0", "f", "v"], ["XADD", "s", "1-0", "f", "v"],
                                        ["XLEN", "s"], ["GET", "nothing"]])
    assert answer.status_code == 200
    assert answer.json() == [{"result": "1-0"},
                             {"error": "ERR The ID specified in XADD is equal or smaller than the target stream "
                                       "top item"},
                             {"result": 1}, {"result": None}]


def test_multi_exec_runs_in_a_transaction_or_is_discarded_whole(bridge: Any) -> None:
    answer = post(bridge, "/multi-exec", [["SET", "a", "1"], ["INCR", "a"], ["LPUSH", "a", "x"]])
    assert answer.json()[:2] == [{"result": "OK"}, {"result": 2}] and "WRONGTYPE" in answer.json()[2]["error"]
    discarded = post(bridge, "/multi-exec", [["SET", "b", "1"], ["NOSUCHCOMMAND"]])
    assert discarded.status_code == 400 and "unknown command" in discarded.json()["error"]
    assert post(bridge, "/", ["EXISTS", "b"]).json() == {"result": 0}


def test_base64_encodes_every_string_but_ok(bridge: Any) -> None:
    headers = {**AUTH, "Upstash-Encoding": "base64"}
    assert post(bridge, "/pipeline", [["SET", "k", "v\u00e9"], ["GET", "k"], ["PING"]], headers).json() == [
        {"result": "OK"}, {"result": base64.b64encode("v\u00e9".encode()).decode()},
        {"result": base64.b64encode(b"PONG").decode()}]


def test_auth_by_header_or_query_and_401_otherwise(bridge: Any) -> None:
    assert post(bridge, f"/?_token={TOKEN}", ["PING"], headers={}).json() == {"result": "PONG"}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        refused = post(bridge, "/", ["PING"], headers)
        assert refused.status_code == 401 and refused.json() == {"error": "Unauthorized"}
    assert bridge.applied == 1


def test_what_rest_cannot_do_is_refused(bridge: Any) -> None:
    answer = post(bridge, "/pipeline", [["XREAD", "BLOCK", 100, "STREAMS", "s", "$"], ["SUBSCRIBE", "c"], ["PING"]])
    assert [list(item) for item in answer.json()] == [["error"], ["error"], ["result"]]
    bad = httpx.post(f"{bridge.url}/pipeline", content=b"[[", headers=AUTH, timeout=5)
    assert bad.status_code == 400 and "failed to parse" in bad.json()["error"]
    assert post(bridge, "/pipeline", [["SET", "k", True]]).status_code == 400
    assert httpx.get(f"{bridge.url}/get/k", headers=AUTH, timeout=5).status_code == 405
    assert post(bridge, "/nowhere", ["PING"]).status_code == 404


def test_a_hostile_content_length_is_refused(bridge: Any) -> None:
    import socket

    host, port = bridge.url.removeprefix("http://").split(":")
    for length in (b"-5", b"lots", b"99999999999"):
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(b"POST /pipeline HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                         b"\r\nContent-Length: " + length + b"\r\n\r\n")
            answer = conn.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 400 ") and (b"Content-Length" in answer or b"size" in answer), answer
    assert post(bridge, "/", ["PING"]).json() == {"result": "PONG"}
