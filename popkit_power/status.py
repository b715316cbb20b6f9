"""The status of a power directory or one of its sessions, as data: what `popkit-power status --json` prints and
what its text form (cli/render.py) is made from.

Everything a person reads is decided here, so the text, the live view and `--json` agree: each agent's one short
name (the same in every section), whether the coordinator is alive, how long ago each agent was seen, which tasks
need attention. "Now" is read once per status, from `time.time()`, and every age is computed from it here; the
renderer only lays the values out.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from typing import Any

from .display import marked
from .home import active_session
from .journal import Position
from .keys import COORDINATOR, HUMAN, RESERVED_SENDERS, agent_name
from .lease import trouble
from .mode_selector import CREDENTIAL_VARS, FILE, Mode, select_mode
from .projector import (
    AGENT_ACTIVE,
    AGENT_IDLE,
    AGENT_LEFT,
    AGENT_LOST,
    APPROVAL_PENDING,
    FINISHED_TASK_STATES,
    OPEN_TASK_STATES,
    TASK_ASSIGNED,
    TASK_CLAIMED,
    TASK_OPEN,
    TASK_ORPHANED,
    TASK_PARKED,
    State,
    apply,
    watching,
)
from .provenance import doubts
from .reader import warn_damage
from .session import Session
from .timestamps import seconds_of

#: Unfinished tasks in the order a person should look at them: the ones waiting for someone first.
TASK_ORDER = (TASK_PARKED, TASK_ORPHANED, TASK_OPEN, TASK_ASSIGNED, TASK_CLAIMED)
AGENT_ORDER = (AGENT_ACTIVE, AGENT_IDLE, AGENT_LOST, AGENT_LEFT)
LIVE = (AGENT_ACTIVE, AGENT_IDLE)
WATCHING = "watching"  # how a live agent that does no work is shown

#: The coordinator writes `coordinator.status` every `heartbeat_seconds`; this many missed in a row and it is silent.
MISSED_HEARTBEATS = 3
#: Coordinator health: alive (its status is recent), silent (running, but its status is overdue: probably dead),
#: stopped (it said so), none (no coordinator has run in this session).
ALIVE, SILENT, STOPPED, NONE = "alive", "silent", "stopped", "none"

#: A short name longer than this is cut (with an ellipsis): names come from agents, and an agent may send anything.
MAX_NAME_CHARS = 32
RECENT_FILES = 3


def replication_info(session: Session, position: Position, now: float) -> dict[str, Any] | None:
    """Whether the session's replicator runs now (its lease is held) and its last report (replication.json); None
    where none runs and none ever reported. `behind` counts the records after the last one pushed (an upper bound:
    pulled records are never pushed); `failing` is True while its last step failed (it is backing off)."""
    from .lease import held
    from .replication.replicator import read_status

    running = held(session.dir, "replicator")
    report = read_status(session.dir)
    if report is None and not running:
        return None
    report = report or {}
    pushed = report.get("pushed_through")
    pushed = pushed if isinstance(pushed, int) else 0
    written = report.get("written") if isinstance(report.get("written"), (int, float)) else None
    return {"running": running, "transport": report.get("transport"), "kind": report.get("kind"),
            "pushed_through": pushed, "behind": max(0, position.seq - 1 - pushed),
            "pulled": report.get("pulled"), "origins": report.get("origins"), "errors": report.get("errors"),
            "last_error": report.get("last_error"), "failing": report.get("backoff_until") is not None,
            "commands_sent": report.get("commands_sent"),
            "skipped_entries": report.get("skipped_entries") or {},
            "last_skipped_entry": report.get("last_skipped_entry"),
            "report_age_seconds": None if written is None else max(0.0, now - written)}


def skipped_entries(report: dict[str, Any]) -> str:
    """The replicator's count of entries it skipped, not written by their machine, per origin, and the last one."""
    counts = report.get("skipped_entries") or {}
    total = sum(count for count in counts.values() if isinstance(count, int))
    per = ", ".join(f"{count} from origin {origin}" for origin, count in sorted(counts.items()))
    return (f"{total} {'entry' if total == 1 else 'entries'} skipped, not written by their machine ({per}); last: "
            f"{report.get('last_skipped_entry')}")


