"""The hook set up wrong, made visible without breaking the agent: one Claude Code event reaching the hook twice, and a
config.json that cannot be used.

Twice: the plugin's hooks and `popkit-power install`'s both registered (or two settings files naming the hook).
Claude Code then runs two hook processes per event, which would record every event twice and welcome each agent
twice.

Both processes get the same payload, so they have one call id (Claude Code's `tool_use_id` for a tool event, else a
checksum of the payload). Under the agent's lock, the second one finds that id among the calls the agent's state
remembers from the last `WINDOW_SECONDS`, records nothing, answers nothing (the first one answered), and the first
time it happens to an agent, logs one line in hook.log saying how each was registered and to run
`popkit-power doctor`. `status` then points to doctor, which finds both registrations.

A config.json that cannot be used (`unusable_config`): nothing is recorded, since its settings may be what guards the
journal (durability, guardrails); the reason goes to hook.log at every call, and at SessionStart the user sees it in a
message from Claude Code (`systemMessage`). The agent is told nothing. `status` and `doctor` show the error too.

This module is on the hook's hot path: it imports only `time`, `codec` and the log.
"""

from __future__ import annotations

import time

from .. import codec
from .log import log_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..errors import ConfigError
    from .agent_state import AgentState

WINDOW_SECONDS = 5.0  # the second process of one event runs at once (Claude Code starts both together)
MAX_CALLS = 64  # calls remembered per agent


def registered_via(environ: Any) -> str:
    """How the running hook process was registered: Claude Code sets CLAUDE_PLUGIN_ROOT for a plugin's hooks only."""
    root = environ.get("CLAUDE_PLUGIN_ROOT")
    return f"the plugin at {root}" if root else "a settings file (popkit-power install)"


def seen_before(state: AgentState, call_id: str, via: str, now: float) -> str | None:
    """How the earlier process of this same call was registered, if one handled it within WINDOW_SECONDS; else
    None, and the call is remembered (the oldest calls are forgotten first)."""
    calls = state.calls
    earlier = calls.get(call_id)
    if earlier and isinstance(earlier[0], (int, float)) and 0 <= now - earlier[0] <= WINDOW_SECONDS:
        state.duplicates += 1
        return str(earlier[1]) if len(earlier) > 1 else "?"
    for old in [key for key, value in calls.items() if not value or not isinstance(value[0], (int, float))
                or now - value[0] > WINDOW_SECONDS]:
        del calls[old]
    calls[call_id] = [now, via]
    while len(calls) > MAX_CALLS:
        del calls[next(iter(calls))]
    return None


def twice(state: AgentState, call_id: str, environ: Any, agent_key: str, event_name: str, power_dir: str) -> bool:
    """Whether this call was handled already by another hook process (logged the first time for the agent)."""
    via = registered_via(environ)
    other = seen_before(state, call_id, via, time.time())
    if other is None:
        return False
    if state.duplicates == 1:
        log_error(power_dir, notice(agent_key, event_name, via, other))
    return True


def notice(agent_key: str, event_name: str, this_via: str, other_via: str) -> str:
    """The hook.log line for the first duplicate of an agent."""
    return (f"{event_name} of agent {agent_key} reached popkit-power-hook twice (once through {other_via}, once "
            f"through {this_via}): the hooks are registered twice, so the second was ignored; keep one of them "
            f"(popkit-power doctor shows where they are)")


def unusable_config(power_dir: str, event_name: str, error: ConfigError, deliver: Any) -> str | None:
    """The reply (at SessionStart only) and the log line for a config.json that cannot be used."""
    log_error(power_dir, f"{error}; nothing is recorded until it is fixed (popkit-power doctor)")
    if event_name != "SessionStart":
        return None
    reply = codec.dumps({"systemMessage": f"popkit-power: Power Mode is on, but {error}. Nothing is recorded until "
                                          f"it is fixed; popkit-power doctor says more."})
    if deliver is not None:
        deliver(reply)
    return reply
