"""Probe: what Claude Code's `"type": "http"` hooks really send and do, measured with the real binary.

Runs the cached Claude Code (tests/e2e/claude.py, 2.1.330) headless against the scripted model server
(tests/e2e/model_server.py), with http hooks in a temporary project's `.claude/settings.json` pointing at a
recording HTTP server on 127.0.0.1, and prints a report. Sections (all by default):

  payload   what arrives (method, path, headers, body; env-var interpolation in headers and URL), the client's
            source port per request and the process found behind it (/proc/net/tcp inode -> /proc/<pid>/fd),
            compared with a command hook's stdin and environment
  replies   whether a JSON reply's additionalContext, an empty 200 and a 204 reach the model
  failures  connection refused, HTTP 500, a reply slower than `timeout`; onFailure continue vs block; PreToolUse
            and PostToolUse; what the model, the transcript, stderr and the debug log show; time per tool call
  cost      per-tool-call wall time with no hook, a command hook `true`, an http hook answered at once (median)
  allowlist allowedHttpHookUrls unset, not listing the loopback URL, listing it, empty
  keepalive whether the hook connection survives idle gaps between tool calls (0.5 to 12 s), and when
            the client closes an idle connection
  plugin    the same http hook in a plugin's hooks/hooks.json (--plugin-dir), with and without a project allowlist
  settingsenv  whether a settings file's `env` (settings.json, settings.local.json, user settings) reaches an http
            hook's header interpolation and a command hook's environment, with and without the variable in the
            launch environment; a literal header written in settings.local.json
  tls       an https:// hook URL served by Python's ssl module with a certificate for IP 127.0.0.1 from a private
            CA made for the run (needs `cryptography`): no extra trust; NODE_EXTRA_CA_CERTS in the launch
            environment; NODE_EXTRA_CA_CERTS only in settings.local.json `env`; an impostor with its own self-signed
            certificate while the CA is trusted. Handshakes as the server saw them, requests received, transcript
            attachments, debug log. Then per-tool-call cost of none / http / https (--calls, --rounds) and
            connections and TLS handshakes per run (keep-alive over TLS)
  reload    settings files changed while a session runs: an http hook added to (or removed from)
            settings.local.json / settings.json after the first of several `sleep` Bash calls; which later calls
            send it, how long until the debug log's "Detected change"; headless, then interactive under tmux

    PYTHONPATH=.:tests/e2e .venv/bin/python tools/probe_http_hooks.py [SECTION...]
        [--calls N] [--rounds R] [--fail-calls N] [--json OUT]

Linux only (the peer-process lookup reads /proc). Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "e2e"))

from claude import CLAUDE_CODE_VERSION, ensure_claude, start_claude  # noqa: E402
from model_server import (  # noqa: E402
    ModelServer,
    Reply,
    Turns,
    first_user_text,
    is_task_notification,
    text,
    tool_use,
)

SECRET = "s3cr3t-" + secrets.token_hex(4)
CTX_MARKER = "HTTPCTX-" + secrets.token_hex(4)
START_MARKER = "HTTPSTART-" + secrets.token_hex(4)
CREATED: list[Path] = []
"""Temporary folders this run made; removed at the end unless PROBE_KEEP=1."""


def scratch() -> Path:
    path = Path(tempfile.mkdtemp(prefix="probe-http-"))
    CREATED.append(path)
    return path

# ---------------------------------------------------------------------------------------------------------------
# The recording server


def _hex_port(port: int) -> str:
    return f"{port:04X}"


def peer_pid(client_port: int, server_port: int) -> tuple[int | None, str, float]:
    """The pid owning the loopback socket 127.0.0.1:client_port -> 127.0.0.1:server_port, its comm, lookup seconds.

    /proc/net/tcp gives the socket's inode; the process is the one with an fd linking to socket:[inode]."""
    started = time.perf_counter()
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if local.endswith(":" + _hex_port(client_port)) and remote.endswith(":" + _hex_port(server_port)):
                inode = fields[9]
                break
        if inode:
            break
    if not inode or inode == "0":
        return None, "", time.perf_counter() - started
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                try:
                    if os.readlink(fd) == target:
                        comm = (proc / "comm").read_text().strip()
                        return int(proc.name), comm, time.perf_counter() - started
                except OSError:
                    continue
        except OSError:
            continue
    return None, "", time.perf_counter() - started


