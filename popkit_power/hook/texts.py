"""Every text the model sees from Power Mode: the welcome, one line per news item, and the reply's layout under its cap.

What other agents wrote stays theirs: their text is one JSON string on one line (quotes, backslashes and every line
break escaped), their names are cut to plain characters, and only the exact senders `human` and `coordinator` are
named so; a name that would read like one of them (display.py, lookalike letters too) is marked with `?`. So no
agent can write a line that reads like the human's answer or the coordinator's word. Everything here is a pure
function of its arguments.

This module is on the hook's hot path: lean imports only.
"""

from __future__ import annotations

from ..display import ELLIPSIS, cut, marked
from ..journal import codec
from ..keys import COORDINATOR, HUMAN, RESERVED_SENDERS, agent_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..shapes.state import Broadcast
    from .inbox import NewsItem

HEADER = "Power Mode (popkit-power): news from the other agents since your last tool call"
#: The headers of news that starts a turn: the Stop hook's (the agent was about to stop) and the waiter's (it was idle)
STOP_HEADER = "Power Mode (popkit-power): news arrived before you stopped; deal with it, then stop if nothing is left"
WAKE_HEADER = "Power Mode (popkit-power): news arrived while you were idle"
#: The starts of the lines for news that starts a turn, for lines whose news item's kind was not kept (a state or a
#: remembered reply written by a version before `inbox.STARTS_TURN`): a direct message, an orphaned task, an
#: assignment, the human's answer to the agent's request, a broadcast, a task taken from the agent. Every line starts
#: with what `news_line` wrote, never with a sender's text, so no sender can forge one.
URGENT_STARTS = ("- [message to you from ", "- [orphaned task", "- [task assigned to you by ", "- [approval ",
                 "- [broadcast from ", "- [task taken from you by ")
CONTINUED_MARK = ", continued]"
#: Claude Code cuts additionalContext at 10,000 characters; one item too long for the configured cap gets a reply of
#: its own up to this size, and what is left of it continues at the next call.
ITEM_REPLY_MAX = 9000
_RESERVE = 60  # room for the "(+N more ...)" line
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@/+")
_MAX_NAME_CHARS = 80
#: Characters that could make text read as something else, which JSON leaves as they are: C1 controls (NEL among
#: them), the Unicode line and paragraph separators, and invisible or direction-changing format characters.
_ESCAPED = (*range(0x80, 0xA0), 0x061C, *range(0x200B, 0x2010), 0x2028, 0x2029, *range(0x202A, 0x202F),
            *range(0x2060, 0x2070), 0xFEFF)
_BREAKS = {code: f"\\u{code:04x}" for code in _ESCAPED}
_MAX_OBJECTIVE_CHARS = 2000
#: The welcome's room for the broadcasts sent before the agent joined (each kept by the fold up to 500 characters)
WELCOME_BROADCAST_CHARS = 3000
_MAX_HAND_OVER_CHARS = 200  # of a lost agent's task title, last message, or one file path
_HAND_OVER_FILES = 5


# -- the reply -------------------------------------------------------------------------------------------------------

def matters(line: str) -> bool:
    """Whether a news line of an older version's state starts a turn (URGENT_STARTS); new lines carry their kind's
    verdict (hook/news.py)."""
    return line.startswith(URGENT_STARTS)


def delivery_mark(reference: str) -> str:
    """How a reply's first line names its reference, and what the transcript must hold, whole, to show it arrived
    (8 hex digits alone are in every hash and dump a tool prints)."""
    return f"(delivery {reference})"


def reply(lines: list[str], limit: int, header: str = HEADER, reference: str | None = None) -> tuple[str, list[str]]:
    """The reply text for `lines` under `header`, up to `limit` characters, and the lines left for the next call.
    With a `reference`, the header says `(delivery REFERENCE)`: how the transcript shows the model got it.

    A line longer than the whole budget is not cut off: it gets a reply of its own, up to `ITEM_REPLY_MAX`
    characters, and what is left of it is the first line of the rest, continued at the next call.
    """
    if reference:
        header = f"{header} {delivery_mark(reference)}"
    shown: list[str] = []
    size = len(header) + 2
    rest: list[str] = []
    split = False
    for index, line in enumerate(lines):
        left = limit - size - _RESERVE
        if len(line) <= left:
            shown.append(line)
            size += len(line) + 1
            continue
        if shown:  # the next call has the whole budget for it
            rest = lines[index:]
            break
        room = max(left, ITEM_REPLY_MAX - size - _RESERVE)
        if len(line) <= room:
            shown.append(line)
            rest = lines[index + 1:]
        else:
            shown.append(f"{line[:room]} {ELLIPSIS}")  # a line split in two, not cut: no character is lost
            rest = [_continued(line) + ELLIPSIS + line[room:], *lines[index + 1:]]
            split = True
        break
    if not shown:
        return "", rest
    if rest:
        continued = " (the cut line goes on there)" if split else ""
        return "\n".join([header + ":", *shown, f"(+{len(rest)} more after your next tool call{continued})"]), rest
    return "\n".join([header + ":", *shown]), rest


