"""One simulated agent of the demo, run as a process of its own: `python -m popkit_power.demo.agent PERSONA SEED PACE
PROJECT DEADLINE`.

It does what Claude Code does for a real agent, minus the model: every step of its script (story.py) becomes the
hook payload Claude Code would send (the same fields: docs/claude-code.md), fed on stdin to the real
`popkit-power-hook` with CLAUDE_PID set to this process's pid, so the coordinator watches this process as the
agent's Claude Code process and notices its death. Its "Bash tool" runs the real `popkit-power` with the
environment Claude Code gives Bash (CLAUDE_CODE_SESSION_ID, CLAUDE_PID, CLAUDECODE), and it reads the news in the
hook's replies the way a model would: an orphaned task offered, the human's answer arrived.

It writes one JSON object per line on stdout (the demo's log of what it did and heard), and it ends by itself: at
the end of its script, at DEADLINE (seconds since the epoch), or as soon as the demo that started it is gone.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import subprocess
import sys
import time
from typing import Any

import orjson

from .story import story

HOOK_SCRIPT = "popkit-power-hook"
HOOK_TIMEOUT = 30.0
#: What a line of news starts with, per kind the script waits for (hook/texts.py writes them).
NEWS_MARKS = {"orphaned": "- [orphaned task", "approval": "- [approval ", "insight": "- [insight from "}
_CLAIM = re.compile(r"popkit-power claim (\S+)")


def hook_program() -> list[str]:
    """The installed hook script beside this interpreter, as `install` finds it; the module when there is none
    (a checkout run without installing)."""
    beside = os.path.join(os.path.dirname(sys.executable), HOOK_SCRIPT)
    if os.access(beside, os.X_OK):
        return [beside]
    return [sys.executable, "-m", "popkit_power.hook.entry"]


class SimulatedAgent:
    """One persona's script, run step by step against the real hook and CLI."""

    def __init__(self, persona: str, seed: int, pace: float, project: str, deadline: float) -> None:
        plan = story(seed)
        self.persona = persona
        self.claude_session = plan["agents"][persona]["claude_session"]
        self.script: list[tuple[Any, ...]] = plan["agents"][persona]["script"]
        self.pace = pace
        self.project = project
        self.deadline = deadline
        self.rng = random.Random(f"{seed}:{persona}")
        self.parent = os.getppid()
        self.calls = 0
        self.offered: str | None = None
        self.heard: set[str] = set()  # the kinds of news (NEWS_MARKS) heard so far
        self.hook = hook_program()
        # What Claude Code gives its hooks and its Bash tool: the agent's own process is CLAUDE_PID.
        self.env = {**os.environ, "CLAUDE_PID": str(os.getpid()), "CLAUDE_CODE_SESSION_ID": self.claude_session,
                    "CLAUDECODE": "1", "CLAUDE_PROJECT_DIR": project}

    # -- running ----------------------------------------------------------------------------------------------------

    def run(self) -> int:
        for step in self.script:
            kind, args = step[0], step[1:]
            if kind == "start":
                self.hook_event("SessionStart", source="startup", model="demo")
            elif kind == "tool":
                self.tool(*args)
            elif kind == "power":
                self.power(*args)
            elif kind == "until":
                if not self.until(*args):
                    self.log("gave up", f"no {args[0]} news before the deadline")
                    self.finish()
                    return 3
            elif kind == "claim_offered":
                if self.offered is None:
                    self.log("gave up", "no task was offered")
                    self.finish()
                    return 3
                self.power("claim", self.offered)
            elif kind == "linger":
                while self.alive_enough():
                    self.tool(*args)
                self.finish()
                return 0
            elif kind == "stop":
                self.finish()
        return 0

    def alive_enough(self) -> bool:
        """Whether to go on: before the deadline, and while the demo that started this agent runs."""
        return time.time() < self.deadline and os.getppid() == self.parent

    def pause(self) -> None:
        if not self.alive_enough():
            raise SystemExit(4)
        if self.pace > 0:
            time.sleep(self.pace * self.rng.uniform(0.6, 1.4))

    def until(self, kind: str, tool: str, tool_input: dict[str, Any]) -> bool:
        """Make the tool call again and again until the news brings `kind` (it may have come already); False at
        the deadline."""
        while kind not in self.heard:
            if not self.alive_enough():
                return False
            self.tool(tool, tool_input)
        return True

    def finish(self) -> None:
        self.hook_event("Stop", stop_hook_active=False)
        self.hook_event("SessionEnd", reason="prompt_input_exit")

    # -- what Claude Code would do ----------------------------------------------------------------------------------

    def tool(self, name: str, tool_input: dict[str, Any], response: dict[str, Any] | None = None) -> list[str]:
        """One tool call: its PostToolUse goes to the hook; returns the news lines the hook answered with."""
        self.pause()
        tool_input = {key: self.path(value) if key in ("file_path", "path") else value
                      for key, value in tool_input.items()}
        self.calls += 1
        if response is None:
            response = {"stdout": "", "stderr": "", "interrupted": False, "isImage": False} if name == "Bash" \
                else {"filePath": tool_input.get("file_path", self.project), "success": True}
        return self.hook_event("PostToolUse", tool_name=name, tool_input=tool_input, tool_response=response,
                               tool_use_id=f"toolu_demo_{self.persona}_{self.calls:04d}",
                               duration_ms=self.rng.randint(20, 900))

    def power(self, *args: str) -> list[str]:
        """A Bash call that runs `popkit-power ARGS` (the real CLI, with the environment of Claude Code's Bash)."""
        self.pause()
        command = "popkit-power " + shlex.join(args)
        completed = subprocess.run([sys.executable, "-m", "popkit_power.cli", *args], env=self.env, cwd=self.project,
                                   capture_output=True, text=True, timeout=HOOK_TIMEOUT, check=False)
        self.log("ran", command, code=completed.returncode, out=(completed.stdout + completed.stderr).strip())
        response = {"stdout": completed.stdout, "stderr": completed.stderr, "interrupted": False, "isImage": False}
        self.calls += 1
        return self.hook_event("PostToolUse", tool_name="Bash", tool_input={"command": command, "description":
                                                                              f"popkit-power {args[0]}"},
                               tool_response=response, tool_use_id=f"toolu_demo_{self.persona}_{self.calls:04d}",
                               duration_ms=self.rng.randint(150, 400))

    def hook_event(self, event: str, **fields: Any) -> list[str]:
        """Feed one payload to the real hook; return the lines of news (or welcome) it answered with."""
        payload = {"session_id": self.claude_session, "transcript_path":
                   os.path.join(self.project, ".claude", f"{self.claude_session}.jsonl"), "cwd": self.project,
                   "permission_mode": "default", "hook_event_name": event, **fields}
        completed = subprocess.run(self.hook, input=orjson.dumps(payload), env=self.env, cwd=self.project,
                                   capture_output=True, timeout=HOOK_TIMEOUT, check=False)
        if completed.returncode != 0:
            self.log("hook failed", completed.stderr.decode("utf-8", "replace")[-500:], code=completed.returncode)
            return []
        if not completed.stdout.strip():
            return []
        context = orjson.loads(completed.stdout)["hookSpecificOutput"]["additionalContext"]
        lines = [line for line in context.splitlines() if line.strip()]
        if event == "SessionStart":
            self.log("welcomed", lines[0] if lines else "")
            return lines
        for line in lines[1:]:  # the first line is the header
            self.log("heard", line)
            self.heard.update(kind for kind, mark in NEWS_MARKS.items() if line.startswith(mark))
            found = _CLAIM.search(line) if line.startswith(NEWS_MARKS["orphaned"]) else None
            if found:
                self.offered = found.group(1).strip("'")
        return lines

    def path(self, value: Any) -> Any:
        return os.path.join(self.project, value) if isinstance(value, str) and not os.path.isabs(value) else value

    def log(self, what: str, text: str, **more: Any) -> None:
        line = {"t": round(time.time(), 3), "agent": self.persona, "what": what, "text": text, **more}
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    persona, seed, pace, project, deadline = argv
    agent = SimulatedAgent(persona, int(seed), float(pace), project, float(deadline))
    agent.log("started", f"pid {os.getpid()}, Claude Code session {agent.claude_session}")
    try:
        return agent.run()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
