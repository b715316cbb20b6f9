"""The dashboard's server, through real HTTP on loopback (its page in a browser: tests/test_dashboard_browser.py).

Who may use it (the token, the Host, the Origin and the token header of an action), what it streams (the status as
`status --json` has it, the lanes, the hand-overs), what its actions write (the CLI's own library calls, recorded as
coming from the dashboard and from which address), a replay's status at any seq, and its token file.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from dashboard_support import events_of, join, last, serving
from support import until

from popkit_power.approvals import request_approval
from popkit_power.dashboard.access import Access, read_address
from popkit_power.dashboard.feed import MAX_CELLS, Feed
from popkit_power.dashboard.replaying import status_at
from popkit_power.keys import COORDINATOR, DASHBOARD_FILE, HUMAN
from popkit_power.provenance import doubts
from popkit_power.session import Session
from popkit_power.status import StatusReader

AGENT, OTHER = "s1:main", "s2:main"


# -- who may use it -------------------------------------------------------------------------------------------------

def test_without_the_token_every_path_is_refused_and_with_it_the_page_comes(session: Session) -> None:
    with serving(session) as served:
        import httpx

        bare = httpx.Client(base_url=served.base)
        for path in ("/", "/events", "/static/dashboard.js", "/api/at?seq=1", "/?token=wrong" + served.token):
            answer = bare.get(path)
            assert answer.status_code == 403, path
            assert "no valid token" in answer.text
            assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert bare.post("/api/broadcast", json={"text": "x"}).status_code == 403
        first = bare.get(f"/?token={served.token}", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert f"popkit_power_dashboard_{served.port}={served.token}" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        page = served.client.get("/")
        assert page.status_code == 200
        assert f'content="{served.token}"' in page.text and "{{TOKEN}}" not in page.text
        assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
        assert served.client.get("/static/dashboard.js").headers["content-type"].startswith("text/javascript")
        assert served.client.get("/static/index.html").status_code == 404  # only the script and the style
        assert served.client.get("/static/../app.py").status_code in (403, 404)
        bare.close()


def test_another_host_name_is_refused_even_with_the_token(session: Session) -> None:
    with serving(session) as served:
        answer = served.client.get("/", headers={"host": f"attacker.example:{served.port}"})
        assert answer.status_code == 403
        assert "Host 'attacker.example" in answer.text
        assert served.client.get("/", headers={"host": f"localhost:{served.port}"}).status_code == 200


def test_an_action_needs_its_own_origin_and_the_token_header(session: Session) -> None:
    before = len(events_of(session, "message.broadcast"))
    with serving(session) as served:
        cross = served.post("broadcast", {"text": "from elsewhere"}, origin="http://attacker.example")
        assert cross.status_code == 403 and "Origin 'http://attacker.example'" in cross.text
        headerless = served.client.post("/api/broadcast", json={"text": "x"}, headers={"origin": served.base})
        assert headerless.status_code == 403 and "x-popkit-token" in headerless.text
        other = "B" if served.token.endswith("A") else "A"  # one character off, whatever the token's last one is
        wrong = served.post("broadcast", {"text": "x"}, **{"x-popkit-token": served.token[:-1] + other})
        assert wrong.status_code == 403
        assert served.post("broadcast", {"text": "from the page"}).json()["ok"] is True
    assert len(events_of(session, "message.broadcast")) == before + 1


def test_access_compares_tokens_and_names_what_is_wrong() -> None:
    access = Access("secret", 4242)
    headers = {"host": "127.0.0.1:4242"}
    assert access.refusal("GET", headers, "secret", None) is None
    assert access.refusal("GET", headers, None, "secret") is None
    assert "no valid token" in str(access.refusal("GET", headers, "secre", None))
    assert "Host" in str(access.refusal("GET", {"host": "127.0.0.1:4243"}, "secret", None))
    post = {**headers, "origin": "http://127.0.0.1:4242", "x-popkit-token": "secret"}
    assert access.refusal("POST", post, None, "secret") is None
    assert "Origin" in str(access.refusal("POST", {**post, "origin": "null"}, None, "secret"))
    assert access.cookie == "popkit_power_dashboard_4242"


def test_the_token_file_is_private_and_gone_when_the_dashboard_stops(session: Session) -> None:
    path = Path(session.power_dir, DASHBOARD_FILE)
    with serving(session) as served:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        found = read_address(session.power_dir)
        assert found is not None and found["url"] == served.url and found["pid"] == os.getpid()
        assert found["session"] == session.id
    assert not path.exists()


def test_the_command_refuses_without_an_active_session_and_prints_the_running_url(power_dir: str,
                                                                                   session: Session) -> None:
    cli = [sys.executable, "-m", "popkit_power.cli"]
    none = subprocess.run([*cli, "dashboard", "--url"], capture_output=True, text=True, timeout=60)
    assert none.returncode == 2 and "no dashboard runs for" in none.stderr
    with serving(session) as served:
        again = subprocess.run([*cli, "dashboard", "--url"], capture_output=True, text=True, timeout=60)
        assert again.stdout.strip() == served.url
        inside = subprocess.run([*cli, "dashboard", "--url"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "CLAUDE_CODE_SESSION_ID": "s9"})
        assert inside.returncode == 2 and served.token not in inside.stdout + inside.stderr
        assert "inside an agent's session" in inside.stderr
        saved = Path(power_dir, DASHBOARD_FILE).read_bytes()
    # a dashboard killed before it could remove its entry: its process is gone, and so is the URL's server
    Path(power_dir, DASHBOARD_FILE).write_bytes(saved.replace(f'"pid":{os.getpid()}'.encode(), b'"pid":999999999'))
    stale = subprocess.run([*cli, "dashboard", "--url"], capture_output=True, text=True, timeout=60)
    assert stale.returncode == 2 and "no dashboard runs" in stale.stderr and stale.stdout == ""
    past = subprocess.run([*cli, "dashboard", "20200101-000000-abcdef"], capture_output=True, text=True, timeout=60)
    assert past.returncode == 2 and "is not the active one" in past.stderr


# -- what it streams ------------------------------------------------------------------------------------------------

def test_a_page_gets_hello_lanes_and_the_status_of_status_json_then_each_new_event(session: Session) -> None:
    join(session, AGENT, "ana")
    with serving(session) as served:
        first = served.messages(lambda found: any(name == "status" for name, _ in found))
        hello = first[0][1]
        assert first[0][0] == "hello" and hello["mode"] == "live" and hello["session"] == session.id
        assert hello["can_answer"] is True and [kind["id"] for kind in hello["kinds"]][:2] == ["tool", "tool_failed"]
        status = last(first, "status")
        expected = StatusReader(session).read()
        for field in ("session", "objective", "names", "tasks", "pending_approvals", "unfinished_tasks"):
            assert status[field] == orjson.loads(orjson.dumps(expected[field])), field
        assert status["agents"][AGENT]["name"] == expected["agents"][AGENT]["name"]
        assert status["drawn_through"] == expected["journal"]["records_through_seq"]
        lanes = last(first, "lanes")
        assert lanes["full"] is True and AGENT in [lane["key"] for lane in lanes["lanes"]]
        appended = session.publish("insight.shared", {"text": "the parser needs a lookahead"}, sender=AGENT)
        later = served.messages(lambda found: any(
            name == "status" and data["drawn_through"] >= appended.first_seq for name, data in found))
        assert last(later, "status")["insights"][-1]["text"] == "the parser needs a lookahead"


def test_a_lost_agents_task_taken_by_another_is_a_hand_over(session: Session) -> None:
    join(session, AGENT, "ana")
    join(session, OTHER, "ben")
    session.publish("task.created", {"task": "t-parse", "title": "Parse the input"}, sender=HUMAN)
    session.publish("task.claimed", {"task": "t-parse"}, sender=AGENT)
    with serving(session) as served:
        session.publish("agent.lost", {"agent": AGENT, "reason": "its Claude Code process 4242 is gone"},
                        sender=COORDINATOR)
        session.publish("task.orphaned", {"task": "t-parse", "agent": AGENT}, sender=COORDINATOR)
        taken = session.publish("task.claimed", {"task": "t-parse"}, sender=OTHER)
        found = served.messages(lambda found: any(
            name == "status" and data["handovers"] for name, data in found))
        handover = last(found, "status")["handovers"][-1]
        assert handover == {"task": "t-parse", "title": "Parse the input", "from": AGENT, "to": OTHER,
                            "why": "its Claude Code process 4242 is gone", "seq": taken.first_seq,
                            "ts": handover["ts"]}


def test_doctor_s_problems_are_on_the_page(session: Session, tmp_path: Path) -> None:
    project = tmp_path / "project"  # a project where no hook is registered: doctor says so
    project.mkdir()
    with serving(session, doctor=True, project_dir=str(project)) as served:
        found = served.messages(lambda found: any(name == "status" and data["problems"] for name, data in found))
        problems = last(found, "status")["problems"]
        hooks = next(problem for problem in problems if problem["check"] == "hooks")
        assert hooks["level"] in ("FAIL", "warn") and "hook" in hooks["text"]


# -- what its actions write -----------------------------------------------------------------------------------------

def test_an_approval_answered_from_the_page_counts_once_and_says_it_came_from_the_dashboard(session: Session) -> None:
    join(session, AGENT, "ana")
    requested = request_approval(session, "Run the migration?", sender=AGENT)
    with serving(session) as served:
        granted = served.post("approve", {"request": requested.request, "note": "go ahead"})
        assert granted.status_code == 200 and granted.json()["message"].startswith(f"granted {requested.request}")
        again = served.post("deny", {"request": requested.request})
        assert again.status_code == 409
        assert again.json()["code"] == "answer-refused"
        assert f"request {requested.request} was already granted by human" in again.json()["error"]
    answers = events_of(session, "approval.granted") + events_of(session, "approval.denied")
    assert len(answers) == 1
    evidence = answers[0]["data"]["evidence"]
    assert evidence["via"] == "dashboard" and evidence["client"].startswith("127.0.0.1:")
    assert answers[0]["data"]["note"] == "go ahead" and answers[0]["from"] == HUMAN
    assert doubts(evidence) == []  # a server's lack of a terminal is not held against it


def test_each_action_makes_the_cli_s_change_and_refuses_what_the_cli_refuses(session: Session) -> None:
    join(session, AGENT, "ana")
    join(session, OTHER, "ben")
    with serving(session) as served:
        added = served.post("task/add", {"title": "Write the lexer", "to": "ana"}).json()
        assert added["ok"] is True and "owned by" in added["message"]
        task = added["message"].split()[1]
        assert served.post("task/reassign", {"task": task, "agent": "ben"}).json()["ok"] is True
        assert served.post("task/release", {"task": task, "reason": "split it"}).json()["ok"] is True
        assert served.post("send", {"agent": "ben", "text": "look at the lexer"}).json()["ok"] is True
        assert served.post("broadcast", {"text": "lexer first"}).json()["ok"] is True
        session.publish("agent.left", {"reason": "done"}, sender=AGENT)
        gone = served.post("send", {"agent": "ana", "text": "hello?"})
        assert gone.status_code == 400 and "has left" in gone.json()["error"]
        assert "the message is empty" in served.post("send", {"agent": "ben", "text": " \u200b"}).json()["error"]
        assert "'title' must be text" in served.post("task/add", {"title": 7}).json()["error"]
        assert served.post("nothing", {}).status_code == 404
        assert served.post("broadcast", ["not", "an", "object"]).status_code == 400
        bad = served.client.post("/api/broadcast", content=b"{", headers={
            "origin": served.base, "x-popkit-token": served.token})
        assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    assigned = events_of(session, "task.assigned")[-1]
    assert assigned["data"]["agent"] == OTHER and assigned["data"]["evidence"]["via"] == "dashboard"
    released = events_of(session, "task.released")[-1]
    assert released["data"] == {"task": task, "holder": OTHER, "reason": "split it",
                                "evidence": released["data"]["evidence"]}
    direct = events_of(session, "message.direct")[-1]
    assert direct["to"] == OTHER and direct["from"] == HUMAN and direct["data"]["evidence"]["via"] == "dashboard"


def test_inside_an_agents_session_it_shows_but_does_not_answer(session: Session,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    join(session, AGENT, "ana")
    requested = request_approval(session, "Deploy?", sender=AGENT)
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "s9")
    with serving(session) as served:
        hello = served.messages(lambda found: bool(found))[0][1]
        assert hello["can_answer"] is False and "inside an agent's session" in hello["why_not"]
        refused = served.post("approve", {"request": requested.request})
        assert refused.status_code == 400 and "only the human answers approvals" in refused.json()["error"]
        session.publish("task.created", {"task": "t-held", "title": "Held", "owner": AGENT}, sender=HUMAN)
        before = session.journal.end_position().seq
        for action, body in (("send", {"agent": "ana", "text": "hi"}), ("broadcast", {"text": "hi"}),
                             ("task/add", {"title": "More"}), ("task/release", {"task": "t-held"}),
                             ("task/reassign", {"task": "t-held", "agent": "ana"})):
            answer = served.post(action, body)  # as the CLI there: nobody speaks as the human inside an agent
            assert answer.status_code == 400 and "inside an agent's session" in answer.json()["error"], action
        assert session.journal.end_position().seq == before
    assert events_of(session, "approval.granted") == []


# -- a replay -------------------------------------------------------------------------------------------------------

def test_a_replay_s_status_at_each_seq_is_replay_at_and_its_actions_are_refused(session: Session) -> None:
    join(session, AGENT, "ana")
    session.publish("task.created", {"task": "t-a", "title": "A"}, sender=HUMAN)
    session.publish("task.claimed", {"task": "t-a"}, sender=AGENT)
    session.publish("task.completed", {"task": "t-a", "result": "ok", "ok": True}, sender=AGENT)
    end = session.journal.end_position().seq - 1
    with serving(session, replay=True) as served:
        hello = served.messages(lambda found: bool(found))[0][1]
        assert hello["mode"] == "replay" and hello["replay"]["first_seq"] == 1 and hello["replay"]["last_seq"] == end
        for seq in range(1, end + 1):
            at = served.client.get(f"/api/at?seq={seq}").json()
            cli = subprocess.run([sys.executable, "-m", "popkit_power.cli", "replay", "--at", str(seq), "--json"],
                                 capture_output=True, text=True, timeout=60, check=True)
            expected = orjson.loads(cli.stdout)
            assert at["seq"] == seq
            for field in ("tasks", "finished_tasks", "agents", "now"):
                assert at["status"][field] == expected[field], (seq, field)
        assert "past the end" in served.client.get(f"/api/at?seq={end + 5}").json()["error"]
        assert served.post("broadcast", {"text": "x"}).json()["error"] == "a replay changes nothing"


def test_a_feed_closed_while_it_reads_a_long_journal_stops_before_its_end(session: Session) -> None:
    keys = [f"a{n}:main" for n in range(4)]
    for _batch in range(6):
        session.append_events([session.event("agent.tool", {"tool": "Read", "ok": True}, sender=keys[i % 4])
                               for i in range(5000)])
    end = session.journal.end_position().seq - 1
    feed = Feed(Session(session.power_dir, session.id, read_only=True))
    feed.start()
    feed.close()  # at once: the thread is folding or placing the first records
    assert feed.last is None or feed.last[0] < end  # it looked at the stop between batches, not at the end


def test_status_at_keeps_only_the_hand_overs_up_to_its_seq(session: Session) -> None:
    join(session, AGENT, "ana")
    join(session, OTHER, "ben")
    session.publish("task.created", {"task": "t-a", "title": "A"}, sender=HUMAN)
    session.publish("task.claimed", {"task": "t-a"}, sender=AGENT)
    before = session.publish("task.orphaned", {"task": "t-a", "agent": AGENT}, sender=COORDINATOR).first_seq
    session.publish("task.claimed", {"task": "t-a"}, sender=OTHER)
    feed = Feed(Session(session.power_dir, session.id, read_only=True), follow=False)
    feed.start()
    assert feed.ready.wait(30)
    try:
        assert status_at(feed, before)["status"]["handovers"] == []
        assert [handover["to"] for handover in status_at(feed, before + 1)["status"]["handovers"]] == [OTHER]
    finally:
        feed.close()


# -- a long session -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_page_holds_bounded_cells_and_status_however_long_the_session(session: Session) -> None:
    """A day of events on twenty agents: the lanes double their bins and a page never holds more than MAX_CELLS
    cells, and the status it gets stays the size of what is live."""
    from test_timeline import _ts

    keys = [f"a{n:02d}:main" for n in range(20)]
    for n, key in enumerate(keys):
        join(session, key, f"worker-{n}")
    start = 1_800_000_000.0
    batch = []
    for n in range(60_000):
        event = session.event("agent.tool" if n % 7 else "insight.shared",
                              {"tool": "Edit", "ok": True, "file": f"/srv/m{n % 50}.py"} if n % 7
                              else {"text": f"insight {n}"}, sender=keys[n % 20])
        event["ts"] = _ts(start + n * 1.5)  # 25 hours
        batch.append(event)
        if len(batch) == 5000:
            session.append_events(batch)
            batch = []
    with serving(session) as served:
        found = served.messages(lambda found: any(name == "status" for name, _ in found))
        lanes = last(found, "lanes")
        assert lanes["full"] is True
        assert 0 < len(lanes["cells"]) <= MAX_CELLS
        assert lanes["columns"] <= lanes["max_columns"]
        assert len(orjson.dumps(last(found, "status"))) < 400_000


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_the_command_stops_on_a_signal_with_a_page_open_and_takes_its_token_file_along(
        power_dir: str, session: Session, sig: str) -> None:
    import signal
    import threading

    from dashboard_support import Served

    server = subprocess.Popen([sys.executable, "-m", "popkit_power.cli", "dashboard"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    assert server.stdout is not None
    served = Served(server.stdout.readline().split("open ", 1)[1].strip())
    streaming = threading.Event()
    ended: list[str] = []

    def page() -> None:  # an open page: its event stream stays open until the server ends it
        try:
            with served.client.stream("GET", "/events") as response:
                for line in response.iter_lines():
                    streaming.set()
                    if line.startswith("event: gone"):
                        ended.append(line)
        except Exception as error:  # the server closing the stream is how a page learns it stopped
            ended.append(type(error).__name__)

    reader = threading.Thread(target=page, daemon=True)
    reader.start()
    assert streaming.wait(30)
    server.send_signal(getattr(signal, sig))
    assert server.wait(timeout=30) == 0, server.stderr.read() if server.stderr else ""
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert ended and ended[0] == "event: gone"  # the page was told, not just cut off
    assert not Path(power_dir, DASHBOARD_FILE).exists()
    served.client.close()


# -- what a review found --------------------------------------------------------------------------------------------

def test_a_dashboard_that_follows_the_active_session_writes_nothing_from_a_page_of_the_one_before(
        power_dir: str, session: Session) -> None:
    from popkit_power.session import start_session, stop_session

    with serving(session, follow_active=True) as served:
        assert served.dashboard is not None
        stop_session(power_dir, sender=HUMAN)
        after = start_session(power_dir, "The next objective", sender=HUMAN)
        until(lambda: served.dashboard is not None and served.dashboard.session.id == after.id, 30,
              "the dashboard shows the new session")
        late = served.post("broadcast", {"text": "meant for the old one"}, **{"x-popkit-session": session.id})
        assert late.status_code == 409 and "load the page again" in late.json()["error"]
        assert events_of(after, "message.broadcast") == [] and events_of(session, "message.broadcast") == []
        assert served.post("broadcast", {"text": "for the new one"}, **{"x-popkit-session": after.id}).json()["ok"]
    assert [event["data"]["text"] for event in events_of(after, "message.broadcast")] == ["for the new one"]


def test_a_page_that_subscribes_after_its_feed_closed_is_told_at_once(session: Session) -> None:
    feed = Feed(Session(session.power_dir, session.id, read_only=True))
    feed.start()
    feed.close("session X is no longer the active one", reload=True)
    told: list[bool] = []
    mailbox = feed.subscribe(lambda: told.append(True))
    assert told and mailbox.gone == "session X is no longer the active one" and mailbox.reload is True


def test_an_open_that_fails_leaves_nothing_listening_or_reading(session: Session,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    import popkit_power.dashboard.server as server

    def full_disk(*args: Any, **kwargs: Any) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(server, "write_address", full_disk)
    dashboard = server.Dashboard(Session(session.power_dir, session.id, read_only=True), doctor=False)
    with pytest.raises(OSError, match="No space left"):
        dashboard.open()
    assert dashboard.feed._thread is None or not dashboard.feed._thread.is_alive()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", dashboard.port)) != 0  # refused: nobody listens there


def test_start_dashboard_inside_an_agents_session_prints_no_token_and_a_switch_keeps_its_port(
        power_dir: str) -> None:
    from support import free_port

    port = str(free_port())
    env = {**os.environ, "POPKIT_POWER_HOME": power_dir}
    env.pop("POPKIT_POWER_NO_COORDINATOR", None)
    cli = [sys.executable, "-m", "popkit_power.cli"]
    try:
        inside = subprocess.run([*cli, "start", "--dashboard", "--dashboard-port", port, "First"], text=True,
                                capture_output=True, timeout=120, env={**env, "CLAUDE_CODE_SESSION_ID": "s9"})
        assert inside.returncode == 0, inside.stderr
        assert "token=" not in inside.stdout and f"http://127.0.0.1:{port}/" in inside.stdout
        assert "dashboard --url, in a terminal outside Claude Code" in inside.stdout
        switched = subprocess.run([*cli, "start", "--switch", "--dashboard", "--dashboard-port", port, "Second"],
                                  text=True, capture_output=True, timeout=120, env=env)
        assert switched.returncode == 0, switched.stderr  # the port the first session's dashboard held is free
        assert f"http://127.0.0.1:{port}/?token=" in switched.stdout
    finally:
        subprocess.run([*cli, "stop"], capture_output=True, timeout=120, env=env)


def test_odd_command_lines_are_refused_with_what_is_wrong(power_dir: str, session: Session) -> None:
    cli = [sys.executable, "-m", "popkit_power.cli", "dashboard"]
    mixed = subprocess.run([*cli, "--url", "--replay"], capture_output=True, text=True, timeout=60)
    assert mixed.returncode == 2 and "takes no SESSION, --replay or --port" in mixed.stderr
    bad = subprocess.run([sys.executable, "-m", "popkit_power.dashboard", "--port=http"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--port" in bad.stderr and "Traceback" not in bad.stderr

