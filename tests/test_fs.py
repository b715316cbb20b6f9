"""The file primitives under the power directory (`_fs`), and the hook on a power directory that came from somewhere
else: planted symlinks are refused and nothing outside is written, modes are exact under any umask, and a full disk
never replaces a good file with part of a new one (issue 6, items 2, 9, 11, 12, 15)."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest
from test_hook import CLAUDE, HOOK_SCRIPT, call, context, log_lines, tool

from popkit_power import _fs
from popkit_power.errors import PowerModeError, SessionError, UnsafePathError
from popkit_power.home import active_session, safe_name
from popkit_power.session import start_session

OUTSIDE_TEXT = b"the user's own notes\n"


def run_hook(home: str, data: bytes, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "POPKIT_POWER_HOME": home}
    return subprocess.run([str(HOOK_SCRIPT)], input=data, env=env, capture_output=True, timeout=60,
                          **kwargs)  # type: ignore[call-overload]


# -- complete writes or none (item 2) ----------------------------------------------------------------------------------

def _write_under_file_size_limit(path: str, data: bytes, limit: int) -> None:  # pragma: no cover - a child
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG, as on a full disk
    try:
        _fs.write_file_atomically(path, data, durable=False)
    except OSError:
        os._exit(3)
    os._exit(0)


def test_a_full_disk_never_replaces_a_good_file_with_part_of_a_new_one(tmp_path: Path) -> None:
    """A real short write (RLIMIT_FSIZE in a child): the old file stays whole, no temporary file is left, and the
    writer learns that it failed."""
    target = tmp_path / "agent.json"
    target.write_bytes(b'{"cursor": "the good one"}')
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        _write_under_file_size_limit(str(target), b"x" * 100_000, 8192)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert target.read_bytes() == b'{"cursor": "the good one"}'
    assert os.listdir(tmp_path) == ["agent.json"]


def test_an_injected_short_write_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(OSError, match="No space"):
        _fs.write_file_atomically(str(target), b"new", durable=False)
    monkeypatch.undo()
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["state.json"]


def test_the_hook_keeps_the_agent_state_whole_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's state file (its cursor) survives a hook whose state write comes up short (injected: a real full
    disk would stop the journal's append first), and the news it read is delivered at the next call."""
    session = start_session(str(tmp_path / "power"), "Full disk", sender="human")
    call(session.power_dir, tool())
    state_file = Path(session.dir, "agents", safe_name(f"{CLAUDE}:main") + ".json")
    good = state_file.read_bytes()
    session.publish("message.broadcast", {"text": "kept"}, sender="human")
    real_write = os.write

    def short_on_state_files(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".json.tmp"):
            return real_write(fd, bytes(data)[:10]) and 0
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", short_on_state_files)
    with pytest.raises(OSError, match="No space"):
        call(session.power_dir, tool())
    monkeypatch.undo()
    assert state_file.read_bytes() == good
    assert not list(Path(session.dir, "agents").glob("*.tmp"))
    assert '"kept"' in context(call(session.power_dir, tool()))


# -- modes (item 12) ---------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o000, 0o277, 0o077])
def test_modes_are_exact_under_any_umask(tmp_path: Path, umask: int) -> None:
    """Files 0600 and directories 0700 whatever the umask, for everything a session and a real hook process make."""
    home = str(tmp_path / "power")
    old = os.umask(umask)
    try:
        session = start_session(home, "Modes", sender="human")
    finally:
        os.umask(old)
    run_hook(home, orjson.dumps(tool()), check=True, preexec_fn=lambda: os.umask(umask))
    run_hook(home, orjson.dumps(tool()), check=True, preexec_fn=lambda: os.umask(umask))
    paths = [Path(home), *Path(home).rglob("*")]
    assert any(path.name == "agents" for path in paths)
    assert len(list(session.journal.reader())) >= 4
    for path in paths:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), (oct(umask), path)


# -- planted symlinks and foreign directories (item 9) ----------------------------------------------------------------

@pytest.fixture
def planted(tmp_path: Path) -> tuple[str, Path]:
    """A power directory as an unpacked tarball could ship it: an active session, and a file of the user's outside."""
    home = str(tmp_path / "project" / ".popkit-power")
    session = start_session(home, "Planted", sender="human")
    run_hook(home, orjson.dumps(tool()), check=True)
    outside = tmp_path / "notes.txt"
    outside.write_bytes(OUTSIDE_TEXT)
    return session.dir, outside


