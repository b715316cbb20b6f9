"""What runs, said as it is: a REDIS_URL that cannot be used is refused by `connect()` as Upstash's failure is,
warned about by `start` and listed by `status` as a problem; the mode line says what mirrors the session's journal
(the server the replicator runs against, masked, healthy or failing; or file only and why), whatever the shell that
runs `status` has set. Real `popkit-power` processes, a real coordinator daemon and replicator, a real redis-server
(started, killed and started again)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import until

from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.coordinator.daemon import running
from popkit_power.coordinator.daemon import stop as stop_daemon
from popkit_power.replication.mode_selector import REDIS
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"
PASSWORD = "redis-secret-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(home: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`popkit-power ARGS` with the coordinator daemon on (as a user has it) and only `extra` as credentials."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("POPKIT_POWER_NO_COORDINATOR", "REDIS_URL", "UPSTASH_REDIS_REST_URL",
                          "UPSTASH_REDIS_REST_TOKEN")}
    env.update(POPKIT_POWER_HOME=home, **extra)
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=120)


def status(home: str, **extra: str) -> dict[str, Any]:
    done = cli(home, "status", "--json", **extra)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = orjson.loads(done.stdout)
    return found


@pytest.fixture
def home(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "power")
    yield path
    try:
        stop_daemon(Session.active(path))  # never leave a daemon behind
    except Exception:
        pass


@pytest.mark.parametrize("mistyped", ["redis://127.0.0.1:{port}/0", "rdis://127.0.0.1:{port}/0",
                                      "redis//127.0.0.1:{port}"])
def test_connect_is_false_for_a_redis_url_that_cannot_be_used(mistyped: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Before: True (only Upstash's failure made it False)."""
    url = mistyped.format(port=free_port())
    coordinator = PowerModeCoordinator(power_dir=str(tmp_path / "power"), environ={"REDIS_URL": url})
    assert coordinator.connect() is False
    assert coordinator.mode == REDIS and coordinator.reason is not None and "REDIS_URL" in coordinator.reason
    assert coordinator.reason in capsys.readouterr().err


@pytest.mark.slow
def test_a_mistyped_redis_url_is_warned_about_at_start_and_is_a_problem_in_status(home: str) -> None:
    """Before: `start` said nothing and `status` showed no problem (and "File-based mode: Upstash credentials
    required...", as if nothing were set)."""
    wrong = f"redis://127.0.0.1:{free_port()}/0"
    started = cli(home, "start", "Mistyped", REDIS_URL=wrong)
    assert started.returncode == 0, started.stderr
    assert "Power Mode on" in started.stdout
    warning = [line for line in started.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "REDIS_URL is set, but PING failed" in warning[0], started.stderr
    assert "NOT replicated" in warning[0] and "popkit-power replicate" in warning[0]
    info = status(home, REDIS_URL=wrong)
    assert (info["mode"]["mode"], info["mode"]["ok"]) == ("file", False)
    assert info["mode"]["reason"].startswith("file only: REDIS_URL is set, but PING failed")
    assert any("REDIS_URL is set, but PING failed" in problem for problem in info["problems"])
    text = cli(home, "status", REDIS_URL=wrong).stdout
    assert "problem file only: REDIS_URL is set, but PING failed" in " ".join(text.split())
    doctor = cli(home, "doctor", "--json", REDIS_URL=wrong)
    [check] = [c for c in map(orjson.loads, doctor.stdout.splitlines()) if c["name"] == "replication"]
    assert check["verdict"] == "FAIL" and "PING failed" in check["found"]


@pytest.mark.slow
def test_the_mode_line_says_what_runs_whatever_the_shell_has_set(home: str, own_redis: Any) -> None:
    """The coordinator (started with REDIS_URL) replicates; `status` run from a shell without REDIS_URL said
    "File-based mode: Upstash credentials required ..." before. Now: Redis, the URL masked, healthy; failing
    while the server is down; file only once the replicator is gone (a problem) or the session is closed."""
    import redis

    with redis.Redis.from_url(own_redis.url) as admin:
        admin.config_set("requirepass", PASSWORD)
    url = own_redis.url.replace("redis://", f"redis://:{PASSWORD}@")
    started = cli(home, "start", "Replicated", REDIS_URL=url)
    assert started.returncode == 0 and "warning" not in started.stderr, started.stderr
    session = Session.active(home)
    until(lambda: (status(home)["replication"] or {}).get("transport") is not None, 30, "the replicator's report")
    info = status(home)  # no REDIS_URL in this shell
    shown = f"redis {own_redis.url} (password ****6789)"
    assert info["mode"] == {"mode": "redis", "ok": True, "running": True,
                            "reason": info["mode"]["reason"]}, info["mode"]
    assert info["mode"]["reason"].startswith(f"replicating to {shown}: healthy; ")
    assert PASSWORD not in orjson.dumps(info).decode() and info["problems"] == []
    assert "File-based mode" not in cli(home, "status").stdout

    own_redis.kill()  # the replicator fails and backs off
    cli(home, "broadcast", "while redis is down")
    until(lambda: status(home)["mode"]["ok"] is False, 60, "the replicator's failure in its report")
    info = status(home)
    assert info["mode"]["reason"].startswith(f"replicating to {shown}: failing, next try soon; last error: ")
    assert any(problem.startswith(f"replicating to {shown}: failing") for problem in info["problems"])
    own_redis.start()
    with redis.Redis.from_url(own_redis.url) as admin:
        admin.config_set("requirepass", PASSWORD)
    cli(home, "broadcast", "redis is back")
    until(lambda: status(home)["mode"]["ok"] is True, 90, "the replicator healthy again")

    holder = orjson.loads(Path(session.dir, "coordinator.json").read_text())["pid"]
    os.kill(holder, signal.SIGKILL)  # coordinator and replicator die without a word
    until(lambda: not running(session), 30, "the coordinator's lease released")
    info = status(home)
    assert (info["mode"]["mode"], info["mode"]["ok"]) == ("file", False)
    assert info["mode"]["reason"].startswith(f"file only: no replicator runs for this session now (the one to "
                                             f"{shown} stopped)")
    assert any("no replicator runs" in problem for problem in info["problems"])
    assert cli(home, "stop").returncode == 0
    info = status(home)
    assert info["mode"] == {"mode": "file", "ok": True, "running": False,
                            "reason": f"file only: the session is closed (it was replicated to {shown})"}
