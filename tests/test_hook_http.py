"""Hooks over HTTP (`hook_transport: "http"`): the coordinator's server answers with the hook's own handlers, so the
records, the replies and the delivery promise are the command hook's; only the project's secret gets in; the
caller's process is found from its socket; news waits while nothing answers."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hook_http_support import posting, raw_request, serving, trusting, turn_on_http
from test_hook import CLAUDE, OTHER, call, context, payload, tool

from popkit_power.home import safe_name
from popkit_power.hook.agent_state import AgentState
from popkit_power.hook_server.peer import CallEnviron, peer_pid
from popkit_power.hook_transport import SECRET_HEADER, certificate_paths
from popkit_power.session import Session, start_session


def records(session: Session) -> list[dict[str, Any]]:
    """The session's records as the agents made them: without what differs between two sessions or two runs."""
    kept = []
    for event in session.journal.reader():
        data = {key: value for key, value in event["data"].items() if key not in ("pid", "pid_start", "ms")}
        kept.append({"type": event["type"], "from": event.get("from"), "to": event.get("to"), "data": data})
    return kept


def script(session: Session, call_: Any) -> list[str | None]:
    """One agent's life with news from others, through `call_` (the command hook, or HTTP): the replies."""
    replies = [call(session.power_dir, payload("SessionStart", source="startup"))]  # a command hook either way
    replies.append(call_(tool("Edit", tool_input={"file_path": "/repo/a.py", "old_string": "a", "new_string": "b"},
                              tool_use_id="u1")))
    session.publish("message.broadcast", {"text": "use pytest -x"}, sender="human")
    session.publish("message.direct", {"text": "take the lexer"}, sender=f"{OTHER}:main", to=f"{CLAUDE}:main")
    replies.append(call_(tool(tool_use_id="u2")))
    replies.append(call_(tool(tool_use_id="u3")))
    replies.append(call_(payload("SubagentStart", agent_id="a1b2c3", agent_type="Explore")))
    replies.append(call_(tool("Grep", agent_id="a1b2c3", agent_type="Explore", tool_use_id="u4")))
    replies.append(call_(payload("SubagentStop", agent_id="a1b2c3", agent_type="Explore",
                                 last_assistant_message="The parser has 3 entry points.")))
    session.publish("approval.requested", {"request": "r1", "question": "Drop table?"}, sender=f"{CLAUDE}:main")
    session.publish("approval.granted", {"request": "r1", "note": "after backup"}, sender="human")
    replies.append(call_(payload("PostToolUseFailure", tool_name="Bash", tool_input={"command": "false"},
                                 error="exit 1", tool_use_id="u5")))
    replies.append(call_(payload("Stop", stop_hook_active=False)))
    replies.append(call_(payload("SessionEnd", reason="other")))
    return replies


def test_over_http_the_records_and_replies_are_the_command_hooks(session: Session, tmp_path: Path) -> None:
    """The same life, once through the command hook and once over HTTP, in two sessions: the same records in the
    same order and the same replies, word for word."""
    by_command = script(session, lambda data: call(session.power_dir, data))
    other_home = str(tmp_path / "power-http")
    turn_on_http(other_home)
    over_http = start_session(other_home, "Ship the parser", sender="human")
    with serving(other_home) as served:
        by_http = script(over_http, served.call)
    assert [reply and reply.replace(over_http.id, session.id) for reply in by_http] == by_command
    assert any(reply and "use pytest -x" in reply for reply in by_http), "the news went out at all"
    assert records(over_http)[1:] == records(session)[1:]  # [0]: session.opened, whose path differs


