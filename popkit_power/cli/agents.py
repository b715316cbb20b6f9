"""The verbs agents and people use inside a session: filled in with the hook (issue 3)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the `popkit-power` group."""
