"""Registering the hook with Claude Code: the plugin's hooks file and `popkit-power install` write the same hooks.

The Stop event has two: the one that records the agent idle (or lets it go on with news that starts a turn), and
its waiter, which Claude Code runs in the background and which wakes the idle agent when such news comes.

Guardrails need one more hook, PreToolUse (one more process before every Edit, Write and Bash call), so it is
registered only where they are configured: `install` adds it when config.json sets guardrails, and
`popkit-power guardrails on|off` adds or removes just that one (for plugin users, whose plugin hooks are fixed).

How the hook is found (docs/hook-setup.md): `install` writes the absolute path of this installation's hook, so it runs
whatever PATH Claude Code has, into `.claude/settings.local.json`, the project's settings that are not committed (the
file is added to the repository's own `info/exclude`), never into the shared `.claude/settings.json`, where a path into
one person's venv would break every teammate's clone; `--user` writes `~/.claude/settings.json`. The plugin cannot
name a path of its own, so its hooks run `run-hook.sh`, a launcher that looks for the hook in the usual places.

`install` merges the hooks without touching anything else there, is idempotent (a second install changes nothing; an
install from another place replaces our old entry) and moves an older install's entries out of `.claude/settings.json`;
`uninstall` removes exactly what it added, and a settings file it leaves holding nothing (`{}`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from typing import Any

from ..errors import ConfigError
from ..home import write_private_file
from ..hook.entry import WAKE_ARG
from ..hook_transport import (
    BUNDLE_FILE,
    CERT_FILE,
    HTTP_EVENTS,
    HTTP_START_TIMEOUT,
    HTTP_TIMEOUT,
    SECRET_HEADER,
    TRUST_ENV,
    port_of,
    url,
)
from ..keys import CLAUDE_DIR

HOOK_EVENTS = ("SessionStart", "PostToolUse", "PostToolUseFailure", "SubagentStart", "SubagentStop", "Stop",
               "SessionEnd")
HOOK_SCRIPT = "popkit-power-hook"
#: Seconds. The hook takes milliseconds; the limit only bounds a pathological stall (e.g. a hung network disk).
HOOK_TIMEOUT = 10


GUARD_EVENT = "PreToolUse"
GUARD_MATCHER = "Edit|Write|MultiEdit|NotebookEdit|Bash"  # the tools a guardrail can match (hook/guard.py)

#: Agent starts may fold the journal since the last snapshot (a welcome needs the state), so they get longer.
START_TIMEOUT = 30
START_EVENTS = ("SessionStart", "SubagentStart")


#: The idle agent's waiter (hook/waiter.py): a second Stop hook, in the background, that wakes the agent when news
#: comes (exit 2 with `asyncRewake`). Claude Code ends it at this timeout at the latest; `wake_max_seconds` in
#: config.json ends it sooner.
WAKE_EVENT = "Stop"
WAKE_TIMEOUT = 24 * 3600


class OverHttp:
    """Where the hooks of HTTP_EVENTS go when they go over HTTP (hook_transport.py): the port, the secret sent as a
    literal header (hex: nothing in it that Claude Code would interpolate), and the certificates Claude Code is to
    trust (NODE_EXTRA_CA_CERTS in the settings' `env`)."""

    __slots__ = ("port", "secret", "trust")

    def __init__(self, port: int, secret: str, trust: str) -> None:
        self.port, self.secret, self.trust = port, secret, trust


def is_our_trust(value: Any) -> bool:
    """Whether an `env` value of NODE_EXTRA_CA_CERTS is one `install` wrote: a power directory's certificate."""
    return isinstance(value, str) and os.path.basename(value) in (CERT_FILE, BUNDLE_FILE)


def hooks_config(command: str, events: tuple[str, ...] = HOOK_EVENTS, http: OverHttp | None = None
                 ) -> dict[str, Any]:
    """The `hooks` table that runs `command` for `events` (every event Power Mode handles, by default); with `http`,
    the events of HTTP_EVENTS are posted to the coordinator instead (the idle agent's waiter stays a command)."""
    return {event: [{**({"matcher": GUARD_MATCHER} if event == GUARD_EVENT else {}),
                     "hooks": [_handler(command, event, http),
                               *([_waiter(command)] if event == WAKE_EVENT else [])]}]
            for event in events}


def _handler(command: str, event: str, http: OverHttp | None) -> dict[str, Any]:
    if http is None or event not in HTTP_EVENTS:
        return {"type": "command", "command": command,
                "timeout": START_TIMEOUT if event in START_EVENTS else HOOK_TIMEOUT}
    # "continue": a coordinator that is down must not stop the agent's tools; its news waits in the journal
    return {"type": "http", "url": url(http.port), "headers": {SECRET_HEADER: http.secret},
            "timeout": HTTP_START_TIMEOUT if event in START_EVENTS else HTTP_TIMEOUT, "onFailure": "continue"}


def _waiter(command: str) -> dict[str, Any]:
    return {"type": "command", "command": f"{command} {WAKE_ARG}", "asyncRewake": True, "timeout": WAKE_TIMEOUT}


#: Where the hooks' port is chosen: below Linux's ephemeral ports (32768-60999), which outgoing connections take at
#: random and could hold when the coordinator starts, and above the usual services' ports.
HOOK_PORTS = range(20000, 32000)


def free_port() -> int:
    """A loopback port nobody listens on now, for the hooks over HTTP (the coordinator binds it at each start)."""
    import random

    from ..errors import SessionError
    from ..loopback import check_port

    for port in random.sample(HOOK_PORTS, 64):
        try:
            check_port(port, "hook_port")
        except SessionError:
            continue
        return port
    raise ConfigError(f"no free loopback port found between {HOOK_PORTS.start} and {HOOK_PORTS.stop}: set "
                      f"hook_port in config.json to one that is free")


def hook_command() -> str:
    """The installed hook script (beside this interpreter, else on PATH), quoted for `sh -c`, which runs it."""
    beside = os.path.join(os.path.dirname(sys.executable), HOOK_SCRIPT)
    if os.access(beside, os.X_OK):
        return shlex.quote(beside)
    found = shutil.which(HOOK_SCRIPT)
    return shlex.quote(found) if found else HOOK_SCRIPT


#: The plugin's hooks run the launcher, which finds the hook without a path written anywhere (docs/hook-setup.md).
LAUNCHER = "run-hook.sh"
PLUGIN_COMMAND = f'sh "${{CLAUDE_PLUGIN_ROOT}}/popkit_power/plugin/{LAUNCHER}"'
SETTINGS, LOCAL_SETTINGS = "settings.json", "settings.local.json"


def settings_path(*, user: bool, project_dir: str = ".") -> str:
    """Where `install` writes: `~/.claude/settings.json` with `user`, else the project's own settings that are not
    committed, `<project_dir>/.claude/settings.local.json`."""
    if user:
        return os.path.join(os.path.expanduser("~"), CLAUDE_DIR, SETTINGS)
    return os.path.join(os.path.abspath(project_dir), CLAUDE_DIR, LOCAL_SETTINGS)


def shared_settings_path(project_dir: str = ".") -> str:
    """The project's committed settings, `<project_dir>/.claude/settings.json`: never written by `install` (an older
    version did; `install` and `uninstall` take its entries out)."""
    return os.path.join(os.path.abspath(project_dir), CLAUDE_DIR, SETTINGS)


def certificates_named_elsewhere(project_dir: str, written: str, environ: dict[str, str] | Any) -> list[str]:
    """The certificate files NODE_EXTRA_CA_CERTS names outside the settings file `written`: in the environment
    `install` runs in (the shell that starts claude, most likely) and in the other settings files. The hooks'
    NODE_EXTRA_CA_CERTS in `written` wins over them, so it must name them too (hook_transport.trusted_certificates)."""
    named = [environ.get(TRUST_ENV)]
    for path in (settings_path(user=True), shared_settings_path(project_dir)):
        if os.path.realpath(path) != os.path.realpath(written) and os.path.exists(path):
            environment = _read(path).get("env")
            named.append(environment.get(TRUST_ENV) if isinstance(environment, dict) else None)
    return list(dict.fromkeys(value for value in named if isinstance(value, str) and value
                              and not is_our_trust(value) and os.path.isfile(value)))


def ignore_locally(project_dir: str) -> str | None:
    """Make git ignore `.claude/settings.local.json` in the repository holding `project_dir`, through the
    repository's own `info/exclude` (never committed, unlike .gitignore); the exclude file's path if a line was
    added, None when it was there already or `project_dir` is in no repository."""
    from ..home import git_common_dir

    common = git_common_dir(os.path.abspath(project_dir))
    if common is None:
        return None
    path = os.path.join(common, "info", "exclude")
    line = f".claude/{LOCAL_SETTINGS}"
    try:
        with open(path, encoding="utf-8") as handle:
            if line in (existing.strip() for existing in handle):
                return None
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"\n# popkit-power install: personal Claude Code settings (the hook's path here)\n{line}\n")
    return path