def _plant(link: Path, target: Path) -> None:
    if link.is_dir():
        import shutil

        shutil.rmtree(link)
    elif link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


@pytest.mark.slow
@pytest.mark.parametrize("name", [
    "journal.lock", "journal/0000000000000001.jsonl", f"agents/{safe_name(f'{CLAUDE}:main')}.json",
    f"agents/{safe_name(f'{CLAUDE}:main')}.lock", f"agents/{safe_name(f'{CLAUDE}:main')}.json.tmp",
    "../../active", "../../config.json", "../../hook.log", "../../origin",
])
def test_a_planted_file_symlink_is_never_followed(planted: tuple[str, Path], name: str) -> None:
    session_dir, outside = planted
    home = str(Path(session_dir).parent.parent)
    link = Path(session_dir, name)
    _plant(link, outside)
    for stdin in (orjson.dumps(tool()), orjson.dumps(tool()), b"{not json"):
        completed = run_hook(home, stdin)
        assert completed.returncode == 0 and completed.stdout == b""
    assert outside.read_bytes() == OUTSIDE_TEXT, f"{name} was followed out of the power directory"
    if name.endswith("hook.log"):  # the log itself is the link: its lines go to stderr (Claude Code's debug log)
        assert b"payload is not JSON" in completed.stderr
    elif not name.endswith(".tmp"):  # a temporary file is replaced, not written through; the rest is refused
        assert link.is_symlink()
        assert any("symbolic link" in line for line in log_lines(home))


@pytest.mark.parametrize("name", ["journal", "agents", "snapshots", ".", "../.."])
def test_a_planted_directory_symlink_is_refused(planted: tuple[str, Path], name: str, tmp_path: Path) -> None:
    """A directory under the power directory that is a link elsewhere is refused (logged), and the directory it
    points to is left as it was."""
    session_dir, _outside = planted
    home = Path(session_dir).parent.parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "keep.txt").write_bytes(OUTSIDE_TEXT)
    real = Path(session_dir, name).resolve()
    if name in (".", "../.."):
        moved = tmp_path / ("moved-" + real.name)
        real.rename(moved)
        os.symlink(moved, real)
        elsewhere = moved
        before = sorted(str(path) for path in moved.rglob("*"))
    else:
        _plant(Path(session_dir, name), elsewhere)
        before = sorted(str(path) for path in elsewhere.rglob("*"))
    start = orjson.dumps({**tool(), "hook_event_name": "SessionStart", "source": "resume"})
    completed = run_hook(str(home), start)
    assert (completed.returncode, completed.stdout) == (0, b"")
    assert sorted(str(path) for path in elsewhere.rglob("*")) == before
    if name == "../..":  # the power directory itself is the link: no trusted place for a log, so stderr
        assert b"symbolic link" in completed.stderr
    else:
        assert completed.stderr == b"" and any("symbolic link" in line for line in log_lines(str(home)))


@pytest.mark.parametrize("mode", [0o777, 0o722, 0o757])
def test_a_power_directory_writable_by_others_is_refused(planted: tuple[str, Path], mode: int) -> None:
    session_dir, _outside = planted
    home = Path(session_dir).parent.parent
    journal = Path(session_dir, "journal", "0000000000000001.jsonl")
    before = journal.read_bytes()
    os.chmod(home, mode)
    completed = run_hook(str(home), orjson.dumps(tool()))
    assert (completed.returncode, completed.stdout) == (0, b"")
    assert journal.read_bytes() == before
    os.chmod(home, 0o700)
    assert b"writable by others" in completed.stderr, "no log file in a directory others can write: stderr"
    assert log_lines(str(home)) == []


def test_check_dir_names_each_problem(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path)
    (tmp_path / "open").mkdir(mode=0o700)
    os.chmod(tmp_path / "open", 0o733)
    with pytest.raises(UnsafePathError, match="is not a directory"):
        _fs.check_dir(str(tmp_path / "file"))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        _fs.check_dir(str(tmp_path / "link"))
    with pytest.raises(UnsafePathError, match=r"writable by others \(mode 733\)"):
        _fs.check_dir(str(tmp_path / "open"))
    with pytest.raises(FileNotFoundError):
        _fs.check_dir(str(tmp_path / "missing"))
    assert issubclass(UnsafePathError, PowerModeError)


