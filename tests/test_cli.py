"""The `popkit-power` command against real files: its verbs, its output, and one clear line for every bad input."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
import support
from click.testing import CliRunner, Result
from runners import run_cli as run  # the power dir comes from POPKIT_POWER_HOME (power_dir)

from popkit_power import provenance
from popkit_power.cli import main
from popkit_power.home import active_session, list_sessions
from popkit_power.journal.writer import Journal
from popkit_power.session import Session

SCRIPT = Path(sys.executable).parent / "popkit-power"


@pytest.fixture(autouse=True)
def outside_claude_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unless a test says otherwise, the CLI runs as a person at a terminal, even when this suite runs inside Claude
    Code: its variables are removed, and its process above the test run is hidden."""
    for name in (*provenance.AGENT_ENVIRONMENT, "POPKIT_POWER_AGENT"):
        monkeypatch.delenv(name, raising=False)
    if any(ancestor.is_claude for ancestor in provenance.ancestors() or ()):
        monkeypatch.setattr(provenance, "PROC", str(tmp_path / "no-proc"))


def one_line_error(result: Result, code: int = 2) -> str:
    """The single stderr line of a failed command (no traceback), after checking the exit code."""
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("popkit-power: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def records(power_dir: str) -> list[dict[str, object]]:
    session = Session(power_dir, list_sessions(power_dir)[-1])
    return list(session.journal.reader())


# -- the verbs -------------------------------------------------------------------------------------------------------


def test_start_publish_status_stop(power_dir: str) -> None:
    """start opens and activates a session; publish appends and prints the seq; status shows the projection; stop
    closes it and turns Power Mode off."""
    started = run("start", "  Ship the login page  ", "--as", "lead")
    assert started.exit_code == 0 and started.stdout.startswith("Power Mode on: session ")
    session_id = started.stdout.split()[4]
    assert active_session(power_dir) == session_id and "objective: Ship the login page" in started.stdout

    assert run("publish", "broadcast", "Tests are green", "--as", "agent-a").stdout.strip() == "3"
    assert run("publish", "insights", "The cache ignores the locale", "--as", "agent-b").stdout.strip() == "4"
    assert run("publish", "broadcast", "Take the parser", "--to", "agent-b", "--as", "agent-a").stdout.strip() == "5"
    published = records(power_dir)
    assert [r["type"] for r in published] == ["session.opened", "objective.set", "message.broadcast",
                                              "insight.shared", "message.direct"]
    assert (published[2]["from"], published[2]["data"]) == ("agent-a", {"text": "Tests are green"})
    assert published[4]["to"] == "agent-b" and published[0]["from"] == "lead"

    status = run("status", "--json")
    summary = orjson.loads(status.stdout)
    assert (summary["session"], summary["active"], summary["objective"]) == (session_id, True, "Ship the login page")
    assert summary["journal"]["records_through_seq"] == 5 and summary["mode"]["mode"] == "file"
    assert [insight["text"] for insight in summary["insights"]] == ["The cache ignores the locale"]
    text = run("status").stdout
    assert f"{session_id} (active)" in text.splitlines()[0] and "objective    Ship the login page" in text

    stopped = run("stop")
    assert stopped.exit_code == 0 and f"session {session_id} closed" in stopped.stdout
    assert active_session(power_dir) is None
    assert records(power_dir)[-1]["type"] == "session.closed"
    assert orjson.loads(run("status", "--json").stdout)["active"] is False


def test_publish_a_json_object_as_data_and_an_unknown_type(session: Session) -> None:
    """A MESSAGE that is a JSON object is the event's data; a type this version does not know is accepted on the
    channel given (forward compatibility)."""
    assert run("publish", "results", '{"task": "t1", "result": "done", "ok": true}', "--as", "a").exit_code == 0
    assert run("publish", "insights", '{"insight": "x", "weight": 2}', "--type", "insight.voted").exit_code == 0
    completed, voted = list(session.journal.reader())[-2:]
    assert (completed["type"], completed["data"]) == ("task.completed", {"task": "t1", "result": "done", "ok": True})
    assert voted["data"].pop("evidence")["pid"] == os.getpid()  # sent as the human: with where it was sent from
    assert (voted["type"], voted["ch"], voted["data"]) == ("insight.voted", "insights", {"insight": "x", "weight": 2})


def test_status_without_any_session(power_dir: str) -> None:
    """With no session at all, status says Power Mode is off and how to start (exit 0)."""
    result = run("status")
    assert result.exit_code == 0 and result.stdout.startswith(f"Power Mode off: no sessions in {power_dir}")
    assert orjson.loads(run("status", "--json").stdout)["session"] is None


def test_home_option_overrides_the_environment(power_dir: str, tmp_path: Path) -> None:
    """--home DIR is used instead of $POPKIT_POWER_HOME."""
    other = tmp_path / "other"
    assert run("--home", str(other), "start", "Elsewhere").exit_code == 0
    assert list_sessions(str(other)) and not os.path.exists(power_dir)


def test_every_command_has_help() -> None:
    """popkit-power, each command, and each command of a group of commands (`task add`), answers --help with its
    usage and the first sentence of its description (exit 0). The suite's one walk over the commands."""
    assert isinstance(main, click.Group)
    commands: list[tuple[list[str], click.Command]] = [([], main)]
    checked = []
    while commands:
        path, command = commands.pop()
        result = run(*path, "--help")
        assert result.exit_code == 0 and result.stdout.startswith("Usage: "), path
        assert command.help, f"{' '.join(path)} has no help text"
        first_sentence = re.split(r"(?<=[.!?])\s", " ".join(command.help.replace("\b", "").split()))[0]
        assert first_sentence in " ".join(result.stdout.split()), f"{' '.join(path)} --help lacks {first_sentence!r}"
        checked.append(" ".join(path))
        if isinstance(command, click.Group):
            commands.extend(([*path, name], sub) for name, sub in command.commands.items())
    assert {"task add", "claim", "done", "result", "release", "reassign", "insight", "send", "broadcast", "ask",
            "approve", "deny"} <= set(checked)


def test_the_readme_command_table_names_every_command() -> None:
    """The README's table of commands names each command and each command of a group (`task add`)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = "\n".join(line for line in readme.splitlines() if line.startswith("| `popkit-power "))
    names = [name for name, command in main.commands.items() if not isinstance(command, click.Group)]
    names += [f"{name} {sub}" for name, command in main.commands.items() if isinstance(command, click.Group)
              for sub in command.commands]
    missing = [name for name in names if not re.search(rf"`(popkit-power )?{re.escape(name)}\b", table)]
    assert not missing, f"not in the README's command table: {missing}"


# -- bad input -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["status", "nope"], ["verify", "nope"], ["replay", "nope"],
                                     ["status", "--json", "nope"]])
def test_unknown_session_is_exit_2_naming_it(session: Session, command: list[str]) -> None:
    """Naming a session that does not exist is exit 2 with one line naming it (and the known ones)."""
    line = one_line_error(run(*command))
    assert "unknown session 'nope'" in line and session.id in line


@pytest.mark.parametrize("session_id", ["../x", "/etc", "a/b", ".hidden"])
def test_session_ids_that_would_escape_are_refused(session: Session, session_id: str) -> None:
    """A session id that could leave the power directory is refused in one line naming it."""
    line = one_line_error(run("verify", session_id))
    assert f"session id {session_id!r} is not allowed" in line


@pytest.mark.parametrize(("config", "named"), [
    ('{"checkin_every_n_tools": "abc"}', "'checkin_every_n_tools' must be a whole number; got 'abc'"),
    ('{"checkin_every_n_tools": -1}', "'checkin_every_n_tools' must be at least 1; got -1"),
    ('{"checkin_every_n_tools": 5, "colour": "blue"}', "unknown setting 'colour'"),
    ('{"checkin_every_n_tools": 5', "is not valid JSON"),
])
@pytest.mark.parametrize("command", [["start", "Objective"], ["publish", "broadcast", "hi"]])
def test_bad_config_is_exit_2_naming_the_file_and_key(session: Session, config: str, named: str,
                                                      command: list[str]) -> None:
    """A bad config.json makes every command that writes fail with one line that names config.json and what is wrong
    in it (`status` shows it as its first problem instead, read with the defaults: tests/test_doctor.py)."""
    before = len(list(session.journal.reader()))
    Path(session.power_dir, "config.json").write_text(config)
    line = one_line_error(run(*command))
    assert os.path.join(session.power_dir, "config.json") in line and named in line
    assert len(list(Journal(session.journal.directory).reader())) == before


def test_publish_message_that_looks_like_json_but_is_not(session: Session) -> None:
    """A MESSAGE starting with '{' that is not JSON is refused (exit 2, one line), and nothing is appended."""
    line = one_line_error(run("publish", "broadcast", "{not json"))
    assert "MESSAGE starts with '{' but is not a JSON object" in line
    assert len(list(session.journal.reader())) == 2


@pytest.mark.parametrize(("args", "named"), [
    (["publish", "broadcast", "x", "--type", "task.completed"], "type 'task.completed' belongs on channel 'results'"),
    (["publish", "results", "just text"], "a result needs its task"),
    (["publish", "results", '{"task": "t1"}'], "'data.result' is required for task.completed"),
    (["publish", "heartbeat", '{"tool_calls": "many"}'], "'data.tool_calls' must be an integer, got a string"),
])
def test_publish_names_the_protocol_problem(session: Session, args: list[str], named: str) -> None:
    """Events that break the protocol are refused in one line naming the field or the rule."""
    assert named in one_line_error(run(*args))
    assert len(list(session.journal.reader())) == 2


def test_publish_invalid_utf8_is_one_line(session: Session) -> None:
    """An argument holding bytes that are not UTF-8 (as Python passes them on: surrogate escapes) is refused with one
    line naming the bytes, not a UnicodeEncodeError traceback (regression)."""
    line = one_line_error(run("publish", "broadcast", "caf\udce9"))
    assert "not valid UTF-8" in line and "\\xe9" in line
    assert len(list(session.journal.reader())) == 2


def test_publish_over_the_size_limit_writes_nothing(session: Session) -> None:
    """A message over max_record_bytes is exit 2 naming the limit; the journal is unchanged and still verifies."""
    line = one_line_error(run("publish", "broadcast", "x" * (1024 * 1024 + 1)))
    assert "over the size limit of 1048576 bytes (max_record_bytes)" in line
    assert len(list(session.journal.reader())) == 2
    assert run("verify").exit_code == 0


def test_publish_and_stop_without_an_active_session(power_dir: str) -> None:
    """Publishing or stopping with Power Mode off is exit 2 saying how to start one."""
    for command in (["publish", "broadcast", "hi"], ["stop"]):
        assert "no active power session" in one_line_error(run(*command))


def session_entries(power_dir: str) -> list[str]:
    """Everything in the sessions directory, hidden names included."""
    return sorted(os.listdir(os.path.join(power_dir, "sessions")))


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs RLIMIT_FSIZE (POSIX)")
@pytest.mark.parametrize("limit", [0, 100, 400])
def test_start_on_a_full_disk_leaves_nothing_half_made(session: Session, tmp_path: Path, limit: int) -> None:
    """`start --switch` whose writes fail (a file size limit stands in for a full disk, at several points of the
    start) is one line and exit 2; no new session directory is left to count as the newest one, the active session
    stays, and nothing is written into it."""
    import resource
    import signal

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing a write
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    before = session_entries(session.power_dir)
    # No bytecode: a short write under the limit would leave a truncated .pyc for the next interpreter.
    env = {"PATH": os.environ.get("PATH", ""), "POPKIT_POWER_HOME": session.power_dir, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([str(SCRIPT), "start", "A second objective", "--switch", "--as", "tester"], env=env,
                          cwd=tmp_path, preexec_fn=limited, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("popkit-power: "), done.stderr
    assert "File too large" in done.stderr
    assert session_entries(session.power_dir) == before
    assert active_session(session.power_dir) == session.id and list_sessions(session.power_dir)[-1] == session.id
    assert [record["type"] for record in session.journal.reader()] == ["session.opened", "objective.set"]


@pytest.mark.parametrize("failing", ["append_events", "set_active_session"])
@pytest.mark.parametrize("active_before", [True, False])
def test_start_that_fails_part_way_removes_its_session(session: Session, monkeypatch: pytest.MonkeyPatch,
                                                       failing: str, active_before: bool) -> None:
    """A start (switching, when a session is active) that fails after its session directory exists (its journal
    refused, or the active pointer not written) removes that directory again and leaves the previous session active,
    or none if none was."""
    import popkit_power.session as session_module

    if not active_before:
        assert run("stop").exit_code == 0

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(session.power_dir, "x"))

    if failing == "append_events":
        monkeypatch.setattr(Session, "append_events", no_space)
    else:
        monkeypatch.setattr(session_module, "set_active_session", no_space)
    before = session_entries(session.power_dir)
    assert "No space left on device (ENOSPC)" in one_line_error(run("start", "A second objective", "--switch"))
    assert session_entries(session.power_dir) == before
    assert active_session(session.power_dir) == (session.id if active_before else None)

# -- verify ----------------------------------------------------------------------------------------------------------


def test_verify_reports_a_corrupt_line_with_seq_and_byte_position(session: Session,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """One flipped byte in a middle record: `verify` (text and --json) exits 1 naming its seq and byte offset;
    `status` and `replay` still work (logging a warning) and skip it; `publish` gets the next seq."""
    for number in range(3, 7):
        session.publish("message.broadcast", {"text": f"record {number}"}, sender="a")
    _segment, offset, line = support.raw_lines(session.journal)[3]
    with open(support.segment_path(session.journal), "r+b") as handle:
        handle.seek(offset + line.index(b"record 4"))
        handle.write(b"R")

    text = run("verify")
    assert text.exit_code == 1
    assert text.stdout.startswith("DAMAGED: 5 records, seq 1..6")
    assert f"damaged: seq 4 at 0000000000000001.jsonl byte {offset}: checksum does not match" in text.stdout
    as_json = run("verify", "--json")
    assert as_json.exit_code == 1
    report = orjson.loads(as_json.stdout)
    assert report["ok"] is False and report["session"] == session.id
    assert report["damaged"] == [{"seq": 4, "segment": "0000000000000001.jsonl", "offset": offset,
                                  "reason": "checksum does not match"}]

    status = run("status", "--json")
    assert status.exit_code == 0 and orjson.loads(status.stdout)["journal"]["records_through_seq"] == 6
    assert any(f"seq 4 at 0000000000000001.jsonl byte {offset}" in r.getMessage() for r in caplog.records)
    replay = run("replay", "--json")
    assert [orjson.loads(line)["seq"] for line in replay.stdout.splitlines()] == [1, 2, 3, 5, 6]
    assert run("publish", "broadcast", "after").stdout.strip() == "7"


def test_verify_a_healthy_session(session: Session) -> None:
    """verify of a healthy session says OK with the count and seq range, exit 0."""
    result = run("verify", session.id)
    assert result.exit_code == 0 and result.stdout.startswith("OK: 2 records, seq 1..2, 1 segment in")


def test_verify_reports_a_line_that_is_not_json(session: Session) -> None:
    """A journal line that is not JSON at all is reported by verify (exit 1) as not a record, with its position."""
    size = os.path.getsize(support.segment_path(session.journal))
    with open(support.segment_path(session.journal), "ab") as handle:
        handle.write(b"this is not json\n")
    report = orjson.loads(run("verify", "--json").stdout)
    assert report["damaged"] == [{"seq": 3, "segment": "0000000000000001.jsonl", "offset": size,
                                  "reason": "not a record"}]


# -- the installed console script --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_installed_console_script_runs_as_a_real_process(tmp_path: Path) -> None:
    """The `popkit-power` script installed in the venv works as its own process: start, publish, verify --json; an
    unknown session is exit 2 with one line on stderr."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("POPKIT_POWER", "CLAUDE"))}
    env["POPKIT_POWER_HOME"] = str(tmp_path / "power")
    env["POPKIT_POWER_NO_COORDINATOR"] = "1"

    def script(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)

    assert script("start", "Real process", "--as", "tester").returncode == 0  # named: also run inside Claude Code
    published = script("publish", "broadcast", "hello from a process", "--as", "agent-x")
    assert (published.returncode, published.stdout.strip()) == (0, "3")
    verified = script("verify", "--json")
    assert verified.returncode == 0
    report = orjson.loads(verified.stdout)
    assert (report["ok"], report["records"], report["last_seq"]) == (True, 3, 3)
    unknown = script("verify", "no-such-session")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and "unknown session 'no-such-session'" in unknown.stderr

    segment = next((tmp_path / "power" / "sessions").glob("*/journal/0000000000000001.jsonl"))
    data = segment.read_bytes()
    segment.write_bytes(data.replace(b"hello from a process", b"hello from a procesS"))
    damaged = script("verify")
    assert damaged.returncode == 1 and "damaged: seq 3 at 0000000000000001.jsonl byte" in damaged.stdout
    status = script("status", "--json")
    assert status.returncode == 0 and orjson.loads(status.stdout)["journal"]["records_through_seq"] == 3
    assert "skipped a damaged journal record: seq 3" in status.stderr


def test_replay_from_and_to_seq_across_segments(power_dir: str) -> None:
    """`replay --from-seq/--to-seq` prints exactly that range, starting in the segment that holds it."""
    from pathlib import Path

    from popkit_power.session import start_session

    Path(power_dir).mkdir(parents=True, exist_ok=True)
    Path(power_dir, "config.json").write_text('{"segment_max_bytes": 4096}')
    session = start_session(power_dir, "segments", sender="human")
    for index in range(60):
        session.publish("message.broadcast", {"text": f"m{index}"}, sender="human")
    assert len(session.journal.segments()) > 2
    result = CliRunner().invoke(main, ["--home", power_dir, "replay", "--json", "--from-seq", "40", "--to-seq", "43"])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line)["seq"] for line in result.output.splitlines()] == [40, 41, 42, 43]


