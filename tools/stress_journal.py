#!/usr/bin/env python
"""Stress: the journal under kills. Writers append and are SIGKILLed at random moments while tailing readers follow.

    .venv/bin/python tools/stress_journal.py [--seconds 60] [--writers 4] [--readers 2] [--pause-ms 0.6] [--seed N]
                                             [--segment-bytes N] [--dir DIR] [--json]

For `--seconds`, `--writers` processes append single records and batches of 2-5 records (about one record in 25 is
100-200 KB, so that kills can land inside writes), each acknowledging every append after it returned; a killer
SIGKILLs a random writer every 2-60 ms (right after one of its acknowledgements, plus up to 1.5 ms, so that the kill
often lands in an append) and starts a new one in its place. `--readers` tailing readers, each its own process, start
at the journal's end at staggered times and poll it until the end of the run. Then the writers stop, one more append
repairs whatever the last kill left, the readers read to the end, and the run checks:

- each reader returned every record written after its start: exactly the journal's records from its start seq,
  once each, in order, and reported no damage;
- every acknowledged append is in the journal, whole, at the seqs it was given (no acknowledged record lost);
- no batch is partly in the journal (every batch's records are all there, with consecutive seqs);
- `verify` is OK.

It prints a summary and exits 1 on any failure (2 on bad arguments). Not part of the test suite (a few seconds of it
run there, tests/test_journal_hardening.py); results are in tools/BENCHMARKS.md ("Stress: journal under kills").
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Journal

SEGMENT_MAX_BYTES = 4 * 1024 * 1024  # small enough that a run crosses many segments
_ACK = 24  # bytes per acknowledgement: first seq, last seq, batch number


def record_body(writer: int, life: int, batch: int, index: int, size: int) -> bytes:
    """Record `index` of the `size` records of a writer's batch; about one in 25 is 100-200 KB."""
    mix = zlib.crc32(f"{writer}:{life}:{batch}:{index}".encode())
    length = 100_000 + mix % 100_000 if mix % 25 == 0 else 20 + mix % 400
    return orjson.dumps({
        "v": 1, "id": f"w{writer}-l{life}-b{batch}-i{index}", "ts": "2026-11-29T10:00:00.000000Z",
        "origin": "stresshost", "session": "stress", "from": f"writer-{writer}", "ch": "broadcast",
        "type": "message.broadcast",
        "data": {"text": "s" * length, "writer": writer, "life": life, "batch": batch, "index": index, "size": size},
    })


def writer_main(directory: str, writer: int, life: int, ack_path: str, pause: float, segment_bytes: int) -> None:
    """Append forever (until killed): single records and batches, each after a pause of up to `pause` seconds;
    after each append returned, write an ack (so the next append starts right after an ack)."""
    rng = random.Random(writer * 1_000_003 + life)
    journal = Journal(directory, segment_max_bytes=segment_bytes)
    ack = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    batch = 0
    while True:
        time.sleep(rng.random() * pause)  # keeps a 60 s run's journal to a few GB; --pause-ms 0 writes flat out
        size = 1 if rng.random() < 0.6 else rng.randint(2, 5)
        appended = journal.append([record_body(writer, life, batch, index, size) for index in range(size)])
        os.write(ack, appended.first_seq.to_bytes(8, "little") + appended.last_seq.to_bytes(8, "little")
                 + batch.to_bytes(8, "little"))
        batch += 1


def aim(ack_path: str, rng: random.Random) -> None:
    """Wait until the writer acknowledges its next append (or 50 ms), then up to 1.5 ms more: a kill then lands
    in or near its next append more often than at any moment, and at a random point of it."""
    try:
        size = os.path.getsize(ack_path)
    except FileNotFoundError:
        size = 0
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        try:
            if os.path.getsize(ack_path) != size:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.0002)
    time.sleep(rng.random() * 0.0015)


