"""Agents on this machine that the hook no longer records, and the ones a change of the hook settings would cut off.

Claude Code reads its hook settings again when they change, so `popkit-power uninstall`, or an edit that breaks
the hook's entry, silences agents that are working: nothing they do is recorded any more, and the journal alone
cannot tell that silence from a long tool call. Two things can:

- its Claude Code process still runs (its pid and start time, as the coordinator checks them: processes.py), and
- Claude Code's own transcript of it shows tool calls that finished after its last recorded event (each one would
  have run the PostToolUse hook). The transcript is `<claude dir>/projects/<project>/<session id>.jsonl`, a
  subagent's `<session id>/subagents/agent-<agent id>.jsonl` beside it (`<claude dir>` is $CLAUDE_CONFIG_DIR, else
  ~/.claude), and every line carries its own `timestamp`, so a transcript written late still tells when.

An agent in a long tool call has no finished call after its last record, and an agent whose person types with no
tool call has none either: neither is flagged. Where there is no /proc, no recorded pid, or no transcript, nothing
is said. Only the last TAIL_BYTES of a transcript are read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..keys import CLAUDE_DIR, MAIN, host_name, subagent_transcript
from ..processes import still_running
from ..timestamps import seconds_of

if TYPE_CHECKING:
    from ..shapes.state import Agent

#: A tool call that finished this long after the agent's last record, with no record of it, is not a hook still
#: running (the hook's own timeout is 60 s): the hook did not run for it.
GRACE_SECONDS = 60.0
#: How much of the end of a transcript is read.
TAIL_BYTES = 256 * 1024
LIVE = ("active", "idle")


def claude_dir(environ: Mapping[str, str] | None = None) -> str:
    """Where Claude Code keeps its transcripts: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    env = os.environ if environ is None else environ
    return env.get("CLAUDE_CONFIG_DIR") or os.path.join(env.get("HOME") or os.path.expanduser("~"), CLAUDE_DIR)


def running_here(agents: dict[str, Agent]) -> list[str]:
    """The keys of the live agents whose Claude Code process runs on this machine now (pid and start time)."""
    here = host_name()
    return [key for key, agent in agents.items()
            if agent.get("status") in LIVE and agent.get("host") in (None, here)
            and isinstance(agent.get("pid"), int) and still_running(agent["pid"], agent.get("pid_start")) is True]


def unreported(agents: dict[str, Agent], *, now: float,
               claude: str | None = None) -> list[dict[str, Any]]:
    """The live agents on this machine whose process runs and whose transcript shows tool calls finished more than
    GRACE_SECONDS after their last record: each as {"key", "pid", "calls" (how many such calls), "since" (the
    first one's timestamp), "transcript"}."""
    found = []
    for key in running_here(agents):
        agent = agents[key]
        seen = seconds_of(agent.get("last_seen"))
        if seen is None or now - seen < GRACE_SECONDS:
            continue
        path = transcript_of(agent, claude or claude_dir())
        if path is None:
            continue
        late = [when for when in _tool_results(path) if when > seen + GRACE_SECONDS]
        if late:
            found.append({"key": key, "pid": agent["pid"], "calls": len(late), "since": min(late),
                          "transcript": path})
    return found


def transcript_of(agent: Agent, claude: str) -> str | None:
    """The transcript Claude Code keeps of `agent`, if there is one."""
    session = agent.get("claude_session")
    if not isinstance(session, str) or not session:
        return None
    project_dirs = os.path.join(glob.escape(claude), "projects", "*")
    agent_id = agent.get("agent_id")
    if isinstance(agent_id, str) and agent_id and agent_id != MAIN:
        pattern = subagent_transcript(os.path.join(project_dirs, glob.escape(session)), glob.escape(agent_id))
    else:
        pattern = os.path.join(project_dirs, f"{glob.escape(session)}.jsonl")
    found = glob.glob(pattern)
    return max(found, key=_mtime) if found else None


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _tool_results(path: str) -> Iterable[float]:
    """When each tool call in the end of a transcript finished: the timestamps of its tool_result lines."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read(TAIL_BYTES)
    except OSError:
        return
    for line in tail.splitlines()[1 if size > TAIL_BYTES else 0:]:
        if b'"tool_result"' not in line:
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("message"), dict):
            continue
        when, content = seconds_of(entry.get("timestamp")), entry["message"].get("content")
        if when is not None and isinstance(content, list) and any(
                isinstance(part, dict) and part.get("type") == "tool_result" for part in content):
            yield when
