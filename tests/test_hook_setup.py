"""How the hook is found and what it does when it is set up wrong: the plugin's launcher (run-hook.sh), one event
registered twice (the plugin and `install` both), a config.json that cannot be used, and `popkit-power-hook --help`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from test_hook import CLAUDE, HOOK_SCRIPT, call, events, log_lines, payload, tool
from test_wake import start_waiter, stop

from popkit_power.session import Session
from popkit_power.setup.install import LAUNCHER, PLUGIN_COMMAND

REPO = Path(__file__).resolve().parents[1]
LAUNCHER_PATH = REPO / "popkit_power" / "plugin" / LAUNCHER



def fake_hook(directory: Path, marker: str) -> Path:
    """An executable named popkit-power-hook that says which one it is and what it got on stdin."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "popkit-power-hook"
    script.write_text(f"#!/bin/sh\nprintf '{marker}:'\ncat\n")
    script.chmod(0o755)
    return script


def bare_plugin(tmp_path: Path) -> Path:
    """A plugin folder with the launcher and nothing else (no .venv), as the plugin cache holds it."""
    plugin = tmp_path / "plugin"
    (plugin / "popkit_power" / "plugin").mkdir(parents=True)
    (plugin / "popkit_power" / "plugin" / LAUNCHER).write_bytes(LAUNCHER_PATH.read_bytes())
    return plugin


def launch(env: dict[str, str], stdin: bytes = b"{}", *args: str, plugin_root: Path | None = None,
           ) -> subprocess.CompletedProcess[bytes]:
    """The plugin's hook command, run by `sh -c` as Claude Code runs it (CLAUDE_PLUGIN_ROOT set to the plugin)."""
    base = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "CLAUDE_PLUGIN_ROOT": str(plugin_root or REPO)}
    command = PLUGIN_COMMAND + "".join(f" {arg}" for arg in args)
    return subprocess.run(["sh", "-c", command], input=stdin, env={**base, **env}, capture_output=True, timeout=30)


# -- the launcher -----------------------------------------------------------------------------------------------------

def test_the_launcher_finds_the_hook_in_order(tmp_path: Path) -> None:
    """POPKIT_POWER_HOOK, then PATH, then the plugin's own .venv, then ~/.local/bin: the payload reaches the first."""
    explicit = fake_hook(tmp_path / "explicit", "explicit")
    on_path = fake_hook(tmp_path / "bin", "path").parent
    plugin = bare_plugin(tmp_path)
    fake_hook(plugin / ".venv" / "bin", "venv")
    home = tmp_path / "home"
    fake_hook(home / ".local" / "bin", "pipx")
    everything = {"POPKIT_POWER_HOOK": str(explicit), "PATH": f"/usr/bin:{on_path}:/bin", "HOME": str(home)}
    expected = [("POPKIT_POWER_HOOK", b"explicit"), ("PATH", b"path"), (None, b"venv"), ("HOME", b"pipx")]
    env = dict(everything)
    for dropped, marker in expected:
        assert launch(env, b'{"x": 1}', plugin_root=plugin).stdout == marker + b':{"x": 1}'
        where = launch(env, b"", "--where", plugin_root=plugin)
        assert where.returncode == 0 and where.stdout.decode().strip().endswith("popkit-power-hook")
        if dropped is None:
            (plugin / ".venv").rename(plugin / "venv-gone")
        else:
            env.pop(dropped)
            if dropped == "PATH":
                env["PATH"] = "/usr/bin:/bin"


def test_without_a_hook_the_launcher_tells_the_user_at_session_start_and_never_fails(tmp_path: Path) -> None:
    plugin = bare_plugin(tmp_path)
    start = launch({}, orjson.dumps(payload("SessionStart", source="startup")), plugin_root=plugin)
    assert start.returncode == 0
    message = orjson.loads(start.stdout)["systemMessage"]
    assert "popkit-power-hook) was not found" in message and "popkit-power doctor" in message
    later = launch({}, orjson.dumps(tool()), plugin_root=plugin)
    assert (later.returncode, later.stdout, later.stderr) == (0, b"", b"")
    where = launch({}, b"", "--where", plugin_root=plugin)
    assert where.returncode == 1 and b"not found" in where.stderr


