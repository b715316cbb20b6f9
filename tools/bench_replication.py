#!/usr/bin/env python
"""Replication benchmarks (issue 9), each beside a reference or a model computed in the same run.

    .venv/bin/python tools/bench_replication.py [--only NAME[,NAME]] [--quick] [--json] [--strict] [--profile]

NAME is one of (all by default, each under ~2 minutes; `--quick` a smoke run of all in about a minute):

  throughput     the replicator pushing a journal of N events to a local Redis (push_once until nothing is left)
                 beside redis-py pipelined XADD of the same payload bytes in pipelines of the same batch size
                 (`replication_batch_events`), sides alternated; budget >= 0.5x. Also, for information: the push
                 script alone with its arguments built beforehand, the server's own time (INFO commandstats), and
                 pulling the same events into another machine's journal beside a redis-py XREAD loop. When the
                 budget is missed (or with --profile) a cProfile of one push is broken down by where the time goes.
  latency        one append on machine A -> in machine B's journal, both replicators running in their threads
                 (`start_replication`, as a coordinator starts them), over Redis (blocking reads; budget p50 <= 50
                 ms) and over the Upstash bridge (polling, default settings), the latter beside the latencies the
                 poll schedule predicts for the same gaps.
  upstash-idle   Upstash commands per idle hour (budget <= 120) and per busy hour, through the bridge, with the
                 replicator's intervals, `upstash_idle_poll_seconds` and the coordinator's heartbeat all at their
                 defaults divided by --scale (an hour takes 3600/scale s), beside the figure the poll schedule
                 gives at real scale; also two machines idle.
  scale-redis    20 machines (power directories, each with its coordinator and so its replicator, in a process
  scale-upstash  of its own) and 100 agents fed hook payloads, through one local Redis or through the bridge: time
                 to converge after a burst, and commands per machine per hour idle and busy
                 (tools/bench_replication_scale.py).

A redis-server of the benchmark's own runs on a free loopback port (tests/support.py `RedisServer`; never 6379), and
the bridge (tools/upstash_bridge.py) as a process of its own over it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
sys.path[:0] = [str(TOOLS), str(ROOT / "tests")]  # bench_common; the tests' own redis-server helper

import bench_common as common  # noqa: E402
import orjson  # noqa: E402
import redis  # noqa: E402
from bench_replication_model import Machine, simulate  # noqa: E402
from support import RedisServer  # noqa: E402

from popkit_power.config import DEFAULTS  # noqa: E402
from popkit_power.follow import JournalWatch  # noqa: E402
from popkit_power.home import set_active_session  # noqa: E402
from popkit_power.hook import entry as hook  # noqa: E402
from popkit_power.keys import COORDINATOR, RedisLayout, host_name  # noqa: E402
from popkit_power.replication import polling as polling_module  # noqa: E402
from popkit_power.replication.effects import BatchText  # noqa: E402
from popkit_power.replication.positions import body as _body  # noqa: E402
from popkit_power.replication.redis_streams import RedisStreams  # noqa: E402
from popkit_power.replication.replicator import Replicator  # noqa: E402
from popkit_power.replication.running import start_replication  # noqa: E402
from popkit_power.replication.scripts import PUSH  # noqa: E402
from popkit_power.replication.upstash_rest import UpstashRest  # noqa: E402
from popkit_power.session import Session, start_session  # noqa: E402

#: The bridge's bearer token in these runs (a made-up one; transports print it masked).
TOKEN = "AXbenchTOKEN0123456789notAsecret"
NAMES = ("throughput", "latency", "upstash-idle", "scale-redis", "scale-upstash")
LAYOUT = RedisLayout()
IDLE_POLL = float(DEFAULTS["upstash_idle_poll_seconds"][0])
HEARTBEAT = float(DEFAULTS["heartbeat_seconds"][0])
BATCH = int(DEFAULTS["replication_batch_events"][0])
FAST_POLL = polling_module.FAST_POLL


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def upstash_environ(url: str) -> dict[str, str]:
    return {"UPSTASH_REDIS_REST_URL": url, "UPSTASH_REDIS_REST_TOKEN": TOKEN}


@contextlib.contextmanager
def bridge_process(redis_url: str) -> Iterator[str]:
    """tools/upstash_bridge.py as a process of its own (as Upstash is a server of its own); its URL."""
    process = subprocess.Popen([sys.executable, str(TOOLS / "upstash_bridge.py"), "--redis", redis_url, "--token",
                                TOKEN], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://"):
            raise SystemExit(f"the Upstash bridge did not start (it printed {url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def two_machines(scratch: str, objective: str = "replication benchmark") -> tuple[Session, Session]:
    """Machine A opens a session; machine B works in it (`join`): two power directories, one session id."""
    a = start_session(os.path.join(scratch, "a"), objective, sender="human")
    home_b = os.path.join(scratch, "b")
    b = Session(home_b, a.id, create=True)
    set_active_session(home_b, a.id)
    return a, b


def hook_call(home: str, claude: str, tool: str = "Edit") -> None:
    """What Claude Code's PostToolUse hook hands the hook for one tool call of agent `claude` (in this process)."""
    payload = {"session_id": claude, "transcript_path": "/t", "cwd": "/repo", "hook_event_name": "PostToolUse",
               "tool_name": tool, "tool_input": {"file_path": f"/repo/src/{claude[:4]}.py"}, "tool_response": {}}
    hook.run(_Stdin(orjson.dumps(payload)), home, {})


