"""The coordinator as a daemon of its session: started by `popkit-power start` in its own process session (so it
outlives the terminal), logging to `sessions/<id>/coordinator.log`, and stopped by `popkit-power stop`. Whether one
runs is the lease's word (lease.py), not a pid file's: the OS releases the lease when its holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .._fs import open_file, read_file
from ..errors import PowerModeError, SessionError
from ..journal.lease import held, holder
from ..keys import COORDINATOR_LOG
from ..session import Session

START_SECONDS = 15.0
STOP_SECONDS = 15.0


def running(session: Session) -> bool:
    """Whether a coordinator holds the session's lease now."""
    return held(session.dir)


def spawn(session: Session) -> int:
    """Start the session's coordinator as a daemon and return its pid once it holds the lease; SessionError (with the
    end of its log) if it does not come up."""
    log = open_file(os.path.join(session.dir, COORDINATOR_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "popkit_power.cli", "--home", session.power_dir, "coordinator", "--session",
             session.id], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
    finally:
        os.close(log)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if running(session) and (holder(session.dir) or {}).get("pid") == process.pid:
            return process.pid
        time.sleep(0.05)
    raise SessionError(f"the coordinator did not start (see {os.path.join(session.dir, COORDINATOR_LOG)}): "
                       f"{_log_tail(session)}")


def stop(session: Session) -> int | None:
    """Stop the session's coordinator (SIGTERM, then SIGKILL after STOP_SECONDS); its pid, or None if none ran or
    it runs inside another program (`PowerModeCoordinator.start()`), which must not be signalled: that one ends by
    itself once the session is closed."""
    if not running(session):
        return None
    found = holder(session.dir) or {}
    pid = found.get("pid")
    if found.get("stoppable") is False:  # a coordinator inside another program: closing the session ends it
        return None
    if not isinstance(pid, int):
        raise SessionError(f"a coordinator holds session {session.id} but {session.dir}/coordinator.json does not say "
                           f"which process: stop it by hand")
    for sig, seconds in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return pid
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not running(session):
                return pid
            time.sleep(0.05)
    raise SessionError(f"the coordinator (pid {pid}) does not stop")


def _log_tail(session: Session) -> str:
    try:
        text = read_file(os.path.join(session.dir, COORDINATOR_LOG), 1 << 20).decode("utf-8", "replace")
    except (OSError, PowerModeError):
        return "(no log)"
    return text[-600:].strip().replace("\n", " | ")