Behaviour = Callable[[dict[str, Any]], tuple[int, bytes, float]]
"""Given a recorded request, the (status, body, delay seconds) to answer with."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _RecServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.owner.lock:
            self.server.owner.connections += 1
            self.conn_id = self.server.owner.connections
        self.on_conn = 0

    def finish(self) -> None:
        """The connection ended (here: the client closed it; this server never closes first)."""
        with self.server.owner.lock:
            self.server.owner.closed[self.conn_id] = time.monotonic()
        super().finish()

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        owner = self.server.owner
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        self.on_conn += 1
        record: dict[str, Any] = {
            "t": arrived,
            "method": self.command,
            "path": self.path,
            "http_version": self.request_version,
            "headers": list(self.headers.items()),
            "body": body,
            "client_port": self.client_address[1],
            "conn": self.conn_id,
            "nth_on_conn": self.on_conn,
        }
        if owner.lookup_pid and self.on_conn == 1:
            pid, comm, took = peer_pid(self.client_address[1], self.server.server_address[1])
            record.update(peer_pid=pid, peer_comm=comm, lookup_s=took)
        status, reply, delay = owner.behaviour(record)
        record["reply_status"] = status
        with owner.lock:
            owner.records.append(record)
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            if status != 204 and reply:
                self.wfile.write(reply)
            record["answered"] = time.monotonic()
        except OSError as exc:  # the client gave up (timeout)
            record["answer_error"] = repr(exc)


class _RecServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: HookServer
    tls: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        if self.tls is None:
            return sock, addr
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """With TLS, the handshake happens here (in the connection's thread) and is recorded, failed or not."""
        if self.tls is not None:
            started = time.monotonic()
            request.settimeout(10)
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                with self.owner.lock:
                    self.owner.handshakes.append({"t": started, "ok": False, "error": repr(exc),
                                                  "client_port": client_address[1]})
                self.shutdown_request(request)
                return
            request.settimeout(None)
            with self.owner.lock:
                self.owner.handshakes.append({"t": started, "ok": True, "version": request.version(),
                                              "cipher": (request.cipher() or ("",))[0],
                                              "alpn": request.selected_alpn_protocol(),
                                              "took_s": time.monotonic() - started,
                                              "client_port": client_address[1]})
        super().process_request_thread(request, client_address)


def ok_empty(record: dict[str, Any]) -> tuple[int, bytes, float]:
    return 200, b"", 0.0


class HookServer:
    """A recording HTTP server on 127.0.0.1; `behaviour` decides each answer."""

    def __init__(self, behaviour: Behaviour = ok_empty, lookup_pid: bool = True,
                 tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self.lookup_pid = lookup_pid
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.closed: dict[int, float] = {}
        self.handshakes: list[dict[str, Any]] = []
        """With TLS: every handshake tried, its outcome (an untrusted certificate fails here, before any request)."""
        self.connections = 0
        self._server = _RecServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._server.tls = tls
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        scheme = "https" if self._server.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def reset(self, behaviour: Behaviour | None = None) -> None:
        with self.lock:
            self.records = []
            self.handshakes = []
        if behaviour is not None:
            self.behaviour = behaviour

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------------------------
# Running Claude Code


class TimedModel:
    """A model script wrapper that stamps each request's arrival time."""

    def __init__(self, turns: Callable[[dict[str, Any]], Reply]) -> None:
        self.turns = turns
        self.times: list[tuple[float, dict[str, Any]]] = []

    def __call__(self, request: dict[str, Any]) -> Reply:
        self.times.append((time.monotonic(), request))
        if is_task_notification(request):
            return Reply([text("main done")])
        return self.turns(request)


def run(settings: Mapping[str, Any], turns: Mapping[str, list[Any]], prompt: str, *,
        env: Mapping[str, str] | None = None, timeout: float = 120, user_settings: Mapping[str, Any] | None = None,
        plugin_hooks: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One `claude -p PROMPT` in a fresh project with `settings` as .claude/settings.json; what it left behind."""
    root = scratch()
    work = root / "work"
    (work / ".claude").mkdir(parents=True)
    (work / ".claude" / "settings.json").write_text(json.dumps(settings, indent=1))
    state = root / "claude"
    if user_settings is not None:
        (state / "home" / ".claude").mkdir(parents=True)
        (state / "home" / ".claude" / "settings.json").write_text(json.dumps(user_settings))
    plugin_dir = None
    if plugin_hooks is not None:
        plugin_dir = root / "plugin"
        (plugin_dir / ".claude-plugin").mkdir(parents=True)
        (plugin_dir / ".claude-plugin" / "plugin.json").write_text(json.dumps({"name": "probehttp"}))
        (plugin_dir / "hooks").mkdir()
        (plugin_dir / "hooks" / "hooks.json").write_text(json.dumps(plugin_hooks))
    model = TimedModel(Turns(turns))
    with ModelServer(model) as server:
        base_env = {"POPKIT_SECRET": SECRET, "PROBE_DIR": str(root)}
        process = start_claude(prompt, cwd=work, base_url=server.base_url, env={**base_env, **(env or {})},
                               allowed_tools="Bash Agent", timeout=timeout, state_dir=state, plugin_dir=plugin_dir,
                               claude_bin=ensure_claude())
        started = time.monotonic()
        result = process.wait()
        ended = time.monotonic()
    main = [(t, r) for t, r in model.times if prompt in first_user_text(r) and not is_task_notification(r)]
    return {"root": root, "work": work, "result": result, "model": model.times, "main": main,
            "pid": result.pid, "started": started, "ended": ended}


def bash(command: str) -> Any:
    return tool_use("Bash", {"command": command, "description": "probe"})


def http_hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "url": url, **extra}


def hooks_for(events: Mapping[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"hooks": {event: [{"hooks": handlers}] for event, handlers in events.items()}}


def walk_texts(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, str):
        out.append(node)
    elif isinstance(node, list):
        for item in node:
            out.extend(walk_texts(item))
    elif isinstance(node, dict):
        if isinstance(node.get("text"), str):
            out.append(node["text"])
        if "content" in node:
            out.extend(walk_texts(node["content"]))
    return out


def after_last_assistant(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of every message after the request's last assistant message: what the tool call gave back."""
    messages = request.get("messages", [])
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    return [(m.get("role", "?"), " | ".join(walk_texts(m.get("content", "")))) for m in messages[last + 1:]]


def per_call_seconds(main: list[tuple[float, dict[str, Any]]]) -> list[float]:
    """Time from each main-agent model request that answered with a tool call to the next: one tool call's wall
    time as the agent experiences it (tool, hooks, Claude Code's own work; the scripted model answers at once)."""
    return [b[0] - a[0] for a, b in itertools.pairwise(main)]


def transcript_entries(run_: dict[str, Any]) -> list[dict[str, Any]]:
    home = run_["result"].home
    out = []
    for path in sorted((home / ".claude" / "projects").glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def hook_attachments(run_: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["attachment"] for e in transcript_entries(run_) if e.get("type") == "attachment"
            and isinstance(e.get("attachment"), dict) and str(e["attachment"].get("type", "")).startswith("hook")]


def debug_lines(run_: dict[str, Any], pattern: str = r"HTTP hook|Hooks:|hook.*(error|fail|block|timed out|cancel)"
                ) -> list[str]:
    rx = re.compile(pattern, re.I)
    out: list[str] = []
    for line in run_["result"].debug_log().splitlines():
        if rx.search(line) and "checkForNewResponses" not in line:
            line = line[:300]
            body = line.split(" ", 1)[-1]
            if not any(o.split(" ", 1)[-1] == body for o in out):  # each distinct message once
                out.append(line)
    return out


def med(xs: list[float]) -> str:
    if not xs:
        return "n/a"
    ms = sorted(x * 1000 for x in xs)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0], ms[0], ms[0]]
    return (f"median {statistics.median(ms):.0f} ms (IQR {q[0]:.0f}-{q[2]:.0f}, min {ms[0]:.0f}, "
            f"max {ms[-1]:.0f}, n={len(ms)})")


def short(value: Any, limit: int = 240) -> str:
    s = value if isinstance(value, str) else json.dumps(value, default=str)
    return s if len(s) <= limit else s[:limit] + f"... ({len(s)} chars)"


# ---------------------------------------------------------------------------------------------------------------
# Sections


def section_payload(report: dict[str, Any]) -> None:
    """Every event as http hooks, headers that interpolate env vars, plus a command hook dumping stdin and env."""
    print("\n=== payload: what arrives ===")
    sess_tag = "sess-" + secrets.token_hex(3)

    def behaviour(record: dict[str, Any]) -> tuple[int, bytes, float]:
        body = record["body"] if isinstance(record["body"], dict) else {}
        event = body.get("hook_event_name")
        if event == "SessionStart":
            return 200, json.dumps({"hookSpecificOutput": {"hookEventName": "SessionStart",
                                                           "additionalContext": START_MARKER}}).encode(), 0
        if event == "SubagentStart":
            return 200, json.dumps({"hookSpecificOutput": {"hookEventName": "SubagentStart",
                                                           "additionalContext": START_MARKER + "-sub"}}).encode(), 0
        if event == "PostToolUse":
            command = str((body.get("tool_input") or {}).get("command", ""))
            if "reply-json" in command:
                return 200, json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                                               "additionalContext": CTX_MARKER + "-json"}}).encode(), 0
            if "reply-204" in command:
                return 204, b"", 0
            if "reply-text" in command:  # a 200 whose body is not JSON
                return 200, (CTX_MARKER + "-plain").encode(), 0
            if "reply-wrapped" in command:  # a 500 whose body is valid hook JSON
                return 500, json.dumps({"hookSpecificOutput": {"hookEventName": "PostToolUse",
                                                               "additionalContext": CTX_MARKER + "-on500"}}).encode(), 0
        return 200, b"", 0

    server = HookServer(behaviour)
    headers = {
        "X-Popkit-Secret": "$POPKIT_SECRET",
        "X-Braced": "Bearer ${POPKIT_SECRET}",
        "X-Not-Allowed": "$POPKIT_OTHER",
        "X-Unset": "[$POPKIT_UNSET]",
        "X-Token": "$POPKIT_TOKEN",
        "X-Claude-Pid": "$CLAUDE_PID",
        "X-Session": "$CLAUDE_CODE_SESSION_ID",
        "X-Project": "$CLAUDE_PROJECT_DIR",
        "X-Home": "$HOME",
        "X-Literal": "plain-value",
        "X-Api-Key": "$ANTHROPIC_API_KEY",
        "User-Agent": "popkit-probe-ua",
    }
    allowed = ["ANTHROPIC_API_KEY", "POPKIT_SECRET", "POPKIT_UNSET", "POPKIT_TOKEN", "CLAUDE_PID",
               "CLAUDE_CODE_SESSION_ID", "CLAUDE_PROJECT_DIR", "HOME"]
    events = ["SessionStart", "PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop", "SubagentStart",
              "SubagentStop", "SessionEnd"]
    table: dict[str, list[dict[str, Any]]] = {
        ev: [http_hook(server.url(f"/popkit/{sess_tag}/{ev}"), headers=headers, allowedEnvVars=allowed, timeout=5)]
        for ev in events
    }
    # a URL that names an env var, to see whether URLs are interpolated too
    table["Stop"].append(http_hook(server.url("/url-interp/$POPKIT_SECRET/${POPKIT_SECRET}"),
                                   allowedEnvVars=["POPKIT_SECRET"], timeout=5))
    # a command hook beside it, dumping what a command hook gets
    dump = ("mkdir -p \"$PROBE_DIR/cmd\" && n=$(date +%s%N) && cat > \"$PROBE_DIR/cmd/$n.json\" && "
            "env > \"$PROBE_DIR/cmd/$n.env\"")
    table["PostToolUse"].append({"type": "command", "command": dump, "timeout": 5})
    settings = hooks_for(table)
    main_prompt, sub_prompt = "PROBE-PAYLOAD main", "PROBE-PAYLOAD-SUB run one"
    launch = {"description": "probe helper", "prompt": sub_prompt, "subagent_type": "general-purpose"}
    turns = {
        sub_prompt: [bash("echo sub"), text("SUB-DONE")],
        main_prompt: [bash("echo reply-json"), bash("echo reply-empty"), bash("echo reply-204"),
                      bash("echo reply-text"), bash("echo reply-wrapped"), bash("echo fail; exit 3"),
                      [bash("sleep 0.3; echo parallel-1"), bash("sleep 0.3; echo parallel-2")],
                      tool_use("Agent", launch), text("MAIN-DONE")],
    }
    r = run(settings, turns, main_prompt, env={"POPKIT_OTHER": "other-value", "POPKIT_TOKEN": "tok-123"})
    res = r["result"]
    print(f"claude pid {res.pid}, exit {res.returncode}, {res.duration:.1f}s, server port {server.port}")
    records = server.records
    server.stop()
    report["payload"] = {"records": records, "claude_pid": res.pid}
    print(f"{len(records)} requests on {len({x['conn'] for x in records})} connections")
    print("\n-- per request: event, path, client port, connection #, n-th on it, peer pid (claude pid?) --")
    for rec in records:
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        ev = body.get("hook_event_name", "?")
        extra = ""
        if "peer_pid" in rec:
            extra = (f" peer_pid={rec['peer_pid']} ({rec['peer_comm']}) is_claude={rec['peer_pid'] == res.pid}"
                     f" lookup={rec['lookup_s'] * 1000:.1f}ms")
        tool = body.get("tool_name", "")
        agent = body.get("agent_id", "")
        print(f"  {rec['t'] - r['started']:7.3f}s {rec['method']} {rec['path']} {ev} {tool} agent={agent or '-'} "
              f"port={rec['client_port']} conn={rec['conn']} #{rec['nth_on_conn']} -> {rec['reply_status']}{extra}")
    if records:
        first = records[0]
        print(f"\n-- headers of the first request ({first['http_version']}) --")
        for k, v in first["headers"]:
            print(f"  {k}: {v}")
        header_sets = {json.dumps(sorted((k, v) for k, v in x["headers"] if k.lower() != "content-length"))
                       for x in records}
        print(f"distinct header sets (ignoring Content-Length): {len(header_sets)}")
    print("\n-- body keys per event (http) --")
    seen: dict[str, set[str]] = {}
    for rec in records:
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        seen.setdefault(body.get("hook_event_name", "?") + (" (sub)" if body.get("agent_id") else ""),
                        set()).update(body)
    for ev, keys in seen.items():
        print(f"  {ev}: {sorted(keys)}")
    post = next((x["body"] for x in records if isinstance(x["body"], dict)
                 and x["body"].get("hook_event_name") == "PostToolUse"), None)
    print("\n-- first PostToolUse body --\n  " + short(post, 1500))
    cmd_dir = r["root"] / "cmd"
    cmd_bodies = sorted(cmd_dir.glob("*.json")) if cmd_dir.exists() else []
    if cmd_bodies and post:
        first_cmd = json.loads(cmd_bodies[0].read_text())
        print(f"\n-- command hook stdin vs http body (first PostToolUse) --\n  command keys: {sorted(first_cmd)}")
        print(f"  keys only in command: {sorted(set(first_cmd) - set(post))}; only in http: "
              f"{sorted(set(post) - set(first_cmd))}")
        same = {k: first_cmd[k] == post.get(k) for k in first_cmd}
        print(f"  equal values: {same}")
        envfile = cmd_bodies[0].with_suffix(".env").read_text().splitlines()
        claude_vars = [line for line in envfile if line.startswith(("CLAUDE", "POPKIT"))]
        print("  command hook env (CLAUDE*/POPKIT*): " + "; ".join(v[:80] for v in claude_vars))
        report["payload"]["command_body"] = first_cmd
    sess = (post or {}).get("session_id")
    print(f"\nsession_id {sess}; headers carrying it: "
          f"{[k for rec in records[:1] for k, v in rec['headers'] if sess and sess in v]}")
    print("\n-- what the model saw after each tool call (main conversation) --")
    for i, (_t, req) in enumerate(r["main"][1:], 1):
        print(f"  request {i}: " + short(after_last_assistant(req), 600))
    first_main = r["main"][0][1] if r["main"] else {}
    print(f"SessionStart marker in first request: {START_MARKER in json.dumps(first_main)}")
    sub_reqs = [req for _, req in r["model"] if sub_prompt in first_user_text(req)]
    print(f"SubagentStart marker in the subagent's first request: "
          f"{bool(sub_reqs) and (START_MARKER + '-sub') in json.dumps(sub_reqs[0])}; in any main request: "
          f"{any((START_MARKER + '-sub') in json.dumps(req) for _, req in r['main'])}")
    print("\n-- hook attachments in the transcript --")
    for a in hook_attachments(r):
        print("  " + short({k: a.get(k) for k in ("type", "hookName", "hookEvent", "content", "stdout", "stderr",
                                                   "exitCode", "durationMs", "command") if k in a}, 400))
    print("\n-- debug log, hook lines --")
    for line in debug_lines(r)[:60]:
        print("  " + line)
    print(f"\nstderr: {short(res.stderr, 600)}\nresult: {res.result_text!r}")


