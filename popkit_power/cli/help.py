"""How the commands present themselves: command lists with each command's first sentence whole, and counted words."""

from __future__ import annotations

import click


def first_sentence(command: click.Command) -> str:
    """A command's summary for a list: its `short_help`, else the first sentence of its help, never cut short
    (click's own summary is cut at the terminal's width, often mid-sentence)."""
    if command.short_help:
        return command.short_help
    paragraph = " ".join((command.help or "").strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[: end + 1]


class HelpGroup(click.Group):
    """A command group whose list of commands shows each one's first sentence whole, wrapped to the width."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, first_sentence(command)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 tool call`, `2 tool calls`: a count with its word, in the plural unless it is one."""
    return f"{count} {word if count == 1 else many or word + 's'}"
