"""`python -m popkit_power.dashboard --home DIR --session SESSION [--port N]`: the session's coordinator with its
dashboard alongside, in one process: what `popkit-power start --dashboard` starts as the session's daemon.

The coordinator runs as `python -m popkit_power.coordinator` runs it (coordinator/daemon.py: its lease, its signals,
its log); once it is connected the dashboard is served from a thread (server.py) and written into dashboard.json,
and when the coordinator stops, the dashboard stops with it. The coordinator knows nothing of the dashboard: this
module, above both, puts them together."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..coordinator.daemon import main
from ..session import Session
from .server import Dashboard


def dashboard_alongside(port: int) -> Callable[[str, str | None], Callable[[], None]]:
    def start(power_dir: str, session_id: str | None) -> Callable[[], None]:
        try:
            session = Session(power_dir, session_id, read_only=True) if session_id else Session.active(power_dir)
            dashboard = Dashboard(session, port=port)
            dashboard.open()  # which stops what it started when it fails
        except Exception as error:  # the coordinator goes on: nobody would notice a dead agent else
            print(f"dashboard: not served: {error}", file=sys.stderr, flush=True)
            return lambda: None
        dashboard.serve_in_thread()
        print(f"dashboard: http://127.0.0.1:{dashboard.port}/ (its token is in {dashboard.address_file})",
              file=sys.stderr, flush=True)
        return dashboard.close
    return start


def run(argv: list[str]) -> int:
    """`--port N` (or `--port=N`) is the dashboard's; the rest is the coordinator's own command line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m popkit_power.dashboard", add_help=False)
    parser.add_argument("--port", type=int, default=0, help="the loopback port (0: any free one)")
    known, rest = parser.parse_known_args(argv)
    if not 0 <= known.port <= 65535:
        parser.error(f"--port {known.port} is not a port (0 to 65535)")
    return main(rest, alongside=dashboard_alongside(known.port), prog="python -m popkit_power.dashboard")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