# -- a damaged or planted power directory ------------------------------------------------------------------------------


def _replace_with_dir(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        return
    path.unlink()
    path.mkdir(mode=0o700)


def _replace_with_file(path: Path, content: bytes = b"not what it should be\n") -> None:
    import shutil

    shutil.rmtree(path)
    path.write_bytes(content)


def _replace_with_link(path: Path, target: str) -> None:
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(target)


def _outside(power: Path, kind: str) -> str:
    """A file or directory beside the power directory (never a real system file: a planted link may be written
    through) for planted links to point at."""
    outside = power.parent / f"outside-{kind}"
    if kind == "dir":
        outside.mkdir(mode=0o700, exist_ok=True)
    elif not outside.exists():
        outside.write_text("someone else's file\n")
    return str(outside)


#: name -> what it does to a power directory with an active session (and its path within it).
DAMAGE = {
    "active is a directory": lambda power, sid: _replace_with_dir(power / "active"),
    "active is not UTF-8": lambda power, sid: (power / "active").write_bytes(b"\xff\xfe\x00garbage\n"),
    "active names no session": lambda power, sid: (power / "active").write_text("20990101-000000-gone00\n"),
    "active names a path": lambda power, sid: (power / "active").write_text("../../etc\n"),
    "sessions is a file": lambda power, sid: _replace_with_file(power / "sessions"),
    "the session is a file": lambda power, sid: _replace_with_file(power / "sessions" / sid),
    "the journal is a file": lambda power, sid: _replace_with_file(power / "sessions" / sid / "journal"),
    "a segment is a directory": lambda power, sid: _replace_with_dir(
        power / "sessions" / sid / "journal" / "0000000000000001.jsonl"),
    "a segment links elsewhere": lambda power, sid: _replace_with_link(
        power / "sessions" / sid / "journal" / "0000000000000001.jsonl", _outside(power, "file")),
    "the session links elsewhere": lambda power, sid: _replace_with_link(power / "sessions" / sid,
                                                                          _outside(power, "dir")),
    "active links elsewhere": lambda power, sid: _replace_with_link(power / "active", _outside(power, "file")),
    "config.json links elsewhere": lambda power, sid: (power / "config.json").symlink_to(_outside(power, "file")),
    "a segment is not UTF-8": lambda power, sid: (
        power / "sessions" / sid / "journal" / "0000000000000001.jsonl").write_bytes(b"\xff\xfe{\"seq\":1}\n\x00\n"),
    "the journal lock is a directory": lambda power, sid: _replace_with_dir(
        power / "sessions" / sid / "journal.lock"),
    "snapshots is a file": lambda power, sid: _replace_with_file(power / "sessions" / sid / "snapshots"),
    "config.json is a directory": lambda power, sid: (power / "config.json").mkdir(),
    "origin is a directory": lambda power, sid: _replace_with_dir(power / "origin"),
}

#: Every command that reads or writes a power directory, with arguments that would succeed on a healthy one.
COMMANDS = [["status"], ["status", "--json"], ["verify"], ["replay"], ["replay", "--json"],
            ["publish", "broadcast", "hi"], ["broadcast", "hi"], ["insight", "found it"],
            ["send", "agent-a", "hi"], ["ask", "may I?"], ["approve", "r1"], ["deny", "r1"],
            ["result", "done"], ["claim", "t1"], ["stop"], ["start", "Again"]]


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_damaged_power_directory_is_one_line_never_a_traceback(power_dir: str, damage: str,
                                                                 command: list[str]) -> None:
    """Whatever is broken or planted in the power directory, every command ends in a normal exit or in exit 2 with
    one line on stderr (verify may say DAMAGED with exit 1); no traceback."""
    session = Session.active(support_session(power_dir))
    DAMAGE[damage](Path(power_dir), session.id)
    result = CliRunner().invoke(main, command, catch_exceptions=False)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)
    if result.exit_code == 1:
        assert command[0] == "verify" and result.stdout.startswith("DAMAGED"), result.output
    if result.exit_code == 2:
        one_line_error(result)


