"""Hooks over HTTP against command hooks: the wall time Power Mode adds to each tool call, with the real Claude Code.

    cd <checkout> && PYTHONPATH=<checkout>:<checkout>/tests/e2e .venv/bin/python tools/bench_hook_http.py
        [--rounds 8] [--calls 20] [--pass-runs 8] [--direct 40] [--agents 16] [--agent-calls 10]
        [--agent-rounds 3] [--json OUT] [--keep]

The real Claude Code (tests/e2e/claude.py, 2.1.330) runs headless (`claude -p`) against the scripted model server
(tests/e2e/model_server.py), which asks for N Bash calls (`echo`) and then ends in text. One tool call's wall time is
the time from the model request that asked for it to the next model request of the same conversation (as
tools/probe_http_hooks.py's `per_call_seconds`): the tool, the PostToolUse hook and Claude Code's own work; the model
answers at once. Configurations, each in its own project (`git init`, its power directory `.git/popkit-power`, named
in POPKIT_POWER_HOME), interleaved run by run with the order turned each round:

  none        no hooks at all (the floor)
  http-empty  (one agent only) the handlers `install --transport http` writes, posting to a bare server in this
              process that answers 200 at once: what Claude Code's HTTP hook costs by itself
  command     `popkit-power install --transport command`, then `popkit-power start` (a coordinator runs, unused by
              the hooks): a `popkit-power-hook` process per tool call
  http        `popkit-power install --transport http`, then `popkit-power start`: the coordinator answers the
              PostToolUse hooks in-process

Beside them, `python -c pass` with this interpreter (`--pass-runs` after each Claude Code run, median of all): each
configuration's added cost over `none` is given as a multiple of it. Budget (the HTTP hooks' issue): the HTTP hook
adds at most 0.25x `python -c pass` per tool call, at median. After the one-agent part, `--direct` PostToolUse
payloads are POSTed straight to the http project's coordinator over one kept-alive connection: the server's own share.
The CPU column is all the CPU of a run (Claude Code and what it ran, reaped: hooks, Bash; the coordinator) divided by
its tool calls, so it carries each run's fixed costs (Claude Code's start, SessionStart, the Stop hooks) too.

Second part, `--agents` at once: that many `claude -p` runs started together in one project and session (each its
own scripted conversation of `--agent-calls` Bash calls), for none, command and http; the model holds every agent's
first answer until all have asked (Claude Code's start is ~1 s of CPU each), so the tool calls run together; per-call
p50 and p90 over all agents' calls, and the added cost over that many agents with no hooks.

After every run the journal must hold one `agent.tool` record per Bash call (command and http), and hook.log and the
coordinator's log are read for errors and refusals: anything found is printed under "product problems". The
popkit-power used is the one beside this interpreter, running the code PYTHONPATH names (printed first). Each session
is stopped at the end, and its coordinator killed if `stop` left it running. The default run takes ~5 minutes on 2
cores; a smoke run: --rounds 1 --calls 3 --agents 4 --agent-calls 2.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from bench_common import machine, percentile  # noqa: E402
from bench_hook import payload  # noqa: E402
from claude import CLAUDE_CODE_VERSION, ClaudeResult, ensure_claude, start_claude  # noqa: E402
from model_server import (  # noqa: E402
    ModelServer,
    Reply,
    Turns,
    first_user_text,
    is_side_query,
    is_task_notification,
    text,
    tool_results,
    tool_use,
)

from popkit_power.hook_transport import (  # noqa: E402
    HTTP_EVENTS,
    SECRET_HEADER,
    TRUST_ENV,
    certificate_paths,
    ensure_certificate,
    read_secret,
)
from popkit_power.session import Session  # noqa: E402

VENV_BIN = Path(sys.executable).parent
POPKIT = VENV_BIN / "popkit-power"
CONFIGS = ("none", "command", "http")
#: the reference beside them in the one-agent part: Claude Code's own HTTP hook, answered at once (200, no body) by
#: a bare server in this process, with the handlers `install --transport http` writes
EMPTY = "http-empty"
BUDGET = 0.25  # the HTTP hook's added cost per tool call, in `python -c pass`
GATE_SECONDS = 180.0
PROBLEM = re.compile(r"error|warning|refused|traceback|exception|not answered", re.I)


class TimedModel:
    """The scripted model; it stamps each request's arrival (monotonic) with the request, from any thread."""

    def __init__(self, turns: Turns) -> None:
        self.turns = turns
        self.lock = threading.Lock()
        self.times: list[tuple[float, dict[str, Any]]] = []
        self.gate: tuple[set[str], set[str], threading.Event] | None = None

    def hold_first_requests(self, prompts: Sequence[str]) -> None:
        """Answer none of these conversations' first request until every one has sent it: the agents start their
        tool calls together, after all of them have started (Claude Code's start is seconds of CPU each)."""
        self.gate = (set(prompts), set(), threading.Event())

    def __call__(self, request: dict[str, Any]) -> Reply:
        key = self.turns.conversation_of(request)
        if self.gate is not None and key in self.gate[0] and not tool_results(request):
            waiting, arrived, everyone = self.gate
            with self.lock:
                arrived.add(key)
                if arrived == waiting:
                    everyone.set()
            everyone.wait(GATE_SECONDS)
        now = time.monotonic()  # a held request counts from its release: its first tool call starts then
        with self.lock:
            self.times.append((now, request))
        if is_task_notification(request):
            return Reply([text("done")])
        return self.turns(request)

    def per_call(self, prompt: str, calls: int) -> list[float]:
        """The seconds of each of the conversation's `calls` tool calls: from the first request holding k tool
        results to the first holding k + 1 (a request Claude Code repeats, or one after the end, counts once)."""
        first: dict[int, float] = {}
        with self.lock:
            times = list(self.times)
        for moment, request in times:
            if is_side_query(request) or is_task_notification(request) or prompt not in first_user_text(request):
                continue
            first.setdefault(len(tool_results(request)), moment)
        return [first[k + 1] - first[k] for k in range(calls) if k in first and k + 1 in first]