def _hand_over(context: dict[str, Any]) -> str:
    """What the lost agent left behind, for whoever takes its task: title, progress, files, its last message."""
    parts = []
    title = context.get("title")
    if isinstance(title, str) and title:
        parts.append(quote(cut(title, _MAX_HAND_OVER_CHARS)))
    details = []
    progress = context.get("progress")
    if isinstance(progress, (int, float)) and not isinstance(progress, bool):
        details.append(f"progress {progress:g}")
    files = [path for path in context.get("files") or () if isinstance(path, str)][-_HAND_OVER_FILES:]
    if files:
        details.append("files " + ", ".join(ident(path[-_MAX_HAND_OVER_CHARS:]) for path in files))
    message = context.get("last_message")
    if isinstance(message, str) and message:
        details.append("its last message " + quote(cut(message, _MAX_HAND_OVER_CHARS)))
    if details:
        parts.append(f"({'; '.join(details)})")
    return " " + " ".join(parts) if parts else ""


def _continued(line: str) -> str:
    """The start of the line that continues `line` after a cut: its own attribution, marked as continued
    (`- [broadcast from X, continued] `), so the rest of a long text still says who wrote it."""
    head = line[: line.find("] ") + 1] if line.startswith("- [") and "] " in line else "- [news]"
    if not head.endswith(CONTINUED_MARK):
        head = head[:-1] + CONTINUED_MARK
    return head + " "


def news_line(item: NewsItem, names: dict[str, str]) -> str:
    """One line for one news item of `inbox.Inbox` (names: agent key -> the name it announced)."""
    kind, sender = item[0], item[1]
    who = speaker(sender, names)
    if kind == "broadcast":
        return f"- [broadcast from {who}] {quote(item[2])}"
    if kind == "direct":
        hint = f" (reply: popkit-power send {who} \"...\")" if ":" in sender else ""
        return f"- [message to you from {who}] {quote(item[2])}{hint}"
    if kind == "insight":
        tags = item[3]
        tag_text = f" [{', '.join(ident(tag) for tag in tags[:20])}]" if tags else ""
        return f"- [insight from {who}] {quote(item[2])}{tag_text}"
    if kind == "approval":
        _, _, granted, request, question, note = item
        verdict = "GRANTED" if granted else "DENIED"
        note_text = f": {quote(note)}" if note else ""
        return f"- [approval {verdict} by {who}] your request {ident(request)} {quote(question)}{note_text}"
    if kind == "orphaned":
        task = item[2]
        by = "" if sender == COORDINATOR else f", said by {who}"
        return (f"- [orphaned task{by}] {ident(task)}{_hand_over(item[3] if len(item) > 3 else {})} lost its agent; "
                f"take it over with: popkit-power claim {shell_arg(task)}")
    if kind == "claim_lost":
        return (f"- [claim decided between machines] {ident(item[2])} went to {speaker(item[3], names)}, whose claim "
                f"reached the server first: it is not yours, stop working on it")
    if kind == "assigned":
        return f"- [task assigned to you by {who}] {ident(item[2])}"
    if kind == "taken":
        if len(item) > 4:  # finished by the human: reported done, or failed
            where = f"was reported {'failed' if item[4] == 'failed' else 'done'} by them"
        else:
            where = (f"was reassigned to {speaker(item[3], names)}" if isinstance(item[3], str)
                     else "was released (open for any agent to claim)")
        return f"- [task taken from you by {who}] {ident(item[2])} {where}: it is not yours now, stop working on it"
    if kind == "wrote_after_you":
        return (f"- [conflict] {who} also edited {ident(item[2])}, within {_ago(abs(item[3]))} of your own edit; "
                f"check before you overwrite each other's work")
    if kind == "they_wrote_first":
        return (f"- [conflict] {who} edited {ident(item[2])} {_ago(item[3])} ago; coordinate before you change it "
                f"further (popkit-power send {who} \"...\")")
    raise ValueError(f"unknown news item {kind!r}")


# -- the welcome -----------------------------------------------------------------------------------------------------

