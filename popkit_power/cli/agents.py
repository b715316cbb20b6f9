"""The verbs agents (from their Bash tool) and people use inside a session, and `install` / `uninstall`.

The sender is `--as`, else $POPKIT_POWER_AGENT, else the Claude Code session whose Bash tool runs the command
(`<CLAUDE_CODE_SESSION_ID>:main`), else "human"; `sender_for` refuses the ones this process may not use. Approvals
are answered by the human only, from outside every agent's session, and the answer records where it was given.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import SessionError
from ..install import install_hooks, settings_path, uninstall_hooks
from ..keys import new_request_id, new_result_task_id
from ..session import Session
from . import handle_errors, power_dir_of, publish_event, sender_for, sender_option


def register(group: click.Group) -> None:
    """Add this module's commands to the `popkit-power` group."""
    for command in (insight, send, broadcast, ask, approve, deny, result, claim, install, uninstall):
        group.add_command(command)


def _active_session() -> Session:
    return Session.active(power_dir_of(click.get_current_context()))


@click.command()
@click.argument("text")
@click.option("--tags", default="", metavar="A,B", help="Comma-separated tags.")
@sender_option
@handle_errors
def insight(text: str, tags: str, sender: str | None) -> None:
    """Share a discovery with every other agent."""
    who = sender_for("insight.shared", sender)
    session = _active_session()
    tag_list = [tag.strip() for tag in tags.split(",") if tag.strip()]
    appended = session.publish("insight.shared", {"text": text, "tags": tag_list}, sender=who)
    click.echo(f"insight shared (seq {appended.first_seq})")


@click.command()
@click.argument("agent")
@click.argument("text")
@sender_option
@handle_errors
def send(agent: str, text: str, sender: str | None) -> None:
    """Send TEXT to one AGENT (its key, its name, or a unique start of either)."""
    who = sender_for("message.direct", sender)
    session = _active_session()
    target = resolve_agent(session, agent)
    appended = session.publish("message.direct", {"text": text}, sender=who, to=target)
    click.echo(f"message sent to {target} (seq {appended.first_seq})")


@click.command()
@click.argument("text")
@sender_option
@handle_errors
def broadcast(text: str, sender: str | None) -> None:
    """Send TEXT to every agent."""
    who = sender_for("message.broadcast", sender)
    session = _active_session()
    appended = session.publish("message.broadcast", {"text": text}, sender=who)
    click.echo(f"broadcast sent (seq {appended.first_seq})")


@click.command()
@click.argument("question")
@click.option("--option", "options", multiple=True, help="A possible answer (repeatable).")
@sender_option
@handle_errors
def ask(question: str, options: tuple[str, ...], sender: str | None) -> None:
    """Ask the human to approve something; the answer reaches the asking agent after a later tool call."""
    who = sender_for("approval.requested", sender)
    session = _active_session()
    request = new_request_id()
    data: dict[str, Any] = {"request": request, "question": question}
    if options:
        data["options"] = list(options)
    appended = session.publish("approval.requested", data, sender=who)
    click.echo(f"approval requested: {request} (seq {appended.first_seq}); "
               f"the human answers with: popkit-power approve {request}  or  popkit-power deny {request}")


def _answer(event_type: str, request: str, note: str | None) -> None:
    who = sender_for(event_type, "human", request=request)
    session = _active_session()
    state, _ = session.projection()
    approval = state["approvals"].get(request)
    if approval is None:
        pending = [key for key, value in state["approvals"].items() if value.get("status") == "pending"]
        raise SessionError(f"no approval request {request!r} in session {session.id}; "
                           f"pending: {', '.join(pending) or 'none'}")
    data = {"request": request, **({"note": note} if note else {})}
    appended = publish_event(session, event_type, data, who)
    click.echo(f"{event_type.split('.')[1]} {request} (seq {appended.first_seq})")


@click.command()
@click.argument("request")
@click.option("--note", help="A note for the agent.")
@handle_errors
def approve(request: str, note: str | None) -> None:
    """Grant an approval REQUEST, as the human (from a terminal outside Claude Code; refused inside an agent's
    session)."""
    _answer("approval.granted", request, note)


@click.command()
@click.argument("request")
@click.option("--note", help="Why, for the agent.")
@handle_errors
def deny(request: str, note: str | None) -> None:
    """Deny an approval REQUEST, as the human (from a terminal outside Claude Code; refused inside an agent's
    session)."""
    _answer("approval.denied", request, note)


@click.command()
@click.argument("text")
@click.option("--task", help="The task this is the result of (default: the sender's current task, else a new one).")
@click.option("--failed", is_flag=True, help="The task failed; TEXT says why.")
@sender_option
@handle_errors
def result(text: str, task: str | None, failed: bool, sender: str | None) -> None:
    """Report the result of a task."""
    who = sender_for("task.completed", sender)
    session = _active_session()
    if task is None:
        state, _ = session.projection()
        task = (state["agents"].get(who) or {}).get("current_task") or new_result_task_id()
    appended = session.publish("task.completed", {"task": task, "result": text, "ok": not failed}, sender=who)
    click.echo(f"result recorded for task {task} (seq {appended.first_seq})")


@click.command()
@click.argument("task")
@sender_option
@handle_errors
def claim(task: str, sender: str | None) -> None:
    """Claim TASK (an orphaned or open one); the first claim in the journal wins."""
    who = sender_for("task.claimed", sender)
    session = _active_session()
    session.publish("task.claimed", {"task": task}, sender=who)
    state, _ = session.projection()
    owner = (state["tasks"].get(task) or {}).get("owner")
    if owner == who:
        click.echo(f"task {task} is yours")
    else:
        raise SessionError(f"task {task} was not claimed: it belongs to {owner or 'nobody'} "
                           f"(status {(state['tasks'].get(task) or {}).get('status', 'unknown')})")


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


@click.command()
@click.option("--user", is_flag=True, help="Write ~/.claude/settings.json instead of the project's.")
@click.option("--project-dir", type=click.Path(file_okay=False), default=".", help="The project (default: here).")
@handle_errors
def install(user: bool, project_dir: str) -> None:
    """Register the Power Mode hooks in Claude Code's settings (merged with what is there; idempotent)."""
    path = settings_path(user=user, project_dir=project_dir)
    added = install_hooks(path)
    click.echo(f"{'installed' if added else 'already installed'}: popkit-power hooks in {path}")


@click.command()
@click.option("--user", is_flag=True, help="Edit ~/.claude/settings.json instead of the project's.")
@click.option("--project-dir", type=click.Path(file_okay=False), default=".", help="The project (default: here).")
@handle_errors
def uninstall(user: bool, project_dir: str) -> None:
    """Remove the Power Mode hooks from Claude Code's settings, leaving everything else as it was."""
    path = settings_path(user=user, project_dir=project_dir)
    removed = uninstall_hooks(path)
    click.echo(f"{'removed' if removed else 'nothing to remove'}: popkit-power hooks in {path}")
