"""The guardrails' PreToolUse hook, whole process, beside `python -c pass` in the same run.

    .venv/bin/python tools/bench_guard.py [--runs 40] [--json] [--quick] [--compare /path/to/other/checkout]

Cases, interleaved run by run (the machine is shared: the ratios count, not the absolute times), each a real
`popkit-power-hook` process fed a real PreToolUse payload with Power Mode on:
- `no guardrail`: config.json sets none (the hook registered anyway): config read, nothing else;
- `no match`: guardrails set, a Bash line that matches none (parsed, matched, nothing touched on disk);
- `no match, long line`: the same with a 40-command line full of quotes and substitutions;
- `waiting`: a guarded call whose request waits for the human (the request and its answer looked for);
- `granted`: a guarded call the human granted (both journal records read again and checked).
With --compare, the same hook cases also run with another copy of the package first on PYTHONPATH (e.g. main's, from
`git archive main popkit_power | tar -x -C /tmp/main`), interleaved with these in the same run.
Bytecode is compiled first, as a pip install does; this environment sets PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from popkit_power.session import start_session  # noqa: E402

HOOK = Path(sys.executable).parent / "popkit-power-hook"
CLAUDE_SESSION = "5f0c7c1e-2b7d-4a63-9c55-bench0000001"
GUARDRAILS = {"guardrail_commands": ["git push*", "rm -rf *", "terraform apply*", "npm publish*"],
              "guardrail_paths": ["*.env", "migrations/*"]}
LONG_LINE = "; ".join(f"cd src{i} && FOO=\"$(date +%s)\" python -m pytest -q 'tests/test_{i}.py' | tee -a log{i}.txt"
                      for i in range(40))


def payload(command: str) -> bytes:
    return orjson.dumps({
        "session_id": CLAUDE_SESSION, "transcript_path": f"/root/.claude/projects/x/{CLAUDE_SESSION}.jsonl",
        "cwd": "/work/project", "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": command, "description": "run it"}, "tool_use_id": "toolu_00000001",
    })


def home_with(directory: Path, config: dict[str, object] | None) -> str:
    directory.mkdir(parents=True)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    start_session(str(directory), "Bench", sender="human")
    return str(directory)


def _grant(home: str) -> None:
    """The human grants the request the hook raised in `home`."""
    from popkit_power.home import active_session
    from popkit_power.session import Session

    session = Session(home, active_session(home) or "")
    request = next(event for event in session.journal.reader() if event["type"] == "approval.requested")
    session.publish("approval.granted", {"request": request["data"]["request"]}, sender="human")


def measure(command: list[str], stdin: bytes, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, input=stdin, env=env, capture_output=True, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0 or done.stderr:
        raise SystemExit(f"{command} failed: {done.stderr!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 runs")
    parser.add_argument("--compare", metavar="DIR", help="a folder holding another popkit_power package")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    compileall.compile_dir(str(ROOT / "popkit_power"), quiet=1)
    if args.compare:
        compileall.compile_dir(str(Path(args.compare) / "popkit_power"), quiet=1)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        push = payload("git push origin main")
        cases = {"python -c pass": ([sys.executable, "-c", "pass"], b"", "", {})}
        for label, extra in [("", {}), (" [compare]", {"PYTHONPATH": args.compare})] if args.compare else [("", {})]:
            folder = root / (label.strip(" []") or "this")
            plain = home_with(folder / "plain", {"checkin_every_n_tools": 5})
            guarded = home_with(folder / "guarded", GUARDRAILS)
            granted = home_with(folder / "granted", GUARDRAILS)
            for home in (guarded, granted):  # the request raised by the hook measured
                subprocess.run([str(HOOK)], input=push, env={**env, "POPKIT_POWER_HOME": home, **extra},
                               check=True, capture_output=True)
            _grant(granted)
            cases.update({
                f"no guardrail{label}": ([str(HOOK)], push, plain, extra),
                f"no match{label}": ([str(HOOK)], payload("pytest -x tests/test_guard.py"), guarded, extra),
                f"no match, long line{label}": ([str(HOOK)], payload(LONG_LINE), guarded, extra),
                f"waiting{label}": ([str(HOOK)], push, guarded, extra),
                f"granted{label}": ([str(HOOK)], push, granted, extra),
            })
        times: dict[str, list[float]] = {name: [] for name in cases}
        for run in range(runs + 2):
            order = list(cases) if run % 2 == 0 else list(reversed(cases))
            for name in order:
                command, stdin, home, extra = cases[name]
                elapsed = measure(command, stdin, {**env, "POPKIT_POWER_HOME": home, **extra})
                if run >= 2:  # two warm-up rounds
                    times[name].append(elapsed)
    base = statistics.median(times["python -c pass"])
    result = {name: {"median_ms": round(statistics.median(values), 2),
                     "ratio": round(statistics.median(values) / base, 2)} for name, values in times.items()}
    if args.json:
        print(json.dumps({"runs": runs, "cases": result}, indent=2))
        return
    hooked = subprocess.run([sys.executable, "-c", "import popkit_power; print(popkit_power.__file__)"], env=env,
                            capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    print(f"PreToolUse guard, whole process, {runs} runs (the hook's package: {hooked})")
    if args.compare:
        print(f"[compare]: the hook with {args.compare} first on PYTHONPATH")
    print(f"{'case':<34}{'median ms':>10}{'x pass':>8}")
    for name, row in result.items():
        print(f"{name:<34}{row['median_ms']:>10.2f}{row['ratio']:>8.2f}")


if __name__ == "__main__":
    main()
