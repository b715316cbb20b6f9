"""The status of a power directory or one of its sessions, as data: what `popkit-power status --json` prints and
what its text form (cli/render.py) is made from."""

from __future__ import annotations

import os
from typing import Any

from .home import active_session
from .journal import Position
from .mode_selector import select_mode
from .projector import OPEN_TASK_STATES, State
from .session import Session


def mode_info() -> dict[str, str]:
    mode, reason = select_mode(os.environ)
    return {"mode": mode, "reason": reason}


def no_session(power_dir: str) -> dict[str, Any]:
    """The status of a power directory without sessions."""
    return {"power_dir": power_dir, "active": False, "session": None, "mode": mode_info()}


def session_status(session: Session, state: State, position: Position) -> dict[str, Any]:
    """The status of one session from its projected `state` (covering the journal up to `position`)."""
    tasks = state["tasks"]
    return {
        "power_dir": session.power_dir,
        "session": session.id,
        "active": active_session(session.power_dir) == session.id,
        "mode": mode_info(),
        "journal": {"directory": session.journal.directory, "records_through_seq": position.seq - 1,
                    "position": position.as_dict()},
        "objective": (state["objective"] or {}).get("text"),
        "opened": state["opened"],
        "closed": state["closed"],
        "agents": state["agents"],
        "tasks": tasks,
        "open_tasks": [task_id for task_id, task in tasks.items() if task["status"] in OPEN_TASK_STATES],
        "orphans": state["orphans"],
        "insights": [{key: insight[key] for key in ("id", "from", "text", "tags", "dup_of")}
                     for insight in state["insights"]],
        "approvals": state["approvals"],
        "pending_approvals": [key for key, approval in state["approvals"].items()
                              if approval.get("status") == "pending"],
        "conflicts": state["conflicts"],
        "coordinator": state["coordinator"],
        "counts": state["counts"],
    }
