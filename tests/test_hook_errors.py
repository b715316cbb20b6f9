"""The hook's log names each line's kind by a code, and `status` and `doctor` read the kind from the code alone;
the words of a line count only for lines an older version wrote, before lines had codes."""

from __future__ import annotations

from pathlib import Path

from popkit_power.errors import ConfigError, HookCallAbandoned, UnsafePathError
from popkit_power.hook.log import HOOK_TWICE, JOURNAL_DAMAGED, STATE_DAMAGED, log_error
from popkit_power.keys import HOOK_LOG
from popkit_power.setup import hook_errors
from popkit_power.setup.hook_errors import ADVICE, advice, code_of_line, read_errors


def test_a_logged_line_carries_its_code_and_stays_readable(tmp_path: Path) -> None:
    log_error(str(tmp_path), "UnsafePathError: /p is writable by others", code=UnsafePathError.code)
    (line,) = Path(tmp_path, HOOK_LOG).read_text().splitlines()
    stamp, _, rest = line.partition(" pid ")
    assert len(stamp) == 20 and rest.split(" ", 1)[1] == "error [unsafe-path]: UnsafePathError: /p is writable by " \
                                                         "others"
    (error,) = read_errors(str(tmp_path))
    assert error["code"] == "unsafe-path" and error["advice"] == ADVICE["unsafe-path"] and error["ts"] is not None


def test_the_advice_follows_the_code_not_the_words(tmp_path: Path) -> None:
    """A line whose words would have matched another kind (a damaged state file that mentions config.json, an
    unexpected error about an agent's state file) gets the advice of its code, or none."""
    log_error(str(tmp_path), "the state file of agent a:main was damaged (config.json)", code=STATE_DAMAGED)
    log_error(str(tmp_path), "KeyError: 'state file of agent'", code="unexpected")
    log_error(str(tmp_path), "SomeNewError: said differently", code=ConfigError.code)
    assert [(error["code"], error["advice"]) for error in read_errors(str(tmp_path))] == [
        (STATE_DAMAGED, ADVICE[STATE_DAMAGED]), ("unexpected", None), ("config-invalid", ADVICE["config-invalid"])]


def test_lines_of_an_older_version_are_known_by_their_words() -> None:
    old = "2026-11-24T10:00:00Z pid 42: "
    assert code_of_line(old + "skipped a damaged journal record: seq 3") == JOURNAL_DAMAGED
    assert code_of_line(old + "PostToolUse of agent x reached popkit-power-hook twice (...)") == HOOK_TWICE
    assert code_of_line(old + "UnsafePathError: /p belongs to uid 7, not to you") == "unsafe-path"
    assert code_of_line(old + "ValueError: something new") is None
    assert advice(old + "/p/config.json: 'x' must be a number") == ADVICE["config-invalid"]
    # a line with a code is never read by its words, even when they would match
    assert code_of_line("2026-11-24T10:00:00Z pid 42 error [unexpected]: damaged journal record") == "unexpected"


def test_every_code_with_advice_is_one_the_hook_writes() -> None:
    written = {ConfigError.code, UnsafePathError.code, HOOK_TWICE, JOURNAL_DAMAGED, STATE_DAMAGED,
               HookCallAbandoned.code}  # the last by the coordinator's server, which answers hooks over HTTP
    assert set(ADVICE) == written
    assert {code for _words, code in hook_errors.OLD_WORDS} <= set(ADVICE)
