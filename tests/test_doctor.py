"""`popkit-power doctor` finds each problem a new user met and names its fix; `status` points to doctor when the hook
has logged errors since the agents' last recorded call, and shows a config.json that cannot be used."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from test_hook import call, tool

from popkit_power.cli import main
from popkit_power.coordinator import PowerModeCoordinator
from popkit_power.errors import ConfigError
from popkit_power.hook.log import HOOK_TWICE, log_error
from popkit_power.session import start_session
from popkit_power.setup.install import PLUGIN_COMMAND, hooks_config, install_hooks


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder, and a HOME of the test's own (Claude Code's user settings live there)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def doctor(project: Path, *args: str) -> tuple[Result, dict[str, list[dict[str, Any]]]]:
    result = CliRunner().invoke(main, ["doctor", "--project-dir", str(project), *args], catch_exceptions=False)
    checks: dict[str, list[dict[str, Any]]] = {}
    for line in CliRunner().invoke(main, ["doctor", "--project-dir", str(project), "--json", *args]).stdout.split(
            "\n"):
        if line.strip():
            check = orjson.loads(line)
            checks.setdefault(check["name"], []).append(check)
    return result, checks


def enable_plugin(home: Path, root: Path) -> None:
    settings = home / ".claude" / "settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"enabledPlugins": {"popkit@popkit-power": True}}))
    (home / ".claude" / "plugins").mkdir(exist_ok=True)
    (home / ".claude" / "plugins" / "installed_plugins.json").write_text(json.dumps(
        {"version": 2, "plugins": {"popkit@popkit-power": [{"scope": "user", "installPath": str(root)}]}}))


def test_all_good_after_install(power_dir: str, project: Path) -> None:
    assert CliRunner().invoke(main, ["install", "--project-dir", str(project)]).exit_code == 0
    result, checks = doctor(project)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("all good")
    assert checks["hooks"][0]["verdict"] == "ok" and "project local settings" in checks["hooks"][0]["found"]
    assert checks["hook runs"][0]["verdict"] == "ok" and "popkit-power-hook 0." in checks["hook runs"][0]["found"]


def test_hooks_registered_both_ways_fail_with_the_fix(power_dir: str, project: Path) -> None:
    """The plugin enabled and `install` run: every event would run the hook twice."""
    enable_plugin(Path(os.environ["HOME"]), Path(__file__).resolve().parents[1])
    assert CliRunner().invoke(main, ["install", "--project-dir", str(project)]).exit_code == 0
    result, checks = doctor(project)
    assert result.exit_code == 1
    hooks = checks["hooks"][0]
    assert hooks["verdict"] == "FAIL" and "registered 2 times" in hooks["found"]
    assert "the plugin popkit@popkit-power" in hooks["found"] and "project local settings" in hooks["found"]
    assert any("popkit-power uninstall" in fix for fix in hooks["fixes"])
    assert [check["verdict"] for check in checks["hook runs"]] == ["ok", "ok"], "both run: the plugin's launcher too"


def test_the_hook_noticing_events_twice_is_reported(session: Any, project: Path) -> None:
    """A --plugin-dir plugin is in no settings file: the hook's own notice in hook.log tells doctor."""
    install_hooks(str(project / ".claude" / "settings.local.json"))
    log_error(session.power_dir, "PostToolUse of agent x:main reached popkit-power-hook twice (once through the "
                                 "plugin at /p, once through a settings file (popkit-power install))", code=HOOK_TWICE)
    _result, checks = doctor(project)
    assert checks["hooks"][0]["verdict"] == "FAIL" and "--plugin-dir" in " ".join(checks["hooks"][0]["fixes"])


