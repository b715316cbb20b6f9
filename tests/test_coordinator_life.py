"""The lives of the long-running processes at their edges, with real processes: a session directory removed or
replaced under them (coordinator, waiter), decisions that do not come back from the journal, a thousand agents under
a small file descriptor limit, and a full disk."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import remove_tree, replace_power_dir, until

from popkit_power.coordinator import PowerModeCoordinator, daemon
from popkit_power.keys import host_name
from popkit_power.processes import start_time
from popkit_power.session import Session, start_session

SCRIPT = Path(sys.executable).parent / "popkit-power"
HOOK_SCRIPT = Path(sys.executable).parent / "popkit-power-hook"
WAIT = 60  # seconds any condition below may take on a busy machine (a deadline, never a measured speed)


def _events(session: Session, kind: str) -> list[dict[str, Any]]:
    return [event for event in session.journal.reader() if event["type"] == kind]


def _exited(pid: int) -> int | None:
    """The exit status of our child `pid` once it has ended, else None."""
    done, status = os.waitpid(pid, os.WNOHANG)
    return None if done == 0 else os.waitstatus_to_exitcode(status)


def _started_or_ended(session: Session, process: subprocess.Popen[bytes]) -> bool:
    return bool(_events(session, "coordinator.started")) or process.poll() is not None


def _replace(home: str, session: Session, how: str) -> None:
    """Remove the power directory; for "replaced", put one with a session directory of the same id in its place, in
    one step (so the coordinator never sees it missing)."""
    if how == "replaced":
        replace_power_dir(home, session.id)
    else:
        remove_tree(home)


# -- a session directory removed or replaced ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("how", ["removed", "replaced"])
@pytest.mark.parametrize("run_as", ["daemon", "foreground"])
def test_a_coordinator_ends_with_one_line_when_its_session_directory_is_removed_or_replaced(
        tmp_path: Path, run_as: str, how: str) -> None:
    """It heartbeats every second (the spin began at the first heartbeat after the removal). Once the directory is
    gone or another stands in its place, it ends (exit 0) saying why in one line, and writes nothing anywhere: no
    power directory is made again, and a replacement's journal gets no word from it."""
    home = str(tmp_path / "power")
    session = start_session(home, "Coordinate", sender="human")
    Path(home, "config.json").write_text('{"heartbeat_seconds": 1}')
    if run_as == "daemon":
        pid = daemon.spawn(session)
        stderr_path = None
    else:
        stderr_path = tmp_path / "stderr"
        with open(stderr_path, "wb") as stderr:
            pid = subprocess.Popen([str(SCRIPT), "--home", home, "coordinator"], stderr=stderr).pid
    try:
        until(lambda: len(_events(session, "coordinator.status")) >= 1, WAIT, "its first heartbeat")
        session.journal.close()
        _replace(home, session, how)
        until(lambda: _exited(pid) is not None or not os.path.exists(f"/proc/{pid}"), WAIT, "the coordinator ends")
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    if how == "removed":
        assert not os.path.exists(home), "the ending coordinator made the power directory again"
    else:
        again = Session(home, session.id)
        assert [event["type"] for event in again.journal.reader()] == [], "it wrote into the replacement"
    if stderr_path is not None:
        said = [line for line in stderr_path.read_text().splitlines() if "session directory" in line]
        assert len(said) == 1 and f"was {how}" in said[0], \
            stderr_path.read_text()[-2000:]


@pytest.mark.slow
def test_a_session_directory_removed_or_replaced_at_random_moments_ends_the_coordinator(tmp_path: Path) -> None:
    """The attack: the power directory removed at a random moment of a foreground coordinator's life (starting,
    folding, heartbeating every second), or removed and made again at a random moment once it has opened it, 10
    rounds. Each time it ends (a removal during its start-up may end it with an error, never with a hang), never
    makes the power directory again, and never writes into the replacement. (A directory replaced before the
    coordinator opened it is the one it coordinates.)"""
    import random

    chance = random.Random(16_4)
    for round_ in range(10):
        home = str(tmp_path / f"power{round_}")
        session = start_session(home, "Coordinate", sender="human")
        Path(home, "config.json").write_text('{"heartbeat_seconds": 1}')
        session.journal.close()
        how = chance.choice(["removed", "replaced"])
        with open(tmp_path / f"stderr{round_}", "wb") as stderr:
            process = subprocess.Popen([str(SCRIPT), "--home", home, "coordinator"], stderr=stderr)
        try:
            if how == "replaced":
                until(partial(_started_or_ended, session, process), WAIT, "it opened its session")
                session.journal.close()
            try:
                process.wait(timeout=chance.uniform(0.0, 2.5))
            except subprocess.TimeoutExpired:
                pass
            _replace(home, session, how)
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"round {round_} ({how}): the coordinator did not end: "
                                     + (tmp_path / f"stderr{round_}").read_text()[-3000:]) from None
        finally:
            process.kill()
            process.wait()
        if how == "removed":
            assert not os.path.exists(home), f"round {round_}: the power directory made again"
        else:
            kinds = [event["type"] for event in Session(home, session.id).journal.reader()]
            assert kinds == [], f"round {round_}: {kinds} written into the replacement"


