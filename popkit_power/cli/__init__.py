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

    common.py        the power directory and session a command acts on, who sends, text that must say something,
                     and errors as one line
    render.py        status and verify reports drawn for people (rich, imported only when status is drawn)
    help.py          command lists with whole first sentences; counted words (`1 tool call`)
    __main__.py      `python -m popkit_power.cli` (how the demo's agents run it)

The work is in the library: `status.py`, `roster.py`, `session.py`, the packages `replay/`, `setup/`, `replication/`
and `coordinator/`. This `__init__` builds the `main` group from each module's COMMANDS, lazily: a command's module is
imported only when that command runs (or when help lists them all). The verbs agents run from their Bash tool (send,
claim, done...) start about as fast as the hook, importing neither the other commands' modules (the coordinator, the
demo, doctor, replication) nor rich (issue 18 item 4; tools/bench_cli.py measures it).
"""

from __future__ import annotations

import importlib
import os

import click

from ..home import find_power_dir
from .common import PowerModeGroup

#: Each command's module (under popkit_power.cli), so that a command's name is known without importing its module.
#: Written once here and checked against every module's COMMANDS by tests/test_cli_imports.py.
MODULE_OF_COMMAND = {
    "demo": "demo",
    "start": "sessions", "stop": "sessions", "status": "sessions", "verify": "sessions",
    "sessions": "history",
    "replay": "replaying", "timeline": "replaying",
    "publish": "messages", "insight": "messages", "send": "messages", "broadcast": "messages",
    "task": "tasks", "claim": "tasks", "done": "tasks", "result": "tasks", "release": "tasks", "reassign": "tasks",
    "ask": "approvals", "approve": "approvals", "deny": "approvals",
    "coordinator": "coordinating",
    "replicate": "replicating", "join": "replicating",
    "install": "hooks", "uninstall": "hooks", "guardrails": "hooks",
    "doctor": "doctor", "trust": "doctor",
    "upstash": "upstash",
    "dashboard": "dashboard",
}


def load_command(name: str) -> click.Command | None:
    """The command called `name`, importing its module (and what that module imports) only; None for no such
    command."""
    module_name = MODULE_OF_COMMAND.get(name)
    if module_name is None:
        return None
    module = importlib.import_module(f"{__name__}.{module_name}")
    command: click.Command = next(command for command in module.COMMANDS if command.name == name)
    return command


class LazyGroup(PowerModeGroup):
    """The `popkit-power` group: knows its commands' names without importing their modules, and imports the module of
    the command that runs only. `commands`, read whole (by help's callers and the tests), loads every one."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(MODULE_OF_COMMAND)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name)

    @property
    def commands(self) -> dict[str, click.Command]:
        loaded = {name: load_command(name) for name in sorted(MODULE_OF_COMMAND)}
        return {name: command for name, command in loaded.items() if command is not None}

    @commands.setter
    def commands(self, value: object) -> None:
        """click.Group's constructor sets no commands here (all come from MODULE_OF_COMMAND)."""
        if value:
            raise TypeError("popkit-power's commands are listed in MODULE_OF_COMMAND, not added")

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Refused: a command added here would be lost (`commands` is built anew from MODULE_OF_COMMAND)."""
        raise TypeError("popkit-power's commands are listed in MODULE_OF_COMMAND, not added")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
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
