"""Serving the dashboard: on loopback only, on a port of its own (or the one asked for), with a new token each time.

    Dashboard(session, ...).open()   read the session, bind 127.0.0.1:PORT, write dashboard.json (0600); the URL
    dashboard.serve()                answer until SIGINT or SIGTERM (the foreground command), or
    dashboard.serve_in_thread()      ... in a thread of its own (the coordinator's `start --dashboard`)
    dashboard.close()                stop answering, close every page's feed, remove dashboard.json

uvicorn serves the Starlette application (app.py). Why these: a live page needs a server that holds many open
event streams at once without a thread each (ASGI on asyncio), answers keep-alive requests at once (the standard
library's http.server, here, delays each by 44 ms: Nagle's algorithm against delayed acknowledgements), and is kept
by people who fix such things; sse-starlette formats the event stream, with its keep-alive pings and the end of
streams at shutdown. None of it is imported by the hook or by any other command.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import orjson

from ..errors import PowerModeError, SessionError
from ..loopback import Served, bound
from ..session import Session
from .access import Access, new_token, remove_address, url, write_address
from .app import LIVE_MODE, REPLAY_MODE, Showing, make_app
from .feed import LIVE_HANDOVERS, REPLAY_HANDOVERS, Feed

log = logging.getLogger(__name__)

#: How long open pages (each holding an event stream) may delay a stop.
SHUTDOWN_SECONDS = 2
#: The longest doctor's checks may take before the page is told they failed.
DOCTOR_TIMEOUT = 120
#: How often a dashboard that follows the active session looks which one it is.
SWITCH_SECONDS = 1.0


class Dashboard:
    """One server for one session: live (`replay` False: it follows the journal and takes actions) or a replay."""

    def __init__(self, session: Session, *, port: int = 0, replay: bool = False, doctor: bool = True,
                 project_dir: str | None = None, follow_active: bool = False) -> None:
        """`follow_active`: when `session` closes and another becomes active, show that one (the pages load again);
        without it the dashboard shows `session` until it stops."""
        self.session = session
        self.replay = replay
        self.port = port
        self.project_dir = project_dir or os.getcwd()
        self._doctor = not replay and doctor
        self.feed = self._feed(session)
        self.showing = Showing(self.feed, None if replay else Session(session.power_dir, session.id))
        self._follow_active = follow_active and not replay
        self._switcher: threading.Thread | None = None
        self._stopping = threading.Event()
        self._token = ""
        self._doctor_process: Any = None
        self._served: Served | None = None
        self.url: str | None = None
        self.address_file: str | None = None

    def _feed(self, session: Session) -> Feed:
        return Feed(session, doctor=self._problems if self._doctor else None, follow=not self.replay,
                    max_handovers=REPLAY_HANDOVERS if self.replay else LIVE_HANDOVERS)

    def _problems(self) -> list[dict[str, Any]]:
        """What `popkit-power doctor --json` finds wrong, run as a process of its own at a lower priority: it
        verifies whole journals and runs the hook, seconds of CPU on a long session, and in a thread of this
        process it would hold back every page's updates meanwhile (measured: a 3.5 s stall under load)."""
        import subprocess
        import sys

        from ..setup.doctor import FAIL, OK

        command = [sys.executable, "-m", "popkit_power.cli", "--home", self.session.power_dir, "doctor", "--json",
                   "--project-dir", self.project_dir]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
            self._doctor_process = process  # killed by close: it must not outlive the dashboard
            try:  # doctor's checks yield the CPU to the agents and to the pages
                os.setpriority(os.PRIO_PROCESS, process.pid, 10)
            except OSError:
                pass
            try:
                out, err = process.communicate(timeout=DOCTOR_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                raise SessionError(f"doctor's checks took over {DOCTOR_TIMEOUT} s") from None
        checks = [orjson.loads(line) for line in out.splitlines() if line.strip()]
        if not checks:
            raise SessionError(f"doctor said nothing (exit {process.returncode}): "
                               f"{err.decode('utf-8', 'replace')[-300:]}")
        return [{"level": "FAIL" if check["verdict"] == FAIL else "warn", "check": check["name"],
                 "text": check["found"]} for check in checks if check.get("verdict") != OK]

    def open(self) -> str:
        """Bind the port, start reading the session (a replay: read it whole first), write dashboard.json; the URL
        to open (with the token). On any failure what was started is stopped again, and nothing is left listening."""
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> str:
        sock = bound(self.port, "port")
        sock.listen(128)
        self.port = sock.getsockname()[1]
        token = self._token = new_token()
        access = Access(token, self.port)
        self.feed.start()
        if self.replay:
            self.feed.ready.wait()  # the slider's range is the whole journal's
        mode = REPLAY_MODE if self.replay else LIVE_MODE
        self._served = Served(make_app(self.showing, access, mode=mode), sock, "popkit-power-dashboard",
                              SHUTDOWN_SECONDS)
        self.url = url(self.port, token)
        if not self.replay:
            self.address_file = write_address(self.session.power_dir, port=self.port, token=token,
                                              session=self.session.id, mode=mode)
        if self._follow_active:
            self._switcher = threading.Thread(target=self._follow, name="popkit-power-dashboard-switch", daemon=True)
            self._switcher.start()
        return self.url

    def _follow(self) -> None:
        """Every SWITCH_SECONDS: when another session is active than the one shown, show that one."""
        from ..home import active_session

        while not self._stopping.wait(SWITCH_SECONDS):
            try:
                active = active_session(self.session.power_dir)
            except (OSError, PowerModeError) as error:
                log.warning("the active session cannot be read: %s", error)
                continue
            if active is None or active == self.session.id:
                continue
            try:
                self._show(Session(self.session.power_dir, active, read_only=True))
            except (OSError, PowerModeError) as error:
                log.warning("session %s cannot be shown: %s", active, error)

    def _show(self, session: Session) -> None:
        old, previous = self.feed, self.session
        feed = self._feed(session)
        feed.start()
        self.session, self.feed = session, feed
        self.showing.feed, self.showing.writable = feed, Session(session.power_dir, session.id)
        write_address(session.power_dir, port=self.port, token=self._token, session=session.id, mode=LIVE_MODE)
        log.info("showing session %s (session %s is no longer active)", session.id, previous.id)
        old.close(f"session {previous.id} is no longer the active one: this dashboard shows session {session.id} now",
                  reload=True)

    def serve(self, opened: Any = None) -> None:
        """Answer until SIGINT or SIGTERM, then close (dashboard.json removed, every page told). The server runs in
        a thread and this one waits for the signal: uvicorn's own handling, in the main thread, raises the signal
        again once it has stopped, and the default action then ends the process before anything is cleaned up.
        The signals are caught before `open()` (called here when not opened yet), which writes dashboard.json: one
        that comes as soon as the file is there still has it removed. `opened(url)` is called once it is open."""
        stop = threading.Event()

        def stop_on(signum: int, _frame: Any) -> None:
            stop.set()  # only a flag: nothing unsafe in a signal handler

        previous = {sig: signal.signal(sig, stop_on) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            address = self.url or self.open()
            if opened is not None:
                opened(address)
            self.serve_in_thread()
            while not stop.wait(1.0):
                if self._served is not None and not self._served.alive():
                    raise SessionError("the dashboard's server stopped by itself (see the messages above)")
        finally:
            self.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def serve_in_thread(self) -> None:
        if self._served is not None:
            self._served.start()

    def close(self) -> None:
        self._stopping.set()
        doctor = self._doctor_process
        if doctor is not None and doctor.poll() is None:
            doctor.kill()
        if self._switcher is not None:
            self._switcher.join(timeout=SWITCH_SECONDS + 10)
        if self._served is not None:
            self._served.server.should_exit = True
        self.feed.close("the dashboard stopped")
        if self._served is not None:
            self._served.stop()
        if not self.replay:
            remove_address(self.session.power_dir)


def address_of(session: Session, pid: int, *, seconds: float = 15.0) -> str:
    """The URL of the dashboard the process `pid` serves for `session`, once it has written dashboard.json;
    SessionError naming the coordinator's log when it does not within `seconds`."""
    from ..keys import COORDINATOR_LOG
    from .access import read_address

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = read_address(session.power_dir, pid=pid)
        if found is not None and isinstance(found.get("url"), str):
            return str(found["url"])
        time.sleep(0.05)
    raise SessionError(f"the coordinator (pid {pid}) runs, but its dashboard did not start: see "
                       f"{os.path.join(session.dir, COORDINATOR_LOG)}")
