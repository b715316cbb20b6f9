"""The recorded sessions in journal/sessions/: reproducible, replayed to the state they should show, and usable
with `popkit-power replay` and `verify`."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
import recorded_sessions
import support
from click.testing import CliRunner
from recorded_sessions import ALICE, BOB, CAROL, EXPLORER

from popkit_power.cli import main
from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Journal, segment_name
from popkit_power.projector import State, live_agents, open_tasks_of, project

NAMES = sorted(recorded_sessions.SESSIONS)


def _state(name: str) -> State:
    journal = Journal(str(recorded_sessions.segment_file(name).parent), read_only=True)
    records, _damaged = support.read_all(journal)
    return project(records)


@pytest.fixture
def power_copy(tmp_path: Path) -> Path:
    """A power directory holding a copy of every recorded session (so nothing is written into the repository)."""
    home = tmp_path / "power"
    shutil.copytree(recorded_sessions.ROOT, home / "sessions",
                    ignore=shutil.ignore_patterns("journal.lock", "snapshots", "agents", "*.torn-*"))
    return home


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_files_are_what_the_generator_writes(name: str) -> None:
    """tests/recorded_sessions.py reproduces each committed segment byte for byte (so the data is not edited by hand
    and a change of the line format shows up here)."""
    assert recorded_sessions.segment_file(name).read_bytes() == recorded_sessions.segment_bytes(name)


def test_team_of_two_replays_to_its_story() -> None:
    """Two agents and a subagent: who owns what, the subagent's result, the near-duplicate insight, the granted
    approval, the edit conflict, and who is still live."""
    state = _state("team-of-two")
    tasks = {**state["finished"], **state["tasks"]}
    assert set(state["finished"]) == {"t-token-store", "agent-a7e3c9"}, "finished tasks leave the open ones"
    assert (tasks["t-oauth-callback"]["owner"], tasks["t-oauth-callback"]["status"]) == (ALICE, "claimed")
    assert tasks["t-oauth-callback"]["attempts"] == 1  # Bob's later claim lost
    assert (tasks["t-token-store"]["owner"], tasks["t-token-store"]["status"]) == (BOB, "completed")
    subagent_task = tasks["agent-a7e3c9"]
    assert (subagent_task["owner"], subagent_task["status"], subagent_task["parent"]) == (EXPLORER, "completed", ALICE)
    assert "src/auth/providers.py" in subagent_task["result"] and subagent_task["completed_by"] == EXPLORER
    assert state["orphans"] == [] and open_tasks_of(state, ALICE) == ["t-oauth-callback"]
    first, second = state["insights"]
    assert (first["from"], first["dup_of"]) == (ALICE, None)
    assert (second["from"], second["dup_of"]) == (BOB, first["id"])
    assert state["approvals"] == {}
    approval = state["answered"]["drop-legacy-sessions"]
    assert (approval["status"], approval["from"], approval["by"]) == ("granted", BOB, "human")
    [conflict] = state["conflicts"]
    assert (conflict["file"], conflict["agents"]) == ("src/auth/callback.py", [ALICE, BOB])
    assert {key: agent["status"] for key, agent in state["agents"].items()} == {
        ALICE: "active", BOB: "idle", EXPLORER: "left"}
    assert state["agents"][EXPLORER]["parent"] == ALICE and live_agents(state) == [ALICE, BOB]
    assert state["objective"]["text"] == "Add OAuth login to the web app"
    assert state["coordinator"]["status"] == "running" and state["closed"] is None
    assert state["counts"]["message.direct"] == 1 and state["counts"]["message.broadcast"] == 1


def test_orphan_reclaimed_replays_to_its_story() -> None:
    """Alice is lost with two tasks: Carol's claim of t-schema wins over Bob's later one (attempt 2), t-runbook is
    still orphaned, Bob's copy failed, the objective was updated and the session closed."""
    state = _state("orphan-reclaimed")
    schema = state["finished"]["t-schema"]
    assert (schema["owner"], schema["status"], schema["attempts"], schema["previous_owner"]) == (
        CAROL, "completed", 2, ALICE)
    assert state["orphans"] == ["t-runbook"]
    runbook = state["tasks"]["t-runbook"]
    assert (runbook["owner"], runbook["status"], runbook["previous_owner"]) == (None, "orphaned", ALICE)
    assert (state["finished"]["t-data"]["status"], state["finished"]["t-data"]["owner"]) == ("failed", BOB)
    assert {key: agent["status"] for key, agent in state["agents"].items()} == {
        ALICE: "lost", BOB: "active", CAROL: "left"}
    assert state["agents"][ALICE]["lost_reason"] == "process 7201 is gone"
    assert state["agents"][BOB]["failures"] == 1
    assert state["objective"]["text"] == "Migrate billing to Postgres 16; the runbook can wait"
    assert state["coordinator"]["status"] == "stopped" and state["closed"] is not None


