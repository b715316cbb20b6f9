"""Who runs this command: a person at a terminal, or an agent of a Claude Code session (through its Bash tool).

    inside_agent_session(environ)     why this process runs inside an agent's session, or None
    evidence(environ)                 where this process runs (pid, parent chain, user, terminal, session, a Claude
                                      Code ancestor, the agent variables in its environment; inside `acting_via`,
                                      how the word came): recorded by Session.append_events in every event this
                                      machine sends as the human
    doubts(evidence, asked=...)       why that evidence does not show a person at a terminal ([] when it does): the
                                      one rule behind the doubtful-evidence mark in status, replay and the timeline
    check_sender(sender, event_type, environ, named=...)
                                      SessionError unless this process may send `event_type` as `sender`: only
                                      the human answers approvals and reassigns tasks

Agents run as the same OS user as the person, so nothing here stops a determined agent: it can clear its environment
(`env -i`), detach from its parent (`setsid -f`), get a terminal of its own (`script`, opened before the question
and kept), type into the human's terminal (`tmux send-keys`), or write the journal's bytes itself. These checks stop
the accidental and the naive, and the evidence makes most of the rest visible: an answer given with `env -i setsid
-f`, from a new tmux window, or by a line of Python calling the library is marked doubtful. What cannot be told
apart from the human's own word is keys typed into a shell on a terminal that was open before the question, the
human's or one the agent kept. docs/design.md ("Who said what") says what a set-up needs for the human's word to be
unforgeable.

The signs of an agent's session, cheapest first: Claude Code gives its Bash tool, and so every process started from
it, CLAUDE_CODE_SESSION_ID, CLAUDECODE=1 and CLAUDE_PID; and one of the process's first MAX_ANCESTORS ancestors is
Claude Code itself (its process or executable is named `claude`), found on Linux through the parent links in
/proc/<pid>/stat. Without /proc only the environment counts.
"""

from __future__ import annotations

import contextvars
import os
import sys

from .display import cut, quoted, shown
from .errors import SessionError
from .keys import HUMAN, RESERVED_SENDERS
from .processes import read_stat, start_time
from .protocol import APPROVAL_ANSWERS
from .timestamps import seconds_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # Session.append_events imports this module for an event sent as the human: lean imports only
    from collections.abc import Mapping
    from typing import Any

#: How much of a sender or session id a refusal shows (an environment variable or an argument may hold anything).
_SHOWN_CHARS = 80
#: Event types only the human sends: answers to approval requests.
HUMAN_ONLY_TYPES = APPROVAL_ANSWERS
#: Event types no agent sends: handing a task to an agent over whoever holds it is the human's override (`popkit-power
#: reassign`) or the coordinator's decision (made in its own process, which never asks this module), never an
#: agent's way around "the first claim wins".
NOT_FROM_AGENTS_TYPES = frozenset({"task.assigned"})
#: Environment variables Claude Code sets for its Bash tool and hooks; any of them, non-empty, marks an agent's session.
AGENT_ENVIRONMENT = ("CLAUDE_CODE_SESSION_ID", "CLAUDECODE", "CLAUDE_PID")
#: How many ancestors are looked at: Claude Code -> its Bash tool's shell -> (a few wrappers) -> this command.
MAX_ANCESTORS = 12
#: The names Claude Code's process has: `claude` (its comm, also for the native installer's versioned binary), or
#: the npm package's `claude.exe` when started by that path.
CLAUDE_PROCESS_NAMES = frozenset({"claude", "claude.exe"})
#: The names of the processes that adopt a detached one (its parent exited): init, and the service managers and
#: container inits that act as a subreaper.
INIT_NAMES = frozenset({"init", "systemd", "launchd", "tini", "dumb-init", "catatonit", "s6-svscan", "runit"})
#: How far a terminal's age may be off: /proc counts a process's start in clock ticks (10 ms) and the uptime in
#: hundredths, each cut short; a shell opened this little before the question counts as opened after it.
CLOCK_SLACK_SECONDS = 0.05
#: The largest evidence the state keeps with an answer (what `evidence` records is under 1,000 characters).
MAX_KEPT_EVIDENCE_CHARS = 4000
#: The ways a person's word reaches the library other than a command typed in a terminal: the dashboard, a web page
#: that a server of this user's serves on loopback to whoever holds its token (dashboard/access.py).
DASHBOARD = "dashboard"
#: How the human's word reaches this process (`acting_via`): None for a command, else {"via": ..., "client": ...}.
_VIA: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("popkit_power_via", default=None)
#: Where the process table is read; tests point it elsewhere.
PROC = "/proc"
_MAX_TEXT = 200