def mode_info(replication: dict[str, Any] | None = None, *, session: bool = False,
              closed: bool = False) -> dict[str, Any]:
    """The mode line: what mirrors the journal now, and whether that is as it should be (`ok`).

    For a session (`session`) it says what runs, from the replicator's lease and report (`replication`, from
    `replication_info`): the server it replicates to (secrets masked) and whether it is healthy; or "file only"
    and why: no credentials (the original's "File-based mode: ..."), credentials this shell has but whose server
    does not answer, or a replicator that stopped while the session is open. Without a session it says what the
    environment selects. The environment's server is asked once per process for the same credentials (`status
    --watch` does not PING every second: Upstash bills every command); without credentials nothing is contacted or
    imported, and while a replicator runs the environment is not asked at all."""
    if replication is not None and replication["running"]:
        kind = replication.get("kind") or str(replication.get("transport") or "server").split(" ")[0]
        where = replication.get("transport") or "its server (no report yet)"
        if replication.get("failing"):
            health = f"failing, next try soon; last error: {clean(replication.get('last_error'), 300)}"
        else:
            health = "healthy"
        behind = replication.get("behind") or 0
        return {"mode": kind, "reason": f"replicating to {where}: {health}; {behind} record(s) not pushed yet",
                "ok": not replication.get("failing"), "running": True}
    selected = _selected_mode(tuple(os.environ.get(name, "") for name in CREDENTIAL_VARS))
    if not session:
        return {"mode": selected.kind, "reason": selected.reason, "ok": selected.ok, "running": None}
    was = (replication or {}).get("transport") or "its server"
    if closed:
        reason = f"file only: the session is closed (it was replicated to {was})" if replication else \
            selected.reason if selected.kind == FILE else "file only: the session is closed"
        return {"mode": FILE, "reason": reason, "ok": True, "running": False}
    if replication is not None:
        return {"mode": FILE, "reason": f"file only: no replicator runs for this session now (the one to {was} "
                f"stopped), so the other machines hear nothing from this one (start it: popkit-power replicate)",
                "ok": False, "running": False}
    if selected.kind == FILE:
        return {"mode": FILE, "reason": selected.reason, "ok": True, "running": False}
    if not selected.ok:
        return {"mode": FILE, "reason": f"file only: {selected.reason}; this session is not replicated",
                "ok": False, "running": False}
    return {"mode": FILE, "reason": f"file only: {selected.reason}, but no replicator runs for this session (start "
            f"it: popkit-power replicate)", "ok": False, "running": False}


@functools.lru_cache(maxsize=8)
def _selected_mode(credentials: tuple[str, ...]) -> Mode:
    return select_mode(dict(zip(CREDENTIAL_VARS, credentials, strict=True)))


def no_session(power_dir: str) -> dict[str, Any]:
    """The status of a power directory without sessions."""
    return {"power_dir": power_dir, "active": False, "session": None, "mode": mode_info()}


def session_status(session: Session, state: State, position: Position, *, now: float | None = None) -> dict[str, Any]:
    """The status of one session from its projected `state` (covering the journal up to `position`), as seen at
    `now` (seconds since the epoch; the clock when None). `state` is read, never changed."""
    now = time.time() if now is None else now
    tasks: dict[str, dict[str, Any]] = state["tasks"]
    names = short_names(state)
    replication = replication_info(session, position, now)
    return {
        "power_dir": session.power_dir,
        "session": session.id,
        "active": active_session(session.power_dir) == session.id,
        "now": _utc(now),
        "mode": mode_info(replication, session=True, closed=state["closed"] is not None),
        "journal": {"directory": session.journal.directory, "records_through_seq": position.seq - 1,
                    "position": position.as_dict()},
        "objective": (state["objective"] or {}).get("text"),
        "opened": state["opened"],
        "closed": state["closed"],
        "coordinator": {**coordinator_health(state["coordinators"].get(session.origin, state["coordinator"]), now,
                                             session.config.heartbeat_seconds),
                        "trouble": trouble(session.dir)},  # e.g. a full disk: what the journal cannot say
        "machines": {origin: coordinator_health(machine, now, session.config.heartbeat_seconds)
                     for origin, machine in state["coordinators"].items() if origin != session.origin},
        "replication": replication,
        "names": names,
        "agents": _agents(state, now),
        "tasks": tasks,
        "task_counts": {**Counter(task["status"] for task in tasks.values()), **state["totals"]["tasks"]},
        "finished_tasks": state["finished"],
        "unfinished_tasks": unfinished_tasks(tasks),
        "open_tasks": [task_id for task_id, task in tasks.items() if task["status"] in OPEN_TASK_STATES],
        "orphans": state["orphans"],
        "insights": _insights(state["insights"]),
        "approvals": {key: {**approval, **age_of(approval.get("asked"), now)}
                      for key, approval in state["approvals"].items()},
        "pending_approvals": [key for key, approval in state["approvals"].items()
                              if approval.get("status") == APPROVAL_PENDING],
        "approval_counts": state["totals"]["approvals"],
        "doubtful_answers": doubtful_answers(state),
        "conflicts": state["conflicts"],
        "counts": state["counts"],
    }


