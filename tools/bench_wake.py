"""Waking an idle agent: news appended -> the idle agent's next model request, p50 and p99, with the real Claude Code
in an interactive session under tmux (tests/e2e/interactive.py) against the scripted model server.

    .venv/bin/python tools/bench_wake.py [--rounds 40] [--json]

Each round: the agent sits idle with its waiter up; a direct message is appended to the journal (in this process,
the clock read just before the append); the time until the model server receives the request carrying it is
recorded; the woken turn ends (the model answers in text) and the next round waits until a new waiter has claimed
the agent. The reference, measured in the same session and interleaved round by round: a prompt typed into the
idle session (tmux send-keys) to its model request, which is Claude Code's own turn start with no hook in between.
Budget (issue 11): p50 <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from claude import ensure_claude  # noqa: E402
from interactive import InteractiveClaude  # noqa: E402
from model_server import ModelServer, Reply, is_side_query, text, tool_results, tool_use  # noqa: E402

from popkit_power.home import safe_name  # noqa: E402
from popkit_power.hook.wake import read_claim  # noqa: E402
from popkit_power.session import Session, start_session  # noqa: E402

VENV_BIN = Path(sys.executable).parent
TIMEOUT = 60.0


class Script:
    """The scripted model: one tool call, then text; it notes when each request carrying a round's token arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}

    def __call__(self, request: dict[str, Any]) -> Reply:
        now = time.monotonic()
        last = json.dumps(request.get("messages", [])[-1:])
        for marker in ("BENCH-WAKE-", "BENCH-TYPED-"):
            found = last.find(marker)
            if found >= 0:
                self.arrived.setdefault(last[found:found + len(marker) + 4], now)
        if is_side_query(request) or tool_results(request):
            return Reply([text("idle now")])
        return Reply([tool_use("Bash", {"command": "echo first", "description": "first"})])


def wait_for(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.001)
    raise SystemExit(f"not within {TIMEOUT} s: {what}")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-wake-"))
    home = root / "power"
    session = start_session(str(home), "bench wake", sender="human")
    script = Script()
    arrived = script.arrived
    server = ModelServer(script).start()
    work = root / "work"
    work.mkdir()
    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "POPKIT_POWER_HOME": str(home)}
    claude = InteractiveClaude(ensure_claude(), "BENCH agent", cwd=work, base_url=server.base_url,
                               state_dir=root / "claude", plugin_dir=ROOT, env=env)
    woken: list[float] = []
    typed: list[float] = []
    try:
        agent = wait_for(lambda: next((e["from"] for e in Session(str(home), session.id).journal.reader()
                                       if e["type"] == "agent.idle"), None), "the first turn ends")
        claim = str(Path(session.dir, "agents", safe_name(agent) + ".waiter"))
        waiter = wait_for(lambda: read_claim(claim), "the first waiter")
        for number in range(args.rounds):
            token = f"BENCH-WAKE-{number:04d}"
            started = time.monotonic()
            session.publish("message.direct", {"text": token}, sender="human", to=agent)
            wait_for(lambda: token in arrived, f"the request carrying {token}")  # noqa: B023
            woken.append(arrived[token] - started)
            waiter = wait_for(lambda: (read_claim(claim) or waiter) != waiter and read_claim(claim),  # noqa: B023
                              "a new waiter after the woken turn")
            token = f"BENCH-TYPED-{number:04d}"
            started = time.monotonic()
            subprocess.run(["tmux", "-L", claude.socket, "send-keys", "-t", "agent", token, "Enter"], check=True)
            wait_for(lambda: token in arrived, f"the request carrying {token}")  # noqa: B023
            typed.append(arrived[token] - started)
            waiter = wait_for(lambda: (read_claim(claim) or waiter) != waiter and read_claim(claim),  # noqa: B023
                              "a new waiter after the typed turn")
    finally:
        claude.stop()
        server.stop()
    result = {"rounds": args.rounds,
              "woken_p50_ms": statistics.median(woken) * 1000, "woken_p99_ms": percentile(woken, 0.99) * 1000,
              "typed_p50_ms": statistics.median(typed) * 1000, "typed_p99_ms": percentile(typed, 0.99) * 1000}
    result["ratio_p50"] = result["woken_p50_ms"] / result["typed_p50_ms"]
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.rounds} rounds, Claude Code {ensure_claude().parent.parent.parent.name}")
        print("| path | p50 | p99 |\n|---|---|---|")
        print(f"| news appended -> idle agent's model request (waiter) | {result['woken_p50_ms']:.0f} ms | "
              f"{result['woken_p99_ms']:.0f} ms |")
        print(f"| prompt typed -> model request (reference) | {result['typed_p50_ms']:.0f} ms | "
              f"{result['typed_p99_ms']:.0f} ms |")
        print(f"ratio at p50: {result['ratio_p50']:.2f}; budget p50 <= 1000 ms: "
              f"{'met' if result['woken_p50_ms'] <= 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