class _Stdin:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, *_size: int) -> bytes:
        data, self.data = self.data, b""
        return data


# -- 1. throughput ------------------------------------------------------------------------------------------------

def filled_session(home: str, count: int) -> Session:
    """A session whose journal holds `count` hook-like events (bench_common's mix), appended one by one."""
    session = start_session(home, "replication benchmark", sender="human")
    for body in common.append_bodies(count):
        event = orjson.loads(body)
        event["session"], event["origin"] = session.id, session.origin
        session.append_events([event])
    return session


def script_args(local: list[dict[str, Any]]) -> list[list[Any]]:
    """The push script's arguments per batch, built as the replicator builds them (effects.BatchText)."""
    cap = DEFAULTS["redis_channel_maxlen"][0]
    batches = []
    for start in range(0, len(local), BATCH):
        text = BatchText(LAYOUT)
        for event in local[start:start + BATCH]:
            text.add(event, _body(event))
        batches.append(text.args(local[start - 1]["seq"] if start else 0, str(local[0]["origin"]), cap))
    return batches


def without_channel_entries(source: str) -> str:
    """The push script without each new event's entry in its channel stream (for information: what it costs)."""
    start, end = source.index("-- the channel stream entry"), source.index("-- (end of the channel stream entry)")
    return source[:start] + source[end:]


def server_usec(client: redis.Redis, commands: tuple[str, ...]) -> float:
    """Microseconds the server spent in `commands` since the last CONFIG RESETSTAT (INFO commandstats). Only the
    commands a side sends itself: the commands a script runs are counted in the script's time and again under
    their own names."""
    stats = client.info("commandstats")
    return sum(float(stats.get(f"cmdstat_{name}", {}).get("usec", 0)) for name in commands)


def push_all(session: Session, url: str) -> tuple[float, int]:
    """Seconds for a fresh replicator to push everything (positions found first, untimed), and the events pushed."""
    transport = RedisStreams(url)
    replicator = Replicator(session, transport)
    replicator.resume()
    started = time.perf_counter()
    pushed = 0
    while moved := replicator.push_once():
        pushed += moved
    seconds = time.perf_counter() - started
    transport.close()
    return seconds, pushed


