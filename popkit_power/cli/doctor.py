"""`popkit-power doctor`: check the set-up and say what to do about each problem (the checks are in setup/doctor.py);
`popkit-power trust`: trust a power directory that came with a project's files."""

from __future__ import annotations

import os
import sys

import click
import orjson

from ..exit_codes import FAILED
from ..home import active_session
from ..home import trust as trust_home
from ..setup.doctor import FAIL, OK, WARN, run_all
from .common import power_dir
from .help import plural

MARKS = {OK: "ok  ", WARN: "warn", FAIL: "FAIL"}


@click.command()
@click.option("--project-dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="The project whose Claude Code settings are checked.")
@click.option("--all", "all_sessions", is_flag=True, help="Verify every session's journal, not only the active one.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check, one per line.")
def doctor(project_dir: str, all_sessions: bool, as_json: bool) -> None:
    """Check the set-up and say what to do about each problem: hooks registered once, the hook runnable, the config,
    the power directory, the journals, the coordinator, replication, and the hook's recent errors. Exit 1 when a
    check fails."""
    home = power_dir()
    checks = run_all(home, project_dir, all_sessions=all_sessions)
    if as_json:
        for check in checks:
            click.echo(orjson.dumps(check.as_dict()).decode())
    else:
        click.echo(f"popkit-power doctor: power directory {home}, project {os.path.abspath(project_dir)}")
        for check in checks:
            click.echo(f"  {MARKS[check.verdict]}  {check.name:<12} {check.found}")
            for fix in check.fixes:
                click.echo(f"        {'' if check.verdict == OK else 'fix: '}{fix}")
        failed = sum(check.verdict == FAIL for check in checks)
        warned = sum(check.verdict == WARN for check in checks)
        if failed or warned:
            click.echo(f"{plural(failed, 'problem')}, {plural(warned, 'warning')}: fix them as each says, then run "
                       f"popkit-power doctor again")
        else:
            click.echo("all good")
    if any(check.verdict == FAIL for check in checks):
        sys.exit(FAILED)


@click.command()
def trust() -> None:
    """Trust the power directory: the hook then speaks from it (its active session's objective and news reach the
    agents). `start` and `join` trust the directory they make a session active in; one that came with a project's
    files (an unpacked archive's .popkit-power) is ignored until this is run. Look at it first: popkit-power status."""
    home = power_dir()
    if not os.path.isdir(home):
        raise click.ClickException(f"{home} does not exist: popkit-power start makes it, and trusts it")
    marker = trust_home(home)
    active = active_session(home)
    click.echo(f"trusted: {home} (marker {marker})" + (f"; the hook now speaks from its active session {active}"
                                                        if active else ""))


COMMANDS = (doctor, trust)