class Ancestor:
    """One process above this one: its pid, its name (comm) and the file name of its executable ("" if unreadable)."""

    __slots__ = ("exe", "name", "pid")

    def __init__(self, pid: int, name: str, exe: str) -> None:
        self.pid, self.name, self.exe = pid, name, exe

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ancestor) and (self.pid, self.name, self.exe) == (other.pid, other.name, other.exe)

    def __hash__(self) -> int:
        return hash((self.pid, self.name, self.exe))

    def __repr__(self) -> str:
        return f"Ancestor({self.pid}, {self.name!r}, {self.exe!r})"

    @property
    def is_claude(self) -> bool:
        return self.name in CLAUDE_PROCESS_NAMES or self.exe in CLAUDE_PROCESS_NAMES


def ancestors(proc: str | None = None, pid: int | None = None, limit: int = MAX_ANCESTORS) -> list[Ancestor] | None:
    """The parent of `pid` (default: this process), its parent, and so on: at most `limit`, ending at pid 1 or where
    the process table stops answering. None when not even the parent can be read (no /proc, as on macOS)."""
    root = PROC if proc is None else proc
    if pid is None:
        parent = os.getppid()
    else:
        stat = _stat(root, pid)
        if stat is None:
            return None
        parent = stat[1]
    found: list[Ancestor] = []
    while parent > 0 and len(found) < limit:  # a parent of 0 lies outside this pid namespace: the top
        stat = _stat(root, parent)
        if stat is None:
            return found or None
        found.append(Ancestor(parent, stat[0], _exe_name(root, parent)))
        if parent == 1:
            break
        parent = stat[1]
    return found


def inside_agent_session(environ: Mapping[str, str], proc: str | None = None) -> str | None:
    """Why this process runs inside an agent's session (an environment variable, or a Claude Code ancestor), or
    None when nothing says so."""
    for name in AGENT_ENVIRONMENT:
        value = environ.get(name, "")
        if value.strip():
            return f"{name} is set in the environment"
    for ancestor in ancestors(proc) or ():
        if ancestor.is_claude:
            return f"process {ancestor.pid} ({ancestor.name}), an ancestor of this command, is Claude Code"
    return None


class acting_via:
    """`with acting_via(DASHBOARD, client="127.0.0.1:51234"):` the events sent as the human in the block record that
    the word came through the dashboard from that client (the fields `via` and `client` of the evidence)."""

    def __init__(self, via: str, *, client: str) -> None:
        self._value = {"via": _text(via), "client": _text(client)}
        self._token: contextvars.Token[dict[str, str] | None] | None = None

    def __enter__(self) -> None:
        self._token = _VIA.set(self._value)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _VIA.reset(self._token)


def evidence(environ: Mapping[str, str], proc: str | None = None) -> dict[str, Any]:
    """Where this process runs, for the journal (None where a fact cannot be read, as without /proc):

    pid, ppid, uid; program (the name it was started as: `popkit-power`, `-c` for `python -c`); tty (the terminal
    on its standard streams); controlling_terminal (whether it has one at all); own_session (it leads a session of
    its own: started by `setsid`, or as a terminal window's first command); terminal_age (how many seconds its
    session's leader, the shell of its terminal, has run); ancestors (the names up its parent chain);
    claude_ancestor (`pid name` of a Claude Code process among them); claude_session and agent_environment (Claude
    Code's variables that are set); via and client, inside `acting_via` only (the dashboard and the address of the
    browser that sent the word)."""
    root = PROC if proc is None else proc
    found = ancestors(proc)
    claude = next((ancestor for ancestor in found or () if ancestor.is_claude), None)
    terminal = _controlling_terminal(root)
    session_leader = os.getsid(0)
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "program": _text(os.path.basename(sys.argv[0])) if sys.argv and sys.argv[0] else None,
        "tty": _terminal(),
        "controlling_terminal": terminal,
        "own_session": session_leader == os.getpid(),
        "terminal_age": _age(root, session_leader) if terminal else None,
        "ancestors": None if found is None else [_text(ancestor.name) for ancestor in found],
        "claude_ancestor": None if claude is None else _text(f"{claude.pid} {claude.name}"),
        "claude_session": _text(environ.get("CLAUDE_CODE_SESSION_ID", "")) or None,
        "agent_environment": [name for name in AGENT_ENVIRONMENT if environ.get(name, "").strip()],
        **(_VIA.get() or {}),
    }