def reader_main(directory: str, number: int, out_path: str, stop: Any, ready: Any) -> None:
    """Start at the journal's end, poll until `stop` is set, read to the end once more, write what was returned."""
    journal = Journal(directory, read_only=True)
    damage: list[str] = []
    reader = journal.reader(journal.end_position(), loads=orjson.loads, on_damage=lambda d: damage.append(str(d)))
    start = reader.position.as_dict()
    ready.set()
    returned: list[tuple[int, str]] = []
    passes = 0
    while True:
        final = stop.is_set()  # read once more after the writers stopped and the tail was repaired
        for record in reader:
            returned.append((record["seq"], record["id"]))
        passes += 1
        if final:
            break
        time.sleep(0.002)
    with open(out_path, "wb") as handle:
        handle.write(orjson.dumps({"reader": number, "start": start, "returned": returned, "damage": damage,
                                   "passes": passes}))


def run(seconds: float, writers: int, readers: int, seed: int, directory: str, pause: float,
        segment_bytes: int = SEGMENT_MAX_BYTES) -> dict[str, Any]:
    rng = random.Random(seed)
    context = multiprocessing.get_context("fork")
    journal_dir = os.path.join(directory, "journal")
    acks_dir = os.path.join(directory, "acks")
    os.makedirs(acks_dir)
    Journal(journal_dir).close()
    lives = [0] * writers
    processes: list[Any] = [None] * writers

    def start_writer(writer: int) -> None:
        ack_path = os.path.join(acks_dir, f"{writer}-{lives[writer]}")
        process = context.Process(target=writer_main, args=(journal_dir, writer, lives[writer], ack_path, pause,
                                                                       segment_bytes))
        process.start()
        processes[writer] = process

    for writer in range(writers):
        start_writer(writer)
    stop = context.Event()
    reader_processes = []
    kills = 0
    began = time.monotonic()
    reader_starts = [began + seconds * number / (readers + 1) for number in range(readers)]
    while time.monotonic() - began < seconds:
        now = time.monotonic()
        while reader_starts and reader_starts[0] <= now:
            reader_starts.pop(0)
            number = len(reader_processes)
            ready = context.Event()
            process = context.Process(target=reader_main, args=(
                journal_dir, number, os.path.join(directory, f"reader-{number}.json"), stop, ready))
            process.start()
            ready.wait(30)
            reader_processes.append(process)
        time.sleep(rng.uniform(0.002, 0.06))
        writer = rng.randrange(writers)
        aim(os.path.join(acks_dir, f"{writer}-{lives[writer]}"), rng)
        os.kill(processes[writer].pid, signal.SIGKILL)
        processes[writer].join()
        kills += 1
        lives[writer] += 1
        start_writer(writer)
    for process in processes:
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    kills += writers
    journal = Journal(journal_dir, segment_max_bytes=segment_bytes)
    journal.append([record_body(writers, 0, 0, 0, 1)])  # repairs what the last kill left
    stop.set()
    for process in reader_processes:
        process.join(120)
    return check(directory, journal, kills, seconds, writers)