def test_corrupt_session_replays_without_the_damaged_claim_and_the_torn_result() -> None:
    """Readers skip record 5 (the claim, damaged) and stop before the torn record 9: the task is still open."""
    journal = Journal(str(recorded_sessions.segment_file("corrupt-line-and-torn-tail").parent), read_only=True)
    records, damaged = support.read_all(journal)
    assert [record["seq"] for record in records] == [1, 2, 3, 4, 6, 7, 8]
    assert [(d.seq, d.reason) for d in damaged] == [(5, "checksum does not match")]
    task = project(records)["tasks"]["t-parallel"]
    assert (task["status"], task["owner"], task["attempts"]) == ("open", None, 0)


def test_verify_on_the_corrupt_session_names_the_line_and_the_torn_tail_then_repair(power_copy: Path) -> None:
    """verify reports seq 5 at its byte offset and the torn tail after record 8; an append repairs only the tail
    (keeping its bytes aside) and takes seq 9; the damaged line stays where it is and is still reported."""
    data = recorded_sessions.segment_file("corrupt-line-and-torn-tail").read_bytes()
    lines = data.splitlines(keepends=True)
    damaged_at = sum(len(line) for line in lines[:4])
    torn_at = sum(len(line) for line in lines[:8])
    journal = Journal(str(power_copy / "sessions" / "corrupt-line-and-torn-tail" / "journal"))
    report = verify_journal(journal)
    assert report["damaged"] == [{"seq": 5, "segment": segment_name(1), "offset": damaged_at,
                                  "reason": "checksum does not match"}]
    assert report["torn_tail"] == {"segment": segment_name(1), "offset": torn_at, "bytes": len(data) - torn_at}
    assert (report["records"], report["last_seq"], report["gaps"]) == (7, 8, [])
    assert journal.append([support.body("after the crash")]).first_seq == 9
    assert Path(journal.directory, f"{segment_name(1)}.torn-{torn_at}").read_bytes() == data[torn_at:]
    after = verify_journal(journal)
    assert after["torn_tail"] is None and after["damaged"] == report["damaged"] and not after["ok"]


@pytest.mark.parametrize("name", NAMES)
def test_cli_replay_json_prints_every_valid_record_as_stored(power_copy: Path, name: str) -> None:
    """`popkit-power replay NAME --json` prints one JSON object per valid record, equal to the stored line."""
    result = CliRunner().invoke(main, ["--home", str(power_copy), "replay", name, "--json"])
    assert result.exit_code == 0, result.output
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    stored = [orjson.loads(line) for line in recorded_sessions.segment_file(name).read_bytes().splitlines()
              if line.endswith(b"}")]
    for record in stored:
        record.pop("more", None)  # a batch's framing, not part of the event (journal/SPEC.md section 3)
    if name == "corrupt-line-and-torn-tail":
        stored = [record for record in stored if record["seq"] != 5]
    assert printed == stored


def test_cli_replay_range_and_text(power_copy: Path) -> None:
    """--from-seq/--to-seq limit the replay; the text form has one line per event with seq, time, agent, channel
    and what happened, under a line naming the day."""
    result = CliRunner().invoke(main, ["--home", str(power_copy), "replay", "team-of-two", "--from-seq", "17",
                                       "--to-seq", "18"])
    assert result.exit_code == 0
    day, *lines = result.stdout.splitlines()
    assert day == "== 2026-11-24 (times in UTC) =="
    assert len(lines) == 2 and lines[0].split()[:5] == ["17", "10:00:35", "main-3f2a9b", "(webapp)", "insights"]
    assert "shared an insight" in lines[0] and "OAuth state parameter" in lines[1]


@pytest.mark.parametrize(("name", "code"), [("team-of-two", 0), ("orphan-reclaimed", 0),
                                            ("corrupt-line-and-torn-tail", 1)])
def test_cli_verify_on_the_recorded_sessions(power_copy: Path, name: str, code: int) -> None:
    """`popkit-power verify NAME` is OK for the healthy sessions and exit 1 with the damage for the corrupt one."""
    runner = CliRunner()
    text = runner.invoke(main, ["--home", str(power_copy), "verify", name])
    as_json = runner.invoke(main, ["--home", str(power_copy), "verify", name, "--json"])
    assert (text.exit_code, as_json.exit_code) == (code, code)
    report = orjson.loads(as_json.stdout)
    assert report["session"] == name and report["ok"] is (code == 0)
    if code:
        assert text.stdout.startswith("DAMAGED: 7 records, seq 1..8")
        assert "damaged: seq 5 at 0000000000000001.jsonl byte" in text.stdout and "torn tail: " in text.stdout
    else:
        assert text.stdout.startswith(f"OK: {report['records']} records, seq 1..{report['records']}")
