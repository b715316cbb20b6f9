"""`popkit-power timeline --html FILE`: the data (lanes, kinds, bounded marks), the page (self-contained, hostile text
kept as text), and the page in a real headless Chromium: it loads with no console error and no request, draws a lane
per agent, shows a tooltip on hover; screenshots are saved under pytest's tmp dir and copied to tests/artifacts/.

Selenium with Debian's chromium-driver drives the browser: it is a plain Python package that talks to the driver that
Debian builds for that same Chromium, so nothing is downloaded at run time (Playwright's Python package brings a Node
driver and expects its own browser builds, and playwright-core would need Node in the test run).
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import recorded_sessions
from browser import chromium
from click.testing import CliRunner
from recorded_sessions import HOSTILE_TEXT, MALLORY

from popkit_power.cli import main
from popkit_power.replay.story import Book
from popkit_power.replay.timeline import COLUMNS, KINDS, MAX_MARKS, SAMPLE_CHARS, Bins, build_timeline, placement
from popkit_power.replay.timeline_page import render
from popkit_power.session import Session, start_session

#: Every session in journal/sessions/, as the directory has them (each made by tests/recorded_sessions.py).
NAMES = sorted(path.name for path in recorded_sessions.ROOT.iterdir() if path.is_dir())
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
#: What a page of the generated session may weigh: MAX_MARKS marks with their samples, and the fixed page around.
PAGE_BOUND = MAX_MARKS * 700 + 100_000


@pytest.fixture
def home(tmp_path: Path) -> Path:
    power = tmp_path / "power"
    shutil.copytree(recorded_sessions.ROOT, power / "sessions",
                    ignore=shutil.ignore_patterns("journal.lock", "snapshots", "agents", "*.torn-*"))
    return power


def agents_of(model: dict[str, Any]) -> list[dict[str, Any]]:
    return [lane for lane in model["lanes"] if lane["role"] == "agent"]


# -- the data and the page ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_every_recorded_session_has_its_lanes_and_every_record_drawn(home: Path, name: str) -> None:
    """A lane per agent (and one each for the human and the coordinator), human and coordinator first; every valid
    record is counted in exactly one kind and one mark; damage is counted, not drawn."""
    session = Session(str(home), name, read_only=True)
    model = build_timeline(session)
    state, _position = session.projection(save_snapshot=False)
    assert {lane["key"] for lane in agents_of(model)} == set(state["agents"])
    assert [lane["role"] for lane in model["lanes"]][:2] == ["human", "coordinator"]
    drawn = sum(kind["count"] for kind in model["kinds"])
    assert drawn == sum(mark[3] for mark in model["marks"]) == model["records"] - model["undrawn"]
    assert model["damaged"] == (1 if name == "corrupt-line-and-torn-tail" else 0)
    page = render(model)
    before, _data, after = _split(page)
    markup = before + after
    assert markup.count("<script") == 1 and "src=" not in markup and "https:" not in markup
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def _split(page: str) -> tuple[str, str, str]:
    """The page before its data block, the data (JSON), and the page after it."""
    opening = '<script id="timeline-data" type="application/json">'
    before, rest = page.split(opening, 1)
    data, after = rest.split("</script>", 1)
    return before, data, after


def test_marks_go_on_the_lane_of_the_agent_they_concern(home: Path) -> None:
    """every-event-type: the loss and the orphaned task on the lost agent's lane, the denial (with no evidence, so
    doubtful) on its asker's, the assignment on the assignee's; every kind of the legend is there at least once."""
    session = Session(str(home), "every-event-type", read_only=True)
    model = build_timeline(session)
    lane_of = {lane["key"]: n for n, lane in enumerate(model["lanes"])}
    kinds = [kind for kind, _label in KINDS]
    marks = {(kinds[mark[1]], model["samples"][mark[6]].get("type")): mark[0] for mark in model["marks"]}
    assert marks[("lost", "agent.lost")] == marks[("orphaned", "task.orphaned")] == lane_of[MALLORY]
    assert marks[("doubtful", "approval.denied")] == lane_of[MALLORY]  # no evidence recorded: doubtful
    assert marks[("answered", "approval.granted")] == lane_of[recorded_sessions.CAROL]
    assert marks[("claimed", "task.assigned")] == lane_of[recorded_sessions.CAROL]
    assert all(kind["count"] for kind in model["kinds"]), model["kinds"]
    assert {lane["state"] for lane in agents_of(model)} == {"left", "lost"}


def test_hostile_text_stays_inside_the_data_as_text(home: Path) -> None:
    """No `</script>`, `<img` or `<!--` an agent sent reaches the page as markup: inside the JSON they are escaped,
    and the page's own markup is the only markup."""
    page = render(build_timeline(Session(str(home), "every-event-type", read_only=True)))
    assert "<img" not in page and "<!--" not in page and page.count("</script>") == 2
    _before, data, _after = _split(page)
    model = orjson.loads(data)
    texts = [str(sample.get("data", {}).get("text")) for sample in model["samples"]]
    assert HOSTILE_TEXT in texts and "\\u003c/script\\u003e" in data