def check(directory: str, journal: Journal, kills: int, seconds: float, writers: int) -> dict[str, Any]:
    failures: list[str] = []
    damage: list[str] = []
    records = list(journal.reader(loads=orjson.loads, on_damage=lambda d: damage.append(str(d))))
    seqs = [record["seq"] for record in records]
    if damage:
        failures.append(f"a full read reported damage: {damage[:3]}")
    if seqs != list(range(1, len(seqs) + 1)):
        failures.append("the journal's seqs are not 1..n")
    by_id = {record["id"]: record for record in records}
    batches: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for record in records:
        data = record["data"]
        batches.setdefault((data["writer"], data["life"], data["batch"]), []).append(record)
    partial = [key for key, members in batches.items() if len(members) != members[0]["data"]["size"]
               or [m["seq"] for m in members] != list(range(members[0]["seq"], members[0]["seq"] + len(members)))]
    if partial:
        failures.append(f"{len(partial)} batches are partly in the journal, e.g. {partial[:3]}")
    acknowledged = lost = 0
    for name in os.listdir(os.path.join(directory, "acks")):
        writer, life = (int(part) for part in name.split("-"))
        with open(os.path.join(directory, "acks", name), "rb") as handle:
            data = handle.read()
        for at in range(0, len(data) - len(data) % _ACK, _ACK):
            first = int.from_bytes(data[at:at + 8], "little")
            last = int.from_bytes(data[at + 8:at + 16], "little")
            batch = int.from_bytes(data[at + 16:at + 24], "little")
            for index in range(last - first + 1):
                acknowledged += 1
                record = by_id.get(f"w{writer}-l{life}-b{batch}-i{index}")
                if record is None or record["seq"] != first + index:
                    lost += 1
    if lost:
        failures.append(f"{lost} acknowledged records are missing or moved")
    readers = []
    for name in sorted(n for n in os.listdir(directory) if n.startswith("reader-")):
        with open(os.path.join(directory, name), "rb") as handle:
            result = orjson.loads(handle.read())
        start_seq = result["start"]["seq"]
        expected = [(record["seq"], record["id"]) for record in records if record["seq"] >= start_seq]
        returned = [tuple(item) for item in result["returned"]]
        missed = len(set(expected) - set(returned))
        extra = len(returned) - len(expected) + missed
        if returned != expected or result["damage"]:
            failures.append(f"reader {result['reader']}: returned {len(returned)} of {len(expected)} records "
                            f"({missed} missed, {extra} not expected, in order: {returned == expected}), "
                            f"{len(result['damage'])} damage reports, e.g. {result['damage'][:2]}")
        readers.append({"reader": result["reader"], "start_seq": start_seq, "returned": len(returned),
                        "expected": len(expected), "damage": len(result["damage"]), "passes": result["passes"]})
    report = verify_journal(journal)
    if not report["ok"]:
        failures.append(f"verify: {report}")
    torn_files = [n for n in os.listdir(journal.directory) if ".torn-" in n]
    return {"seconds": seconds, "writers": writers, "kills": kills, "records": len(records),
            "batches": sum(1 for members in batches.values() if len(members) > 1), "acknowledged": acknowledged,
            "lost": lost, "partial_batches": len(partial), "segments": len(journal.segments()),
            "torn_files": len(torn_files),
            "torn_with_whole_lines": sum(b"\n" in Path(journal.directory, n).read_bytes() for n in torn_files),
            "readers": readers, "verify_ok": report["ok"], "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--pause-ms", type=float, default=0.6, help="each writer sleeps up to this long after "
                        "each append (default 0.6; 0 writes flat out: ~120 MB/s here, more torn tails)")
    parser.add_argument("--segment-bytes", type=int, default=SEGMENT_MAX_BYTES, help="segment_max_bytes (default "
                        "4 MiB; 4096, the smallest, rotates every few records: readers crossing segments while "
                        "writers create them)")
    parser.add_argument("--dir", help="work in this (new) directory and keep it; default: a temporary one")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.writers < 1 or args.readers < 1 or args.pause_ms < 0 or args.segment_bytes < 4096:
        parser.error("--seconds must be positive, --pause-ms not negative, --writers and --readers at least 1, "
                     "--segment-bytes at least 4096")
    directory = args.dir or tempfile.mkdtemp(prefix="popkit-stress-journal-")
    if args.dir:
        os.makedirs(directory)
    try:
        summary = run(args.seconds, args.writers, args.readers, args.seed, directory, args.pause_ms / 1000,
                      args.segment_bytes)
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(orjson.dumps(summary).decode())
    else:
        print(f"{summary['seconds']:.0f} s, {summary['writers']} writers, {summary['kills']} SIGKILLs; "
              f"{summary['records']:,} records in the journal ({summary['batches']:,} multi-record batches), "
              f"{summary['segments']} segments; {summary['torn_files']} torn tails kept aside "
              f"({summary['torn_with_whole_lines']} with whole lines of a cut batch)")
        print(f"acknowledged records: {summary['acknowledged']:,}, lost: {summary['lost']}; "
              f"batches partly in the journal: {summary['partial_batches']}; verify: "
              f"{'OK' if summary['verify_ok'] else 'FAILED'}")
        for reader in summary["readers"]:
            print(f"reader {reader['reader']}: started at seq {reader['start_seq']:,}, returned "
                  f"{reader['returned']:,} of {reader['expected']:,} records written after its start in "
                  f"{reader['passes']:,} passes, {reader['damage']} damage reports")
        print("PASS" if not summary["failures"] else "FAIL:\n  " + "\n  ".join(summary["failures"]))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
