"""Registering the Power Mode hooks in Claude Code's settings, for people who do not use the plugin, and the
guardrails' PreToolUse hook for everyone who configures guardrails."""

from __future__ import annotations

import os

import click

from ..config import load_config, update_config
from ..display import short_names
from ..errors import ConfigError, PowerModeError
from ..home import active_session, trust
from ..hook_transport import COMMAND, HTTP, TRANSPORTS, ensure_secret, trusted_certificates
from ..session import Session
from ..setup import registrations
from ..setup.install import (
    GUARD_EVENT,
    HOOK_EVENTS,
    OverHttp,
    certificates_named_elsewhere,
    free_port,
    ignore_locally,
    install_hooks,
    settings_path,
    shared_settings_path,
    uninstall_hooks,
)
from ..setup.unreported import running_here
from .common import power_dir
from .help import HelpGroup, plural

_USER = click.option("--user", is_flag=True, help="Write ~/.claude/settings.json instead of the project's "
                     ".claude/settings.local.json.")
_PROJECT = click.option("--project-dir", type=click.Path(file_okay=False), default=".",
                        help="The project (default: here).")


def _guardrails_set() -> bool:
    config = load_config(power_dir())
    return bool(config.guardrail_paths or config.guardrail_commands)


@click.command()
@_USER
@_PROJECT
@click.option("--transport", type=click.Choice(TRANSPORTS), default=None,
              help="How Claude Code reaches the hook: a process per call (command, the default) or HTTP answered by "
                   "the running coordinator (http). Saved as hook_transport in config.json; without it, what "
                   "config.json says.")
def install(user: bool, project_dir: str, transport: str | None) -> None:
    """Register the Power Mode hooks in Claude Code's settings (merged with what is there; idempotent). With
    guardrails set in config.json, their PreToolUse hook too.

    They go into the project's .claude/settings.local.json, which is not committed (git is told to ignore it), with
    the absolute path of this installation's hook, so they work whatever PATH Claude Code has; with --user, into
    ~/.claude/settings.json. Use this or the plugin, not both (popkit-power doctor checks).

    With --transport http (docs/hook-setup.md) the tool calls' hooks post to the coordinator on a loopback port
    chosen now, with a secret made for this project; SessionStart, the guardrails and the idle agent's waiter stay
    commands. Switching transports replaces the hooks: never both at once."""
    path = settings_path(user=user, project_dir=project_dir)
    home = power_dir()
    if not os.path.isdir(home):  # made here, so popkit-power's own: trusted, as a session's start makes it
        trust(home)
    if not user:
        _moved_out_of_shared(project_dir)  # first: an older install's entries there are not a second registration
    over_http = _over_http(transport, user, project_dir, path, home)
    guarded = _guardrails_set()
    events = (*HOOK_EVENTS, GUARD_EVENT) if guarded else HOOK_EVENTS
    # config.json (which the running coordinator follows) and the settings (which Claude Code follows) change in the
    # order that leaves no call unanswered: the server opens before the settings post to it, and the settings post
    # elsewhere before it closes. Whatever would refuse the settings is found before config.json changes.
    if over_http is not None:
        install_hooks(path, events=events, http=over_http, check_only=True)
        update_config(home, {"hook_transport": HTTP, "hook_port": over_http.port})
    added = install_hooks(path, events=events, http=over_http)
    if over_http is None and load_config(home).hook_transport != COMMAND:
        update_config(home, {"hook_transport": COMMAND})
    click.echo(f"{'installed' if added else 'already installed'}: popkit-power hooks in {path}"
               f"{' (with the guardrails hook)' if guarded else ''}"
               f"{f', tool calls over HTTPS to 127.0.0.1:{over_http.port}' if over_http else ''}")
    if added and active_session(home):
        click.echo("Claude Code sessions running now read them within a second, and the session's coordinator "
                   "follows config.json as quickly", err=True)
    if not user:
        excluded = ignore_locally(project_dir)
        if excluded:
            click.echo(f"git ignores it from now on (a line in {excluded}): it holds a path into this machine's venv")


def _over_http(transport: str | None, user: bool, project_dir: str, path: str, home: str) -> OverHttp | None:
    """Where the hooks are to post (the secret and certificate made when missing), or None for command hooks;
    ConfigError naming why hooks over HTTP cannot be installed here. config.json is not written here."""
    config = load_config(home)
    if (transport or config.hook_transport) == COMMAND:
        return None
    if user:
        raise ConfigError("hooks over HTTP are installed per project (each project's coordinator answers its own "
                          "port): run popkit-power install --transport http in the project, without --user")
    if os.path.islink(path):
        raise ConfigError(f"{path} is a link (to {os.path.realpath(path)}): hooks over HTTP write the project's "
                          f"secret into it, which must not land in a file shared elsewhere; make it a file of its own")
    others = [one["where"] for one in registrations.find(project_dir)
              if one["kind"] == "plugin" or os.path.realpath(str(one["path"])) != os.path.realpath(path)]
    if others:
        raise ConfigError(f"the hook is also registered in {', '.join(others)}: with hooks over HTTP here, every "
                          f"tool call would be recorded twice. Remove them first (popkit-power uninstall --user, or "
                          f"/plugin uninstall popkit@popkit-power in Claude Code), then install again")
    port = config.hook_port if config.hook_port and _free_or_ours(config.hook_port, home) else free_port()
    certificates = trusted_certificates(home, certificates_named_elsewhere(project_dir, path, os.environ))
    return OverHttp(port, ensure_secret(home), certificates)