def support_session(power_dir: str) -> str:
    """A started session with one agent, one request (r1) and one task (t1) in `power_dir`; returns `power_dir`."""
    from popkit_power.session import start_session

    session = start_session(power_dir, "Damage", sender="tester")
    session.publish("agent.joined", {"name": "agent-a"}, sender="agent-a")
    session.publish("approval.requested", {"request": "r1", "question": "may I?"}, sender="agent-a")
    session.publish("task.created", {"task": "t1", "title": "parser"}, sender="agent-a")
    session.snapshots.save(*session.projection(save_snapshot=False))
    return power_dir


@pytest.mark.parametrize(("code", "name"), [(errno.ENOSPC, "ENOSPC"), (errno.EACCES, "EACCES"),
                                            (errno.EROFS, "EROFS")])
@pytest.mark.parametrize("command", [["broadcast", "hi"], ["publish", "broadcast", "hi"],
                                     ["start", "Again", "--switch"]])
def test_a_file_system_error_is_one_line_naming_the_path(session: Session, monkeypatch: pytest.MonkeyPatch,
                                                         code: int, name: str, command: list[str]) -> None:
    """A full disk, a missing permission or a read-only file system, wherever the library meets it, is one line
    naming the path and the problem (exit 2); without a path, the power directory is named."""
    segment = os.path.join(session.journal.directory, "0000000000000001.jsonl")

    def refuse(self: Session, events: object) -> None:
        raise OSError(code, os.strerror(code), segment)

    monkeypatch.setattr(Session, "append_events", refuse)
    line = one_line_error(run(*command))
    assert line == f"popkit-power: {segment}: {os.strerror(code)} ({name})"

    def refuse_without_path(self: Session, events: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Session, "append_events", refuse_without_path)
    line = one_line_error(run(*command))
    assert line == f"popkit-power: {os.strerror(code)} ({name}), in {session.power_dir}"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes whatever the modes say")