def section_failures(report: dict[str, Any], calls: int = 4) -> None:
    print("\n=== failures: refused, 500, slower than timeout; onFailure continue/block ===")
    out = []
    live = HookServer(lookup_pid=False)
    dead_port = closed_port()

    def behaviour_for(mode: str) -> Behaviour:
        def answer(record: dict[str, Any]) -> tuple[int, bytes, float]:
            if mode == "500":
                return 500, b'{"error": "boom"}', 0
            if mode == "slow":
                return 200, b"", 2.5
            return 200, b"", 0
        return answer

    cases: list[tuple[str, str, tuple[str, ...]]] = [("ok", "continue", ("PreToolUse", "PostToolUse"))]
    for mode in ("refused", "500", "slow"):
        cases.append((mode, "continue", ("PreToolUse", "PostToolUse")))
        cases.append((mode, "block", ("PreToolUse",)))
        cases.append((mode, "block", ("PostToolUse",)))
    for mode, on_failure, events in cases:
        live.reset(behaviour_for(mode))
        url = (f"http://127.0.0.1:{dead_port}/hook" if mode == "refused" else live.url("/hook"))
        handler = http_hook(url, timeout=1, onFailure=on_failure)
        settings = hooks_for({ev: [dict(handler)] for ev in events})
        prompt = f"PROBE-FAIL {mode} {on_failure} {'+'.join(events)}"
        turns = {prompt: [bash(f"touch \"$PROBE_DIR/ran-{i}\" && echo ran-{i}") for i in range(calls)]
                 + [text("FAIL-DONE")]}
        r = run(settings, turns, prompt, timeout=90)
        res = r["result"]
        ran = sorted(p.name for p in r["root"].glob("ran-*"))
        per = per_call_seconds(r["main"])
        seen = [after_last_assistant(req) for _, req in r["main"][1:]]
        atts = [short({k: a.get(k) for k in ("type", "hookEvent", "content", "stderr", "exitCode", "durationMs",
                                               "blockingError", "error") if k in a}, 300)
                for a in hook_attachments(r)]
        row = {"mode": mode, "onFailure": on_failure, "events": events, "exit": res.returncode,
               "tools_ran": ran, "per_call_s": per, "model_saw": seen, "attachments": atts,
               "debug": debug_lines(r)[:12], "stderr": res.stderr[-400:], "result": res.result_text,
               "requests_to_server": len(live.records),
               "connections": sorted({x["client_port"] for x in live.records}),
               "answer_errors": [x.get("answer_error") for x in live.records if x.get("answer_error")]}
        out.append(row)
        print(f"\n-- {mode} / onFailure={on_failure} / {'+'.join(events)}: exit {res.returncode}, tools ran "
              f"{len(ran)}/{calls}, requests received {len(live.records)} from client ports {row['connections']}, "
              f"per call {med(per)}")
        if row["answer_errors"]:
            print(f"   server could not answer (client gone): {row['answer_errors']}")
        for i, s in enumerate(seen, 1):
            print(f"   model after call {i}: {short(s, 500)}")
        for a in atts[:6]:
            print(f"   transcript: {a}")
        for line in row["debug"][:8]:
            print(f"   debug: {line}")
        if res.stderr.strip():
            print(f"   stderr: {short(res.stderr.strip(), 300)}")
        print(f"   result: {res.result_text!r}")
    live.stop()
    report["failures"] = out


