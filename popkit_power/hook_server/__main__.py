"""`python -m popkit_power.hook_server --home DIR --session SESSION [--dashboard-port N]`: the session's coordinator
with the hooks over HTTP answered from its process whenever config.json asks for them (server.py), and its dashboard
too when `--dashboard-port` is given: what `popkit-power start` runs as the session's daemon.

The coordinator runs as `python -m popkit_power.coordinator` runs it (coordinator/daemon.py); it knows nothing of
the hooks' server or the dashboard: this module, above them, puts them together."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..coordinator.daemon import main
from .server import hooks_alongside, together


def run(argv: list[str]) -> int:
    """`--dashboard-port N` serves the dashboard too; the rest is the coordinator's own command line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m popkit_power.hook_server", add_help=False)
    parser.add_argument("--dashboard-port", type=int, default=None, help="serve the dashboard too, on this port")
    known, rest = parser.parse_known_args(argv)
    if known.dashboard_port is not None and not 0 <= known.dashboard_port <= 65535:
        parser.error(f"--dashboard-port {known.dashboard_port} is not a port (0 to 65535)")
    starts: list[Callable[[str, str | None], Callable[[], None]]] = [hooks_alongside]
    if known.dashboard_port is not None:
        from ..dashboard.__main__ import dashboard_alongside  # Starlette and the page: only with a dashboard

        starts.append(dashboard_alongside(known.dashboard_port))
    return main(rest, alongside=together(*starts), prog="python -m popkit_power.hook_server")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