def test_a_journal_without_permission_is_one_line(session: Session) -> None:
    """A real EACCES: the journal directory made unreadable and unwritable."""
    os.chmod(session.journal.directory, 0)
    try:
        for command in (["broadcast", "hi"], ["status"], ["verify"]):
            assert "Permission denied (EACCES)" in one_line_error(run(*command))
    finally:
        os.chmod(session.journal.directory, 0o700)


@pytest.mark.parametrize("damage", ["a segment links elsewhere", "the session links elsewhere"])
def test_a_planted_link_is_never_written_through(power_dir: str, damage: str) -> None:
    """A link planted in the power directory is refused, not followed: what it points at stays as it was."""
    session = Session.active(support_session(power_dir))
    DAMAGE[damage](Path(power_dir), session.id)
    outside = Path(power_dir).parent
    before = {path: path.read_bytes() for path in outside.glob("outside-*/**/*") if path.is_file()}
    before.update({path: path.read_bytes() for path in outside.glob("outside-*") if path.is_file()})
    CliRunner().invoke(main, ["broadcast", "hi"], catch_exceptions=False)
    after = {path: path.read_bytes() for path in outside.glob("outside-*/**/*") if path.is_file()}
    after.update({path: path.read_bytes() for path in outside.glob("outside-*") if path.is_file()})
    assert after == before


