"""The coordinator's budgets, measured beside a reference in the same run (ratios count; the machine is shared).

    .venv/bin/python tools/bench_coordinator.py [--events 1000000] [--appends 300] [--kills 30] [--quick]

- event appended -> folded into the coordinator's projection: p50 and p99 over `--appends` appends made one by one
  from this process while the coordinator runs in a thread (budget 5 ms / 50 ms);
- an agent's Claude Code process killed -> `task.orphaned` in the journal: p50 and max over `--kills` real
  processes (budget 2 s, with every timer far longer);
- the coordinator's RSS after it has caught up with `--events` events (budget 100 MB), beside a bare Python
  process's;
- `popkit-power status` on that session, as a ratio to `python -c pass`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import append_bodies  # noqa: E402

from popkit_power.coordinator import PowerModeCoordinator  # noqa: E402
from popkit_power.keys import host_name  # noqa: E402
from popkit_power.processes import start_time  # noqa: E402
from popkit_power.session import Session, start_session  # noqa: E402

CLI = Path(sys.executable).parent / "popkit-power"
LONG = '{"agent_timeout_seconds": 86400, "heartbeat_seconds": 86400}'


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@contextlib.contextmanager
def coordinated_session() -> Iterator[tuple[Session, PowerModeCoordinator]]:
    """A fresh session, every timer a day long, and its coordinator running in a thread (stopped afterwards)."""
    with tempfile.TemporaryDirectory(prefix="bench-coord-") as scratch:
        home = os.path.join(scratch, "power")
        session = start_session(home, "benchmark", sender="human")
        Path(home, "config.json").write_text(LONG)
        coordinator = PowerModeCoordinator(power_dir=home)
        coordinator.start()
        try:
            yield session, coordinator
        finally:
            coordinator.stop()


def fold_latency(appends: int) -> tuple[float, float]:
    with coordinated_session() as (session, coordinator):
        times = []
        for number in range(appends):
            started = time.perf_counter()
            seq = session.publish("message.broadcast", {"text": f"n{number}"}, sender="human").first_seq
            if not coordinator.wait_folded(seq, 5):
                raise SystemExit(f"the coordinator did not fold seq {seq} within 5 s")
            times.append(time.perf_counter() - started)
            time.sleep(0.002)  # let it wait again, as between real events
    return percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000


def kill_latency(kills: int) -> tuple[float, float]:
    times = []
    with coordinated_session() as (session, coordinator):
        for number in range(kills):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            key = f"agent-{number}:main"
            session.publish("agent.joined", {"name": key, "pid": child.pid, "pid_start": start_time(child.pid),
                                             "host": host_name()}, sender=key)
            seq = session.publish("task.created", {"task": f"t{number}", "title": "work", "owner": key},
                                  sender="human").first_seq
            coordinator.wait_folded(seq, 5)
            time.sleep(0.01)  # its pidfd is open once the coordinator has looked at it
            reader = session.journal.reader(session.journal.end_position())
            started = time.perf_counter()
            child.send_signal(signal.SIGKILL)
            child.wait()
            while True:
                if any(event["type"] == "task.orphaned" for event in reader):
                    break
                if time.perf_counter() - started > 10:
                    raise SystemExit("no task.orphaned within 10 s")
                time.sleep(0.0005)
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, max(times) * 1000


def rss_and_status(events: int) -> tuple[float, float, float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-coord-") as scratch:
        home = os.path.join(scratch, "power")
        session = start_session(home, "benchmark", sender="human")
        # a status a second: the first one after coordinator.started comes once the whole journal is folded
        Path(home, "config.json").write_text('{"agent_timeout_seconds": 86400, "heartbeat_seconds": 1}')
        bodies = append_bodies(min(events, 100_000))
        written = 0
        while written < events:
            batch = bodies[: min(len(bodies), events - written)]
            for start in range(0, len(batch), 1000):
                session.journal.append(batch[start:start + 1000])
            written += len(batch)
        env = {**os.environ, "POPKIT_POWER_HOME": home}
        process = subprocess.Popen([str(CLI), "coordinator"], env=env, stderr=subprocess.DEVNULL)
        before = session.journal.end_position()
        deadline = time.monotonic() + 600
        reader = session.journal.reader(before)
        caught_up = False
        while not caught_up and time.monotonic() < deadline:  # its first coordinator.status follows the fold
            caught_up = any(event["type"] == "coordinator.status" for event in reader)
            time.sleep(0.2)
        rss = _rss_mb(process.pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
        time.sleep(0.5)
        bare_rss = _rss_mb(bare.pid)
        bare.kill()
        bare.wait()
        pass_times, status_times = [], []
        for _ in range(7):
            for command, times in (([sys.executable, "-c", "pass"], pass_times),
                                   ([str(CLI), "status", "--json"], status_times)):
                started = time.perf_counter()
                subprocess.run(command, env=env, capture_output=True, check=True)
                times.append(time.perf_counter() - started)
    return rss, bare_rss, statistics.median(status_times) * 1000, statistics.median(pass_times) * 1000


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="20,000 events, 50 appends, 5 kills")
    args = parser.parse_args()
    if args.quick:
        args.events, args.appends, args.kills = 20_000, 50, 5
    p50, p99 = fold_latency(args.appends)
    print(f"append -> folded by the coordinator: p50 {p50:.2f} ms, p99 {p99:.2f} ms over {args.appends} appends "
          f"(budget 5 / 50 ms)")
    k50, kmax = kill_latency(args.kills)
    print(f"agent's process killed -> task.orphaned: p50 {k50:.1f} ms, max {kmax:.1f} ms over {args.kills} kills "
          f"(budget 2000 ms)")
    rss, bare, status_ms, pass_ms = rss_and_status(args.events)
    print(f"coordinator RSS after {args.events:,} events: {rss:.1f} MB (a bare python: {bare:.1f} MB; budget 100 MB)")
    print(f"popkit-power status --json on that session: {status_ms:.1f} ms = {status_ms / pass_ms:.2f}x "
          f"python -c pass ({pass_ms:.1f} ms)")
    print(orjson.dumps({"fold_p50_ms": p50, "fold_p99_ms": p99, "kill_p50_ms": k50, "kill_max_ms": kmax,
                        "rss_mb": rss, "status_ratio": status_ms / pass_ms}).decode())


if __name__ == "__main__":
    main()
