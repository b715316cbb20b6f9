"""The `popkit-power` command: a thin layer over the library.

Each command parses its arguments, calls the library, and prints the result; errors become one line on stderr and
exit code 2 in one place, `common.PowerModeGroup` (damage found by `verify` exits 1). Commands by topic:

    sessions.py      start, stop, status, verify
    history.py       sessions, sessions prune (every session in brief; removing old ones)
    replaying.py     replay (events as lines, filtered, followed, or the state at a point), timeline (an HTML page)
    messages.py      publish, insight, send, broadcast
    tasks.py         task add, claim, done, result, release, reassign (the human's override)
    approvals.py     ask, approve, deny (only the human answers, from outside every agent's session)
    coordinating.py  coordinator (the session's coordinator in the foreground)
    replicating.py   replicate (the session's replicator in the foreground), join (a session another machine opened)
    hooks.py         install, uninstall, guardrails (Claude Code's settings)
    doctor.py        doctor (checks the set-up, each problem with its fix), trust (a power directory that came with
                     a project's files)
    upstash.py       upstash status, ping, test (the Upstash or Redis credentials)
    demo.py          demo (a short real session with simulated agents, in a temporary power directory)

and what they share:

    common.py        the power directory and session a command acts on, who sends, and errors as one line
    render.py        status and verify reports drawn for people (rich, imported only when status is drawn)
    help.py          command lists with whole first sentences; counted words (`1 tool call`)
    __main__.py      `python -m popkit_power.cli` (how the demo's agents run it)

The work is in the library: `status.py`, `roster.py`, `session.py`, the packages `replay/`, `setup/`, `replication/`
and `coordinator/`. This `__init__` builds the `main` group from each module's COMMANDS.
"""

from __future__ import annotations

import os

import click

from ..home import find_power_dir
from . import (
    approvals,
    coordinating,
    demo,
    doctor,
    history,
    hooks,
    messages,
    replaying,
    replicating,
    sessions,
    tasks,
    upstash,
)
from .common import PowerModeGroup


@click.group(cls=PowerModeGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.option("--home", "home", metavar="DIR", envvar="POPKIT_POWER_HOME",
              help="The power directory (default: $POPKIT_POWER_HOME, else <git common dir>/popkit-power, "
                   "else ./.popkit-power).")
@click.version_option(package_name="popkit-power")
@click.pass_context
def main(ctx: click.Context, home: str | None) -> None:
    """Power Mode for Claude Code: many agents, one journal."""
    ctx.ensure_object(dict)
    ctx.obj["power_dir"] = os.path.abspath(home) if home else find_power_dir()
    if ctx.invoked_subcommand is None:  # a bare `popkit-power` is asking what there is: the help, and success
        click.echo(ctx.get_help())
        ctx.exit(0)


for _module in (demo, sessions, history, replaying, messages, tasks, approvals, coordinating, replicating, hooks,
                doctor, upstash):
    for _command in _module.COMMANDS:
        main.add_command(_command)