# -- read-only use: status, verify and replay create and write nothing -------------------------------------------------

def _run_read_only(power_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`popkit-power --home POWER_DIR ARGS` with the power directory read-only: a private read-only bind mount as
    root (chmod would not stop root), chmod a-w otherwise."""
    import shutil

    command = [str(SCRIPT), "--home", power_dir, *args]
    if os.geteuid() != 0:
        subprocess.run(["chmod", "-R", "a-w", power_dir], check=True)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=60)
        finally:
            subprocess.run(["chmod", "-R", "u+w", power_dir], check=True)
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to make a read-only mount as root")
    script = 'mount --bind -o ro "$1" "$1" || exit 97; touch "$1/probe" 2>/dev/null && exit 98; shift; exec "$@"'
    result = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", power_dir, *command],
                            capture_output=True, text=True, timeout=60)
    if result.returncode == 97:
        pytest.skip(f"cannot bind-mount read-only here: {result.stderr.strip()}")
    return result


def _tree(power_dir: str) -> dict[str, bytes | None]:
    return {str(path): (path.read_bytes() if path.is_file() else None) for path in Path(power_dir).rglob("*")}


@pytest.mark.slow
@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["replay"], ["verify"]])
def test_read_commands_work_on_a_read_only_power_directory(power_dir: str, args: list[str]) -> None:
    """Even with more records than `snapshot_every_events` (a snapshot is due), nothing is written or needed."""
    Path(power_dir).mkdir(mode=0o700)
    Path(power_dir, "config.json").write_text('{"snapshot_every_events": 100}')
    assert run("--home", power_dir, "start", "Read only").exit_code == 0
    session = Session.active(power_dir)
    session.append_events([session.event("message.broadcast", {"text": str(n)}, sender="human") for n in range(120)])
    before = _tree(power_dir)
    result = _run_read_only(power_dir, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and result.stdout
    assert _tree(power_dir) == before


@pytest.mark.parametrize("args", [["status"], ["replay"], ["verify"]])
def test_read_commands_never_create_a_missing_journal(power_dir: str, args: list[str]) -> None:
    """A session whose journal directory is gone is reported, not given an empty new journal."""
    import shutil

    assert run("--home", power_dir, "start", "Lost journal").exit_code == 0
    session = Session.active(power_dir)
    shutil.rmtree(session.journal.directory)
    result = subprocess.run([str(SCRIPT), "--home", power_dir, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no journal at" in result.stderr, result
    assert not Path(session.journal.directory).exists()


def test_an_empty_question_is_refused(session: Session) -> None:
    for question in ("", "   "):
        result = run("--home", session.power_dir, "ask", question)
        assert result.exit_code == 2 and "the question is empty" in result.output
    assert not Session.active(session.power_dir).projection()[0]["approvals"]


def test_a_reader_that_goes_away_ends_replay_quietly(session: Session) -> None:
    """`popkit-power replay | head -1`: the closed pipe is not an error to report."""
    session.append_events([session.event("message.broadcast", {"text": "x" * 200}, sender="human")] * 2000)
    script = f'"{SCRIPT}" --home "{session.power_dir}" replay | head -1'
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stderr == "" and result.returncode == 0, result
    assert result.stdout.count("\n") == 1


# -- status: what a person running the agents sees --------------------------------------------------------------------

ALICE = "3f2a9b1c-5d4e-4f60-8a7b-1c2d3e4f5a6b:main"
BOB = "9c41d2e3-f4a5-4b6c-9d7e-8f9a0b1c2d3e:main"


def team_session(power_dir: str) -> Session:
    """A session as the hook, the coordinator and the CLI write it, at 10:00:00 UTC (time frozen by the caller): a
    coordinator, an agent at work on a task, a lost one whose task was orphaned, an insight and its near-duplicate,
    and a pending approval. The coordinator's last status and the first agent's last tool call are at 10:00:48."""
    from freezegun import freeze_time

    assert run("start", "Add OAuth login").exit_code == 0
    session = Session.active(power_dir)
    with freeze_time("2026-11-24 10:00:00") as clock:
        session.publish("coordinator.started", {"pid": 4242, "host": "laptop"}, sender="coordinator")
        for key, pid, cwd in ((ALICE, 5001, "/home/dev/webapp"), (BOB, 5002, "/home/dev/webapp-api")):
            claude_session = key.split(":")[0]
            session.publish("agent.joined", {"name": f"main-{claude_session[:6]}", "claude_session": claude_session,
                                             "agent_id": "main", "pid": pid, "host": "laptop", "cwd": cwd},
                            sender=key)
        session.publish("task.created", {"task": "t-callback", "title": "Implement the OAuth callback"},
                        sender="human")
        session.publish("task.created", {"task": "t-tokens", "title": "Store refresh tokens"}, sender="human")
        session.publish("task.claimed", {"task": "t-callback"}, sender=ALICE)
        session.publish("task.claimed", {"task": "t-tokens"}, sender=BOB)
        session.publish("insight.shared", {"text": "The OAuth state parameter is not validated"}, sender=ALICE)
        session.publish("insight.shared", {"text": "OAuth state parameter is not validated!"}, sender=BOB)
        session.publish("approval.requested", {"request": "r-drop-legacy", "question": "Drop the legacy sessions "
                                               "table?", "options": ["drop", "keep"]}, sender=BOB)
        clock.tick(30)
        session.publish("agent.lost", {"agent": BOB, "reason": "process 5002 is gone"}, sender="coordinator")
        session.publish("task.orphaned", {"task": "t-tokens", "agent": BOB}, sender="coordinator")
        clock.tick(18)
        session.publish("agent.tool", {"tool": "Edit", "ok": True, "file": "/home/dev/webapp/src/callback.py"},
                        sender=ALICE)
        session.publish("coordinator.status", {"agents": 1, "open_tasks": 2}, sender="coordinator")
    return session


def test_status_text_shows_the_team(power_dir: str) -> None:
    """Through the real CLI, 12 s after the last events: the coordinator alive with its pid, host and the age of its
    status; each agent with its folder, state, age (the lost one's is of its own last event), task and files; the
    lost one with its reason; the orphaned task;
    the pending approval with its asker and options; the insight with its author and its duplicate counted. Plain
    text: no escape codes, no agent's key."""
    from freezegun import freeze_time

    session = team_session(power_dir)
    with freeze_time("2026-11-24 10:01:00"):
        result = run("status")
    assert result.exit_code == 0
    text = result.stdout
    lines = text.splitlines()
    assert "\x1b" not in text and ALICE not in text and BOB not in text
    assert lines[0].split() == ["session", session.id, "(active)", "as", "of", "10:01:00", "UTC"]
    assert "coordinator  alive  pid 4242 on laptop, last status 12 s ago" in lines
    assert "agents  2 (1 active, 1 lost)" in lines
    assert [line.split() for line in lines if line.startswith("  main-")][:2] == [
        ["main-3f2a9b", "webapp", "active", "12", "s", "ago", "t-callback", "Implement", "the", "OAuth", "callback",
         "src/callback.py"],
        ["main-9c41d2", "webapp-api", "lost", "1", "min", "ago", "lost:", "process", "5002", "is", "gone", "-"]]
    assert "tasks  2 unfinished (1 orphaned)" in lines
    assert [line.split() for line in lines if line.startswith("  t-")] == [
        ["t-tokens", "orphaned", "was", "main-9c41d2", "1", "Store", "refresh", "tokens"],
        ["t-callback", "claimed", "main-3f2a9b", "1", "Implement", "the", "OAuth", "callback"]]
    approval = next(line for line in lines if line.startswith("  r-drop-legacy"))
    assert approval.split() == ["r-drop-legacy", "main-9c41d2", "1", "min", "ago", "Drop", "the", "legacy",
                                "sessions", "table?", "drop", "/", "keep"]
    assert "insights  1 (1 duplicate held back)" in lines
    assert "  main-3f2a9b  The OAuth state parameter is not validated (+1 similar)" in lines


def test_status_json_holds_the_computed_fields(power_dir: str) -> None:
    from freezegun import freeze_time

    session = team_session(power_dir)
    with freeze_time("2026-11-24 10:01:00"):
        printed = run("status", "--json").stdout
    assert printed.endswith("}\n") and printed.count("\n") == 1
    info = orjson.loads(printed)
    assert info["session"] == session.id and info["now"] == "2026-11-24T10:01:00.000000Z"
    coordinator = info["coordinator"]
    assert (coordinator["health"], coordinator["alive"], coordinator["age_seconds"], coordinator["ago"]) == (
        "alive", True, 12.0, "12 s ago")
    assert (coordinator["pid"], coordinator["host"], coordinator["silent_after_seconds"]) == (4242, "laptop", 45)
    assert info["names"] == {ALICE: "main-3f2a9b", BOB: "main-9c41d2", "human": "human"}
    alice, bob = info["agents"][ALICE], info["agents"][BOB]
    assert (alice["ago"], alice["age_seconds"], alice["label"], alice["recent_files"]) == (
        "12 s ago", 12.0, "webapp", ["src/callback.py"])
    assert (bob["status"], bob["lost_reason"], bob["ago"]) == ("lost", "process 5002 is gone", "1 min ago")
    assert info["unfinished_tasks"] == ["t-tokens", "t-callback"] and info["pending_approvals"] == ["r-drop-legacy"]
    assert info["approvals"]["r-drop-legacy"]["ago"] == "1 min ago"
    assert [insight["duplicates"] for insight in info["insights"]] == [1, 0]
    with freeze_time("2026-11-24 10:02:00"):
        later = orjson.loads(run("status", "--json").stdout)["coordinator"]
    assert (later["health"], later["alive"], later["ago"]) == ("silent", False, "1 min ago")


def test_status_watch_redraws_and_stops_after_count(session: Session) -> None:
    """Not on a terminal, --watch prints one status after another; --count 2 stops after the second, exit 0. Each
    refresh reads the journal again: an event appended between the two shows in the second."""
    from popkit_power.cli import sessions

    def append_between(seconds: float) -> None:
        assert seconds == 0.25
        session.publish("agent.joined", {"name": "late-joiner"}, sender="late-joiner")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sessions.time, "sleep", append_between)
        result = run("status", "--watch", "--count", "2", "--interval", "0.25")
    assert result.exit_code == 0 and "\x1b" not in result.stdout
    frames = result.stdout.split("\n\nsession ")
    assert len(frames) == 2 and result.stdout.count(f"{session.id} (active)") == 2
    assert "agents  none yet" in frames[0] and "late-joiner" not in frames[0]
    assert "agents  1 (1 active)" in frames[1] and "late-joiner" in frames[1]


def test_status_watch_json_is_one_object_per_refresh(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from popkit_power.cli import sessions

    monkeypatch.setattr(sessions.time, "sleep", lambda seconds: None)
    result = run("status", "--watch", "--json", "--count", "3")
    assert result.exit_code == 0
    assert [orjson.loads(line)["session"] for line in result.stdout.splitlines()] == [session.id] * 3


def test_status_watch_follows_the_session_that_is_started(power_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Watching with no session yet shows Power Mode off, then the session once one is started."""
    from popkit_power.cli import sessions
    from popkit_power.session import start_session

    monkeypatch.setattr(sessions.time, "sleep", lambda seconds: start_session(power_dir, "Late", sender="human"))
    result = run("status", "--watch", "--count", "2")
    assert result.exit_code == 0
    assert result.stdout.startswith("Power Mode off") and "objective    Late" in result.stdout


def test_ctrl_c_ends_status_watch_cleanly(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from popkit_power.cli import sessions

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sessions.time, "sleep", interrupt)
    result = run("status", "--watch")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.count(f"{session.id} (active)") == 1


def test_colour_and_redrawing_in_place_only_on_a_terminal(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drawn for a terminal (rich's Console(force_terminal=True)), status has colour codes, and --watch moves the
    cursor back up to draw over the previous status; the same commands on a pipe have no escape code at all."""
    import io

    from rich.console import Console

    from popkit_power.cli import sessions

    session.publish("agent.joined", {"name": "[red]not red[/red]"}, sender="agent-a")
    monkeypatch.setattr(sessions.time, "sleep", lambda seconds: None)
    assert "\x1b" not in run("status").stdout + run("status", "--watch", "--count", "2").stdout

    screens: list[io.StringIO] = []

    def terminal(file: object = None) -> Console:
        screens.append(io.StringIO())
        return Console(file=screens[-1], force_terminal=True, color_system="standard", width=100, height=60,
                       markup=False, highlight=False)

    monkeypatch.setattr(sessions, "make_console", terminal)
    once = run("status")
    assert once.exit_code == 0 and "\x1b[32mactive\x1b[0m" in once.stdout  # an active agent is green
    assert "[red]not red[/red]" in once.stdout
    assert run("status", "--watch", "--count", "2").exit_code == 0
    drawn = screens[-1].getvalue()
    # two statuses (and Live's last redraw as it stops), each after erasing the lines of the one before
    assert drawn.count(f"{session.id}\x1b[0m (active)") == 3 and drawn.count("\r\x1b[2K\x1b[1A") == 2
    assert "\x1b[?25l" in drawn and drawn.endswith("\x1b[?25h")  # cursor hidden while watching, shown after


def test_status_watch_into_a_pipe_that_closes_ends_quietly(session: Session) -> None:
    """`popkit-power status --watch | head -3`: when head has read its lines, the watch ends, exit 0, silently."""
    script = f'"{SCRIPT}" --home "{session.power_dir}" status --watch --interval 0.05 | head -3'
    result = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stderr == "" and result.returncode == 0, result
    assert len(result.stdout.splitlines()) == 3


def test_the_cli_starts_without_rich(tmp_path: Path) -> None:
    """rich (~40 ms to import) is loaded only to draw status: agents' commands like `popkit-power send` never pay."""
    probe = "import sys, popkit_power.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out