def section_cost(report: dict[str, Any], calls: int = 8, rounds: int = 2) -> None:
    print(f"\n=== cost: per tool call, {calls} Bash calls a run, {rounds} rounds, configs interleaved ===")
    server = HookServer(lookup_pid=False)
    configs = {
        "none": {},
        "command true": hooks_for({"PostToolUse": [{"type": "command", "command": "true", "timeout": 10}]}),
        "http 200 empty": hooks_for({"PostToolUse": [http_hook(server.url("/hook"), timeout=10)]}),
    }
    # today's hook process, for scale: the venv's popkit-power-hook with Power Mode off (an empty POPKIT_POWER_HOME)
    real_hook = Path(sys.executable).parent / "popkit-power-hook"
    off_home = scratch()
    if real_hook.exists():
        configs["popkit-power-hook (off)"] = hooks_for({"PostToolUse": [{
            "type": "command", "command": f"POPKIT_POWER_HOME={off_home} {real_hook}", "timeout": 10}]})
    per: dict[str, list[float]] = {name: [] for name in configs}
    for rnd in range(rounds):
        for name, settings in configs.items():
            prompt = f"PROBE-COST {name} round {rnd}"
            turns = {prompt: [bash(f"echo c{i}") for i in range(calls)] + [text("COST-DONE")]}
            r = run(settings, turns, prompt, timeout=120)
            xs = per_call_seconds(r["main"])
            per[name].extend(xs)
            print(f"  round {rnd} {name:24s} exit {r['result'].returncode}: {med(xs)}")
    server.stop()
    base = statistics.median(per["none"]) if per["none"] else float("nan")
    print()
    for name, xs in per.items():
        m = statistics.median(xs) if xs else float("nan")
        print(f"  {name:24s} {med(xs)}  ratio to none {m / base:.2f}")
    report["cost"] = {"per_call_s": per}