def welcome(*, session_id: str, objective: str | None, objective_by: str | None, name: str, key: str,
            as_flag: str, others: list[dict[str, Any]], broadcasts: list[Broadcast] | None = None,
            names: dict[str, str] | None = None) -> str:
    """What an agent is told when it starts: the objective, who else works, the broadcasts sent before it joined
    (the most recent, at most `WELCOME_BROADCAST_CHARS` of them), and the commands to coordinate."""
    if objective:
        by = f" (set by {speaker(objective_by, {})})" if objective_by and objective_by != HUMAN else ""
        objective_line = f"Objective{by}: {quote(cut(objective, _MAX_OBJECTIVE_CHARS + 1))}"
    else:
        objective_line = "Objective: (none set)"
    lines = [
        f"Power Mode is on (popkit-power session {ident(session_id)}): you are one of several agents working "
        f"together.",
        objective_line,
        f"You are {speaker(key, {key: name})} (agent key {ident(key)}).",
    ]
    if others:
        listed = ", ".join(f"{speaker(other['key'], {other['key']: other.get('name') or other['key']})} "
                           f"({other['status']}"
                           f"{', task ' + ident(other['current_task']) if other.get('current_task') else ''})"
                           for other in others[:10])
        lines.append(f"Other agents working now: {listed}.")
    else:
        lines.append("No other agent is working yet.")
    lines += _earlier_broadcasts(broadcasts or [], names or {})
    lines += [
        "Coordinate with these Bash commands:",
        f"- share a discovery: popkit-power insight \"what you found\" --tags a,b{as_flag}",
        f"- message one agent: popkit-power send AGENT \"text\"{as_flag}",
        f"- message every agent: popkit-power broadcast \"text\"{as_flag}",
        f"- report a result: popkit-power result \"what you did\"{as_flag}",
        f"- take over an open or orphaned task: popkit-power claim TASK{as_flag}; finish one: popkit-power done TASK "
        f"--result \"what you did\"{as_flag}; give one back: popkit-power release TASK{as_flag}",
        f"- ask the human before a risky step: popkit-power ask \"question\"{as_flag}"
        " (the answer reaches you after a later tool call, or wakes you when you are idle; add --wait to wait for it"
        " in the same command)",
        "News from the other agents (messages, insights, answers, edit conflicts) arrives after your tool calls; "
        "messages to you, broadcasts, answers, assignments, orphaned tasks and a task taken from you also wake you "
        "when you are idle.",
    ]
    return "\n".join(lines)


def _earlier_broadcasts(broadcasts: list[Broadcast], names: dict[str, str]) -> list[str]:
    """The broadcasts sent before the agent joined, newest kept when they do not all fit, shown oldest first."""
    shown: list[str] = []
    size = 0
    for broadcast in reversed(broadcasts):
        sender, said = broadcast.get("from"), broadcast.get("text")
        if not isinstance(sender, str) or not isinstance(said, str):
            continue
        line = news_line(("broadcast", sender, said), names)
        if size + len(line) > WELCOME_BROADCAST_CHARS:
            break
        shown.append(line)
        size += len(line)
    if not shown:
        return []
    left = len(broadcasts) - len(shown)
    more = f" ({left} more before them not shown)" if left > 0 else ""
    return [f"Broadcasts sent before you joined, oldest first{more}:", *reversed(shown)]


# -- what others wrote, kept theirs ------------------------------------------------------------------------------------

def speaker(sender: str, names: dict[str, str]) -> str:
    """How a sender is named: `human` and `coordinator` only for those exact senders; anyone else by the name they
    announced (or the hook's name for their key), cut to [A-Za-z0-9._:@/+-] and 80 characters, and marked with `?`
    if it reads like a reserved sender or has one in it (display.py: `?human.approver`, `?hum?n` for `hum\u0430n`,
    whose U+0430 is a Cyrillic a)."""
    if sender in RESERVED_SENDERS:
        return sender
    name = names.get(sender) or agent_name(sender)
    clean = "".join(char if char in _NAME_CHARS else "?" for char in name[:_MAX_NAME_CHARS]) or "?"
    return marked(name, clean)  # judged before the cut, which makes `hum?n` of `hum\u0430n`


def quote(text: Any) -> str:
    """Untrusted text as one JSON string literal on one line: quotes, backslashes and every line break escaped."""
    return codec.dumps(text if isinstance(text, str) else str(text)).translate(_BREAKS)


def ident(value: Any) -> str:
    """An id or path from others: as it is when made of plain characters (and short), else quoted."""
    text = value if isinstance(value, str) else str(value)
    if 0 < len(text) <= 200 and all(char in _NAME_CHARS or char == "~" for char in text):
        return text
    return quote(text)


def shell_arg(value: Any) -> str:
    """`value` as one shell word for a command the agent may copy (single-quoted unless plain)."""
    text = value if isinstance(value, str) else str(value)
    if text and all(char in _NAME_CHARS for char in text):
        return text
    if not text.isprintable():
        return "<an id with control characters: see popkit-power status>"
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min"