def test_the_callers_process_is_found_from_its_socket(session: Session) -> None:
    """An HTTP request carries no CLAUDE_PID: the agent's process is the one holding the connection's other end."""
    turn_on_http(session.power_dir)
    with serving(session.power_dir) as served:
        body = orjson.dumps(tool(tool_use_id="p1"))
        program = ("import http.client, sys, os, ssl\n"
                   f"t = ssl.create_default_context(cafile={certificate_paths(session.power_dir)[0]!r})\n"
                   f"c = http.client.HTTPSConnection('127.0.0.1', {served.port}, context=t)\n"
                   f"c.request('POST', '/popkit-power/hook', body=sys.stdin.buffer.read(), "
                   f"headers={{'{SECRET_HEADER}': '{served.secret}'}})\n"
                   "print(os.getpid(), c.getresponse().status)\n")
        done = subprocess.run([sys.executable, "-c", program], input=body, capture_output=True, check=True)
    pid, status = done.stdout.split()
    assert status == b"204"
    joined = [event for event in session.journal.reader() if event["type"] == "agent.joined"]
    assert [event["data"]["pid"] for event in joined] == [int(pid)]
    assert joined[0]["data"]["pid"] != os.getpid()


def test_the_pid_is_looked_up_only_when_a_handler_reads_it() -> None:
    looked: list[int] = []

    def lookup() -> int | None:
        looked.append(1)
        return 77

    environ = CallEnviron({"POPKIT_HOOK_VIA": "http"}, lookup)
    assert environ.get("POPKIT_HOOK_VIA") == "http" and environ.get("CLAUDE_PLUGIN_ROOT") is None and not looked
    assert environ.get("CLAUDE_PID", "") == "77" and environ.get("CLAUDE_PID") == "77"
    assert looked == [1]
    assert peer_pid(1, 2, proc="/nonexistent") is None


@pytest.mark.parametrize("change, status, said", [
    ({"secret": ""}, 403, b"X-Popkit-Hook-Secret"),
    ({"secret": "0" * 64}, 403, b"X-Popkit-Hook-Secret"),
    ({"host": "evil.example:PORT"}, 403, b"Host"),
    ({"host": "127.0.0.1:1"}, 403, b"Host"),
    ({"path": "/popkit-power/hook/../x"}, 404, b"not found"),
    ({"method": "PUT"}, 405, b"POST only"),
    ({"extra": "Content-Length: 99999999\r\n"}, 403, b""),  # two lengths: the server itself refuses
])
def test_a_request_without_the_projects_secret_or_from_elsewhere_is_refused_and_logged(
        session: Session, change: dict[str, str], status: int, said: bytes, caplog: pytest.LogCaptureFixture) -> None:
    turn_on_http(session.power_dir)
    before = len(list(session.journal.reader()))
    with serving(session.power_dir) as served, caplog.at_level(logging.WARNING):
        fields = {"secret": served.secret, **change}
        if "host" in fields:
            fields["host"] = fields["host"].replace("PORT", str(served.port))
        answer = raw_request(session.power_dir, served.port, posting(served.port, body=orjson.dumps(tool()), **fields))
        head = answer.split(b"\r\n", 1)[0]
        if "extra" in change:  # h11 refuses a request with two lengths before the application sees it
            assert head.split()[1] in (b"400", b"413"), answer
        else:
            assert head.split()[1] == str(status).encode(), answer
            assert said in answer
            assert "hook request refused" in caplog.text
        assert served.call(tool(tool_use_id="after")) is None, "the server goes on"
    recorded = [event["type"] for event in list(session.journal.reader())[before:]]
    assert recorded == ["agent.joined", "agent.tool"], "only the call with the secret is recorded"


def test_a_body_over_the_hooks_limit_is_refused_by_its_length(session: Session) -> None:
    turn_on_http(session.power_dir)
    with serving(session.power_dir) as served:
        answer = raw_request(session.power_dir, served.port, posting(served.port, served.secret, b"{}").replace(
            b"Content-Length: 2", b"Content-Length: 16777217"))
    assert answer.startswith(b"HTTP/1.1 413")


