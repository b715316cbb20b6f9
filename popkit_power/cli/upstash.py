"""`popkit-power upstash status|ping|test`: the original Power Mode's credential checks (upstash_adapter.py), for
Upstash or, when only REDIS_URL is set, for that Redis."""

from __future__ import annotations

import os

import click

from ..upstash_adapter import ping, self_test, show_status
from .help import HelpGroup


@click.group(cls=HelpGroup)
def upstash() -> None:
    """Check the Upstash (or REDIS_URL) credentials: status, ping, test."""


@upstash.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show what is set (secrets masked) and the mode it selects; contacts nothing."""
    ctx.exit(show_status(os.environ, click.echo))


@upstash.command("ping")
@click.pass_context
def ping_command(ctx: click.Context) -> None:
    """PING the server: its round trip, or the exact failure (exit 1)."""
    ctx.exit(ping(os.environ, click.echo))


@upstash.command()
@click.pass_context
def test(ctx: click.Context) -> None:
    """Round-trip every command popkit-power uses under throwaway keys, deleted after; exit 1 on any failure."""
    ctx.exit(self_test(os.environ, click.echo))


COMMANDS = (upstash,)
