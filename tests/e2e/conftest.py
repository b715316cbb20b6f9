"""Fixtures for the end-to-end tests that drive the real Claude Code binary against a scripted model."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# The helpers beside this file are imported as top-level modules (tests/ is not a package). pytest's default
# import mode puts this folder on sys.path already; this keeps them importable under --import-mode=importlib.
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from claude import ClaudeInstallError, ensure_claude  # noqa: E402
from model_server import ModelServer, Script  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2e`` marker so ``-m "not e2e"`` can skip the slow runs of the real binary."""
    config.addinivalue_line("markers", "e2e: runs the real Claude Code binary against a local scripted model server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder as ``e2e``, and ``slow``: each runs the real binary for seconds to
    minutes, so a developer's plain ``pytest`` leaves them out (tools/test.sh runs them)."""
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """A working ``claude`` binary (installed from the npm registry into the cache on first use)."""
    try:
        return ensure_claude()
    except ClaudeInstallError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def model_server() -> Iterator[Callable[[Script], ModelServer]]:
    """A factory: ``model_server(script)`` starts a :class:`ModelServer`; all are stopped after the test.

    A script that raised is a test failure even if Claude Code coped with the error reply.
    """
    servers: list[ModelServer] = []

    def start(script: Script) -> ModelServer:
        server = ModelServer(script).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    errors = [error for server in servers for error in server.errors]
    if errors:
        pytest.fail(f"the model script raised: {errors!r}", pytrace=False)
