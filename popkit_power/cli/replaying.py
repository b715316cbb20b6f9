"""Looking back at a session: replay (its events as lines, filtered, followed, or its state at a point) and timeline
(one HTML page). The work is in the replay package (story.py, playback.py, timeline.py); these commands parse,
print and write."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ..errors import SessionError
from .common import session_to_read

if TYPE_CHECKING:
    pass

#: A replay shows a progress bar on a terminal when the journal is at least this large (about 10,000 events).
PROGRESS_MIN_BYTES = 4 << 20
_PROGRESS_EVERY = 4096  # records between two updates of the bar


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")  # sys.stdout looked up each time: a progress bar replaces it while it shows


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, each event as recorded (with --at: "
              "the state as `status --json` prints it).")
@click.option("--at", "at", metavar="SEQ|TIME", help="Show the session's state (as status draws it) at this point: "
              "after the record SEQ, or at TIME, a time of the session's first day (10:01:23, UTC) or an ISO time.")
@click.option("--events", "with_events", is_flag=True, help="With --at: print the events up to that point first.")
@click.option("--agent", "agents", multiple=True, metavar="NAME", help="Only events from, to or about this agent: a "
              "start of its short name or of its key, in any case. Repeatable.")
@click.option("--ch", "channels", multiple=True, metavar="CHANNEL", help="Only events on this channel. Repeatable.")
@click.option("--type", "types", multiple=True, metavar="TYPE", help="Only events of this type, or of this family "
              "(task.). Repeatable.")
@click.option("--follow", "-f", is_flag=True, help="Then keep printing new events until the session closes (Ctrl-C "
              "ends it sooner).")
@click.option("--from-seq", type=click.IntRange(min=1), default=1, help="Start at this seq.")
@click.option("--to-seq", type=click.IntRange(min=1), help="Stop after this seq.")
def replay(session_id: str | None, as_json: bool, at: str | None, with_events: bool, agents: tuple[str, ...],
           channels: tuple[str, ...], types: tuple[str, ...], follow: bool, from_seq: int,
           to_seq: int | None) -> None:
    """Print a session's events (the active session by default, else the newest), one line each: seq, time (UTC),
    agent, channel, and what happened. Damaged records are reported where they lie, and skipped."""
    from ..replay.story import Filters, damage_line, parse_point

    filters = Filters(agents, channels, types)
    point = parse_point(at) if at else None
    if point is not None and follow:
        raise SessionError("--at shows one moment of a session and --follow goes on with it: use one of them")
    if with_events and point is None:
        raise SessionError("--events goes with --at (the events up to that point, then the state there)")
    session = session_to_read(session_id)
    show_events = point is None or with_events
    start = from_seq
    if point is not None and point.seq is not None and not show_events:
        start = point.seq + 1  # nothing to print before it: a snapshot may spare the fold
    from ..replay.playback import Playback

    def damaged(damage: Any) -> None:
        if as_json or not show_events:
            click.echo(f"popkit-power: skipped a damaged record: {damage}", err=True)
        else:
            _emit(damage_line(damage))

    playback = Playback(session, start_seq=start, names=(show_events and not as_json) or filters.needs_names,
                        full=point is not None, on_damage=damaged)
    until = _until(point, to_seq)
    try:
        with _progress(playback, enabled=sys.stdout.isatty() and not as_json and not follow) as advance:
            _print_events(playback, filters, until, follow=follow, as_json=as_json, show=show_events,
                          advance=advance)
    except KeyboardInterrupt:  # how a person ends --follow: not an error
        return
    _report_damage(playback, session.id, as_json=as_json or not show_events)
    if show_events and not follow and playback.book is not None:
        filters.check(playback.book, f"session {session.id}")
    if point is not None:
        _print_state(playback, point, as_json=as_json, after_events=with_events)


def _until(point: Any, to_seq: int | None) -> Callable[[dict[str, Any]], bool] | None:
    """Whether a record lies past where the replay stops (--at, --to-seq); a time of day is resolved against the
    first record's day."""
    if point is None and to_seq is None:
        return None
    started = [False]

    def past(event: dict[str, Any]) -> bool:
        if point is not None and not started[0]:
            point.start(event.get("ts"))
            started[0] = True
        seq = event.get("seq")
        return (point is not None and point.past(event)) or (to_seq is not None and isinstance(seq, int)
                                                             and seq > to_seq)
    return past


def _print_events(playback: Any, filters: Any, until: Any, *, follow: bool, as_json: bool, show: bool,
                  advance: Callable[[], None] | None) -> None:
    import orjson

    from ..replay.story import day_line, event_line
    from ..timestamps import day_of

    book = playback.book
    day: Any = None
    count = 0
    for event in playback.events(follow=follow, until=until):
        count += 1
        if advance is not None and count % _PROGRESS_EVERY == 0:
            advance()
        if not show or not filters(event, book):
            continue
        if as_json:
            sys.stdout.buffer.write(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))
            if follow:
                sys.stdout.flush()
            continue
        ts = event.get("ts")
        if isinstance(ts, str) and not ts.startswith(day or "\x00"):
            today = day_of(ts)
            if today is not None:
                day = today
                _emit(day_line(today))
        _emit(event_line(event, book))
        if follow:
            sys.stdout.flush()


