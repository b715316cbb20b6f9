"""Readers that follow a journal while its segments rotate: every record once, in seq order, or a reported gap
(journal/SPEC.md section 7, "Segments in order").

The regression: a reader took one directory listing as the whole, ordered list of segments. A listing made while
writers create segments may hold a segment created during it and miss one created just before that one (`readdir`
returns entries added during it or not, each independently: ext4 lists in hash order), and the reader then went
from a segment to the one after the next, skipping every record of the one between, silently.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import followers
import pytest
import support

from popkit_power.cli.sessions import verify_text
from popkit_power.journal import writer as journal_module
from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Damage, Journal, Position, segment_name
from popkit_power.session import Session, start_session

SEGMENT_MAX_BYTES = 4096  # the smallest allowed: a rotation every dozen records or so
ROTATIONS = 1500
KILLS = 60
MAX_SECONDS = 60  # a generous bound on the writing phase, never an assertion


def _small_journal(tmp_path: Path) -> Journal:
    journal = Journal(str(tmp_path / "journal"), segment_max_bytes=SEGMENT_MAX_BYTES)
    for number in range(60):
        journal.append([support.body(f"record {number} " + "r" * 300)])
    assert len(journal.segments()) >= 5
    return journal


def test_a_listing_that_misses_a_segment_does_not_make_the_reader_skip_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race without its timing: the directory listing lacks the third segment while it holds the fourth (as a
    listing made while both were created can). The reader returns every record, once, in order, and no damage."""
    journal = _small_journal(tmp_path)
    hidden = journal.segments()[2]
    real_listdir = os.listdir
    monkeypatch.setattr(journal_module.os, "listdir",
                        lambda path: [name for name in real_listdir(path) if name != segment_name(hidden)])
    damage: list[Damage] = []
    seqs = [event["seq"] for event in journal.reader(on_damage=damage.append)]
    assert seqs == list(range(1, 61)) and damage == []
    # from a position inside the segment before it, and from the start of the hidden one itself
    before = journal.segments()[1]
    assert [e["seq"] for e in journal.reader(Position(before, 0, before))] == list(range(before, 61))
    assert [e["seq"] for e in journal.reader(Position(hidden, 0, hidden))] == list(range(hidden, 61))


def test_a_missing_segment_is_reported_as_a_gap_and_verify_fails(tmp_path: Path) -> None:
    """A segment that is really gone (deleted by hand) is a gap the reader reports, naming the seqs it lacks,
    before it goes on with the next segment; `verify` reports it (it said OK when the reader skipped silently)."""
    journal = _small_journal(tmp_path)
    segments = journal.segments()
    gone = segments[2]
    os.unlink(journal.segment_path(gone))
    damage: list[Damage] = []
    seqs = [event["seq"] for event in journal.reader(on_damage=damage.append)]
    assert seqs == [seq for seq in range(1, 61) if not gone <= seq < segments[3]]
    assert [(d.seq, d.segment, d.reason) for d in damage] == [
        (gone, segments[3], f"records {gone} to {segments[3] - 1} are missing: no segment holds them")]
    report = verify_journal(journal)
    assert not report["ok"] and report["damaged"][0]["seq"] == gone


def test_verify_reports_a_segment_whose_name_is_not_its_first_seq(tmp_path: Path) -> None:
    """A segment renamed by hand (its name is not its first record's seq) is reported by verify."""
    journal = _small_journal(tmp_path)
    third = journal.segments()[2]
    os.rename(journal.segment_path(third), journal.segment_path(third + 1))
    report = verify_journal(journal)
    assert not report["ok"]
    assert report["misnamed"] == [{"segment": segment_name(third + 1), "first_seq": third}]
    assert f"misnamed: {segment_name(third + 1)} starts with seq {third}" in verify_text(report)


def _start(target: Callable[..., None], *args: object) -> int:
    return support.run_child(followers.logged, target, *args)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


