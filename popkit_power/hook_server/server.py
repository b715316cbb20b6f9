"""Serving the hooks over HTTP while the coordinator runs: `HookServer(power_dir).open()` binds 127.0.0.1:hook_port
(config.json) and answers from a thread (app.py) until `close()`.

It runs inside the coordinator's process (`hooks_alongside`, given to coordinator/daemon.py's `serve` by this
package's `__main__` and by `popkit-power coordinator`), so it is up exactly while the session's coordinator is:
when the coordinator is down, nobody answers, Claude Code goes on without the hook's reply (onFailure "continue"),
the agent's news waits in the journal for the next answered call, and `status` says the hooks are not answered.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from ..config import usable_config
from ..errors import PowerModeError, SessionError
from ..hook_transport import HTTP, certificate_paths, read_secret, url
from ..loopback import Served, bound
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
        """Bind and start answering; the URL. SessionError naming the problem when hooks over HTTP cannot be
        answered: no port or secret (`popkit-power install --transport http` makes them), or the port is taken."""
        config, _problem = usable_config(self.power_dir)
        secret = read_secret(self.power_dir)
        tls = certificate_paths(self.power_dir)
        if not config.hook_port or secret is None or not all(os.path.exists(path) for path in tls):
            raise SessionError("hooks over HTTP are on in config.json, but no hook_port, secret or certificate was "
                               "set up: run popkit-power install --transport http")
        sock = bound(config.hook_port, "hook_port (popkit-power install --transport http picks a free one)")
        sock.listen(512)
        self.app = HookApp(self.power_dir, config.hook_port, secret)
        self._served = Served(self.app, sock, "popkit-power-hooks", SHUTDOWN_SECONDS, tls=tls)
        self._served.start()
        self.url = url(config.hook_port)
        return self.url

    def close(self) -> None:
        if self._served is not None:
            self._served.stop()
            self._served = None


def hooks_alongside(power_dir: str, _session_id: str | None) -> Callable[[], None]:
    """For the coordinator's `serve(alongside=...)`: with `hook_transport: "http"` in config.json, answer the hooks
    over HTTP from its process while it runs; what stops that. A server that cannot start is said, and the
    coordinator goes on without it (the agents' news then waits in the journal; doctor names why)."""
    if usable_config(power_dir)[0].hook_transport != HTTP:
        return lambda: None
    hooks = HookServer(power_dir)
    try:
        address = hooks.open()
    except (PowerModeError, OSError) as error:
        print(f"hooks: NOT answered over HTTP: {error}", file=sys.stderr, flush=True)
        return lambda: None
    print(f"hooks: answered over HTTP at {address}", file=sys.stderr, flush=True)
    return hooks.close


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
