"""Who is in a session and what they work on: the agent or task that typed text names, the rules the task verbs
follow, and the outcome of a claim. Every refusal is one SessionError line that names the fix.

An agent is named by its key or its readable name, a task by its id; either also by a unique start, in any case. The
first of these ways that matches anything decides, and several matches there are refused, naming them:

    exactly as typed  ->  the same but for case  ->  a start  ->  a start but for case

so `main-c0ffee`, `MAIN-C0FFEE` and `main-c0` name one agent, and a whole name is never ambiguous with a longer one
it starts.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .display import MAX_SHOWN_CHARS, quoted, shown
from .errors import SessionError
from .fold.tasks import may_finish
from .journal.writer import Position
from .keys import HUMAN
from .projector import (
    AGENT_LOST,
    FINISHED_TASK_STATES,
    GONE_AGENT_STATES,
    OPEN_TASK_STATES,
    TASK_ASSIGNED,
    TASK_OPEN,
    TASK_ORPHANED,
    State,
    find_task_anywhere,
)
from .session import Session, why_not_finished

if TYPE_CHECKING:
    from .shapes.state import Agent, FinishedTask, Task

#: Tasks any agent may claim; the first claim in journal order wins.
CLAIMABLE_TASK_STATES = frozenset({TASK_OPEN, TASK_ORPHANED})
#: How many agents or tasks a refusal lists before "and N more".
MAX_LISTED = 10


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
    agents: dict[str, Agent] = state["agents"]
    found = matching(name, {key: (key, str(agent.get("name") or key)) for key, agent in agents.items()})
    if len(found) == 1:
        return found[0]
    if not found and name in state["departed_ids"]:  # departed long ago: only its key is kept (fold/agents.py)
        raise SessionError(f"agent {shown(name)} {_long_gone(state, name)} (popkit-power status --all lists it); "
                           f"agents: {_listed([agent_label(state, key, status=True) for key in agents], 'none yet')}")
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
    agent: Agent | dict[str, Any] = state["agents"].get(key) or {}
    name = str(agent.get("name") or key)
    inside = [shown(key)] if name != key else []
    if status:
        inside.append(str(agent.get("status", "not joined")))
    return f"{shown(name)} ({', '.join(inside)})" if inside else shown(name)


def _gone(agent: Agent) -> str:
    lost = agent.get("status") == AGENT_LOST
    reason = agent.get("lost_reason" if lost else "left_reason")
    because = f" ({shown(str(reason))})" if reason else ""
    return f"was lost{because}" if lost else f"has left{because}"


def _long_gone(state: State, key: str) -> str:
    """How an agent that departed long ago (only its key kept, in `departed_ids`) went."""
    return "left long ago" if state["departed_ids"][key] else "was lost long ago"


def check_task_id(given: str) -> str:
    """`given` if it can name a task; SessionError for an empty or blank one (a start of every id)."""
    if not given.strip():
        raise SessionError(f"a task id is needed (the id, or a unique start of it); got {given!r}")
    return given


def find_task(state: State, given: str) -> str:
    """The id of the task `given` names (its id or a unique start of it, in any case); SessionError naming the open
    tasks when it names none, and the ones it names when several."""
    check_task_id(given)
    tasks: dict[str, Task | FinishedTask] = {**state["finished"], **state["tasks"]}
    if given in tasks:
        return given
    if given in state["finished_ids"]:  # finished before the most recent ones: only its id is kept
        raise SessionError(f"{why_not_finished(state, given)} (popkit-power replay shows its record)")
    found = matching(given, {task_id: (task_id,) for task_id in tasks})
    if len(found) == 1:
        return found[0]
    if found:
        listed = _listed([task_label(state, task_id) for task_id in found], "")
        raise SessionError(f"{quoted(given)} matches several tasks: {listed}; type more of the id, or all of it")
    raise SessionError(f"no task {quoted(given)} in this session; {open_tasks_text(state)}")


def task_label(state: State, task_id: str) -> str:
    """How a task is named in a message: `t-1a2b3c "Write the parser" (claimed by main-c0ffee)`."""
    task = _the_task(state, task_id)
    title = task.get("title")
    titled = f" {quoted(title)}" if isinstance(title, str) and title != task_id else ""
    owner = task.get("owner")
    by = f" by {agent_label(state, owner)}" if isinstance(owner, str) and owner else ""
    return f"{shown(task_id)}{titled} ({task.get('status')}{by})"


def open_tasks_text(state: State) -> str:
    """The session's unfinished tasks for a message, or how to add one when there are none."""
    open_ids = [task_id for task_id, task in state["tasks"].items() if task.get("status") in OPEN_TASK_STATES]
    if not open_ids:
        return 'no open tasks; add one with: popkit-power task add "title"'
    return f"open tasks: {_listed([task_label(state, task_id) for task_id in open_ids], '')}"


