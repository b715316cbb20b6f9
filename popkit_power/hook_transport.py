"""How Claude Code reaches the hook: a process per call (`command`, the default), or an HTTP request to the running
coordinator (`http`, set by `hook_transport` in config.json). What `install` writes and the server checks.

Over HTTP (docs/hook-setup.md, "Hooks over HTTP"):

- The events of every tool call and of an agent's life go to `http://127.0.0.1:<hook_port>/popkit-power/hook`
  (`HTTP_EVENTS`). SessionStart stays a command hook: Claude Code 2.1.330 sends no HTTP hook for it, and it is
  where the agent's process id is learnt. The guardrails' PreToolUse and the idle agent's waiter stay commands too:
  a guard that nobody answers must deny, not pass, and the waiter waits for hours.
- Each request carries the project's secret in `SECRET_HEADER`, written as a literal header into the project's
  `.claude/settings.local.json` (kept 0600). The coordinator answers only requests that carry it; the secret lives
  in the power directory (`SECRET_FILE`, 0600) and is made once per project, by `install`.
"""

from __future__ import annotations

import os
import secrets

from ._fs import read_file, write_file_atomically

COMMAND, HTTP = "command", "http"
TRANSPORTS = (COMMAND, HTTP)
LOOPBACK = "127.0.0.1"
PATH = "/popkit-power/hook"
SECRET_HEADER = "X-Popkit-Hook-Secret"
SECRET_FILE = "hook-secret"
#: The events sent over HTTP when it is on: every one the hook records but SessionStart (never sent over HTTP by
#: Claude Code) and PreToolUse (the guard, which must deny when unanswered).
HTTP_EVENTS = ("PostToolUse", "PostToolUseFailure", "SubagentStart", "SubagentStop", "Stop", "SessionEnd")
#: The User-Agent of doctor's look at the server: its refusal (no secret) is expected and not logged.
DOCTOR_AGENT = "popkit-power-doctor"
#: Set in the environment the server gives the hook's handlers: how the call came (hook/miswired.py says it).
VIA_ENV = "POPKIT_HOOK_VIA"


def url(port: int) -> str:
    """The URL Claude Code posts hook events to."""
    return f"http://{LOOPBACK}:{port}{PATH}"


def port_of(address: object) -> int | None:
    """The port of a URL `url` made, or None for any other address (a user's own http hook)."""
    if not isinstance(address, str):
        return None
    head, _, rest = address.partition(f"http://{LOOPBACK}:")
    port, _, path = rest.partition("/")
    if head or not port.isdigit() or f"/{path}" != PATH or not 0 < int(port) < 65536:
        return None
    return int(port)


def read_secret(power_dir: str) -> str | None:
    """The project's hook secret, or None when `install --transport http` has not made one."""
    try:
        text = read_file(os.path.join(power_dir, SECRET_FILE), 1024).decode("ascii", "replace").strip()
    except FileNotFoundError:
        return None
    return text or None


def ensure_secret(power_dir: str) -> str:
    """The project's hook secret, made (256 random bits, hex: no `$`, which Claude Code would interpolate in a
    header) and written 0600 the first time."""
    existing = read_secret(power_dir)
    if existing is not None:
        return existing
    secret = secrets.token_hex(32)
    write_file_atomically(os.path.join(power_dir, SECRET_FILE), secret.encode("ascii") + b"\n")
    return secret
