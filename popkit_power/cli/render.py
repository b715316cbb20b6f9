"""What the CLI prints for people: status (the model is status.py) as tables, and verify reports.

Status is drawn with rich, in colour on a terminal and as plain text anywhere else (a pipe, a file, a test), from one
layout. rich is imported only when status is drawn: it costs ~40 ms, which the other commands (run by agents in
their Bash calls) and the hook never pay. Every text that came from an agent goes in as `Text`, never as markup, so
`[red]` in a name is shown as written; and through `display.clean`, so it is one line without escape sequences.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import IO, Any

from ..display import MAX_NAME_CHARS, clean, sender_name
from ..projector import TASK_PARKED
from ..status import ALIVE, NONE, SILENT, STOPPED, skipped_entries
from ..timestamps import clock_of, day_and_clock
from .help import plural

TYPE_CHECKING = False
if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

    from ..shapes.state import Task

#: How many rows each section shows at most; the rest are counted ("... and 12 more"), and `--json` has them all.
SHOW_AGENTS, SHOW_TASKS, SHOW_APPROVALS, SHOW_INSIGHTS, SHOW_CONFLICTS = 25, 25, 10, 5, 5
#: The lines of a full status that are not agents' or tasks' rows (header, titles, column heads, the other sections
#: at their caps, roughly): what `--watch` leaves out of the terminal's height before it shares the rest.
_FIXED_LINES = 36
#: The width of status when it is not drawn on a terminal (rich would assume 80), unless $COLUMNS says otherwise.
PLAIN_WIDTH = 120
MAX_TEXT_CHARS = 200

STYLES = {
    "active": "green", "idle": "yellow", "lost": "bold red", "left": "dim", "watching": "dim cyan",
    ALIVE: "bold green", SILENT: "bold red", STOPPED: "yellow", NONE: "dim",
    "orphaned": "bold red", TASK_PARKED: "bold magenta", "open": "cyan", "failed": "red",
}


def no_session_text(info: dict[str, Any]) -> str:
    return (f"Power Mode off: no sessions in {info['power_dir']}\n"
            f"mode: {info['mode']['mode']} ({info['mode']['reason']})\n"
            + "".join(f"problem: {problem}\n" for problem in info.get("problems") or ())
            + 'start one with: popkit-power start "objective" (or see it work first: popkit-power demo)')


# -- status ---------------------------------------------------------------------------------------------------------

def make_console(file: IO[str] | None = None) -> Console:
    """A console for status on `file` (stdout when None): colour when rich finds a terminal there (or FORCE_COLOR;
    NO_COLOR turns colour off), plain text PLAIN_WIDTH wide otherwise. Markup is off: nothing printed is markup."""
    from rich.console import Console

    console = Console(file=file, highlight=False, emoji=False, markup=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = PLAIN_WIDTH
    return console


def status_output(console: Console, info: dict[str, Any]) -> str:
    """The status drawn for `console`: with its colour codes on a terminal; plain text without trailing blanks
    otherwise."""
    with console.capture() as captured:
        console.print(status_view(info))
    text = captured.get()
    if console.is_terminal:
        return text
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def status_text(info: dict[str, Any]) -> str:
    """The status as plain text (no colour), PLAIN_WIDTH wide."""
    import io

    from rich.console import Console

    console = Console(file=io.StringIO(), force_terminal=False, width=PLAIN_WIDTH, highlight=False, emoji=False,
                      markup=False)
    return status_output(console, info)


def watch_status(console: Console, frames: Iterable[dict[str, Any]], *, note: str | None = None) -> None:
    """Draw each status of `frames` as it comes: on a terminal in place (rich Live), with `note` after its time and
    as many agents and tasks as the screen holds; elsewhere one after another, a blank line between them. `frames`
    does the waiting; Ctrl-C in it ends the view with the last status shown."""
    if not console.is_terminal:
        for n, info in enumerate(frames):
            console.file.write(("\n" if n else "") + status_output(console, info))
            console.file.flush()
        return
    from rich.live import Live

    with Live(console=console, auto_refresh=False, transient=False) as live:
        for info in frames:
            rows = max(3, (console.height - _FIXED_LINES) // 2)
            live.update(status_view(info, note=note, rows=rows), refresh=True)


def status_view(info: dict[str, Any], *, note: str | None = None, rows: int | None = None) -> RenderableType:
    """The whole status (or that Power Mode is off): the session and its coordinator, the approvals waiting for the
    human, then agents, tasks, insights and file conflicts; at most `rows` agents and tasks when given."""
    from rich.console import Group
    from rich.text import Text

    if info["session"] is None:
        return Text(no_session_text(info))
    return Group(_header(info, note), *_approvals(info), *_agents(info, min(rows or SHOW_AGENTS, SHOW_AGENTS)),
                 *_tasks(info, min(rows or SHOW_TASKS, SHOW_TASKS)), *_insights(info), *_conflicts(info))


def _text(value: Any, style: str = "", limit: int = MAX_TEXT_CHARS) -> Text:
    """Outside text, made safe (display.clean) and never read as markup."""
    from rich.text import Text

    return Text(clean(value, limit) if value is not None else "-", style=style)


def _name(info: dict[str, Any], key: Any) -> str:
    if not isinstance(key, str):
        return "-"
    name: str | None = info["names"].get(key)
    return name if name is not None else sender_name(key)


def _fit(values: Iterable[str], cap: int, *, extra: int = 0) -> int:
    """The width a column needs for the longest of `values` (plus `extra`), at most `cap`: the columns that name
    things keep their width, and the free text beside them is what gets cut."""
    return min(max((len(value) for value in values), default=0) + extra, cap)


def _title(title: str, summary: str) -> Text:
    from rich.text import Text

    return Text.assemble("\n", (title, "bold"), "  ", summary)


def _table(*columns: tuple[str, dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="dim", show_edge=False)
    for header, options in columns:
        table.add_column(header, **{"no_wrap": True, "overflow": "ellipsis", **options})
    return table


def _indented(table: Table) -> RenderableType:
    from rich.padding import Padding

    return Padding(table, (0, 0, 0, 2))


def _more(shown: int, total: int, what: str) -> list[RenderableType]:
    from rich.text import Text

    if total <= shown:
        return []
    return [Text(f"  ... and {plural(total - shown, 'more ' + what)} (popkit-power status --json lists them all)",
                 style="dim")]


def _header(info: dict[str, Any], note: str | None) -> RenderableType:
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    state = "active" if info["active"] else "not active"
    closed = f", closed {day_and_clock(info['closed'])} UTC" if info["closed"] else ""
    grid.add_row("session", Text.assemble((info["session"], "bold"), f" ({state}{closed})",
                                          (f"  as of {clock_of(info['now'])} UTC{f', {note}' if note else ''}", "dim")))
    grid.add_row("objective", _text(info["objective"], limit=400))
    grid.add_row("mode", Text(f"{info['mode']['mode']} ({info['mode']['reason']})"))
    journal = info["journal"]
    grid.add_row("journal", Text(f"{journal['directory']} through seq {journal['records_through_seq']}"))
    grid.add_row("coordinator", _coordinator(info["coordinator"]))
    if (info.get("hooks") or {}).get("transport") == "http":
        grid.add_row("hooks", _hooks(info["hooks"], active=info["active"]))
    for problem in info.get("problems") or ():
        grid.add_row(Text("problem", style="bold red"), Text(problem, style="red"))
    for origin, machine in (info.get("machines") or {}).items():
        grid.add_row(f"  {clean(origin, 40)}", _coordinator(machine))
    if info.get("replication"):
        grid.add_row("replication", _replication(info["replication"]))
    return grid


def _hooks(hooks: dict[str, Any], *, active: bool) -> Text:
    """Hooks over HTTP: answered or not, and the coordinator's outages, when no tool call was recorded."""
    from rich.text import Text

    where = clean(hooks["url"], 80)
    if not active:
        line = Text(f"over HTTP at {where}")
    elif hooks["answered"]:
        line = Text("answered", style="green")
        line.append(f"  over HTTP at {where}, by the coordinator")
    else:
        since = f" since {day_and_clock(hooks['unanswered_since'])} UTC" if hooks.get("unanswered_since") else ""
        line = Text(f"NOT ANSWERED{since}", style="bold red")
        line.append(f"  at {where}: the agents' tool calls are not recorded and their news waits for the next "
                    f"answered call (no coordinator runs, or it cannot serve there: popkit-power doctor says which)",
                    style="red")
    for outage in (hooks.get("outages") or [])[-3:]:
        line.append(f"\n  the coordinator was down {day_and_clock(outage['from'])} to {clock_of(outage['to'])} UTC: "
                    f"tool calls sent over HTTP then were not recorded", style="yellow")
    return line