def test_bins_double_and_keep_counts_and_the_first_sample() -> None:
    bins = Bins()
    for n in range(5000):
        bins.add(n % 3, n % 2, 1000.0 + n * 0.7, n + 1, {"seq": n + 1, "data": {"text": "x" * 500}})
    assert sum(cell[0] for cell in bins.cells.values()) == 5000
    assert max(column for _lane, _kind, column in bins.cells) < COLUMNS
    first = bins.cells[(0, 0, 0)]
    assert first[5]["seq"] == 1 and len(first[5]["data"]["text"]) == SAMPLE_CHARS
    before = len(bins.cells)
    bins.coarsen()
    assert len(bins.cells) <= (before + 5) // 2 + 6 and sum(cell[0] for cell in bins.cells.values()) == 5000
    assert bins.cells[(0, 0, 0)][5]["seq"] == 1


def test_placement_of_a_record_without_type_or_sender() -> None:
    assert placement({"type": ["x"], "from": 7}, Book()) == ("other", 7)


def generated_session(power_dir: str, agents: int = 20, events: int = 100_000) -> Session:
    """A session of `agents` agents and `events` events: mostly tool calls and heartbeats, some tasks, insights,
    messages and approvals, a few agents lost; 50 ms apart, appended in batches."""
    rng = random.Random(7)
    session = start_session(power_dir, "Twenty agents, a hundred thousand events", sender="human")
    keys = [f"{rng.getrandbits(64):016x}-{n:02d}:main" for n in range(agents)]
    batch = [session.event("agent.joined", {"name": f"worker-{n:02d}", "cwd": f"/srv/wt-{n:02d}", "host": "box"},
                           sender=key) for n, key in enumerate(keys)]
    requests: list[str] = []
    start = time.time() + 1  # just after the opening records, which the session got at the clock's time
    for n in range(events - len(batch) - 3):  # with the two opening records and the loss at the end
        key = keys[rng.randrange(agents)]
        roll = rng.random()
        if roll < 0.70:
            event = session.event("agent.tool", {"tool": rng.choice(("Read", "Edit", "Bash")), "ok": roll > 0.02,
                                                 "file": f"/srv/src/m{rng.randrange(300)}.py"}, sender=key)
        elif roll < 0.85:
            event = session.event("agent.heartbeat", {"tool_calls": n}, sender=key)
        elif roll < 0.90:
            event = session.event("task.claimed", {"task": f"t-{n}"}, sender=key)
        elif roll < 0.94:
            event = session.event("task.completed", {"task": f"t-{n}", "result": "done", "ok": roll < 0.935},
                                  sender=key)
        elif roll < 0.97:
            event = session.event("insight.shared", {"text": f"insight {n} <b>bold</b>"}, sender=key)
        elif roll < 0.99:
            event = session.event("message.broadcast", {"text": f"message {n}"}, sender=key)
        elif roll < 0.995 or not requests:
            requests.append(f"r-{n}")
            event = session.event("approval.requested", {"request": requests[-1], "question": "May I?"}, sender=key)
        else:
            event = session.event("approval.granted", {"request": requests.pop()}, sender="human")
        event["ts"] = _ts(start + n * 0.05)
        batch.append(event)
        if len(batch) == 2000:
            session.append_events(batch)
            batch = []
    lost = keys[-1]
    batch.append(session.event("agent.lost", {"agent": lost, "reason": "silent"}, sender="coordinator"))
    batch[-1]["ts"] = _ts(start + events * 0.05)
    session.append_events(batch)
    return session


