"""Helpers for tests/test_hook_http_attacks.py: raw TLS connections to the hook server, and a real project whose
session's coordinator (`popkit-power start`, POPKIT_POWER_NO_COORDINATOR removed) answers the hooks over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import support
from support import end_foreground

from popkit_power.hook_transport import PATH, SECRET_HEADER, certificate_paths

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
POPKIT = str(VENV_BIN / "popkit-power")
WAIT = 60  # against hangs only: the machine is shared


def tls_connection(power_dir: str, port: int, timeout: float = 30) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=certificate_paths(power_dir)[0])
    plain = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return context.wrap_socket(plain, server_hostname="127.0.0.1")


def request_bytes(port: int, secret: str, body: bytes, *, close: bool = False, version: str = "1.1",
                  extra: str = "") -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (f"POST {PATH} HTTP/{version}\r\nHost: 127.0.0.1:{port}\r\n{SECRET_HEADER}: {secret}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}{connection}\r\n"
            ).encode("latin-1") + body


def read_answers(sock: ssl.SSLSocket, count: int) -> list[tuple[int, bytes]]:
    """`count` HTTP answers (status, body) read from `sock` (Content-Length bodies only)."""
    buffer = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {len(answers)} answers: {buffer!r}")
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(buffer) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside a body")
            buffer += chunk
        answers.append((status, buffer[:length]))
        buffer = buffer[length:]
    return answers


def cli_env(home: Path) -> dict[str, str]:
    outside = {name: value for name, value in os.environ.items()
               if name not in ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID", "POPKIT_POWER_AGENT",
                               "POPKIT_POWER_NO_COORDINATOR", "REDIS_URL")}
    return {**outside, "POPKIT_POWER_HOME": str(home), "PYTHONPATH": str(REPO)}


def popkit(home: Path, *args: str, cwd: Path, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([POPKIT, *args], env={**cli_env(home), **(env or {})}, cwd=cwd, capture_output=True,
                          text=True, timeout=90)
    if check:
        assert done.returncode == 0, f"popkit-power {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


def until(condition: Any, what: str, seconds: float = WAIT) -> Any:
    """support.until, with this module's deadline by default."""
    return support.until(condition, seconds, what)


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Project:
    """A project installed with --transport http and its session started: a real coordinator daemon serves it."""

    def __init__(self, root: Path, config: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> None:
        self.home = root / "power"
        self.home.mkdir()
        (self.home / "config.json").write_text(json.dumps({"heartbeat_seconds": 2, **(config or {})}))
        self.work = root / "work"
        self.work.mkdir()
        self.env = env or {}
        popkit(self.home, "install", "--transport", "http", cwd=self.work, env=self.env)
        self.config = json.loads((self.home / "config.json").read_text())
        self.secret = (self.home / "hook-secret").read_text().strip()
        popkit(self.home, "start", "attack hooks over HTTP", cwd=self.work, env=self.env)
        from popkit_power.session import Session

        self.session = Session.active(str(self.home))
        self.foreground: subprocess.Popen[bytes] | None = None
        until(lambda: self.answers(), "the coordinator answers the hooks")

    @property
    def port(self) -> int:
        return int(self.config["hook_port"])

    def coordinator_pid(self) -> int | None:
        from popkit_power.journal.lease import holder

        pid = (holder(self.session.dir) or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def running(self) -> bool:
        from popkit_power.coordinator import daemon

        return bool(daemon.running(self.session))

    def answers(self) -> bool:
        """A real hook call answered (200 or 204) now."""
        try:
            with tls_connection(str(self.home), self.port, timeout=5) as sock:
                sock.sendall(request_bytes(self.port, self.secret, b"not json", close=True))
                return read_answers(sock, 1)[0][0] == 204
        except (OSError, ConnectionError, ValueError):
            return False

    def restart_without_waiting(self, log: Path) -> subprocess.Popen[bytes]:
        """`popkit-power coordinator` in the foreground, as a person restarts it."""
        out = log.open("wb")
        process = subprocess.Popen([POPKIT, "coordinator"], env={**cli_env(self.home), **self.env}, cwd=self.work,
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        out.close()
        self.foreground = process
        return process

    def restart(self, log: Path) -> int:
        process = self.restart_without_waiting(log)
        until(lambda: self.answers() or process.poll() is not None, "the restarted coordinator answers hooks")
        assert process.poll() is None, log.read_text(errors="replace")
        return process.pid

    def close(self) -> None:
        end_foreground(self.foreground)
        try:
            from popkit_power.coordinator import daemon

            daemon.stop(self.session)
        except Exception:
            pass
        pid = self.coordinator_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def tool_body(claude: str, tool_use_id: str) -> bytes:
    return orjson.dumps({"session_id": claude, "transcript_path": "/t.jsonl", "cwd": "/repo",
                         "hook_event_name": "PostToolUse", "tool_name": f"mcp__t__{tool_use_id}",
                         "tool_input": {"command": "ls"},
                         "tool_response": {"stdout": ""}, "duration_ms": 7, "tool_use_id": tool_use_id})
