"""The coordinator daemon starts without the CLI: `python -m popkit_power.coordinator --home DIR --session SESSION`
(what daemon.spawn runs) loads no click, says an error in one line with exit 2 as the CLI did, and runs the
coordinator with its log and lease as `popkit-power coordinator` does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from popkit_power.coordinator import PowerModeCoordinator, daemon
from popkit_power.journal.lease import holder
from popkit_power.keys import COORDINATOR_LOG
from popkit_power.session import start_session

#: Runs the daemon's entry point as `python -m` does, then says whether click was loaded on the way.
PROBE = """
import runpy, sys
sys.argv = ["popkit_power.coordinator", *sys.argv[1:]]
try:
    runpy.run_module("popkit_power.coordinator", run_name="__main__", alter_sys=True)
except SystemExit as end:
    print("click loaded" if "click" in sys.modules else "no click", flush=True)
    raise
"""


def run_daemon(*args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("UPSTASH_", "REDIS_"))}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60, env=env)


def test_an_unknown_session_is_one_line_and_exit_2_without_click(tmp_path: Path) -> None:
    home = tmp_path / "power"
    start_session(str(home), "Ship it", sender="human")
    ended = run_daemon("--home", str(home), "--session", "20990101-000000-abcdef")
    assert ended.returncode == 2 and ended.stdout == "no click\n", ended
    last = ended.stderr.strip().splitlines()[-1]
    assert last.startswith("popkit-power: unknown session '20990101-000000-abcdef'"), ended.stderr
    assert "coordinator: file mode (" in ended.stderr, "the mode is said first, as by popkit-power coordinator"


def test_a_second_coordinator_is_refused_with_exit_2_naming_the_first(tmp_path: Path) -> None:
    session = start_session(str(tmp_path / "power"), "Ship it", sender="human")
    first = PowerModeCoordinator(power_dir=session.power_dir, session_id=session.id)
    first.start()
    try:
        ended = run_daemon("--home", session.power_dir, "--session", session.id)
    finally:
        first.stop()
    assert ended.returncode == 2 and ended.stdout == "no click\n", ended
    assert ended.stderr.strip().splitlines()[-1].startswith("popkit-power: "), ended.stderr
    assert f"pid {os.getpid()}" in ended.stderr, "the refusal names the coordinator that runs"


def test_spawn_runs_the_coordinator_package_not_the_cli(tmp_path: Path) -> None:
    """The daemon's command line is `python -m popkit_power.coordinator`, it holds the lease, and logs beside the
    journal."""
    session = start_session(str(tmp_path / "power"), "Ship it", sender="human")
    pid = daemon.spawn(session)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:7] == [b"-m", b"popkit_power.coordinator", b"--home", session.power_dir.encode(),
                                b"--session", session.id.encode()]
        assert (holder(session.dir) or {}).get("pid") == pid
    finally:
        assert daemon.stop(session) == pid
    log = Path(session.dir, COORDINATOR_LOG).read_text()
    assert "coordinator: file mode" in log and "mode: file" in log
    kinds = [event["type"] for event in session.journal.reader()]
    assert kinds[-2:] == ["coordinator.started", "coordinator.stopped"]
