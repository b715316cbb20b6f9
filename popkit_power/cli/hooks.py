"""Registering the Power Mode hooks in Claude Code's settings, for people who do not use the plugin."""

from __future__ import annotations

import click

from ..install import install_hooks, settings_path, uninstall_hooks


@click.command()
@click.option("--user", is_flag=True, help="Write ~/.claude/settings.json instead of the project's.")
@click.option("--project-dir", type=click.Path(file_okay=False), default=".", help="The project (default: here).")
def install(user: bool, project_dir: str) -> None:
    """Register the Power Mode hooks in Claude Code's settings (merged with what is there; idempotent)."""
    path = settings_path(user=user, project_dir=project_dir)
    added = install_hooks(path)
    click.echo(f"{'installed' if added else 'already installed'}: popkit-power hooks in {path}")


@click.command()
@click.option("--user", is_flag=True, help="Edit ~/.claude/settings.json instead of the project's.")
@click.option("--project-dir", type=click.Path(file_okay=False), default=".", help="The project (default: here).")
def uninstall(user: bool, project_dir: str) -> None:
    """Remove the Power Mode hooks from Claude Code's settings, leaving everything else as it was."""
    path = settings_path(user=user, project_dir=project_dir)
    removed = uninstall_hooks(path)
    click.echo(f"{'removed' if removed else 'nothing to remove'}: popkit-power hooks in {path}")


COMMANDS = (install, uninstall)
