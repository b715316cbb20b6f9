"""`popkit-power demo`: a short but real session in a temporary power directory, shown live (popkit_power/demo/)."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from typing import Any

import click

from ..demo.outcome import happened, outcome, summary_lines
from ..demo.run import Demo, DemoFailed, new_directory
from ..demo.story import DEFAULT_SEED
from ..exit_codes import FAILED, INTERRUPTED
from ..replication.mode_selector import CREDENTIAL_VARS
from ..session import Session
from .render import make_console, status_view

TIMELINE_FILE = "timeline.html"


@click.command()
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="The story's seed: the same seed, the same agents, tasks and words.")
@click.option("--pace", type=click.FloatRange(min=0, max=5), default=0.5, show_default=True, metavar="SECONDS",
              help="About how long each simulated agent takes between its tool calls (0: as fast as it can).")
@click.option("--dir", "parent", type=click.Path(file_okay=False), metavar="DIR",
              help="Make the demo's folder in DIR (default: the system's temporary directory).")
def demo(seed: int, pace: float, parent: str | None) -> None:
    """Watch Power Mode work, in a minute, with nothing set up: three simulated agents on one objective.

    In a new temporary power directory (never yours), the real coordinator runs and three agents, each a process
    of its own, feed the real hook what Claude Code would send. One agent is killed mid-task and another takes its
    task over; an insight is shared; an agent asks the human, and the demo, playing the human, approves. Needs no
    Claude Code, network or credentials. At the end it prints what happened and where to look again."""
    for name in CREDENTIAL_VARS:  # the demo never touches a network: its status must not ask Upstash either
        os.environ.pop(name, None)
    directory = new_directory(parent)
    console = make_console()
    live_view = console.is_terminal
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if not live_view:
            click.echo(line)

    run = Demo(directory, seed=seed, pace=pace, say=say)
    click.echo(f"popkit-power demo in {directory} (seed {seed}); Ctrl-C stops it")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    failure: str | None = None
    try:
        run.open()
        run.start_agents()
        if live_view:
            _live(run, console, lines)
        else:
            run.drive(lambda _info: None)
        run.close("the demo finished")
    except KeyboardInterrupt:
        failure = "interrupted"
    except DemoFailed as error:
        failure = str(error)
    finally:
        run.end_agents()
        run.close(f"the demo {'was ' + failure if failure == 'interrupted' else 'ended'}")
        signal.signal(signal.SIGTERM, previous)
    _report(run, directory, failure)


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _live(run: Demo, console: Any, lines: list[str]) -> None:
    """The live view on a terminal: the status (render.status_view) with the story's latest lines under it."""
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    with Live(console=console, auto_refresh=False, transient=False) as live:
        def show(info: dict[str, Any]) -> None:
            rows = max(3, (console.height - 30) // 2)
            story = Text("\n" + "\n".join(lines[-8:]), style="dim")
            live.update(Group(status_view(info, note="demo", rows=rows), Text("\nstory", style="bold"), story),
                        refresh=True)

        run.drive(show)


def _report(run: Demo, directory: str, failure: str | None) -> None:
    """What happened (from the journal), the timeline, and how to look again; exit 1 if the story fell short."""
    session = Session(run.power_dir, run.session.id, read_only=True) if run.session is not None else None
    if session is None:
        click.echo(f"the demo stopped before its session opened ({failure}); {directory} can be removed", err=True)
        sys.exit(INTERRUPTED if failure == "interrupted" else FAILED)
    facts = outcome(session, run.plan)
    missing = happened(facts, run.plan)
    click.echo("")
    click.echo("What happened" + (" before the demo stopped" if failure else "") + ":")
    for line in summary_lines(facts):
        click.echo(f"  - {line}")
    timeline = os.path.join(directory, TIMELINE_FILE)
    click.echo(_write_timeline(session, timeline))
    home = shlex.quote(run.power_dir)
    click.echo(f"look again:  popkit-power --home {home} status   (or replay, sessions, doctor; in your browser: "
               f"dashboard --replay)")
    click.echo(f"the agents' own logs: {run.logs}; remove everything with: rm -rf {shlex.quote(directory)}")
    session.journal.close()
    if failure == "interrupted":
        click.echo("the demo was interrupted; every process it started has ended", err=True)
        sys.exit(INTERRUPTED)
    if failure or missing:
        click.echo(f"popkit-power demo: {failure or 'the story fell short: ' + '; '.join(missing)}", err=True)
        sys.exit(FAILED)
    click.echo("Next: in your own project, see the README's 'Use it in your project'.")


def _write_timeline(session: Session, path: str) -> str:
    """Write the session's HTML timeline to `path` (as `popkit-power timeline --html` does); the line that says
    where it is."""
    from .._fs import write_file_atomically
    from ..replay.timeline import build_timeline
    from ..replay.timeline_page import render

    write_file_atomically(path, render(build_timeline(session)).encode("utf-8"), durable=False, mode=0o644)
    return f"timeline:    {path} (open it in a browser)"


COMMANDS = (demo,)
