"""An interactive Claude Code session under tmux, for what only an interactive session does: sit idle after its
turn, and start a new turn when something wakes it.

A fresh ``HOME`` would show onboarding dialogs, so ``$HOME/.claude.json`` is pre-seeded (onboarding done, the dummy
API key approved, the work directory trusted). The prompt goes before the flags (after ``--allowedTools`` it would be
read as a tool name), and the environment is passed inside the tmux command: a new tmux session inherits the tmux
server's environment, not the caller's. Each session runs on a tmux server of its own (``-L``), so nothing else's
tmux is touched, and ``stop`` ends exactly that server. tmux is a Debian package; tools/test.sh installs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from claude import claude_env

__all__ = ["InteractiveClaude", "tmux_missing"]

API_KEY = "sk-ant-dummy"


def tmux_missing() -> str | None:
    """Why an interactive session cannot run here, or None."""
    return None if shutil.which("tmux") else "tmux is not installed (tools/test.sh installs Debian's tmux)"


class InteractiveClaude:
    """``claude PROMPT --allowedTools ... --plugin-dir ...`` in a detached tmux session of its own server."""

    def __init__(self, claude_bin: Path, prompt: str, *, cwd: Path, base_url: str, state_dir: Path,
                 plugin_dir: Path | None = None, env: Mapping[str, str] | None = None,
                 allowed_tools: str = "Bash") -> None:
        self.socket = f"popkit-e2e-{secrets.token_hex(4)}"
        self.state_dir = state_dir
        home, tmp = state_dir / "home", state_dir / "tmp"
        for folder in (home, tmp):
            folder.mkdir(parents=True, exist_ok=True)
        (home / ".claude.json").write_text(json.dumps({
            "hasCompletedOnboarding": True,
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            "projects": {str(cwd): {"hasTrustDialogAccepted": True}},
        }))
        child = claude_env(home=home, tmpdir=tmp, base_url=base_url, env={"ANTHROPIC_API_KEY": API_KEY, **(env or {})})
        args = [str(claude_bin), prompt, "--allowedTools", allowed_tools, "--debug-file", str(state_dir / "debug.log")]
        if plugin_dir is not None:
            args += ["--plugin-dir", str(plugin_dir)]
        assignments = " ".join(shlex.quote(f"{name}={value}") for name, value in child.items())
        # exec: the pane's process is Claude Code itself, so its pid is what hooks see as CLAUDE_PID
        command = f"cd {shlex.quote(str(cwd))} && exec env -i {assignments} {shlex.join(args)}"
        self._tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", "agent", command)
        self.pid = int(self._tmux("display-message", "-p", "-t", "agent", "#{pane_pid}").strip())

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30,
                              check=True, env={**os.environ, "TMUX": ""})
        return done.stdout

    def screen(self) -> str:
        """What the terminal shows now."""
        try:
            return self._tmux("capture-pane", "-p", "-t", "agent")
        except subprocess.CalledProcessError as error:
            return f"(no screen: {error.stderr.strip()})"

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, timeout: float = 10) -> None:
        """End the session as closing its terminal would (SIGHUP), then its tmux server; SIGKILL if it lingers."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._tmux("kill-server")
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