@pytest.mark.slow
def test_followers_of_every_kind_return_each_record_once_while_killed_writers_rotate_segments(
        power_dir: str, tmp_path: Path, rng: random.Random) -> None:
    """Writers (real processes) append single records and batches to 4 KiB segments and are SIGKILLed at random
    moments (and started again), a third of them killing themselves in the middle of a write (so that the next
    append repairs a torn tail, at a segment's end too), until the journal has rotated at least 1,500 times (before
    readers went by name, this failed 6 runs in 6 at 1,500, 0 in 3 at 400); meanwhile followers of each kind
    the product has (the coordinator's long-lived reader, the hook's and waiter's per-call reader from a saved cursor,
    the replicator's outbox, `replay --follow`), several of each, each its own process, started at staggered moments,
    tail the journal. Then each returned exactly the journal's records from its start, once each, in seq order, and
    reported no damage; and verify is OK."""
    Path(power_dir).mkdir(parents=True, exist_ok=True)
    Path(power_dir, "config.json").write_text(f'{{"segment_max_bytes": {SEGMENT_MAX_BYTES}}}')
    session = start_session(power_dir, "Rotate", sender="tester")
    directory, origin = session.journal.directory, session.origin
    stop_path, out = str(tmp_path / "stop"), tmp_path / "out"
    out.mkdir()
    lives = [0, 0, 0]
    writers = [_start(followers.writer_main, directory, session.id, origin, number, 0, SEGMENT_MAX_BYTES)
               for number in range(len(lives))]
    kinds = ["coordinator", "hook", "replicator", "replay"] * 2
    readers: list[tuple[str, str, int]] = []
    kills, began = 0, time.monotonic()
    try:
        while (len(session.journal.segments()) < ROTATIONS or kills < KILLS) and time.monotonic() - began < MAX_SECONDS:
            if kinds and len(session.journal.segments()) >= (8 - len(kinds)) * ROTATIONS // 16:
                kind = kinds.pop(0)
                path = str(out / f"{kind}-{len(readers)}.json")
                args = {"coordinator": (followers.follow_coordinator, directory, path, stop_path),
                        "hook": (followers.follow_hook, directory, path, stop_path),
                        "replicator": (followers.follow_replicator, directory, origin, path, stop_path),
                        "replay": (followers.follow_replay, power_dir, session.id, path, stop_path)}[kind]
                readers.append((kind, path, _start(*args)))
            time.sleep(rng.uniform(0.001, 0.03))
            number = rng.randrange(len(lives))
            _kill(writers[number])
            kills += 1
            lives[number] += 1
            tear_after = rng.randrange(30) if rng.random() < 0.3 else -1
            writers[number] = _start(followers.writer_main, directory, session.id, origin, number, lives[number],
                                     SEGMENT_MAX_BYTES, tear_after)
    finally:
        for pid in writers:
            _kill(pid)
    session.publish("session.closed", {"reason": "test over"}, sender="coordinator")  # repairs the last kill's tail
    Path(stop_path).touch()
    for _kind, _path, pid in readers:
        support.until(lambda pid=pid: os.waitpid(pid, os.WNOHANG)[0] == pid, 120, "a follower finished")
    rotations = len(session.journal.segments())
    torn = [name for name in os.listdir(directory) if ".torn-" in name]
    assert rotations >= ROTATIONS and kills >= KILLS and len(readers) == 8 and torn
    damage: list[Damage] = []
    journal_seqs = [event["seq"] for event in session.journal.reader(on_damage=damage.append)]
    assert damage == [] and journal_seqs == list(range(1, len(journal_seqs) + 1))
    failures = []
    for kind, path, _pid in readers:
        result = followers.result(path)
        expected = [seq for seq in journal_seqs if seq >= result["start"]]
        if result["returned"] != expected or result["damage"]:
            missed = sorted(set(expected) - set(result["returned"]))
            failures.append(f"{kind} from seq {result['start']}: returned {len(result['returned'])} of "
                            f"{len(expected)}, missed {missed[:3]}...{missed[-3:]} ({len(missed)}), "
                            f"damage {result['damage'][:3]}")
    assert failures == [], f"{rotations} segments, {kills} kills, {len(torn)} torn tails: " + "; ".join(failures)
    print(f"{rotations} segments, {kills} kills, {len(torn)} torn tails repaired")
    assert verify_journal(Journal(directory, read_only=True))["ok"]
    assert Session(power_dir, session.id, read_only=True).projection(save_snapshot=False)[0]["closed"] is not None