def _replication(report: dict[str, Any]) -> Text:
    from rich.text import Text

    line = Text("running" if report["running"] else "not running", style="green" if report["running"] else "red")
    line.append(f"  {clean(report.get('transport'), 120)}: pushed through seq {report['pushed_through']}"
                f" ({report['behind']} behind), {report.get('pulled') or 0} pulled from "
                f"{len(report.get('origins') or [])} other machine(s), {report.get('commands_sent') or 0} commands")
    if report.get("last_error"):
        line.append(f"  last error: {clean(report['last_error'], 200)}", style="yellow")
    if report.get("skipped_entries"):
        line.append(f"  {clean(skipped_entries(report), 300)}", style="yellow")
    return line


def _coordinator(coordinator: dict[str, Any]) -> Text:
    from rich.text import Text

    health = coordinator["health"]
    line = Text()
    if coordinator.get("trouble"):  # it runs, but cannot append (a full disk): not "stopped", not "may have died"
        line.append(f"{clean(coordinator['trouble'], 300)}: it runs and retries", style="red")
        return line
    line.append(health, style=STYLES[health])
    where = []
    if coordinator.get("pid") is not None:
        where.append(f"pid {clean(coordinator['pid'], 20)}")
    if coordinator.get("host"):
        where.append(f"on {clean(coordinator['host'], 64)}")
    if health == ALIVE:
        line.append(f"  {' '.join(where)}, last status {coordinator['ago']}")
    elif health == SILENT and coordinator.get("gone"):
        line.append("  its process is gone (the session's lease is free): nobody notices an agent that dies; "
                    "popkit-power coordinator runs one", style="red")
        if where:
            line.append(f"  {' '.join(where)}")
    elif health == SILENT:
        line.append(f"  no status since {coordinator['ago'].removesuffix(' ago')} "
                    f"(expected every {coordinator['heartbeat_seconds']:g} s): it may have died", style="red")
        if where:
            line.append(f"  {' '.join(where)}")
    elif health == STOPPED:
        reason = f" ({clean(coordinator['reason'], 80)})" if coordinator.get("reason") else ""
        line.append(f"  {coordinator['ago']}{reason}")
    else:
        line.append("  no coordinator has run in this session: nobody notices an agent that dies", style="dim")
    return line