@pytest.mark.slow
def test_decisions_that_do_not_come_back_from_the_journal_are_not_made_again(tmp_path: Path) -> None:
    """The root of the spin: the loop decides again at once after each decision, expecting to fold it first; when
    its appends go where its reader cannot see (here the journal moved away under it, its open segment with it), it
    decided the same heartbeat again and again. Now it waits for its decisions to come back, and makes none twice."""
    home = str(tmp_path / "power")
    session = start_session(home, "Coordinate", sender="human")
    Path(home, "config.json").write_text('{"heartbeat_seconds": 1}')
    coordinator = PowerModeCoordinator(power_dir=home)
    coordinator.start()
    moved = Path(session.dir, "journal.moved")
    try:
        until(lambda: len(_events(session, "coordinator.status")) >= 1, WAIT, "its first heartbeat")
        session.journal.close()
        os.rename(Path(session.dir, "journal"), moved)
        os.makedirs(Path(session.dir, "journal"))
        steps = coordinator.steps
        until(lambda: coordinator.steps >= steps + 5, WAIT, "five more rounds")
    finally:
        coordinator.stop()
    statuses = [orjson.loads(line) for segment in sorted(moved.iterdir())
                for line in segment.read_bytes().splitlines() if b'"coordinator.status"' in line]
    assert len(statuses) <= 2, f"{len(statuses)} heartbeats appended while its decisions did not come back"


@pytest.mark.parametrize("how", ["removed", "restored from a copy"])
def test_a_waiter_ends_when_its_session_directory_is_removed_or_replaced(
        tmp_path: Path, claude_pids: list[subprocess.Popen[bytes]], how: str) -> None:
    """An idle agent's waiter (`popkit-power-hook wake`) waits on its session's journal. The directory is removed,
    or removed and restored from a copy taken while it waited (its claim and state in the copy too): it ends without
    waking its agent, and a message sent to the restored copy does not reach it."""
    home = str(tmp_path / "power")
    session = start_session(home, "Ship the parser", sender="human")
    claude = subprocess.Popen(["sleep", "3600"])
    claude_pids.append(claude)
    env = {**os.environ, "POPKIT_POWER_HOME": home, "CLAUDE_PID": str(claude.pid), "CLAUDE_CODE_ENTRYPOINT": "cli"}
    waiter = subprocess.Popen([str(HOOK_SCRIPT), "wake"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert waiter.stdin is not None
    payload = {"session_id": "cccc0000-1111", "transcript_path": "/t", "cwd": "/repo", "hook_event_name": "Stop",
               "stop_hook_active": False, "last_assistant_message": "done"}
    waiter.stdin.write(orjson.dumps(payload))
    waiter.stdin.close()
    claims = Path(session.dir, "agents")
    until(lambda: any(path.name.endswith(".waiter") for path in claims.glob("*")) or waiter.poll() is not None,
          WAIT, "the waiter claims its agent")
    assert waiter.poll() is None
    copy = tmp_path / "copy"
    shutil.copytree(home, copy, symlinks=True)
    session.journal.close()
    remove_tree(home)
    if how != "removed":
        shutil.copytree(copy, home, symlinks=True)
        Session(home, session.id).publish("message.direct", {"text": "are you there?"}, sender="beef0000:main",
                                          to="cccc0000-1111:main")
    try:
        code = waiter.wait(timeout=WAIT)
    finally:
        waiter.kill()
    assert code == 0 and b"are you there" not in (waiter.stderr.read() if waiter.stderr else b"")


# -- a thousand agents under a small file descriptor limit -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("hard", [200, 4096], ids=["hard limit 200", "hard limit 4096"])
def test_more_agents_than_file_descriptors_are_never_lost_by_an_error_of_ours(
        tmp_path: Path, claude_pids: list[subprocess.Popen[bytes]], hard: int) -> None:
    """1,100 agents, each a real sleeping process, watched by a coordinator started with a soft limit of 200 open
    files: with a hard limit of 200 it cannot raise it, and polls /proc beyond its pidfds; with 4,096 it raises it.
    Either way no agent is declared lost while its process runs, and the one process killed among them is."""
    home = str(tmp_path / "power")
    session = start_session(home, "Many", sender="human")
    Path(home, "config.json").write_text('{"heartbeat_seconds": 1, "agent_timeout_seconds": 3600}')
    for _ in range(1100):
        claude_pids.append(subprocess.Popen(["sleep", "3600"]))
    here = host_name()
    for first in range(0, 1100, 100):
        session.append_events([session.event("agent.joined", {
            "name": f"agent-{n}", "claude_session": f"a{n:07d}", "agent_id": "main", "pid": process.pid,
            "pid_start": start_time(process.pid), "host": here}, sender=f"a{n:07d}:main")
            for n, process in enumerate(claude_pids[first:first + 100], start=first)])
    with open(tmp_path / "stderr", "wb") as stderr:
        coordinator = subprocess.Popen([str(SCRIPT), "--home", home, "coordinator"], stderr=stderr,
                                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard)))
    try:
        until(lambda: len(_events(session, "coordinator.status")) >= 3 or coordinator.poll() is not None, WAIT,
              "three heartbeats: every agent looked at")
        victim = claude_pids[777]
        victim.kill()
        victim.wait()
        until(lambda: _events(session, "agent.lost") or coordinator.poll() is not None, WAIT, "the killed one lost")
        heartbeats = len(_events(session, "coordinator.status"))
        until(lambda: len(_events(session, "coordinator.status")) >= heartbeats + 3 or coordinator.poll() is not None,
              WAIT, "three heartbeats more")
        assert coordinator.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
    finally:
        coordinator.send_signal(signal.SIGTERM)
        coordinator.wait(timeout=WAIT)
    lost = [event["data"]["agent"] for event in _events(session, "agent.lost")]
    assert lost == ["a0000777:main"], f"{len(lost)} lost: {lost[:5]}"


