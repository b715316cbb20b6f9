"""Replication from the command line: `replicate` (the session's replicator in the foreground; the coordinator runs
one by itself when credentials exist) and `join` (work in a session another machine opened, through Redis or
Upstash)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from ..config import load_config
from ..coordinator.daemon import spawn as spawn_coordinator
from ..display import cut
from ..errors import SessionError
from ..home import active_session as active_session_id
from ..home import set_active_session
from ..keys import COORDINATOR_LOG, RedisLayout
from ..replication.errors import ReplicationError
from ..replication.mode_selector import FILE, open_transport, select_mode
from ..session import Session
from .common import active_session, power_dir, session_to_read
from .sessions import NO_COORDINATOR


@click.command()
@click.option("--once", is_flag=True, help="Push what this machine has not pushed yet (a closed session's end "
              "too), then exit: 0 once the server holds it all, 2 with the reason if it does not.")
@click.option("--session", "session_id", metavar="SESSION", help="With --once: the session (default: the active "
              "one, else the newest).")
def replicate(once: bool, session_id: str | None) -> None:
    """Replicate the active session to Redis or Upstash in the foreground until Ctrl-C or SIGTERM: push this
    machine's events, pull the other machines'. The coordinator does this by itself when credentials are set; use
    this to replicate without one (one replicator per session: a second is refused). With --once, push what is
    left (as `stop` does for a session's end) and exit."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    from ..replication.running import push_to_end, start_replication

    if once:
        found = session_to_read(session_id)
        session = Session(found.power_dir, found.id)
        pushed = push_to_end(session, os.environ, session.config.replication_timeout_seconds)
        if pushed is None:
            raise ReplicationError(f"session {session.id} is not replicated: no Redis or Upstash credentials are "
                                   f"set, and no replicator ever ran for it")
        if not pushed.ok:
            raise ReplicationError(f"session {session.id}: not pushed to {pushed.where}: {pushed.problem}")
        click.echo(f"session {session.id}: every event of this machine is on {pushed.where}")
        return
    if session_id:
        raise click.UsageError("--session goes with --once; without it the active session is replicated")
    session = active_session()
    running = start_replication(Session(session.power_dir, session.id), os.environ, stoppable=True)
    click.echo(f"replicating session {session.id} through {running.replicator.transport.describe()}; Ctrl-C stops",
               err=True)
    done = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not done.wait(1.0) and running.replicator.gone is None:  # it ends when its session directory goes
            pass
    finally:
        running.stop()
        stats = running.replicator.stats
        click.echo(f"stopped: pushed {stats['pushed']}, pulled {stats['pulled']}, "
                   f"{running.replicator.transport.commands_sent} commands", err=True)


@click.command()
@click.argument("session_id", metavar="[SESSION]", required=False)
@click.option("--no-coordinator", "coordinator", flag_value=False, default=True,
              help="Do not start the coordinator (and so no replicator) as a daemon.")
def join(session_id: str | None, coordinator: bool) -> None:
    """Work in the session the team opened on another machine: SESSION, or the one the Redis or Upstash database
    names as active. It becomes this machine's active session, and its coordinator starts here (with the
    replicator, which pulls everything said so far)."""
    home = power_dir()
    config = load_config(home)
    mode = select_mode(os.environ)
    if mode.kind == FILE or not mode.ok:
        raise ReplicationError(f"join needs a Redis or Upstash database the team shares: {mode.reason}")
    transport = open_transport(mode.kind, os.environ)
    assert transport is not None
    layout = RedisLayout(config.redis_prefix)
    try:
        named, objective = transport.execute([["GET", layout.active_session], ["GET", layout.objective]],
                                             timeout=config.replication_timeout_seconds)
        chosen = session_id or (named if isinstance(named, str) else None)
        # a session stopped on another machine (its end is kept for 24 h): nothing to join, no coordinator to start
        [ended] = transport.execute([["EXISTS", layout.completed(chosen)]],
                                    timeout=config.replication_timeout_seconds) if chosen else [0]
    finally:
        transport.close()
    if ended == 1:
        raise SessionError(f"session {chosen} was closed on another machine (popkit-power stop there): there is "
                           f"nothing to join; start a new one with: popkit-power start \"objective\"")
    if not session_id and named is not None and not isinstance(named, str):
        raise SessionError(f"{transport.describe()}: {layout.active_session} holds something else than a session "
                           f"id ({cut(str(named), 120)}); name the session: popkit-power join SESSION")
    session_id = session_id or (named if isinstance(named, str) else None)
    if not session_id:
        raise SessionError(f"{transport.describe()} names no active session under {layout.active_session}; start "
                           f"one on the first machine (popkit-power start \"objective\"), or name it: "
                           f"popkit-power join SESSION")
    current = active_session_id(home)
    if current is not None and current != session_id:
        raise SessionError(f"session {current} is active here; stop it first with: popkit-power stop")
    try:
        session = Session(home, session_id, config)  # joined before: go on with what this machine has
    except SessionError:
        session = Session(home, session_id, config, create=True)
    set_active_session(home, session.id)
    click.echo(f"joined session {session.id}" + (f": {objective}" if isinstance(objective, str) else ""))
    if coordinator and not os.environ.get(NO_COORDINATOR):
        pid = spawn_coordinator(session)
        click.echo(f"coordinator and replicator: pid {pid}, log {os.path.join(session.dir, COORDINATOR_LOG)}")


COMMANDS = (replicate, join)
