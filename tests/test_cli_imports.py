"""The verbs agents run from their Bash tool import only what they use (issue 18 item 4): commands load lazily, so a
`send` or a `claim` imports neither the other commands' modules nor rich (drawn views only) nor watchdog (only a
command that waits follows the journal). Not timed: tools/bench_cli.py measures the time, this test the imports.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import popkit_power.cli as cli
from popkit_power.session import start_session

AGENT, OTHER = "a1b2c3d4-imports-0001:main", "e5f6a7b8-imports-0002:main"

#: A child that runs one command in its own process, as `popkit-power` would, and prints the modules it imported.
CHILD = """
import sys
import orjson
from popkit_power.cli import main
try:
    main(sys.argv[1:], prog_name="popkit-power")
except SystemExit as end:
    code = end.code
print(orjson.dumps({"code": code, "modules": sorted(sys.modules)}).decode())
"""

#: Each agent verb, its arguments (tasks t-claim, t-release, t-done and t-result exist; all but t-claim are the
#: agent's), and the command module it belongs to.
VERBS = {
    "send": (["send", OTHER, "hello"], "messages"),
    "broadcast": (["broadcast", "hello everyone"], "messages"),
    "insight": (["insight", "the cache is per process", "--tags", "cache"], "messages"),
    "publish": (["publish", "broadcast", "published"], "messages"),
    "claim": (["claim", "t-claim"], "tasks"),
    "release": (["release", "t-release"], "tasks"),
    "done": (["done", "t-done", "--result", "done"], "tasks"),
    "result": (["result", "finished", "--task", "t-result"], "tasks"),
    "ask": (["ask", "may I drop the table?"], "approvals"),
}
#: What no agent verb imports: the drawing library, the file watcher, and what only other commands need.
NEVER = ("rich", "watchdog", "popkit_power.coordinator", "popkit_power.demo", "popkit_power.replication",
         "popkit_power.setup", "popkit_power.replay", "popkit_power.upstash_adapter", "popkit_power.status")


@pytest.fixture()
def power_home(tmp_path: Path) -> str:
    home = str(tmp_path / "power")
    session = start_session(home, "imports", sender="human")
    for key, name in ((AGENT, "imports-one"), (OTHER, "imports-two")):
        session.publish("agent.joined", {"name": name}, sender=key)
    for task in ("t-claim", "t-release", "t-done", "t-result"):
        session.publish("task.created", {"task": task, "title": f"task {task}"}, sender="human")
        if task != "t-claim":
            session.publish("task.claimed", {"task": task}, sender=AGENT)
    return home


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_an_agent_verb_imports_its_own_module_only(verb: str, power_home: str) -> None:
    """The verb runs (exit 0) and imports its own command module and what the commands share, no other command's
    module, nor rich, watchdog, or the packages only other commands use."""
    arguments, own = VERBS[verb]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POPKIT", "CLAUDE"))}
    env.update(POPKIT_POWER_HOME=power_home, POPKIT_POWER_AGENT=AGENT)
    completed = subprocess.run([sys.executable, "-c", CHILD, *arguments], env=env, capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    report = orjson.loads(completed.stdout.splitlines()[-1])
    assert report["code"] in (0, None), completed.stdout
    modules = set(report["modules"])
    commands = {name for name in modules if name.startswith("popkit_power.cli.")}
    assert commands == {f"popkit_power.cli.{own}", "popkit_power.cli.common", "popkit_power.cli.help"}
    assert not [name for name in modules if any(name == never or name.startswith(never + ".") for never in NEVER)]


def test_every_command_is_found_by_name() -> None:
    """MODULE_OF_COMMAND names each command of each command module (COMMANDS), each in its own module, and no
    other: a command added to a module and not to the table would be missing from `popkit-power`."""
    found = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_"):  # __main__ runs the command
            continue
        module = importlib.import_module(f"popkit_power.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            found[command.name] = info.name
    assert found == cli.MODULE_OF_COMMAND
    assert set(cli.main.commands) == set(found)


def test_status_imports_neither_the_coordinator_nor_the_replicator(power_home: str) -> None:
    """`status --json`, run as often as a person looks (and by scripts), reads the replicator's report file and the
    coordinator's health from the journal: it imports neither process's code (start and stop do), nor rich."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POPKIT", "CLAUDE"))}
    env.update(POPKIT_POWER_HOME=power_home)
    completed = subprocess.run([sys.executable, "-c", CHILD, "status", "--json"], env=env, capture_output=True,
                               text=True, timeout=120, check=False)
    report = orjson.loads(completed.stdout.splitlines()[-1])
    assert report["code"] in (0, None), completed.stdout
    modules = set(report["modules"])
    assert "popkit_power.status" in modules and "popkit_power.replication.status_file" in modules
    never = ("rich", "popkit_power.coordinator", "popkit_power.replication.replicator",
             "popkit_power.replication.transport")
    assert not [name for name in modules if any(name == no or name.startswith(no + ".") for no in never)]
