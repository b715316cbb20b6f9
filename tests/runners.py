"""The suite's one way to do each of three things many tests do: run `popkit-power` in-process (click's runner), run
the hook on a PreToolUse payload and read its denial, and give a command a person's environment (no variable of an
agent's session)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner, Result

from popkit_power import provenance
from popkit_power.cli import main
from popkit_power.hook import entry as hook

#: The Claude Code session of the PreToolUse payloads.
AGENT = "c0ffee00-1111-2222-3333-444455556666"


def run_cli(*args: str, home: str | Path | None = None, env: dict[str, str] | None = None) -> Result:
    """`popkit-power [--home HOME] ARGS` in-process; an exception in the command fails the test (not exit code 1).
    Without `home` the power directory comes from POPKIT_POWER_HOME (set by conftest's power_dir)."""
    prefix = ["--home", str(home)] if home is not None else []
    return CliRunner().invoke(main, [*prefix, *args], env=env, catch_exceptions=False)


def pre_tool_use_payload(tool: str, tool_input: dict[str, Any], *, claude: str = AGENT, cwd: str = "/repo",
                         **fields: Any) -> bytes:
    """A PreToolUse payload as Claude Code sends it."""
    return orjson.dumps({"session_id": claude, "transcript_path": "/t.jsonl", "cwd": cwd,
                         "hook_event_name": "PreToolUse", "tool_name": tool, "tool_input": tool_input, **fields})


def denial(reply: bytes | str | None) -> dict[str, Any] | None:
    """The hook's answer to a PreToolUse: its denial (checked to be one), or None when it answered nothing."""
    if not reply:
        return None
    output: dict[str, Any] = orjson.loads(reply)["hookSpecificOutput"]
    assert (output["hookEventName"], output["permissionDecision"]) == ("PreToolUse", "deny"), output
    return output


def pre_tool_use(power_dir: str, tool: str, tool_input: dict[str, Any], *, cwd: str = "/repo",
                 env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The hook (in-process) on one PreToolUse call of AGENT: its denial, or None when it let the call through."""
    payload = pre_tool_use_payload(tool, tool_input, cwd=cwd)
    return denial(hook.run(io.BytesIO(payload), power_dir, {"CLAUDE_PID": "4242"} if env is None else env))


def person_env(**extra: str) -> dict[str, str]:
    """This process's environment as a person's shell has it: no variable of an agent's session (nor a power
    directory chosen for it), then `extra`."""
    drop = (*provenance.AGENT_ENVIRONMENT, "POPKIT_POWER_AGENT", "POPKIT_POWER_HOME")
    return {**{name: value for name, value in os.environ.items() if name not in drop}, **extra}
