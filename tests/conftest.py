"""Shared fixtures: a private power directory per test, the suite's one started session in it (`session`, which a
module shapes through `session_config` or by extending it, never by starting its own), a bare journal, stand-ins for
Claude Code's processes, and a random generator whose seed is printed. Helpers shared by the tests are in support.py
(journals, child processes, `until` for waiting on a condition) and runners.py (the CLI in-process, a PreToolUse
call, a person's environment).

Nothing here is specific to the end-to-end tests under tests/e2e/ (they have their own conftest).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import freezegun
import pytest

# The helper modules beside this file (support.py, recorded_sessions.py) are imported as top-level modules; pytest's
# default import mode puts this folder on sys.path already, this keeps them importable under --import-mode=importlib.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from popkit_power.journal.writer import Journal  # noqa: E402
from popkit_power.session import Session, start_session  # noqa: E402

# `popkit-power start` starts a coordinator daemon; the suite's many starts must not leave daemons behind, so it is
# off for every test (and every process a test starts); the tests of the daemon itself turn it back on.
os.environ["POPKIT_POWER_NO_COORDINATOR"] = "1"
# The trust markers of the power directories the tests make (home.py) go into a state directory of this run's own,
# never the user's (every process a test starts inherits it, as the hook inherits the user's).
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="popkit-power-state-")

# Frozen time must not reach pytest's own clock: a test that freezes time in a fixture (setup to teardown) otherwise
# shows decades in --durations, and the real slow tests hide behind it. freezegun leaves the module that holds that
# clock alone. Not all of "_pytest": freezegun also answers real time to any call made within a few frames of an
# ignored module, and a test function is called by _pytest.python, so its own frozen time would leak.
freezegun.configure(extend_ignore_list=["_pytest.timing"])

#: Environment variables that would make a test depend on the shell it runs in.
_ENV_LEAKS = ("POPKIT_POWER_AGENT", "CLAUDE_CODE_SESSION_ID", "CLAUDE_PID", "UPSTASH_REDIS_REST_URL",
              "UPSTASH_REDIS_REST_TOKEN", "REDIS_URL")


@pytest.fixture
def power_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty power directory in tmp, which POPKIT_POWER_HOME points at, so nothing touches the real one."""
    home = tmp_path / "power"
    monkeypatch.setenv("POPKIT_POWER_HOME", str(home))
    for name in _ENV_LEAKS:
        monkeypatch.delenv(name, raising=False)
    return str(home)


@pytest.fixture
def session_config() -> dict[str, Any] | None:
    """The config.json written into `power_dir` before `session` starts (start validates it and keeps its copy); none
    by default. A module whose sessions need settings (guardrails) overrides this fixture, not `session`."""
    return None


@pytest.fixture
def session(power_dir: str, session_config: dict[str, Any] | None) -> Session:
    """A started (active) session in `power_dir`, opened by the human with a fixed objective.

    The one `session` of the suite. A module whose tests need more builds it on this one: settings through
    `session_config`; agents joined or tasks taken by a fixture that requests this one and adds them (pytest's
    override-and-extend); either way every test keeps `power_dir`'s environment clean-up."""
    if session_config is not None:
        os.makedirs(power_dir, exist_ok=True)
        Path(power_dir, "config.json").write_text(json.dumps(session_config))
    return start_session(power_dir, "Ship the parser", sender="human")


@pytest.fixture
def rng() -> random.Random:
    """A random generator for a test's random moments, whose seed is printed (pytest shows it with a failure);
    POPKIT_POWER_TEST_SEED=N runs the test again with the same choices."""
    seed = int(os.environ.get("POPKIT_POWER_TEST_SEED") or random.SystemRandom().randrange(2**32))
    print(f"random seed: {seed} (POPKIT_POWER_TEST_SEED={seed} repeats it)")
    return random.Random(seed)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A bare journal directory with default settings, closed after the test."""
    with Journal(str(tmp_path / "journal")) as opened:
        yield opened


@pytest.fixture
def claude_pids() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes standing in for Claude Code; whatever is left is killed after the test."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()