def is_ours(group: Any, handler: Any) -> bool:
    """A handler `install` wrote: our script, in a group without a matcher, with no fields we do not write.

    A user's own entry for the same script (with a matcher, say) is theirs, and install/uninstall leave it alone; the
    guardrails' PreToolUse group carries our own matcher. Over HTTP, ours is the one posting to our path on
    loopback with our header.
    """
    if not isinstance(handler, dict) or group.get("matcher", GUARD_MATCHER) != GUARD_MATCHER:
        return False
    if handler.get("type") == "http":
        headers = handler.get("headers")
        return not set(handler) - {"type", "url", "headers", "timeout", "onFailure"} \
            and port_of(handler.get("url")) is not None and isinstance(headers, dict) and SECRET_HEADER in headers
    if set(handler) - {"type", "command", "timeout", "asyncRewake"}:
        return False
    try:
        program = shlex.split(str(handler.get("command", "")))[:1]
    except ValueError:
        return False
    return bool(program) and os.path.basename(program[0]) == HOOK_SCRIPT


def install_hooks(path: str, command: str | None = None, events: tuple[str, ...] = HOOK_EVENTS,
                  http: OverHttp | None = None, *, check_only: bool = False) -> bool:
    """Merge the Power Mode hooks for `events` into the settings file at `path` (replacing ours there, whichever
    transport they used: never both at once); return True if the file changed. With `http` the file holds the
    hook's secret, so it is kept 0600. `check_only`: raise whatever would refuse it, and write nothing."""
    settings = _read(path)
    before = json.dumps(settings, sort_keys=True)
    _remove_ours(settings, events)
    hooks = settings.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"{path}: 'hooks' must be an object, not {type(hooks).__name__}")
    for event, groups in hooks_config(command or hook_command(), events, http).items():
        existing = hooks.setdefault(event, [])
        if not isinstance(existing, list):
            raise ConfigError(f"{path}: 'hooks.{event}' must be a list, not {type(existing).__name__}")
        existing.extend(groups)
    if http is not None:
        environment = settings.setdefault("env", {})
        if not isinstance(environment, dict):
            raise ConfigError(f"{path}: 'env' must be an object, not {type(environment).__name__}")
        if TRUST_ENV in environment and not is_our_trust(environment[TRUST_ENV]):
            raise ConfigError(f"{path}: sets {TRUST_ENV} itself ({environment[TRUST_ENV]!r}), which hooks over HTTP "
                              f"need for their certificate: move it to the environment that starts claude (install "
                              f"then trusts both), or keep hooks as commands")
        environment[TRUST_ENV] = http.trust
    if json.dumps(settings, sort_keys=True) == before or check_only:
        return False
    _write(path, settings, private=http is not None)
    return True


