"""Attacks on the dashboard's seams: access (Host, Origin, CSRF shapes), what the page's actions do when the
session moved on under it, its processes under signals, its feed across rotation, and hostile agent text."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from dashboard_support import Served, events_of, join, last, serving
from support import until

from popkit_power.approvals import request_approval
from popkit_power.dashboard.access import read_address
from popkit_power.keys import DASHBOARD_FILE, HUMAN
from popkit_power.session import Session, stop_session

pytestmark = pytest.mark.slow  # real processes, a real browser, journals of 600,000 records: tools/test.sh runs them

AGENT, OTHER = "s1:main", "s2:main"
CLI = [sys.executable, "-m", "popkit_power.cli"]


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


# -- access ------------------------------------------------------------------------------------------------------------

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
            assert answer.split(b" ", 2)[1] in (b"403", b"404"), (path, answer[:80])
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
        expected = 200 if seq == " 1 " else 400  # only " 1 " is a seq of this journal (int() strips the spaces)
        assert answer.status_code == expected, (seq, answer.status_code, answer.text[:200])
        assert answer.headers["content-type"].startswith("application/json")


# -- the session moves on under an open page ---------------------------------------------------------------------------

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

            def page(go: threading.Barrier = go, results: dict[str, Any] = results, request: str =
                     requested.request, served: Any = served) -> None:
                go.wait()
                results["page"] = served.post("approve", {"request": request})

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

    def segments() -> int:
        return len(session.journal.segments())

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
            found = served.messages(lambda found: ((seen.extend(
                data["drawn_through"] for name, data in found[len(seen):] if name == "status") or True) and any(
                name == "gone" for name, _ in found)) or (not writer.is_alive() and any(
                    name == "status" and data["drawn_through"] >= session.journal.end_position().seq - 1
                    for name, data in found)), timeout=120)
        finally:
            stop.set()
            writer.join(60)
        assert not any(name == "gone" for name, _ in found), [data for name, data in found if name == "gone"]
        assert seen and seen == sorted(seen), "a status went back"
        assert segments() > first_segments + 5, "the journal did not rotate"
        statuses = [data for name, data in found if name == "status"]
        through = [status["drawn_through"] for status in statuses]
        assert through == sorted(through)
        assert statuses[-1]["drawn_through"] == session.journal.end_position().seq - 1
        texts = [insight["text"] for insight in statuses[-1]["insights"]]
        assert any(text.startswith("insight number 399 ") for text in texts)


# -- its processes under signals ---------------------------------------------------------------------------------------

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


def stop_with_pages_open(power_dir: str, session: Session, sig: signal.Signals) -> tuple[int, str, bool]:
    """Start `popkit-power dashboard`, open five pages, send `sig`: (exit status, stderr, whether every page's
    stream ended)."""
    join(session, AGENT, "ana")
    process = foreground_dashboard(power_dir)
    pages: list[OpenPage] = []
    try:
        address = address_of(power_dir, process.pid)
        pages = [OpenPage(address) for _ in range(5)]
        until(lambda: all("status" in page.events for page in pages), 60, "every page has its first status")
        process.send_signal(sig)
        _out, err = process.communicate(timeout=30)
        return process.returncode, err.decode(errors="replace"), all(page.ended.wait(10) for page in pages)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for page in pages:
            page.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_foreground_dashboard_stops_at_once_with_pages_open(power_dir: str, session: Session,
                                                                sig: signal.Signals) -> None:
    status, _err, ended = stop_with_pages_open(power_dir, session, sig)
    assert status == 0 and ended  # within stop_with_pages_open's deadlines: no page holds the stop


def test_sigterm_to_the_foreground_dashboard_removes_dashboard_json(power_dir: str, session: Session) -> None:
    status, err, _ended = stop_with_pages_open(power_dir, session, signal.SIGTERM)
    assert not Path(power_dir, DASHBOARD_FILE).exists(), f"dashboard.json left behind (exit {status}) {err}"


def test_ctrl_c_stops_the_foreground_dashboard_cleanly(power_dir: str, session: Session) -> None:
    status, err, _ended = stop_with_pages_open(power_dir, session, signal.SIGINT)
    assert not Path(power_dir, DASHBOARD_FILE).exists()
    assert status == 0 and "Aborted" not in err, (status, err)


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
        second.send_signal(signal.SIGINT)
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


def coordinator_env(power_dir: str) -> dict[str, str]:
    env = {**os.environ, "POPKIT_POWER_HOME": power_dir}
    env.pop("POPKIT_POWER_NO_COORDINATOR", None)
    return env


def start_with_dashboard(power_dir: str) -> tuple[dict[str, Any], int]:
    started = subprocess.run([*CLI, "start", "Serve a page", "--dashboard"], capture_output=True, text=True,
                             timeout=120, env=coordinator_env(power_dir))
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("coordinator: pid ", 1)[1].split(",", 1)[0])
    address = address_of(power_dir, pid)
    assert address["url"] in started.stdout
    return address, pid


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_with_pages_open_on_the_coordinator_s_dashboard_is_quick_and_clean(power_dir: str) -> None:
    address, pid = start_with_dashboard(power_dir)
    pages = [OpenPage(address) for _ in range(5)]
    try:
        until(lambda: all("status" in page.events for page in pages), 60, "every page has its first status")
        stopped = subprocess.run([*CLI, "stop"], capture_output=True, text=True, timeout=120,
                                 env=coordinator_env(power_dir))
        assert stopped.returncode == 0, stopped.stderr
        until(lambda: not pid_alive(pid), 30, "the coordinator is gone")
        assert not Path(power_dir, DASHBOARD_FILE).exists()
        assert all(page.ended.wait(10) for page in pages)
        assert not answers(address["port"])
    finally:
        for page in pages:
            page.close()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_dashboard_url_after_the_coordinator_was_killed_does_not_print_a_dead_url(power_dir: str) -> None:
    address, pid = start_with_dashboard(power_dir)
    try:
        os.kill(pid, signal.SIGKILL)
        until(lambda: not pid_alive(pid) or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", 30, "killed")
        until(lambda: not answers(address["port"]), 30, "the killed coordinator's port is closed")
        shown = subprocess.run([*CLI, "dashboard", "--url"], capture_output=True, text=True, timeout=60,
                               env=coordinator_env(power_dir))
        assert not (shown.returncode == 0 and shown.stdout.strip() == address["url"]), \
            f"printed the dead URL {shown.stdout.strip()}"
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        subprocess.run([*CLI, "stop"], capture_output=True, timeout=120, env=coordinator_env(power_dir))


def test_a_switch_moves_the_coordinator_s_dashboard_to_the_new_session(power_dir: str) -> None:
    first, first_pid = start_with_dashboard(power_dir)
    page = OpenPage(first)
    second_pid = None
    try:
        until(lambda: "status" in page.events, 60, "the page's first status")
        switched = subprocess.run([*CLI, "start", "--switch", "The next thing", "--dashboard"], capture_output=True,
                                  text=True, timeout=120, env=coordinator_env(power_dir))
        assert switched.returncode == 0, switched.stderr
        second_pid = int(switched.stdout.split("coordinator: pid ", 1)[1].split(",", 1)[0])
        second = address_of(power_dir, second_pid)
        assert second["session"] != first["session"]
        assert page.ended.wait(15), "the old session's page still streams"
        shown = subprocess.run([*CLI, "dashboard", "--url"], capture_output=True, text=True, timeout=60,
                               env=coordinator_env(power_dir))
        assert shown.stdout.strip() == second["url"]
    finally:
        page.close()
        subprocess.run([*CLI, "stop"], capture_output=True, timeout=120, env=coordinator_env(power_dir))
        for pid in (first_pid, second_pid):
            if pid is not None and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


# -- hostile agent text in a real browser ------------------------------------------------------------------------------

def hostile(tag: str) -> str:
    return (f'<img id="inj-{tag}" src=x onerror="window.__pwned=1"></svg><b id="inj2-{tag}">bold</b>'
            f'<script>window.__pwned=1</script>\u202egnp.exe')


@pytest.mark.slow
def test_hostile_agent_text_is_drawn_as_text_in_a_real_browser(session: Session, browser: Any) -> None:
    from test_dashboard_browser import js, open_dashboard, wait

    key = "s1:main"
    session.publish("agent.joined", {"name": hostile("name"), "cwd": "/srv/</svg><i id=inj-cwd>"}, sender=key)
    session.publish("agent.tool", {"tool": hostile("tool"), "ok": False, "file": hostile("file")}, sender=key)
    session.publish("task.created", {"task": "t-x", "title": hostile("title")}, sender=HUMAN)
    session.publish("task.claimed", {"task": "t-x"}, sender=key)
    session.publish("insight.shared", {"text": hostile("insight") + "y" * 900_000}, sender=key)
    session.publish("message.broadcast", {"text": hostile("broadcast")}, sender=key)
    request_approval(session, hostile("question"), sender=key)
    with serving(session) as served:
        open_dashboard(browser, served.url)
        wait(browser, lambda driver: "inj2-question" in js(driver, "return document.body.textContent"), 30)
        text = js(browser, "return document.body.textContent")
        for tag in ("title", "question"):
            assert f'id="inj2-{tag}"' in text, f"the {tag} is not shown as text"
        injected = js(browser, "return Array.from(document.querySelectorAll('[id^=inj]')).map(n => n.outerHTML)")
        assert injected == [], injected
        assert js(browser, "return window.__pwned === undefined")
        assert js(browser, "return document.querySelectorAll('script').length") == 1


@pytest.mark.slow
def test_a_page_of_another_local_port_cannot_act_through_the_browser(session: Session, browser: Any,
                                                                    tmp_path: Path) -> None:
    """Another server on 127.0.0.1 is the same *site* (ports do not count), so the SameSite=Strict cookie goes with
    its requests: only the Origin and the token header stand in the way."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from test_dashboard_browser import js, open_dashboard

    before = len(events_of(session, "message.broadcast"))
    with serving(session) as served:
        open_dashboard(browser, served.url)  # the browser holds the cookie now
        evil_dir = tmp_path / "evil"
        evil_dir.mkdir()
        target = served.base
        (evil_dir / "index.html").write_text(f"""<!doctype html><html><body>
<form id=f method=POST action="{target}/api/broadcast" enctype="text/plain">
<input name='{{"text": "csrf-form", "x": "' value='"}}'></form>
<script>
window.results = [];
fetch("{target}/api/broadcast", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"content-type": "text/plain"}}, body: JSON.stringify({{text: "csrf-fetch"}})}})
  .then(r => window.results.push("fetch " + r.type), e => window.results.push("fetch error"));
fetch("{target}/", {{credentials: "include"}}).then(r => r.text()).then(t => window.results.push("read " + t),
  e => window.results.push("read blocked"));
var es = new EventSource("{target}/events", {{withCredentials: true}});
es.onmessage = e => window.results.push("sse " + e.data);
es.addEventListener("hello", e => window.results.push("sse hello " + e.data));
es.onerror = e => {{ window.results.push("sse error"); es.close(); }};
</script></body></html>""")

        class Quiet(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(evil_dir), **kwargs)

            def log_message(self, *args: Any) -> None:
                pass

        evil = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            browser.get(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
            until(lambda: len(js(browser, "return window.results || []")) >= 3, 30, "the evil page's tries")
            results = js(browser, "return window.results")
            assert not any(result.startswith(("read <", "sse hello")) for result in results), results
            assert served.token not in " ".join(results)
            js(browser, "document.getElementById('f').submit()")
            until(lambda: browser.current_url.startswith(served.base), 30, "the form's post was answered")
            assert "403" in browser.page_source
        finally:
            evil.shutdown()
            evil.server_close()
    texts = [event["data"]["text"] for event in events_of(session, "message.broadcast")]
    assert len(texts) == before, texts


@pytest.fixture(scope="module")
def browser() -> Any:
    from test_dashboard_browser import browser as make

    yield from make.__wrapped__()  # type: ignore[attr-defined]


# -- a damaged journal -------------------------------------------------------------------------------------------------

def damage_record(session: Session, marker: bytes) -> None:
    """Flip one byte inside the record whose line holds `marker` (its CRC no longer matches)."""
    from support import segment_path

    path = segment_path(session.journal)
    data = bytearray(Path(path).read_bytes())
    at = data.index(marker)
    data[at] ^= 0x01
    Path(path).write_bytes(bytes(data))


def test_a_damaged_record_neither_stops_the_live_feed_nor_breaks_replay_at(session: Session) -> None:
    join(session, AGENT, "ana")
    session.publish("insight.shared", {"text": "before the damage"}, sender=AGENT)
    damaged = session.publish("insight.shared", {"text": "DAMAGE-HERE in this one"}, sender=AGENT).first_seq
    session.publish("insight.shared", {"text": "after the damage"}, sender=AGENT)
    damage_record(session, b"DAMAGE-HERE")
    with serving(session) as served:
        found = served.messages(lambda found: any(name in ("status", "gone") for name, _ in found))
        assert not any(name == "gone" for name, _ in found), found
        appended = session.publish("insight.shared", {"text": "later still"}, sender=AGENT).first_seq
        later = served.messages(lambda found: any(name == "gone" for name, _ in found) or any(
            name == "status" and data["drawn_through"] >= appended for name, data in found))
        assert not any(name == "gone" for name, _ in later)
        texts = [insight["text"] for insight in last(later, "status")["insights"]]
        assert "after the damage" in texts and "later still" in texts
    with serving(session, replay=True) as served:
        for seq in range(1, appended + 1):
            answer = served.client.get(f"/api/at?seq={seq}")
            assert answer.status_code in (200, 400), (seq, seq == damaged, answer.status_code, answer.text[:300])
            if seq > damaged:
                assert answer.status_code == 200, (seq, answer.text[:300])


# -- odd bodies, many pages, two dashboards ----------------------------------------------------------------------------

def test_odd_action_bodies_are_refused_with_reasons_never_a_server_error(session: Session) -> None:
    import itertools

    join(session, AGENT, "ana")
    values = [None, 7, [], "x" * 60000, "\x00", "ana"]
    fields = {"approve": ["request", "note"], "deny": ["request", "note"], "send": ["agent", "text"],
              "broadcast": ["text"], "task/add": ["title", "to"], "task/release": ["task", "reason"],
              "task/reassign": ["task", "agent"]}
    bad = []
    with serving(session) as served:
        for action, names in fields.items():
            for combo in itertools.product(values, repeat=len(names)):
                answer = served.post(action, dict(zip(names, combo, strict=True)))
                if answer.status_code >= 500 or (answer.status_code == 200 and action in ("approve", "deny")):
                    bad.append((action, combo, answer.status_code, answer.text[:200]))
        for raw in (b'{"text": "\\ud800"}', b'\xff\xfe', b'{"text":"\xed\xa0\x80"}', b'1e999999', b'[' * 10000):
            answer = served.client.post("/api/broadcast", content=raw, headers={
                "origin": served.base, "x-popkit-token": served.token})
            if answer.status_code >= 500:
                bad.append(("raw", raw[:30], answer.status_code, answer.text[:200]))
    assert bad == []


def test_many_pages_opened_and_dropped_leave_no_mailbox_behind(session: Session) -> None:
    join(session, AGENT, "ana")
    with serving(session) as served:
        feed = served.dashboard.feed
        clients = []
        streams = []
        for _ in range(60):
            client = httpx.Client(base_url=served.base, cookies=dict(served.client.cookies), timeout=30)
            stream = client.stream("GET", "/events")
            response = stream.__enter__()
            assert response.status_code == 200
            clients.append(client)
            streams.append(stream)
        until(lambda: len(feed._mailboxes) >= 60, 30, "sixty pages subscribed")
        assert served.post("broadcast", {"text": "with sixty pages open"}).status_code == 200
        for stream, client in zip(streams, clients, strict=True):
            stream.__exit__(None, None, None)
            client.close()
        until(lambda: len(feed._mailboxes) == 0, 30, "every dropped page's mailbox is gone")


def test_stopping_a_second_dashboard_does_not_hide_the_coordinator_s(power_dir: str) -> None:
    address, pid = start_with_dashboard(power_dir)
    second = subprocess.Popen([*CLI, "dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=coordinator_env(power_dir))
    try:
        address_of(power_dir, second.pid)
        second.send_signal(signal.SIGINT)
        second.wait(30)
        assert answers(address["port"]), "the coordinator's dashboard still runs"
        shown = subprocess.run([*CLI, "dashboard", "--url"], capture_output=True, text=True, timeout=60,
                               env=coordinator_env(power_dir))
        assert shown.returncode == 0 and shown.stdout.strip() == address["url"], (shown.stdout, shown.stderr)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)
        subprocess.run([*CLI, "stop"], capture_output=True, timeout=120, env=coordinator_env(power_dir))
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_page_on_a_huge_journal_gets_its_first_status_soon_and_actions_are_not_held_up(session: Session) -> None:
    from dashboard_attack_huge import fill

    fill(session, 200_000)
    end = session.journal.end_position().seq - 1
    with serving(session) as served:
        results: dict[str, Any] = {}

        def act() -> None:
            results["answer"] = served.post("broadcast", {"text": "while the page reads"})

        thread = threading.Thread(target=act)
        thread.start()
        found = served.messages(lambda found: any(name == "gone" for name, _ in found) or any(
            name == "status" and data["drawn_through"] >= end for name, data in found), timeout=120)
        thread.join(60)
        assert not any(name == "gone" for name, _ in found)
        drawn = [data["drawn_through"] for name, data in found if name == "status"]
        assert drawn[0] < end, "the first status came only once the whole journal was read"
        assert results["answer"].status_code == 200, results


# -- replication on, through a real redis-server -----------------------------------------------------------------------

def test_with_replication_the_page_shows_machines_and_its_action_reaches_the_other_machine(tmp_path: Path) -> None:
    from support import RedisServer

    from popkit_power.home import active_session
    from popkit_power.journal.lease import holder

    server = RedisServer(str(tmp_path / "redis")).start()
    homes = [tmp_path / "a", tmp_path / "b"]
    pids: list[int] = []
    pages: list[OpenPage] = []
    try:
        for home in homes:
            home.mkdir()
            (home / "config.json").write_text('{"agent_timeout_seconds": 3600, "heartbeat_seconds": 3600}')
        env = [{**coordinator_env(str(home)), "REDIS_URL": server.url} for home in homes]
        started = subprocess.run([*CLI, "start", "Two machines", "--dashboard"], capture_output=True, text=True,
                                 timeout=120, env=env[0])
        assert started.returncode == 0, started.stderr
        pids.append(int(started.stdout.split("coordinator: pid ", 1)[1].split(",", 1)[0]))
        address = address_of(str(homes[0]), pids[0])
        joined = subprocess.run([*CLI, "join"], capture_output=True, text=True, timeout=120, env=env[1])
        assert joined.returncode == 0, joined.stderr
        session_id = active_session(str(homes[0]))
        assert session_id is not None
        b = Session(str(homes[1]), session_id)
        held_b = holder(b.dir) or {}
        if isinstance(held_b.get("pid"), int):
            pids.append(held_b["pid"])
        until(lambda: any(e["type"] == "coordinator.started" and e.get("origin") == b.origin
                          for e in Session(str(homes[0]), session_id).journal.reader()), 60, "A heard B")
        page = OpenPage(address)
        pages.append(page)
        client = Served(address["url"])
        sent = client.post("broadcast", {"text": "from A's page to everyone"})
        assert sent.status_code == 200, sent.text
        until(lambda: any(e["type"] == "message.broadcast" and e["data"].get("text") == "from A's page to everyone"
                          for e in b.journal.reader()), 60, "B's journal gets the page's broadcast")
        cli_status = orjson.loads(subprocess.run([*CLI, "status", "--json"], capture_output=True, text=True,
                                                 timeout=60, env=env[0]).stdout)
        status = page_status(client, lambda found: b.origin in found["machines"] and found["replication"], 60)
        assert status["mode"] == cli_status["mode"], (status["mode"], cli_status["mode"])
        assert set(status["machines"]) == set(cli_status["machines"]) == {b.origin}
        assert status["replication"].keys() == cli_status["replication"].keys()
    finally:
        for page in pages:
            page.close()
        for home in homes:
            subprocess.run([*CLI, "stop"], capture_output=True, timeout=120,
                           env={**coordinator_env(str(home)), "REDIS_URL": server.url})
        for pid in pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        server.kill()


# -- a full disk -------------------------------------------------------------------------------------------------------

def test_an_action_on_a_full_disk_says_so_and_tears_nothing(power_dir: str, session: Session) -> None:
    """The dashboard's process may write only a few bytes more to any file (RLIMIT_FSIZE: a write past it fails with
    EFBIG, as on a full disk, after writing what fits)."""
    import resource

    from support import segment_path

    join(session, AGENT, "ana")
    size = os.path.getsize(segment_path(session.journal))

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, size + 40))

    process = subprocess.Popen([*CLI, "dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "POPKIT_POWER_HOME": power_dir}, preexec_fn=limited)
    page = None
    try:
        address = address_of(power_dir, process.pid)
        page = OpenPage(address)
        until(lambda: "status" in page.events, 60, "the page's first status")
        headers = {"origin": f"http://127.0.0.1:{address['port']}", "x-popkit-token": address["token"]}
        full = page.client.post("/api/broadcast", json={"text": "this does not fit " * 20}, headers=headers)
        assert full.status_code >= 400 and "File too large" in full.json()["error"], full.text
        assert full.json()["ok"] is False
        damage: list[Any] = []
        events = list(Session(power_dir, session.id).journal.reader(on_damage=damage.append))
        assert damage == [], damage
        assert not any(event["type"] == "message.broadcast" for event in events)
        later = session.publish("insight.shared", {"text": "written by another process"}, sender=AGENT).first_seq
        assert [e["seq"] for e in Session(power_dir, session.id).journal.reader(on_damage=damage.append)][-1] == later
        assert damage == []
        assert process.poll() is None
    finally:
        if page is not None:
            page.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def test_an_action_on_a_full_disk_is_a_server_failure_not_a_bad_request(power_dir: str, session: Session) -> None:
    import resource

    from support import segment_path

    size = os.path.getsize(segment_path(session.journal))
    process = subprocess.Popen([*CLI, "dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "POPKIT_POWER_HOME": power_dir},
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, size + 40)))
    try:
        address = address_of(power_dir, process.pid)
        with contextlib.closing(Served(address["url"])) as client:
            full = client.post("broadcast", {"text": "this does not fit " * 20})
        assert full.status_code >= 500, (full.status_code, full.text)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(30)


def test_ctrl_c_while_a_long_session_is_still_being_read_stops_cleanly(power_dir: str,
                                                                               session: Session) -> None:
    from dashboard_attack_huge import fill

    fill(session, 600_000)  # no snapshot: the feed folds it all first
    process = foreground_dashboard(power_dir)
    page = None
    try:
        address = address_of(power_dir, process.pid)
        page = OpenPage(address)
        until(lambda: "hello" in page.events, 30, "the page's hello")
        assert "status" not in page.events, "the session was read already: the test needs a slower read"
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0  # a deadline against a hang; that the read stops early: test_dashboard.py
        assert page.ended.wait(30)
    finally:
        if page is not None:
            page.close()
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_replay_at_across_rotated_segments_and_snapshots_is_replay_at(power_dir: str) -> None:
    from popkit_power.session import start_session

    os.makedirs(power_dir, exist_ok=True)
    Path(power_dir, "config.json").write_text('{"segment_max_bytes": 4096, "snapshot_every_events": 100}')
    session = start_session(power_dir, "Rotate and snapshot", sender="human")
    join(session, AGENT, "ana")
    join(session, OTHER, "ben")
    for n in range(120):
        task = f"t-{n}"
        session.publish("task.created", {"task": task, "title": f"Task {n} " + "z" * 100}, sender=HUMAN)
        session.publish("task.claimed", {"task": task}, sender=AGENT if n % 2 else OTHER)
        if n % 3 == 0:
            session.publish("task.completed", {"task": task, "result": "ok", "ok": True},
                            sender=AGENT if n % 2 else OTHER)
        if n % 25 == 0:
            session.projection()  # saves a snapshot when the tail is long enough
    assert len(os.listdir(session.journal.directory)) > 10
    end = session.journal.end_position().seq - 1
    with serving(session, replay=True) as served:
        for seq in sorted({1, 2, 99, 100, 101, 150, 201, 255, end // 2, end - 1, end}):
            at = served.client.get(f"/api/at?seq={seq}")
            assert at.status_code == 200, (seq, at.text)
            cli = subprocess.run([*CLI, "replay", "--at", str(seq), "--json", session.id], capture_output=True,
                                 text=True, timeout=60)
            assert cli.returncode == 0, cli.stderr
            expected = orjson.loads(cli.stdout)
            assert at.json()["seq"] == seq
            for field in ("tasks", "finished_tasks", "agents", "task_counts"):
                assert at.json()["status"][field] == expected[field], (seq, field)


def test_aborted_event_streams_leave_no_mailbox_behind(session: Session) -> None:
    import struct

    with serving(session) as served:
        request = (f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
                   f"Cookie: popkit_power_dashboard_{served.port}={served.token}\r\n\r\n").encode()
        for how in ("fin", "rst", "after a few bytes"):
            for _ in range(60):
                conn = socket.create_connection(("127.0.0.1", served.port))
                if how == "rst":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.sendall(request)
                if how == "after a few bytes":
                    conn.recv(10)
                conn.close()
            until(lambda: not served.dashboard.feed._mailboxes, 30, f"no mailbox left ({how})")


def page_status(served: Served, condition: Any, seconds: float) -> dict[str, Any]:
    """The first status on a new event stream for which `condition(status)` holds, within `seconds`."""
    found = served.messages(lambda found: found[-1][0] == "status" and bool(condition(found[-1][1])),
                            timeout=seconds)
    return last(found, "status")


def test_the_page_shows_replication_failing_while_redis_is_down_and_healthy_again_after(tmp_path: Path) -> None:
    from support import RedisServer

    server = RedisServer(str(tmp_path / "redis")).start()
    home = tmp_path / "a"
    home.mkdir()
    (home / "config.json").write_text('{"agent_timeout_seconds": 3600, "heartbeat_seconds": 3600}')
    env = {**coordinator_env(str(home)), "REDIS_URL": server.url}
    pid = None
    try:
        started = subprocess.run([*CLI, "start", "Replicated", "--dashboard"], capture_output=True, text=True,
                                 timeout=120, env=env)
        assert started.returncode == 0, started.stderr
        pid = int(started.stdout.split("coordinator: pid ", 1)[1].split(",", 1)[0])
        address = address_of(str(home), pid)
        from popkit_power.home import active_session

        session = Session(str(home), active_session(str(home)))
        with contextlib.closing(Served(address["url"])) as client:
            healthy = page_status(client, lambda status: status["mode"]["running"] and status["mode"]["ok"], 60)
            assert healthy["mode"]["mode"] == "redis"
            server.kill()
            session.publish("insight.shared", {"text": "while the server is down"}, sender=HUMAN)
            failing = page_status(client, lambda status: status["mode"]["ok"] is False, 90)
            assert "failing" in failing["mode"]["reason"] or "file only" in failing["mode"]["reason"]
            server.start()
            page_status(client, lambda status: status["mode"]["running"] and status["mode"]["ok"], 120)
    finally:
        subprocess.run([*CLI, "stop"], capture_output=True, timeout=120, env=env)
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        server.kill()


def test_a_keep_alive_request_is_answered_at_once(session: Session) -> None:
    import socket

    from dashboard_attack_latency import keep_alive_ms

    with serving(session) as served:
        assert served.dashboard is not None
        listening = served.dashboard._served.socket if served.dashboard._served else None
        assert listening is not None
        # asyncio turns Nagle off on the connections of a socket made with IPPROTO_TCP only (base_events._set_nodelay)
        assert listening.proto == socket.IPPROTO_TCP
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        keep_alive_ms(served.port, served.token, rounds=10)  # ten answers of 200, on one kept-alive connection


def test_refused_requests_cannot_write_much_into_the_log(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.WARNING, logger="popkit_power.dashboard.app")
    with serving(session) as served, httpx.Client(base_url=served.base) as stranger:
        for _ in range(20):
            assert stranger.get("/" + "a" * 8000).status_code == 403
    refused = [record.getMessage() for record in caplog.records if record.getMessage().startswith("refused")]
    assert len(refused) == 20
    assert sum(map(len, refused)) < 20 * 1000, f"{sum(map(len, refused))} characters logged for 20 refusals"


def test_replay_at_an_early_seq_shows_the_hand_overs_made_by_then(session: Session) -> None:
    from popkit_power.keys import COORDINATOR

    join(session, AGENT, "ana")
    join(session, OTHER, "ben")
    seqs = []
    for n in range(60):
        task = f"t-{n}"
        session.publish("task.created", {"task": task, "title": f"Task {n}"}, sender=HUMAN)
        session.publish("task.claimed", {"task": task}, sender=AGENT)
        session.publish("task.orphaned", {"task": task, "agent": AGENT}, sender=COORDINATOR)
        seqs.append(session.publish("task.claimed", {"task": task}, sender=OTHER).first_seq)
    with serving(session, replay=True) as served:
        at_end = served.client.get(f"/api/at?seq={seqs[-1]}").json()["status"]["handovers"]
        assert len(at_end) == 50 and at_end[-1]["task"] == "t-59"
        early = served.client.get(f"/api/at?seq={seqs[4]}").json()["status"]["handovers"]
        assert [handover["task"] for handover in early] == [f"t-{n}" for n in range(5)], early


def start_on_a_busy_port(power_dir: str) -> subprocess.CompletedProcess[str]:
    os.makedirs(power_dir, exist_ok=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        return subprocess.run([*CLI, "start", "Busy port", "--dashboard", "--dashboard-port",
                               str(busy.getsockname()[1])], capture_output=True, text=True, timeout=120,
                              env=coordinator_env(power_dir))


def test_a_busy_dashboard_port_does_not_leave_a_session_without_its_coordinator(power_dir: str) -> None:
    from popkit_power.coordinator.daemon import running
    from popkit_power.home import active_session

    started = start_on_a_busy_port(power_dir)
    try:
        active = active_session(power_dir)
        coordinated = active is not None and running(Session(power_dir, active, read_only=True))
        assert (started.returncode != 0 and active is None) or coordinated, (started.returncode, active,
                                                                             started.stderr[-300:])
    finally:
        subprocess.run([*CLI, "stop"], capture_output=True, timeout=120, env=coordinator_env(power_dir))


def test_the_busy_port_error_of_start_names_start_s_option(power_dir: str) -> None:
    started = start_on_a_busy_port(power_dir)
    try:
        assert started.returncode != 0 and "Address already in use" in started.stderr
        assert "--dashboard-port" in started.stderr, started.stderr[-300:]
    finally:
        subprocess.run([*CLI, "stop"], capture_output=True, timeout=120, env=coordinator_env(power_dir))


def test_after_a_switch_the_old_session_s_page_writes_nothing_into_it(power_dir: str, session: Session) -> None:
    join(session, AGENT, "ana")
    with serving(session) as served:
        switched = subprocess.run([*CLI, "start", "--switch", "Something else"], capture_output=True, text=True,
                                  timeout=120)
        assert switched.returncode == 0, switched.stderr
        answer = served.post("task/add", {"title": "for the old session"})
        types = [event["type"] for event in session.journal.reader()]
        closed_at = types.index("session.closed")
        assert types[closed_at + 1:] == [], (answer.status_code, answer.text, types[closed_at + 1:])


def test_an_open_page_is_told_the_session_was_closed(power_dir: str, session: Session) -> None:
    with serving(session) as served:
        served.messages(lambda found: any(name == "status" for name, _ in found))
        stop_session(power_dir, sender=HUMAN)
        found = served.messages(lambda found: any(name == "status" and data["closed"] for name, data in found))
        status = last(found, "status")
        assert status["active"] is False and status["mode"]["running"] is False
