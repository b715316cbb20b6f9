"""The power directory: discovery through git worktrees, safe names, private files, the active-session pointer."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from popkit_power._fs import private_dir
from popkit_power.errors import SessionError
from popkit_power.home import (
    ENV_HOME,
    active_session,
    check_session_id,
    existing_session_dir,
    find_power_dir,
    git_common_dir,
    list_sessions,
    origin_id,
    safe_name,
    session_dir,
    set_active_session,
    write_private_file,
)
from popkit_power.session import Session

# -- discovery ---------------------------------------------------------------------------------------------------------


def test_popkit_power_home_wins_over_everything(tmp_path: Path) -> None:
    """$POPKIT_POWER_HOME is used (made absolute, ~ expanded) even inside a git work tree."""
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    inside = str(tmp_path / "repo")
    assert find_power_dir(inside, {ENV_HOME: str(tmp_path / "elsewhere")}) == str(tmp_path / "elsewhere")
    assert find_power_dir(inside, {ENV_HOME: "~/pp", "HOME": str(tmp_path)}) == os.path.expanduser("~/pp")
    assert find_power_dir(inside, {ENV_HOME: ""}) == str(tmp_path / "repo" / ".git" / "popkit-power")


def test_main_worktree_uses_its_git_directory_from_any_subdirectory(tmp_path: Path) -> None:
    """In a main work tree (`.git` is a directory) the power dir is `.git/popkit-power`, found from deep inside."""
    deep = tmp_path / "repo" / "src" / "pkg"
    deep.mkdir(parents=True)
    (tmp_path / "repo" / ".git").mkdir()
    expected = str(tmp_path / "repo" / ".git" / "popkit-power")
    assert find_power_dir(str(deep), {}) == expected
    assert find_power_dir(str(tmp_path / "repo"), {}) == expected


def test_linked_worktree_shares_the_power_dir_through_gitdir_and_commondir(tmp_path: Path) -> None:
    """A linked worktree's `.git` file (`gitdir: <repo>/.git/worktrees/<name>`, which holds `commondir` = `../..`)
    leads to the same power dir as the main work tree; a relative `gitdir:` works too. Built by hand."""
    main = tmp_path / "repo"
    (main / ".git" / "worktrees" / "feature").mkdir(parents=True)
    (main / ".git" / "worktrees" / "feature" / "commondir").write_text("../..\n")
    linked = tmp_path / "feature"
    (linked / "sub").mkdir(parents=True)
    (linked / ".git").write_text(f"gitdir: {main / '.git' / 'worktrees' / 'feature'}\n")
    relative = tmp_path / "relative"
    relative.mkdir()
    (relative / ".git").write_text("gitdir: ../repo/.git/worktrees/feature\n")
    expected = str(main / ".git" / "popkit-power")
    assert find_power_dir(str(main), {}) == expected
    assert find_power_dir(str(linked / "sub"), {}) == expected
    assert find_power_dir(str(relative), {}) == expected


def test_gitdir_without_commondir_is_its_own_common_dir(tmp_path: Path) -> None:
    """A submodule or a plain separate git dir (`.git` file without `commondir` behind it) is its own common dir."""
    git_dir = tmp_path / "modules" / "sub"
    git_dir.mkdir(parents=True)
    work = tmp_path / "sub"
    work.mkdir()
    (work / ".git").write_text(f"gitdir: {git_dir}\n")
    assert git_common_dir(str(work)) == str(git_dir)


def test_a_git_file_that_is_not_a_gitdir_pointer_is_no_repository(tmp_path: Path) -> None:
    """A `.git` file without `gitdir:` gives no common dir (and so no git-based power dir)."""
    (tmp_path / ".git").write_text("something else\n")
    assert git_common_dir(str(tmp_path)) is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_real_git_worktree_add_gives_the_same_power_dir(tmp_path: Path) -> None:
    """With a real `git worktree add`, both work trees (and a subdirectory) find one power dir, without running git."""
    main = tmp_path / "main"
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str, cwd: Path = main) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=60)

    main.mkdir()
    git("init", "-q")
    (main / "README").write_text("x\n")
    git("add", "README")
    git("commit", "-q", "-m", "first")
    git("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "feature")
    (tmp_path / "wt" / "sub").mkdir()
    from_main = find_power_dir(str(main), {})
    assert os.path.realpath(from_main) == os.path.realpath(main / ".git" / "popkit-power")
    for place in (tmp_path / "wt", tmp_path / "wt" / "sub"):
        assert os.path.realpath(find_power_dir(str(place), {})) == os.path.realpath(from_main)


def test_outside_any_repository_it_is_dot_popkit_power(tmp_path: Path) -> None:
    """With no override and no `.git` above, the power dir is `./.popkit-power` of the start directory."""
    if git_common_dir(str(tmp_path)) is not None:
        pytest.skip("the temporary directory is itself inside a git work tree")
    assert find_power_dir(str(tmp_path), {}) == str(tmp_path / ".popkit-power")


# -- names from outside ------------------------------------------------------------------------------------------------

ESCAPING = ["../x", "..", ".", "/etc", "/etc/passwd", "a/b", ".hidden", "a\x00b", "\x00", "a\\b", "x/../../y",
            "~", "con:1", "é", " ", "a" * 500]


@pytest.mark.parametrize("name", ESCAPING)
def test_session_ids_that_could_escape_are_refused(power_dir: str, name: str) -> None:
    """check_session_id, session_dir and Session refuse ids that are not plain names, naming the id."""
    with pytest.raises(SessionError, match="session id"):
        check_session_id(name)
    with pytest.raises(SessionError):
        session_dir(power_dir, name)
    with pytest.raises(SessionError):
        Session(power_dir, name, create=True)
    assert not os.path.exists(power_dir)  # refused before anything was created


@pytest.mark.parametrize("name", ESCAPING)
def test_safe_name_escapes_names_into_one_plain_file_name(name: str) -> None:
    """safe_name turns any name into a single path component inside its directory: no separator, no NUL, not
    hidden, not '.' or '..', at most 120 characters."""
    escaped = safe_name(name)
    assert escaped != name
    _assert_plain(escaped)


def _assert_plain(escaped: str) -> None:
    assert escaped and len(escaped) <= 120
    assert "/" not in escaped and "\\" not in escaped and "\x00" not in escaped
    assert not escaped.startswith(".")
    assert os.path.basename(os.path.normpath(os.path.join("/base", escaped))) == escaped
    assert os.path.dirname(os.path.normpath(os.path.join("/base", escaped))) == "/base"


@given(st.text(min_size=1, max_size=300))
def test_safe_name_of_any_text_stays_inside_the_directory(name: str) -> None:
    """Property: for any text, safe_name gives one plain path component; plain names are kept as they are."""
    escaped = safe_name(name)
    _assert_plain(escaped)
    if escaped == name:
        check_session_id(name)


@pytest.mark.parametrize("name", ["agent-1", "20261124-100000-ab12cd", "a.b_c-D9", "x"])
def test_plain_names_are_kept_as_they_are(name: str) -> None:
    """Names made of letters, digits, '.', '_' and '-' that do not start with '.' are unchanged."""
    assert safe_name(name) == name
    assert check_session_id(name) == name


def test_long_names_stay_distinct() -> None:
    """Two long names that share their first 120 characters still get different safe names."""
    first, second = "a" * 200 + "1", "a" * 200 + "2"
    assert safe_name(first) != safe_name(second)
    assert len(safe_name(first)) == 120


def test_empty_or_non_text_names_are_refused() -> None:
    """An empty name is an error naming what it was meant to be."""
    with pytest.raises(SessionError, match="agent key"):
        safe_name("", "agent key")
    with pytest.raises(SessionError):
        check_session_id("")


def test_unknown_session_names_it_and_the_known_ones(power_dir: str) -> None:
    """existing_session_dir's error names the unknown id and lists known sessions (or says there are none)."""
    with pytest.raises(SessionError, match=r"unknown session 'nope'.*no sessions yet"):
        existing_session_dir(power_dir, "nope")
    private_dir(os.path.join(power_dir, "sessions", "20261124-100000-aaaaaa"))
    with pytest.raises(SessionError, match=r"unknown session 'nope'.*known sessions: 20261124-100000-aaaaaa"):
        existing_session_dir(power_dir, "nope")