def test_the_launcher_runs_the_real_hook_and_it_records(session: Session) -> None:
    env = {"PATH": f"{HOOK_SCRIPT.parent}:/usr/bin:/bin", "POPKIT_POWER_HOME": session.power_dir}
    started = launch(env, orjson.dumps(payload("SessionStart", source="startup")))
    assert started.returncode == 0 and b"Power Mode is on" in started.stdout
    assert [e["type"] for e in events(session)][-1] == "agent.joined"
    version = launch(env, b"", "--version")
    assert version.returncode == 0 and version.stdout.startswith(b"popkit-power-hook ")


# -- one event registered twice ---------------------------------------------------------------------------------------

def run_both(home: str, data: bytes) -> list[subprocess.CompletedProcess[bytes]]:
    """Two hook processes for one event at once, one through the plugin and one through settings, as Claude Code
    runs them when both are registered."""
    base = {**os.environ, "POPKIT_POWER_HOME": home, "CLAUDE_PID": "4242"}
    base.pop("CLAUDE_PLUGIN_ROOT", None)
    processes = [subprocess.Popen([str(HOOK_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env)
                 for env in ({**base, "CLAUDE_PLUGIN_ROOT": str(REPO)}, base)]
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(data)
        process.stdin.flush()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def test_an_event_registered_twice_is_recorded_and_answered_once_and_logged_once(session: Session) -> None:
    welcomes = run_both(session.power_dir, orjson.dumps(payload("SessionStart", source="startup")))
    assert [bool(r.stdout) for r in welcomes].count(True) == 1, "one welcome"
    session.publish("message.broadcast", {"text": "hello all"}, sender="human")
    for n in range(3):
        replies = run_both(session.power_dir, orjson.dumps(tool(tool_use_id=f"toolu_{n}")))
        assert all(r.returncode == 0 for r in replies)
        if n == 0:
            assert [b"hello all" in r.stdout for r in replies].count(True) == 1, "the news once"
    recorded = [e["type"] for e in events(session) if e["from"] == f"{CLAUDE}:main"]
    assert recorded == ["agent.joined", "agent.tool", "agent.tool", "agent.tool"]
    logged = [line for line in log_lines(session.power_dir) if "twice" in line]
    assert len(logged) == 1, "said once per agent"
    assert "the plugin at" in logged[0] and "a settings file" in logged[0] and "popkit-power doctor" in logged[0]


def test_a_repeated_tool_event_with_its_own_id_is_not_a_duplicate(session: Session) -> None:
    for _ in range(2):
        run_both(session.power_dir, orjson.dumps(tool(tool_use_id="toolu_same")))
        assert len([e for e in events(session) if e["type"] == "agent.tool"]) == 1
    distinct = [subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(tool(tool_use_id=f"toolu_{n}")),
                               env={**os.environ, "POPKIT_POWER_HOME": session.power_dir}, capture_output=True)
                for n in range(3)]
    assert all(r.returncode == 0 for r in distinct)
    assert len([e for e in events(session) if e["type"] == "agent.tool"]) == 4


def test_the_pre_and_post_tool_use_of_one_call_are_two_events(session: Session) -> None:
    """They share the tool call's id (a guardrail's PreToolUse, then the call's PostToolUse): both are handled."""
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    pre = {**tool(tool_use_id="toolu_both"), "hook_event_name": "PreToolUse"}
    pre.pop("tool_response")
    for data in (pre, tool(tool_use_id="toolu_both")):
        subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(data), env=env, capture_output=True, timeout=60)
    assert [e["type"] for e in events(session)][-1] == "agent.tool"
    assert not [line for line in log_lines(session.power_dir) if "twice" in line]


# -- a config.json that cannot be used --------------------------------------------------------------------------------

