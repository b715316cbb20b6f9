"""Attacks on the dashboard's seams: access (Host, Origin, CSRF shapes), what the page's actions do when the
session moved on under it, its processes under signals, its feed across rotation, and hostile agent text."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from dashboard_support import last, serving
from support import until

from popkit_power.approvals import request_approval
from popkit_power.dashboard.access import read_address
from popkit_power.keys import DASHBOARD_FILE, HUMAN
from popkit_power.session import Session, stop_session

AGENT, OTHER = "s1:main", "s2:main"
CLI = [sys.executable, "-m", "popkit_power.cli"]


def join(session: Session, key: str, name: str) -> None:
    session.publish("agent.joined", {"name": name, "cwd": "/srv/project"}, sender=key)


def events_of(session: Session, event_type: str) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event.get("type") == event_type]


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes as they are (no client library normalizing the Host), read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


# -- access ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1.:{port}", "LOCALHOST:{port}", "[::1]:{port}", "127.0.0.1:{port}@evil",
                                  "evil.example:{port}", "127.0.0.1", "localhost",
                                  "127.0.0.1:0{port}", "127.1:{port}", "0x7f000001:{port}", "localhost.:{port}"])
def test_host_variants_of_a_rebinding_page_are_refused(session: Session, host: str) -> None:
    with serving(session) as served:
        answer = raw_request(served.port, (
            f"GET / HTTP/1.1\r\nHost: {host.format(port=served.port)}\r\n"
            f"Cookie: popkit_power_dashboard_{served.port}={served.token}\r\nConnection: close\r\n\r\n").encode())
        status = answer.split(b"\r\n", 1)[0]
        assert b" 200 " not in status, (host, status)
        assert served.token.encode() not in answer


def test_two_host_headers_are_not_a_way_in(session: Session) -> None:
    with serving(session) as served:
        answer = raw_request(served.port, (
            f"GET / HTTP/1.1\r\nHost: evil.example:{served.port}\r\nHost: 127.0.0.1:{served.port}\r\n"
            f"Cookie: popkit_power_dashboard_{served.port}={served.token}\r\nConnection: close\r\n\r\n").encode())
        assert served.token.encode() not in answer
        answer = raw_request(served.port, (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\nHost: evil.example:{served.port}\r\n"
            f"Cookie: popkit_power_dashboard_{served.port}={served.token}\r\nConnection: close\r\n\r\n").encode())
        assert served.token.encode() not in answer or b" 400 " in answer.split(b"\r\n", 1)[0]


@pytest.mark.parametrize("shape", ["text/plain form", "null origin", "no origin", "urlencoded form"])
def test_csrf_shapes_are_refused(session: Session, shape: str) -> None:
    before = len(events_of(session, "message.broadcast"))
    with serving(session) as served:
        headers = {"host": f"127.0.0.1:{served.port}"}
        body = b'{"text": "csrf"}'
        if shape == "text/plain form":
            headers.update({"origin": "http://evil.example", "content-type": "text/plain"})
        elif shape == "null origin":
            headers.update({"origin": "null", "content-type": "text/plain"})
        elif shape == "no origin":
            headers.update({"content-type": "text/plain"})
        else:
            headers.update({"origin": served.base, "content-type": "application/x-www-form-urlencoded"})
            body = b'text=csrf'
        answer = served.client.post("/api/broadcast", content=body, headers=headers)
        assert answer.status_code == 403, (shape, answer.text)
    assert len(events_of(session, "message.broadcast")) == before


def test_refusals_and_errors_never_echo_the_token(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    with serving(session) as served:
        bare = httpx.Client(base_url=served.base)
        for answer in (
            bare.get(f"/events?token={served.token}x"),
            served.client.get("/", headers={"host": "evil.example"}),
            served.client.get(f"/api/at?seq={served.token}"),
            served.post("broadcast", {"text": 1}),
            served.client.post("/api/broadcast", content=served.token, headers={
                "origin": served.base, "x-popkit-token": served.token}),
        ):
            assert served.token not in answer.text
        bare.close()
    assert served.token not in caplog.text


def test_static_paths_serve_only_the_script_and_the_style(session: Session) -> None:
    with serving(session) as served:
        for path in ("/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
                     "/static/dashboard.js%00", "/static/./dashboard.js/..", "/static//etc/passwd",
                     "/static/dashboard.js/../../access.py"):
            answer = raw_request(served.port, (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                f"Cookie: popkit_power_dashboard_{served.port}={served.token}\r\nConnection: close\r\n\r\n").encode())
            assert b"import" not in answer and b"root:" not in answer, path


def test_an_oversize_action_is_refused_and_writes_nothing(session: Session) -> None:
    before = len(events_of(session, "message.broadcast"))
    with serving(session) as served:
        answer = served.post("broadcast", {"text": "x" * (1 << 20)})
        assert answer.status_code == 413
    assert len(events_of(session, "message.broadcast")) == before


@pytest.mark.parametrize("seq", ["0", "-1", "99999999999999999999", "1e3", "", "abc", "1.5", "9" * 5000, " 1 ",
                                 "NaN", "0x10"])
def test_replay_at_odd_seqs_answers_an_error_not_a_crash(session: Session, seq: str) -> None:
    join(session, AGENT, "ana")
    with serving(session, replay=True) as served:
        answer = served.client.get("/api/at", params={"seq": seq})
        assert answer.status_code in (200, 400), (seq, answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith("application/json")


# -- the session moves on under an open page ------------------------------------------------------------------------

@pytest.mark.xfail(strict=True, reason="an action from a page still writes into the session after it was stopped: "
                   "app.py's actions write to a fixed Session and nothing checks it is still open (the CLI refuses: "
                   "Power Mode is off)")
def test_an_action_after_the_session_was_stopped_is_refused_and_writes_nothing(power_dir: str,
                                                                                session: Session) -> None:
    join(session, AGENT, "ana")
    with serving(session) as served:
        stop_session(power_dir, sender=HUMAN)
        answers = [served.post("broadcast", {"text": "anyone there?"}),
                   served.post("task/add", {"title": "after the end"})]
        cli = subprocess.run([*CLI, "broadcast", "anyone there?"], capture_output=True, text=True, timeout=60)
        assert cli.returncode != 0  # the CLI refuses: Power Mode is off
        after_close = False
        late = []
        for event in session.journal.reader():
            if event.get("type") == "session.closed":
                after_close = True
            elif after_close:
                late.append(event["type"])
        assert late == [], f"written after session.closed: {late}; answers {[a.status_code for a in answers]}"
        assert all(answer.status_code >= 400 for answer in answers)


@pytest.mark.xfail(strict=True, reason="an approval pending when the session was stopped can still be granted from "
                   "an open page, after session.closed: the approval's agent is long gone")
def test_an_approval_cannot_be_granted_from_the_page_after_the_session_stopped(power_dir: str,
                                                                               session: Session) -> None:
    join(session, AGENT, "ana")
    requested = request_approval(session, "Drop the table?", sender=AGENT)
    with serving(session) as served:
        stop_session(power_dir, sender=HUMAN)
        answer = served.post("approve", {"request": requested.request})
        assert answer.status_code >= 400, answer.text
    assert events_of(session, "approval.granted") == []


def test_an_approval_answered_from_the_page_and_the_cli_at_once_counts_once(session: Session) -> None:
    join(session, AGENT, "ana")
    for round_number in range(3):
        requested = request_approval(session, f"Deploy {round_number}?", sender=AGENT)
        with serving(session) as served:
            results: dict[str, Any] = {}
            go = threading.Barrier(2)

            def page() -> None:
                go.wait()
                results["page"] = served.post("approve", {"request": requested.request})

            thread = threading.Thread(target=page)
            thread.start()
            go.wait()
            cli = subprocess.run([*CLI, "deny", requested.request], capture_output=True, text=True, timeout=60)
            thread.join(60)
            page_answer = results["page"]
        answers = [event for event in events_of(session, "approval.granted") + events_of(session, "approval.denied")
                   if event["data"]["request"] == requested.request]
        assert len(answers) == 1, answers
        page_won = page_answer.status_code == 200
        cli_won = cli.returncode == 0
        assert page_won != cli_won, (page_answer.text, cli.stdout, cli.stderr)
        loser = cli.stderr if page_won else page_answer.json()["error"]
        assert "already" in loser, loser
        assert answers[0]["type"] == ("approval.granted" if page_won else "approval.denied")


def test_a_page_keeps_getting_statuses_across_segment_rotation(power_dir: str) -> None:
    os.makedirs(power_dir, exist_ok=True)
    Path(power_dir, "config.json").write_text('{"segment_max_bytes": 4096}')
    from popkit_power.session import start_session

    session = start_session(power_dir, "Rotate a lot", sender="human")
    join(session, AGENT, "ana")
    segments = lambda: len([name for name in os.listdir(session.journal.directory) if name.endswith(".jsonl")]) \
        or len(os.listdir(session.journal.directory))
    with serving(session) as served:
        served.messages(lambda found: any(name == "status" for name, _ in found))
        first_segments = segments()
        seen: list[int] = []
        stop = threading.Event()

        def write() -> None:
            for n in range(400):
                if stop.is_set():
                    return
                session.publish("insight.shared", {"text": f"insight number {n} " + "y" * 200}, sender=AGENT)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            found = served.messages(lambda found: (seen.extend(
                data["drawn_through"] for name, data in found[len(seen):] if name == "status") or True) and any(
                name == "gone" for name, _ in found) or (not writer.is_alive() and any(
                    name == "status" and data["drawn_through"] >= session.journal.end_position().seq - 1
                    for name, data in found)), timeout=120)
        finally:
            stop.set()
            writer.join(60)
        assert not any(name == "gone" for name, _ in found), [data for name, data in found if name == "gone"]
        assert segments() > first_segments + 5, "the journal did not rotate"
        statuses = [data for name, data in found if name == "status"]
        through = [status["drawn_through"] for status in statuses]
        assert through == sorted(through)
        assert statuses[-1]["drawn_through"] == session.journal.end_position().seq - 1
        texts = [insight["text"] for insight in statuses[-1]["insights"]]
        assert any(text.startswith("insight number 399 ") for text in texts)


# -- its processes under signals -------------------------------------------------------------------------------------

class OpenPage:
    """An event stream held open in a thread, as a browser tab holds it: what it read, and whether it ended."""

    def __init__(self, address: dict[str, Any]) -> None:
        self.port = address["port"]
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}",
                                   cookies={f"popkit_power_dashboard_{self.port}": address["token"]},
                                   timeout=httpx.Timeout(120))
        self.events: list[str] = []
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/events") as response:
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        self.events.append(line[len("event: "):])
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def close(self) -> None:
        self.client.close()


def address_of(power_dir: str, pid: int) -> dict[str, Any]:
    return until(lambda: (lambda found: found if found and found.get("pid") == pid else None)(
        read_address(power_dir)), 60, f"dashboard.json of pid {pid}")


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def foreground_dashboard(power_dir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "POPKIT_POWER_HOME": power_dir})


def stop_with_pages_open(power_dir: str, session: Session, sig: signal.Signals) -> tuple[float, int, str, bool]:
    """Start `popkit-power dashboard`, open five pages, send `sig`: (seconds to exit, exit status, stderr, whether
    every page's stream ended)."""
    join(session, AGENT, "ana")
    process = foreground_dashboard(power_dir)
    pages: list[OpenPage] = []
    try:
        address = address_of(power_dir, process.pid)
        pages = [OpenPage(address) for _ in range(5)]
        until(lambda: all("status" in page.events for page in pages), 60, "every page has its first status")
        started = time.monotonic()
        process.send_signal(sig)
        _out, err = process.communicate(timeout=30)
        took = time.monotonic() - started
        return took, process.returncode, err.decode(errors="replace"), all(page.ended.wait(10) for page in pages)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for page in pages:
            page.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_foreground_dashboard_stops_at_once_with_pages_open(power_dir: str, session: Session,
                                                                sig: signal.Signals) -> None:
    took, _status, _err, ended = stop_with_pages_open(power_dir, session, sig)
    assert took < 6, f"took {took:.1f} s to stop with pages open"
    assert ended


@pytest.mark.xfail(strict=True, reason="SIGTERM kills `popkit-power dashboard` before its cleanup: uvicorn (0.29+) "
                   "re-raises the captured SIGTERM when Server.run returns, with the default handler back, so "
                   "server.py's `finally: self.close()` never runs and dashboard.json (with the token) stays")
def test_sigterm_to_the_foreground_dashboard_removes_dashboard_json(power_dir: str, session: Session) -> None:
    _took, status, err, _ended = stop_with_pages_open(power_dir, session, signal.SIGTERM)
    assert not Path(power_dir, DASHBOARD_FILE).exists(), f"dashboard.json left behind (exit {status}) {err}"


@pytest.mark.xfail(strict=True, reason="Ctrl-C, the documented way to stop `popkit-power dashboard`, ends it with "
                   "exit 1 and 'Aborted!': uvicorn re-raises the captured SIGINT after Server.run, a "
                   "KeyboardInterrupt that click reports as an abort")
def test_ctrl_c_stops_the_foreground_dashboard_cleanly(power_dir: str, session: Session) -> None:
    _took, status, err, _ended = stop_with_pages_open(power_dir, session, signal.SIGINT)
    assert not Path(power_dir, DASHBOARD_FILE).exists()
    assert status == 0 and "Aborted" not in err, (status, err)


@pytest.mark.xfail(strict=True, reason="after the dashboard's process is killed (SIGKILL, OOM), dashboard.json stays "
                   "and `popkit-power dashboard --url` prints its dead URL with exit 0: cli/dashboard.py prints "
                   "read_address() without checking that its pid lives or its port answers")
def test_dashboard_url_after_the_server_was_killed_does_not_print_a_dead_url(power_dir: str,
                                                                              session: Session) -> None:
    process = foreground_dashboard(power_dir)
    try:
        address = address_of(power_dir, process.pid)
        process.kill()
        process.wait(30)
        until(lambda: not answers(address["port"]), 30, "the killed server's port is closed")
        shown = subprocess.run([*CLI, "dashboard", "--url"], capture_output=True, text=True, timeout=60)
        assert not (shown.returncode == 0 and shown.stdout.strip() == address["url"]), \
            f"printed the dead URL {shown.stdout.strip()}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_a_new_dashboard_replaces_a_killed_one_s_file(power_dir: str, session: Session) -> None:
    killed = foreground_dashboard(power_dir)
    second = None
    try:
        stale = address_of(power_dir, killed.pid)
        killed.kill()
        killed.wait(30)
        second = foreground_dashboard(power_dir)
        fresh = address_of(power_dir, second.pid)
        assert fresh["token"] != stale["token"]
        assert os.stat(Path(power_dir, DASHBOARD_FILE)).st_mode & 0o077 == 0
        second.send_signal(signal.SIGINT)  # SIGTERM leaves the file: see the xfail above
        second.wait(30)
        assert not Path(power_dir, DASHBOARD_FILE).exists()
    finally:
        for process in (killed, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


def test_a_planted_link_at_dashboard_json_is_replaced_not_followed(power_dir: str, session: Session,
                                                                   tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    os.symlink(target, Path(power_dir, DASHBOARD_FILE))
    with serving(session):
        path = Path(power_dir, DASHBOARD_FILE)
        assert not path.is_symlink() and (path.stat().st_mode & 0o077) == 0
    assert target.read_text() == "keep me"