def _agents(info: dict[str, Any], rows: int) -> list[RenderableType]:
    agents: dict[str, dict[str, Any]] = info["agents"]
    if not agents:
        return [_title("agents", "none yet (an agent joins when Claude Code starts with the hooks: "
                                 "popkit-power install, or the plugin)")]
    by_state: dict[str, int] = {}
    for agent in agents.values():
        by_state[agent["state"]] = by_state.get(agent["state"], 0) + 1
    summary = f"{len(agents)} ({', '.join(f'{n} {state}' for state, n in by_state.items())})"
    earlier = sum((info.get("departed_not_listed") or {}).values())
    if earlier:
        summary += f"; {earlier} more departed earlier (status --all lists them)"
    shown = list(agents.items())[:rows]
    table = _table(("agent", {"min_width": _fit((_name(info, key) for key, _ in shown), MAX_NAME_CHARS + 3)}),
                   ("where", {"min_width": _fit((agent.get("label") or "" for _, agent in shown), 24)}),
                   ("state", {"min_width": 6}), ("seen", {"min_width": 10}), ("doing", {"max_width": 60}),
                   ("files", {"max_width": 50}))
    for key, agent in shown:
        status = agent["state"]
        table.add_row(_text(_name(info, key), "bold"), _text(agent.get("label"), "dim"),
                      _text(status, STYLES.get(status, "")), _text(agent["ago"]), _doing(agent),
                      _text(", ".join(agent["recent_files"]) or None, "dim"))
    return [_title("agents", summary), _indented(table), *_more(rows, len(agents), "agent")]


def _doing(agent: dict[str, Any]) -> Text:
    from rich.text import Text

    if agent["status"] in ("lost", "left"):
        reason = agent.get(f"{agent['status']}_reason")
        return Text.assemble((f"{agent['status']}: ", STYLES[agent["status"]]),
                             _text(reason if reason else "no reason given", STYLES[agent["status"]]))
    if not agent.get("current_task"):
        return Text("-", style="dim")
    title = agent.get("current_task_title")
    line = _text(agent["current_task"], limit=60)
    if title and title != agent["current_task"]:
        line.append(" ")
        line.append_text(_text(title, "dim"))
    return line


