"""Clocks stepped by ten minutes, both ways, on both machines, never declare a live agent lost.

Two "machines" (power directories with their own origin), each with its coordinator (and its replicator) as a real
process over one real redis-server, each under its own clock: libfaketime (Debian's `faketime` package) preloaded
into it, its offset read from a file at every call, so the test steps a machine's wall clock while it runs; the
monotonic clock is left alone, as a real step (NTP, a hand-set clock) leaves it. Machine A's agent runs (its process
checked on A), so machine B judges it only by A's silence. With every timer small (heartbeat 1 s, silence limit
4 s), each phase waits until B has heard more of A's heartbeats than the limit spans: a verdict would have come."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import two_machines_of_one_session, until

from popkit_power.hook import entry as hook
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
CONFIG = '{"heartbeat_seconds": 1, "agent_timeout_seconds": 2, "heartbeat_miss_threshold": 3}'
LIMIT_SECONDS = 4  # agent_timeout_seconds + (heartbeat_miss_threshold - 1) x heartbeat_seconds
WAIT = 90  # a deadline for a condition on a busy machine, never a measured speed

pytestmark = pytest.mark.skipif(not os.path.exists(LIBFAKETIME), reason="libfaketime is not installed (apt install "
                                                                        "faketime)")


def _statuses_from(session: Session, origin: str) -> int:
    return sum(1 for event in session.journal.reader()
               if event["type"] == "coordinator.status" and event.get("origin") == origin)


def _lost(*sessions: Session) -> list[str]:
    return [event["data"]["agent"] for session in sessions for event in session.journal.reader()
            if event["type"] == "agent.lost"]


@pytest.fixture
def machines(tmp_path: Path, redis_url: str) -> Iterator[dict[str, Any]]:
    homes, a, b = two_machines_of_one_session(tmp_path, "Clocks", CONFIG)
    claude = subprocess.Popen(["sleep", "3600"])
    payload = {"session_id": "aaaa0000", "transcript_path": "/t", "cwd": "/repo", "hook_event_name": "SessionStart",
               "source": "startup"}
    hook.run(io.BytesIO(orjson.dumps(payload)), homes[0], {"CLAUDE_PID": str(claude.pid)})
    a.publish("task.created", {"task": "t1", "title": "the lexer", "owner": "aaaa0000:main"}, sender="human")
    offsets = [tmp_path / "offset-a", tmp_path / "offset-b"]
    processes = []
    for home, offset in zip(homes, offsets, strict=True):
        offset.write_text("+0\n")
        env = {**os.environ, "REDIS_URL": redis_url, "LD_PRELOAD": LIBFAKETIME, "FAKETIME_NO_CACHE": "1",
               "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
        with open(Path(home, "stderr"), "wb") as stderr:
            processes.append(subprocess.Popen([str(SCRIPT), "--home", home, "coordinator"], stderr=stderr, env=env))
    try:
        yield {"sessions": (a, b), "offsets": offsets, "processes": processes, "homes": homes}
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
        claude.kill()
        claude.wait()


def test_clock_steps_both_ways_on_both_machines_declare_no_live_agent_lost(machines: dict[str, Any]) -> None:
    a, b = machines["sessions"]
    offset_a, offset_b = machines["offsets"]
    until(lambda: b.projection(save_snapshot=False)[0]["tasks"].get("t1", {}).get("owner") == "aaaa0000:main",
          WAIT, "machine B hears of t1 and its owner")

    def heard_through_a_limit(what: str, heartbeats: int = LIMIT_SECONDS + 2) -> None:
        """Until B has heard more of A's heartbeats than the silence limit spans, with no verdict meanwhile."""
        start = _statuses_from(b, a.origin)
        until(lambda: _statuses_from(b, a.origin) >= start + heartbeats or _lost(a, b), WAIT,
              f"B hears A's heartbeats {what}")
        assert _lost(a, b) == [], f"{what}: a live agent was declared lost"

    heard_through_a_limit("with both clocks right", 2)
    offset_a.write_text("-600\n")
    heard_through_a_limit("after A's clock stepped back 10 minutes")
    offset_b.write_text("+600\n")
    heard_through_a_limit("after B's clock stepped forward 10 minutes too")
    offset_a.write_text("+600\n")
    offset_b.write_text("-600\n")
    heard_through_a_limit("after A's clock stepped forward and B's back, 20 minutes each")
    for process in machines["processes"]:
        assert process.poll() is None
    state = b.projection(save_snapshot=False)[0]
    assert state["tasks"]["t1"]["owner"] == "aaaa0000:main" and state["tasks"]["t1"]["status"] != "orphaned"

    # The control: machine A falls silent for real (its coordinator stopped, not ended), and B, its clock still ten
    # minutes behind, declares A's agent lost once its own monotonic clock has counted out the limit.
    machines["processes"][0].send_signal(signal.SIGSTOP)
    until(lambda: _lost(b), WAIT, "B declares the agent of silent machine A lost")
    (lost,) = [event for event in b.journal.reader() if event["type"] == "agent.lost"]
    assert lost["data"]["agent"] == "aaaa0000:main"
    assert lost["data"]["evidence"]["measured"] == "monotonic"
    assert LIMIT_SECONDS < lost["data"]["evidence"]["silent_seconds"] < 600
