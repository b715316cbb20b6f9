"""`popkit-power install` / `uninstall` and the plugin: the same hooks, merged without touching anything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from popkit_power.cli import main
from popkit_power.errors import ConfigError
from popkit_power.setup.install import (
    HOOK_EVENTS,
    HOOK_SCRIPT,
    PLUGIN_COMMAND,
    hooks_config,
    install_hooks,
    uninstall_hooks,
)

REPO = Path(__file__).resolve().parents[1]
THEIRS = {"type": "command", "command": "ruff check", "timeout": 5}


@pytest.fixture
def settings(tmp_path: Path) -> Path:
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"model": "opus", "permissions": {"allow": ["Bash(ls:*)"]},
                                "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [THEIRS]}]}}, indent=2))
    return path


def test_install_merges_is_idempotent_and_uninstall_restores(settings: Path) -> None:
    original = json.loads(settings.read_text())
    assert install_hooks(str(settings), "/venv/bin/popkit-power-hook") is True
    installed = json.loads(settings.read_text())
    assert installed["model"] == "opus" and installed["permissions"] == original["permissions"]
    assert installed["hooks"]["PostToolUse"][0] == {"matcher": "Edit", "hooks": [THEIRS]}
    for event in HOOK_EVENTS:
        commands = [h["command"] for group in installed["hooks"][event] for h in group["hooks"]]
        assert commands.count("/venv/bin/popkit-power-hook") == 1, event
    assert install_hooks(str(settings), "/venv/bin/popkit-power-hook") is False, "a second install changes nothing"
    assert json.loads(settings.read_text()) == installed
    assert install_hooks(str(settings), "/other/bin/popkit-power-hook") is True, "a moved install replaces ours"
    assert "/venv/bin/popkit-power-hook" not in settings.read_text()
    assert uninstall_hooks(str(settings)) is True
    assert json.loads(settings.read_text()) == original
    assert uninstall_hooks(str(settings)) is False


def test_install_into_a_project_without_settings_and_uninstall_removes_what_it_made(tmp_path: Path) -> None:
    path = tmp_path / ".claude" / "settings.local.json"
    install_hooks(str(path), HOOK_SCRIPT)
    assert json.loads(path.read_text()) == {"hooks": hooks_config(HOOK_SCRIPT)}
    uninstall_hooks(str(path))
    assert not path.exists() and not path.parent.exists(), "a file (and folder) left holding nothing is removed"
    mine = tmp_path / ".claude" / "mine.txt"
    install_hooks(str(path), HOOK_SCRIPT)
    mine.write_text("keep")
    uninstall_hooks(str(path))
    assert not path.exists() and mine.read_text() == "keep", "a folder with the user's files in it stays"


def test_bad_settings_json_is_refused_and_left_untouched(settings: Path) -> None:
    settings.write_text('{"hooks": [unclosed')
    with pytest.raises(ConfigError, match=r"settings.json: is not valid JSON"):
        install_hooks(str(settings))
    assert settings.read_text() == '{"hooks": [unclosed'


def test_cli_install_writes_the_absolute_hook_path_into_the_settings_that_are_not_committed(tmp_path: Path) -> None:
    """The project's committed settings.json never holds a path into one person's venv: the hook's absolute path
    (no PATH needed) goes into settings.local.json, which git is told to ignore through the repository's own
    info/exclude (once)."""
    (tmp_path / ".git" / "info").mkdir(parents=True)
    project = tmp_path / "app"
    project.mkdir()
    result = CliRunner().invoke(main, ["install", "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    assert not (project / ".claude" / "settings.json").exists()
    installed = json.loads((project / ".claude" / "settings.local.json").read_text())
    command = installed["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    assert os.path.isabs(command) and os.access(command, os.X_OK) and command.endswith(HOOK_SCRIPT)
    exclude = (tmp_path / ".git" / "info" / "exclude").read_text()
    assert exclude.count(".claude/settings.local.json") == 1 and "git ignores it" in result.output
    assert CliRunner().invoke(main, ["install", "--project-dir", str(project)]).exit_code == 0
    assert (tmp_path / ".git" / "info" / "exclude").read_text() == exclude, "the line is added once"
    result = CliRunner().invoke(main, ["uninstall", "--project-dir", str(project)])
    assert result.exit_code == 0 and "removed" in result.output
    assert not (project / ".claude").exists()


def test_install_moves_an_older_install_out_of_the_committed_settings(settings: Path) -> None:
    install_hooks(str(settings), "/venv/bin/popkit-power-hook")  # where an older version wrote them
    project = settings.parent.parent
    result = CliRunner().invoke(main, ["install", "--project-dir", str(project)])
    assert result.exit_code == 0 and "were removed from it" in result.output, result.output
    shared = json.loads(settings.read_text())
    assert "popkit-power-hook" not in settings.read_text() and shared["model"] == "opus", "theirs stays"
    assert set(json.loads((project / ".claude" / "settings.local.json").read_text())["hooks"]) == set(HOOK_EVENTS)


def test_cli_install_reports_bad_settings_in_one_line(settings: Path) -> None:
    settings.write_text("[]")
    result = CliRunner().invoke(main, ["install", "--project-dir", str(settings.parent.parent)])
    assert result.exit_code == 2
    assert result.output.strip().endswith("must hold a JSON object; nothing was changed")


def test_plugin_hooks_file_is_the_same_table_as_install() -> None:
    """The plugin and `install` cannot drift: the plugin's hooks.json is hooks_config() of its launcher."""
    manifest = json.loads((REPO / ".claude-plugin" / "plugin.json").read_text())
    assert manifest["name"] == "popkit"
    hooks_file = REPO / manifest["hooks"]
    assert json.loads(hooks_file.read_text())["hooks"] == hooks_config(PLUGIN_COMMAND)
    command = REPO / manifest["commands"] / "power.md"
    text = command.read_text()
    assert text.startswith("---\n") and "$ARGUMENTS" in text and "allowed-tools: Bash(popkit-power:*)" in text
    marketplace = json.loads((REPO / ".claude-plugin" / "marketplace.json").read_text())
    assert [plugin["name"] for plugin in marketplace["plugins"]] == ["popkit"]


