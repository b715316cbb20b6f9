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
from typing import TYPE_CHECKING, Any

from .display import agent_place, clean, short_names
from .home import active_session
from .journal.lease import held, holder, trouble
from .journal.reader import warn_damage
from .journal.writer import Position
from .keys import COORDINATOR_LEASE, REPLICATOR_LEASE, lease_lock_file
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
    project,
    watching,
)
from .provenance import doubts
from .replication.mode_selector import CREDENTIAL_VARS, FILE, Mode, select_mode
from .session import Session
from .timestamps import age_of, utc_text

if TYPE_CHECKING:
    from .shapes.state import Agent, Coordinator, Insight, Task

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

RECENT_FILES = 3


def replication_info(session: Session, position: Position, now: float) -> dict[str, Any] | None:
    """Whether the session's replicator runs now (its lease is held) and its last report (replication.json); None
    where none runs and none ever reported. `behind` counts the records after the last one pushed (an upper bound:
    pulled records are never pushed); `failing` is True while its last step failed (it is backing off)."""
    from .journal.lease import held
    from .replication.status_file import read_status

    running = held(session.dir, REPLICATOR_LEASE)
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
    tasks: dict[str, Task] = state["tasks"]
    names = short_names(state)
    replication = replication_info(session, position, now)
    return {
        "power_dir": session.power_dir,
        "session": session.id,
        "active": active_session(session.power_dir) == session.id,
        "now": utc_text(now),
        "mode": mode_info(replication, session=True, closed=state["closed"] is not None),
        "journal": {"directory": session.journal.directory, "records_through_seq": position.seq - 1,
                    "position": position.as_dict()},
        "objective": state["objective"]["text"] if state["objective"] else None,
        "opened": state["opened"],
        "closed": state["closed"],
        "coordinator": {**_local_health(session, state["coordinators"].get(session.origin, state["coordinator"]),
                                        now),
                        "trouble": trouble(session.dir)},  # e.g. a full disk: what the journal cannot say
        "hooks": hooks_info(session, state["coordinators"].get(session.origin, state["coordinator"])),
        "machines": {origin: coordinator_health(machine, now, session.config.heartbeat_seconds)
                     for origin, machine in state["coordinators"].items() if origin != session.origin},
        "replication": replication,
        "names": names,
        "agents": _agents(state, now),
        "departed_not_listed": state["totals"]["agents"],  # departed long ago: `status --all` lists them
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
    the one before, so a refresh costs what is new, not the session's history.

    With `everything`, the status of everything the session ever held (`status --all`): every agent that took part
    and every finished task, folded from the journal's start with nothing leaving the state (`Rules.everything`),
    so its first read costs the session's whole history."""

    def __init__(self, session: Session, *, everything: bool = False) -> None:
        self.session = session
        if everything:
            from .projector import new_state

            self._rules = session.rules().everything()
            self._state, self._position = new_state(), Position()
        else:
            self._rules = session.rules()
            self._state, self._position = session.projection()

    def read(self, *, now: float | None = None) -> dict[str, Any]:
        reader = self.session.journal.reader(self._position, on_damage=warn_damage)
        project(reader, self._rules, self._state)
        self._position = reader.position
        return session_status(self.session, self._state, self._position, now=now)


# -- the parts ------------------------------------------------------------------------------------------------------

def coordinator_health(coordinator: Coordinator, now: float, heartbeat_seconds: float) -> dict[str, Any]:
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


def _local_health(session: Session, coordinator: Coordinator, now: float) -> dict[str, Any]:
    """This machine's coordinator: `coordinator_health`, and gone at once when its lease is free, which the OS does
    when the process dies, even by SIGKILL, where the journal's last word would call it alive for heartbeats more
    (`gone`: a lease taken here once and nobody holds it now)."""
    health = coordinator_health(coordinator, now, session.config.heartbeat_seconds)
    if health["alive"] and os.path.exists(lease_lock_file(session.dir, COORDINATOR_LEASE)) and not held(session.dir):
        health.update({"health": SILENT, "alive": False, "gone": True})
    return health


def hooks_info(session: Session, coordinator: Coordinator) -> dict[str, Any]:
    """How the agents' hooks reach the session: `transport` (command or http); over HTTP also the `url`, whether
    they are answered now (`answered`: the session's coordinator runs, which holds its lease, and says it serves
    that port: not when something else holds the port), since when they have not been (the coordinator's last word)
    and the coordinator's past `outages`, during which hooks over HTTP were not answered."""
    from .hook_transport import HTTP, served, url

    config = session.config
    if config.hook_transport != HTTP:
        return {"transport": config.hook_transport}
    serving = served(session.power_dir)
    answered = held(session.dir) and serving is not None and serving["port"] == config.hook_port \
        and serving["pid"] == (holder(session.dir) or {}).get("pid")
    return {"transport": HTTP, "url": url(config.hook_port), "answered": answered,
            "unanswered_since": None if answered else coordinator.get("last_seen"),
            "outages": coordinator.get("outages", [])}


def _agents(state: State, now: float) -> dict[str, dict[str, Any]]:
    """The agents in the order a person reads them (active, idle, lost, left; each in the order they joined), each
    with its label (where it works), how long ago it was seen, its current task's title and its recent files."""
    agents: dict[str, Agent] = state["agents"]
    hosts = {agent.get("host") for agent in agents.values() if agent.get("host")}
    rank = {status: n for n, status in enumerate(AGENT_ORDER)}
    ordered = sorted(agents.items(), key=lambda item: rank.get(item[1]["status"], len(rank)))
    shown = {}
    for key, agent in ordered:
        current = agent.get("current_task")
        task = state["tasks"].get(current) if isinstance(current, str) else None
        shown[key] = {
            **agent,
            "label": agent_place(agent, with_host=len(hosts) > 1),
            "state": WATCHING if agent["status"] in LIVE and watching(agent) else agent["status"],
            **age_of(agent.get("last_seen"), now),
            "current_task_title": task["title"] if task else None,
            "recent_files": [_relative(path, agent.get("cwd")) for path in agent["files_touched"][::-1][:RECENT_FILES]],
        }
    return shown


def _relative(path: str, cwd: Any) -> str:
    if isinstance(cwd, str) and cwd and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1:]
    return path


def unfinished_tasks(tasks: dict[str, Task]) -> list[str]:
    """The ids of the tasks not completed or failed, the ones waiting for someone first (TASK_ORDER), each status
    in the order the tasks were created."""
    rank = {status: n for n, status in enumerate(TASK_ORDER)}
    unfinished = [task_id for task_id, task in tasks.items() if task["status"] not in FINISHED_TASK_STATES]
    return sorted(unfinished, key=lambda task_id: rank.get(tasks[task_id]["status"], len(rank)))


def _insights(insights: list[Insight]) -> list[dict[str, Any]]:
    """The kept insights, each with how many later ones were held back as its duplicates."""
    duplicates: Counter[str | None]
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