def section_allowlist(report: dict[str, Any]) -> None:
    print("\n=== allowlist: allowedHttpHookUrls ===")
    server = HookServer(lookup_pid=False)
    port = server.port
    cases: list[tuple[str, Any, str]] = [
        ("unset", None, "project"),
        ("other host only", ["https://hooks.example.com/*"], "project"),
        ("loopback pattern", [f"http://127.0.0.1:{port}/*"], "project"),
        ("loopback any port", ["http://127.0.0.1:*"], "project"),
        ("empty list", [], "project"),
        ("other host only (user settings)", ["https://hooks.example.com/*"], "user"),
    ]
    out = []
    for name, allow, where in cases:
        server.reset()
        settings = hooks_for({"PostToolUse": [http_hook(server.url("/hook/x"), timeout=5)]})
        user = None
        if allow is not None and where == "project":
            settings["allowedHttpHookUrls"] = allow
        elif allow is not None:
            user = {"allowedHttpHookUrls": allow}
        prompt = f"PROBE-ALLOW {name}"
        r = run(settings, {prompt: [bash("echo a"), text("ALLOW-DONE")]}, prompt, timeout=60, user_settings=user)
        got = len(server.records)
        dbg = debug_lines(r, r"HTTP hook|allowedHttpHookUrls|settings.*(invalid|error)")[:5]
        atts = [short({k: a.get(k) for k in ("type", "hookEvent", "content", "stderr", "exitCode") if k in a}, 250)
                for a in hook_attachments(r)]
        seen = [after_last_assistant(req) for _, req in r["main"][1:]]
        print(f"\n-- {name} ({where}): {allow!r}: requests received {got}, exit {r['result'].returncode}")
        for line in dbg:
            print(f"   debug: {line}")
        for a in atts:
            print(f"   transcript: {a}")
        print(f"   model saw: {short(seen, 400)}")
        out.append({"case": name, "allow": allow, "where": where, "received": got, "debug": dbg, "attachments": atts})
    server.stop()
    report["allowlist"] = out


def section_keepalive(report: dict[str, Any], gaps: tuple[float, ...] = (0.5, 3, 4.5, 6, 12)) -> None:
    """Is the hook connection kept across idle gaps between tool calls? The model answers after each gap."""
    print(f"\n=== keepalive: idle gaps {gaps} s between tool calls ===")
    server = HookServer()
    settings = hooks_for({"PostToolUse": [http_hook(server.url("/hook"), timeout=5)]})
    prompt = "PROBE-KEEPALIVE"
    turns = Turns({prompt: [bash(f"echo k{i}") for i in range(len(gaps) + 1)] + [text("KA-DONE")]})
    count = {"n": 0}

    def slow_turns(request: dict[str, Any]) -> Reply:
        if prompt in first_user_text(request):
            n = count["n"]
            count["n"] += 1
            if 0 < n <= len(gaps):
                time.sleep(gaps[n - 1])
        return turns(request)

    root = scratch()
    work = root / "work"
    (work / ".claude").mkdir(parents=True)
    (work / ".claude" / "settings.json").write_text(json.dumps(settings))
    with ModelServer(slow_turns) as model:
        result = start_claude(prompt, cwd=work, base_url=model.base_url, env={"PROBE_DIR": str(root)},
                              allowed_tools="Bash", timeout=120, state_dir=root / "claude",
                              claude_bin=ensure_claude()).wait()
    recs = server.records
    closed = dict(server.closed)
    server.stop()
    print(f"exit {result.returncode}; {len(recs)} requests")
    for conn, t in sorted(closed.items()):
        last = max(x["t"] for x in recs if x["conn"] == conn)
        print(f"   connection {conn} closed by the client {t - last:.2f}s after its last request")
    prev = None
    for i, rec in enumerate(recs):
        gap = "" if prev is None else f" after {rec['t'] - prev:.1f}s"
        pid = f" peer_pid={rec['peer_pid']} is_claude={rec['peer_pid'] == result.pid}" if "peer_pid" in rec else ""
        print(f"   call {i}{gap}: client port {rec['client_port']} conn {rec['conn']} #{rec['nth_on_conn']}{pid}")
        prev = rec["t"]
    report["keepalive"] = {"gaps": gaps, "records": recs, "claude_pid": result.pid}


def section_plugin(report: dict[str, Any]) -> None:
    """The same http hook shipped in a plugin's hooks/hooks.json (--plugin-dir), as popkit-power ships its hooks."""
    print("\n=== plugin: an http hook in a plugin's hooks.json ===")
    server = HookServer(lookup_pid=False)
    hook = http_hook(server.url("/plugin/${CLAUDE_PLUGIN_ROOT}/x"), timeout=5, allowedEnvVars=["POPKIT_SECRET"],
                     headers={"X-Popkit-Secret": "$POPKIT_SECRET", "X-Root": "${CLAUDE_PLUGIN_ROOT}"})
    plugin = {"hooks": {"PostToolUse": [{"hooks": [hook]}], "SessionStart": [{"hooks": [hook]}]}}
    out = []
    for name, settings in (("plugin, no allowlist", {}),
                           ("plugin, project allowlist other host only",
                            {"allowedHttpHookUrls": ["https://hooks.example.com/*"]})):
        server.reset()
        prompt = f"PROBE-PLUGIN {name}"
        r = run(settings, {prompt: [bash("echo p"), text("PLUGIN-DONE")]}, prompt, timeout=60, plugin_hooks=plugin)
        recs = server.records
        print(f"\n-- {name}: requests received {len(recs)}, exit {r['result'].returncode}")
        for rec in recs:
            hdr = {k: v for k, v in rec["headers"] if k.startswith("X-")}
            print(f"   {rec['method']} {rec['path']} {rec['body'].get('hook_event_name')} headers {hdr}")
        for line in debug_lines(r, r"HTTP hook|allowedHttpHookUrls|probehttp.*(error|invalid)")[:6]:
            print(f"   debug: {line}")
        out.append({"case": name, "records": recs})
    server.stop()
    report["plugin"] = out


