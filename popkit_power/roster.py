"""Who is in a session: the agent that typed text names. Every refusal is one SessionError line that names the fix.

An agent is named by its key or its readable name, also by a unique start of either, in any case. The first of these
ways that matches anything decides, and several matches there are refused, naming them:

    exactly as typed  ->  the same but for case  ->  a start  ->  a start but for case

so `main-c0ffee`, `MAIN-C0FFEE` and `main-c0` name one agent, and a whole name is never ambiguous with a longer one
it starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import SessionError
from .projector import AGENT_LEFT, AGENT_LOST, State
from .session import Session

GONE_AGENT_STATES = frozenset({AGENT_LEFT, AGENT_LOST})
#: How many agents a refusal lists before "and N more".
MAX_LISTED = 10
_SHOWN_CHARS = 60


# -- what typed text names ------------------------------------------------------------------------------------------

def matching(given: str, names: Mapping[str, Iterable[str]]) -> list[str]:
    """The keys of `names` (key -> the names it goes by) that `given` names, by the first way that matches any."""
    folded = given.casefold()
    ways: tuple[Callable[[str], bool], ...] = (
        lambda name: name == given,
        lambda name: name.casefold() == folded,
        lambda name: name.startswith(given),
        lambda name: name.casefold().startswith(folded),
    )
    for way in ways:
        found = [key for key, aliases in names.items() if any(way(alias) for alias in aliases)]
        if found:
            return found
    return []


def check_agent_name(name: str) -> str:
    """`name` if it can name an agent; SessionError for an empty or blank one (a start of every name)."""
    if not name.strip():
        raise SessionError(f"an agent name is needed (its key, its name, or a unique start of one); got {name!r}")
    return name


def find_agent(state: State, name: str) -> str:
    """The key of the agent `name` names (key or readable name, or a unique start of one, in any case); SessionError
    naming the agents otherwise."""
    check_agent_name(name)
    agents: dict[str, dict[str, Any]] = state["agents"]
    found = matching(name, {key: (key, str(agent.get("name") or key)) for key, agent in agents.items()})
    if len(found) == 1:
        return found[0]
    problem = "matches several agents" if found else "is not an agent of this session"
    listed = _listed([agent_label(state, key, status=True) for key in (found or agents)], "none yet")
    raise SessionError(f"{quoted(name)} {problem}; agents: {listed}")


def resolve_agent(session: Session, name: str) -> str:
    """The key of the agent called `name` in `session` (see `find_agent`)."""
    return find_agent(session.projection()[0], name)


def live_agent(state: State, name: str, consequence: str) -> str:
    """The key of the agent `name` names, which must not have left or been lost; SessionError naming its status,
    `consequence` (such as "a message to it would not be read") and the live agents otherwise."""
    key = find_agent(state, name)
    agent = state["agents"][key]
    if agent.get("status") in GONE_AGENT_STATES:
        live = [agent_label(state, other, status=True) for other, value in state["agents"].items()
                if value.get("status") not in GONE_AGENT_STATES]
        raise SessionError(f"agent {agent_label(state, key)} {_gone(agent)}: {consequence}; live agents: "
                           f"{_listed(live, 'none')}")
    return key


def agent_label(state: State, key: str, *, status: bool = False) -> str:
    """How an agent is named in a message: `main-c0ffee (c0ffee00-1111:main)`, with its status if asked."""
    agent = state["agents"].get(key) or {}
    name = str(agent.get("name") or key)
    inside = [shown(key)] if name != key else []
    if status:
        inside.append(str(agent.get("status", "not joined")))
    return f"{shown(name)} ({', '.join(inside)})" if inside else shown(name)


def _gone(agent: dict[str, Any]) -> str:
    lost = agent.get("status") == AGENT_LOST
    reason = agent.get("lost_reason" if lost else "left_reason")
    because = f" ({shown(str(reason))})" if reason else ""
    return f"was lost{because}" if lost else f"has left{because}"


# -- text -----------------------------------------------------------------------------------------------------------

def shown(value: str, limit: int = _SHOWN_CHARS) -> str:
    """`value` fit for a one-line message: cut to `limit` characters, and quoted with escapes when it holds a line
    break, a control character or an invisible one."""
    cut = value if len(value) <= limit else f"{value[:limit]}..."
    return cut if cut.isprintable() else repr(cut)


def quoted(value: str) -> str:
    """`value` (what was typed, a title) quoted with escapes and cut, for a one-line message."""
    return repr(value if len(value) <= _SHOWN_CHARS else f"{value[:_SHOWN_CHARS]}...")


def _listed(items: list[str], empty: str) -> str:
    if not items:
        return empty
    more = f", and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more
