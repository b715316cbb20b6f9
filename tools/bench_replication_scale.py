"""The scale simulation of tools/bench_replication.py (`--only scale-redis` / `--only scale-upstash`): M machines,
each a power directory with its own `PowerModeCoordinator` (and so its own replicator) in a process of its own, and
M x A agents fed hook payloads (PostToolUse, as Claude Code hands them) from the benchmark's process, through one
local Redis or through the Upstash bridge over it.

- burst: every agent makes R tool calls, the agents taken in turn across the machines; then the time until every
  machine's journal holds every machine's events up to where each stood when the burst ended (each pulled event
  once: checked afterwards, ids counted per origin);
- commands per machine per hour: each replicator's `commands_sent` (what Upstash bills) over an idle window (no agent
  works; the coordinators say they are alive every `heartbeat_seconds`, the default 15 s) and over a busy one (every
  agent a tool call every --tool-every s), scaled to an hour.

Each machine's config sets only `agent_timeout_seconds` to a day, so that agents silent in the idle window are not
declared lost (which would be work, not idleness); everything else is the default.

Run as `bench_replication_scale.py --child HOME ENVIRON_JSON` it is one machine: it starts the coordinator, prints
"ready", then answers "count" on stdin with its replicator's commands_sent, until "stop".
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import select
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import bench_common as common
import orjson
from bench_replication import (
    FAST_POLL,
    HEARTBEAT,
    IDLE_POLL,
    bridge_process,
    hook_call,
    rtt_of,
    upstash_environ,
)
from bench_replication_model import Machine, simulate

from popkit_power.home import set_active_session
from popkit_power.session import Session, start_session
from popkit_power.timestamps import seconds_of

CONFIG = b'{"agent_timeout_seconds": 86400}'
FREE_TIER_MONTH = 500_000
HOURS_A_MONTH = 730


class Child:
    """One machine's process: its coordinator and replicator."""

    def __init__(self, home: str, environ: dict[str, str]) -> None:
        self.home = home
        self.log = open(os.path.join(home, "bench-child.log"), "wb")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen([sys.executable, __file__, "--child", home, orjson.dumps(environ).decode()],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)

    def line(self, timeout: float) -> str:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        waiting = select.poll()  # not select(): the hook called in this process leaves descriptors open (2 a
        waiting.register(stdout, select.POLLIN)  # call: its session's journal), past select's limit of 1024
        text = stdout.readline().strip() if waiting.poll(timeout * 1000) else ""
        if not text:
            self.log.flush()
            tail = Path(self.log.name).read_text(errors="replace").strip().splitlines()[-5:]
            raise SystemExit(f"machine {self.home}: no answer within {timeout:g} s; its stderr ends: "
                             f"{' | '.join(tail) or '(nothing)'}")
        return text

    def ask(self, what: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()

    def commands(self) -> int:
        self.ask("count")
        return int(self.line(30))

    def stop(self) -> None:
        try:
            self.ask("stop")
            self.process.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(10)
        self.log.close()


class Follower:
    """Reads one machine's journal as it grows: its own events' last seq, and per other origin the highest oseq
    pulled and the ids pulled (for the exactly-once check)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.origin = session.origin
        self.reader = session.journal.reader()
        self.own: list[tuple[int, str]] = []  # (seq, id) of this machine's own events
        self.pulled: dict[str, list[tuple[int, str]]] = {}  # origin -> (oseq, id)
        self.imported: dict[str, int] = {}
        self.status_ts: dict[str, str] = {}  # origin -> the ts of its coordinator's latest status seen here

    def drain(self) -> None:
        for event in self.reader:
            if event.get("type") == "coordinator.status":
                self.status_ts[event["origin"]] = event["ts"]
            oseq = event.get("oseq")
            if isinstance(oseq, int):
                self.pulled.setdefault(event["origin"], []).append((oseq, event["id"]))
                self.imported[event["origin"]] = max(self.imported.get(event["origin"], 0), oseq)
            elif event.get("origin") == self.origin:
                self.own.append((event["seq"], event["id"]))


def agents_of(machines: int, per_machine: int) -> list[tuple[int, str]]:
    """(machine, Claude session id) of every agent, taken in turn across the machines."""
    return [(m, f"{m:02d}{a:02d}cafe-0000-4000-8000-{m:06d}{a:06d}") for a in range(per_machine)
            for m in range(machines)]


@contextlib.contextmanager
def fleet(kind: str, redis_url: str, machines: int) -> Iterator[tuple[list[Session], list[Child], float | None]]:
    """`machines` power directories in one session, each with its coordinator running in a process of its own."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    bridge = bridge_process(redis_url) if kind == "upstash" else contextlib.nullcontext(None)
    with tempfile.TemporaryDirectory(prefix="bench-repl-scale-") as scratch, bridge as bridge_url:
        environ = upstash_environ(bridge_url) if bridge_url else {"REDIS_URL": redis_url}
        homes = [os.path.join(scratch, f"m{number:02d}") for number in range(machines)]
        for home in homes:
            os.makedirs(home)
            Path(home, "config.json").write_bytes(CONFIG)
        first = start_session(homes[0], "scale simulation", sender="human")
        sessions = [first]
        for home in homes[1:]:
            sessions.append(Session(home, first.id, create=True))
            set_active_session(home, first.id)
        children: list[Child] = []
        try:
            for number, home in enumerate(homes):  # started over one heartbeat period, as a team's machines start
                time.sleep(0 if number == 0 else HEARTBEAT / machines)  # at any time: their statuses spread out
                children.append(Child(home, environ))
            for child in children:
                answer = child.line(120)
                if answer != "ready":
                    raise SystemExit(f"machine {child.home}: {answer}")
            yield sessions, children, rtt_of(bridge_url) if bridge_url else None
        finally:
            for child in children:
                child.stop()


def scale_run(kind: str, redis_url: str, machines: int, per_machine: int, tool_every: float, quick: bool,
              say: Callable[..., None]) -> dict[str, Any]:
    rounds, idle_window, busy_window = (3, 8.0, 5.0) if quick else (6, 40.0, 20.0)
    agents = agents_of(machines, per_machine)
    say(f"scale over {kind}: {machines} machines, {len(agents)} agents; starting the coordinators ...")
    started = time.perf_counter()
    with fleet(kind, redis_url, machines) as (sessions, children, rtt):
        say(f"  {machines} coordinators running after {time.perf_counter() - started:.1f} s; burst of "
            f"{rounds} tool calls per agent ...")
        followers = [Follower(session) for session in sessions]
        for follower in followers:  # settled first: every machine has every other's start (its origin known)
            follower.drain()
        joined = time.perf_counter()
        wait_converged(followers, {follower.origin: follower.own[-1][0] for follower in followers}, 180)
        settled = time.perf_counter() - joined
        burst_started = time.perf_counter()
        for _round in range(rounds):
            for machine, claude in agents:
                hook_call(sessions[machine].power_dir, claude)
        burst_ended = time.perf_counter()
        for follower in followers:
            follower.drain()
        target = {follower.origin: follower.own[-1][0] for follower in followers}
        converged = wait_converged(followers, target, 180)
        checked = exactly_once(followers, target)
        burst_events = sum(len(follower.own) for follower in followers)
        say(f"  converged {converged - burst_ended:.2f} s after the burst's last append; idle window "
            f"{idle_window:g} s ...")
        idle = per_hour(children, idle_window, lambda: None)
        say(f"  busy window {busy_window:g} s (every agent a tool call every {tool_every:g} s) ...")
        step = tool_every / len(agents)
        turn = iter(range(10**9))

        def work() -> None:
            _machine, claude = agents[next(turn) % len(agents)]
            hook_call(sessions[_machine].power_dir, claude)

        busy = per_hour(children, busy_window, work, step)
        journal_events = max(follower.reader.position.seq - 1 for follower in followers)
        spread = phase_spread([seconds_of(ts) or 0.0 for ts in followers[0].status_ts.values()], HEARTBEAT)
    expected = None
    if kind == "upstash":  # the poll schedule for the same fleet idle, heartbeats at random phases, real time
        rng = random.Random(3)
        fleet_model = [Machine(local=[(phase + n * HEARTBEAT, True) for n in range(1, int(3600 / HEARTBEAT))])
                       for phase in (rng.uniform(0, HEARTBEAT) for _ in range(machines))]
        expected = sorted(m.commands for m in simulate(fleet_model, 3600, FAST_POLL, IDLE_POLL, 0.0))
    return {"kind": kind, "machines": machines, "agents": len(agents), "rounds": rounds,
            "settle_seconds": settled, "burst_seconds": burst_ended - burst_started,
            "converge_seconds": converged - burst_ended,
            "burst_events": burst_events, "exactly_once": checked, "idle": idle, "busy": busy,
            "idle_window": idle_window, "busy_window": busy_window, "tool_every": tool_every,
            "rtt_ms": rtt * 1000 if rtt else None, "expected_idle": expected, "journal_events": journal_events,
            "status_spread": spread}


def phase_spread(times: list[float], period: float) -> float | None:
    """The shortest stretch of one `period` that holds every time's phase: 0 when the coordinators say they are
    alive at the same moments, near `period` when their statuses are spread over it."""
    phases = sorted(t % period for t in times)
    if len(phases) < 2:
        return None  # not enough statuses seen (a short run)
    gaps = [b - a for a, b in itertools.pairwise(phases)] + [phases[0] + period - phases[-1]]
    return period - max(gaps)


def wait_converged(followers: list[Follower], target: dict[str, int], timeout: float) -> float:
    """When every journal had every other machine's events up to `target` (perf_counter seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for follower in followers:
            follower.drain()
        if all(follower.imported.get(origin, 0) >= last for follower in followers
               for origin, last in target.items() if origin != follower.origin):
            return time.perf_counter()
        time.sleep(0.005)
    behind = sum(1 for follower in followers for origin, last in target.items()
                 if origin != follower.origin and follower.imported.get(origin, 0) < last)
    raise SystemExit(f"not converged within {timeout:g} s: {behind} (machine, origin) pairs behind")


def exactly_once(followers: list[Follower], target: dict[str, int]) -> bool:
    """Every machine holds each other machine's events up to `target` exactly once, by id."""
    made = {f.origin: Counter(i for seq, i in f.own if seq <= target[f.origin]) for f in followers}
    for follower in followers:
        for origin, ids in made.items():
            if origin == follower.origin:
                continue
            got = Counter(i for oseq, i in follower.pulled.get(origin, []) if oseq <= target[origin])
            if got != ids:
                raise SystemExit(f"machine {follower.origin}: events of {origin} not exactly once "
                                 f"({sum(got.values())} held, {sum(ids.values())} made)")
    return True


def per_hour(children: list[Child], window: float, work: Callable[[], None], step: float = 0.0) -> dict[str, Any]:
    """Each machine's commands over `window` seconds (calling `work` every `step` s meanwhile), per hour."""
    before = [child.commands() for child in children]
    started = time.monotonic()
    due, calls, end = started, 0, started + window
    while (now := time.monotonic()) < end:
        if step and now >= due:
            work()
            calls += 1
            due += step
        else:
            time.sleep(max(0.0, min(due if step else end, end) - now))
    seconds = time.monotonic() - started
    sent = [child.commands() - was for child, was in zip(children, before, strict=True)]
    hourly = sorted(n * 3600 / seconds for n in sent)
    return {"per_hour": hourly, "median": hourly[len(hourly) // 2], "min": hourly[0], "max": hourly[-1],
            "total": sum(hourly), "tool_calls": calls, "seconds": seconds}


def report(result: dict[str, Any], say: Callable[..., None]) -> None:
    idle, busy = result["idle"], result["busy"]
    rows = [
        ["burst", f"{result['agents']} agents x {result['rounds']} tool calls: {result['burst_events']:,} events "
                  f"on {result['machines']} machines in {result['burst_seconds']:.1f} s"],
        ["settled before the burst", f"{result['settle_seconds'] * 1000:,.0f} ms after the last coordinator "
                                     f"started (each machine reads a machine that joined at its next pull)"],
        ["converged", f"{result['converge_seconds'] * 1000:,.0f} ms after the burst's last append (every event once "
                      f"in every journal: {'yes' if result['exactly_once'] else 'NO'})"],
        ["commands per machine per hour, idle", f"median {idle['median']:,.0f} (min {idle['min']:,.0f}, max "
                                                f"{idle['max']:,.0f}); all machines {idle['total']:,.0f}"],
        ["commands per machine per hour, busy", f"median {busy['median']:,.0f} (min {busy['min']:,.0f}, max "
                                                f"{busy['max']:,.0f}); all machines {busy['total']:,.0f} "
                                                f"({busy['tool_calls']:,} tool calls in {busy['seconds']:.0f} s)"],
    ]
    if result["expected_idle"]:
        model = result["expected_idle"]
        rows.append(["  the poll schedule, idle, real time", f"median {model[len(model) // 2]:,} per machine, "
                                                             f"all machines {sum(model):,} (statuses at random "
                                                             f"phases)"])
    spread = result["status_spread"]
    rows.append(["the coordinators' statuses", "fewer than 2 seen" if spread is None else
                 f"within {spread:.1f} s of each {HEARTBEAT:g} s period"])
    if result["kind"] == "upstash":
        rows.append(["Upstash free tier (500,000 a month)",
                     f"spent in {FREE_TIER_MONTH / idle['total']:.1f} h idle, {FREE_TIER_MONTH / busy['total']:.1f} "
                     f"h busy ({HOURS_A_MONTH} h in a month)"])
    say(common.table(rows, [f"scale over {result['kind']}", "figure"]))
    say("")


def child_main(home: str, environ_json: str) -> int:
    from popkit_power.coordinator import PowerModeCoordinator

    coordinator = PowerModeCoordinator(power_dir=home, environ=orjson.loads(environ_json))
    if not coordinator.connect():
        print(f"no server: {coordinator.reason}", flush=True)
        return 1
    coordinator.start()
    if coordinator.replicator is None:
        print("the coordinator started no replicator", flush=True)
        coordinator.stop()
        return 1
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(coordinator.replicator.replicator.transport.commands_sent, flush=True)
        elif line.strip() == "stop":
            break
    coordinator.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(child_main(sys.argv[2], sys.argv[3]))
    raise SystemExit("run tools/bench_replication.py --only scale-redis (or scale-upstash)")