def throughput(url: str, count: int, reps: int, profile: bool, say: Callable[..., None]) -> dict[str, Any]:
    client = redis.Redis.from_url(url, protocol=2)
    with tempfile.TemporaryDirectory(prefix="bench-repl-") as scratch:
        session = filled_session(os.path.join(scratch, "a"), count)
        local = [event for event in session.journal.reader() if event["origin"] == session.origin]
        bodies = [(event["seq"], _body(event)) for event in local]
        stream = LAYOUT.origin_stream(session.id, session.origin)
        scripted = script_args(local)
        payload = sum(len(body.encode()) for _seq, body in bodies)
        say(f"throughput: {len(local):,} events, {payload / len(local):.0f} bytes of body each, batches of {BATCH}; "
            f"medians of {reps} reps, sides alternated")

        def replicator_side() -> tuple[float, int]:
            return push_all(session, url)

        def xadd_side() -> tuple[float, int]:
            started = time.perf_counter()
            for start in range(0, len(bodies), BATCH):
                pipe = client.pipeline(transaction=False)
                for seq, body in bodies[start:start + BATCH]:
                    pipe.xadd(stream, {"e": body}, id=f"{seq}-0")
                pipe.execute()
            return time.perf_counter() - started, len(bodies)

        def script_side(source: str) -> Callable[[], tuple[float, int]]:
            def side() -> tuple[float, int]:
                sha = client.script_load(source)
                started = time.perf_counter()
                for args in scripted:
                    client.evalsha(sha, 1, stream, *args)
                return time.perf_counter() - started, len(bodies)

            return side

        sides = {"replicator": replicator_side, "xadd": xadd_side, "script": script_side(PUSH),
                 "script_no_channel": script_side(without_channel_entries(PUSH))}
        seconds: dict[str, list[float]] = {name: [] for name in sides}
        usec: dict[str, list[float]] = {name: [] for name in sides}
        memory: dict[str, list[float]] = {name: [] for name in sides}
        for rep in range(reps):
            for name in list(sides) if rep % 2 == 0 else list(sides)[::-1]:
                client.flushall()
                client.config_resetstat()
                empty = float(client.info("memory")["used_memory"])
                took, done = sides[name]()
                if done != len(local):
                    raise SystemExit(f"{name} wrote {done} events, not {len(local)}")
                memory[name].append((float(client.info("memory")["used_memory"]) - empty) / done)
                usec[name].append(server_usec(client, ("xadd",) if name == "xadd" else ("evalsha", "eval")) / done)
                seconds[name].append(took)
        pull = pull_rates(session, url, client, stream, reps, scratch)
        rates = {name: len(local) / statistics.median(values) for name, values in seconds.items()}
        paired = [x / r for r, x in zip(seconds["replicator"], seconds["xadd"], strict=True)]
        result = {"events": len(local), "body_bytes": payload / len(local), "rates": rates,
                  "ratio": rates["replicator"] / rates["xadd"], "paired_ratio": statistics.median(paired),
                  "paired_per_rep": paired,
                  "server_us_per_event": {name: statistics.median(values) for name, values in usec.items()},
                  "server_bytes_per_event": {name: statistics.median(values) for name, values in memory.items()},
                  "pull": pull}
        if profile or result["ratio"] < 0.5:
            result["profile"] = push_profile(session, url, client)
    client.close()
    return result


def pull_rates(source: Session, url: str, client: redis.Redis, stream: str, reps: int,
               scratch: str) -> dict[str, Any]:
    """Machine B pulling everything machine A pushed into its own (empty) journal, beside a redis-py XREAD loop
    over the same stream in batches of the same size (information: no budget)."""
    client.flushall()
    push_all(source, url)
    seconds: dict[str, list[float]] = {"replicator": [], "xread": []}
    count = 0
    for rep in range(reps):
        for name in ("replicator", "xread") if rep % 2 == 0 else ("xread", "replicator"):
            started = time.perf_counter()
            if name == "replicator":
                home = os.path.join(scratch, f"b{rep}")
                target = Session(home, source.id, create=True)
                transport = RedisStreams(url)
                replicator = Replicator(target, transport)
                count = 0
                while moved := replicator.pull_once():
                    count += moved
                transport.close()
            else:
                last, read = "0-0", 0
                while found := client.xread({stream: last}, count=BATCH):
                    entries = found[0][1]
                    read += len(entries)
                    last = entries[-1][0]
            seconds[name].append(time.perf_counter() - started)
    local = sum(1 for event in source.journal.reader() if event["origin"] == source.origin)
    if count != local:
        raise SystemExit(f"the pull appended {count} events, not {local}")
    rates = {name: count / statistics.median(values) for name, values in seconds.items()}
    return {"rates": rates, "ratio": rates["replicator"] / rates["xread"]}