class _progress:
    """A rich progress bar over the journal's bytes while a long replay runs on a terminal; yields the function that
    moves it on (None when there is no bar)."""

    def __init__(self, playback: Any, *, enabled: bool) -> None:
        self.playback = playback
        self.bar: Any = None
        self.total = playback.total_bytes() if enabled else 0
        self.enabled = enabled and self.total >= PROGRESS_MIN_BYTES

    def __enter__(self) -> Callable[[], None] | None:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        from .render import make_console

        self.bar = Progress(TextColumn("replaying"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                            console=make_console(), transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("replay", total=self.total)
        return lambda: self.bar.update(task, completed=min(self.total, self.playback.done_bytes()))

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)


def _report_damage(playback: Any, session_id: str, *, as_json: bool) -> None:
    """After a replay: the torn tail it stopped before, and how many damaged records it skipped."""
    from ..replay.story import torn_line

    torn = None if playback.stopped else playback.torn_tail()
    if torn is not None:
        if as_json:
            click.echo(f"popkit-power: {torn_line(*torn).strip()}", err=True)
        else:
            _emit(torn_line(*torn))
    if playback.damaged:
        click.echo(f"popkit-power: skipped {playback.damaged} damaged record(s) of session {session_id}; "
                   f"popkit-power verify {session_id} shows where", err=True)


def _print_state(playback: Any, point: Any, *, as_json: bool, after_events: bool) -> None:
    """The session's state at `point`, as status shows it (or its --json)."""
    import orjson

    from ..replay.story import last_ts
    from ..status import session_status
    from ..timestamps import seconds_of
    from .render import make_console, status_output

    book = playback.book
    last_seq = playback.covered.seq - 1
    if playback.records == 0 and playback.covered.seq <= 1:  # nothing folded, not even from a snapshot
        raise SessionError(f"--at {point.text!r} is before the first record of session {playback.session.id}")
    if point.seq is not None and last_seq < point.seq and not playback.stopped:
        raise SessionError(f"--at {point.text!r} is past the end of session {playback.session.id}, whose records go "
                           f"through seq {last_seq}")
    now = point.seconds if point.seconds is not None else seconds_of(playback.last_ts or last_ts(book.state))
    if after_events and not as_json:
        _emit(f"\n== the state at --at {point.text}: through seq {last_seq} ==")
    info = session_status(playback.session, book.state, playback.covered, now=now)
    click.echo(orjson.dumps(info).decode() if as_json else status_output(make_console(), info), nl=as_json,
               color=True)


@click.command()
@click.argument("session_id", required=False, metavar="[SESSION]")
@click.option("--html", "html_file", required=True, metavar="FILE", help="Write the timeline to FILE, one "
              "self-contained page (- for stdout).")
def timeline(session_id: str | None, html_file: str) -> None:
    """Draw a session's timeline (the active one by default, else the newest) as one HTML page: a lane per agent
    across time, with its tool calls, heartbeats, insights, messages, tasks, approvals and its end."""
    from ..replay.timeline import build_timeline
    from ..replay.timeline_page import render

    session = session_to_read(session_id)
    damaged = [0]

    def count(damage: Any) -> None:
        damaged[0] += 1

    model = build_timeline(session, on_damage=count)
    page = render(model).encode("utf-8")
    if html_file == "-":
        sys.stdout.buffer.write(page)
        sys.stdout.flush()
    else:
        _write_file(html_file, page)
        agents = sum(1 for lane in model["lanes"] if lane["role"] == "agent")
        click.echo(f"timeline of session {session.id}: {model['records']} records, {agents} agent lane(s), "
                   f"{len(model['marks'])} marks, {len(page) // 1024} KiB in {html_file}")
    if damaged[0]:
        click.echo(f"popkit-power: skipped {damaged[0]} damaged record(s) of session {session.id}; popkit-power "
                   f"verify {session.id} shows where", err=True)


def _write_file(path: str, data: bytes) -> None:
    """Write `data` to `path` (through a link, as the shell does): a regular file whole or not at all, by a temporary
    file beside it and a rename; anything else that is there already (a pipe, a terminal) by writing into it."""
    from .._fs import write_file_atomically

    target = os.path.realpath(path)
    if os.path.exists(target) and not os.path.isfile(target):
        with open(target, "wb") as handle:
            handle.write(data)
        return
    write_file_atomically(target, data, durable=False, mode=0o644)


COMMANDS = (replay, timeline)
