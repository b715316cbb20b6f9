"""The coordinator as a daemon of its session: started by `popkit-power start` in its own process session (so it
outlives the terminal), logging to `sessions/<id>/coordinator.log`, and stopped by `popkit-power stop`. Whether one
runs is the lease's word (journal/lease.py), not a pid file's: the OS releases the lease when its holder dies.

The daemon is `python -m popkit_power.coordinator --home DIR --session SESSION` (`main`): it starts without the CLI
(no click, no command group), and runs what `popkit-power coordinator` runs in the foreground (`serve`)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

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


def spawn(session: Session, *, module: str = "popkit_power.coordinator", more: Sequence[str] = ()) -> int:
    """Start the session's coordinator as a daemon and return its pid once it holds the lease; SessionError (with the
    end of its log) if it does not come up. `module` is the program (`python -m MODULE --home DIR --session ID
    MORE...`): this one's `main`, or one that runs `serve` with more alongside (the dashboard's)."""
    log = open_file(os.path.join(session.dir, COORDINATOR_LOG), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--home", session.power_dir, "--session", session.id, *more],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True)
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


def serve(power_dir: str | None, session_id: str | None, *,
          alongside: Callable[[str, str | None], Callable[[], None]] | None = None) -> None:
    """Run the coordinator of the session (default: the active one) in the foreground until SIGTERM or SIGINT,
    logging to stderr: the daemon's work, and `popkit-power coordinator`'s. Its mode is said first, and why.
    `alongside(power_dir, session_id)`, called once the coordinator is connected, starts something that runs as long
    as it does (the dashboard: dashboard/__main__.py) and returns what stops it."""
    from .runner import PowerModeCoordinator

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    running = PowerModeCoordinator(power_dir=power_dir, session_id=session_id)
    running.connect()
    print(f"coordinator: {running.mode} mode ({running.reason})", file=sys.stderr, flush=True)

    def stop(signum: int, _frame: Any) -> None:
        running.request_stop()  # only a flag and a wake: nothing unsafe in a signal handler

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    stop_alongside = alongside(running.power_dir, session_id) if alongside is not None else None
    try:
        running.run()
    finally:
        if stop_alongside is not None:
            stop_alongside()


def main(argv: list[str] | None = None, *, alongside: Callable[[str, str | None], Callable[[], None]] | None = None,
         prog: str = "python -m popkit_power.coordinator") -> int:
    """`python -m popkit_power.coordinator [--home DIR] [--session SESSION]`: `serve`, with the power directory as
    the CLI finds it (--home, else $POPKIT_POWER_HOME, else from here). Exit 0 once stopped; an error is one line
    on stderr and exit 2, as the CLI says it."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description="Run a power session's coordinator in the foreground.")
    parser.add_argument("--home", metavar="DIR", help="the power directory")
    parser.add_argument("--session", metavar="SESSION", help="the session (default: the active one)")
    args = parser.parse_args(argv)
    try:
        serve(os.path.abspath(args.home) if args.home else None, args.session, alongside=alongside)
    except (PowerModeError, OSError) as error:
        print(f"popkit-power: {error}", file=sys.stderr, flush=True)
        return 2
    return 0


def _log_tail(session: Session) -> str:
    try:
        text = read_file(os.path.join(session.dir, COORDINATOR_LOG), 1 << 20).decode("utf-8", "replace")
    except (OSError, PowerModeError):
        return "(no log)"
    return text[-600:].strip().replace("\n", " | ")