class StatusReader:
    """A session's status, read again and again (`status --watch`): each read folds only the events appended since
    the one before, so a refresh costs what is new, not the session's history."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._rules = session.rules()
        self._state, self._position = session.projection()

    def read(self, *, now: float | None = None) -> dict[str, Any]:
        reader = self.session.journal.reader(self._position, on_damage=warn_damage)
        for event in reader:
            apply(self._state, event, self._rules)
        self._position = reader.position
        return session_status(self.session, self._state, self._position, now=now)


# -- the parts ------------------------------------------------------------------------------------------------------

def ago(seconds: float | None) -> str:
    """How long ago, for a person: "12 s ago", "4 min ago", "3 h ago", "2 d ago"; "never" for None."""
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def age_of(ts: Any, now: float) -> dict[str, Any]:
    """`age_seconds` and `ago` of an event timestamp. A time ahead of `now` (another machine's clock) is 0 s ago."""
    when = seconds_of(ts)
    age = None if when is None else max(0.0, now - when)
    return {"age_seconds": age, "ago": ago(age)}


def coordinator_health(coordinator: dict[str, Any], now: float, heartbeat_seconds: float) -> dict[str, Any]:
    """The coordinator as the state has it, plus `health` (alive, silent, stopped or none), `alive`, and the age of
    its last word. It is alive while its last `coordinator.started` or `.status` is at most MISSED_HEARTBEATS x
    `heartbeat_seconds` old: a coordinator killed without a word stays "running" in the journal, and only the
    silence tells."""
    status = coordinator.get("status")
    silent_after = MISSED_HEARTBEATS * heartbeat_seconds
    age = age_of(coordinator.get("last_seen"), now)
    if status == "running":
        health = ALIVE if age["age_seconds"] is not None and age["age_seconds"] <= silent_after else SILENT
    else:
        health = STOPPED if status == "stopped" else NONE
    return {**coordinator, "health": health, "alive": health == ALIVE, **age, "heartbeat_seconds": heartbeat_seconds,
            "silent_after_seconds": silent_after}


def short_names(state: State) -> dict[str, str]:
    """One short name for every agent and sender the state mentions, by key: the agent's own name (what the hook
    gave it), else `keys.agent_name(key)`; never the raw key where a name exists.

    Names are made safe to show (control characters out, at most MAX_NAME_CHARS) and unique, ignoring case: of two
    agents with one name the later gets `#2`. No agent is shown as `human` or `coordinator`: those two names are
    the senders a reader trusts, and a name that reads like one (`hum\u0430n`, with U+0430, a Cyrillic a) is marked
    (display.py)."""
    agents: dict[str, dict[str, Any]] = state["agents"]
    keys = list(agents)
    for task in (*state["tasks"].values(), *state["finished"].values()):
        keys.extend(task.get(field) for field in ("owner", "previous_owner", "created_by", "completed_by"))
    keys.extend(approval.get("from") for approval in state["approvals"].values())
    keys.extend(insight.get("from") for insight in state["insights"])
    for conflict in state["conflicts"]:
        keys.extend(conflict.get("agents") or ())
    names: dict[str, str] = {}
    taken = {HUMAN, COORDINATOR}
    for key in keys:
        if not isinstance(key, str) or key in names:
            continue
        if key in RESERVED_SENDERS:
            names[key] = key
            continue
        name = _own_name(key, agents.get(key))
        unique, n = name, 1
        while unique.casefold() in taken:
            n += 1
            unique = f"{name}#{n}"
        taken.add(unique.casefold())
        names[key] = unique
    return names


def _own_name(key: str, agent: dict[str, Any] | None) -> str:
    """The name an agent gave itself, else the one its key makes; one that is a reserved sender's is not used."""
    agent_type = agent.get("agent_type") if agent else None
    made = clean(agent_name(key, agent_type if isinstance(agent_type, str) else None), MAX_NAME_CHARS)
    own = agent.get("name") if agent else None
    name = clean(own, MAX_NAME_CHARS) if isinstance(own, str) and own != key else made
    if not name or name.casefold() in RESERVED_SENDERS:
        name = made if made.casefold() not in RESERVED_SENDERS else f"agent-{made}"
    return marked(name or "?")


def sender_name(key: str) -> str:
    """How a sender that is not a known agent is named: a reserved sender as it is, anyone else by the name its key
    makes (`keys.agent_name`), safe to show and marked when it reads like a reserved sender (display.py)."""
    if key in RESERVED_SENDERS:
        return key
    made = agent_name(key)
    return marked(made, clean(made, MAX_NAME_CHARS))


def clean(text: Any, limit: int) -> str:
    """`text` as one line a terminal shows as it is: whitespace runs become one space, other control characters
    (an escape sequence's ESC among them) become U+FFFD, and past `limit` characters it is cut with an ellipsis."""
    line = str(text)
    cut = len(line) > 4 * limit  # a megabyte of name costs no more than a long one
    if cut:
        line = line[: 4 * limit]
    if not line.isprintable():
        line = "".join(c if c.isprintable() else " " if c.isspace() else "\ufffd" for c in line)
    line = " ".join(line.split())
    if cut or len(line) > limit:
        line = line[: max(limit - 1, 0)] + "\u2026"
    return line


def _agents(state: State, now: float) -> dict[str, dict[str, Any]]:
    """The agents in the order a person reads them (active, idle, lost, left; each in the order they joined), each
    with its label (where it works), how long ago it was seen, its current task's title and its recent files."""
    agents: dict[str, dict[str, Any]] = state["agents"]
    hosts = {agent.get("host") for agent in agents.values() if agent.get("host")}
    rank = {status: n for n, status in enumerate(AGENT_ORDER)}
    ordered = sorted(agents.items(), key=lambda item: rank.get(item[1]["status"], len(rank)))
    shown = {}
    for key, agent in ordered:
        current = agent.get("current_task")
        task = state["tasks"].get(current) if isinstance(current, str) else None
        shown[key] = {
            **agent,
            "label": _label(agent, with_host=len(hosts) > 1),
            "state": WATCHING if agent["status"] in LIVE and watching(agent) else agent["status"],
            **age_of(agent.get("last_seen"), now),
            "current_task_title": task["title"] if task else None,
            "recent_files": [_relative(path, agent.get("cwd")) for path in agent["files_touched"][::-1][:RECENT_FILES]],
        }
    return shown


def _label(agent: dict[str, Any], *, with_host: bool) -> str | None:
    """Where an agent works: the last component of its cwd (its worktree or project folder), with its host when the
    session spans machines."""
    cwd = agent.get("cwd")
    folder = None
    if isinstance(cwd, str) and cwd:
        folder = cwd.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or "/"
    host = agent.get("host")
    if with_host and host:
        return f"{host}:{folder}" if folder else str(host)
    return folder


def _relative(path: str, cwd: Any) -> str:
    if isinstance(cwd, str) and cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1:]
    return path


