"""Who is in a session: find an agent by its key, its readable name, or a unique start of either."""

from __future__ import annotations

from typing import Any

from .errors import SessionError
from .session import Session


def check_agent_name(name: str) -> str:
    """`name` if it can name an agent; SessionError for an empty or blank one (a start of every name)."""
    if not name.strip():
        raise SessionError(f"an agent name is needed (its key, its name, or a unique start of one); got {name!r}")
    return name


def resolve_agent(session: Session, name: str) -> str:
    """The key of the agent called `name` (key, readable name, or a unique start of one); SessionError otherwise."""
    check_agent_name(name)
    state, _ = session.projection()
    agents: dict[str, dict[str, Any]] = state["agents"]
    if name in agents:
        return name
    matches = [key for key, agent in agents.items() if agent.get("name") == name]
    if not matches:
        matches = [key for key, agent in agents.items()
                   if key.startswith(name) or str(agent.get("name", "")).startswith(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{agent.get('name')} ({key})" for key, agent in agents.items()) or "none yet"
    problem = "matches several agents" if matches else "is not an agent of this session"
    raise SessionError(f"{name!r} {problem}; agents: {known}")
