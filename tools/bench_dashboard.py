"""Event appended -> drawn on the live dashboard in a browser (budget: p50 <= 250 ms), beside the journal's own floor.

    .venv/bin/python tools/bench_dashboard.py [--events 100000] [--appends 200] [--load 200] [--quick] [--json]

A session of `--events` events on 20 agents is made in a temporary power directory; `popkit-power dashboard` serves it
as a process of its own, and Debian's headless Chromium (selenium) opens its page. Then `--appends` events are
appended one at a time, 50-150 ms apart, each from this process as an agent's tool call; the time each append
returned is taken, and the page's own record of what it drew (`window.popkitDrawn`: the seq of each status it drew
and Date.now() then) gives when each was on screen. In the same run and for the same appends, a follower in a thread
of this process (follow.records: the inotify wake and the read that the dashboard's feed does too) takes the time it
read each: the floor under any live view. With `--load N`, a second process appends N tool calls a second
throughout, as busy agents would.

Both clocks are this machine's wall clock (time.time() and Date.now()), so the latencies are comparable; their
resolution is 1 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import machine, median, percentile, table, tool_event

from popkit_power.follow import records
from popkit_power.session import Session, start_session
from popkit_power.timestamps import utc_text

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
AGENTS = 20


def make_session(power_dir: str, events: int) -> tuple[Session, list[str]]:
    rng = random.Random(3)
    session = start_session(power_dir, "Dashboard latency", sender="human")
    keys = [f"{rng.getrandbits(64):016x}-{n:02d}:main" for n in range(AGENTS)]
    session.append_events([session.event("agent.joined", {"name": f"worker-{n}", "cwd": "/srv/p"}, sender=key)
                           for n, key in enumerate(keys)])
    start = time.time() - events * 0.05
    for first in range(0, events, 5000):  # in this session's name and origin, at the times given
        session.append_events([session.event("agent.tool", event["data"], sender=event["from"]) | {"ts": event["ts"]}
                               for event in (tool_event(rng, keys[n % AGENTS], utc_text(start + n * 0.05))
                                             for n in range(first, min(events, first + 5000)))])
    return session, keys


def load_process(power_dir: str, session_id: str, rate: float, stop_file: str) -> None:
    """Append `rate` tool calls a second until `stop_file` exists (run as `--load-worker`)."""
    session = Session(power_dir, session_id)
    rng = random.Random(9)
    interval = 1.0 / rate
    next_at = time.monotonic()
    while not os.path.exists(stop_file):
        event = tool_event(rng, f"load{rng.randrange(4)}:main", utc_text(time.time()))
        session.publish("agent.tool", event["data"], sender=event["from"])
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))


def measure(args: argparse.Namespace, power_dir: str) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    session, keys = make_session(power_dir, args.events)
    env = {**os.environ, "POPKIT_POWER_HOME": power_dir}
    server = subprocess.Popen([sys.executable, "-m", "popkit_power.cli", "dashboard"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    stop_file = os.path.join(power_dir, "stop-load")
    loader = None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1600,1000"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    seen: dict[int, float] = {}
    follower_stop = threading.Event()
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split("open ", 1)[1].strip()
        opened = time.time()
        browser.get(url)
        end = session.journal.end_position().seq - 1
        WebDriverWait(browser, 300, poll_frequency=0.05).until(
            lambda driver: int(driver.execute_script("return document.body.dataset.drawnSeq || '0'")) >= end)
        first_draw = time.time() - opened
        if args.load:
            loader = subprocess.Popen([sys.executable, __file__, "--load-worker", power_dir, session.id,
                                       str(args.load), stop_file], env=env)

        def follow() -> None:
            reader = session.journal.reader(session.journal.end_position())
            for event in records(reader, session.journal.directory, timeout=None, done=follower_stop.is_set):
                seen.setdefault(event["seq"], time.time())
                if follower_stop.is_set():
                    return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        time.sleep(0.5)  # the follower's watch is in place
        rng = random.Random(5)
        appended: dict[int, float] = {}
        for n in range(args.appends):
            event = tool_event(rng, keys[n % AGENTS], utc_text(time.time()))
            done = session.publish("agent.tool", event["data"], sender=event["from"])
            appended[done.first_seq] = time.time()
            time.sleep(rng.uniform(0.05, 0.15))
        last = max(appended)
        WebDriverWait(browser, 60, poll_frequency=0.05).until(
            lambda driver: int(driver.execute_script("return document.body.dataset.drawnSeq || '0'")) >= last)
        drawn = browser.execute_script("return window.popkitDrawn")
        follower_stop.set()
        session.publish("agent.heartbeat", {"tool_calls": 0}, sender=keys[0])  # wakes the follower to see its stop
        thread.join(timeout=10)
    finally:
        if loader is not None:
            Path(stop_file).touch()
            loader.wait(timeout=30)
        browser.quit()
        server.terminate()
        server.wait(timeout=30)
    page, floor = [], []
    for seq, at in appended.items():
        shown = min((entry["at"] / 1000 for entry in drawn if entry["seq"] >= seq), default=None)
        if shown is not None:
            page.append((shown - at) * 1000)
        if seq in seen:
            floor.append((seen[seq] - at) * 1000)
    return {"events": args.events, "appends": len(appended), "load_per_second": args.load,
            "first_draw_seconds": round(first_draw, 2),
            "page_ms": {"p50": round(percentile(page, 0.5), 1), "p99": round(percentile(page, 0.99), 1),
                        "median": round(median(page), 1), "n": len(page)},
            "follower_ms": {"p50": round(percentile(floor, 0.5), 2), "p99": round(percentile(floor, 0.99), 2),
                            "n": len(floor)}}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--load-worker":
        load_process(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the session before measuring")
    parser.add_argument("--appends", type=int, default=200, help="events appended one by one and timed")
    parser.add_argument("--load", type=float, default=0.0, help="tool calls a second appended by another process")
    parser.add_argument("--quick", action="store_true", help="10,000 events, 40 appends")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.events, args.appends = 10_000, 40
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as directory:
        result = measure(args, os.path.join(directory, "power"))
    result["machine"] = machine()
    if args.json:
        print(orjson.dumps(result).decode())
        return 0
    page, floor = result["page_ms"], result["follower_ms"]
    print(f"session: {result['events']:,} events on {AGENTS} agents; {result['appends']} appends timed; "
          f"load {result['load_per_second']:g} tool calls/s; first draw {result['first_draw_seconds']} s")
    print(table([["appended -> drawn in Chromium", f"{page['p50']} ms", f"{page['p99']} ms", "p50 <= 250 ms"],
                 ["appended -> read by a follower (floor)", f"{floor['p50']} ms", f"{floor['p99']} ms", "-"]],
                ["case", "p50", "p99", "budget"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