def test_a_bad_config_still_welcomes_and_records_a_new_agent_telling_it_and_the_user_once(session: Session) -> None:
    """Issue 16, item 14: an agent that starts under a broken config.json joins the session like any other, with
    one line in its welcome that says so; the user sees it once at the start, hook.log gets one line per agent
    start (not per call), and the agent's tool calls are recorded."""
    Path(session.power_dir, "config.json").write_text('{"checkin_every_n_tools": "often"}')
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    started = subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(payload("SessionStart", source="startup")),
                             env=env, capture_output=True, timeout=60)
    assert started.returncode == 0 and started.stderr == b""
    reply = orjson.loads(started.stdout)
    welcome = reply["hookSpecificOutput"]["additionalContext"]
    assert welcome.startswith("Power Mode is on") and "config.json cannot be used" in welcome
    assert "checkin_every_n_tools" in welcome and "the defaults" in welcome
    assert "checkin_every_n_tools" in reply["systemMessage"] and "keeps recording" in reply["systemMessage"]
    for number in range(3):
        used = subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(tool(tool_use_id=f"toolu_{number}")), env=env,
                              capture_output=True, timeout=60)
        assert (used.returncode, used.stderr) == (0, b"")
        assert b"config.json cannot be used" not in used.stdout, "told once, at the start"
    recorded = [event["type"] for event in events(session) if event["from"].startswith(CLAUDE)]
    assert recorded.count("agent.joined") == 1 and recorded.count("agent.tool") == 3
    assert sum("checkin_every_n_tools" in line for line in log_lines(session.power_dir)) == 1
    state, _ = session.projection()
    assert any(key.startswith(CLAUDE) for key in state["agents"]), "the agent is in the session"


# -- popkit-power-hook run by a person --------------------------------------------------------------------------------

def test_the_hook_explains_itself() -> None:
    for args in (["--help"], ["-h"]):
        shown = subprocess.run([str(HOOK_SCRIPT), *args], capture_output=True, text=True, timeout=30)
        assert shown.returncode == 0 and shown.stdout.startswith("usage: popkit-power-hook")
        assert "popkit-power install" in shown.stdout and "popkit-power doctor" in shown.stdout
    version = subprocess.run([str(HOOK_SCRIPT), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("popkit-power-hook 0.")


def test_typed_at_a_terminal_it_explains_itself_instead_of_waiting(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    try:
        shown = subprocess.run([str(HOOK_SCRIPT)], stdin=follower, capture_output=True, text=True, timeout=30,
                               env={**os.environ, "POPKIT_POWER_HOME": str(tmp_path)})
    finally:
        os.close(leader)
        os.close(follower)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: popkit-power-hook")


def test_an_unknown_argument_does_not_stop_the_hook(session: Session) -> None:
    done = subprocess.run([str(HOOK_SCRIPT), "--from-settings"], input=orjson.dumps(tool(tool_use_id="t1")),
                          env={**os.environ, "POPKIT_POWER_HOME": session.power_dir}, capture_output=True, timeout=60)
    assert done.returncode == 0 and [e["type"] for e in events(session)][-1] == "agent.tool"


def test_python_runs_the_hook_module_too(session: Session) -> None:
    done = subprocess.run([sys.executable, "-m", "popkit_power.hook.entry"], input=orjson.dumps(tool(tool_use_id="t")),
                          env={**os.environ, "POPKIT_POWER_HOME": session.power_dir}, capture_output=True, timeout=60)
    assert done.returncode == 0 and [e["type"] for e in events(session)][-1] == "agent.tool"


def test_an_idle_agents_waiter_still_wakes_it_under_a_broken_config(session: Session) -> None:
    """Item 14: the waiter (an idle agent's Stop hook) reads the settings that hold rather than die on the error."""
    home = session.power_dir
    claude = subprocess.Popen(["sleep", "3600"])  # stands in for Claude Code's process
    try:
        _woken_under_a_broken_config(session, home, claude)
    finally:
        claude.kill()
        claude.wait()


def _woken_under_a_broken_config(session: Session, home: str, claude: subprocess.Popen[bytes]) -> None:
    call(home, tool())
    call(home, stop(stop_hook_active=True))
    Path(home, "config.json").write_text('{"wake_max_seconds": "forever"}')
    waiter = start_waiter(session, claude.pid)
    session.publish("message.direct", {"text": "wake up"}, sender="human", to=f"{CLAUDE}:main")
    _out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 2 and b"wake up" in err
