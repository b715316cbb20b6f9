"""The dashboard with replication on, through a real Redis: two machines of one session, each with its coordinator
(which runs its replicator, REDIS_URL being set), machine A's serving the dashboard (`python -m
popkit_power.dashboard`, what `start --dashboard` runs). The page on A
shows machine B's coordinator and the replicator's lag, and what the human does on A's page reaches B's journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from dashboard_support import Served, last
from selenium.webdriver.support.ui import WebDriverWait
from support import two_machines_of_one_session, until

from popkit_power.dashboard.access import read_address

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
WAIT = 60  # seconds a condition may take on a busy machine (a deadline, never a measured speed)


@pytest.mark.slow
def test_the_page_shows_the_other_machine_and_the_lag_and_its_actions_are_replicated(tmp_path: Path,
                                                                                      redis_url: str) -> None:
    homes, a, b = two_machines_of_one_session(tmp_path, "Two machines, one page", "{}")
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("CLAUDE")},
           "REDIS_URL": redis_url}
    coordinators = [subprocess.Popen([sys.executable, "-m", "popkit_power.dashboard" if home == homes[0]
                                      else "popkit_power.coordinator", "--home", home],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for home in homes]
    served: Served | None = None
    try:
        found = until(lambda: read_address(homes[0]), WAIT, "machine A's coordinator serves its dashboard")
        served = Served(found["url"])
        b.publish("agent.joined", {"name": "bob", "cwd": "/srv/b"}, sender="bbbb0000:main")

        def both_seen(messages: list[tuple[str, Any]]) -> bool:
            status = next((data for name, data in reversed(messages) if name == "status"), None)
            return bool(status and status["machines"] and status["replication"]
                        and "bbbb0000:main" in status["agents"])

        status = last(served.messages(both_seen, timeout=WAIT), "status")
        (origin, machine), = status["machines"].items()
        assert origin == b.origin and machine["health"] == "alive"
        assert status["replication"]["running"] is True and isinstance(status["replication"]["behind"], int)
        assert status["mode"]["mode"] == "redis"
        with chromium(1600, 1000) as browser:  # and on the page itself: machine B, and the replication's lag
            browser.get(served.url)
            WebDriverWait(browser, WAIT, poll_frequency=0.05).until(lambda driver: b.origin in driver.execute_script(
                "const list = document.getElementById('machine-list'); return list ? list.textContent : ''"))
            machines = browser.execute_script("return document.getElementById('machines').textContent")
            assert "replication" in machines and "alive" in machines, machines
            ARTIFACTS.mkdir(exist_ok=True)
            assert browser.save_screenshot(str(ARTIFACTS / "dashboard-two-machines.png"))
        sent = served.post("broadcast", {"text": "from A's page"})
        assert sent.json()["ok"] is True, sent.text
        until(lambda: any(event.get("type") == "message.broadcast" and event["data"].get("text") == "from A's page"
                          for event in b.journal.reader()), WAIT, "the page's broadcast reaches machine B")
        heard = next(event for event in b.journal.reader() if event.get("type") == "message.broadcast")
        assert heard["data"]["evidence"]["via"] == "dashboard" and heard["origin"] == a.origin
    finally:
        if served is not None:
            served.client.close()
        for process in coordinators:
            process.send_signal(signal.SIGTERM)
        for process in coordinators:
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
    assert read_address(homes[0]) is None
