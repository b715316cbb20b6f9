"""The original Power Mode's checks (`python -m popkit_power.upstash_adapter --status|--ping|--test`, and
`popkit-power upstash status|ping|test`) against the Upstash bridge and a real redis-server, and the mode they make
the coordinator and status select."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner
from conftest import TOKEN
from support import until

from popkit_power.cli import main
from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.replication.mode_selector import CONNECTION_FAILED, NOT_CONFIGURED
from popkit_power.replication.running import start_replication
from popkit_power.replication.status_file import read_status
from popkit_power.session import start_session
from popkit_power.upstash_adapter import TEST_PREFIX

CHECKS = 10


def adapter(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m popkit_power.upstash_adapter ARGS` with only `env` (and PATH) in its environment."""
    return subprocess.run([sys.executable, "-m", "popkit_power.upstash_adapter", *args], capture_output=True,
                          text=True, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}, timeout=60)


def upstash_env(bridge: Any, token: str = TOKEN) -> dict[str, str]:
    return {"UPSTASH_REDIS_REST_URL": bridge.url, "UPSTASH_REDIS_REST_TOKEN": token}


def no_test_keys(redis_url: str) -> bool:
    with redis.Redis.from_url(redis_url) as client:
        return not list(client.scan_iter(f"{TEST_PREFIX}*"))


def test_status_shows_what_is_set_masked(bridge: Any) -> None:
    done = adapter("--status", env={**upstash_env(bridge), "REDIS_URL": "redis://:pw-0123456789ab@127.0.0.1:1/0"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"UPSTASH_REDIS_REST_URL    {bridge.url}"
    assert lines[1] == f"UPSTASH_REDIS_REST_TOKEN  ****etZZ ({len(TOKEN)} characters)"
    assert lines[2] == "REDIS_URL                 redis://127.0.0.1:1/0 (password ****89ab)"
    assert lines[3].startswith("mode                      upstash (") and "not checked" in lines[3]
    assert TOKEN not in done.stdout and "pw-0123456789ab" not in done.stdout
    assert bridge.requests == 0  # --status contacts nothing


@pytest.mark.slow
def test_ping_reports_the_round_trip_or_the_exact_failure(bridge: Any) -> None:
    done = adapter("--ping", env=upstash_env(bridge))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok    PING upstash {bridge.url} (token ****etZZ): PONG in ")
    assert done.stdout.endswith(" ms\n")
    wrong = "not-the-token-9876543210"
    refused = adapter("--ping", env=upstash_env(bridge, wrong))
    assert refused.returncode == 1
    assert refused.stdout.startswith("FAIL  PING: upstash") and "token refused (HTTP 401" in refused.stdout
    assert wrong not in refused.stdout + refused.stderr
    bridge.daily_limit()
    limited = adapter("--ping", env=upstash_env(bridge))
    assert limited.returncode == 1 and "ERR max daily request limit exceeded" in limited.stdout


def test_the_self_test_against_upstash_passes_and_leaves_no_key(bridge: Any, redis_url: str) -> None:
    done = adapter("--test", env=upstash_env(bridge))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"Testing upstash {bridge.url} (token ****etZZ) under {TEST_PREFIX}")
    assert [line[:6] for line in lines[1:-1]] == ["ok    "] * CHECKS
    assert lines[-1].startswith(f"{CHECKS} of {CHECKS} checks passed, ")
    assert no_test_keys(redis_url)


def test_the_self_test_against_redis(redis_url: str) -> None:
    result = CliRunner().invoke(main, ["upstash", "test"], env={"REDIS_URL": redis_url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"Testing redis {redis_url} under {TEST_PREFIX}")
    assert f"{CHECKS} of {CHECKS} checks passed" in result.stdout
    assert no_test_keys(redis_url)


def test_a_failing_check_fails_the_self_test_and_its_keys_are_still_deleted(bridge: Any, redis_url: str) -> None:
    bridge.fail_before_applying(200, b'[{"result":"T0s="}]', times=1)  # PING answered with one wrong result
    bridge.daily_limit(times=1)  # then the XADDs refused as a whole
    done = adapter("--test", env=upstash_env(bridge))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[1].startswith("FAIL  PING: unexpected replies ['OK']")
    assert lines[2].startswith("FAIL  XADD with explicit ids") and "max daily request limit" in lines[2]
    # without the stream's entries, the stream checks after it fail too; SET, HSET and EXPIRE pass
    assert [line[:4] for line in lines[1:-1]] == ["FAIL"] * 6 + ["ok  "] * 3 + ["FAIL"]
    assert lines[-1].startswith(f"3 of {CHECKS} checks passed")
    assert no_test_keys(redis_url)


def test_nothing_set_is_exit_2_with_the_originals_words() -> None:
    done = adapter("--ping", env={})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == f"popkit-power: nothing to check: File-based mode: {NOT_CONFIGURED}"
    result = CliRunner().invoke(main, ["upstash", "test"], env={"UPSTASH_REDIS_REST_URL": "https://x.upstash.io"})
    assert result.exit_code == 2
    assert "UPSTASH_REDIS_REST_URL is set but UPSTASH_REDIS_REST_TOKEN is not" in result.stderr


def test_the_coordinator_and_status_select_upstash_when_it_answers(bridge: Any, power_dir: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in upstash_env(bridge).items():
        monkeypatch.setenv(name, value)
    coordinator = PowerModeCoordinator(power_dir=power_dir)
    assert coordinator.connect() is True and coordinator.mode == "upstash"
    assert coordinator.reason is not None and coordinator.reason.startswith(f"upstash {bridge.url} (token ****etZZ)")
    session = start_session(power_dir, "Replicate", sender="tester")
    status = CliRunner().invoke(main, ["status", "--json"], catch_exceptions=False)
    mode = orjson.loads(status.stdout)["mode"]  # Upstash answers, but nothing replicates this session yet
    assert (mode["mode"], mode["ok"]) == ("file", False) and "answered PING" in mode["reason"]
    assert mode["reason"].endswith("but no replicator runs for this session (start it: popkit-power replicate)")
    running = start_replication(session, os.environ)
    try:
        until(lambda: read_status(session.dir), 30, "the replicator's first report")
        text = CliRunner().invoke(main, ["status"], catch_exceptions=False).stdout
        assert f"upstash (replicating to upstash {bridge.url} (token ****etZZ): healthy;" in " ".join(text.split())
    finally:
        running.stop()


def test_the_coordinator_refuses_upstash_that_refuses_it(bridge: Any, power_dir: str,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in upstash_env(bridge, "a-token-upstash-refuses-123").items():
        monkeypatch.setenv(name, value)
    coordinator = PowerModeCoordinator(power_dir=power_dir)
    assert coordinator.connect() is False
    assert coordinator.reason is not None and coordinator.reason.startswith(f"{CONNECTION_FAILED} (upstash")
    assert "token refused (HTTP 401" in capsys.readouterr().err


@pytest.mark.slow
def test_the_bridge_runs_as_a_script(redis_url: str, tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "tools" / "upstash_bridge.py"
    process = subprocess.Popen([sys.executable, str(script), "--redis", redis_url, "--token", TOKEN],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        done = adapter("--ping", env={"UPSTASH_REDIS_REST_URL": url, "UPSTASH_REDIS_REST_TOKEN": TOKEN})
        assert done.returncode == 0 and "PONG" in done.stdout
    finally:
        process.terminate()
        process.wait(10)