def test_refusals_are_logged_at_most_twenty_a_minute(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    turn_on_http(session.power_dir)
    with serving(session.power_dir) as served, caplog.at_level(logging.WARNING), \
            httpx.Client(verify=trusting(session.power_dir)) as stranger:
        answers = [stranger.post(served.url, content=b"{}").status_code for _ in range(30)]
    assert answers == [403] * 30
    assert caplog.text.count("hook request refused") == 20


def test_a_reply_whose_caller_is_gone_leaves_its_news_for_the_next_call(session: Session) -> None:
    """Claude Code gave up on the call (its timeout) while the reply was being made: the reply cannot be written,
    so the agent's cursor stays before the news, and the next answered call carries it."""
    turn_on_http(session.power_dir)
    with serving(session.power_dir) as served:
        assert served.call(tool(tool_use_id="c1")) is None
        session.publish("message.broadcast", {"text": "the one that must not be lost"}, sender="human")
        state = AgentState(session.dir, f"{CLAUDE}:main")
        state.lock.acquire()  # the agent's lock held: the server's call waits for it
        try:
            with pytest.raises(httpx.ReadTimeout):
                served.post(tool(tool_use_id="c2"), timeout=0.5)  # and the caller gives up meanwhile
        finally:
            state.lock.release()
        replies = [served.call(tool(tool_use_id=f"c{number}")) for number in range(3, 6)]
    texts = [context(reply) for reply in replies if reply is not None]
    assert len(texts) == 1 and "the one that must not be lost" in texts[0]


def test_news_published_while_nothing_answers_comes_with_the_first_answered_call(session: Session) -> None:
    """The coordinator (and its server) down: Claude Code's calls fail (onFailure "continue") and record nothing,
    and the agent's news waits in the journal; the first call answered after it is back carries all of it, once."""
    port, secret = turn_on_http(session.power_dir)
    with serving(session.power_dir) as served:
        assert served.call(tool(tool_use_id="d1")) is None
    session.publish("message.broadcast", {"text": "sent while down"}, sender="human")
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"https://127.0.0.1:{port}/popkit-power/hook", content=orjson.dumps(tool(tool_use_id="d2")),
                   headers={SECRET_HEADER: secret}, verify=trusting(session.power_dir))
    session.publish("message.direct", {"text": "also while down"}, sender=f"{OTHER}:main", to=f"{CLAUDE}:main")
    with serving(session.power_dir) as served:
        first = context(served.call(tool(tool_use_id="d3")))
        assert served.call(tool(tool_use_id="d4")) is None
    assert "sent while down" in first and "also while down" in first


def test_sixteen_agents_calling_at_once_are_each_recorded_once(session: Session) -> None:
    turn_on_http(session.power_dir)
    agents = [f"{number:08d}-1111-2222-3333-444455556666" for number in range(16)]
    calls = 25
    failures: list[str] = []
    joined, published = threading.Barrier(len(agents) + 1), threading.Barrier(len(agents) + 1)
    with serving(session.power_dir) as served:

        def agent(claude: str) -> None:
            heard = 0
            with httpx.Client(headers={SECRET_HEADER: served.secret}, timeout=60,
                              verify=trusting(session.power_dir)) as client:
                for number in range(calls):
                    if number == 1:
                        joined.wait()
                        published.wait()
                    reply = client.post(served.url, content=orjson.dumps(tool(claude=claude,
                                                                              tool_use_id=f"{claude}-{number}")))
                    if reply.status_code == 200:
                        heard += reply.text.count("for all sixteen")
                    elif reply.status_code != 204:
                        failures.append(f"{claude}: {reply.status_code}")
            if heard != 1:
                failures.append(f"{claude} heard the broadcast {heard} times")

        threads = [threading.Thread(target=agent, args=(claude,)) for claude in agents]
        for thread in threads:
            thread.start()
        joined.wait()
        session.publish("message.broadcast", {"text": "for all sixteen"}, sender="human")
        published.wait()
        for thread in threads:
            thread.join()
    assert failures == []
    tools = [event["from"] for event in session.journal.reader() if event["type"] == "agent.tool"]
    assert sorted(tools) == sorted(f"{claude}:main" for claude in agents for _ in range(calls))
    assert not os.path.exists(os.path.join(session.power_dir, "hook.log"))


