"""Running the coordinator: `popkit-power coordinator` in the foreground (what `start` will run as a daemon)."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

import click

from ..coordinator import PowerModeCoordinator
from .common import power_dir


@click.command(short_help="Run the session's coordinator in the foreground (start runs it as a daemon).")
@click.option("--session", "session_id", metavar="SESSION", help="The session (default: the active one).")
def coordinator(session_id: str | None) -> None:
    """Run the coordinator of the session in the foreground until Ctrl-C or SIGTERM: it notices agents die, hands
    their tasks on, and says it is alive every heartbeat_seconds."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    running = PowerModeCoordinator(power_dir=power_dir(), session_id=session_id)
    running.connect()
    click.echo(f"coordinator: {running.mode} mode ({running.reason})", err=True)

    def stop(signum: int, _frame: Any) -> None:
        running.request_stop()  # only a flag and a wake: nothing unsafe in a signal handler

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    running.run()


COMMANDS = (coordinator,)