def unfinished_tasks(tasks: dict[str, dict[str, Any]]) -> list[str]:
    """The ids of the tasks not completed or failed, the ones waiting for someone first (TASK_ORDER), each status
    in the order the tasks were created."""
    rank = {status: n for n, status in enumerate(TASK_ORDER)}
    unfinished = [task_id for task_id, task in tasks.items() if task["status"] not in FINISHED_TASK_STATES]
    return sorted(unfinished, key=lambda task_id: rank.get(tasks[task_id]["status"], len(rank)))


def _insights(insights: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kept insights, each with how many later ones were held back as its duplicates."""
    duplicates = Counter(insight["dup_of"] for insight in insights if insight["dup_of"] is not None)
    return [{**{key: insight.get(key) for key in ("id", "from", "text", "tags", "dup_of", "ts")},
             "duplicates": duplicates.get(insight["id"], 0)} for insight in insights]


def doubtful_answers(state: State) -> dict[str, dict[str, Any]]:
    """The recently answered approvals whose evidence does not show a person at a terminal (provenance.doubts, the
    one rule), each with why: an agent may have given the human's answer."""
    found = {}
    for request, approval in state["answered"].items():
        reasons = doubts(approval.get("evidence"), asked=approval.get("asked"), answered=approval.get("answered"))
        if reasons:
            found[request] = {**{key: approval.get(key) for key in ("status", "by", "answered", "from", "question")},
                              "reasons": reasons}
    return found


def _utc(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1_000_000):06d}Z"
