"""Mode selection (mode_selector.py), the original Power Mode's contract, with the PING replaced: which mode each
environment selects, the reasons in the original's words, and that file mode imports no client library. Real
servers answer in tests/integration/test_upstash_adapter.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.replication.errors import TransportAuthError, TransportUnreachableError
from popkit_power.replication.mode_selector import (
    CONNECTION_FAILED,
    FILE,
    NOT_CONFIGURED,
    REDIS,
    UPSTASH,
    Mode,
    open_transport,
    select_mode,
)
from popkit_power.replication.transport import Transport

URL = "https://eu1-sure-cat-31337.upstash.io"
TOKEN = "AYNgASQgSecretToken0123456789abcdefWXYZ"
UPSTASH_ENV = {"UPSTASH_REDIS_REST_URL": URL, "UPSTASH_REDIS_REST_TOKEN": TOKEN}


def answers(transport: Transport) -> float:
    return 12.0


def refuses(transport: Transport) -> float:
    raise TransportAuthError(f"{transport.describe()}: token refused (HTTP 401: Unauthorized), for 1 command "
                             f"(PING); nothing was applied")


def never_called(transport: Transport) -> float:
    raise AssertionError("no PING was expected")


def test_nothing_set_is_file_mode_in_the_originals_words() -> None:
    mode = select_mode({}, ping=never_called)
    assert mode == Mode(FILE, f"File-based mode: {NOT_CONFIGURED}", True)
    assert mode.reason == ("File-based mode: Upstash credentials required for Power Mode Redis features. Set "
                           "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN environment variables.")
    assert select_mode({"UPSTASH_REDIS_REST_URL": "  ", "REDIS_URL": ""}, ping=never_called).kind == FILE


def test_upstash_when_both_are_set_and_it_answers() -> None:
    mode = select_mode(UPSTASH_ENV, ping=answers)
    assert (mode.kind, mode.ok) == (UPSTASH, True)
    assert mode.reason == f"upstash {URL} (token ****WXYZ) answered PING in 12 ms" and TOKEN not in mode.reason


def test_upstash_that_does_not_answer_is_named_with_the_exact_failure() -> None:
    mode = select_mode({**UPSTASH_ENV, "REDIS_URL": "redis://127.0.0.1:1/0"}, ping=refuses)
    assert (mode.kind, mode.ok) == (UPSTASH, False)
    assert mode.reason.startswith(f"{CONNECTION_FAILED} (upstash {URL} (token ****WXYZ): token refused (HTTP 401")
    assert CONNECTION_FAILED == "Upstash connection failed. Check your credentials."
    assert TOKEN not in mode.reason


def test_a_bad_upstash_url_fails_before_any_ping() -> None:
    mode = select_mode({**UPSTASH_ENV, "UPSTASH_REDIS_REST_URL": "eu1-sure-cat.upstash.io"}, ping=never_called)
    assert (mode.kind, mode.ok) == (UPSTASH, False)
    assert mode.reason == (f"{CONNECTION_FAILED} (UPSTASH_REDIS_REST_URL must be an https:// URL such as "
                           f"https://<name>.upstash.io, not 'eu1-sure-cat.upstash.io')")


@pytest.mark.parametrize(("env", "words"), [
    ({"UPSTASH_REDIS_REST_URL": URL}, "UPSTASH_REDIS_REST_URL is set but UPSTASH_REDIS_REST_TOKEN is not"),
    ({"UPSTASH_REDIS_REST_TOKEN": TOKEN}, "UPSTASH_REDIS_REST_TOKEN is set but UPSTASH_REDIS_REST_URL is not"),
])
def test_a_half_set_pair_is_named(env: dict[str, str], words: str) -> None:
    mode = select_mode(env, ping=never_called)
    assert mode == Mode(FILE, f"File-based mode: {words}, so Upstash is not used", True)
    with_redis = select_mode({**env, "REDIS_URL": "redis://127.0.0.1:6390/0"}, ping=answers)
    assert with_redis.kind == REDIS and with_redis.reason.endswith(f"; {words}, so Upstash is not used")
    assert TOKEN not in with_redis.reason


def test_redis_says_whether_it_answered() -> None:
    env = {"REDIS_URL": "redis://:hunter2hunter2hunter2@127.0.0.1:6390/0"}
    good = select_mode(env, ping=answers)
    assert good == Mode(REDIS, "redis redis://127.0.0.1:6390/0 (password ****ter2) answered PING in 12 ms", True)

    def unreachable(transport: Transport) -> float:
        raise TransportUnreachableError(f"{transport.describe()}: cannot connect (Connection refused)")

    bad = select_mode(env, ping=unreachable)
    assert (bad.kind, bad.ok) == (REDIS, False)
    assert bad.reason.startswith("REDIS_URL is set, but PING failed (redis redis://127.0.0.1:6390/0 (password")
    assert "hunter2hunter2hunter2" not in bad.reason


def test_without_checking_nothing_is_contacted() -> None:
    mode = select_mode(UPSTASH_ENV, ping=never_called, check=False)
    assert (mode.kind, mode.ok) == (UPSTASH, True) and "not checked" in mode.reason
    assert select_mode({"REDIS_URL": "redis://h:1/0"}, ping=never_called, check=False).kind == REDIS


def test_open_transport_builds_the_selected_kind() -> None:
    upstash = open_transport(UPSTASH, UPSTASH_ENV)
    redis = open_transport(REDIS, {"REDIS_URL": "redis://127.0.0.1:6390/0"})
    assert upstash is not None and upstash.kind == UPSTASH and not upstash.blocking_reads
    assert redis is not None and redis.kind == REDIS and redis.blocking_reads
    assert open_transport(FILE, UPSTASH_ENV) is None
    upstash.close()
    redis.close()


def test_file_mode_status_imports_no_client_library() -> None:
    """`popkit-power status` without credentials selects its mode without importing httpx or redis-py."""
    probe = ("import sys\nfrom popkit_power import status\nprint(status.mode_info()['mode'])\n"
             "print(sorted(m for m in ('httpx', 'redis', 'fakeredis', 'popkit_power.replication.upstash_rest') "
             "if m in sys.modules))\n")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.splitlines() == ["file", "[]"]


def test_connect_is_false_when_upstash_does_not_answer(power_dir: str, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as closed:  # a port where nothing listens
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("UPSTASH_REDIS_REST_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("UPSTASH_REDIS_REST_TOKEN", TOKEN)
    coordinator = PowerModeCoordinator(power_dir=power_dir)
    assert coordinator.connect() is False
    assert coordinator.mode == UPSTASH and coordinator.reason is not None
    assert coordinator.reason.startswith(f"{CONNECTION_FAILED} (upstash http://127.0.0.1:{port} (token ****WXYZ): "
                                         f"cannot connect")
    printed = capsys.readouterr().err
    assert printed.startswith(CONNECTION_FAILED) and TOKEN not in printed


def test_connect_in_file_mode(power_dir: str) -> None:
    coordinator = PowerModeCoordinator(power_dir=power_dir)
    assert coordinator.connect() is True
    assert (coordinator.mode, coordinator.reason) == (FILE, f"File-based mode: {NOT_CONFIGURED}")


@pytest.mark.parametrize(("blocked", "module", "words"), [
    ("redis", "popkit_power.replication.redis_streams", "REDIS_URL needs redis-py, which is not installed: "
                                                        "pip install 'popkit-power[redis]'"),
    ("fakeredis", "popkit_power.replication.memory", "pip install 'popkit-power[test]'"),
])
def test_a_missing_optional_package_is_named_with_its_pip_command(blocked: str, module: str, words: str) -> None:
    probe = (f"import sys\nsys.modules[{blocked!r}] = None\n"
             f"from popkit_power.replication.errors import MissingDependencyError\n"
             f"try:\n    import {module} as m\n    m.MemoryTransport()\n"
             f"except MissingDependencyError as error:\n    print(isinstance(error, ImportError), error)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("True ") and words in done.stdout, done.stdout + done.stderr