#: Where a push's time goes: each profiled function's own time by the part of the work it belongs to (a built-in's
#: time goes to the part of the function that called it).
GROUPS = (
    ("journal reader (framing, CRC, orjson.loads)", ("popkit_power/journal/reader.py",
                                                      "popkit_power/journal/records.py",
                                                      "popkit_power/journal/writer.py", "popkit_power/_fs.py",
                                                      "popkit_power/_lock.py")),
    ("event -> body and effects (codec.dumps, effects.py)", ("popkit_power/journal/codec.py",
                                                              "popkit_power/replication/effects.py", "_body")),
    ("transport: argument checks, pipeline set-up", ("popkit_power/replication/transport.py",
                                                      "popkit_power/replication/redis_streams.py")),
    ("redis-py: packing the command (RESP)", ("redis/connection.py", "redis/_parsers/encoders.py")),
    ("redis-py: the rest (pipeline, reply parsing)", ("site-packages/redis/",)),
    ("socket: waiting for the server, sending", ("recv", "sendall")),
    ("replicator: push_once's own loop", ("popkit_power/replication/replicator.py",)),
)


def group_of(function: tuple[str, int, str]) -> str | None:
    filename, _line, name = function
    if filename == "~":  # a built-in
        return next((label for label, marks in GROUPS if label.startswith("socket") and any(
            mark in name for mark in marks)), None)
    for label, marks in GROUPS:
        if any(mark in filename or mark == name for mark in marks):
            return label
    return "other"


def push_profile(session: Session, url: str, client: redis.Redis) -> dict[str, Any]:
    """cProfile of one whole push (a fresh server), own time grouped by GROUPS, and the top functions."""
    client.flushall()
    transport = RedisStreams(url)
    replicator = Replicator(session, transport)
    replicator.resume()
    profiler = cProfile.Profile()
    profiler.enable()
    while replicator.push_once():
        pass
    profiler.disable()
    transport.close()
    stats: Any = pstats.Stats(profiler).stats
    totals: dict[str, float] = {}
    for function, (_cc, _nc, own, _cum, callers) in stats.items():
        label = group_of(function)
        if label is None:  # a built-in: its time goes to its callers' parts
            caller_total = sum(entry[2] for entry in callers.values()) or 1.0
            for caller, entry in callers.items():
                part = group_of(caller) or "other"
                totals[part] = totals.get(part, 0.0) + own * entry[2] / caller_total
        else:
            totals[label] = totals.get(label, 0.0) + own
    whole = sum(totals.values())
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:12]
    return {"seconds": whole, "groups": dict(sorted(totals.items(), key=lambda item: -item[1])),
            "top": [(f"{Path(f[0]).name}:{f[1]}({f[2]})", round(v[2], 3), v[1]) for f, v in top]}


# -- 2. latency -----------------------------------------------------------------------------------------------------

def latency(environ: dict[str, str], gaps: list[float], timeout: float) -> dict[str, Any]:
    """Append one broadcast on A, wait for it in B's journal; once per gap (slept before each append), after one
    untimed warm-up. `appended_at`: when each was appended (the warm-up first), from the replicators' start."""
    with tempfile.TemporaryDirectory(prefix="bench-repl-lat-") as scratch:
        a, b = two_machines(scratch)
        origin = time.perf_counter()  # the model's time 0: both replicators start polling here
        running = [start_replication(Session(a.power_dir, a.id), environ),
                   start_replication(Session(b.power_dir, b.id), environ)]
        watch = JournalWatch(b.journal.directory)
        reader = b.journal.reader()
        try:
            def arrives(text: str) -> float:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    for event in reader:
                        if event.get("data", {}).get("text") == text:
                            return time.perf_counter()
                    watch.wait(0.2)
                raise SystemExit(f"{text!r} did not reach machine B within {timeout:g} s")

            appended_at = [time.perf_counter() - origin]
            a.publish("message.broadcast", {"text": "warm-up"}, sender="human")
            arrives("warm-up")
            times = []
            for number, gap in enumerate(gaps):
                time.sleep(gap)
                started = time.perf_counter()
                a.publish("message.broadcast", {"text": f"n{number}"}, sender="human")
                appended_at.append(started - origin)
                times.append(arrives(f"n{number}") - started)
            commands = [one.replicator.transport.commands_sent for one in running]
        finally:
            for one in running:
                one.stop()
            watch.close()
    return {"seconds": times, "appended_at": appended_at, "commands": commands}


def rtt_of(url: str) -> float:
    """The median round trip of one PING through the Upstash bridge (seconds)."""
    transport = UpstashRest(url, TOKEN)
    times = []
    for _ in range(30):
        started = time.perf_counter()
        transport.execute([["PING"]], timeout=5)
        times.append(time.perf_counter() - started)
    transport.close()
    return statistics.median(times)