def doubts(found: Any, *, asked: Any = None, answered: Any = None) -> list[str]:
    """Why `found` (an event's `evidence`) does not show a person at a terminal outside every agent's session; []
    when nothing does. `asked` and `answered`: the times of the question and of the answer (event timestamps), to
    tell a terminal opened after the question. Evidence is what the process said of itself: clean evidence is no
    proof (see the module's docstring)."""
    if not isinstance(found, dict):
        return ["no evidence recorded (written by an older version, or not through the library)"]
    if kept_evidence(found) != found or found.get("oversized") is True or not _well_formed(found):
        return ["malformed evidence (not as this library records it)"]
    reasons = []
    inside = [name for name in found.get("agent_environment") or () if name in AGENT_ENVIRONMENT]
    if found.get("claude_session"):
        inside.insert(0, "CLAUDE_CODE_SESSION_ID")
    if inside:
        reasons.append(f"inside an agent's session ({', '.join(dict.fromkeys(inside))} set)")
    if found.get("claude_ancestor"):
        reasons.append(f"Claude Code ({cut(_text(found['claude_ancestor']), _SHOWN_CHARS)}) is among its ancestors")
    via = found.get("via")
    if via == DASHBOARD:
        # A server has no terminal of its own, and `start --dashboard` runs it detached: what vouches for the word is
        # the token the browser sent (dashboard/access.py), which any process of this user can read.
        return reasons
    if via is not None:
        reasons.append(f"it came through {quoted(_text(str(via)), _SHOWN_CHARS)}, which this version does not know")
    if found.get("controlling_terminal") is False or (found.get("controlling_terminal") is None
                                                      and not found.get("tty")):
        reasons.append("no terminal")
    if found.get("own_session") is True:
        reasons.append("it leads a session of its own (setsid, or a window's first command)")
    chain = found.get("ancestors")
    if found.get("ppid") == 1 or (isinstance(chain, list) and chain and chain[0] in INIT_NAMES):
        reasons.append("detached: its parent is init, not the shell that started it")
    elif chain is None:
        reasons.append("its parent chain could not be read")
    elif isinstance(chain, list) and len(chain) >= MAX_ANCESTORS and chain[-1] not in INIT_NAMES:
        reasons.append(f"its parent chain is deeper than the {MAX_ANCESTORS} processes read (a Claude Code above "
                       f"them would not be seen)")
    age, asked_at, answered_at = found.get("terminal_age"), seconds_of(asked), seconds_of(answered)
    if isinstance(age, (int, float)) and asked_at is not None and answered_at is not None \
            and age < answered_at - asked_at + CLOCK_SLACK_SECONDS:
        reasons.append("its terminal opened after the question was asked")
    return reasons


#: The type of each field of the evidence, as `evidence` records it (None allowed for every one but the booleans').
_EVIDENCE_TYPES: dict[str, tuple[type, ...]] = {
    "pid": (int,), "ppid": (int,), "uid": (int,), "program": (str,), "tty": (str,), "controlling_terminal": (bool,),
    "own_session": (bool,), "terminal_age": (int, float), "ancestors": (list,), "claude_ancestor": (str,),
    "claude_session": (str,), "agent_environment": (list,), "via": (str,), "client": (str,),
}


def kept_evidence(found: Any) -> dict[str, Any] | None:
    """`found` as the state keeps it with an answer: as it is when it is a dict of at most MAX_KEPT_EVIDENCE_CHARS
    (what `evidence` records is far smaller), `{"oversized": true}` (doubtful) when larger, None when no dict."""
    if not isinstance(found, dict):
        return None
    return found if len(repr(found)) <= MAX_KEPT_EVIDENCE_CHARS else {"oversized": True}


def _well_formed(found: dict[str, Any]) -> bool:
    """Whether every known field of `found` has its type (evidence of an older version lacks some: that is fine)."""
    for name, types in _EVIDENCE_TYPES.items():
        value = found.get(name)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return False
    return all(isinstance(item, str) for key in ("ancestors", "agent_environment") for item in found.get(key) or ())