# -- private files -----------------------------------------------------------------------------------------------------


def test_private_dirs_and_files_have_modes_0700_and_0600(tmp_path: Path) -> None:
    """private_dir makes every missing level 0700; write_private_file writes 0600 atomically (no temp file
    left), whatever the umask; that is what sessions/, journal/, snapshots/ and agents/ files are made with."""
    old = os.umask(0)
    try:
        target = tmp_path / "power" / "sessions" / "s1" / "agents"
        private_dir(str(target))
        write_private_file(str(target / "agent.json"), '{"a":1}')
        write_private_file(str(target / "agent.json"), '{"a":2}', durable=False)
    finally:
        os.umask(old)
    for level in (tmp_path / "power", tmp_path / "power" / "sessions", tmp_path / "power" / "sessions" / "s1", target):
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
    assert stat.S_IMODE((target / "agent.json").stat().st_mode) == 0o600
    assert (target / "agent.json").read_text() == '{"a":2}'
    assert os.listdir(target) == ["agent.json"]


def test_active_session_pointer(power_dir: str) -> None:
    """No `active` file means Power Mode off; set and clear it; a bad id is refused before anything is written."""
    assert active_session(power_dir) is None
    private_dir(power_dir)
    set_active_session(power_dir, "20261124-100000-abcdef")
    assert active_session(power_dir) == "20261124-100000-abcdef"
    assert stat.S_IMODE(os.stat(os.path.join(power_dir, "active")).st_mode) == 0o600
    with pytest.raises(SessionError):
        set_active_session(power_dir, "../evil")
    assert active_session(power_dir) == "20261124-100000-abcdef"
    set_active_session(power_dir, None)
    set_active_session(power_dir, None)
    assert active_session(power_dir) is None


