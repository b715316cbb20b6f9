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

A config.json that cannot be used (`config_notice`): the hook goes on recording with the settings config.py's
`usable_config` gives (each valid setting of the file, else its last valid version, else the default; guardrails
never fall back to none). Each agent is told once, in its welcome; the user sees it in a message from Claude Code at
SessionStart (`systemMessage`); hook.log gets one line per distinct problem (`log_config_problem`), not per call;
`status` and `doctor` show the error.

This module is on the hook's hot path: it imports only `time`, `codec` and the log.
"""

from __future__ import annotations

import time

from .log import HOOK_TWICE, log_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config import ConfigProblem
    from .agent_state import AgentState

WINDOW_SECONDS = 5.0  # the second process of one event runs at once (Claude Code starts both together)
MAX_CALLS = 64  # calls remembered per agent


def registered_via(environ: Any) -> str:
    """How the running hook process was registered: Claude Code sets CLAUDE_PLUGIN_ROOT for a plugin's hooks only;
    a call the coordinator answers over HTTP says so itself (hook_server/app.py)."""
    if environ.get("POPKIT_HOOK_VIA") == "http":  # hook_transport.VIA_ENV, not imported: the hook's hot path
        return "an HTTP hook (popkit-power install --transport http)"
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
        log_error(power_dir, notice(agent_key, event_name, via, other), code=HOOK_TWICE)
    return True


def notice(agent_key: str, event_name: str, this_via: str, other_via: str) -> str:
    """The hook.log line for the first duplicate of an agent."""
    return (f"{event_name} of agent {agent_key} reached popkit-power-hook twice (once through {other_via}, once "
            f"through {this_via}): the hooks are registered twice, so the second was ignored; keep one of them "
            f"(popkit-power doctor shows where they are)")


def config_notice(power_dir: str, problem: ConfigProblem | None, event_name: str,
                  context: str | None) -> tuple[str | None, dict[str, str]]:
    """For a config.json that cannot be used: at an agent's start, the welcome with one line more for the agent and
    the message Claude Code shows the user (SessionStart); nothing at other events."""
    if problem is None or event_name not in ("SessionStart", "SubagentStart"):
        return context, {}
    line = (f"Note: Power Mode's config.json cannot be used ({problem}); this session runs with {problem.fallback} "
            f"for the settings it does not give, and guardrails keep holding. Tell the human if it gets in your way.")
    told = {"systemMessage": f"popkit-power: {problem}. Power Mode keeps recording, with {problem.fallback} for "
                             f"what it does not give; popkit-power doctor says more."} \
        if event_name == "SessionStart" else {}
    return (f"{context}\n\n{line}" if context else line), told


def log_config_problem(power_dir: str, problem: ConfigProblem) -> None:
    """One line in hook.log per distinct problem, not one per call: the problem's text is kept in
    CONFIG_PROBLEM_FILE, which config.py removes when a changed config.json validates."""
    import os

    from .._fs import read_file, write_file_atomically
    from ..errors import UnsafePathError
    from ..keys import CONFIG_PROBLEM_FILE

    path = os.path.join(power_dir, CONFIG_PROBLEM_FILE)
    text = str(problem).encode("utf-8", "replace")
    try:
        if read_file(path, 1 << 16) == text:
            return
    except (OSError, UnsafePathError):
        pass
    log_error(power_dir, f"{problem}; running with {problem.fallback} for what it does not give, guardrails kept "
                         f"(popkit-power doctor)", code=problem.error.code)
    try:
        write_file_atomically(path, text, durable=False)
    except (OSError, UnsafePathError):
        pass
