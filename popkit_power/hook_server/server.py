"""Serving the hooks over HTTP while the coordinator runs: `HookServer(power_dir).open()` binds 127.0.0.1:hook_port
(config.json) and answers from a thread (app.py) until `close()`.

It runs inside the coordinator's process (`hooks_alongside`, given to coordinator/daemon.py's `serve` by this
package's `__main__` and by `popkit-power coordinator`), so it is up exactly while the session's coordinator is:
when the coordinator is down, nobody answers, Claude Code goes on without the hook's reply (onFailure "continue"),
the agent's news waits in the journal for the next answered call, and `status` says the hooks are not answered.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..config import usable_config
from ..errors import PowerModeError, SessionError
from ..hook_transport import (
    HTTP,
    certificate_identity,
    certificate_paths,
    read_secret,
    remove_served,
    url,
    write_served,
)
from ..loopback import Served, bound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .app import HookApp

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 2  # a hook call in flight may finish; Claude Code's own timeout is longer


class HookServer:
    def __init__(self, power_dir: str) -> None:
        self.power_dir = power_dir
        self.app: HookApp | None = None
        self._served: Served | None = None
        self.url: str | None = None

    def open(self) -> str:
        """Bind and start answering; the URL. SessionError (or ConfigError, UnsafePathError) naming the problem when
        hooks over HTTP cannot be answered: no port, secret or certificate (`popkit-power install --transport http`
        makes them), one of them not safe to read, the port taken, a server that does not start."""
        config, _problem = usable_config(self.power_dir)
        secret = read_secret(self.power_dir)
        if not config.hook_port or secret is None or certificate_identity(self.power_dir) is None:
            raise SessionError("hooks over HTTP are on in config.json, but no hook_port, secret or certificate was "
                               "set up: run popkit-power install --transport http")
        from .app import HookApp  # anyio and the hook's handlers: only once hooks are answered here

        sock = bound(config.hook_port, "hook_port", what="another program holds it? popkit-power install --transport "
                                                          "http picks a free one (and tells Claude Code)")
        try:
            sock.listen(512)
            self.app = HookApp(self.power_dir, config.hook_port, secret)
            served = Served(self.app, sock, "popkit-power-hooks", SHUTDOWN_SECONDS,
                            tls=certificate_paths(self.power_dir))
        except BaseException:
            sock.close()
            raise
        served.start()  # closes the socket itself when uvicorn does not start
        self._served = served
        write_served(self.power_dir, config.hook_port)
        self.url = url(config.hook_port)
        return self.url

    def alive(self) -> bool:
        return self._served is not None and self._served.alive()

    def close(self) -> None:
        if self._served is not None:
            remove_served(self.power_dir)
            self._served.stop()
            self._served = None


#: How often the coordinator looks at config.json's hook_transport and hook_port, so that `popkit-power install
#: --transport ...` takes effect in a running session: Claude Code reads its changed settings within about a second.
FOLLOW_SECONDS = 1.0


class FollowingConfig:
    """The hooks over HTTP answered from the coordinator's process while config.json asks for them: looked at every
    FOLLOW_SECONDS, opened when `hook_transport` turns "http" (or its port or secret changes), closed when it turns
    "command". Each change, and each new reason it cannot be served, is said once on stderr (the coordinator's
    log); a server that cannot start (its port taken) is tried again at each look, and the coordinator goes on."""

    def __init__(self, power_dir: str) -> None:
        self.power_dir = power_dir
        self.server: HookServer | None = None
        self._serving: tuple[Any, ...] | None = None
        self._said = ""
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="popkit-power-hooks-config", daemon=True)

    def start(self) -> None:
        self._look_safely()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=FOLLOW_SECONDS + 10)
        self._close()

    def _run(self) -> None:
        while not self._stopping.wait(FOLLOW_SECONDS):
            self._look_safely()

    def _look_safely(self) -> None:
        try:
            self.look()
        except Exception as error:  # whatever it is, the coordinator goes on and the next look tries again
            self._close()
            self._serving = None
            self._say(f"hooks: NOT answered over HTTP: {error}")

    def look(self) -> None:
        """Open, move or close the server as config.json and the power directory's files ask now; a server whose
        thread has died is opened again."""
        config, _problem = usable_config(self.power_dir)  # a broken file: its last valid version's transport
        wanted = (config.hook_port, read_secret(self.power_dir), certificate_identity(self.power_dir)) \
            if config.hook_transport == HTTP else None
        if wanted == self._serving and (wanted is None or (self.server is not None and self.server.alive())):
            return
        if self.server is not None:
            self._close()
            if wanted is None:
                self._say(f"hooks: no longer answered over HTTP (hook_transport is {config.hook_transport!r})")
        if wanted is None:
            self._serving = None
            return
        server = HookServer(self.power_dir)
        try:
            address = server.open()
        except (PowerModeError, OSError) as error:
            self._serving = None
            self._say(f"hooks: NOT answered over HTTP: {error}")
            return
        self.server, self._serving = server, wanted
        self._say(f"hooks: answered over HTTP at {address}")

    def _close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None

    def _say(self, line: str) -> None:
        if line != self._said:
            self._said = line
            print(line, file=sys.stderr, flush=True)


def hooks_alongside(power_dir: str, _session_id: str | None) -> Callable[[], None]:
    """For the coordinator's `serve(alongside=...)`: answer the hooks over HTTP from its process while it runs and
    config.json asks for them (`FollowingConfig`); what stops that."""
    following = FollowingConfig(power_dir)
    following.start()
    return following.stop


def together(*starts: Callable[[str, str | None], Callable[[], None]]) -> Callable[[str, str | None],
                                                                                 Callable[[], None]]:
    """Several `alongside` starters as one: started in order, stopped in the reverse order."""
    def start(power_dir: str, session_id: str | None) -> Callable[[], None]:
        stops = [one(power_dir, session_id) for one in starts]

        def stop() -> None:
            for one in reversed(stops):
                one()
        return stop
    return start