def _ts(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{round((seconds - whole) * 1e6):06d}Z"


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Session, dict[str, Any], str]:
    """The generated 20-agent, 100,000-event session, its timeline data and its page."""
    session = generated_session(str(tmp_path_factory.mktemp("big") / "power"))
    model = build_timeline(session)
    return session, model, render(model)


@pytest.mark.slow
def test_a_large_session_is_drawn_in_bounded_marks_and_bytes(big: tuple[Session, dict[str, Any], str]) -> None:
    _session, model, page = big
    assert model["records"] == 100_000 and len(agents_of(model)) == 20
    assert len(model["marks"]) <= MAX_MARKS and len(page.encode()) <= PAGE_BOUND
    assert sum(mark[3] for mark in model["marks"]) == 100_000
    assert 100 <= model["columns"] <= COLUMNS


# -- the CLI -----------------------------------------------------------------------------------------------------------

def test_cli_writes_the_page_and_says_what_is_in_it(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "team.html"
    result = CliRunner().invoke(main, ["--home", str(home), "timeline", "team-of-two", "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("timeline of session team-of-two: 28 records, 3 agent lane(s)")
    assert out.read_text().startswith("<!DOCTYPE html>") and not list(tmp_path.glob(".timeline-*"))
    to_stdout = CliRunner().invoke(main, ["--home", str(home), "timeline", "team-of-two", "--html", "-"])
    assert to_stdout.stdout == out.read_text()
    damaged = CliRunner().invoke(main, ["--home", str(home), "timeline", "corrupt-line-and-torn-tail", "--html",
                                        str(tmp_path / "corrupt.html")])
    assert damaged.exit_code == 0 and "skipped 1 damaged record(s)" in damaged.stderr


def test_cli_refuses_without_a_file_or_where_it_cannot_write(home: Path, tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["--home", str(home), "timeline", "team-of-two"])
    assert missing.exit_code == 2 and "--html" in missing.output
    link = tmp_path / "link.html"
    link.symlink_to(tmp_path / "real.html")
    through_link = CliRunner().invoke(main, ["--home", str(home), "timeline", "team-of-two", "--html", str(link)])
    assert through_link.exit_code == 0
    assert link.is_symlink() and (tmp_path / "real.html").read_text().startswith("<!DOCTYPE html>")
    directory = CliRunner().invoke(main, ["--home", str(home), "timeline", "team-of-two", "--html", str(tmp_path)])
    assert directory.exit_code == 2 and "Is a directory" in directory.stderr and not list(tmp_path.glob(".timeline-*"))
    nowhere = CliRunner().invoke(main, ["--home", str(home), "timeline", "team-of-two", "--html",
                                        str(tmp_path / "no" / "such" / "dir" / "t.html")])
    assert nowhere.exit_code == 2 and "No such file or directory (ENOENT)" in nowhere.stderr
    assert "Traceback" not in nowhere.output


# -- in a real browser -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver, keeping the console's messages."""
    with chromium(1400, 900) as driver:
        yield driver


def open_page(browser: Any, page: str, path: Path) -> list[dict[str, Any]]:
    """Load `page` from `path`, wait until its script has run, size the window to it; the console's messages."""
    from selenium.webdriver.support.ui import WebDriverWait

    path.write_text(page, encoding="utf-8")
    browser.set_window_size(1400, 900)
    browser.get(path.as_uri())
    WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return document.body.dataset.ready"))
    height, chrome = browser.execute_script("return [document.documentElement.scrollHeight, "
                                            "window.outerHeight - window.innerHeight]")
    browser.set_window_size(1400, min(height + chrome + 8, 6000))  # the whole page in one screenshot
    logs: list[dict[str, Any]] = browser.get_log("browser")
    return logs


def screenshot(browser: Any, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    return shot


def hover(browser: Any, element: Any) -> str:
    """Move the pointer onto `element`; the tooltip's text once it shows."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    ActionChains(browser).move_to_element(element).perform()
    tip = browser.find_element(By.ID, "tip")
    WebDriverWait(browser, 10).until(lambda driver: tip.is_displayed())
    text: str = tip.text
    return text


@pytest.mark.slow
def test_a_recorded_session_in_chromium(browser: Any, home: Path, tmp_path: Path) -> None:
    """every-event-type: no console message, no request; a lane per agent named as status names them; hovering the
    hostile insight shows its text as text (no element made of it, the title untouched)."""
    from selenium.webdriver.common.by import By

    session = Session(str(home), "every-event-type", read_only=True)
    model = build_timeline(session)
    logs = open_page(browser, render(model), tmp_path / "every-event-type.html")
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")] == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    lanes = browser.find_elements(By.CSS_SELECTOR, "#lanes .lane[data-role=agent]")
    names = [lane.find_element(By.CSS_SELECTOR, ".lane-name").text for lane in lanes]
    assert len(lanes) == 3 and names[0] == "main-3f2a9b" and names[2] == "main-3f2a9b#2"
    assert names[1].startswith("?\ufffd]0;owned\ufffdhuman <b>")  # as text, cut to fit, marked: it names the human
    legend = browser.find_elements(By.CSS_SELECTOR, "#legend .item")
    assert [item.get_attribute("data-kind") for item in legend] == [kind for kind, _label in KINDS]
    insight = browser.find_element(By.CSS_SELECTOR, ".mark[data-kind=insight]")
    text = hover(browser, insight)
    assert "insight" in text and "</script><img src=x onerror=" in text and "insight.shared" in text
    assert f"from ?\ufffd]0;owned\ufffdhuman <b>coordinator<\u2026 (\ufffd[31mup load) \u2014 {MALLORY}" in text
    assert "ch insights" in text
    assert browser.execute_script("return document.querySelectorAll('img, b, #tip *:not(div):not(table)"
                                  ":not(tbody):not(tr):not(td)').length") == 0
    assert browser.title == "popkit-power timeline: every-event-type"
    screenshot(browser, tmp_path, "timeline-every-event-type")
    lost = browser.find_element(By.CSS_SELECTOR, ".mark[data-kind=lost]")
    assert "agent.lost" in hover(browser, lost) and "silent for 95 s while active" in browser.find_element(
        By.ID, "tip").text


@pytest.mark.slow
def test_a_twenty_agent_hundred_thousand_event_session_in_chromium(
        browser: Any, big: tuple[Session, dict[str, Any], str], tmp_path: Path) -> None:
    """Every agent's lane is drawn with marks on it; hovering a dense stretch tells how many events it holds."""
    from selenium.webdriver.common.by import By

    _session, model, page = big
    logs = open_page(browser, page, tmp_path / "big.html")
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")] == []
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    lanes = browser.find_elements(By.CSS_SELECTOR, "#lanes .lane[data-role=agent]")
    assert [lane.find_element(By.CSS_SELECTOR, ".lane-name").text for lane in lanes] == [
        f"worker-{n:02d}" for n in range(20)]
    per_lane = browser.execute_script(
        "const lanes = new Set(); for (const m of D.marks) lanes.add(m[0]); return lanes.size")
    assert per_lane == len(model["lanes"])
    assert len(browser.find_elements(By.CSS_SELECTOR, ".mark")) == len(model["marks"])
    dense = max((index for index, mark in enumerate(model["marks"]) if mark[2] > 2),  # clear of the joins' edges
                key=lambda index: model["marks"][index][3])
    text = hover(browser, browser.find_element(By.CSS_SELECTOR, f'.mark[data-m="{dense}"]'))
    assert f"{model['marks'][dense][3]:,} \u00d7 " in text and "the first of them" in text
    screenshot(browser, tmp_path, "timeline-20-agents-100k-events")
