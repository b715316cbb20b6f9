"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven by selenium): the page
loads with no console error and asks nothing of another host; an event a real hook process appends is drawn within a
second; an approval given from the page ends a waiting `ask --wait` as granted, once, and a second click shows the
refusal; and twenty agents, each a process feeding the real hook, with the coordinator serving the page
(`start --dashboard`'s daemon), one of them killed: the page shows the loss and the hand-over. Screenshots go to
tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest
from browser import chromium
from dashboard_support import serving
from support import until

from popkit_power.dashboard.access import read_address
from popkit_power.demo.agent import hook_program
from popkit_power.keys import HUMAN
from popkit_power.session import Session

ARTIFACTS = Path(__file__).parent / "artifacts"
AGENT_SCRIPT = Path(__file__).parent / "dashboard_agent.py"
#: The console's messages a refused action leaves: Chrome logs every 4xx answer to a fetch, which no page can avoid.
REFUSED_FETCH = "Failed to load resource: the server responded with a status of 4"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, keeping the console's messages and the network's requests (the performance log)."""
    with chromium(1600, 1000, network_log=True) as driver:
        yield driver


def wait(browser: Any, condition: Any, seconds: float = 30) -> Any:
    """`condition` once it is true, looked at every 20 ms; an element it holds may be redrawn meanwhile (the page
    draws a section anew when its data changes): that look counts as false."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.02,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(condition)


def js(browser: Any, script: str, *args: Any) -> Any:
    return browser.execute_script(script, *args)


def open_dashboard(browser: Any, url: str) -> None:
    """Open the URL the dashboard printed, and wait until the page has drawn a status."""
    browser.get("about:blank")
    browser.get_log("browser")  # what an earlier page said is not this one's
    browser.get_log("performance")
    browser.get(url)
    wait(browser, lambda driver: js(driver, "return document.body.dataset.drawnSeq"))


def console_errors(browser: Any, *, allowed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [entry for entry in browser.get_log("browser")
            if entry["level"] in ("SEVERE", "WARNING") and not any(text in entry["message"] for text in allowed)]


def requested_urls(browser: Any) -> list[str]:
    """Every URL the page asked for since the log was last read (Chrome's Network.requestWillBeSent)."""
    urls = []
    for entry in browser.get_log("performance"):
        message = orjson.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    height = js(browser, "return document.documentElement.scrollHeight")
    browser.set_window_size(1600, min(max(height, 1000) + 100, 4000))
    path = ARTIFACTS / f"{name}.png"
    assert browser.save_screenshot(str(path))
    browser.set_window_size(1600, 1000)
    return path


def drawn_seq(browser: Any) -> int:
    return int(js(browser, "return document.body.dataset.drawnSeq || '0'"))


def run_hook(power_dir: str, project: Path, claude_session: str, event: str, **fields: Any) -> None:
    """One call of the real hook, as Claude Code makes it."""
    payload = {"session_id": claude_session, "transcript_path": str(project / f"{claude_session}.jsonl"),
               "cwd": str(project), "permission_mode": "default", "hook_event_name": event, **fields}
    env = {**os.environ, "POPKIT_POWER_HOME": power_dir, "CLAUDE_PID": str(os.getpid()),
           "CLAUDE_CODE_SESSION_ID": claude_session, "CLAUDECODE": "1"}
    subprocess.run(hook_program(), input=orjson.dumps(payload), env=env, cwd=project, check=True,
                   capture_output=True, timeout=60)


def test_the_page_loads_clean_asks_only_its_own_server_and_draws_a_hook_s_event_within_a_second(
        browser: Any, session: Session, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    run_hook(session.power_dir, project, "aaaa1111-0000-4000-8000-000000000001", "SessionStart", source="startup")
    with serving(session, doctor=True, project_dir=str(project)) as served:
        open_dashboard(browser, served.url)
        assert console_errors(browser) == []
        # doctor's problems: no hook is registered in this project, and doctor says so on the page
        wait(browser, lambda driver: "hook" in text_of(driver, "#problem-list li[data-level]"), seconds=60)
        assert browser.current_url == f"{served.base}/"  # the token left the address bar
        own = {f"127.0.0.1:{served.port}"}
        hosts = {urlparse(url).netloc for url in requested_urls(browser) if not url.startswith("data:")}
        assert hosts == own, hosts
        assert js(browser, "return document.querySelector('[data-agent]') !== null")
        before = drawn_seq(browser)
        run_hook(session.power_dir, project, "aaaa1111-0000-4000-8000-000000000001", "PostToolUse",
                 tool_name="Edit", tool_input={"file_path": str(project / "parser.py")},
                 tool_response={"success": True}, tool_use_id="toolu_1")
        appended = time.monotonic()
        wait(browser, lambda driver: drawn_seq(driver) > before, seconds=1.0)
        assert time.monotonic() - appended < 1.0
        files = js(browser, "return document.querySelector('[data-agent] [data-field=files]').textContent")
        assert "parser.py" in files
        screenshot(browser, "dashboard-live")
        assert console_errors(browser) == []
        later = {urlparse(url).netloc for url in requested_urls(browser) if not url.startswith("data:")}
        assert later <= own, later


def test_a_request_without_the_token_is_refused_in_the_browser(browser: Any, session: Session) -> None:
    with serving(session) as served:
        browser.get("about:blank")
        browser.delete_all_cookies()
        browser.get(f"{served.base}/")
        assert "403 forbidden" in browser.find_element("tag name", "body").text
        browser.get(f"{served.base}/?token=not-the-token")
        assert "no valid token" in browser.find_element("tag name", "body").text


def test_approving_from_the_page_ends_a_waiting_ask_granted_once_and_a_second_click_is_refused(
        browser: Any, session: Session) -> None:
    session.publish("agent.joined", {"name": "ana", "cwd": "/srv/p"}, sender="s1:main")
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    asking = subprocess.Popen([sys.executable, "-m", "popkit_power.cli", "ask", "Run the migration?", "--wait",
                               "--timeout", "60", "--as", "s1:main"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        with serving(session) as served:
            open_dashboard(browser, served.url)
            request = wait(browser, lambda driver: js(
                driver, "const card = document.querySelector('[data-request]'); return card && card.dataset.request"))
            assert "Run the migration?" in text_of(browser, f'[data-request="{request}"]')
            button = f'[data-request="{request}"] button[data-action=approve]'
            browser.find_element("css selector", button).click()
            out, err = asking.communicate(timeout=60)
            assert asking.returncode == 0, err
            assert "GRANTED by the human" in out
            # the card stays a while after its own answer, so a second click reaches the server
            browser.find_element("css selector", button).click()
            wait(browser, lambda driver: "already granted" in driver.find_element(
                "css selector", f'[data-request="{request}"] .outcome').text)
            notice = browser.find_element("id", "notice")
            assert "already granted" in notice.text and "error" in notice.get_attribute("class")
            screenshot(browser, "dashboard-approval-refused")
            assert console_errors(browser, allowed=(REFUSED_FETCH,)) == []
    finally:
        asking.kill()
    answers = [event for event in session.journal.reader()
               if event.get("type") in ("approval.granted", "approval.denied")]
    assert len(answers) == 1 and answers[0]["data"]["request"] == request
    assert answers[0]["from"] == HUMAN and answers[0]["data"]["evidence"]["via"] == "dashboard"


def test_a_replay_moves_with_its_slider(browser: Any, session: Session) -> None:
    session.publish("agent.joined", {"name": "ana", "cwd": "/srv/p"}, sender="s1:main")
    session.publish("task.created", {"task": "t-a", "title": "Parse"}, sender=HUMAN)
    claimed = session.publish("task.claimed", {"task": "t-a"}, sender="s1:main").first_seq
    session.publish("task.completed", {"task": "t-a", "result": "done", "ok": True}, sender="s1:main")
    with serving(session, replay=True) as served:
        open_dashboard(browser, served.url)
        assert js(browser, "return document.querySelector('[data-task=t-a]').dataset.status") == "completed"
        assert js(browser, "return document.getElementById('act') === null || "
                           "document.getElementById('act').offsetParent === null")  # no actions in a replay
        slider = browser.find_element("id", "slider")
        js(browser, "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
           slider, claimed)
        wait(browser, lambda driver: driver.find_element("css selector", "[data-task=t-a]")
             .get_attribute("data-status") == "claimed")
        assert f"seq {claimed}" in browser.find_element("id", "at").text
        screenshot(browser, "dashboard-replay")
        assert console_errors(browser) == []


def test_twenty_agents_and_a_killed_one_the_page_shows_the_loss_and_the_hand_over(
        browser: Any, power_dir: str, tmp_path: Path) -> None:
    env = {**os.environ, "POPKIT_POWER_HOME": power_dir}
    env.pop("POPKIT_POWER_NO_COORDINATOR", None)
    cli = [sys.executable, "-m", "popkit_power.cli"]
    started = subprocess.run([*cli, "start", "--dashboard", "Twenty agents on one objective"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    url = next(line for line in started.stdout.splitlines() if line.startswith("dashboard: open ")).split()[2]
    session = Session.active(power_dir)
    project = tmp_path / "project"
    project.mkdir()
    tasks = [f"t-{n:02d}" for n in range(20)]
    for n, task in enumerate(tasks):
        session.publish("task.created", {"task": task, "title": f"Module {n}"}, sender=HUMAN)
    spare = "t-spare"
    session.publish("task.created", {"task": spare, "title": "The killed agent's work"}, sender=HUMAN)
    agents: list[subprocess.Popen[bytes]] = []
    try:
        deadline = str(time.time() + 240)
        for n in range(20):
            task = spare if n == 7 else tasks[n]
            agents.append(subprocess.Popen([sys.executable, str(AGENT_SCRIPT), str(n), str(project), deadline, task],
                                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        open_dashboard(browser, url)
        wait(browser, lambda driver: len(driver.find_elements("css selector", "[data-agent][data-state=active]"))
             == 20, seconds=120)
        wait(browser, lambda driver: driver.find_element("css selector", f"[data-task={spare}]")
             .get_attribute("data-status") == "claimed", seconds=60)
        shown = js(browser, "return [...document.querySelectorAll('[data-agent] [data-field=name]')]"
                            ".map(node => node.textContent)")
        assert len(set(shown)) == 20, shown  # each agent has its own name, as status gives it
        screenshot(browser, "dashboard-twenty-agents")
        victim = agents[7]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        key = f"dash{7:04d}-0000-4000-8000-{7:012d}:main"
        wait(browser, lambda driver: driver.find_element("css selector", f'[data-agent="{key}"]')
             .get_attribute("data-state") == "lost", seconds=60)
        wait(browser, lambda driver: _handed_over(driver, spare), seconds=60)
        assert "handed over from" in text_of(browser, f"[data-task={spare}] .handover")
        assert browser.find_elements("css selector", f'[data-handover="{spare}"]')  # drawn on the lanes too
        assert "is gone" in text_of(browser, f'[data-agent="{key}"]')  # why it was lost: its process is gone
        screenshot(browser, "dashboard-loss-and-hand-over")
        assert console_errors(browser) == []
    finally:
        for agent in agents:
            agent.kill()
        stopped = subprocess.run([*cli, "stop"], env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    until(lambda: read_address(power_dir) is None, 30, "the coordinator takes its dashboard down with it")


def _handed_over(driver: Any, task: str) -> bool:
    return bool(js(driver, "const card = document.querySelector(`[data-task='${arguments[0]}']`); "
                           "return card !== null && card.dataset.status === 'claimed' "
                           "&& card.querySelector('.handover') !== null", task))


def text_of(browser: Any, selector: str) -> str:
    """The text of the first element `selector` finds, read at once (the page may redraw it at any moment)."""
    return str(js(browser, "const node = document.querySelector(arguments[0]); return node ? node.textContent : ''",
                  selector))


def test_twenty_agents_a_hundred_thousand_events_and_an_hour_more_in_flat_memory(
        browser: Any, power_dir: str) -> None:
    """The page opened on a long session is drawn, and an hour of events more (at ten a second, in the session's own
    time) leaves its heap and its document the size they were: the lanes aggregate into bounded bins."""
    from test_timeline import _ts, generated_session

    session = generated_session(power_dir, agents=20, events=100_000)
    with serving(session) as served:
        open_dashboard(browser, served.url)
        end = session.journal.end_position().seq - 1
        wait(browser, lambda driver: drawn_seq(driver) >= end, seconds=120)
        assert console_errors(browser) == []
        screenshot(browser, "dashboard-100k-events")
        before = page_size(browser)
        keys = sorted({event["from"] for event in session.journal.reader()
                       if event.get("type") == "agent.joined"})
        start = time.time() + 5200  # after the generated session's last record
        for batch in range(36):
            events = []
            for n in range(1000):
                second = batch * 100 + n * 0.1
                event = session.event("agent.tool", {"tool": "Edit", "ok": True, "file": f"/srv/src/h{n % 90}.py"},
                                      sender=keys[n % len(keys)])
                event["ts"] = _ts(start + second)
                events.append(event)
            session.append_events(events)
        end = session.journal.end_position().seq - 1
        wait(browser, lambda driver: drawn_seq(driver) >= end, seconds=120)
        after = page_size(browser)
        print(f"page before the hour: {before}; after: {after}")
        assert after["heap"] < before["heap"] * 1.3 + 2_000_000, (before, after)
        assert after["nodes"] < before["nodes"] * 1.3 + 500, (before, after)
        assert console_errors(browser) == []


def page_size(browser: Any) -> dict[str, int]:
    """The page's JavaScript heap after a full garbage collection, and its number of DOM nodes."""
    browser.execute_cdp_cmd("HeapProfiler.enable", {})
    browser.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    heap = browser.execute_cdp_cmd("Runtime.getHeapUsage", {})
    nodes = js(browser, "return document.getElementsByTagName('*').length")
    return {"heap": int(heap["usedSize"]), "nodes": int(nodes)}


def test_a_dashboard_started_for_the_active_session_follows_to_the_next_one(browser: Any, power_dir: str) -> None:
    """`popkit-power dashboard` with no SESSION: `stop`, then `start` of another session, and the open page shows
    the new session by itself."""
    env = {**os.environ, "POPKIT_POWER_HOME": power_dir, "POPKIT_POWER_NO_COORDINATOR": "1"}
    cli = [sys.executable, "-m", "popkit_power.cli"]
    subprocess.run([*cli, "start", "The first objective"], env=env, check=True, capture_output=True, timeout=60)
    server = subprocess.Popen([*cli, "dashboard"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split("open ", 1)[1].strip()
        open_dashboard(browser, url)
        assert text_of(browser, "#objective") == "The first objective"
        subprocess.run([*cli, "stop"], env=env, check=True, capture_output=True, timeout=60)
        subprocess.run([*cli, "start", "The second objective"], env=env, check=True, capture_output=True, timeout=60)
        wait(browser, lambda driver: text_of(driver, "#objective") == "The second objective", seconds=30)
        assert browser.current_url == url.split("?")[0]  # the same dashboard, its cookie still good
        assert console_errors(browser) == []
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert read_address(power_dir) is None