def _free_or_ours(port: int, home: str) -> bool:
    """Whether `port` can serve this project's hooks: nobody listens there, or this project's coordinator does."""
    from ..hook_transport import served
    from ..loopback import check_port

    try:
        check_port(port, "hook_port")
    except PowerModeError:
        from ..journal.lease import holder

        session_id = active_session(home)
        serving = served(home)
        return session_id is not None and serving is not None and serving["port"] == port \
            and serving["pid"] == (holder(Session(home, session_id, read_only=True).dir) or {}).get("pid")
    return True


def _moved_out_of_shared(project_dir: str) -> None:
    """An older install wrote .claude/settings.json, which is committed: its entries are taken out."""
    shared = shared_settings_path(project_dir)
    if uninstall_hooks(shared):
        click.echo(f"moved: the popkit-power hooks an older install wrote into {shared} were removed from it")


@click.command()
@_USER
@_PROJECT
@click.option("--force", is_flag=True, help="Remove them even while agents of the active session run on this "
              "machine (they go on working, unrecorded).")
def uninstall(user: bool, project_dir: str, force: bool) -> None:
    """Remove the Power Mode hooks (the guardrails' too) from Claude Code's settings, leaving everything else.

    Claude Code reads its settings again when they change, so agents running now stop being recorded at once:
    while the active session has agents running on this machine, this is refused (naming them) unless --force."""
    paths = [settings_path(user=user, project_dir=project_dir)]
    if not user:
        paths.append(shared_settings_path(project_dir))
    found = registrations.find(project_dir)
    leaving = [one for one in found if one["kind"] == "settings" and one["path"] in paths]
    # agents are cut off only when nothing else (another settings file, the plugin) still runs the hook for them
    cut_off = _running_agents() if leaving and len(leaving) == len(found) else []
    if cut_off:
        names = ", ".join(cut_off)
        if not force:
            raise click.ClickException(
                f"refused: {plural(len(cut_off), 'agent')} of the active session run on this machine and would stop "
                f"being recorded at once (Claude Code reads its settings again): {names}. They would go on working "
                f"unseen by the coordinator, the others and you. Stop the session first (popkit-power stop), or "
                f"remove the hooks anyway with: popkit-power uninstall --force")
        click.echo(f"warning: {names} go on working unrecorded from their next tool call (--force); popkit-power "
                   f"status and doctor will name them", err=True)
    for path in paths:
        removed = uninstall_hooks(path)
        if removed or path == paths[0]:
            click.echo(f"{'removed' if removed else 'nothing to remove'}: popkit-power hooks in {path}")
    home = power_dir()
    if not user and os.path.isdir(home) and load_config(home).hook_transport != COMMAND:
        update_config(home, {"hook_transport": COMMAND})  # nothing posts any more: the coordinator stops answering


@click.group(cls=HelpGroup)
def guardrails() -> None:
    """Turn the guardrails' PreToolUse hook on or off in Claude Code's settings. Guardrails themselves are the
    `guardrail_paths` and `guardrail_commands` patterns in the power directory's config.json; a matching call waits
    for the human's approval. Plugin users turn them on here too (the plugin's own hooks are fixed)."""


@guardrails.command("on")
@_USER
@_PROJECT
def guardrails_on(user: bool, project_dir: str) -> None:
    """Register the PreToolUse hook that enforces the configured guardrails."""
    if not _guardrails_set():
        raise ConfigError(f"no guardrails are set: add \"guardrail_paths\" (e.g. [\"*.env\"]) or "
                          f"\"guardrail_commands\" (e.g. [\"git push*\"]) to {power_dir()}/config.json first")
    path = settings_path(user=user, project_dir=project_dir)
    added = install_hooks(path, events=(GUARD_EVENT,))
    click.echo(f"{'guardrails on' if added else 'guardrails already on'}: PreToolUse hook in {path}")


@guardrails.command("off")
@_USER
@_PROJECT
def guardrails_off(user: bool, project_dir: str) -> None:
    """Remove the guardrails' PreToolUse hook (the patterns in config.json stay)."""
    path = settings_path(user=user, project_dir=project_dir)
    removed = uninstall_hooks(path, events=(GUARD_EVENT,))
    if not user:
        removed = uninstall_hooks(shared_settings_path(project_dir), events=(GUARD_EVENT,)) or removed
    click.echo(f"{'guardrails off' if removed else 'guardrails were not on'}: PreToolUse hook in {path}")


COMMANDS = (install, uninstall, guardrails)


def _running_agents() -> list[str]:
    """The live agents of the active session whose Claude Code process runs on this machine, each as "name (pid
    N)"; none when Power Mode is off or the session cannot be read."""
    home = power_dir()
    try:
        session_id = active_session(home)
        if session_id is None:
            return []
        session = Session(home, session_id, read_only=True)
        try:
            state, _ = session.projection(save_snapshot=False, on_damage=lambda _damage: None)
        finally:
            session.journal.close()
    except (OSError, PowerModeError):
        return []
    names = short_names(state)
    return [f"{names[key]} (pid {state['agents'][key]['pid']})" for key in running_here(state["agents"])]
