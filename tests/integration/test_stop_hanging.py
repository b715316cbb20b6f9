"""`stop` against a Redis that hangs (its process SIGSTOPped: connections open, nothing answers), the way a stuck
server or a frozen network behaves: `stop` still closes the session here and returns, saying the end was not pushed
and how to push it; once the server answers again, `replicate --once` pushes it and the other machine closes the
session. Two machines with their coordinator daemons, as in test_stop_everywhere.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
from support import RedisServer
from test_stop_everywhere import assert_closed_everywhere, cli, closings, two_machines

from popkit_power.home import active_session
from popkit_power.journal.lease import held, holder

__all__ = ["two_machines"]  # the fixture, used by name


@pytest.mark.slow
def test_stop_with_a_hanging_redis_returns_and_replicate_once_pushes_later(two_machines: dict[str, Any]) -> None:
    home_a = two_machines["homes"][0]
    a, b = two_machines["sessions"]
    server: RedisServer = two_machines["server"]
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        stopped = cli(home_a, "stop", url=server.url)  # the helper's own timeout (120 s): it must return
        assert stopped.returncode == 0, stopped.stderr
        assert f"session {a.id} closed" in stopped.stdout, stopped.stdout
        assert "was not pushed" in stopped.stderr, stopped.stderr
        assert f"popkit-power replicate --once --session {a.id}" in stopped.stderr
        assert len(closings(a)) == 1 and not closings(b)
        assert not held(a.dir), "A's coordinator is gone"
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert held(b.dir), "B still coordinates: it has not heard"
    pushed = cli(home_a, "replicate", "--once", "--session", a.id, url=server.url)
    assert pushed.returncode == 0, pushed.stderr
    assert_closed_everywhere(two_machines)


@pytest.mark.slow
def test_two_humans_stopping_on_two_machines_at_once_both_close_it(two_machines: dict[str, Any]) -> None:
    """Each `stop` returns 0 (or says the session was closed already), each journal holds its session closed, and
    neither machine's coordinator or Power Mode is left running."""
    import subprocess

    from test_stop_everywhere import SCRIPT

    homes = two_machines["homes"]
    a, b = two_machines["sessions"]
    url = two_machines["server"].url
    environ = {key: value for key, value in os.environ.items() if key != "POPKIT_POWER_NO_COORDINATOR"}
    runs = [subprocess.Popen([str(SCRIPT), "--home", str(home), "stop"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={**environ, "REDIS_URL": url}) for home in homes]
    outs = [run.communicate(timeout=120) for run in runs]
    for run, (out, err) in zip(runs, outs, strict=True):
        if run.returncode == 0:
            assert f"Power Mode off: session {a.id} closed" in out, (out, err)
        else:  # its machine had already closed it on hearing the other's stop
            assert run.returncode == 2 and ("no active power session" in err or (a.id in err and "closed" in err)), (
                run.returncode, out, err)
    assert 0 in [run.returncode for run in runs], outs
    for session in (a, b):
        assert closings(session), session.origin
        assert active_session(session.power_dir) is None
        assert not held(session.dir)


@pytest.mark.slow
def test_a_machine_joining_after_the_stop_is_told_the_session_is_closed(two_machines: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    """`join SESSION` on a third machine after `stop` on A: refused (exit 2, saying it was closed), nothing made
    active there and no coordinator started to write into a closed session's stream."""
    home_a = two_machines["homes"][0]
    a, _b = two_machines["sessions"]
    url = two_machines["server"].url
    assert cli(home_a, "stop", url=url).returncode == 0
    home_c = tmp_path / "c"
    home_c.mkdir()
    joined = cli(home_c, "join", a.id, url=url)
    assert joined.returncode == 2, (joined.stdout, joined.stderr)
    assert "closed" in joined.stderr and a.id in joined.stderr, joined.stderr
    assert active_session(str(home_c)) is None
    assert not (home_c / "sessions" / a.id).exists(), "refused before anything of the session is made here"


@pytest.mark.slow
def test_start_switch_with_replication_on_closes_the_session_it_leaves_everywhere(
        two_machines: dict[str, Any]) -> None:
    home_a = two_machines["homes"][0]
    a, _b = two_machines["sessions"]
    switched = cli(home_a, "start", "The next objective", "--switch", url=two_machines["server"].url)
    assert switched.returncode == 0, switched.stderr
    assert f"switched from session {a.id} (closed)" in switched.stdout and "pushed to redis" in switched.stdout
    new = active_session(str(home_a))
    try:
        assert_closed_everywhere(two_machines)
        assert new not in (None, a.id), "A is in its new session"
    finally:
        if new is not None:  # its coordinator, started by the switch
            pid = (holder(os.path.join(str(home_a), "sessions", new)) or {}).get("pid")
            if isinstance(pid, int):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_stop_while_the_other_machine_is_frozen_reaches_it_when_it_runs_again(two_machines: dict[str, Any]) -> None:
    """B's coordinator (with its replicator) SIGSTOPped while A stops, as a laptop lid closed: when it runs again,
    it pulls the end and closes the session like any other time."""
    home_a = two_machines["homes"][0]
    _a, b = two_machines["sessions"]
    pid = (holder(b.dir) or {}).get("pid")
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGSTOP)
    try:
        stopped = cli(home_a, "stop", url=two_machines["server"].url)
        assert stopped.returncode == 0 and "pushed to redis" in stopped.stdout, (stopped.stdout, stopped.stderr)
        assert not closings(b)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert_closed_everywhere(two_machines)
