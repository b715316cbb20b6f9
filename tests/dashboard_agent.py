"""One simulated agent for the dashboard's tests, a process of its own: `python tests/dashboard_agent.py INDEX
PROJECT DEADLINE [TASK]`.

Like the demo's agents (popkit_power/demo/agent.py), it feeds the real `popkit-power-hook` what Claude Code would
send, with CLAUDE_PID set to its own pid, so the coordinator watches this process as the agent's Claude Code and
declares it lost when it is killed. It joins, claims TASK when given (the real CLI, as from its Bash tool), then makes
a tool call every few tenths of a second; when its hook's news offers it an orphaned task, it claims that one. It ends
at DEADLINE or as soon as the test that started it is gone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import orjson

from popkit_power.demo.agent import hook_program

_CLAIM = re.compile(r"popkit-power claim (\S+)")


def main(index: int, project: str, deadline: float, task: str | None) -> int:
    session = f"dash{index:04d}-0000-4000-8000-{index:012d}"
    env = {**os.environ, "CLAUDE_PID": str(os.getpid()), "CLAUDE_CODE_SESSION_ID": session, "CLAUDECODE": "1",
           "CLAUDE_PROJECT_DIR": project}
    hook, parent = hook_program(), os.getppid()

    def call(event: str, **fields: object) -> str:
        payload = {"session_id": session, "transcript_path": os.path.join(project, f"{session}.jsonl"),
                   "cwd": project, "permission_mode": "default", "hook_event_name": event, **fields}
        done = subprocess.run(hook, input=orjson.dumps(payload), env=env, cwd=project, capture_output=True,
                              timeout=30, check=False)
        if not done.stdout.strip():
            return ""
        return str(orjson.loads(done.stdout)["hookSpecificOutput"]["additionalContext"])

    def claim(task_id: str) -> None:
        subprocess.run([sys.executable, "-m", "popkit_power.cli", "claim", task_id], env=env, cwd=project,
                       capture_output=True, timeout=30, check=False)

    call("SessionStart", source="startup", model="test")
    if task:
        claim(task)
    calls = 0
    while time.time() < deadline and os.getppid() == parent:
        calls += 1
        name = ("Read", "Edit", "Bash")[calls % 3]
        tool_input = {"command": "pytest -q"} if name == "Bash" else {"file_path": f"{project}/src/m{index}.py"}
        news = call("PostToolUse", tool_name=name, tool_input=tool_input, tool_response={"success": True},
                    tool_use_id=f"toolu_{index}_{calls}")
        for line in news.splitlines():
            found = _CLAIM.search(line) if line.startswith("- [orphaned task") else None
            if found:
                claim(found.group(1).strip("'"))
        time.sleep(0.3)
    call("SessionEnd", reason="prompt_input_exit")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None))