def test_a_call_sent_twice_through_both_transports_is_recorded_once_and_named(session: Session) -> None:
    """Both registered (a plugin's command hook and HTTP): the second of one call is ignored, and the log names
    both ways it came."""
    turn_on_http(session.power_dir)
    call(session.power_dir, tool(tool_use_id="twice"))
    with serving(session.power_dir) as served:
        assert served.call(tool(tool_use_id="twice")) is None
    assert [event["type"] for event in session.journal.reader()][-2:] == ["agent.joined", "agent.tool"]
    log = Path(session.power_dir, "hook.log").read_text()
    assert "through an HTTP hook (popkit-power install --transport http)" in log
    assert "through a settings file" in log


def test_a_broken_payload_over_http_is_logged_and_answered_with_nothing(session: Session) -> None:
    turn_on_http(session.power_dir)
    with serving(session.power_dir) as served:
        for body in (b"not json", b"[]", orjson.dumps({"hook_event_name": "Nope", "session_id": "x"}),
                     b"\xff\xfe"):
            reply = served.post(body)
            assert (reply.status_code, reply.text) == (204, "")
        assert served.call(tool(tool_use_id="fine")) is None
    log = Path(session.power_dir, "hook.log").read_text()
    assert log.count("(hook over HTTP)") == 4 and "payload is not JSON" in log


def test_with_power_mode_off_a_call_is_answered_with_nothing_and_records_nothing(power_dir: str) -> None:
    turn_on_http(power_dir)
    with serving(power_dir) as served:
        assert served.call(tool()) is None
    assert not os.path.exists(os.path.join(power_dir, "sessions"))


def test_the_agents_state_file_is_the_command_hooks(session: Session) -> None:
    """One state per agent whichever way its calls come: a call over HTTP after one by command goes on from its
    cursor (no news repeated, none skipped)."""
    turn_on_http(session.power_dir)
    call(session.power_dir, tool(tool_use_id="s0"))
    session.publish("message.broadcast", {"text": "first"}, sender="human")
    assert "first" in context(call(session.power_dir, tool(tool_use_id="s1")))
    session.publish("message.broadcast", {"text": "second"}, sender="human")
    with serving(session.power_dir) as served:
        text = context(served.call(tool(tool_use_id="s2")))
    assert "second" in text and "first" not in text
    path = Path(session.dir, "agents", safe_name(f"{CLAUDE}:main", "agent key") + ".json")
    assert json.loads(path.read_text())["cursor"], "the cursor moved on"


def test_the_coordinators_server_follows_config_json(session: Session, capsys: pytest.CaptureFixture[str]) -> None:
    """`install --transport` while the session runs: the server opens when config.json turns to http, moves when
    its port changes, and closes when it turns to command; a port it cannot take is said once and tried again."""
    from popkit_power.hook_server.server import FollowingConfig

    following = FollowingConfig(session.power_dir)
    following.look()
    assert following.server is None, "command hooks: nothing served"
    port, _secret = turn_on_http(session.power_dir)
    following.look()
    assert following.server is not None and following.server.url == f"https://127.0.0.1:{port}/popkit-power/hook"
    first = following.server
    following.look()
    assert following.server is first, "nothing changed: the same server"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        turn_on_http(session.power_dir, taken)
        following.look()
        following.look()
        assert following.server is None, "the old port is closed, the new one is taken"
    following.look()
    assert following.server is not None and following.server.url.endswith(f":{taken}/popkit-power/hook")
    config = json.loads(Path(session.power_dir, "config.json").read_text())
    Path(session.power_dir, "config.json").write_text(json.dumps({**config, "hook_transport": "command"}))
    following.look()
    assert following.server is None
    said = capsys.readouterr().err
    assert said.count("NOT answered over HTTP") == 1 and "no longer answered over HTTP" in said
    assert said.count("hooks: answered over HTTP at") == 2