def section_settingsenv(report: dict[str, Any]) -> None:
    """Does a settings file's `env` object reach an http hook's header interpolation, and a command hook's env?

    Each case is one run with its own settings.json / settings.local.json / user settings; the launch environment
    is built here (claude_env plus PROBE_DIR), so POPKIT_SECRET is in it only where the case says so. Every run has
    an http hook in settings.json interpolating $POPKIT_SECRET, one in settings.local.json with a literal header,
    and a command hook dumping its environment."""
    print("\n=== settingsenv: settings `env` vs http header interpolation and command hook env ===")
    server = HookServer(lookup_pid=False)
    literal = "lit-" + secrets.token_hex(4) + "-$NOT_EXPANDED-${ALSO_NOT}"
    from_launch, from_json, from_local, from_user = (f"{src}-{secrets.token_hex(3)}"
                                                     for src in ("launch", "settingsjson", "settingslocal", "user"))
    interp = http_hook(server.url("/interp"), timeout=5,
                       allowedEnvVars=["POPKIT_SECRET", "POPKIT_NOWHERE", "POPKIT_ENVONLY"],
                       headers={"X-Popkit-Secret": "$POPKIT_SECRET", "X-Braced": "Bearer ${POPKIT_SECRET}",
                                "X-Envonly": "[$POPKIT_ENVONLY]", "X-Control": "[$POPKIT_NOWHERE]"})
    lit = http_hook(server.url("/literal"), timeout=5, headers={"X-Popkit-Secret": literal})
    dump = ("mkdir -p \"$PROBE_DIR/cmd\" && env > \"$PROBE_DIR/cmd/$(date +%s%N).env\"")
    command = {"type": "command", "command": dump, "timeout": 5}
    # (name, launch env extra, settings.json env, settings.local.json env, user settings env)
    cases: list[tuple[str, dict[str, str], dict[str, str] | None, dict[str, str] | None, dict[str, str] | None]] = [
        ("settings.json env only", {}, {"POPKIT_SECRET": from_json, "POPKIT_ENVONLY": "envonly-json"}, None, None),
        ("settings.local.json env only", {}, None, {"POPKIT_SECRET": from_local}, None),
        ("launch env + settings.json env", {"POPKIT_SECRET": from_launch}, {"POPKIT_SECRET": from_json}, None, None),
        ("launch env + settings.local.json env", {"POPKIT_SECRET": from_launch}, None,
         {"POPKIT_SECRET": from_local}, None),
        ("user settings env only", {}, None, None, {"POPKIT_SECRET": from_user}),
        ("launch env + all three settings files", {"POPKIT_SECRET": from_launch}, {"POPKIT_SECRET": from_json},
         {"POPKIT_SECRET": from_local}, {"POPKIT_SECRET": from_user}),
        ("settings.json + user settings env", {}, {"POPKIT_SECRET": from_json}, None, {"POPKIT_SECRET": from_user}),
    ]
    out = []
    for name, launch_extra, json_env, local_env, user_env in cases:
        server.reset()
        root = scratch()
        work = root / "work"
        (work / ".claude").mkdir(parents=True)
        settings: dict[str, Any] = hooks_for({"PostToolUse": [dict(interp), dict(command)]})
        if json_env is not None:
            settings["env"] = json_env
        local: dict[str, Any] = hooks_for({"PostToolUse": [dict(lit)]})
        if local_env is not None:
            local["env"] = local_env
        (work / ".claude" / "settings.json").write_text(json.dumps(settings, indent=1))
        (work / ".claude" / "settings.local.json").write_text(json.dumps(local, indent=1))
        state = root / "claude"
        if user_env is not None:
            (state / "home" / ".claude").mkdir(parents=True)
            (state / "home" / ".claude" / "settings.json").write_text(json.dumps({"env": user_env}))
        prompt = f"PROBE-SETTINGSENV {name}"
        launch_env = {"PROBE_DIR": str(root), **launch_extra}
        with ModelServer(TimedModel(Turns({prompt: [bash("echo e"), text("ENV-DONE")]}))) as model:
            process = start_claude(prompt, cwd=work, base_url=model.base_url, env=launch_env, allowed_tools="Bash",
                                   timeout=60, state_dir=state, claude_bin=ensure_claude())
            environ = Path(f"/proc/{process.pid}/environ").read_bytes().decode(errors="replace").split("\0")
            popkit_at_launch = dict(kv.split("=", 1) for kv in environ if kv.startswith("POPKIT") and "=" in kv)
            res = process.wait()
        recs = list(server.records)
        envs = sorted((root / "cmd").glob("*.env")) if (root / "cmd").exists() else []
        cmd_vars = [line for line in envs[0].read_text().splitlines()
                    if line.startswith("POPKIT")] if envs else None
        print(f"\n-- {name}: exit {res.returncode}; POPKIT* in claude's own environ: {popkit_at_launch}")
        print(f"   settings.json env {json_env}; settings.local.json env {local_env}; user env {user_env}")
        for rec in recs:
            hdr = {k: v for k, v in rec["headers"] if k.startswith("X-")}
            print(f"   {rec['method']} {rec['path']} headers {hdr}")
        print(f"   command hook env POPKIT*: {cmd_vars}")
        if not recs:
            for line in debug_lines({"result": res})[:6]:
                print(f"   debug: {line}")
        out.append({"case": name, "launch_popkit": popkit_at_launch, "settings_json_env": json_env,
                    "settings_local_env": local_env, "user_env": user_env, "command_env": cmd_vars,
                    "records": [{"path": x["path"], "headers": x["headers"]} for x in recs]})
    server.stop()
    print(f"\nliteral header as written in settings.local.json: {literal!r}")
    report["settingsenv"] = {"literal": literal, "cases": out}


