"""Settings: defaults, config.json, and one clear error naming the setting (and file) for every bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from popkit_power.config import CONFIG_FILE, DEFAULTS, LAST_VALID_FILE, Config, check_value, load_config, usable_config
from popkit_power.errors import ConfigError
from popkit_power.projector import Rules


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    path.write_text(text)
    return path


def test_no_config_file_means_every_default(tmp_path: Path) -> None:
    """Without config.json every setting has the default from the DEFAULTS table."""
    config = load_config(str(tmp_path))
    assert config.as_dict() == {name: default for name, (default, _kind, _minimum) in DEFAULTS.items()}


def test_values_from_config_json_are_used_and_converted(tmp_path: Path) -> None:
    """Settings from config.json override the defaults; numbers given as strings are converted to their kind."""
    _write(tmp_path, '{"checkin_every_n_tools": 3, "durability": "fsync", "conflict_window_seconds": "90",'
                     ' "segment_max_bytes": 8192.0}')
    config = load_config(str(tmp_path))
    assert config.checkin_every_n_tools == 3
    assert config.durability == "fsync"
    assert config.conflict_window_seconds == 90.0 and isinstance(config.conflict_window_seconds, float)
    assert config.segment_max_bytes == 8192 and isinstance(config.segment_max_bytes, int)
    assert config.max_record_bytes == DEFAULTS["max_record_bytes"][0]


@pytest.mark.parametrize(("text", "expected"), [
    ('{"checkin_every_n_tools": "abc"}', "'checkin_every_n_tools' must be a whole number; got 'abc'"),
    ('{"checkin_every_n_tools": -1}', "'checkin_every_n_tools' must be at least 1; got -1"),
    ('{"checkin_every_n_tools": 0}', "'checkin_every_n_tools' must be at least 1; got 0"),
    ('{"checkin_every_n_tools": 2.5}', "'checkin_every_n_tools' must be a whole number; got 2.5"),
    ('{"checkin_every_n_tools": true}', "'checkin_every_n_tools' must be a number; got True"),
    ('{"checkin_every_n_tools": null}', "'checkin_every_n_tools' must be a number; got None"),
    ('{"checkin_every_n_tools": [5]}', "'checkin_every_n_tools' must be a number; got [5]"),
    ('{"segment_max_bytes": 1000}', "'segment_max_bytes' must be at least 4096; got 1000"),
    ('{"segment_max_bytes": Infinity}', "'segment_max_bytes' must be a whole number; got inf"),
    ('{"segment_max_bytes": 1e400}', "'segment_max_bytes' must be a whole number; got inf"),
    ('{"conflict_window_seconds": NaN}', "'conflict_window_seconds' must be a finite number; got nan"),
    ('{"conflict_window_seconds": -Infinity}', "'conflict_window_seconds' must be a finite number; got -inf"),
    ('{"conflict_window_seconds": -5}', "'conflict_window_seconds' must be at least 0; got -5"),
    ('{"durability": "sometimes"}', "'durability' must be one of flush, fsync; got 'sometimes'"),
    ('{"checkin_every_n_tool": 5}',
     "unknown setting 'checkin_every_n_tool' (known: agent_timeout_seconds, auto_reassign_orphaned, checkin_"),
])
def test_each_bad_value_is_one_line_naming_the_file_and_setting(tmp_path: Path, text: str, expected: str) -> None:
    """A bad config.json value raises ConfigError: one line, starting with the file, naming the setting and value."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_config(str(tmp_path))
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(("text", "expected"), [
    ('{"checkin_every_n_tools": 5,}', "is not valid JSON"),
    ("{'checkin_every_n_tools': 5}", "is not valid JSON"),
    ("", "is not valid JSON"),
    ('{"a": 1} trailing', "is not valid JSON"),
    ("[1, 2]", "must hold a JSON object of settings"),
    ('"checkin_every_n_tools"', "must hold a JSON object of settings"),
])
def test_a_config_file_that_is_not_a_json_object_is_named(tmp_path: Path, text: str, expected: str) -> None:
    """Invalid JSON, or JSON that is not an object, is reported with the file's path."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match="^" + str(path).replace(".", r"\.") + ": " + expected):
        load_config(str(tmp_path))


def test_a_config_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    """A config.json that is not UTF-8 (or is a directory) is a ConfigError naming the file, not a traceback."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / CONFIG_FILE).write_bytes(b'{"durability": "\xff"}')
    with pytest.raises(ConfigError, match=r"config\.json: cannot be read"):
        load_config(str(tmp_path / "a"))
    (tmp_path / "b" / CONFIG_FILE).mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"config\.json: cannot be read"):
        load_config(str(tmp_path / "b"))