def latency_bench(url: str, quick: bool, say: Callable[..., None]) -> dict[str, Any]:
    rng = random.Random(7)
    redis_gaps = [rng.uniform(0.005, 0.03) for _ in range(40 if quick else 300)]
    say(f"latency over Redis: {len(redis_gaps)} appends ...")
    over_redis = latency({"REDIS_URL": url}, redis_gaps, 10)
    upstash_gaps = [rng.uniform(0.1, 1.0) if quick else rng.uniform(0.2, 3.0) for _ in range(5 if quick else 30)]
    with bridge_process(url) as bridge_url:
        rtt = rtt_of(bridge_url)
        say(f"latency over the Upstash bridge: {len(upstash_gaps)} appends, gaps {min(upstash_gaps):.1f}-"
            f"{max(upstash_gaps):.1f} s ...")
        over_upstash = latency(upstash_environ(bridge_url), upstash_gaps, IDLE_POLL + 15)
    # the poll schedule's prediction for the same appends: B polls (fast, then doubling) and pulls what A pushed
    # when it woke (one round trip after the append)
    appended = over_upstash["appended_at"]
    horizon = appended[-1] + IDLE_POLL + 5
    model = simulate([Machine(), Machine(remote=[t + rtt for t in appended])], horizon, FAST_POLL, IDLE_POLL, rtt)
    expected = [pulled - t for pulled, t in zip(model[1].pulled_at[1:], appended[1:], strict=True)
                if pulled is not None]
    return {
        "redis": summary_of(over_redis["seconds"]),
        "upstash": {**summary_of(over_upstash["seconds"]), "rtt_ms": rtt * 1000,
                    "expected": summary_of(expected), "gaps": [min(upstash_gaps), max(upstash_gaps)]},
    }


def summary_of(seconds: list[float]) -> dict[str, Any]:
    return {"n": len(seconds), "p50_ms": percentile(seconds, 0.5) * 1000, "p99_ms": percentile(seconds, 0.99) * 1000,
            "max_ms": max(seconds) * 1000}


# -- 3. Upstash commands per hour ----------------------------------------------------------------------------------

class Heartbeat:
    """What the coordinator appends every `heartbeat_seconds`: its `coordinator.status` (a quiet event for the
    Upstash replicator), here every `period` s in a thread."""

    def __init__(self, session: Session, period: float) -> None:
        self.session, self.period = session, period
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def start(self) -> Heartbeat:
        self.session.publish("coordinator.started", {"pid": os.getpid(), "host": host_name()}, sender=COORDINATOR)
        self._thread.start()
        return self

    def _beat(self) -> None:
        due = time.monotonic() + self.period
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self.session.publish("coordinator.status", {"agents": 0, "open_tasks": 0, "pid": os.getpid(),
                                                        "host": host_name()}, sender=COORDINATOR)
            self.times.append(time.monotonic())
            due += self.period

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class Agents:
    """`count` agents on one machine, each making a tool call (through the hook) every `period` s, staggered."""

    def __init__(self, home: str, count: int, period: float) -> None:
        self.home, self.count, self.period = home, count, period
        self.calls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, daemon=True)

    def start(self) -> Agents:
        self._thread.start()
        return self

    def _work(self) -> None:
        step = self.period / self.count
        due, agent = time.monotonic(), 0
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            hook_call(self.home, f"{agent:04d}beef-0000-4000-8000-000000000000")
            self.calls += 1
            agent = (agent + 1) % self.count
            due += step

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def commands_per_hour(bridge_url: str, scale: float, machines: int, agents: int, agent_period: float,
                      say: Callable[..., None]) -> dict[str, Any]:
    """Commands each machine's replicator sends through the bridge in one scaled hour."""
    hour = 3600 / scale
    with tempfile.TemporaryDirectory(prefix="bench-repl-idle-") as scratch:
        sessions = list(two_machines(scratch))[:machines]
        replicators, beats = [], []
        for session in sessions:
            replicator = Replicator(Session(session.power_dir, session.id), UpstashRest(bridge_url, TOKEN))
            replicator.idle_poll = IDLE_POLL / scale
            replicators.append(replicator)
        polling_module.FAST_POLL = FAST_POLL / scale  # read by poll_loop at each round
        try:
            for session, replicator in zip(sessions, replicators, strict=True):
                beats.append(Heartbeat(session, HEARTBEAT / scale).start())
                replicator.start()
            work = Agents(sessions[0].power_dir, agents, agent_period / scale).start() if agents else None
            time.sleep(hour * 0.05)  # the start (positions, the first pushes) is not part of the hour
            before = [replicator.transport.commands_sent for replicator in replicators]
            calls_before = work.calls if work else 0
            time.sleep(hour)
            sent = [replicator.transport.commands_sent - was for replicator, was in zip(replicators, before,
                                                                                           strict=True)]
            calls = (work.calls - calls_before) if work else 0
            if work:
                work.stop()
        finally:
            for beat in beats:
                beat.stop()
            for replicator in replicators:
                replicator.stop()
                replicator.transport.close()
            polling_module.FAST_POLL = FAST_POLL
    return {"per_machine": sent, "tool_calls": calls, "intended_calls": round(agents * 3600 / agent_period)}


