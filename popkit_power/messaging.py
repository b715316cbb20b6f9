"""Telling agents something: a direct message to one agent, or a broadcast to all. The protocols every caller
follows, whether the CLI's `send` and `broadcast` or the dashboard.

    send_message(session, "main-3f", "text", sender=who)  ->  Sent (the agent's key; SessionError for an agent that
                                                             left or was lost, whom nobody would read it for)
    broadcast(session, "text", sender=who)                 ->  Sent (how many live agents hear it now)

Blank text is refused first (`require_text`), naming what to write instead; nothing is written then.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .display import shown
from .errors import SessionError
from .fold.model import MAX_BROADCASTS_KEPT
from .projector import live_agents
from .roster import live_agent
from .session import Session


@dataclass(frozen=True)
class Sent:
    """A message written: its record, and what a person reads about it."""

    seq: int
    text: str


def send_message(session: Session, agent: str, text: str, *, sender: str) -> Sent:
    """Send `text` to the live agent `agent` names (its key or name, or a unique start of either)."""
    require_text(text, "message", 'say what the agent should hear: popkit-power send AGENT "text"')
    target = live_agent(session.projection()[0], agent, "a message to it would not be read")
    appended = session.publish("message.direct", {"text": text}, sender=sender, to=target)
    return Sent(appended.first_seq, f"message sent to {shown(target)} (seq {appended.first_seq})")


def broadcast(session: Session, text: str, *, sender: str) -> Sent:
    """Send `text` to every agent: those working now hear it at their next tool call, those that join later in
    their welcome (the session's last MAX_BROADCASTS_KEPT broadcasts)."""
    require_text(text, "broadcast", 'say what every agent should hear: popkit-power broadcast "text"')
    appended = session.publish("message.broadcast", {"text": text}, sender=sender)
    hearing = [key for key in live_agents(session.projection()[0]) if key != sender]
    now = (f"{len(hearing)} agent{'s' if len(hearing) != 1 else ''} working now hear{'s' if len(hearing) == 1 else ''}"
           f" it" if hearing else "no agent is working now")
    return Sent(appended.first_seq, f"broadcast sent (seq {appended.first_seq}): {now}; agents that join later hear "
                                    f"it in their welcome (the session's last {MAX_BROADCASTS_KEPT} broadcasts)")


def require_text(text: str, what: str, fix: str) -> str:
    """`text` unless it is blank: empty, or only spaces, line breaks, control or invisible characters (a zero-width
    space reads as nothing too). SessionError naming `what` and `fix` otherwise."""
    if all(char.isspace() or unicodedata.category(char) in _BLANK_CATEGORIES for char in text):
        raise SessionError(f"the {what} is empty; {fix}")
    return text


#: Unicode categories that show nothing: controls, formats (zero-width characters), separators.
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