# -- the task verbs' rules ------------------------------------------------------------------------------------------

def check_claim(state: State, task_id: str, who: str) -> bool:
    """Whether `who` already holds the task (nothing to write); SessionError when it cannot be claimed (finished, or
    held by another). False means a claim may be written; which claim wins is the journal's order (`claim_outcome`)."""
    task = _the_task(state, task_id)
    status, owner = task.get("status"), task.get("owner")
    _refuse_finished(state, task_id, "claim it")
    if owner == who:
        return True
    if status in CLAIMABLE_TASK_STATES:
        return False
    reassign = f"popkit-power reassign {shell_word(task_id, 'TASK')} AGENT"
    if owner and _live(state, owner):
        raise SessionError(f"task {shown(task_id)} was not claimed: it is {_held(status, _holder(state, owner))} "
                           f"already; ask for it with: popkit-power send {_agent_arg(state, owner)} \"...\", or the "
                           f"human hands it over with: {reassign}")
    if owner:
        raise SessionError(f"task {shown(task_id)} was not claimed: it is {_held(status, _holder(state, owner))}; "
                           f"it is offered to the others once the coordinator orphans it, or the human hands it over "
                           f"with: {reassign}")
    raise SessionError(f"task {shown(task_id)} is {status}, not open or orphaned, so it cannot be claimed; the human "
                       f"hands it out with: {reassign}")


def claim_outcome(state: State, task_id: str, who: str) -> None:
    """Nothing when `who` holds the task in `state` (folded through its claim); SessionError naming the winner
    otherwise."""
    task: Task | FinishedTask | dict[str, Any] = find_task_anywhere(state, task_id) or {}
    owner = task.get("owner")
    if owner == who:
        return
    if owner:
        raise SessionError(f"task {shown(task_id)} was not claimed: {_holder(state, owner)} claimed it first; "
                           f"{open_tasks_text(state)}")
    raise SessionError(f"task {shown(task_id)} was not claimed: it is {task.get('status')} with no owner")


def check_result(state: State, task_id: str, who: str) -> None:
    """SessionError unless `who` may report the task's result (`fold.tasks.may_finish`): it is not finished, and
    `who` holds it or is the human. An agent the task was taken from (released, reassigned, orphaned) claims it
    again first; a result it reports anyway would change nothing."""
    _refuse_finished(state, task_id, "report another result")
    if may_finish(state, task_id, who):
        return
    task = _the_task(state, task_id)
    owner, status = task.get("owner"), task.get("status")
    reassign = f"popkit-power reassign {shell_word(task_id, 'TASK')} AGENT"
    if owner and _live(state, owner):
        raise SessionError(f"task {shown(task_id)} belongs to {_holder(state, owner)}: only its owner or the human "
                           f"reports its result; message the owner with: popkit-power send "
                           f"{_agent_arg(state, owner)} \"...\"")
    if owner:
        raise SessionError(f"task {shown(task_id)} belongs to {_holder(state, owner)}: only its owner or the human "
                           f"reports its result; it is offered to the others once the coordinator orphans it (then "
                           f"claim it), or the human hands it over with: {reassign}")
    if status in CLAIMABLE_TASK_STATES:
        raise SessionError(f"task {shown(task_id)} is {status}: nobody holds it; claim it first with: popkit-power "
                           f"claim {shell_word(task_id, 'TASK')}")
    raise SessionError(f"task {shown(task_id)} is {status}: nobody holds it, and it waits for the human, who hands it "
                       f"out with: {reassign}")


