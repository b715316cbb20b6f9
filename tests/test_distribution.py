"""What `pip install .` installs: a wheel built from this tree holds every module of the package and the plugin's
files. The package list in pyproject.toml is written by hand, so a new subpackage left out of it would install a
broken popkit-power while an editable install (the tests') still worked."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # builds a wheel with pip: seconds
def test_the_wheel_holds_every_module_and_the_plugin(tmp_path: Path) -> None:
    # from a copy without build/: setuptools builds in the tree and would ship what an earlier build left there
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                                              ".*_cache", ".hypothesis", "tests", "tools"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(tree)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = tmp_path.glob("popkit_power-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    sources = {path.relative_to(ROOT).as_posix() for path in (ROOT / "popkit_power").rglob("*.py")}
    assert sources - shipped == set(), "modules missing from the wheel: add their package to pyproject.toml"
    plugin = {path.relative_to(ROOT).as_posix() for path in (ROOT / "popkit_power" / "plugin").rglob("*")
              if path.is_file() and path.suffix in (".json", ".sh", ".md")}
    assert plugin and plugin - shipped == set()
    page = {path.relative_to(ROOT).as_posix() for path in (ROOT / "popkit_power" / "dashboard" / "static").iterdir()}
    assert len(page) == 3 and page - shipped == set(), "the dashboard's page is missing from the wheel"
    assert any(name.endswith("/scripts/popkit-power-hook") for name in shipped), "the hook ships as a script"
