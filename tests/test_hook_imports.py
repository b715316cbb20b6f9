"""The hook's import list with Power Mode on does not grow: every module the hook imports is paid for on each of
Claude Code's tool calls (tools/BENCHMARKS.md), so a new one has to be a decision, made here by updating the list."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson

from popkit_power.session import Session

#: The modules of this package one PostToolUse call (a Read, Power Mode on) imports.
HOOK_MODULES = frozenset({
    "popkit_power", "popkit_power._fs", "popkit_power._lock", "popkit_power.config", "popkit_power.display",
    "popkit_power.errors", "popkit_power.home", "popkit_power.hook", "popkit_power.hook.agent_state",
    "popkit_power.hook.entry", "popkit_power.hook.handlers", "popkit_power.hook.inbox", "popkit_power.hook.log",
    "popkit_power.hook.miswired", "popkit_power.hook.news", "popkit_power.hook.texts", "popkit_power.hook.transcript",
    "popkit_power.hook.wake", "popkit_power.insights", "popkit_power.journal", "popkit_power.journal.codec",
    "popkit_power.journal.reader", "popkit_power.journal.records", "popkit_power.journal.repair",
    "popkit_power.journal.writer", "popkit_power.keys", "popkit_power.processes", "popkit_power.protocol",
    "popkit_power.session", "popkit_power.timestamps", "popkit_power.tool_calls",
})
#: The other modules it imports beyond what the interpreter's own start-up imports (which depends on the venv's .pth
#: files, not on this package, so it is measured, not pinned).
OTHER_MODULES = frozenset({"__future__", "_json", "_signal", "errno", "fcntl", "time", "zlib"})

CALL = ("import sys; sys.argv = ['popkit-power-hook']; from popkit_power.hook.entry import main; main()")


def imported(code: str, env: dict[str, str], stdin: bytes = b"") -> set[str]:
    """The modules `python -X importtime -c code` imports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], input=stdin, capture_output=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    lines = done.stderr.decode().splitlines()
    return {line.split("|")[2].strip() for line in lines if line.startswith("import time:") and "|" in line} - {
        "imported package"}


def test_the_hooks_import_list_with_power_mode_on_does_not_grow(session: Session) -> None:
    env = {"PATH": "/usr/bin:/bin", "POPKIT_POWER_HOME": session.power_dir, "CLAUDE_CODE_SESSION_ID": "abc",
           "HOME": os.environ.get("HOME", "/"), "XDG_STATE_HOME": os.environ["XDG_STATE_HOME"]}  # where its trust is
    payload = {"session_id": "abc", "hook_event_name": "PostToolUse", "tool_name": "Read",
               "tool_input": {"file_path": "/tmp/x"}, "tool_response": {}, "cwd": "/tmp",
               "transcript_path": "/nonexistent"}
    start_up = imported("pass", env)
    modules = imported(CALL, env, orjson.dumps(payload)) - start_up
    assert any(event["type"] == "agent.joined" for event in session.journal.reader()), "Power Mode was on for it"
    ours = {name for name in modules if name.split(".")[0] == "popkit_power"}
    assert not ours - HOOK_MODULES, f"the hook now imports {sorted(ours - HOOK_MODULES)}"
    others = modules - ours
    assert not others - OTHER_MODULES, f"the hook now imports {sorted(others - OTHER_MODULES)}"


#: What the hook imports with Power Mode off (budget 1.2x `python -c pass`, where each module costs ~0.2 ms whatever
#: it holds): these modules and nothing else, not even `__future__` (their annotations that name what is imported
#: for type checking only are quoted instead).
OFF_PATH = frozenset({"popkit_power", "popkit_power.hook", "popkit_power.hook.entry", "popkit_power.errors",
                      "popkit_power.home", "popkit_power.keys", "popkit_power._fs"})


def test_the_hooks_off_path_imports_seven_modules_of_its_own_and_nothing_else(tmp_path: object) -> None:
    env = {"PATH": "/usr/bin:/bin", "POPKIT_POWER_HOME": str(tmp_path), "HOME": os.environ.get("HOME", "/")}
    payload = {"session_id": "abc", "hook_event_name": "PostToolUse", "tool_name": "Read", "tool_input": {}}
    modules = imported(CALL, env, orjson.dumps(payload)) - imported("pass", env)
    ours = {name for name in modules if name.split(".")[0] == "popkit_power"}
    assert ours == OFF_PATH, sorted(ours ^ OFF_PATH)
    assert modules - ours <= {"errno", "time"}, "built into the interpreter: no file to find or read"