def test_a_broken_config_json_keeps_the_hooks_answered(session: Session) -> None:
    """A config.json broken while the session runs falls back to its last valid version (config.py): the hooks go on
    being answered rather than going silent."""
    from popkit_power.hook_server.server import FollowingConfig

    turn_on_http(session.power_dir)
    following = FollowingConfig(session.power_dir)
    following.look()
    server = following.server
    assert server is not None
    Path(session.power_dir, "config.json").write_text("{not json")
    following.look()
    assert following.server is server
    following._close()


def test_a_call_that_cannot_have_its_agent_in_time_is_given_up_and_its_news_kept(session: Session) -> None:
    """The server's calls wait for their agent's lock at most as long as Claude Code waits for them: past that, the
    call is given up (no caller is left for it), logged as such, and the news it would have carried comes next."""
    from popkit_power.errors import HookCallAbandoned
    from popkit_power.hook import entry

    call(session.power_dir, tool(tool_use_id="g0"))
    session.publish("message.broadcast", {"text": "kept for later"}, sender="human")
    state = AgentState(session.dir, f"{CLAUDE}:main")
    with state.lock, pytest.raises(HookCallAbandoned, match=r"stayed locked for 0\.05 s"):
        entry.run(io.BytesIO(orjson.dumps(tool(tool_use_id="g1"))), session.power_dir, {"CLAUDE_PID": "4242"},
                  lock_seconds=0.05)
    assert "kept for later" in context(call(session.power_dir, tool(tool_use_id="g2")))


def test_the_server_keeps_no_file_open_per_call(session: Session) -> None:
    """One process answers call after call: each call's journal and locks are closed when it is done."""
    turn_on_http(session.power_dir)
    with serving(session.power_dir) as served:
        served.call(tool(tool_use_id="f0"))
        before = len(os.listdir("/proc/self/fd"))
        for number in range(1, 200):
            served.call(tool(tool_use_id=f"f{number}", claude=OTHER if number % 2 else CLAUDE))
        after = len(os.listdir("/proc/self/fd"))
    assert after - before < 10, (before, after)


def test_each_machines_coordinator_outages_are_folded_from_its_restarts() -> None:
    """From one coordinator's last word (a status, or its stop) to the next one's start on the same machine; a
    coordinator starting on another machine is no outage of this one's, and the first start is none."""
    from popkit_power.projector import Rules, apply, new_state

    state = new_state()
    rules = Rules()
    for seq, (kind, origin, ts) in enumerate([
            ("coordinator.started", "A", "2026-12-07T10:00:00.000Z"),
            ("coordinator.status", "A", "2026-12-07T10:00:15.000Z"),
            ("coordinator.started", "B", "2026-12-07T10:00:20.000Z"),  # another machine
            ("coordinator.started", "A", "2026-12-07T10:01:00.000Z"),  # A was killed after 10:00:15
            ("coordinator.stopped", "A", "2026-12-07T10:02:00.000Z"),
            ("coordinator.started", "A", "2026-12-07T10:02:30.000Z")], start=1):
        apply(state, {"seq": seq, "type": kind, "from": "coordinator", "origin": origin, "ts": ts, "data": {}}, rules)
    assert state["coordinators"]["A"]["outages"] == [
        {"from": "2026-12-07T10:00:15.000Z", "to": "2026-12-07T10:01:00.000Z"},
        {"from": "2026-12-07T10:02:00.000Z", "to": "2026-12-07T10:02:30.000Z"}]
    assert "outages" not in state["coordinators"]["B"] and "outages" not in state["coordinator"]
