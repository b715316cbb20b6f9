"""`popkit-power dashboard`: the session in a browser, live, with the human's actions; or a past session replayed
with a time slider (the server is popkit_power/dashboard/; docs/dashboard.md)."""

from __future__ import annotations

import os

import click

from .. import provenance
from ..dashboard.access import read_address
from ..errors import SessionError
from ..home import active_session as active_session_id
from ..session import Session
from .common import power_dir, session_to_read


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--replay", is_flag=True, help="Show a session as it was, with a time slider (SESSION; by default the "
              "active one, else the newest), instead of the active one live.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="The loopback port to listen on (0: any free one).")
@click.option("--url", "show_url", is_flag=True, help="Print the URL (with its token) of the dashboard running for "
              "this power directory, and exit.")
def dashboard(session_id: str | None, replay: bool, port: int, show_url: bool) -> None:
    """Serve the active session on a web page on this machine (127.0.0.1 only), updated as events arrive: agents,
    lanes, the task board with its hand-overs, pending approvals to approve or deny, insights, machines and
    problems; send a message or broadcast, add, release or reassign a task from it. The URL printed carries a new
    random token: only a request with it is answered. Stop with Ctrl-C."""
    home = power_dir()
    if show_url and (session_id is not None or replay or port):
        raise SessionError("--url prints the address of the dashboard that runs: it takes no SESSION, --replay or "
                           "--port")
    if show_url:
        inside = provenance.inside_agent_session(os.environ)
        if inside is not None:  # the token is the human's key: never into a model's context
            raise SessionError(f"refused: the dashboard's address carries the human's key, and this command runs "
                               f"inside an agent's session ({inside}); print it from a terminal outside Claude Code")
        found = read_address(home, session=active_session_id(home))
        if found is None or not isinstance(found.get("url"), str):
            raise SessionError(f"no dashboard runs for {home}; start one with: popkit-power dashboard")
        click.echo(found["url"])
        return
    from ..dashboard.server import Dashboard

    if replay:
        session = session_to_read(session_id)
    else:
        active = active_session_id(home)
        if session_id is not None and session_id != active:
            raise SessionError(f"session {session_id} is not the active one: a past session is shown with "
                               f"popkit-power dashboard --replay {session_id}")
        if active is None:
            raise SessionError(f"Power Mode is off in {home}: start a session (popkit-power start \"objective\"), or "
                               f"look at a past one with: popkit-power dashboard --replay")
        session = Session(home, active, read_only=True)
    # Without SESSION, the dashboard shows whichever session is active, from one to the next.
    server = Dashboard(session, port=port, replay=replay, project_dir=os.getcwd(),
                       follow_active=not replay and session_id is None)
    what = "replay of session" if replay else "live dashboard of session"

    def opened(address: str) -> None:
        click.echo(f"{what} {session.id}: open {address}")
        click.echo("the token in that address is the dashboard's key: whoever has it can "
                   + ("read this session" if replay else f"act as you here; it is kept in {server.address_file} "
                                                          f"(yours only) until the dashboard stops")
                   + "; Ctrl-C stops it")

    server.serve(opened)  # opened there, with Ctrl-C and SIGTERM already caught


COMMANDS = (dashboard,)
