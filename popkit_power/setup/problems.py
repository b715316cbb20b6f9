"""What `status` says before anything else, and `doctor` checks: a power directory the hook does not trust, a
config.json that cannot be used, a mode that is not as it should be, agents that work unrecorded, and errors the hook
logged. Each is one line that says what to do."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..display import MAX_NAME_CHARS, clean
from ..errors import PowerModeError
from ..home import is_trusted, read_text
from ..keys import ORIGIN_FILE
from ..timestamps import age_of, ago, seconds_of
from .hook_errors import since
from .unreported import unreported

if TYPE_CHECKING:
    from ..shapes.state import Agent


def problems(power_dir: str, info: dict[str, Any], config_error: str | None = None) -> list[str]:
    """What `status` must say before anything else, each pointing to `popkit-power doctor`: a power directory the
    hook does not trust (`untrusted_problem`), a config.json that cannot be used (the hook falls back to its last
    valid settings), a mode that is not as it should be (a server set but not answering, a replicator not running
    or failing: `status.mode_info`), agents that work but are no longer recorded (unreported.py), and errors the
    hook logged since the agents' last recorded call (the session's opening when no agent has one): a hook that
    fails records nothing, so its errors are newer."""
    found = []
    untrusted = untrusted_problem(power_dir)
    if untrusted:
        found.append(f"{untrusted} (popkit-power doctor)")
    if config_error:
        found.append(f"{config_error}; until it is fixed the hook runs with its last valid settings (or the "
                     f"defaults) and keeps the guardrails (popkit-power doctor)")
    mode = info.get("mode") or {}
    if mode.get("ok") is False:
        found.append(f"{mode.get('reason')} (popkit-power doctor)")
    if info.get("session") is None:
        return found
    for request, answer in (info.get("doubtful_answers") or {}).items():
        found.append(f"approval {clean(request, 40)} was {answer['status']} as the human with doubtful evidence "
                     f"({clean('; '.join(answer['reasons']), 200)}): an agent may have given it; see popkit-power "
                     f"replay --type approval")
    names = info.get("names") or {}
    for silent in unreported(info.get("agents") or {}, now=time.time()):
        found.append(unreported_problem(silent, names.get(silent["key"], silent["key"]), info["agents"]))
    seen = [seconds_of(agent.get("last_seen")) for agent in (info.get("agents") or {}).values()]
    last = max((when for when in seen if when is not None), default=seconds_of(info.get("opened")))
    errors = since(power_dir, last)
    if errors:
        latest = errors[-1]
        found.append(f"the hook logged {len(errors)} error{'s' * (len(errors) != 1)} since the agents' last recorded "
                     f"call, the latest: {clean(latest['line'][20:], 160)} (popkit-power doctor)")
    return found


def unreported_problem(silent: dict[str, Any], name: str, agents: dict[str, Agent]) -> str:
    """One line about an agent that works unrecorded (unreported.py), with what to do."""
    now = time.time()
    last = age_of(agents[silent["key"]]["last_seen"] if silent["key"] in agents else None, now)["ago"]
    return (f"agent {clean(name, MAX_NAME_CHARS)} (pid {silent['pid']}) works but is no longer recorded: its "
            f"transcript shows {silent['calls']} tool call(s) since {ago(now - silent['since'])}, none recorded "
            f"(last recorded {last}); the hook no longer runs for it: were the hook settings changed or "
            f"uninstalled? popkit-power install brings it back (Claude Code reads its settings again), then "
            f"popkit-power doctor")


def untrusted_problem(power_dir: str) -> str | None:
    """What to say about a power directory the hook does not speak from (home.is_trusted), with where it says it
    comes from; None when it is trusted or cannot be looked at."""
    try:
        if is_trusted(power_dir):
            return None
        made = read_text(os.path.join(power_dir, ORIGIN_FILE), 4096).strip()
    except FileNotFoundError:
        made = ""
    except (OSError, PowerModeError):
        return None
    said = f" (it says it was made on {clean(made, 60)!r}, which anyone can write)" if made else ""
    return (f"{power_dir} is not trusted: popkit-power on this machine never made a session active in it{said}; it "
            f"may have come with the project's files, such as an unpacked archive. The hook ignores it, so no agent "
            f"hears of its sessions or objective. If it is yours: popkit-power trust")
