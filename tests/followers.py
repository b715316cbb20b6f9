"""The child processes of the rotation kill test (tests/test_journal_rotation.py): writers that append until they are
SIGKILLed, and one follower per way the product reads a growing journal, each writing what it returned to a file.

Each follower reads the way its consumer does:

- `coordinator`: one `JournalReader` kept for the process's life and iterated again after each wait
  (coordinator/runner.py);
- `hook`: a new process's view each call: a fresh `Journal` and reader from the saved cursor, `check()` first, and at
  most a few records per call before the cursor is saved (hook/news.py, which the waiter shares);
- `replicator`: the push's `Outbox`, which keeps one reader's generator from batch to batch and reads the next batch
  ahead (replication/outbox.py);
- `replay`: `Playback.events(follow=True)`, as `popkit-power replay --follow` (playback.py), until session.closed.
"""

from __future__ import annotations

import os
import random
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from popkit_power.journal import codec
from popkit_power.journal.writer import Damage, Journal, Position
from popkit_power.keys import RedisLayout
from popkit_power.protocol import make_event
from popkit_power.replay.playback import Playback
from popkit_power.replication.outbox import Outbox
from popkit_power.session import Session

PAUSE = 0.001  # a follower's wait between passes (the product waits on inotify; this is busier)


def _length(rng: random.Random) -> int:
    """Mostly 20-400 characters; one record in 70 is 200-500 KB, so that a kill lands inside a write now and then."""
    return rng.randint(200_000, 500_000) if rng.random() < 0.015 else rng.randint(20, 400)


def writer_main(directory: str, session_id: str, origin: str, writer: int, life: int, segment_max_bytes: int,
                tear_after: int = -1) -> None:
    """Append single records and batches of 2-5 (message.broadcast, `_length`) until killed. With `tear_after` >= 0,
    the append after that many stops halfway through its write and the process SIGKILLs itself there: a kill inside
    a write, which random kills only seldom hit, so that repairs happen often, at segment ends too."""
    rng = random.Random(writer * 7919 + life)
    journal = Journal(directory, segment_max_bytes=segment_max_bytes)
    batch = 0
    while True:
        if batch == tear_after:
            _die_in_the_next_write(rng)
        size = 1 if rng.random() < 0.6 else rng.randint(2, 5)
        journal.append([
            codec.dumps(make_event("message.broadcast", {"text": "w" * _length(rng)},
                                   sender=f"writer-{writer}-{life}-{batch}-{index}", session=session_id,
                                   origin=origin)).encode("utf-8")
            for index in range(size)])
        batch += 1


def _die_in_the_next_write(rng: random.Random) -> None:
    """Make this process's next `os.write` write part of its data and SIGKILL the process there."""
    real_write = os.write

    def write_part_and_die(fd: int, data: bytes) -> int:
        real_write(fd, data[: rng.randint(1, max(1, len(data) - 1))])
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    os.write = write_part_and_die  # type: ignore[assignment]  # this child only: it dies in this write


def _stopped(stop_path: str) -> bool:
    return os.path.exists(stop_path)


def _finish(out_path: str, start_seq: int, returned: list[int], damage: list[Damage]) -> None:
    with open(out_path, "wb") as handle:
        handle.write(orjson.dumps({"start": start_seq, "returned": returned,
                                   "damage": [[d.seq, d.reason] for d in damage]}))


def follow_coordinator(directory: str, out_path: str, stop_path: str) -> None:
    journal = Journal(directory, read_only=True)
    damage: list[Damage] = []
    reader = journal.reader(journal.end_position(), on_damage=damage.append)
    start, returned = reader.position.seq, []
    while True:
        final = _stopped(stop_path)
        returned.extend(event["seq"] for event in reader)
        if final:
            break
        time.sleep(PAUSE)
    _finish(out_path, start, returned, damage)


def follow_hook(directory: str, out_path: str, stop_path: str) -> None:
    rng = random.Random(os.getpid())
    damage: list[Damage] = []
    cursor = Journal(directory, read_only=True).end_position().as_dict()
    start, returned = cursor["seq"], []
    while True:
        final = _stopped(stop_path)
        while True:  # one tool call: a fresh process's journal, at most `budget` records, then the cursor is saved
            journal = Journal(directory, read_only=True)
            reader = journal.reader(Position.from_dict(cursor), on_damage=damage.append)
            reader.check()
            budget, read = rng.randint(1, 40), 0
            for event in reader:
                returned.append(event["seq"])
                read += 1
                if read >= budget:
                    break
            cursor = reader.position.as_dict()
            journal.close()
            if read < budget:
                break
        if final:
            break
        time.sleep(PAUSE)
    _finish(out_path, start, returned, damage)


def follow_replicator(directory: str, origin: str, out_path: str, stop_path: str) -> None:
    journal = Journal(directory, read_only=True)
    outbox = Outbox(journal, origin, 7, RedisLayout(), 0)
    start = journal.end_position()
    start_seq, after, returned = start.seq, start.seq - 1, []
    while True:
        final = _stopped(stop_path)
        while True:  # Replicator.push_once: the next batch is read ahead while a full one is "on the server"
            batch = outbox.take(start, after)
            start = batch.end
            if not batch.events:
                break
            if batch.full:
                outbox.prepare(batch)
            returned.extend(event["seq"] for event in batch.events)
            after = batch.events[-1]["seq"]
        if final:
            break
        time.sleep(PAUSE)
    outbox.close()
    _finish(out_path, start_seq, returned, [])  # the outbox reads with the default handler: damage is logged


def follow_replay(power_dir: str, session_id: str, out_path: str, stop_path: str) -> None:
    del stop_path  # a follow ends at session.closed
    session = Session(power_dir, session_id, read_only=True)
    damage: list[Damage] = []
    start_seq = session.journal.end_position().seq
    playback = Playback(session, start_seq=start_seq, names=True, on_damage=damage.append)
    returned = [event["seq"] for event in playback.events(follow=True)]
    _finish(out_path, start_seq, returned, damage)


def logged(target: Callable[..., None], *args: Any) -> None:
    """Run `target(*args)`; an exception's traceback goes to the file named by its out_path argument plus
    `.error`, so that the test can show why a follower gave no result."""
    try:
        target(*args)
    except BaseException:
        paths = [arg for arg in args if isinstance(arg, str) and arg.endswith(".json")]
        if paths:
            with open(paths[0] + ".error", "w") as handle:
                handle.write(traceback.format_exc())
        raise


def result(out_path: str) -> dict[str, Any]:
    if os.path.exists(out_path + ".error"):
        raise AssertionError(f"{os.path.basename(out_path)} failed: {Path(out_path + '.error').read_text()}")
    with open(out_path, "rb") as handle:
        loaded: dict[str, Any] = orjson.loads(handle.read())
    return loaded