@pytest.mark.parametrize("command", ["/nowhere/bin/popkit-power-hook", "popkit-power-hook"])
def test_a_hook_claude_code_cannot_run_fails_with_the_fix(power_dir: str, project: Path,
                                                          monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    install_hooks(str(project / ".claude" / "settings.local.json"), command)
    result, checks = doctor(project)
    assert result.exit_code == 1
    runs = checks["hook runs"][0]
    assert runs["verdict"] == "FAIL" and "exit 127" in runs["found"]
    assert any("pipx install popkit-power" in fix for fix in runs["fixes"])
    assert any("relies on PATH" in fix for fix in runs["fixes"]) == (command == "popkit-power-hook")


def test_the_plugin_without_a_hook_to_find_fails(power_dir: str, project: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "plugin-cache"
    (plugin / "popkit_power" / "plugin").mkdir(parents=True)
    launcher = Path(__file__).resolve().parents[1] / "popkit_power" / "plugin" / "run-hook.sh"
    (plugin / "popkit_power" / "plugin" / "run-hook.sh").write_bytes(launcher.read_bytes())
    enable_plugin(Path(os.environ["HOME"]), plugin)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("POPKIT_POWER_HOOK", raising=False)
    _result, checks = doctor(project)
    assert checks["hooks"][0]["verdict"] == "ok"
    runs = checks["hook runs"][0]
    assert runs["verdict"] == "FAIL" and "popkit-power-hook not found" in runs["found"]
    assert hooks_config(PLUGIN_COMMAND)


def test_a_bad_config_fails_in_doctor_and_shows_in_status(session: Any, project: Path) -> None:
    Path(session.power_dir, "config.json").write_text('{"context_max_chars": 10}')
    _result, checks = doctor(project)
    assert checks["config"][0]["verdict"] == "FAIL" and "context_max_chars" in checks["config"][0]["found"]
    status = CliRunner().invoke(main, ["status"])
    assert status.exit_code == 0, status.output
    assert "problem" in status.stdout and "context_max_chars" in status.stdout and "popkit-power doctor" in \
        status.stdout
    assert orjson.loads(CliRunner().invoke(main, ["status", "--json"]).stdout)["problems"]


def test_a_power_directory_open_to_others_and_a_damaged_journal(session: Any, project: Path) -> None:
    os.chmod(session.dir, 0o755)
    with open(Path(session.journal.directory, "0000000000000001.jsonl"), "ab") as segment:
        segment.write(b'{"seq":3,"not":"valid","crc":"00000000"}\n')
    result, checks = doctor(project)
    assert checks["power dir"][0]["verdict"] == "warn" and "chmod -R go-rwx" in checks["power dir"][0]["fixes"][0]
    assert checks["journals"][0]["verdict"] == "FAIL" and "1 damaged" in checks["journals"][0]["found"]
    assert result.exit_code == 1


def test_the_coordinator_missing_then_alive(session: Any, project: Path) -> None:
    _result, checks = doctor(project)
    assert checks["coordinator"][0]["verdict"] == "FAIL" and "nobody notices" in checks["coordinator"][0]["found"]
    coordinator = PowerModeCoordinator(power_dir=session.power_dir, session_id=session.id)
    coordinator.start()
    try:
        _result, checks = doctor(project)
    finally:
        coordinator.stop()
    assert checks["coordinator"][0]["verdict"] == "ok" and "alive" in checks["coordinator"][0]["found"]


def test_status_points_to_doctor_only_for_errors_since_the_last_recorded_call(session: Any, project: Path) -> None:
    call(session.power_dir, tool())
    # the log's times are whole seconds: the same second counts
    log_error(session.power_dir, "the hook failed here", code="unexpected")
    info = orjson.loads(CliRunner().invoke(main, ["status", "--json"]).stdout)
    assert len(info["problems"]) == 1 and "the hook logged 1 error since" in info["problems"][0]
    assert "popkit-power doctor" in CliRunner().invoke(main, ["status"]).stdout
    path = Path(session.power_dir, "hook.log")
    path.write_text("2020-01-01T00:00:00Z pid 1: old trouble\n")
    assert orjson.loads(CliRunner().invoke(main, ["status", "--json"]).stdout)["problems"] == []
    _result, checks = doctor(project)
    assert checks["hook.log"][0]["verdict"] == "ok", "older than a day"


def test_doctor_explains_the_hook_log(session: Any, project: Path) -> None:
    log_error(session.power_dir, f"{session.power_dir}/config.json: 'x' must be a number; nothing is recorded",
              code=ConfigError.code)
    _result, checks = doctor(project)
    hook_log = checks["hook.log"][0]
    assert hook_log["verdict"] == "warn" and any("fix config.json" in fix for fix in hook_log["fixes"])


def test_doctor_on_a_fresh_machine(power_dir: str, project: Path) -> None:
    result, checks = doctor(project)
    assert checks["power dir"][0]["verdict"] == "ok" and "does not exist yet" in checks["power dir"][0]["found"]
    assert checks["hooks"][0]["verdict"] == "warn" and result.exit_code == 0



@pytest.mark.parametrize(("condition", "advice"), [
    ("disk full", "free space on the disk that holds the power directory"),
    ("failing", "coordinator.log: it retries by itself once what is named there is fixed"),
])
def test_a_coordinator_in_trouble_gets_advice_that_fits_its_trouble(tmp_path: Path, condition: str,
                                                                      advice: str) -> None:
    """A coordinator that runs but cannot append says why in its lease file; doctor's advice fits: free space for a
    full disk, its log for anything else (a symlink planted among the segments is not cured by free space)."""
    from popkit_power.config import load_config
    from popkit_power.journal.lease import Lease
    from popkit_power.setup.doctor import _active, _coordinator

    session = start_session(str(tmp_path / "power"), "Coordinate", sender="human")
    with Lease(session.dir) as lease:  # this process holds the session's coordinator lease, as a coordinator does
        lease.note(condition, "the detail")
        config = load_config(session.power_dir)
        check = _coordinator(_active(session.power_dir, config), config)
    assert check.verdict == "FAIL" and f"cannot append its decisions: {condition}" in check.found, check
    assert advice in " ".join(check.fixes) and len(check.fixes) == 1, check.fixes


def test_the_plugin_root_is_the_folder_that_holds_the_package() -> None:
    """`--plugin-dir` takes the clone's root: the folder with `.claude-plugin/` and the package in it, whichever
    subpackage asks (moving registrations.py into setup/ once made this the package itself)."""
    from popkit_power.setup.registrations import package_plugin_root

    root = Path(package_plugin_root())
    assert (root / ".claude-plugin" / "plugin.json").is_file() and (root / "popkit_power" / "__init__.py").is_file()
