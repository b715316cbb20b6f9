"""`popkit-power sessions`: every session of the power directory in brief, and `sessions prune` for old ones."""

from __future__ import annotations

from typing import Any

import click
import orjson

from ..coordinator.daemon import running
from ..display import clean
from ..session import Session
from ..session_index import parse_age, prune, summaries
from ..timestamps import day_and_clock
from .common import power_dir
from .help import HelpGroup, plural

OBJECTIVE_CHARS = 60


@click.group(cls=HelpGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session, one per line.")
@click.pass_context
def sessions(ctx: click.Context, as_json: bool) -> None:
    """List every session: objective, start and end, agents, events and outcome (then: sessions prune)."""
    if ctx.invoked_subcommand is not None:
        return
    home = power_dir()
    found = summaries(home)
    if as_json:
        for one in found:
            click.echo(orjson.dumps(one).decode())
        return
    if not found:
        click.echo(f"no sessions in {home}; start one with: popkit-power start \"objective\" (or try: "
                   f"popkit-power demo)")
        return
    click.echo(f"{plural(len(found), 'session')} in {home}, oldest first:")
    for one in found:
        click.echo(session_line(one))


def session_line(found: dict[str, Any]) -> str:
    """One session in two lines: id, start, end and outcome; then agents, events, tasks and the objective."""
    started = day_and_clock(found["started"])
    if found["outcome"] == "closed":
        why = f" ({clean(found['reason'], 60)})" if found["reason"] else ""
        ended = f"to {day_and_clock(found['ended'])}, closed{why}"
    elif found["outcome"] == "active":
        ended = "ACTIVE"
    elif found["outcome"] == "not closed":
        ended = f"not closed (last event {day_and_clock(found['last_event'])})"
    else:
        ended = f"cannot be read: {clean(found['problem'], 200)}"
    tasks = found["tasks"] or {}
    done = ", ".join(f"{count} {status}" for status, count in tasks.items() if count) or "no tasks"
    objective = clean(found["objective"], OBJECTIVE_CHARS) if found["objective"] else "(no objective)"
    agents = plural(found["agents"], "agent") if found["agents"] is not None else "? agents"
    return (f"  {found['session']}  {started} {ended}\n"
            f"      {objective}: {agents}, {plural(found['events'], 'event')}, {done}")


@sessions.command("prune")
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Remove sessions that ended more than AGE ago: a number and a unit, such as 30d, 12h, 2w.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def prune_command(older_than: str, dry_run: bool) -> None:
    """Delete the sessions that ended more than AGE ago (never the active one, nor one whose coordinator runs)."""
    home = power_dir()
    seconds = parse_age(older_than)

    def coordinator_runs(directory: str) -> bool:
        import os

        session = Session(home, os.path.basename(directory), read_only=True)
        try:
            return running(session)
        finally:
            session.journal.close()

    removed, kept = prune(home, seconds, dry_run=dry_run, running=coordinator_runs)
    verb = "would remove" if dry_run else "removed"
    for one in removed:
        click.echo(f"{verb}: {one['session']} ({clean(one['objective'] or '(no objective)', OBJECTIVE_CHARS)})")
    for session_id, why in kept:
        click.echo(f"kept: {session_id}: {why}")
    click.echo(f"{verb} {plural(len(removed), 'session')} that ended more than {older_than} ago"
               f"{'' if removed or kept else ' (none is that old)'}")


COMMANDS = (sessions,)
