"""The hook: what it appends, what it answers, and that it never breaks an agent.

Most tests call `hook.run` in-process with real files; the ones about exit codes and stdout run the installed
`popkit-power-hook` script as Claude Code would.
"""

from __future__ import annotations

import importlib
import io
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from freezegun import freeze_time

from popkit_power.hook import entry as hook
from popkit_power.keys import HOOK_LOG
from popkit_power.session import Session

HOOK_SCRIPT = Path(sys.executable).parent / "popkit-power-hook"
CLAUDE = "c0ffee00-1111-2222-3333-444455556666"
OTHER = "beef0000-1111-2222-3333-444455556666"


@pytest.fixture
def home(power_dir: str) -> str:
    """conftest's power directory, under the name these tests give it."""
    return power_dir


def payload(event: str, claude: str = CLAUDE, **fields: Any) -> dict[str, Any]:
    return {"session_id": claude, "transcript_path": "/t.jsonl", "cwd": "/repo", "hook_event_name": event, **fields}


def tool(name: str = "Bash", claude: str = CLAUDE, **fields: Any) -> dict[str, Any]:
    return payload("PostToolUse", claude, tool_name=name, tool_input=fields.pop("tool_input", {"command": "ls"}),
                   tool_response=fields.pop("tool_response", {"stdout": ""}), duration_ms=7, **fields)


def call(home: str, data: dict[str, Any] | bytes, environ: dict[str, str] | None = None) -> str | None:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return hook.run(io.BytesIO(raw), home, environ or {"CLAUDE_PID": "4242"})


def context(reply: str | None) -> str:
    assert reply is not None, "expected the hook to answer"
    output = orjson.loads(reply)["hookSpecificOutput"]
    assert output["hookEventName"] in hook.HANDLED_EVENTS
    text: str = output["additionalContext"]
    return text


def events(session: Session) -> list[dict[str, Any]]:
    return list(session.journal.reader())


def run_script(home: str, stdin: bytes, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "POPKIT_POWER_HOME": home}
    return subprocess.run([str(HOOK_SCRIPT)], input=stdin, env=env, capture_output=True, timeout=60, **kwargs)


def log_lines(home: str) -> list[str]:
    path = Path(home, HOOK_LOG)
    return path.read_text().splitlines() if path.exists() else []


# -- Power Mode off and bad input --------------------------------------------------------------------------------------

def test_power_mode_off_exits_at_once_without_output_or_files(home: str) -> None:
    completed = run_script(home, orjson.dumps(tool()))
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, b"", b"")
    assert not Path(home).exists(), "the hook must not create anything while Power Mode is off"


@pytest.mark.parametrize(("stdin", "logged"), [
    (b"{not json", "payload is not JSON"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b'{"session_id": "x", "hook_event_name": "Bogus"}', "unknown hook event 'Bogus'"),
    (b'["a list"]', "payload is not a JSON object"),
    (b'{"hook_event_name": "PostToolUse"}', "has no session_id"),
])
def test_bad_payloads_exit_0_silently_with_one_log_line(session: Session, stdin: bytes, logged: str) -> None:
    before = events(session)
    completed = run_script(session.power_dir, stdin)
    assert (completed.returncode, completed.stdout, completed.stderr) == (0, b"", b"")
    (line,) = log_lines(session.power_dir)
    assert logged in line and " error [hook-input-invalid]: HookInputError: " in line, line
    assert events(session) == before, "nothing is appended for a payload the hook cannot use"


def test_huge_payload_is_refused_without_output(session: Session) -> None:
    big = orjson.dumps(tool(tool_response={"stdout": "x" * (hook.MAX_PAYLOAD_BYTES + 10)}))
    completed = run_script(session.power_dir, big)
    assert (completed.returncode, completed.stdout) == (0, b"")
    assert "payload over" in log_lines(session.power_dir)[0]


def test_full_disk_exits_0_and_leaves_the_journal_whole(session: Session) -> None:
    """A real write failure: the hook runs under a file-size limit (RLIMIT_FSIZE) it hits when appending."""
    segment = Path(session.journal.directory) / "0000000000000001.jsonl"
    limit = segment.stat().st_size + 10

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    completed = run_script(session.power_dir, orjson.dumps(tool()), preexec_fn=limit_file_size)
    assert (completed.returncode, completed.stdout) == (0, b"")
    assert any("error [journal-failed]: JournalError" in line for line in log_lines(session.power_dir))
    assert [e["seq"] for e in events(session)] == [1, 2]
    assert session.journal.has_torn_tail() is None


