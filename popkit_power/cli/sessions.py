"""Commands on a session as a whole: start, stop, status, verify."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import click
import orjson

from ..config import Config, load_config
from ..display import quoted
from ..errors import ConfigError, PowerModeError, SessionError
from ..exit_codes import FAILED
from ..home import active_session as active_session_id
from ..home import list_sessions
from ..journal.verify import verify_journal
from ..keys import CONFIG_FILE, COORDINATOR_LOG, LAST_VALID_FILE
from ..replication.mode_selector import not_replicated, select_mode
from ..roster import shell_word
from ..session import Session, start_session, stop_session, summarize
from ..setup.problems import problems, untrusted_problem
from ..status import StatusReader, no_session
from .common import active_session, os_problem, power_dir, sender_for, sender_option, session_to_read
from .help import plural
from .render import make_console, status_output, watch_status

#: what a person may write into a power directory before its first `start` (README, "Guardrails")
SETTINGS_FILES = {CONFIG_FILE, LAST_VALID_FILE}

#: Set (to anything) to open sessions without starting their coordinator, as the test suite does.
NO_COORDINATOR = "POPKIT_POWER_NO_COORDINATOR"


@click.command()
@click.argument("objective")
@click.option("--switch", is_flag=True, help="If another session is active, close it once the new one is open (its "
              "journal records the switch); without this, start is refused while a session is active.")
@click.option("--coordinator/--no-coordinator", default=True, show_default=True,
              help="Start the session's coordinator as a daemon (also off with POPKIT_POWER_NO_COORDINATOR set).")
@click.option("--dashboard", is_flag=True, help="Have the coordinator serve the session's dashboard too (popkit-power "
              "dashboard), and print its URL.")
@click.option("--dashboard-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="With --dashboard: the loopback port (0: any free one).")
@sender_option
def start(objective: str, switch: bool, coordinator: bool, dashboard: bool, dashboard_port: int,
          sender: str | None) -> None:
    """Open a power session for OBJECTIVE, make it the active one, and start its coordinator as a daemon. Refused
    while another session is active: stop that one first (popkit-power stop), or switch in one step with --switch."""
    home = power_dir()
    if dashboard and not coordinator:
        raise SessionError("--dashboard is served by the coordinator, which --no-coordinator leaves out: run "
                           "popkit-power dashboard instead")
    if dashboard:  # a port that is taken is said before any session is opened (but the one `--switch` frees)
        from ..dashboard.access import read_address
        from ..loopback import check_port

        current = active_session_id(home)
        freed = read_address(home, session=current) if switch and current else None
        if not (freed and freed.get("session") == current and freed.get("port") == dashboard_port):
            check_port(dashboard_port, "--dashboard-port")
    who = sender_for("session.opened", sender)
    untrusted = untrusted_problem(home)
    found = set(os.listdir(home)) if untrusted else set()
    if found - SETTINGS_FILES:  # starting in it would trust sessions that came with the files: asked first
        raise SessionError(f"{untrusted} (then start again), or remove it: rm -r {home}")
    config = load_config(home)  # a bad config.json is named before anything else
    if found:  # a config.json written by hand before the first start (README, "Guardrails"), or one that came along
        click.echo(f"using {os.path.join(home, CONFIG_FILE)}, which popkit-power on this machine did not make: "
                   f"check it if you did not write it", err=True)
    previous_id = active_session_id(home)
    if previous_id is not None and not switch and objective.strip():
        again = shell_word(objective, '"objective"')
        raise SessionError(f"session {previous_id}{_objective_of(home, previous_id, config)} is active; stop it "
                           f"first with: popkit-power stop, or close it and start this one in one step with: "
                           f"popkit-power start --switch {again}")
    # Opened before anything is written: a session that cannot be closed (its journal gone) is not switched away from.
    previous = Session(home, previous_id, config) if previous_id is not None else None
    # All or nothing: a start that fails leaves the previous session active and writes nothing into it.
    session = start_session(home, objective, sender=who, config=config)
    click.echo(f"Power Mode on: session {session.id}")
    click.echo(f"objective: {objective.strip()}")
    click.echo(f"journal:   {session.journal.directory} (file journal)")
    warning = not_replicated(select_mode(os.environ))
    if warning:
        click.echo(warning, err=True)
    if previous is not None:
        try:
            _coordinator().stop(previous)
            closing = {"reason": f"switched to session {session.id}",
                       "summary": summarize(previous.projection(save_snapshot=False)[0])}
            previous.publish("session.closed", closing, sender=who)
        except (OSError, PowerModeError) as error:
            problem = os_problem(error, home) if isinstance(error, OSError) else str(error)
            raise SessionError(f"session {session.id} is active, but the previous session {previous.id} could not "
                               f"be recorded as closed: {problem}") from error
        click.echo(f"switched from session {previous.id} (closed)")
        push_end(previous)
    if coordinator and not os.environ.get(NO_COORDINATOR):
        served = _served(dashboard, dashboard_port)
        pid = _coordinator().spawn(session, **served)
        click.echo(f"coordinator: pid {pid}, log {os.path.join(session.dir, COORDINATOR_LOG)}")
        if dashboard:
            from .. import provenance
            from ..dashboard.server import address_of

            address = address_of(session, pid)
            if provenance.inside_agent_session(os.environ) is not None:  # the human's key, never a model's context
                click.echo(f"dashboard: served at {address.split('?')[0]}; its address with the key: popkit-power "
                           f"dashboard --url, in a terminal outside Claude Code")
            else:
                click.echo(f"dashboard: open {address} (the token in it is the page's key; popkit-power dashboard "
                           f"--url prints it again)")


def _served(dashboard: bool, dashboard_port: int) -> dict[str, Any]:
    """The coordinator's process (coordinator/daemon.py `spawn`): the coordinator with the hooks over HTTP answered
    whenever config.json asks for them (from now on too: `install --transport` switches a running session), and the
    dashboard when asked."""
    more = ["--dashboard-port", str(dashboard_port)] if dashboard else []
    return {"module": "popkit_power.hook_server", "more": more}


def _coordinator() -> ModuleType:
    """coordinator/daemon.py, imported by start and stop only: it pulls in the coordinator and the replicator
    (~20 ms), which status, run as often as a person looks, does not need."""
    from ..coordinator import daemon

    return daemon


def _objective_of(home: str, session_id: str, config: Config) -> str:
    """` ("objective")` of a session, from its first record, for a message; "" when it cannot be read."""
    try:
        first = next(iter(Session(home, session_id, config, read_only=True).journal.reader()), None)
    except (OSError, PowerModeError):
        return ""
    objective = ((first or {}).get("data") or {}).get("objective") if isinstance(first, dict) else None
    return f" ({quoted(objective)})" if isinstance(objective, str) else ""


@click.command()
@sender_option
def stop(sender: str | None) -> None:
    """Stop the session's coordinator, close the session with a summary of what was done, turn Power Mode off, and,
    when it is replicated, push its end to the other machines (they close it too) before returning."""
    who = sender_for("session.closed", sender)
    stopped = _coordinator().stop(active_session())
    if stopped is not None:
        click.echo(f"coordinator stopped (pid {stopped})")
    session = stop_session(power_dir(), sender=who)
    click.echo(f"Power Mode off: session {session.id} closed")
    push_end(session)


def push_end(session: Session) -> None:
    """Push a closed session's end to the server (replication/running.py), waiting at most
    replication_timeout_seconds; say where it went, or that it did not and how to push it later."""
    from ..replication.running import push_to_end

    pushed = push_to_end(Session(session.power_dir, session.id, session.config), os.environ,
                         session.config.replication_timeout_seconds)
    if pushed is None:
        return
    if pushed.ok:
        click.echo(f"pushed to {pushed.where}: the other machines close the session as they receive it")
        return
    click.echo(f"warning: the session's end was not pushed to {pushed.where} ({pushed.problem}); the other machines "
               f"still see it open. It is in this machine's journal: push it when the server answers with: "
               f"popkit-power replicate --once --session {session.id}", err=True)


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (with --watch, one per line).")
@click.option("--watch", is_flag=True, help="Keep showing it, redrawn in place, until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=1.0, show_default=True, metavar="SECONDS",
              help="With --watch: how often to read the journal again.")
@click.option("--count", type=click.IntRange(min=1), metavar="N", help="With --watch: stop after N refreshes.")
@click.option("--all", "everything", is_flag=True, help="Every agent that took part and every finished task (with "
              "--json), folded from the journal's start: slower on a long session.")
def status(session_id: str | None, as_json: bool, watch: bool, interval: float, count: int | None,
           everything: bool) -> None:
    """Show the session (the active one by default): its coordinator, agents, tasks, approvals and insights.

    Colour on a terminal, plain text elsewhere, --json for scripts; --watch keeps it on screen. The agents that
    departed long ago and the finished tasks past the most recent ones are counted, not listed: --all lists them."""
    frames = _status_frames(session_id, count=count if watch else 1, interval=interval, everything=everything)
    if not watch:
        info = next(frames)
        # colour codes are there only if the console found a terminal; click would strip them from a non-tty
        click.echo(orjson.dumps(info).decode() if as_json else status_output(make_console(), info),
                   nl=as_json, color=True)
        return
    try:
        if as_json:
            for info in frames:
                click.echo(orjson.dumps(info).decode())
        else:
            watch_status(make_console(), frames,
                                note=f"every {interval:g} s, Ctrl-C to stop" if count is None else None)
    except KeyboardInterrupt:  # Ctrl-C is how a person ends a watch: not an error
        pass


def _status_frames(session_id: str | None, *, count: int | None, interval: float,
                   everything: bool = False) -> Iterator[dict[str, Any]]:
    """The status `count` times (forever when None), `interval` seconds apart. Without SESSION each read follows the
    active session (else the newest), so a watch goes on across stop and start; each read folds only the events
    appended since the one before (status.StatusReader)."""
    reader: StatusReader | None = None
    shown = 0
    while True:
        home = power_dir()
        try:
            config, config_error = load_config(home), None
        except ConfigError as error:  # shown, not refused: the status is read with the defaults
            config, config_error = Config(), str(error)
        if not session_id and not list_sessions(home):
            info = no_session(home)
        else:
            wanted = session_id or active_session_id(home) or list_sessions(home)[-1]
            if reader is None or reader.session.id != wanted:
                if reader is not None:
                    reader.session.journal.close()
                reader = StatusReader(session_to_read(session_id or wanted, config), everything=everything)
            info = reader.read()
        info["problems"] = problems(home, info, config_error)
        yield info
        shown += 1
        if count is not None and shown >= count:
            return
        time.sleep(interval)


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def verify(session_id: str | None, as_json: bool) -> None:
    """Check a journal's records, seqs and checksums; exit 1 if anything is damaged."""
    session = session_to_read(session_id)
    report = verify_journal(session.journal)
    report["session"] = session.id
    click.echo(orjson.dumps(report).decode() if as_json else verify_text(report))
    if not report["ok"]:
        sys.exit(FAILED)


COMMANDS = (start, stop, status, verify)


def verify_text(report: dict[str, Any]) -> str:
    """`verify`'s report as the lines a person reads."""
    seqs = f"seq {report['first_seq']}..{report['last_seq']}" if report["records"] else "no records"
    lines = [f"{'OK' if report['ok'] else 'DAMAGED'}: {plural(report['records'], 'record')}, {seqs}, "
             f"{plural(len(report['segments']), 'segment')} in {report['journal']}"]
    for damage in report["damaged"]:
        lines.append(f"  damaged: seq {damage['seq']} at {damage['segment']} byte {damage['offset']}: "
                     f"{damage['reason']}")
    for gap in report["gaps"]:
        lines.append(f"  gap: no record between seq {gap['after']} and seq {gap['before']}")
    for seq in report["repeats"]:
        lines.append(f"  repeated: seq {seq}")
    for misnamed in report["misnamed"]:
        lines.append(f"  misnamed: {misnamed['segment']} starts with seq {misnamed['first_seq']}")
    if report["torn_tail"]:
        torn = report["torn_tail"]
        lines.append(f"  torn tail: {torn['bytes']} bytes at {torn['segment']} byte {torn['offset']} "
                     f"(repaired by the next append)")
    return "\n".join(lines)
