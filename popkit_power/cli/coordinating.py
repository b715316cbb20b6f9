"""Running the coordinator: `popkit-power coordinator` in the foreground (what `start` runs as a daemon, through
`python -m popkit_power.coordinator`, or `python -m popkit_power.hook_server` with hooks over HTTP: all are
coordinator/daemon.py's `serve`)."""

from __future__ import annotations

import click

from ..coordinator.daemon import serve
from .common import power_dir


@click.command(short_help="Run the session's coordinator in the foreground (start runs it as a daemon).")
@click.option("--session", "session_id", metavar="SESSION", help="The session (default: the active one).")
def coordinator(session_id: str | None) -> None:
    """Run the coordinator of the session in the foreground until Ctrl-C or SIGTERM: it notices agents die, hands
    their tasks on, and says it is alive every heartbeat_seconds. With hook_transport "http" in config.json it
    answers the agents' hooks too."""
    from ..hook_server.server import hooks_alongside  # anyio and the handlers: only for this command

    serve(power_dir(), session_id, alongside=hooks_alongside)


COMMANDS = (coordinator,)