def test_read_only_disk_exits_0(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected fault (a read-only file system cannot be made on demand without privileges): every write fails."""
    real_open = os.open

    def read_only_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    segment = Path(session.journal.directory) / "0000000000000001.jsonl"
    before = segment.read_bytes()
    # Loaded before log_error is patched: a module first imported under the patch would keep the stand-in for good
    # (its `from .log import log_error`), and later tests' hook errors would never reach hook.log.
    importlib.import_module("popkit_power.hook.handlers")
    monkeypatch.setattr(os, "open", read_only_open)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(orjson.dumps(tool()))))
    monkeypatch.setenv("POPKIT_POWER_HOME", session.power_dir)
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdout", stdout)
    logged: list[str] = []
    monkeypatch.setattr("popkit_power.hook.log.log_error",
                        lambda power_dir, message, *, code: logged.append(f"[{code}] {message}"))
    assert hook.main() == 0
    monkeypatch.undo()
    assert stdout.buffer.getvalue() == b""  # type: ignore[attr-defined]
    assert segment.read_bytes() == before, "nothing was written"
    assert len(logged) == 1 and "Read-only file system" in logged[0], "the hook got as far as writing"
    assert logged[0].startswith("[os-error] "), logged


# -- what gets recorded ------------------------------------------------------------------------------------------------

def test_tool_calls_record_agent_tool_file_and_heartbeat_every_n(session: Session) -> None:
    call(session.power_dir, tool("Edit", tool_input={"file_path": "/repo/a.py", "old_string": "a",
                                                      "new_string": "b"}))
    for _ in range(4):
        call(session.power_dir, tool("Read", tool_input={"file_path": "/repo/b.py"}))
    recorded = events(session)[2:]
    assert [e["type"] for e in recorded] == ["agent.joined"] + ["agent.tool"] * 5 + ["agent.heartbeat"]
    joined = recorded[0]
    assert joined["from"] == f"{CLAUDE}:main" and joined["data"]["pid"] == 4242
    assert recorded[1]["data"] == {"tool": "Edit", "ok": True, "file": "/repo/a.py", "ms": 7}
    heartbeat = recorded[-1]["data"]
    assert heartbeat["tool_calls"] == 5 and heartbeat["tool_counts"] == {"Edit": 1, "Read": 4}
    assert heartbeat["files_touched"] == ["/repo/a.py", "/repo/b.py"]


def test_tool_failure_is_recorded_with_its_error(session: Session) -> None:
    failure = payload("PostToolUseFailure", tool_name="Bash", tool_input={"command": "false"}, error="exit 1" * 100)
    call(session.power_dir, failure)
    (event,) = [e for e in events(session) if e["type"] == "agent.tool"]
    assert event["data"]["ok"] is False and len(event["data"]["error"]) == 300


def test_subagent_lifecycle_becomes_a_task_with_owner_and_result(session: Session) -> None:
    home = session.power_dir
    welcome = context(call(home, payload("SubagentStart", agent_id="a1b2c3", agent_type="Explore")))
    assert f"--as {CLAUDE}:a1b2c3" in welcome
    launched = tool("Agent", tool_input={"description": "map the parser", "prompt": "...",
                                         "subagent_type": "Explore"},
                    tool_response={"status": "async_launched", "agentId": "a1b2c3"})
    call(home, launched)
    call(home, tool("Grep", agent_id="a1b2c3", agent_type="Explore"))
    call(home, payload("SubagentStop", agent_id="a1b2c3", agent_type="Explore",
                       last_assistant_message="The parser has 3 entry points."))
    state, _ = session.projection()
    task = state["finished"]["agent-a1b2c3"]
    assert task["owner"] == f"{CLAUDE}:a1b2c3" and task["status"] == "completed"
    assert task["title"] == "map the parser" and task["result"] == "The parser has 3 entry points."
    assert state["agents"][f"{CLAUDE}:a1b2c3"]["status"] == "left"
    assert state["agents"][f"{CLAUDE}:a1b2c3"]["parent"] == f"{CLAUDE}:main"


def test_stop_and_session_end_mark_the_agent_idle_then_left(session: Session) -> None:
    call(session.power_dir, payload("SessionStart", source="startup"))
    assert call(session.power_dir, payload("Stop", stop_hook_active=False)) is None
    state, _ = session.projection()
    assert state["agents"][f"{CLAUDE}:main"]["status"] == "idle"
    assert call(session.power_dir, payload("SessionEnd", reason="prompt_input_exit")) is None
    state, _ = session.projection()
    assert state["agents"][f"{CLAUDE}:main"]["status"] == "left"


# -- what the agent is told --------------------------------------------------------------------------------------------

def test_session_start_welcomes_with_objective_others_and_commands(session: Session) -> None:
    call(session.power_dir, payload("SessionStart", OTHER, source="startup"))
    text = context(call(session.power_dir, payload("SessionStart", source="startup")))
    assert 'Objective: "Ship the parser"' in text
    assert f"main-{OTHER[:6]} (active" in text
    for verb in ("insight", "send", "broadcast", "result", "ask"):
        assert f"popkit-power {verb} " in text
    assert "--as" not in text, "the main agent's Bash commands identify it by themselves"


def test_news_is_delivered_once_and_nothing_new_means_no_output(session: Session) -> None:
    home = session.power_dir
    call(home, payload("SessionStart", source="startup"))
    assert call(home, tool()) is None
    session.publish("message.broadcast", {"text": "use pytest -x"}, sender="human")
    session.publish("message.direct", {"text": "take the lexer"}, sender=f"{OTHER}:main", to=f"{CLAUDE}:main")
    session.publish("message.direct", {"text": "not for you"}, sender="human", to=f"{OTHER}:main")
    text = context(call(home, tool()))
    assert '[broadcast from human] "use pytest -x"' in text
    assert "take the lexer" in text and "not for you" not in text
    assert call(home, tool()) is None, "each item reaches the agent once"


def test_own_events_are_not_echoed_back(session: Session) -> None:
    call(session.power_dir, tool())
    session.publish("insight.shared", {"text": "mine"}, sender=f"{CLAUDE}:main")
    assert call(session.power_dir, tool()) is None


def test_near_duplicate_insights_are_held_back(session: Session) -> None:
    call(session.power_dir, tool())
    session.publish("insight.shared", {"text": "The cache key lacks the tenant id", "tags": ["cache"]},
                    sender=f"{OTHER}:main")
    session.publish("insight.shared", {"text": "the cache key lacks the tenant id!"}, sender="x:main")
    text = context(call(session.power_dir, tool()))
    assert text.count("tenant id") == 1 and "[cache]" in text


def test_approval_answer_reaches_only_the_asking_agent(session: Session) -> None:
    home = session.power_dir
    call(home, tool())
    call(home, tool(claude=OTHER))
    session.publish("approval.requested", {"request": "r1", "question": "Drop table?"}, sender=f"{CLAUDE}:main")
    session.publish("approval.granted", {"request": "r1", "note": "after backup"}, sender="human")
    assert '[approval GRANTED by human] your request r1 "Drop table?": "after backup"' in context(call(home, tool()))
    assert call(home, tool(claude=OTHER)) is None


def test_context_is_capped_and_the_rest_follows_next_time(session: Session) -> None:
    Path(session.power_dir, "config.json").write_text('{"context_max_chars": 500}')
    call(session.power_dir, tool())
    for index in range(12):
        session.publish("message.broadcast", {"text": f"note {index:02d} " + "x" * 60}, sender="human")
    first = context(call(session.power_dir, tool()))
    assert len(first) <= 500 and "more after your next tool call" in first
    delivered = [f"note {i:02d}" for i in range(12) if f"note {i:02d}" in first]
    rest = ""
    for _ in range(5):
        reply = call(session.power_dir, tool())
        rest += context(reply) if reply else ""
    assert all(f"note {i:02d}" in first + rest for i in range(12))
    assert not any(note in rest for note in delivered), "nothing is delivered twice"


PARSER_EDIT = {"file_path": "/repo/parser.py", "old_string": "a", "new_string": "b"}


def this_agent_edits_the_parser_at_ten(home: str) -> None:
    """Both agents are known; this one (CLAUDE) edits /repo/parser.py at 10:00."""
    with freeze_time("2026-11-24 10:00:00"):
        call(home, tool(claude=OTHER))
        call(home, tool("Edit", tool_input=PARSER_EDIT))


def test_edit_conflict_is_warned_to_both_agents_within_the_window(session: Session) -> None:
    home = session.power_dir
    edit = PARSER_EDIT
    this_agent_edits_the_parser_at_ten(home)
    with freeze_time("2026-11-24 10:01:00"):
        warning = context(call(home, tool("Edit", claude=OTHER, tool_input=edit)))
    assert "[conflict]" in warning and "/repo/parser.py" in warning
    with freeze_time("2026-11-24 10:01:30"):
        other_side = context(call(home, tool()))
    assert f"main-{OTHER[:6]} also edited /repo/parser.py" in other_side
    with freeze_time("2026-11-24 10:02:00"):  # the same write of the other agent is not warned about twice
        assert call(home, tool("Edit", claude=OTHER, tool_input=edit)) is None


def test_no_conflict_outside_the_window(session: Session) -> None:
    home = session.power_dir
    edit = PARSER_EDIT
    this_agent_edits_the_parser_at_ten(home)
    with freeze_time("2026-11-24 11:00:00"):
        assert call(home, tool("Edit", claude=OTHER, tool_input=edit)) is None


def test_parallel_tool_calls_of_one_agent_get_each_item_exactly_once(session: Session) -> None:
    """Claude Code runs the PostToolUse hooks of parallel tool calls at the same time: real concurrent processes of
    one agent share the news between them, each item once, and the journal stays whole."""
    call(session.power_dir, tool())
    for index in range(5):
        session.publish("message.broadcast", {"text": f"item-{index}"}, sender="human")
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir}
    processes = [subprocess.Popen([str(HOOK_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                 for _ in range(8)]
    outputs = [process.communicate(orjson.dumps(tool()), timeout=60)[0] for process in processes]
    texts = [context(out.decode()) for out in outputs if out]
    delivered = [line for text in texts for line in text.splitlines() if "item-" in line]
    assert sorted(delivered) == [f'- [broadcast from human] "item-{index}"' for index in range(5)]
    assert len(texts) == 1
    recorded = [e for e in events(session) if e["type"] == "agent.tool"]
    assert len(recorded) == 9
    assert [e["seq"] for e in events(session)] == list(range(1, len(events(session)) + 1))


# -- regressions from the review of this issue ---------------------------------------------------------------------

def test_a_long_backlog_is_delivered_whole_and_once(session: Session) -> None:
    """More news than fits in many replies: reading stops while lines wait, so nothing is dropped or repeated."""
    call(session.power_dir, tool())
    for index in range(120):
        session.publish("message.broadcast", {"text": f"b{index:03d}"}, sender="human")
    seen: list[str] = []
    for _ in range(40):
        reply = call(session.power_dir, tool())
        if reply is None:
            break
        seen += [line.split("] ")[1].strip('"') for line in context(reply).splitlines() if "[broadcast" in line]
    assert seen == [f"b{index:03d}" for index in range(120)]


def test_reply_is_utf8_whatever_the_locale(session: Session) -> None:
    call(session.power_dir, tool())
    session.publish("message.broadcast", {"text": "déploiement bloqué → 接口"}, sender="human")
    env = {**os.environ, "POPKIT_POWER_HOME": session.power_dir, "PYTHONIOENCODING": "cp1252"}
    completed = subprocess.run([str(HOOK_SCRIPT)], input=orjson.dumps(tool()), env=env, capture_output=True,
                               timeout=60)
    assert completed.returncode == 0 and completed.stderr == b""
    assert "déploiement bloqué → 接口" in context(completed.stdout.decode("utf-8"))


def test_a_new_agent_hears_what_others_wrote_right_after_its_first_events(
        session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """Injected interleaving: another agent appends between this agent's first append and its first read."""
    real_append = Session.append_events

    def append_then_other(self: Session, built: list[dict[str, Any]]) -> Any:
        appended = real_append(self, built)
        if built[0]["type"] == "agent.joined":
            real_append(self, [self.event("message.broadcast", {"text": "right after you"}, sender=f"{OTHER}:main")])
        return appended

    monkeypatch.setattr(Session, "append_events", append_then_other)
    assert "right after you" in context(call(session.power_dir, tool()))


def test_a_line_longer_than_the_whole_budget_gets_a_reply_of_its_own(session: Session) -> None:
    """Issue 6, item 8: a news item longer than `context_max_chars` is delivered whole (alone, up to Claude Code's
    10,000-character cap), never cut with the rest lost."""
    Path(session.power_dir, "config.json").write_text('{"context_max_chars": 500}')
    call(session.power_dir, tool())
    session.publish("message.broadcast", {"text": "long " * 400}, sender="human")
    session.publish("message.broadcast", {"text": "after"}, sender="human")
    text = context(call(session.power_dir, tool()))
    assert f'[broadcast from human] "{"long " * 400}"' in text and '"after"' not in text
    assert len(text) < 10_000
    assert '"after"' in context(call(session.power_dir, tool()))


def test_a_message_from_a_person_has_no_reply_hint_that_would_fail(session: Session) -> None:
    call(session.power_dir, tool())
    session.publish("message.direct", {"text": "hi"}, sender="human", to=f"{CLAUDE}:main")
    session.publish("message.direct", {"text": "yo"}, sender=f"{OTHER}:main", to=f"{CLAUDE}:main")
    lines = context(call(session.power_dir, tool())).splitlines()
    assert lines[1] == '- [message to you from human] "hi"'
    assert lines[2].endswith(f"(reply: popkit-power send main-{OTHER[:6]} \"...\")")


def test_damage_seen_at_session_start_goes_to_the_log_not_stderr(session: Session) -> None:
    session.publish("message.broadcast", {"text": "x"}, sender="human")
    segment = Path(session.journal.directory) / "0000000000000001.jsonl"
    data = bytearray(segment.read_bytes())
    data[data.index(b'"text":"x"') + 8] = ord("y")
    segment.write_bytes(bytes(data))
    completed = run_script(session.power_dir, orjson.dumps(payload("SessionStart", source="startup")))
    assert completed.returncode == 0 and completed.stderr == b""
    assert "Power Mode is on" in context(completed.stdout.decode())
    assert any("damaged journal record: seq 3" in line for line in log_lines(session.power_dir))