def test_origin_id_is_created_once_private_and_then_reused(power_dir: str) -> None:
    """The origin id is host name plus a random suffix, written 0600 once and read back the same afterwards."""
    first = origin_id(power_dir)
    assert first == origin_id(power_dir)
    assert len(first) > 7 and "/" not in first and first == safe_name(first)
    assert stat.S_IMODE(os.stat(os.path.join(power_dir, "origin")).st_mode) == 0o600
    assert os.listdir(power_dir) == ["origin"]


def test_list_sessions_is_sorted_and_skips_hidden(power_dir: str) -> None:
    """Sessions are listed oldest first by id; hidden entries are not sessions."""
    assert list_sessions(power_dir) == []
    for name in ("20261125-000000-bbbbbb", ".tmp", "20261124-000000-aaaaaa"):
        private_dir(os.path.join(power_dir, "sessions", name))
    assert list_sessions(power_dir) == ["20261124-000000-aaaaaa", "20261125-000000-bbbbbb"]


def test_everything_a_session_writes_is_private(power_dir: str) -> None:
    """Under a permissive umask, a whole session's files (active, origin, sessions/, journal/, segments,
    journal.lock, snapshots/, and the agents/ files the real hook process writes) are 0600 and directories 0700."""
    from popkit_power.config import Config
    from popkit_power.session import start_session

    old = os.umask(0)
    try:
        session = start_session(power_dir, "Private", sender="lead", config=Config(snapshot_every_events=100))
        session.append_events([session.event("message.broadcast", {"text": str(n)}, sender="a") for n in range(120)])
        session.projection()
        session.journal.repair()
    finally:
        os.umask(old)
    hook = Path(sys.executable).parent / "popkit-power-hook"
    if hook.exists():
        payload = orjson.dumps({"session_id": "c0ffee00-1111-2222-3333-444455556666", "transcript_path": "/t.jsonl",
                                "cwd": power_dir, "hook_event_name": "PostToolUse", "tool_name": "Edit",
                                "tool_input": {"file_path": "a.py"}, "tool_response": {}})
        subprocess.run([str(hook)], input=payload, env={**os.environ, "POPKIT_POWER_HOME": power_dir},
                       capture_output=True, timeout=60, check=True, preexec_fn=lambda: os.umask(0))
    paths = [Path(power_dir), *Path(power_dir).rglob("*")]
    names = {path.name for path in paths}
    assert {"active", "origin", "sessions", "journal", "journal.lock", "snapshots",
            "0000000000000001.jsonl"} <= names
    if hook.exists():
        assert "agents" in names
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_escaped_names_never_collide() -> None:
    """Each escaped character ends with '.', so names that differ never share a file (e.g. agent inbox files)."""
    names = ["\x012", "\x12", "a/b", "a~2f.b", "../x", ".x", "x.", "~", "é", "e\u0301"]
    escaped = [safe_name(name) for name in names]
    assert len(set(escaped)) == len(names), escaped
    assert all(os.sep not in name and not name.startswith(".") for name in escaped)


def test_outside_git_a_subfolder_finds_the_nearest_popkit_power_above(tmp_path: Path) -> None:
    """A project that is not a git repository: `popkit-power start` in its root made `.popkit-power` there, and a
    command run in a subfolder (an agent's cwd) finds that one rather than making its own."""
    project = tmp_path / "project"
    deep = project / "src" / "app"
    deep.mkdir(parents=True)
    assert find_power_dir(str(deep), {}) == str(deep / ".popkit-power"), "none yet: here"
    (project / ".popkit-power").mkdir()
    assert find_power_dir(str(deep), {}) == str(project / ".popkit-power")
    (project / "src" / ".popkit-power").mkdir()
    assert find_power_dir(str(deep), {}) == str(project / "src" / ".popkit-power"), "the nearest"
    (project / ".git").mkdir()
    assert find_power_dir(str(deep), {}) == str(project / ".git" / "popkit-power"), "git comes first"
