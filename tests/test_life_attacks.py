"""Attacks on the lives of tasks: the human finishing an agent's task from a terminal. The agent that held it must
be told (as when the human releases or reassigns it), at its next call or woken if idle, and stop showing on it."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
from support import until
from test_cli import outside_claude_code  # noqa: F401  - autouse: the CLI runs as a person at a terminal
from test_cli_agents import cli, records
from test_task_taken import (
    HOLDER,
    OTHER,
    TASK,
    current_task,
    hook,
    session,  # noqa: F401  - a fixture
    told,
)
from test_wake import WAIT, fake_claude, start_waiter, stop, waiting

from popkit_power.session import Session, start_session

SCRIPT = Path(sys.executable).parent / "popkit-power"

NOTICE = "- [task taken from you by human] "


@pytest.mark.parametrize("verb", [("done", TASK, "--result", "finished it myself"),
                                  ("done", TASK, "--result", "no longer needed", "--failed"),
                                  ("result", "finished it myself", "--task", TASK)])
def test_the_humans_done_on_an_agents_task_tells_the_holder_once(session: Session,  # noqa: F811
                                                                 verb: tuple[str, ...]) -> None:
    completed = cli(session, *verb)
    assert completed.exit_code == 0, completed.output
    (event,) = [r for r in records(session) if r["type"] == "task.completed"]
    assert event["data"]["holder"] == HOLDER, "the completion names whose task it was, as a release does"
    text = told(hook(session))
    (line,) = [line for line in text.splitlines() if line.startswith(NOTICE)]
    assert TASK in line and "stop working on it" in line
    assert ("failed" in line) if "--failed" in verb else ("done" in line)
    assert NOTICE not in told(hook(session)), "told once"
    assert current_task(session, HOLDER) is None
    beats = [r for r in records(session) if r["type"] == "agent.heartbeat" and r["from"] == HOLDER]
    assert "current_task" not in beats[-1]["data"], "its heartbeats no longer name the task"


def test_the_holders_own_done_names_no_holder_and_tells_nobody(session: Session) -> None:  # noqa: F811
    completed = cli(session, "done", TASK, "--result", "mine", "--as", HOLDER)
    assert completed.exit_code == 0, completed.output
    (event,) = [r for r in records(session) if r["type"] == "task.completed"]
    assert "holder" not in event["data"]
    assert NOTICE not in told(hook(session))


def test_an_idle_holder_is_woken_when_the_human_finishes_its_task(
        session: Session, claude_pids: list[subprocess.Popen[bytes]]) -> None:  # noqa: F811
    assert hook(session, stop()).returncode == 0  # its turn ended: idle
    waiter = start_waiter(session, fake_claude(claude_pids).pid)
    waiting(session, waiter)
    completed = cli(session, "done", TASK, "--result", "finished it myself")
    assert completed.exit_code == 0, completed.output
    _out, err = waiter.communicate(timeout=WAIT)
    assert waiter.returncode == 2, err
    assert err.decode().count(NOTICE) == 1 and TASK in err.decode()
    assert OTHER not in err.decode()


# -- a session directory replaced by a backup while the coordinator folds ----------------------------------------------

def _started(session: Session) -> bool:  # noqa: F811
    return any(event["type"] == "coordinator.started" for event in session.journal.reader())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_a_coordinator_stopped_mid_round_writes_nothing_into_the_backup_put_in_its_place(tmp_path: Path) -> None:
    """The coordinator folds a stream of events (a snapshot every 100), and is frozen (SIGSTOP) at a random moment
    of that; its session directory is then removed and a backup of it restored in its place, and it is let go on
    (SIGCONT). It ends, and the restored backup is exactly the backup: no snapshot written into it, none of its
    snapshots deleted, no lease or log file touched. 6 rounds."""
    chance = random.Random(21_16)
    for round_ in range(6):
        home = tmp_path / f"power{round_}"
        session = start_session(str(home), "Coordinate", sender="human")  # noqa: F811
        (home / "config.json").write_text('{"heartbeat_seconds": 3600, "snapshot_every_events": 100}')
        with open(tmp_path / f"stderr{round_}", "wb") as stderr:
            process = subprocess.Popen([str(SCRIPT), "--home", str(home), "coordinator"], stderr=stderr)
        try:
            until(partial(_started, session), WAIT, "it opened its session")
            backup = tmp_path / f"backup{round_}"
            shutil.copytree(session.dir, backup)
            for batch in range(chance.randint(3, 30)):
                session.append_events([session.event("message.broadcast", {"text": f"b{batch}.{n}"},
                                                     sender="human") for n in range(200)])
            os.kill(process.pid, signal.SIGSTOP)  # wherever it is in its round
            session.journal.close()
            shutil.rmtree(session.dir)
            shutil.copytree(backup, session.dir)
            os.kill(process.pid, signal.SIGCONT)
            process.wait(timeout=WAIT)
        finally:
            process.kill()
            process.wait()
        assert _tree(Path(session.dir)) == _tree(backup), f"round {round_}: it wrote into the restored backup"


def test_a_stop_asked_after_the_coordinator_ended_writes_into_no_file_that_took_its_descriptor(
        tmp_path: Path) -> None:
    """`request_stop` is what the SIGTERM handler calls, at any moment, also after the loop ended and closed its
    wake-up pipe. The pipe's descriptor number is then free, and the next file opened gets it (a journal segment
    opened by `coordinator.stopped`, say): the late wake must not write its byte into that file."""
    from popkit_power.coordinator import PowerModeCoordinator

    home = str(tmp_path / "power")
    started = start_session(home, "Coordinate", sender="human")
    coordinator = PowerModeCoordinator(power_dir=home, session_id=started.id)
    coordinator.start()
    watch = coordinator._watch
    assert watch is not None
    wake_end = watch._write_end
    coordinator.stop()
    assert coordinator._thread is not None and not coordinator._thread.is_alive()
    opened = []
    try:
        while True:  # take free descriptors until the pipe's old number is ours
            fd = os.open(tmp_path / f"file{len(opened)}", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            opened.append(fd)
            if fd == wake_end or len(opened) > 1000:
                break
        assert opened[-1] == wake_end
        coordinator.request_stop()  # a SIGTERM that came late
        assert os.fstat(wake_end).st_size == 0, "the late wake wrote into a file that took its descriptor"
    finally:
        for fd in opened:
            os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize("folds_on", [False, pytest.param(True, marks=pytest.mark.xfail(strict=True, reason=(
    "reader.py: meeting the planted segment 999 it reports records 4 to 998 missing and moves its position there; "
    "once the link is gone the writers append to segment 1 again, and the coordinator's reader waits at 999: it "
    "folds nothing more (and, its own decisions not coming back, decides nothing more)")))])
def test_a_link_planted_among_the_journal_segments_does_not_end_the_coordinator(tmp_path: Path,
                                                                                folds_on: bool) -> None:
    """A same-user process plants a symbolic link named as the journal's next segment. The journal refuses to read or
    write through it; the coordinator must not die of that (its agents would go unwatched): it stays up, its lease
    file says why it fails, and once the link is removed its rounds succeed again (and, not yet so: it folds what
    was appended after, see the xfail)."""
    from popkit_power.journal.lease import trouble

    home = tmp_path / "power"
    session = start_session(str(home), "Coordinate", sender="human")  # noqa: F811
    (home / "config.json").write_text('{"heartbeat_seconds": 1}')
    with open(tmp_path / "stderr", "wb") as stderr:
        process = subprocess.Popen([str(SCRIPT), "--home", str(home), "coordinator"], stderr=stderr)
    try:
        until(partial(_started, session), WAIT, "it opened its session")
        planted = Path(session.journal.directory, "0000000000000999.jsonl")
        planted.symlink_to("/etc/passwd")
        until(lambda: trouble(session.dir) or process.poll() is not None, WAIT, "its round failing")
        assert process.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        assert "symbolic link" in (trouble(session.dir) or "")
        planted.unlink()
        if folds_on:
            session.publish("agent.joined", {"name": "late"}, sender="late0000:main")  # folded after the link went
            until(lambda: any(event["type"] == "coordinator.status" and event["data"]["agents"] == 1
                              for event in session.journal.reader()) or process.poll() is not None, WAIT,
                  "a heartbeat that counts the agent that joined after the link was removed")
        else:
            heartbeats = sum(1 for event in session.journal.reader() if event["type"] == "coordinator.status")
            until(lambda: sum(1 for event in session.journal.reader() if event["type"] == "coordinator.status")
                  > heartbeats or process.poll() is not None, WAIT, "a heartbeat once the link is gone")
        assert process.poll() is None and trouble(session.dir) is None
    finally:
        process.terminate()
        process.wait(timeout=WAIT)


# -- liveness: a pid given to another process while the coordinator watched the first ----------------------------------

def _process_with_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """A new `sleep` process that got `pid` (the kernel's next pid set through ns_last_pid, as root), or None."""
    for _attempt in range(50):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError:
            return None
        process = subprocess.Popen(["sleep", "3600"])
        if process.pid == pid:
            return process
        process.kill()
        process.wait()
    return None


def test_an_exit_seen_on_the_pidfd_is_a_death_even_when_the_pid_is_taken_again() -> None:
    """An agent recorded without its process's start time (the hook could not read it) is watched through a pidfd.
    Its process exits and is reaped, and another process gets the same pid before the coordinator looks: the
    pidfd said it exited, and that is the verdict (the pid is no evidence of anything now)."""
    from popkit_power.coordinator.liveness import ProcessWatch
    from popkit_power.keys import host_name

    if not hasattr(os, "pidfd_open") or os.geteuid() != 0:
        pytest.skip("needs pidfds and root (ns_last_pid)")
    first = subprocess.Popen(["sleep", "3600"])
    key = "aaaa0000:main"
    state = {"agents": {key: {"status": "active", "pid": first.pid, "pid_start": None, "host": host_name()}}}
    watch = ProcessWatch()
    second = None
    try:
        assert watch.check(state) == {key: True}
        assert watch.fds(), "watched through a pidfd"
        first.kill()
        first.wait()  # reaped: its pid is free again
        second = _process_with_pid(first.pid)
        if second is None:
            pytest.skip("could not get the same pid again")
        assert watch.check(state) == {key: False}
    finally:
        watch.close()
        if second is not None:
            second.kill()
            second.wait()


def test_a_pidfd_closed_behind_the_watch_s_back_is_no_verdict_of_death() -> None:
    """If a pidfd's descriptor is closed elsewhere in the coordinator's process (a double close of a reused number),
    the poll calls it invalid (POLLNVAL). That says nothing about the agent's process: the watch forgets the number
    (never closing it: it may be another file's now), looks in /proc this round, and watches the process anew."""
    from popkit_power.coordinator.liveness import ProcessWatch
    from popkit_power.keys import host_name
    from popkit_power.processes import start_time

    if not hasattr(os, "pidfd_open"):
        pytest.skip("needs pidfds")
    alive = subprocess.Popen(["sleep", "3600"])
    key = "bbbb0000:main"
    state = {"agents": {key: {"status": "active", "pid": alive.pid, "pid_start": start_time(alive.pid),
                              "host": host_name()}}}
    watch = ProcessWatch()
    try:
        assert watch.check(state) == {key: True}
        [fd] = watch.fds()
        os.close(fd)  # what a stray close elsewhere in the process would do
        assert watch.check(state) == {key: True}  # not lost: its process runs
        assert watch.fds(), "watched through a new pidfd"
        alive.kill()
        alive.wait()
        assert watch.check(state) == {key: False}  # and a real exit is still seen
    finally:
        watch.close()
        if alive.poll() is None:
            alive.kill()
            alive.wait()