def upstash_hour(url: str, scale: float, agents: int, agent_period: float, say: Callable[..., None]) -> dict[str, Any]:
    with bridge_process(url) as bridge_url:
        rtt = rtt_of(bridge_url)
        say(f"upstash commands per hour at {scale:g}x (an hour in {3600 / scale:.1f} s; round trip "
            f"{rtt * 1000:.2f} ms) ...")
        idle = commands_per_hour(bridge_url, scale, 1, 0, agent_period, say)
        busy = commands_per_hour(bridge_url, scale, 1, agents, agent_period, say)
        pair = commands_per_hour(bridge_url, scale, 2, 0, agent_period, say)
    hour = 3600.0

    def beats(offset: float) -> list[tuple[float, bool]]:
        return [(offset + n * HEARTBEAT, True) for n in range(1, int(hour / HEARTBEAT) + 1)]

    calls = [(n * agent_period / agents, False) for n in range(int(hour * agents / agent_period))] if agents else []
    expected = {
        "idle": simulate([Machine(local=beats(0))], hour, FAST_POLL, IDLE_POLL, 0.0)[0].commands,
        "busy": simulate([Machine(local=sorted(beats(0) + calls))], hour, FAST_POLL, IDLE_POLL, 0.0)[0].commands,
        "two_idle": [m.commands for m in simulate([Machine(local=beats(0)), Machine(local=beats(7.3))], hour,
                                                  FAST_POLL, IDLE_POLL, 0.0)],
        # the same schedule at the run's scale with its round trip: what the scaled run should have counted
        "idle_at_scale": simulate([Machine(local=[(t / scale, q) for t, q in beats(0)])], hour / scale,
                                  FAST_POLL / scale, IDLE_POLL / scale, rtt)[0].commands,
        # if nothing but another machine's event counted as movement (statuses ride along, pushing them does not
        # shorten the interval): the interval reaches upstash_idle_poll_seconds
        "intended": int(hour / IDLE_POLL) * 3,
    }
    return {"scale": scale, "rtt_ms": rtt * 1000, "idle": idle["per_machine"][0], "busy": busy["per_machine"][0],
            "busy_tool_calls": busy["tool_calls"], "busy_intended_calls": busy["intended_calls"],
            "two_idle": pair["per_machine"], "expected": expected, "agents": agents, "agent_period": agent_period}


# -- main ----------------------------------------------------------------------------------------------------------

