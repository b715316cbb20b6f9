"""`stop` reaches every machine (issue 16): two machines (power directories, each with its coordinator daemon and
replicator, started by `start` and `join` as a person does) through a real redis-server. `stop` on A pushes the
session's end before it returns; B's journal gets A's `session.closed`, the server keeps the summary for 24 h, B's
coordinator exits by itself and B's `status` shows the session closed. With Redis down, `stop` says so and names the
command that pushes it later; nothing is lost. A coordinator SIGTERMed or SIGKILLed during the stop's push changes
nothing of that."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from support import RedisServer, until

from popkit_power.home import active_session
from popkit_power.journal.lease import held, holder
from popkit_power.keys import RedisLayout
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"
LAYOUT = RedisLayout()
CONFIG = '{"agent_timeout_seconds": 3600, "heartbeat_seconds": 3600}'


def cli(home: Path, *args: str, url: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if key != "POPKIT_POWER_NO_COORDINATOR"}
    return subprocess.run([str(SCRIPT), "--home", str(home), *args], capture_output=True, text=True, timeout=120,
                          env={**environ, "REDIS_URL": url})


def closings(session: Session) -> list[dict[str, Any]]:
    return [e for e in Session(session.power_dir, session.id).journal.reader() if e["type"] == "session.closed"]


@pytest.fixture
def two_machines(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A opens the session with `start`, B joins it with `join`: both coordinators (with their replicators) run as
    daemons against the test's own redis-server."""
    server = RedisServer(str(tmp_path / "redis")).start()
    homes = [tmp_path / "a", tmp_path / "b"]
    for home in homes:
        home.mkdir()
        (home / "config.json").write_text(CONFIG)
    started = cli(homes[0], "start", "Stop everywhere", url=server.url)
    assert started.returncode == 0, started.stderr
    session_id = active_session(str(homes[0]))
    assert session_id is not None
    joined = cli(homes[1], "join", url=server.url)
    assert joined.returncode == 0, joined.stderr
    a, b = Session(str(homes[0]), session_id), Session(str(homes[1]), session_id)
    until(lambda: any(e["type"] == "coordinator.started" and e.get("origin") == b.origin
                      for e in Session(str(homes[0]), session_id).journal.reader()), 60, "A heard B's coordinator")
    yield {"homes": homes, "sessions": (a, b), "server": server}
    for session in (a, b):
        pid = (holder(session.dir) or {}).get("pid")
        if held(session.dir) and isinstance(pid, int):
            os.kill(pid, signal.SIGKILL)
    server.kill()


def assert_closed_everywhere(machines: dict[str, Any]) -> None:
    a, b = machines["sessions"]
    url = machines["server"].url
    until(lambda: any(e.get("origin") == a.origin for e in closings(b)), 120, "B's journal gets A's session.closed")
    assert len(closings(b)) == 1 and len(closings(a)) == 1, "closed once, by A"
    with redis.Redis.from_url(url, decode_responses=True) as client:
        summary = client.get(LAYOUT.completed(a.id))
        assert summary is not None and "summary" in orjson.loads(summary)
        assert 86_000 < client.ttl(LAYOUT.completed(a.id)) <= 86_400
    until(lambda: not held(b.dir), 120, "B's coordinator exits by itself")
    assert active_session(b.power_dir) is None, "Power Mode is off on B too"
    status = cli(Path(b.power_dir), "status", "--json", "--", b.id, url=url)
    info = orjson.loads(status.stdout)
    assert info["closed"] is not None and info["active"] is False, status.stdout
    stopped = [e for e in Session(b.power_dir, b.id).journal.reader() if e["type"] == "coordinator.stopped"
               and e.get("origin") == b.origin]
    assert [e["data"]["reason"] for e in stopped] == ["the session was closed"]


@pytest.mark.slow
def test_stop_pushes_the_end_and_the_other_machine_closes_the_session(two_machines: dict[str, Any]) -> None:
    home_a = two_machines["homes"][0]
    a, _b = two_machines["sessions"]
    stopped = cli(home_a, "stop", url=two_machines["server"].url)
    assert stopped.returncode == 0, stopped.stderr
    assert f"session {a.id} closed" in stopped.stdout and "pushed to redis" in stopped.stdout, stopped.stdout
    assert_closed_everywhere(two_machines)


@pytest.mark.slow
def test_with_redis_down_stop_says_so_and_replicate_once_pushes_it_later(two_machines: dict[str, Any]) -> None:
    home_a = two_machines["homes"][0]
    a, b = two_machines["sessions"]
    server: RedisServer = two_machines["server"]
    server.kill()
    stopped = cli(home_a, "stop", url=server.url)
    assert stopped.returncode == 0, stopped.stderr
    assert "was not pushed" in stopped.stderr and f"popkit-power replicate --once --session {a.id}" in stopped.stderr
    assert len(closings(a)) == 1 and not closings(b)
    assert held(b.dir), "B still coordinates: it has not heard"
    refused = cli(home_a, "replicate", "--once", "--session", a.id, url=server.url)
    assert refused.returncode != 0 and "not pushed" in refused.stderr, refused.stderr
    server.start()  # empty: it was not persisted
    pushed = cli(home_a, "replicate", "--once", "--session", a.id, url=server.url)
    assert pushed.returncode == 0, pushed.stderr
    assert "every event of this machine is on redis" in pushed.stdout
    assert_closed_everywhere(two_machines)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_coordinator_killed_during_the_stop_s_push_changes_nothing(two_machines: dict[str, Any],
                                                                     sig: signal.Signals, rng: random.Random) -> None:
    """The coordinator is signalled at a random moment while `stop` runs: before stop's own SIGTERM, while it
    writes coordinator.stopped and its replicator pushes what is left, or after. `stop` pushes the end all the
    same."""
    home_a = two_machines["homes"][0]
    a, _b = two_machines["sessions"]
    pid = (holder(a.dir) or {}).get("pid")
    assert isinstance(pid, int)
    environ = {key: value for key, value in os.environ.items() if key != "POPKIT_POWER_NO_COORDINATOR"}
    stop = subprocess.Popen([str(SCRIPT), "--home", str(home_a), "stop"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**environ, "REDIS_URL": two_machines["server"].url})
    time.sleep(rng.uniform(0.1, 1.5))  # a random moment (the stop command takes about half a second to start)
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it had ended already
    out, err = stop.communicate(timeout=120)
    assert stop.returncode == 0, err
    assert "pushed to redis" in out, out + err
    assert_closed_everywhere(two_machines)
