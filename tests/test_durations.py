"""pytest's --durations shows real time for a test that freezes time (conftest.py tells freezegun to leave pytest
alone): the report is how the slow tests are found and marked."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

FROZEN_TEST = '''
import time

import pytest
from freezegun import freeze_time


@pytest.fixture
def frozen():
    with freeze_time("2026-01-01"):  # frozen from setup to teardown: the call phase starts and ends in it
        yield


def test_frozen(frozen):
    time.sleep(0.3)
'''


def test_durations_are_real_for_a_test_that_freezes_time(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(f"exec(open({str(Path(__file__).with_name('conftest.py'))!r}).read())\n")
    (tmp_path / "test_frozen.py").write_text(FROZEN_TEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=3", "-vv",
                           "-o", "addopts=", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    call = re.search(r"^([\d.]+)s call\s+.*test_frozen", done.stdout, re.MULTILINE)
    assert call is not None, done.stdout
    assert 0.25 <= float(call.group(1)) < 60, f"the frozen test's call took {call.group(1)}s by pytest's clock"