def uninstall_hooks(path: str, events: tuple[str, ...] = (*HOOK_EVENTS, GUARD_EVENT)) -> bool:
    """Remove the Power Mode hooks for `events` (and only them) from the settings file; return True if the file
    changed. A file left holding nothing (`{}`) is removed, and its `.claude` folder if that is then empty: nothing
    of the user's was in them."""
    if not os.path.exists(path):
        return False
    settings = _read(path)
    if not _remove_ours(settings, events):
        return False
    if settings:
        _write(path, settings)
        return True
    real = os.path.realpath(path)
    os.unlink(real)
    try:
        os.rmdir(os.path.dirname(real))
    except OSError:  # not empty: the user's other files stay
        pass
    return True


def _remove_ours(settings: dict[str, Any], events: tuple[str, ...]) -> bool:
    """Drop our handlers for `events`, then groups and events left empty by that, and (with all of HTTP_EVENTS) the
    certificate's NODE_EXTRA_CA_CERTS we wrote for them; True if anything was dropped."""
    removed = _drop_trust(settings) if set(events) >= set(HTTP_EVENTS) else False
    hooks = settings.get("hooks")
    if not isinstance(hooks, dict):
        return removed
    dropped = False
    for event in [event for event in hooks if event in events]:
        groups = hooks[event]
        if not isinstance(groups, list):
            continue
        removed_here = False
        for group in list(groups):
            handlers = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(handlers, list) or not any(is_ours(group, handler) for handler in handlers):
                continue
            dropped = removed_here = True
            group["hooks"] = [handler for handler in handlers if not is_ours(group, handler)]
            if not group["hooks"]:
                groups.remove(group)
        if not groups and removed_here:  # emptied by us; a list the user left empty stays
            del hooks[event]
    if not hooks and dropped:
        del settings["hooks"]
    return removed or dropped


def _drop_trust(settings: dict[str, Any]) -> bool:
    environment = settings.get("env")
    if not isinstance(environment, dict) or not is_our_trust(environment.get(TRUST_ENV)):
        return False
    del environment[TRUST_ENV]
    if not environment:
        del settings["env"]
    return True


def _read(path: str) -> dict[str, Any]:
    path = os.path.realpath(path)  # a settings file linked from a dotfiles repository is edited where it lives
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from None
    if not text.strip():
        return {}
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: is not valid JSON ({error}); fix it first, nothing was changed") from None
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: must hold a JSON object; nothing was changed")
    return settings


def _write(path: str, settings: dict[str, Any], *, private: bool = False) -> None:
    path = os.path.realpath(path)  # replace the link's target, not the link
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    if private:  # it holds the hooks' secret: the user's alone
        mode = 0o600
    write_private_file(path, json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    os.chmod(path, mode)  # settings are the user's file, not a private journal file: keep its mode
