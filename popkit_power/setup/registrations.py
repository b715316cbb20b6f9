"""Where Claude Code is told to run the Power Mode hook, and whether it can: the settings files that name the hook,
the plugin where it is enabled, and each registration's command run the way Claude Code runs it (`sh -c`).

Claude Code reads hooks from `~/.claude/settings.json`, the project's `.claude/settings.json` and
`.claude/settings.local.json`, and from every enabled plugin (`enabledPlugins` in those files, installed under
`~/.claude/plugins/`). A plugin loaded with `claude --plugin-dir DIR` is in no file: only the hook itself can tell
that it runs twice (hook/miswired.py), which `doctor` reads from hook.log.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import Any

from ..hook_transport import SECRET_HEADER
from ..keys import CLAUDE_DIR
from .install import HOOK_EVENTS, HOOK_SCRIPT, LAUNCHER, LOCAL_SETTINGS, PLUGIN_COMMAND, SETTINGS, is_ours

PLUGIN_NAME = "popkit"  # .claude-plugin/plugin.json
RUN_SECONDS = 20.0


def settings_files(project_dir: str, home: str | None = None) -> list[tuple[str, str]]:
    """(what, path) of the settings files Claude Code reads for `project_dir`, user's first."""
    home = home or os.path.expanduser("~")
    project = os.path.abspath(project_dir)
    return [("user settings", os.path.join(home, CLAUDE_DIR, SETTINGS)),
            ("project settings (committed)", os.path.join(project, CLAUDE_DIR, SETTINGS)),
            ("project local settings", os.path.join(project, CLAUDE_DIR, LOCAL_SETTINGS))]


def _load(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _names_hook(command: Any) -> bool:
    """Whether a handler's command runs popkit-power's hook (the script, or the plugin's launcher)."""
    if not isinstance(command, str):
        return False
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return any(os.path.basename(word) in (HOOK_SCRIPT, LAUNCHER) for word in words[:2])


def find(project_dir: str, home: str | None = None) -> list[dict[str, Any]]:
    """Every registration of the hook: {"kind": "settings" or "plugin", "where", "path", "commands": {command:
    [events]}, "http": {url: {"events": [...], "secrets": [the header of each]}} (ours over HTTP), "root" (a
    plugin's folder, when known)}."""
    home = home or os.path.expanduser("~")
    found: list[dict[str, Any]] = []
    enabled: set[str] = set()
    for what, path in settings_files(project_dir, home):
        settings = _load(path)
        if settings is None:
            continue
        plugins = settings.get("enabledPlugins")
        if isinstance(plugins, dict):
            enabled.update(name for name, on in plugins.items()
                           if on is True and isinstance(name, str) and name.split("@")[0] == PLUGIN_NAME)
        hooks = settings.get("hooks")
        commands: dict[str, list[str]] = {}
        http: dict[str, dict[str, Any]] = {}
        for event, groups in (hooks.items() if isinstance(hooks, dict) else ()):
            for group in groups if isinstance(groups, list) else ():
                for handler in (group.get("hooks") if isinstance(group, dict) else None) or ():
                    command = handler.get("command") if isinstance(handler, dict) else None
                    if isinstance(handler, dict) and is_ours(group, handler) and handler.get("type") == "http":
                        posted = http.setdefault(str(handler["url"]), {"events": [], "secrets": []})
                        posted["events"].append(str(event))
                        posted["secrets"].append(handler["headers"].get(SECRET_HEADER))
                        continue
                    if isinstance(command, str) and command.rstrip().endswith(" wake"):
                        continue  # the idle agent's waiter (a second Stop handler by design), not a second hook
                    if _names_hook(command):
                        commands.setdefault(str(command), []).append(str(event))
        if commands or http:
            found.append({"kind": "settings", "where": what, "path": path, "commands": commands, "http": http,
                          "root": None})
    installed = _load(os.path.join(home, CLAUDE_DIR, "plugins", "installed_plugins.json")) or {}
    for name in sorted(enabled):
        entries = (installed.get("plugins") or {}).get(name) if isinstance(installed.get("plugins"), dict) else None
        root = entries[0].get("installPath") if isinstance(entries, list) and entries and isinstance(
            entries[0], dict) else None
        found.append({"kind": "plugin", "where": f"the plugin {name}", "path": root,
                      "commands": {PLUGIN_COMMAND: list(HOOK_EVENTS)}, "http": {}, "root": root})
    return found


def duplicates(found: list[dict[str, Any]]) -> list[str]:
    """The events registered more than once across `found` (each of them runs the hook once per registration)."""
    counts: dict[str, int] = {}
    for registration in found:
        posted = [one["events"] for one in registration.get("http", {}).values()]
        for events in [*registration["commands"].values(), *posted]:
            for event in events:
                counts[event] = counts.get(event, 0) + 1
    return sorted(event for event, count in counts.items() if count > 1)


def package_plugin_root() -> str:
    """The plugin folder that holds this package (a clone used with --plugin-dir): the package's parent."""
    from .. import __file__ as package_init  # popkit_power/__init__.py, wherever this module lies in the package

    return os.path.dirname(os.path.dirname(os.path.abspath(package_init)))


def try_command(command: str, plugin_root: str | None, environ: dict[str, str] | None = None) -> tuple[bool, str]:
    """Run a registration's command with `--version` as Claude Code would run it (`sh -c`, the plugin's folder in
    CLAUDE_PLUGIN_ROOT, this shell's PATH): (whether it answered as popkit-power-hook, what it said)."""
    env = dict(os.environ if environ is None else environ)
    if plugin_root:
        env["CLAUDE_PLUGIN_ROOT"] = plugin_root
    try:
        done = subprocess.run(["sh", "-c", f"{command} --version"], stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, env=env, timeout=RUN_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    said = (done.stdout + done.stderr).strip().splitlines()
    first = said[0] if said else f"exit code {done.returncode}, no output"
    if done.returncode == 0 and first.startswith(HOOK_SCRIPT):
        return True, first
    if done.returncode == 127:
        return False, f"exit 127, command not found: {first}"
    if not said:
        return False, first
    return False, f"exit {done.returncode}: {' | '.join(said[-3:])}"
