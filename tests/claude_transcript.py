"""Claude Code's transcript as Claude Code 2.1.330 writes it, for tests that run many rounds of real hook processes
without the real binary (tests/e2e/test_lost_replies.py checks the same against the real one).

Each method appends the lines Claude Code writes for one step, in the shape recorded from a real session
(docs/claude-code.md, "When a hook's output is lost"): a tool's result followed by the hook's attachments (or
`hook_cancelled` at a timeout), the model's answer, a prompt, and the turn an asyncRewake hook's exit 2 starts.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import orjson

SESSION = "c0ffee00-1111-2222-3333-444455556666"


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


class ClaudeTranscript:
    """One session's transcript file, appended to line by line as Claude Code does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")

    def _write(self, entry: dict[str, Any]) -> None:
        common = {"parentUuid": secrets.token_hex(8), "isSidechain": False, "uuid": secrets.token_hex(8),
                  "timestamp": _now(), "userType": "external", "entrypoint": "cli", "cwd": "/repo",
                  "sessionId": SESSION, "version": "2.1.330"}
        with self.path.open("ab") as out:
            out.write(orjson.dumps({**entry, **common}) + b"\n")

    def prompt(self, text: str) -> None:
        """The user typed a prompt."""
        self._write({"type": "user", "message": {"role": "user", "content": text}})

    def answer(self, tool_use_id: str | None = None) -> str | None:
        """The model answered: with a tool call (its new id is returned) or, without one, with text."""
        block: dict[str, Any] = {"type": "text", "text": "ok"}
        if tool_use_id is not None:
            block = {"type": "tool_use", "id": tool_use_id, "name": "Bash", "input": {"command": "ls"}}
        self._write({"type": "assistant", "message": {
            "id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant", "model": "claude-opus-5-5",
            "content": [block], "stop_reason": "tool_use" if tool_use_id else "end_turn"}})
        return tool_use_id

    def tool_result(self, tool_use_id: str, hook_stdout: str | None, *, cancelled: bool = False,
                    context_dropped: bool = False, output: str = "out") -> None:
        """The tool's result, then what became of the PostToolUse hook: its output taken (its additionalContext
        reaches the model), or, at its timeout, cancelled (its output dropped); `context_dropped`: its stdout logged
        but its context not passed on (reported of the Agent tool). `output`: what the tool printed (Claude Code
        writes it twice: in the result the model sees and in `toolUseResult`)."""
        self._write({"type": "user", "message": {"role": "user", "content": [
            {"tool_use_id": tool_use_id, "type": "tool_result", "content": output, "is_error": False}]},
            "toolUseResult": {"stdout": output, "stderr": "", "interrupted": False, "isImage": False}})
        hook = {"hookName": "PostToolUse:Bash", "toolUseID": tool_use_id, "hookEvent": "PostToolUse"}
        if cancelled:
            self._write({"type": "attachment", "attachment": {"type": "hook_cancelled", **hook}})
            return
        self._write({"type": "attachment", "attachment": {"type": "hook_success", **hook, "content": "",
                                                          "stdout": hook_stdout or "", "stderr": "", "exitCode": 0,
                                                          "command": "popkit-power-hook", "durationMs": 60}})
        if hook_stdout and not context_dropped:
            context = orjson.loads(hook_stdout)["hookSpecificOutput"]["additionalContext"]
            self._write({"type": "attachment", "attachment": {"type": "hook_additional_context",
                                                              "content": [context], **hook}})

    def woken(self, stderr: str) -> None:
        """An asyncRewake Stop hook exited 2: its stderr starts a turn."""
        content = ("<task-notification>\n<summary>Stop hook feedback</summary>\n</task-notification>\n"
                   f"<system-reminder>\nStop hook blocking error from command \"Stop\": {stderr}\n</system-reminder>")
        with self.path.open("ab") as out:
            for operation in ("enqueue", "dequeue"):
                out.write(orjson.dumps({"type": "queue-operation", "operation": operation, "timestamp": _now(),
                                        "sessionId": SESSION, **({"content": content} if operation == "enqueue"
                                                                 else {})}) + b"\n")
        self._write({"type": "user", "message": {"role": "user", "content": content},
                     "origin": {"kind": "task-notification"}})


def new_tool_use_id() -> str:
    return "toolu_" + secrets.token_hex(12)