# -- a full disk -------------------------------------------------------------------------------------------------------

def _mount_small_tmpfs(where: Path) -> bool:
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(where)],
                             capture_output=True)
    return mounted.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs), or the test is skipped where mounting is not allowed."""
    where = tmp_path / "disk"
    if not _mount_small_tmpfs(where):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path) -> None:
    """Write zeros into `path` until the filesystem refuses even a byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_full_disk_does_not_end_the_coordinator_and_status_says_disk_full(
        small_disk: Path, claude_pids: list[subprocess.Popen[bytes]]) -> None:
    """The power directory on a real 2 MiB filesystem, filled up. The coordinator's heartbeats fail: it stays up,
    `status` and `doctor` say "disk full" (not "stopped"); an agent whose process dies meanwhile is declared lost
    once space is freed, and the coordinator goes on heartbeating."""
    home = str(small_disk / "power")
    session = start_session(home, "Full", sender="human")
    Path(home, "config.json").write_text('{"heartbeat_seconds": 1, "agent_timeout_seconds": 3600}')
    claude = subprocess.Popen(["sleep", "3600"])
    claude_pids.append(claude)
    session.publish("agent.joined", {"name": "a", "claude_session": "aaaa0000", "agent_id": "main",
                                     "pid": claude.pid, "pid_start": start_time(claude.pid), "host": host_name()},
                    sender="aaaa0000:main")
    pid = daemon.spawn(session)
    filler = small_disk / "filler"
    try:
        until(lambda: len(_events(session, "coordinator.status")) >= 1, WAIT, "its first heartbeat")
        _fill(filler)
        env = {**os.environ, "POPKIT_POWER_HOME": home}
        until(lambda: "disk full" in subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True,
                                                    env=env, timeout=WAIT).stdout, WAIT, "status says disk full")
        claude.kill()
        claude.wait()
        shown = subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, env=env, timeout=WAIT)
        assert "disk full" in shown.stdout and _exited(pid) is None, shown.stdout + shown.stderr
        doctor = subprocess.run([str(SCRIPT), "doctor"], capture_output=True, text=True, env=env, timeout=WAIT)
        assert "disk full" in doctor.stdout, doctor.stdout
        filler.unlink()
        until(lambda: _events(session, "agent.lost") or _exited(pid) is not None, WAIT, "the loss decided")
        heartbeats = len(_events(session, "coordinator.status"))
        until(lambda: len(_events(session, "coordinator.status")) > heartbeats or _exited(pid) is not None, WAIT,
              "a heartbeat after the disk was freed")
        assert _exited(pid) is None
        assert "disk full" not in subprocess.run([str(SCRIPT), "status"], capture_output=True, text=True, env=env,
                                                 timeout=WAIT).stdout
    finally:
        daemon.stop(session)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    assert [event["data"]["agent"] for event in _events(session, "agent.lost")] == ["aaaa0000:main"]