def test_hook_script_and_its_modules_import_nothing_heavy() -> None:
    """The installed script is lean: importing the hook does not pull in `re` or `json` (they cost its budget)."""
    script = Path(sys.executable).parent / HOOK_SCRIPT
    assert script.read_text().startswith("#!/"), "pip rewrote the #!python line to this interpreter"
    probe = ("import sys, runpy; sys.argv=['hook']; sys.stdin=open('/dev/null');"
             "from popkit_power.hook import entry, handlers; entry.run(sys.stdin.buffer, '/nonexistent', {});"
             "heavy = ('re', 'json', 'typing', 'dataclasses', 'logging', 'orjson');"
             "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "POPKIT_POWER_HOME": "/nonexistent"}).stdout
    assert out.strip() == "[]"


def test_a_hook_path_with_a_space_runs_under_sh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code runs the command with `sh -c`: the installed path is quoted, and still recognised as ours."""
    from popkit_power.setup import install

    bin_dir = tmp_path / "my venv" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / HOOK_SCRIPT
    script.write_text("#!/bin/sh\necho hook-ran\n")
    script.chmod(0o755)
    monkeypatch.setattr(install.sys, "executable", str(bin_dir / "python"))
    settings = tmp_path / ".claude" / "settings.json"
    install_hooks(str(settings))
    command = json.loads(settings.read_text())["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    assert subprocess.run(["sh", "-c", command], capture_output=True, text=True).stdout == "hook-ran\n"
    assert uninstall_hooks(str(settings)) and not settings.exists()


def test_a_symlinked_settings_file_and_a_users_own_entry_survive(tmp_path: Path) -> None:
    target = tmp_path / "dotfiles" / "settings.json"
    target.parent.mkdir()
    theirs = {"matcher": "Edit|Write", "hooks": [{"type": "command", "command": "/opt/popkit-power-hook",
                                                  "timeout": 3}]}
    target.write_text(json.dumps({"model": "opus", "note": "café", "hooks": {"PreToolUse": [], "PostToolUse":
                                                                                [theirs]}}))
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(target)
    install_hooks(str(link), HOOK_SCRIPT)
    assert link.is_symlink() and "café" in target.read_text()
    uninstall_hooks(str(link))
    restored = json.loads(target.read_text())
    assert restored["hooks"] == {"PreToolUse": [], "PostToolUse": [theirs]} and restored["note"] == "café"