def make_certs(folder: Path) -> dict[str, Path]:
    """A private CA, a server certificate for IP 127.0.0.1 it signs, and an impostor's self-signed certificate for
    the same IP (its own key). PEM files in `folder`; needs the `cryptography` package."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def leaf(subject_key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
             cn: str) -> x509.Certificate:
        return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer)
                .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + day)
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(issuer_key, hashes.SHA256()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("popkit probe CA")).issuer_name(name("popkit probe CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - day).not_valid_after(now + day)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = leaf(server_key, ca.subject, ca_key, "127.0.0.1")
    imp_key = ec.generate_private_key(ec.SECP256R1())
    impostor = leaf(imp_key, name("127.0.0.1"), imp_key, "127.0.0.1")
    pem = serialization.Encoding.PEM
    files = {"ca": ca.public_bytes(pem), "server": server.public_bytes(pem), "server_key": key_pem(server_key),
             "impostor": impostor.public_bytes(pem), "impostor_key": key_pem(imp_key)}
    out = {}
    for label, data in files.items():
        out[label] = folder / f"{label}.pem"
        out[label].write_bytes(data)
    return out


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


TLS_DEBUG = (r"HTTP hook (POST|error|response)|Hook \S+ \(\S+\) error|Appended extra|extraCertsPath|settingsEnv keys|"
             r"Cleared CA")


def run_local(settings: Mapping[str, Any], local: Mapping[str, Any] | None, turns: Mapping[str, list[Any]],
              prompt: str, *, env: Mapping[str, str] | None = None, timeout: float = 90,
              model: Callable[[dict[str, Any]], Reply] | None = None,
              before: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """`run` with a .claude/settings.local.json beside settings.json (None: no such file), an optional model
    wrapper (given the Turns) and a callback `before(work)` called just before Claude Code starts."""
    root = scratch()
    work = root / "work"
    (work / ".claude").mkdir(parents=True)
    (work / ".claude" / "settings.json").write_text(json.dumps(settings, indent=1))
    if local is not None:
        (work / ".claude" / "settings.local.json").write_text(json.dumps(local, indent=1))
    if before is not None:
        before(work)
    timed = TimedModel(model or Turns(turns))
    with ModelServer(timed) as server:
        process = start_claude(prompt, cwd=work, base_url=server.base_url,
                               env={"PROBE_DIR": str(root), **(env or {})}, allowed_tools="Bash", timeout=timeout,
                               state_dir=root / "claude", claude_bin=ensure_claude())
        started = time.monotonic()
        result = process.wait()
        ended = time.monotonic()
    main = [(t, r) for t, r in timed.times if prompt in first_user_text(r) and not is_task_notification(r)]
    return {"root": root, "work": work, "result": result, "model": timed.times, "main": main,
            "pid": result.pid, "started": started, "ended": ended}


def section_tls(report: dict[str, Any], calls: int = 8, rounds: int = 2) -> None:
    """An https hook URL served by Python's ssl module with a certificate for IP 127.0.0.1 from a private CA: is it
    delivered with no extra trust, with NODE_EXTRA_CA_CERTS in the launch environment, with it only in
    settings.local.json `env`, and to an impostor (another self-signed certificate) while the CA is trusted?
    Then the per-tool-call cost of http vs https, and whether TLS connections are kept alive."""
    print("\n=== tls: an https hook on 127.0.0.1 with a private CA ===")
    folder = scratch()
    certs = make_certs(folder)
    good = HookServer(lookup_pid=False, tls=tls_context(certs["server"], certs["server_key"]))
    impostor = HookServer(lookup_pid=False, tls=tls_context(certs["impostor"], certs["impostor_key"]))
    ca_env = {"NODE_EXTRA_CA_CERTS": str(certs["ca"])}
    cases: list[tuple[str, HookServer, dict[str, str], dict[str, Any] | None]] = [
        ("a) no extra trust", good, {}, None),
        ("b) NODE_EXTRA_CA_CERTS in launch env", good, ca_env, None),
        ("c) NODE_EXTRA_CA_CERTS only in settings.local.json env", good, {}, {"env": ca_env}),
        ("d) impostor self-signed cert, CA trusted via launch env", impostor, ca_env, None),
        ("d2) impostor, CA trusted via settings.local.json env", impostor, {}, {"env": ca_env}),
    ]
    out = []
    for name, server, env, local in cases:
        good.reset()
        impostor.reset()
        settings = hooks_for({"PostToolUse": [http_hook(server.url("/tls/post"), timeout=5)]})
        prompt = f"PROBE-TLS {name}"
        r = run_local(settings, local, {prompt: [bash("echo t1"), bash("echo t2"), text("TLS-DONE")]}, prompt,
                      env=env, timeout=60)
        res = r["result"]
        recs, shakes = list(server.records), list(server.handshakes)
        atts = [short({k: a.get(k) for k in ("type", "hookEvent", "hookName", "content", "stderr", "exitCode",
                                              "blockingError") if k in a}, 300) for a in hook_attachments(r)]
        dbg = debug_lines(r, TLS_DEBUG)[:10]
        seen = [after_last_assistant(req) for _, req in r["main"][1:]]
        print(f"\n-- {name}: exit {res.returncode}; requests received {len(recs)}; handshakes "
              f"{sum(h['ok'] for h in shakes)} ok / {sum(not h['ok'] for h in shakes)} failed")
        for h in shakes[:4]:
            print(f"   handshake: {short(h, 300)}")
        for rec in recs:
            body = rec["body"] if isinstance(rec["body"], dict) else {}
            print(f"   {rec['method']} {rec['path']} {body.get('hook_event_name')} "
                  f"{(body.get('tool_input') or {}).get('command')} conn={rec['conn']} #{rec['nth_on_conn']}")
        for line in dbg:
            print(f"   debug: {line}")
        for a in atts:
            print(f"   transcript: {a}")
        if res.stderr.strip():
            print(f"   stderr: {short(res.stderr.strip(), 300)}")
        print(f"   model saw: {short(seen, 500)}")
        print(f"   result: {res.result_text!r}")
        out.append({"case": name, "received": len(recs), "handshakes": shakes, "debug": dbg, "attachments": atts,
                    "model_saw": seen, "bodies": [x["body"] for x in recs]})
    impostor.stop()

    print(f"\n-- cost: {calls} Bash calls a run, {rounds} rounds, configs interleaved; CA trusted via launch env --")
    plain = HookServer(lookup_pid=False)
    configs = {"none": ({}, plain),
               "http 200 empty": (hooks_for({"PostToolUse": [http_hook(plain.url("/hook"), timeout=10)]}), plain),
               "https 200 empty": (hooks_for({"PostToolUse": [http_hook(good.url("/hook"), timeout=10)]}), good)}
    per: dict[str, list[float]] = {name: [] for name in configs}
    conns: dict[str, list[tuple[int, int, int]]] = {name: [] for name in configs}
    for rnd in range(rounds):
        for name, (settings, server) in configs.items():
            server.reset()
            prompt = f"PROBE-TLSCOST {name} round {rnd}"
            turns = {prompt: [bash(f"echo c{i}") for i in range(calls)] + [text("COST-DONE")]}
            r = run_local(settings, None, turns, prompt, env=ca_env, timeout=120)
            xs = per_call_seconds(r["main"])
            per[name].extend(xs)
            recs = list(server.records) if name != "none" else []
            n_conn = len({x["conn"] for x in recs})
            conns[name].append((len(recs), n_conn, len(server.handshakes)))
            print(f"  round {rnd} {name:18s} exit {r['result'].returncode}: {med(xs)}; "
                  f"{len(recs)} requests on {n_conn} connections, {len(server.handshakes)} TLS handshakes")
    plain.stop()
    good.stop()
    base = statistics.median(per["none"]) if per["none"] else float("nan")
    print()
    for name, xs in per.items():
        m = statistics.median(xs) if xs else float("nan")
        print(f"  {name:18s} {med(xs)}  ratio to none {m / base:.2f}")
    report["tls"] = {"cases": out, "cost_per_call_s": per, "connections": conns}


RELOAD_DEBUG = (r"HTTP hook POST|Watching for changes in setting|Detected change|Settings changed from|fs.watch probe|"
                r"settings.read: .*\(the settings changed\)|hooks? (config|snapshot)|hooks.*(modified|removed|added)")


def section_reload(report: dict[str, Any], calls: int = 6) -> None:
    """Are hooks re-read from the settings files while a session runs? The scripted model makes `calls` Bash calls
    (`sleep 1` each); when it is asked for the turn after the first tool call, this process adds an http
    PostToolUse hook to (or removes it from) a settings file; which later calls reach the server. Headless `-p`
    runs, then the same in an interactive session under tmux (tests/e2e/interactive.py)."""
    print(f"\n=== reload: settings files changed mid-session ({calls} Bash calls, `sleep 1` each) ===")
    server = HookServer(lookup_pid=False)
    hook = hooks_for({"PostToolUse": [http_hook(server.url("/reload"), timeout=5)]})
    # (name, file written, its content at start (None: absent), its content after the first tool call (None:
    # removed), each Bash call's sleep, number of calls)
    cases: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None, float, int]] = [
        ("add to settings.local.json ({} at start)", "settings.local.json", {}, hook, 1, calls),
        ("add settings.local.json (absent at start)", "settings.local.json", None, hook, 1, calls),
        ("remove from settings.local.json (hook at start, rewritten as {})", "settings.local.json", hook, {}, 1,
         calls),
        ("add to settings.json ({} at start)", "settings.json", {}, hook, 1, calls),
        ("add to settings.local.json, calls of 0.2 s (how soon it applies)", "settings.local.json", {}, hook, 0.2,
         12),
    ]
    modes = ["headless"] + (["interactive"] if shutil.which("tmux") else [])
    out = []
    for mode in modes:
        for name, filename, at_start, after, nap, n_calls in cases:
            server.reset()
            root = scratch()
            work = root / "work"
            (work / ".claude").mkdir(parents=True)
            target = work / ".claude" / filename
            if filename != "settings.json":
                (work / ".claude" / "settings.json").write_text("{}")
            if at_start is not None:
                target.write_text(json.dumps(at_start, indent=1))
            prompt = f"PROBE-RELOAD {mode} {name}"
            turns = Turns({prompt: [bash(f"sleep {nap}; echo r{i}") for i in range(n_calls)] + [text("RELOAD-DONE")]})
            changed: dict[str, float] = {}

            def model(request: dict[str, Any], turns: Turns = turns, target: Path = target,
                      after: dict[str, Any] | None = after, changed: dict[str, float] = changed,
                      prompt: str = prompt) -> Reply:
                if (prompt in first_user_text(request) and not changed
                        and len([m for m in request.get("messages", []) if m.get("role") == "assistant"]) >= 1):
                    if after is None:
                        target.unlink()
                    else:
                        tmp = target.with_suffix(".tmp")
                        tmp.write_text(json.dumps(after, indent=1))
                        tmp.replace(target)
                    changed["t"] = time.monotonic()
                    changed["wall"] = time.time()
                return turns(request)

            timed = TimedModel(model)
            screen = ""
            with ModelServer(timed) as ms:
                if mode == "headless":
                    res = start_claude(prompt, cwd=work, base_url=ms.base_url, env={"PROBE_DIR": str(root)},
                                       allowed_tools="Bash", timeout=90, state_dir=root / "claude",
                                       claude_bin=ensure_claude()).wait()
                    debug = res.debug_log()
                    exit_note = f"exit {res.returncode}"
                else:
                    from interactive import InteractiveClaude

                    session = InteractiveClaude(ensure_claude(), prompt, cwd=work, base_url=ms.base_url,
                                                state_dir=root / "claude", env={"PROBE_DIR": str(root)})
                    deadline = time.monotonic() + 90
                    try:
                        while time.monotonic() < deadline:
                            mains = [r for _, r in timed.times if prompt in first_user_text(r)]
                            if any("RELOAD-DONE" in json.dumps(r) for r in mains) or any(
                                    len([m for m in r.get("messages", []) if m.get("role") == "assistant"]) >= n_calls
                                    for r in mains):
                                break
                            time.sleep(0.2)
                        time.sleep(2)  # the last PostToolUse, a Stop
                        screen = session.screen()
                    finally:
                        session.stop()
                    debug = (root / "claude" / "debug.log").read_text(errors="replace") \
                        if (root / "claude" / "debug.log").exists() else ""
                    exit_note = "stopped"
            recs = list(server.records)
            sent = [str(((x["body"] or {}).get("tool_input") or {}).get("command", "?")).split("echo ")[-1]
                    for x in recs if isinstance(x["body"], dict)]
            t0 = changed.get("t")
            rel = [f"{x['t'] - t0:+.2f}s" for x in recs] if t0 else []
            rx = re.compile(RELOAD_DEBUG, re.I)
            dbg: list[str] = []
            detected = None
            for line in debug.splitlines():
                if "Detected change" in line and detected is None and "wall" in changed:
                    stamp = datetime.datetime.fromisoformat(line.split(" ", 1)[0].replace("Z", "+00:00"))
                    detected = stamp.timestamp() - changed["wall"]
                if rx.search(line):
                    body = line.split(" ", 2)[-1][:260]
                    if body not in dbg:
                        dbg.append(body)
            seen = f"{detected:.2f}s after the write" if detected is not None else "never"
            print(f"\n-- {mode}: {name}: {exit_note}; file changed {'yes' if t0 else 'NO'}; 'Detected change' logged "
                  f"{seen}; hook requests for calls {sent} at {rel} from the change")
            for line in dbg[:25]:
                print(f"   debug: {line}")
            if screen:
                tail = [line for line in screen.splitlines() if line.strip()][-12:]
                print("   screen (last lines): " + " / ".join(s.strip()[:120] for s in tail))
            out.append({"mode": mode, "case": name, "sent": sent, "from_change_s": rel, "detected_s": detected,
                        "debug": dbg,
                        "screen": screen})
    server.stop()
    report["reload"] = out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = ["payload", "failures", "cost", "allowlist", "plugin", "keepalive", "settingsenv", "tls", "reload"]
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(names)} (default: all)")
    parser.add_argument("--calls", type=int, default=10, help="Bash calls per cost run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the cost configs")
    parser.add_argument("--fail-calls", type=int, default=4, help="Bash calls per failure case")
    parser.add_argument("--json", type=Path, help="write the raw records here")
    args = parser.parse_args()
    unknown = [name for name in args.sections if name not in names]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {names}")
    binary = ensure_claude()
    print(f"Claude Code {CLAUDE_CODE_VERSION} at {binary}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    report: dict[str, Any] = {}
    for section in args.sections or names:
        if section == "payload":
            section_payload(report)
        elif section == "failures":
            section_failures(report, args.fail_calls)
        elif section == "cost":
            section_cost(report, args.calls, args.rounds)
        elif section == "allowlist":
            section_allowlist(report)
        elif section == "plugin":
            section_plugin(report)
        elif section == "keepalive":
            section_keepalive(report)
        elif section == "settingsenv":
            section_settingsenv(report)
        elif section == "tls":
            section_tls(report, args.calls, args.rounds)
        elif section == "reload":
            section_reload(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    if os.environ.get("PROBE_KEEP") != "1":
        for path in CREATED:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