def test_config_constructor_checks_values_too() -> None:
    """Config(**values) validates like config.json does, naming the setting."""
    with pytest.raises(ConfigError, match="'max_insights_kept' must be at least 1"):
        Config(max_insights_kept=0)
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        Config(colour="blue")
    assert Config(max_insights_kept=3).max_insights_kept == 3


def test_every_default_passes_its_own_check() -> None:
    """The defaults table is consistent: each default is accepted by check_value unchanged."""
    for name, (default, _kind, _minimum) in DEFAULTS.items():
        assert check_value(name, default) == default


def test_projector_rules_come_from_the_config() -> None:
    """Rules.from_config copies exactly the settings the fold depends on."""
    config = Config(conflict_window_seconds=30, insight_similarity_threshold=0.5, max_insights_kept=7,
                    max_files_per_agent=2)
    rules = Rules.from_config(config)
    assert (rules.conflict_window_seconds, rules.insight_similarity_threshold, rules.max_insights_kept,
            rules.max_files_per_agent) == (30.0, 0.5, 7, 2)


def test_upper_bounds_and_a_threshold_that_can_be_met() -> None:
    """A reply cap past Claude Code's 10,000 characters and a similarity threshold that makes every insight a
    duplicate (0) or none (above 1) are refused, naming the setting."""
    with pytest.raises(ConfigError, match="'context_max_chars' must be at most 9000"):
        check_value("context_max_chars", 100_000)
    with pytest.raises(ConfigError, match=r"'insight_similarity_threshold' must be at least 0\.05"):
        check_value("insight_similarity_threshold", 0)
    with pytest.raises(ConfigError, match="'insight_similarity_threshold' must be at most 1"):
        check_value("insight_similarity_threshold", 1.5)
    assert check_value("context_max_chars", 9000) == 9000


LAST = '{"guardrail_commands": ["git push*"], "durability": "fsync", "checkin_every_n_tools": 9}'


@pytest.mark.parametrize(("last", "broken", "expected", "unreadable"), [
    # a bad value elsewhere: the file's valid settings hold, the bad one comes from the last valid file
    (LAST, '{"guardrail_commands": ["rm -rf *"], "checkin_every_n_tools": "x"}',
     {"guardrail_commands": ("rm -rf *",), "checkin_every_n_tools": 9, "durability": "flush"}, ()),
    # not JSON: everything from the last valid file (what it left out: defaults)
    (LAST, '{"guardrail_commands": ', {"guardrail_commands": ("git push*",), "durability": "fsync",
                                       "guardrail_paths": ()}, ()),
    # a bad guardrail: the last valid one
    (LAST, '{"guardrail_commands": "rm -rf *"}', {"guardrail_commands": ("git push*",), "durability": "flush"}, ()),
    # a misspelt guardrail name: the last valid guardrails
    (LAST, '{"guardrail_command": ["rm -rf *"]}', {"guardrail_commands": ("git push*",)}, ()),
    # no valid version kept: defaults, and the guardrails that cannot be known are named
    (None, '{"guardrail_commands": "rm -rf *", "guardrail_paths": ["*.env"]}',
     {"guardrail_paths": ("*.env",), "guardrail_commands": ()}, ("guardrail_commands",)),
    (None, "[]", {"guardrail_commands": ()}, ("guardrail_paths", "guardrail_commands")),
    (None, '{"checkin_every_n_tools": 0}', {"checkin_every_n_tools": 5, "guardrail_commands": ()}, ()),
])
def test_a_broken_config_runs_with_what_holds(tmp_path: Path, last: str | None, broken: str,
                                              expected: dict[str, object], unreadable: tuple[str, ...]) -> None:
    if last is not None:
        (tmp_path / CONFIG_FILE).write_text(last)
        load_config(str(tmp_path))  # validated once: its copy is kept
        assert (tmp_path / LAST_VALID_FILE).read_text() == last
    (tmp_path / CONFIG_FILE).write_text(broken)
    config, problem = usable_config(str(tmp_path))
    assert problem is not None and str(problem).startswith(str(tmp_path / CONFIG_FILE))
    assert {name: getattr(config, name) for name in expected} == expected
    assert set(problem.unreadable) == set(unreadable)
    assert problem.fallback == ("its last valid version" if last else "the defaults")


def test_a_valid_config_has_no_problem_and_a_tampered_copy_is_not_trusted(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text('{"guardrail_paths": ["*.env"]}')
    assert usable_config(str(tmp_path))[1] is None
    (tmp_path / LAST_VALID_FILE).write_text('{"guardrail_paths": 3}')  # a copy that no longer passes
    (tmp_path / CONFIG_FILE).write_text("{")
    _config, problem = usable_config(str(tmp_path))
    assert problem is not None and set(problem.unreadable) == {"guardrail_paths", "guardrail_commands"}
