"""Commands that put one event into the active session: publish (any event on one of the six channels), and the verbs
agents use from their Bash tool to talk: insight, send, broadcast (the task verbs are in tasks.py).

The sender is `--as`, else $POPKIT_POWER_AGENT, else the Claude Code session whose Bash tool runs the command
(`<CLAUDE_CODE_SESSION_ID>:main`), else "human"; `sender_for` refuses the ones this process may not use.
"""

from __future__ import annotations

from typing import Any

import click

from ..display import quoted
from ..errors import ProtocolError, SessionError
from ..keys import new_request_id
from ..messaging import broadcast as broadcast_message
from ..messaging import require_text, send_message
from ..protocol import CHANNELS, DEFAULT_TYPE_OF_CHANNEL, channel_of
from ..roster import check_agent_name, fold_through, resolve_agent
from .common import active_session, publish_event, sender_for, sender_option


@click.command()
@click.argument("channel", type=click.Choice(CHANNELS))
@click.argument("message")
@click.option("--type", "event_type", metavar="TYPE", help="The event type (default: the channel's usual one).")
@click.option("--to", "to", metavar="AGENT", help="Address one agent (a direct message).")
@sender_option
def publish(channel: str, message: str, event_type: str | None, to: str | None, sender: str | None) -> None:
    """Append one event on CHANNEL to the active session and print its seq.

    MESSAGE is the event's text, or its whole `data` when it is a JSON object.
    """
    event_type = event_type or ("message.direct" if to and channel == "broadcast" else DEFAULT_TYPE_OF_CHANNEL[channel])
    known_channel = channel_of(event_type)
    if known_channel is not None and known_channel != channel:
        raise ProtocolError(f"type {event_type!r} belongs on channel {known_channel!r}, not {channel!r}")
    data = message_data(event_type, message)
    request = data.get("request")
    who = sender_for(event_type, sender, request=request if isinstance(request, str) else None)
    session = active_session()
    if to is not None:
        check_agent_name(to)
        try:  # a name or prefix of one agent becomes the key its inbox matches; anything else is written as given
            to = resolve_agent(session, to)
        except SessionError:
            pass
    appended = publish_event(session, event_type, data, who, to=to, channel=channel)
    click.echo(appended.first_seq)


def message_data(event_type: str, message: str) -> dict[str, Any]:
    """The `data` of an event published from the shell: a JSON object as given, else the text in the type's field."""
    if message.lstrip().startswith("{"):
        import orjson  # here: the other verbs need no JSON parser of their own

        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError as error:
            raise ProtocolError(f"MESSAGE starts with '{{' but is not a JSON object: {error}") from None
        if isinstance(data, dict):
            return data
    if event_type == "approval.requested":
        return {"request": new_request_id(), "question": message}
    if event_type == "task.completed":
        raise ProtocolError("a result needs its task: pass MESSAGE as a JSON object like "
                            "'{\"task\": \"t1\", \"result\": \"...\"}'")
    return {"text": message}


@click.command()
@click.argument("text")
@click.option("--tags", default="", metavar="A,B", help="Comma-separated tags.")
@sender_option
def insight(text: str, tags: str, sender: str | None) -> None:
    """Share a discovery with every other agent (TEXT must say something)."""
    require_text(text, "insight", 'say what you found: popkit-power insight "what you found" --tags a,b')
    who = sender_for("insight.shared", sender)
    tag_list = [tag.strip() for tag in tags.split(",") if tag.strip()]
    session = active_session()
    state, position = session.projection()
    appended = session.publish("insight.shared", {"text": text, "tags": tag_list}, sender=who)
    insights = fold_through(session, state, position, appended.first_seq)["insights"]
    mine = next((insight for insight in reversed(insights) if insight.get("seq") == appended.first_seq), None)
    earlier = next((insight for insight in insights if mine and insight.get("id") == mine.get("dup_of")), None)
    if earlier is None:
        click.echo(f"insight shared (seq {appended.first_seq})")
    else:  # recorded, but held back from the agents who heard the earlier one: say so, so it is not repeated
        click.echo(f"insight recorded (seq {appended.first_seq}), but it repeats an earlier one from "
                   f"{earlier.get('from')}: {quoted(str(earlier.get('text')))}; the other agents are not told again")


@click.command()
@click.argument("agent")
@click.argument("text")
@sender_option
def send(agent: str, text: str, sender: str | None) -> None:
    """Send TEXT to one AGENT: its key, its name, or a unique start of either, in any case. Refused for an agent that
    has left or was lost (nobody would read it)."""
    require_text(text, "message", 'say what the agent should hear: popkit-power send AGENT "text"')
    who = sender_for("message.direct", sender)
    click.echo(send_message(active_session(), agent, text, sender=who).text)


@click.command()
@click.argument("text")
@sender_option
def broadcast(text: str, sender: str | None) -> None:
    """Send TEXT to every agent (TEXT must say something)."""
    require_text(text, "broadcast", 'say what every agent should hear: popkit-power broadcast "text"')
    who = sender_for("message.broadcast", sender)
    click.echo(broadcast_message(active_session(), text, sender=who).text)


COMMANDS = (publish, insight, send, broadcast)