def report_throughput(result: dict[str, Any], rows: list[list[str]], budgets: dict[str, bool]) -> list[str]:
    rates, ratio, us = result["rates"], result["ratio"], result["server_us_per_event"]
    passed = ratio >= 0.5
    budgets["push >= 0.5x redis-py pipelined XADD"] = passed
    rows += [
        ["push: replicator, journal -> Redis", common.rate(rates["replicator"]),
         f"{ratio:.2f}x (paired {result['paired_ratio']:.2f}x)", ">= 0.5x", "PASS" if passed else "FAIL"],
        ["redis-py pipelined XADD, same bodies", common.rate(rates["xadd"]), "1.00x", "-", "-"],
        ["push script alone, arguments pre-built (info)", common.rate(rates["script"]),
         f"{rates['script'] / rates['xadd']:.2f}x", "-", "-"],
        ["  the same without the channel-stream copy (info)", common.rate(rates["script_no_channel"]),
         f"{rates['script_no_channel'] / rates['xadd']:.2f}x", "-", "-"],
        ["pull: Redis -> journal (info)", common.rate(result["pull"]["rates"]["replicator"]),
         f"{result['pull']['ratio']:.2f}x of redis-py XREAD ({common.rate(result['pull']['rates']['xread'])})", "-",
         "-"],
    ]
    size = result["server_bytes_per_event"]
    lines = [f"server time per event (INFO commandstats): replicator {us['replicator']:.1f} us, push script "
             f"{us['script']:.1f} us (without the channel copy {us['script_no_channel']:.1f} us), XADD "
             f"{us['xadd']:.1f} us",
             f"server memory per event (INFO used_memory): replicator {size['replicator']:.0f} bytes, XADD "
             f"{size['xadd']:.0f} bytes (the channel streams capped near "
             f"{DEFAULTS['redis_channel_maxlen'][0]:,} entries each)",
             "paired ratios per rep: " + " ".join(f"{value:.2f}" for value in result["paired_per_rep"])]
    profile = result.get("profile")
    if profile:
        lines.append(f"where one push's time goes (cProfile, own time, {profile['seconds']:.2f} s with the "
                     f"profiler's overhead):")
        lines += [f"  {share / profile['seconds']:5.1%}  {label}" for label, share in profile["groups"].items()]
        lines.append("  top functions (own s, calls): " + "; ".join(f"{name} {own} {calls}"
                                                                  for name, own, calls in profile["top"][:8]))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(NAMES), help=f"comma-separated, of: {', '.join(NAMES)}")
    parser.add_argument("--events", type=int, default=20_000, help="throughput: events in the journal (20,000)")
    parser.add_argument("--reps", type=int, default=5, help="throughput: repetitions (5)")
    parser.add_argument("--scale", type=float, default=100.0, help="upstash-idle: time runs this much faster (100)")
    parser.add_argument("--agents", type=int, default=5, help="upstash-idle busy: agents on the machine (5)")
    parser.add_argument("--tool-every", type=float, default=6.0,
                        help="upstash-idle busy, and the scale runs' busy windows: seconds between one agent's tool "
                             "calls (6)")
    parser.add_argument("--machines", type=int, default=20, help="scale: machines (20)")
    parser.add_argument("--per-machine", type=int, default=5, help="scale: agents per machine (5)")
    parser.add_argument("--profile", action="store_true", help="throughput: profile a push even when it passes")
    parser.add_argument("--quick", action="store_true", help="smoke run: small and short everything")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is not met")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in NAMES]
    if unknown:
        parser.error(f"--only: unknown benchmark {', '.join(unknown)} (known: {', '.join(NAMES)})")
    for name, least in (("events", 1), ("reps", 1), ("agents", 1), ("machines", 2), ("per_machine", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}, not {getattr(args, name)}")
    if not args.scale > 0 or not args.tool_every > 0:
        parser.error("--scale and --tool-every must be positive numbers of seconds")
    if args.quick:
        args.events, args.reps, args.scale = 2_000, 2, 1000.0
        args.machines, args.per_machine = 4, 2
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    info = common.machine()
    say(f"machine: {info['nproc']} CPUs ({info.get('cpu', '?')}), Python {info['python']}, redis-py "
        f"{redis.__version__} (hiredis: {'yes' if _hiredis() else 'no'}), {_redis_version()}")
    say(f"package: {info['package']} ({info['version']})")
    results: dict[str, Any] = {"machine": info}
    budgets: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="bench-repl-redis-") as redis_dir:
        server = RedisServer(redis_dir).start()
        try:
            results.update(run_all(only, args, server.url, budgets, say))
        finally:
            server.stop()
    results["budgets"] = budgets
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    return 1 if args.strict and not all(budgets.values()) else 0