def _tasks(info: dict[str, Any], rows: int) -> list[RenderableType]:
    tasks: dict[str, Task] = info["tasks"]  # the state's own (status.session_status)
    unfinished: list[str] = info["unfinished_tasks"]
    counts: dict[str, int] = info["task_counts"]
    finished = sum(counts.get(state, 0) for state in ("completed", "failed"))
    if not tasks and not finished:
        return [_title("tasks", "none yet")]
    waiting = ", ".join(f"{counts[state]} {state}" for state in ("parked", "orphaned", "open") if counts.get(state))
    summary = f"{len(unfinished)} unfinished{f' ({waiting})' if waiting else ''}"
    if finished:
        done = ", ".join(f"{counts[state]} {state}" for state in ("completed", "failed") if counts.get(state))
        summary += f"; {finished} finished ({done})"
    if not unfinished:
        return [_title("tasks", summary)]
    shown = unfinished[:rows]
    table = _table(("task", {"min_width": _fit(shown, 32)}), ("status", {"min_width": 8}),
                   ("owner", {"min_width": _fit((_name(info, tasks[t].get("owner") or tasks[t].get("previous_owner"))
                                                 for t in shown), MAX_NAME_CHARS + 7, extra=4)}),
                   ("attempts", {"justify": "right"}), ("title", {}))
    for task_id in shown:
        task = tasks[task_id]
        status = task["status"]
        if task.get("owner"):
            owner = _text(_name(info, task["owner"]))
        elif task.get("previous_owner"):
            owner = _text(f"was {_name(info, task['previous_owner'])}", "dim")
        else:
            owner = _text(None, "dim")
        table.add_row(_text(task_id, limit=60), _text(status, STYLES.get(status, "")), owner,
                      _text(task.get("attempts", 0)), _text(task.get("title")))
    return [_title("tasks", summary), _indented(table), *_more(rows, len(unfinished), "unfinished task")]


#: A question is shown whole: the guard's names the exact call the human approves (a cut one hid its end)
MAX_QUESTION_CHARS = 6000

def _approvals(info: dict[str, Any]) -> list[RenderableType]:
    pending: list[str] = info["pending_approvals"]
    if not pending:
        return []
    shown = pending[:SHOW_APPROVALS]
    table = _table(("request", {"min_width": _fit(shown, 40)}),
                   ("asked by", {"min_width": _fit((_name(info, info["approvals"][r].get("from")) for r in shown),
                                                   MAX_NAME_CHARS + 3)}),
                   ("asked", {"min_width": 10}), ("question", {"no_wrap": False, "overflow": "fold"}),
                   ("options", {"max_width": 30}))
    for request in shown:
        approval = info["approvals"][request]
        options = approval.get("options")
        choices = " / ".join(clean(option, 40) for option in options) if isinstance(options, list) and options else None
        table.add_row(_text(request, "bold", limit=40), _text(_name(info, approval.get("from"))),
                      _text(approval.get("ago")), _text(approval.get("question"), limit=MAX_QUESTION_CHARS),
                      _text(choices or "approve / deny"))
    summary = f"{len(pending)} pending (answer with: popkit-power approve REQUEST, or deny REQUEST)"
    return [_title("approvals", summary), _indented(table), *_more(SHOW_APPROVALS, len(pending), "pending approval")]


def _insights(info: dict[str, Any]) -> list[RenderableType]:
    insights: list[dict[str, Any]] = info["insights"]
    kept = [insight for insight in insights if insight["dup_of"] is None]
    if not insights:
        return []
    duplicates = len(insights) - len(kept)
    summary = f"{len(kept)}" + (f" ({duplicates} duplicate{'s' * (duplicates != 1)} held back)" if duplicates else "")
    shown = kept[::-1][:SHOW_INSIGHTS]
    table = _table(("from", {"min_width": _fit((_name(info, i["from"]) for i in shown), MAX_NAME_CHARS + 3)}),
                   ("insight", {}))
    for insight in shown:
        text = _text(insight["text"])
        if insight.get("duplicates"):
            text.append(f" (+{insight['duplicates']} similar)", style="dim")
        table.add_row(_text(_name(info, insight["from"]), "bold"), text)
    return [_title("insights", summary), _indented(table), *_more(SHOW_INSIGHTS, len(kept), "insight")]


def _conflicts(info: dict[str, Any]) -> list[RenderableType]:
    conflicts: list[dict[str, Any]] = info["conflicts"]
    if not conflicts:
        return []
    table = _table(("file", {}), ("edited by", {}))
    for conflict in conflicts[::-1][:SHOW_CONFLICTS]:
        table.add_row(_text(conflict.get("file")),
                      _text(", ".join(_name(info, key) for key in conflict.get("agents") or ()) or None))
    return [_title("file conflicts", str(len(conflicts))), _indented(table),
            *_more(SHOW_CONFLICTS, len(conflicts), "file conflict")]