def script(prompt: str, calls: int) -> dict[str, list[Any]]:
    return {prompt: [tool_use("Bash", {"command": f"echo call{i}", "description": "bench"}) for i in range(calls)]
            + [text("BENCH-DONE")]}


def base_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("POPKIT", "CLAUDE"))}


class Project:
    """A git project with its own power directory, the hooks of `config` installed, and (but for `none`) a session
    started with its coordinator; `close()` stops the session and makes sure the coordinator is gone."""

    def __init__(self, scratch: Path, name: str, config: str) -> None:
        self.name, self.config = name, config
        self.work = scratch / name / "work"
        self.work.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(self.work)], check=True)
        self.power = self.work / ".git" / "popkit-power"
        #: what every process of this project gets on top of its environment: the venv's popkit-power first on
        #: PATH, this checkout's code, the power directory, and trust markers kept in the scratch folder
        self.env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
                    "POPKIT_POWER_HOME": str(self.power), "XDG_STATE_HOME": str(scratch / "state")}
        self.session_id: str | None = None
        self.scratch_certs = scratch / "empty-certs"
        self.coordinator: int | None = None
        self.recorded = 0
        self.log_seen: dict[str, int] = {}

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(POPKIT), *args], cwd=self.work, env={**base_env(), **self.env},
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise SystemExit(f"popkit-power {' '.join(args)} failed in {self.work} ({done.returncode}): "
                             f"{done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    def open(self, empty_url: str = "") -> None:
        if self.config == "none":
            return
        if self.config == EMPTY:
            handler = {"type": "http", "url": empty_url, "headers": {SECRET_HEADER: "0" * 64}, "timeout": 10,
                       "onFailure": "continue"}
            (self.work / ".claude").mkdir()
            (self.work / ".claude" / "settings.local.json").write_text(json.dumps(
                {"hooks": {event: [{"hooks": [handler]}] for event in HTTP_EVENTS},
                 "env": {TRUST_ENV: certificate_paths(str(self.scratch_certs))[0]}}, indent=2))
            return
        self.cli("install", "--transport", self.config)
        out = self.cli("start", f"bench hooks over {self.config}")
        found = re.search(r"session (\S+)", out)
        pid = re.search(r"coordinator: pid (\d+)", out)
        if not found or not pid:
            raise SystemExit(f"popkit-power start said: {out}")
        self.session_id, self.coordinator = found.group(1), int(pid.group(1))
        settings = json.loads((self.work / ".claude" / "settings.local.json").read_text())
        kinds = {handler["type"] for group in settings["hooks"]["PostToolUse"] for handler in group["hooks"]}
        if kinds != {self.config}:
            raise SystemExit(f"{self.name}: PostToolUse hooks of type {kinds}, not {self.config}")
        if self.config == "http":  # the coordinator must say it serves them
            for _ in range(100):
                if "hooks: answered over HTTP" in self.coordinator_log():
                    break
                time.sleep(0.05)
            else:
                raise SystemExit(f"{self.name}: the coordinator does not answer hooks over HTTP:\n"
                                 f"{self.coordinator_log()[-2000:]}")

    def coordinator_log(self) -> str:
        if self.session_id is None:
            return ""
        path = self.power / "sessions" / self.session_id / "coordinator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def tool_records(self) -> list[str]:
        """The sender of every agent.tool record in the journal, in order."""
        if self.session_id is None:
            return []
        session = Session(str(self.power), self.session_id, read_only=True)
        try:
            return [str(event.get("from")) for event in session.journal.reader() if event.get("type") == "agent.tool"]
        finally:
            session.journal.close()

    def check(self, expected_new: int, what: str, agents: int = 1) -> list[str]:
        """Problems since the last check: tool calls not recorded (or not as `agents` agents), new error lines in
        hook.log or the coordinator's log."""
        if self.config in ("none", EMPTY):
            return []
        problems = []
        senders = self.tool_records()
        new = senders[self.recorded:]
        if len(new) != expected_new or len(set(new)) != agents:
            problems.append(f"{what}: {len(new)} agent.tool records for {expected_new} Bash calls, from "
                            f"{len(set(new))} agents for {agents}")
        self.recorded = len(senders)
        logs = {"hook.log": (self.power / "hook.log").read_text(errors="replace")
                if (self.power / "hook.log").exists() else "", "coordinator.log": self.coordinator_log()}
        for name, content in logs.items():
            unread = content[self.log_seen.get(name, 0):]
            self.log_seen[name] = len(content)
            problems += [f"{what}: {name}: {line.strip()[:300]}" for line in unread.splitlines()
                         if PROBLEM.search(line)]
        return problems

    def claude_env(self) -> dict[str, str]:
        return dict(self.env)  # `none` too: the same environment, no hooks to read it

    def close(self) -> None:
        if self.session_id is None:
            return
        try:
            self.cli("stop")
        finally:
            pid = self.coordinator
            deadline = time.monotonic() + 5  # it may still be closing its hook server once the lease is released
            while pid is not None and _is_coordinator(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid is not None and _is_coordinator(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                print(f"  {self.name}: the coordinator (pid {pid}) was still running 5 s after `stop`: killed",
                      file=sys.stderr)
            self.session_id = None


class _Empty(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _EmptyServer(ThreadingHTTPServer):
    """Answers every POST with an empty 200 at once, over TLS with a certificate made as `install` makes the
    project's (Claude Code trusts it the same way), so that it costs what Claude Code's HTTPS hook costs by itself."""

    daemon_threads = True

    def __init__(self, certs: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Empty)
        certs.mkdir(exist_ok=True)
        ensure_certificate(str(certs))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*certificate_paths(str(certs)))

    def get_request(self) -> Any:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address


def direct_posts(project: Project, count: int) -> list[float]:
    """Seconds per POST of a PostToolUse payload straight to the coordinator (one kept-alive connection, as Claude
    Code keeps one): the server's side of a hook over HTTP, without Claude Code. The first POST (the agent's join,
    its pid looked up) is left out."""
    import http.client

    port = json.loads((project.power / "config.json").read_text())["hook_port"]
    secret = read_secret(str(project.power)) or ""
    trust = ssl.create_default_context(cafile=certificate_paths(str(project.power))[0])
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=trust)
    times = []
    try:
        for index in range(count + 1):
            started = time.perf_counter()
            connection.request("POST", "/popkit-power/hook", body=payload(index),
                               headers={SECRET_HEADER: secret, "Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - started
            if response.status not in (200, 204):
                raise SystemExit(f"direct POST to the coordinator: HTTP {response.status}")
            if index:
                times.append(elapsed)
    finally:
        connection.close()
    return times


def _is_coordinator(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"popkit_power.coordinator" in cmdline or b"popkit_power.dashboard" in cmdline


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds a running process has used (0 when it is gone or None)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_agents(project: Project, server: ModelServer, model: TimedModel, prompts: Sequence[str], calls: int,
               scratch: Path, timeout: float) -> tuple[list[list[float]], list[ClaudeResult], float, float]:
    """`claude -p` for every prompt at once in `project`; each one's per-call seconds, its result, the CPU seconds
    all of it took (the Claude Code processes with what they ran: hooks, Bash, reaped, so counted in this process's
    children; and the coordinator), and the coordinator's share of them."""
    binary = ensure_claude()
    coordinator_before = cpu_seconds(project.coordinator)
    before = children_cpu()
    processes = []
    for prompt in prompts:
        state = Path(tempfile.mkdtemp(prefix="claude-", dir=scratch))
        processes.append(start_claude(prompt, cwd=project.work, base_url=server.base_url, env=project.claude_env(),
                                      allowed_tools="Bash", timeout=timeout, state_dir=state, claude_bin=binary))
    results = [process.wait() for process in processes]
    coordinator = cpu_seconds(project.coordinator) - coordinator_before
    cpu = children_cpu() - before + coordinator
    return [model.per_call(prompt, calls) for prompt in prompts], results, cpu, coordinator


def time_pass(runs: int) -> list[float]:
    env = base_env()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        times.append(time.perf_counter() - started)
    return times


def stats(xs: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in xs)
    quart = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    return {"n": len(ms), "p50": statistics.median(ms), "q1": quart[0], "q3": quart[2],
            "p90": percentile(ms, 0.9), "min": ms[0], "max": ms[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="interleaved rounds of the one-agent runs")
    parser.add_argument("--calls", type=int, default=20, help="Bash calls per one-agent run")
    parser.add_argument("--pass-runs", type=int, default=8, help="`python -c pass` runs after each Claude Code run")
    parser.add_argument("--direct", type=int, default=40,
                        help="POSTs straight to the coordinator, after the one-agent part (0: none)")
    parser.add_argument("--agents", type=int, default=16, help="agents at once in the second part (0: skip it)")
    parser.add_argument("--agent-calls", type=int, default=10, help="Bash calls per agent in the second part")
    parser.add_argument("--agent-rounds", type=int, default=3, help="interleaved rounds of the second part")
    parser.add_argument("--json", type=Path, help="also write the figures and the raw seconds here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (projects, logs, Claude state)")
    args = parser.parse_args()

    import popkit_power

    facts = machine()
    load = os.getloadavg()
    print(f"Claude Code {CLAUDE_CODE_VERSION} at {ensure_claude()}; popkit-power {POPKIT}")
    print(f"popkit_power imported from {popkit_power.__file__} ({facts['version']})")
    probe = subprocess.run([sys.executable, "-c", "import popkit_power; print(popkit_power.__file__)"],
                           env={**base_env(), "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
    print(f"popkit_power in the subprocesses (PYTHONPATH={ROOT}): {probe.stdout.strip()}")
    print(f"{facts['nproc']} CPUs ({facts.get('cpu', '?')}), Python {facts['python']}, load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    compileall.compile_dir(str(ROOT / "popkit_power"), quiet=1)  # as a pip install does (PYTHONDONTWRITEBYTECODE)

    scratch = Path(tempfile.mkdtemp(prefix="bench-hook-http-"))
    projects: list[Project] = []
    problems: list[str] = []
    singles = (CONFIGS[0], EMPTY, *CONFIGS[1:])
    one: dict[str, list[float]] = {name: [] for name in singles}
    many: dict[str, list[float]] = {name: [] for name in CONFIGS}
    cpu_one: dict[str, list[float]] = {name: [] for name in singles}
    cpu_many: dict[str, list[float]] = {name: [] for name in CONFIGS}
    coordinator_one: dict[str, list[float]] = {name: [] for name in singles}
    coordinator_many: dict[str, list[float]] = {name: [] for name in CONFIGS}
    direct_cpu = 0.0
    passes: list[float] = []
    direct: list[float] = []
    failed_runs: list[str] = []
    started = time.monotonic()
    empty = _EmptyServer(scratch / "empty-certs")
    threading.Thread(target=empty.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        for name in singles:
            projects.append(Project(scratch, f"one-{name}", name))
        for project in projects:
            project.scratch_certs = scratch / "empty-certs"
            project.open(f"https://127.0.0.1:{empty.server_address[1]}/hook")
        model = TimedModel(Turns({}))
        with ModelServer(model) as server:
            time_pass(3)  # warm
            print(f"\n== 1 agent: {args.rounds} rounds x {args.calls} Bash calls, configurations interleaved ==")
            for rnd in range(args.rounds):
                turn = rnd % len(projects)
                for project in projects[turn:] + projects[:turn]:
                    prompt = f"BENCH-ONE-{project.config}-r{rnd:02d}."
                    model.turns = Turns(script(prompt, args.calls))
                    (xs,), (result,), cpu, mine = run_agents(project, server, model, [prompt], args.calls, scratch,
                                                             120)
                    cpu_one[project.config].append(cpu / args.calls)
                    coordinator_one[project.config].append(mine / args.calls)
                    if result.returncode != 0 or len(xs) != args.calls:
                        failed_runs.append(f"{prompt}: exit {result.returncode}, {len(xs)} calls timed: "
                                           f"{result.describe()[:600]}")
                    one[project.config].extend(xs)
                    problems += project.check(args.calls, prompt)
                    passes.extend(time_pass(args.pass_runs))
                    s = stats(xs) if xs else {"p50": float("nan")}
                    print(f"  round {rnd} {project.config:10s} exit {result.returncode} {len(xs)} calls, median "
                          f"{s['p50']:.0f} ms; claude ran {result.duration:.1f} s, CPU {cpu:.2f} s", flush=True)
            if args.direct:
                http_project = next(project for project in projects if project.config == "http")
                before = cpu_seconds(http_project.coordinator)
                direct = direct_posts(http_project, args.direct)
                direct_cpu = (cpu_seconds(http_project.coordinator) - before) / (args.direct + 1)
                print(f"  {args.direct} POSTs straight to the coordinator: median {stats(direct)['p50']:.1f} ms, "
                      f"its CPU {direct_cpu * 1000:.1f} ms a POST", flush=True)
                problems += http_project.check(args.direct + 1, "direct POSTs")
            if args.agents:
                crowds = [Project(scratch, f"many-{name}", name) for name in CONFIGS]
                projects += crowds
                for project in crowds:
                    project.open()
                print(f"\n== {args.agents} agents at once: {args.agent_rounds} rounds x {args.agent_calls} Bash "
                      f"calls each, started together, their first model answer held until all have asked ==")
                for rnd in range(args.agent_rounds):
                    turn = rnd % len(crowds)
                    for project in crowds[turn:] + crowds[:turn]:
                        prompts = [f"BENCH-MANY-{project.config}-r{rnd:02d}-a{i:02d}." for i in range(args.agents)]
                        conversations: dict[str, list[Any]] = {}
                        for prompt in prompts:
                            conversations.update(script(prompt, args.agent_calls))
                        model.turns = Turns(conversations)
                        model.hold_first_requests(prompts)
                        began = time.monotonic()
                        per, results, cpu, mine = run_agents(project, server, model, prompts, args.agent_calls, scratch,
                                                             300)
                        cpu_many[project.config].append(cpu / (args.agents * args.agent_calls))
                        coordinator_many[project.config].append(mine / (args.agents * args.agent_calls))
                        model.gate = None
                        for prompt, xs, result in zip(prompts, per, results, strict=True):
                            if result.returncode != 0 or len(xs) != args.agent_calls:
                                failed_runs.append(f"{prompt}: exit {result.returncode}, {len(xs)} calls timed: "
                                                   f"{result.describe()[:600]}")
                            many[project.config].extend(xs)
                        problems += project.check(args.agents * args.agent_calls, prompts[0][:-4], args.agents)
                        passes.extend(time_pass(args.pass_runs))
                        flat = [x for xs in per for x in xs]
                        s = stats(flat) if flat else {"p50": float("nan"), "p90": float("nan")}
                        print(f"  round {rnd} {project.config:8s} {len(flat)} calls timed, p50 {s['p50']:.0f} ms, "
                              f"p90 {s['p90']:.0f} ms; all {args.agents} ran {time.monotonic() - began:.1f} s, CPU "
                              f"{cpu:.1f} s",
                              flush=True)
    finally:
        for project in projects:
            try:
                project.close()
            except (SystemExit, OSError, subprocess.SubprocessError) as error:
                print(f"  {project.name}: stop failed: {error}", file=sys.stderr)
        empty.shutdown()
        empty.server_close()
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    load = os.getloadavg()
    reference = statistics.median(passes) * 1000
    report: dict[str, Any] = {"claude_code": CLAUDE_CODE_VERSION, "machine": facts, "rounds": args.rounds,
                              "calls": args.calls, "agents": args.agents, "agent_calls": args.agent_calls,
                              "agent_rounds": args.agent_rounds, "python_c_pass_ms": stats(passes),
                              "seconds": round(time.monotonic() - started, 1), "load_at_end": load,
                              "problems": problems, "failed_runs": failed_runs}
    print(f"\n`python -c pass`: median {reference:.1f} ms over {len(passes)} runs (IQR "
          f"{report['python_c_pass_ms']['q1']:.1f}-{report['python_c_pass_ms']['q3']:.1f})")
    print(f"\n1 agent, per tool call ({args.rounds} x {args.calls} calls per configuration):")
    print("| configuration | median ms | IQR ms | added over none ms | added / python -c pass | CPU ms per call "
          "(run's median) | added CPU ms |")
    print("|---|---|---|---|---|---|---|")
    cpu_floor = statistics.median(cpu_one["none"]) * 1000 if cpu_one["none"] else float("nan")
    report["one"] = {}
    floor = stats(one["none"])["p50"] if one["none"] else float("nan")
    for name in singles:
        if not one[name]:
            continue
        s = stats(one[name])
        added = s["p50"] - floor
        cpu = statistics.median(cpu_one[name]) * 1000
        report["one"][name] = {**s, "added_ms": added, "added_x_pass": added / reference, "raw_s": one[name],
                               "cpu_ms_per_call": cpu, "added_cpu_ms": cpu - cpu_floor}
        added_text = "(floor)" if name == "none" else f"{added:+.1f}"
        ratio_text = "" if name == "none" else f"{added / reference:+.2f}x"
        cpu_text = "" if name == "none" else f"{cpu - cpu_floor:+.1f}"
        print(f"| {name} | {s['p50']:.1f} | {s['q1']:.1f}-{s['q3']:.1f} | {added_text} | {ratio_text} | {cpu:.1f} | "
              f"{cpu_text} |")
    if direct:
        s = stats(direct)
        report["direct"] = {**s, "x_pass": s["p50"] / reference, "raw_s": direct, "cpu_ms": direct_cpu * 1000}
        print(f"| POST straight to the coordinator (no Claude Code) | {s['p50']:.1f} | {s['q1']:.1f}-{s['q3']:.1f} "
              f"| | {s['p50'] / reference:.2f}x | | |")
    if args.agents:
        print(f"\n{args.agents} agents at once, per tool call ({args.agent_rounds} x {args.agents} x "
              f"{args.agent_calls} calls per configuration):")
        print("| configuration | p50 ms | p90 ms | IQR ms | added p50 ms | added p50 / pass | added p90 ms | "
              "added p90 / pass | CPU ms per call | added CPU ms |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        cpu_base = statistics.median(cpu_many["none"]) * 1000 if cpu_many["none"] else float("nan")
        report["many"] = {}
        base = stats(many["none"]) if many["none"] else {"p50": float("nan"), "p90": float("nan")}
        for name in CONFIGS:
            if not many[name]:
                continue
            s = stats(many[name])
            added50, added90 = s["p50"] - base["p50"], s["p90"] - base["p90"]
            report["many"][name] = {**s, "added_p50_ms": added50, "added_p50_x_pass": added50 / reference,
                                    "added_p90_ms": added90, "added_p90_x_pass": added90 / reference,
                                    "raw_s": many[name]}
            cpu = statistics.median(cpu_many[name]) * 1000
            report["many"][name].update(cpu_ms_per_call=cpu, added_cpu_ms=cpu - cpu_base)
            if name == "none":
                print(f"| none | {s['p50']:.1f} | {s['p90']:.1f} | {s['q1']:.1f}-{s['q3']:.1f} | (floor) | | | | "
                      f"{cpu:.1f} | |")
            else:
                print(f"| {name} | {s['p50']:.1f} | {s['p90']:.1f} | {s['q1']:.1f}-{s['q3']:.1f} | {added50:+.1f} | "
                      f"{added50 / reference:+.2f}x | {added90:+.1f} | {added90 / reference:+.2f}x | {cpu:.1f} | "
                      f"{cpu - cpu_base:+.1f} |")
    print()
    for label, shares in (("1 agent", coordinator_one), (f"{args.agents} agents", coordinator_many)):
        if shares.get("http"):
            found = {name: statistics.median(values) * 1000 for name, values in shares.items() if values}
            report.setdefault("coordinator_cpu_ms_per_call", {})[label] = found
            print(f"coordinator CPU per tool call, {label} (median of runs): "
                  + ", ".join(f"{name} {value:.1f} ms" for name, value in found.items() if name in CONFIGS[1:]))
    if direct:
        print(f"coordinator CPU per direct POST: {direct_cpu * 1000:.1f} ms")
    for label, table in (("1 agent", report["one"]), (f"{args.agents} agents", report.get("many", {}))):
        if "http" in table:
            ratio = table["http"].get("added_x_pass", table["http"].get("added_p50_x_pass"))
            print(f"budget, {label}: the HTTP hook adds {ratio:.2f}x `python -c pass` per tool call at median "
                  f"(<= {BUDGET}x): {'met' if ratio <= BUDGET else 'NOT met'}")
    print(f"ran {report['seconds']:.0f} s; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if failed_runs:
        print(f"\nClaude Code runs that failed or were not fully timed ({len(failed_runs)}):")
        for line in failed_runs[:10]:
            print(f"  {line}")
    print(f"\nproduct problems ({len(problems)}):" if problems else "\nproduct problems: none found (every Bash "
          "call recorded as agent.tool; no error, warning or refusal in hook.log or coordinator.log)")
    for line in problems[:40]:
        print(f"  {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