def check_sender(sender: str, event_type: str, environ: Mapping[str, str], *, named: bool,
                 request: str | None = None, proc: str | None = None) -> None:
    """Raise SessionError unless this process may send `event_type` as `sender`.

    `named` says the sender was chosen (--as, $POPKIT_POWER_AGENT) rather than derived from the environment. Only the
    human answers approvals, and never from inside an agent's session; nothing inside one reassigns a task; inside
    one, nobody speaks as the human or the coordinator, and a chosen sender must be an agent of that same Claude Code
    session (`<session id>:<agent id>`). `request` names the approval in the message that says how the human answers
    it.
    """
    if event_type in NOT_FROM_AGENTS_TYPES:
        inside = inside_agent_session(environ, proc)
        if inside is not None:
            raise SessionError(f"refused: only the human reassigns a task, and this command runs inside an agent's "
                               f"session ({inside}); the human does it from a terminal outside Claude Code with: "
                               f"popkit-power reassign TASK AGENT (an agent takes an open or orphaned task with: "
                               f"popkit-power claim TASK)")
    human_only = event_type in HUMAN_ONLY_TYPES
    reserved = _plain(sender) in RESERVED_SENDERS
    if not (human_only or reserved or named):
        return  # the agent key derived from this Claude Code session, or "human" where nothing marks an agent
    why = inside_agent_session(environ, proc)
    if human_only:
        verb = "approve" if event_type == "approval.granted" else "deny"
        if why is not None:
            raise SessionError(f"refused: only the human answers approvals, and this command runs inside an "
                               f"agent's session ({why}); the human answers from a terminal outside Claude Code "
                               f"with: popkit-power {verb} {shown(request or 'REQUEST', _SHOWN_CHARS)}")
        if sender != HUMAN:
            raise SessionError(f"only the human answers approvals: {event_type} cannot be sent as "
                               f"{quoted(sender, _SHOWN_CHARS)}")
        return
    if why is None:
        return
    claude_session = environ.get("CLAUDE_CODE_SESSION_ID", "").strip()
    own = f"{shown(claude_session, _SHOWN_CHARS)}:<agent id>" if claude_session else "<session id>:<agent id>"
    if reserved:
        raise SessionError(f"refused: inside an agent's session ({why}) nobody sends as "
                           f"{quoted(sender.strip(), _SHOWN_CHARS)}; send as an agent: --as {own}")
    if claude_session and not (sender.startswith(f"{claude_session}:") and len(sender) > len(claude_session) + 1):
        raise SessionError(f"refused: {quoted(sender, _SHOWN_CHARS)} is not an agent of this Claude Code session "
                           f"{shown(claude_session, _SHOWN_CHARS)}; an agent sends only as itself: --as {own} "
                           f"(main, or a subagent's id)")


def _plain(sender: str) -> str:
    return sender.strip().casefold()


def _text(value: str) -> str:
    """`value` as text that is safe to store: undecodable bytes replaced, at most _MAX_TEXT characters."""
    value = value[:_MAX_TEXT]
    try:  # the environment's bytes that are not UTF-8 arrive as surrogate escapes
        raw = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte made
        raw = value.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


def _stat(root: str, pid: int) -> tuple[str, int] | None:
    """(comm, ppid) of process `pid`, or None if it cannot be read (processes.read_stat)."""
    stat = read_stat(pid, root)
    return None if stat is None else (stat[0], stat[2])


def _exe_name(root: str, pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"{root}/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:  # another user's process, or a kernel thread
        return ""


def _controlling_terminal(root: str) -> bool | None:
    """Whether this process has a controlling terminal (its tty_nr in /proc is not 0), or None unreadable."""
    try:
        with open(f"{root}/self/stat", "rb") as handle:
            line = handle.read(4096)
        return int(line[line.rindex(b")") + 1:].split()[4]) != 0
    except (OSError, ValueError, IndexError):
        return None


def _age(root: str, pid: int) -> float | None:
    """How many seconds process `pid` has run (the uptime minus its start, both since boot: no wall clock in it, so
    it compares with the time between two events); None where that cannot be read."""
    ticks = start_time(pid, root)
    try:
        with open(f"{root}/uptime", "rb") as handle:
            uptime = float(handle.read(64).split()[0])
        return None if ticks is None else round(max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK")), 2)
    except (OSError, ValueError, IndexError):
        return None


def _terminal() -> str | None:
    for fd in (0, 1, 2):
        try:
            return os.ttyname(fd)
        except OSError:
            continue
    return None