def run_all(only: list[str], args: argparse.Namespace, url: str, budgets: dict[str, bool],
            say: Callable[..., None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if "throughput" in only:
        result = results["throughput"] = throughput(url, args.events, args.reps, args.profile, say)
        rows: list[list[str]] = []
        lines = report_throughput(result, rows, budgets)
        say(common.table(rows, ["measurement", "events/s", "vs redis-py", "budget", "result"]))
        for line in lines:
            say(line)
        say("")
    if "latency" in only:
        result = results["latency"] = latency_bench(url, args.quick, say)
        over_redis, over_upstash = result["redis"], result["upstash"]
        budgets["append -> other machine's journal over Redis, p50 <= 50 ms"] = over_redis["p50_ms"] <= 50
        expected = over_upstash["expected"]
        say(common.table([
            ["Redis, blocking reads", str(over_redis["n"]), f"{over_redis['p50_ms']:.1f} ms",
             f"{over_redis['p99_ms']:.1f} ms", f"{over_redis['max_ms']:.1f} ms", "p50 <= 50 ms",
             "PASS" if over_redis["p50_ms"] <= 50 else "FAIL"],
            [f"Upstash bridge, polling (gaps {over_upstash['gaps'][0]:.1f}-{over_upstash['gaps'][1]:.1f} s)",
             str(over_upstash["n"]), f"{over_upstash['p50_ms']:.0f} ms", f"{over_upstash['p99_ms']:.0f} ms",
             f"{over_upstash['max_ms']:.0f} ms", "-", "-"],
            ["  the poll schedule's prediction, same gaps", str(expected["n"]), f"{expected['p50_ms']:.0f} ms",
             f"{expected['p99_ms']:.0f} ms", f"{expected['max_ms']:.0f} ms", "-", "-"],
        ], ["append on A -> in B's journal", "n", "p50", "p99", "max", "budget", "result"]))
        say(f"(bridge round trip {over_upstash['rtt_ms']:.2f} ms; after {IDLE_POLL:g} s of quiet a poll comes "
            f"at most every {IDLE_POLL:g} s, the worst case)\n")
    if "upstash-idle" in only:
        result = results["upstash_idle"] = upstash_hour(url, args.scale, args.agents, args.tool_every, say)
        report_upstash(result, budgets, say)
    for name in ("scale-redis", "scale-upstash"):
        if name in only:
            from bench_replication_scale import report, scale_run

            result = results[name] = scale_run(name.split("-")[1], url, args.machines, args.per_machine,
                                               args.tool_every, args.quick, say)
            report(result, say)
    return results


def report_upstash(result: dict[str, Any], budgets: dict[str, bool], say: Callable[..., None]) -> None:
    expected = result["expected"]
    idle_ok = result["idle"] <= 120 and expected["idle"] <= 120
    budgets["Upstash commands per idle hour <= 120"] = idle_ok
    say(common.table([
        ["idle: one machine, its coordinator's heartbeat", f"{result['idle']:,}", f"{expected['idle']:,}",
         f"{expected['idle_at_scale']:,}", "<= 120", "PASS" if idle_ok else "FAIL"],
        [f"busy: {result['agents']} agents, a tool call each every {result['agent_period']:g} s",
         f"{result['busy']:,}", f"{expected['busy']:,}", "-", "-", "-"],
        ["idle: two machines, each (info)", " / ".join(f"{n:,}" for n in result["two_idle"]),
         " / ".join(f"{n:,}" for n in expected["two_idle"]), "-", "-", "-"],
    ], ["Upstash commands per hour", f"measured at {result['scale']:g}x", "schedule, real time",
        f"schedule at {result['scale']:g}x", "budget", "result"]))
    say(f"(bridge round trip {result['rtt_ms']:.2f} ms; busy hour: {result['busy_tool_calls']:,} tool calls; "
        f"if pushing the coordinator's own status did not count as movement, an idle hour would be "
        f"{expected['intended']} commands: {3600 / IDLE_POLL:.0f} polls of SMEMBERS + XREAD, each with one push of "
        f"the statuses)")
    if result["busy_tool_calls"] < 0.9 * result["busy_intended_calls"]:
        say(f"WARNING: the agents made {result['busy_tool_calls']:,} of {result['busy_intended_calls']:,} tool calls "
            f"at {result['scale']:g}x (a hook call takes longer than the scaled gap): the busy figure undercounts")
    say("")


def _hiredis() -> bool:
    from redis.utils import HIREDIS_AVAILABLE

    return bool(HIREDIS_AVAILABLE)


def _redis_version() -> str:
    found = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return next((word.replace("v=", "redis-server ") for word in found if word.startswith("v=")), "redis-server ?")


if __name__ == "__main__":
    sys.exit(main())