def check_release(state: State, task_id: str, who: str) -> None:
    """SessionError unless `who` may give the task back: someone holds it, and that is `who` (or `who` is the human)."""
    _refuse_finished(state, task_id, "release it")
    task = _the_task(state, task_id)
    owner = task.get("owner")
    if not owner:
        hint = (f"; take it with: popkit-power claim {shell_word(task_id, 'TASK')}"
                if task.get("status") in CLAIMABLE_TASK_STATES else "")
        raise SessionError(f"task {shown(task_id)} is {task.get('status')}: nobody holds it, so there is nothing "
                           f"to release{hint}")
    if owner != who and who != HUMAN:
        raise SessionError(f"task {shown(task_id)} belongs to {_holder(state, owner)}: only its owner or the human "
                           f"releases it")


def check_reassign(state: State, task_id: str, agent: str) -> bool:
    """Whether `agent` already holds the task (nothing to write); SessionError for a finished task."""
    _refuse_finished(state, task_id, "reassign it")
    task = _the_task(state, task_id)
    return bool(task.get("owner") == agent and task.get("status") not in CLAIMABLE_TASK_STATES)


def _refuse_finished(state: State, task_id: str, doing: str) -> None:
    task = _the_task(state, task_id)
    status = task.get("status")
    if status in FINISHED_TASK_STATES:
        by = task.get("completed_by")
        by_text = f" by {agent_label(state, by)}" if isinstance(by, str) and by else ""
        raise SessionError(f"task {shown(task_id)} is already {status}{by_text}, so you cannot {doing}; for more "
                           f"work add a new task with: popkit-power task add \"title\"")


def _the_task(state: State, task_id: str) -> Task | FinishedTask:
    """A task `find_task` named: open, or among the recently finished ones."""
    task = find_task_anywhere(state, task_id)
    if task is None:
        raise SessionError(f"no task {quoted(task_id)} in this session; {open_tasks_text(state)}")
    return task


def _live(state: State, key: str) -> bool:
    """False only for an agent known to have left or been lost (an owner never seen to join may be elsewhere), also
    one that departed long ago and left the state (`departed_ids`)."""
    if key not in state["agents"]:
        return key not in state["departed_ids"]
    return state["agents"][key]["status"] not in GONE_AGENT_STATES


def _held(status: Any, holder: str) -> str:
    """"assigned to X", "claimed by X"."""
    return f"{status} {'to' if status == TASK_ASSIGNED else 'by'} {holder}"


def _holder(state: State, key: str) -> str:
    if _live(state, key):
        return agent_label(state, key)
    gone = _gone(state["agents"][key]) if key in state["agents"] else _long_gone(state, key)
    return f"{agent_label(state, key)}, who {gone}"


def _agent_arg(state: State, key: str) -> str:
    return shell_word(str((state["agents"][key]["name"] if key in state["agents"] else None) or key), "AGENT")


# -- the outcome of a claim -----------------------------------------------------------------------------------------

def fold_through(session: Session, state: State, position: Position, seq: int) -> State:
    """`state` (covering the journal up to `position`) with the records after it folded in, up to and including
    `seq`: the state as `seq` left it, whatever was appended after it."""
    return session.fold_through(state, position, seq)


# -- text (shown, quoted and the cut are display.py's) ---------------------------------------------------------------

def shell_word(value: str, placeholder: str) -> str:
    """`value` as one shell word for a command to copy, or `placeholder` when it is long or not plain text."""
    return shlex.quote(value) if len(value) <= MAX_SHOWN_CHARS and value.isprintable() else placeholder


def _listed(items: list[str], empty: str) -> str:
    if not items:
        return empty
    more = f", and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more