@pytest.mark.skipif(os.getuid() != 0, reason="making a directory owned by another user needs root")
def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 12345, 12345)
    with pytest.raises(UnsafePathError, match="belongs to user id 12345"):
        _fs.check_dir(str(theirs))


# -- names that reach the file system stay distinct (item 11) ----------------------------------------------------------

def _crc32_collision(name: str) -> str:
    """Another name of the same length and CRC-32, differing only in its last bytes (ASCII): CRC-32 is affine over
    GF(2), so a difference whose CRC contribution is zero is a null vector of a 32-row system."""
    raw = bytearray(name.encode("ascii"))
    base = zlib.crc32(bytes(raw))
    columns = []  # (crc contribution, bit flipped) for the low 7 bits of each of the last 6 bytes
    for index in range(len(raw) - 6, len(raw)):
        for bit in range(7):
            raw[index] ^= 1 << bit
            columns.append((zlib.crc32(bytes(raw)) ^ base, 1 << (7 * (index - len(raw) + 6) + bit)))
            raw[index] ^= 1 << bit
    pivots: dict[int, tuple[int, int]] = {}
    for value, mask in columns:  # Gaussian elimination: the first column that reduces to 0 is a null vector
        while value:
            top = value.bit_length() - 1
            if top not in pivots:
                pivots[top] = (value, mask)
                break
            value, mask = value ^ pivots[top][0], mask ^ pivots[top][1]
        if not value and mask:
            for position in range(42):
                if mask >> position & 1:
                    raw[len(raw) - 6 + position // 7] ^= 1 << position % 7
            return raw.decode("ascii")
    raise AssertionError("42 columns of 32 bits always have a null combination")


def test_long_names_with_equal_crc32_get_different_files() -> None:
    first = "sessionAAAA" * 20 + ":agent-" + "z" * 20
    second = _crc32_collision(first)
    assert second != first and zlib.crc32(first.encode()) == zlib.crc32(second.encode())
    assert safe_name(first) != safe_name(second)
    assert len(safe_name(first)) <= 120 and len(safe_name(second)) <= 120


# -- a damaged `active` file is a clear error (item 15) ----------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe not text", "not UTF-8"),
    (b"../../etc", "does not hold a session id"),
])
def test_a_damaged_active_file_is_named(tmp_path: Path, content: bytes, message: str) -> None:
    home = tmp_path / "power"
    start_session(str(home), "Damaged pointer", sender="human")
    (home / "active").write_bytes(content)
    with pytest.raises(SessionError, match=message):
        active_session(str(home))
    completed = subprocess.run([str(Path(sys.executable).parent / "popkit-power"), "status"], capture_output=True,
                               env={**os.environ, "POPKIT_POWER_HOME": str(home)}, timeout=60)
    assert completed.returncode == 2 and completed.stdout == b""
    assert message in completed.stderr.decode() and "Traceback" not in completed.stderr.decode()


def test_an_active_file_that_is_a_directory_is_named(tmp_path: Path) -> None:
    home = tmp_path / "power"
    (home / "active").mkdir(parents=True, mode=0o700)
    os.chmod(home, 0o700)
    with pytest.raises(UnsafePathError, match="is a directory"):
        active_session(str(home))


def test_a_linked_snapshots_directory_loses_nothing_at_session_start(planted: tuple[str, Path], tmp_path: Path) -> None:
    """SessionStart sweeps killed writers' temporary files, but never in a directory a link points to."""
    session_dir, _outside = planted
    home = str(Path(session_dir).parent.parent)
    elsewhere = tmp_path / "build"
    elsewhere.mkdir()
    (elsewhere / "report.4000000.tmp").write_bytes(OUTSIDE_TEXT)
    _plant(Path(session_dir, "snapshots"), elsewhere)
    run_hook(home, orjson.dumps({**tool(), "hook_event_name": "SessionStart", "source": "resume"}))
    assert (elsewhere / "report.4000000.tmp").read_bytes() == OUTSIDE_TEXT


def test_a_hard_linked_file_is_never_written(planted: tuple[str, Path]) -> None:
    session_dir, outside = planted
    home = Path(session_dir).parent.parent
    log = home / "hook.log"
    if log.exists():
        log.unlink()
    os.link(outside, log)
    completed = run_hook(str(home), b"{not json")
    assert completed.returncode == 0 and outside.read_bytes() == OUTSIDE_TEXT
    assert b"payload is not JSON" in completed.stderr
