#!/usr/bin/env python
"""Journal append benchmarks against the budgets in docs/design.md, measured side by side in one run.

    .venv/bin/python tools/bench_journal.py [--records N] [--quick] [--reps R] [--json] [--strict]

1. One process, one record per `Journal.append([body])` call, durability "flush", against SQLite in WAL mode with
   synchronous=NORMAL (SQLite's flush-to-OS) inserting the same bytes one record per transaction.
   Budget: journal >= 3x SQLite. The same with durability "fsync" against synchronous=FULL documents fsync's cost.
2. 16 processes appending at once (real processes, spawned, all asleep until one common start time on the monotonic
   clock, see run_writers) against one process appending the same total through the same code. Afterwards the
   journal is read back and must hold exactly every record once, with contiguous seqs, valid checksums and each
   writer's records in its own order; anything else is reported as an integrity failure (exit status 2).
   Budget: aggregate rate of 16 >= rate of 1. A second, untimed run does the same with 4 KiB segments, so that the
   writers race across thousands of segment roll-overs. `--only floor` times a bare flock + write loop the same way,
   the least any flock-serialized appender can cost, for reference.

Each measurement is repeated (sides alternate A B B A ...) and medians are reported: the machine is shared and noisy,
so the ratios, not the absolute rates, are what count. The bodies are serialized once beforehand with orjson, so both
sides write exactly the same bytes.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as common
import orjson

from popkit_power.journal.writer import Journal

BUDGET_FLUSH_RATIO = 3.0
BUDGET_CONTENDED_RATIO = 1.0


class VerificationError(Exception):
    pass


# -- one process ----------------------------------------------------------------------------------------------------

def journal_single(bodies: list[bytes], directory: str, durability: str) -> float:
    """Appends per second, one record per call, into a fresh journal."""
    journal = Journal(os.path.join(directory, "journal"), durability=durability)
    append = journal.append
    gc.collect()
    start = time.perf_counter()
    for body in bodies:
        append([body])
    elapsed = time.perf_counter() - start
    journal.close()
    return len(bodies) / elapsed


def sqlite_single(bodies: list[bytes], directory: str, synchronous: str, explicit: bool = False) -> float:
    """Inserts per second, one record per transaction, into a fresh WAL database.

    The default is the cheapest way to give each insert its own transaction in Python (autocommit mode, one statement,
    SQLite's statement cache); `explicit` adds BEGIN and COMMIT statements around each insert, as an application that
    writes more than one statement per transaction would.
    """
    connection = sqlite3.connect(os.path.join(directory, "events.db"), isolation_level=None)
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise SystemExit(f"SQLite refused WAL mode (got {mode!r})")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    execute = connection.execute
    insert = "INSERT INTO events (body) VALUES (?)"
    gc.collect()
    start = time.perf_counter()
    if explicit:
        for body in bodies:
            execute("BEGIN")
            execute(insert, (body,))
            execute("COMMIT")
    else:
        for body in bodies:
            execute(insert, (body,))
    elapsed = time.perf_counter() - start
    count = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    connection.close()
    if count != len(bodies):
        raise VerificationError(f"SQLite holds {count} rows, expected {len(bodies)}")
    return len(bodies) / elapsed


def alternate(sides: dict, reps: int, base: str) -> dict[str, list[float]]:
    """Run every side `reps` times, the order reversed on every other round (A B, B A, ...); each in a fresh dir."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for rep in range(reps):
        for name in (names if rep % 2 == 0 else names[::-1]):
            directory = tempfile.mkdtemp(prefix="".join(c if c.isalnum() else "_" for c in name) + "-", dir=base)
            try:
                samples[name].append(sides[name](directory))
            finally:
                shutil.rmtree(directory, ignore_errors=True)
    return samples


# -- many processes -------------------------------------------------------------------------------------------------

def _writer(directory: str, bodies: list[bytes], segment_bytes: int, ready, go, deadline, results) -> None:
    """One writer process: open the journal, wait for the common start time, append one record per call, report."""
    try:
        journal = Journal(directory, segment_max_bytes=segment_bytes)
        append = journal.append
        gc.collect()
        gc.disable()
        ready.put(os.getpid())
        go.wait()
        start_at = deadline.value
        pause = (start_at - time.perf_counter_ns()) / 1e9  # CLOCK_MONOTONIC: the same clock in every process
        if pause > 0:
            time.sleep(pause)
        start = time.perf_counter_ns()
        for body in bodies:
            append([body])
        end = time.perf_counter_ns()
        journal.close()
        results.put((os.getpid(), start, end, None))
    except BaseException as error:  # report, never hang the parent
        results.put((os.getpid(), 0, 0, f"{type(error).__name__}: {error}"))
        raise


#: How long after the last writer is ready they all start: enough for every one to be asleep until then.
START_DELAY_NS = 150_000_000


def _floor_writer(directory: str, bodies: list[bytes], segment_bytes: int, ready, go, deadline, results) -> None:
    """The lock floor: what any flock-based appender pays at least, i.e. `fcntl.flock` + one `os.write` of an
    encoded line per record into one shared file (no tail check, no seq bookkeeping; the file is not a journal)."""
    import fcntl

    from popkit_power.journal.writer import encode_record

    try:
        fd = os.open(os.path.join(directory, "floor.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        lock = os.open(directory + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        flock, exclusive, unlock, write = fcntl.flock, fcntl.LOCK_EX, fcntl.LOCK_UN, os.write
        gc.collect()
        gc.disable()
        ready.put(os.getpid())
        go.wait()
        pause = (deadline.value - time.perf_counter_ns()) / 1e9
        if pause > 0:
            time.sleep(pause)
        start = time.perf_counter_ns()
        for number, body in enumerate(bodies):
            flock(lock, exclusive)
            write(fd, encode_record(number, body))
            flock(lock, unlock)
        end = time.perf_counter_ns()
        results.put((os.getpid(), start, end, None))
    except BaseException as error:
        results.put((os.getpid(), 0, 0, f"{type(error).__name__}: {error}"))
        raise


def run_writers(directory: str, shares: list[list[bytes]], segment_bytes: int,
                target=_writer) -> tuple[float, float]:
    """Spawn one process per share, start them all at one moment, return (aggregate appends/s, start spread ms).

    The start is a deadline on the monotonic clock rather than a multiprocessing.Barrier: with 16 processes on 2
    CPUs a Barrier wakes its waiters one after the other, each behind writers that are already running, so the last
    ones started ~50-100 ms late here and the measured window was mostly that wake-up chain. Every writer is asleep
    until the deadline, and the contended window is measured from the deadline to the last writer's end.
    """
    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go = context.Event()
    deadline = context.Value("q", 0)
    processes = [context.Process(target=target,
                                 args=(directory, share, segment_bytes, ready, go, deadline, results))
                 for share in shares]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            ready.get(timeout=300)
    except Exception:  # a writer died before it was ready: its report says why
        go.set()
        raise VerificationError(f"a writer process failed to start: {results.get(timeout=10)}") from None
    start_at = time.perf_counter_ns() + START_DELAY_NS
    deadline.value = start_at
    go.set()
    reports = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    errors = [error for _, _, _, error in reports if error]
    if errors or any(process.exitcode != 0 for process in processes):
        raise VerificationError(f"a writer process failed: {errors or [p.exitcode for p in processes]}")
    end = max(report[2] for report in reports)
    spread_ms = (max(report[1] for report in reports) - min(report[1] for report in reports)) / 1e6
    return sum(len(share) for share in shares) / ((end - start_at) / 1e9), spread_ms


def verify_journal(directory: str, shares: list[list[bytes]]) -> int:
    """Read the journal back: every record exactly once, seqs 1..n contiguous, checksums valid, per-writer order kept.

    Returns the number of segments. Raises VerificationError naming the first problem.
    """
    expected: dict[str, tuple[int, int]] = {}
    for writer, share in enumerate(shares):
        for index, body in enumerate(share):
            expected[orjson.loads(body)["id"]] = (writer, index)
    damage: list[str] = []
    journal = Journal(directory, read_only=True)
    seen: set[str] = set()
    last_index = [-1] * len(shares)
    next_seq = 1
    for event in journal.reader(loads=orjson.loads, on_damage=lambda d: damage.append(str(d))):
        if event.get("seq") != next_seq:
            kind = "a seq given twice" if isinstance(event.get("seq"), int) and event["seq"] < next_seq else "a gap"
            raise VerificationError(f"seq {event.get('seq')} where {next_seq} was expected ({kind})")
        next_seq += 1
        event_id = event.get("id")
        if event_id in seen:
            raise VerificationError(f"record {event_id} appears twice (second time at seq {event['seq']})")
        if event_id not in expected:
            raise VerificationError(f"seq {event['seq']} holds a record nobody wrote: {event_id}")
        seen.add(event_id)
        writer, index = expected[event_id]
        if index <= last_index[writer]:
            raise VerificationError(f"writer {writer}'s record {index} comes after its record {last_index[writer]}")
        last_index[writer] = index
    if damage:
        raise VerificationError(f"{len(damage)} damaged records, first: {damage[0]}")
    if len(seen) != len(expected):
        raise VerificationError(f"{len(expected) - len(seen)} of {len(expected)} records are missing")
    leftovers = [name for name in os.listdir(directory) if ".torn-" in name]
    if leftovers:
        raise VerificationError(f"torn tails were repaired during the run: {leftovers}")
    journal.close()
    return len(journal.segments())


START_SPREADS_MS: list[float] = []


def contended(shares: list[list[bytes]], base: str, segment_bytes: int, *, timed: bool = True) -> tuple[float, int]:
    directory = tempfile.mkdtemp(prefix=f"writers{len(shares)}-", dir=base)
    try:
        journal_dir = os.path.join(directory, "journal")
        os.mkdir(journal_dir, 0o700)
        aggregate, spread_ms = run_writers(journal_dir, shares, segment_bytes)
        segments = verify_journal(journal_dir, shares)
        if timed:
            START_SPREADS_MS.append(spread_ms)
        return aggregate, segments
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def split(bodies: list[bytes], parts: int) -> list[list[bytes]]:
    return [bodies[index::parts] for index in range(parts)]


# -- report ---------------------------------------------------------------------------------------------------------

def summarize(samples: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    ratios = [a / b for a, b in zip(samples[numerator], samples[denominator], strict=True)]
    return {
        "medians": {numerator: common.median(samples[numerator]), denominator: common.median(samples[denominator])},
        "ratio_of_medians": common.median(samples[numerator]) / common.median(samples[denominator]),
        "median_of_paired_ratios": common.median(ratios),
        "paired_ratios": ratios,
        "samples": samples,
    }


SECTIONS = ("flush", "fsync", "contended", "rollover", "floor")
DEFAULT_SECTIONS = ("flush", "fsync", "contended", "rollover")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000, help="records per one-process flush run (50,000)")
    parser.add_argument("--fsync-records", type=int, default=None,
                        help="records per fsync run (default: records/50, at least 100)")
    parser.add_argument("--writers", type=int, default=16, help="concurrent writer processes (16)")
    parser.add_argument("--per-writer", type=int, default=10_000,
                        help="records each writer appends in a contended run (10,000); the single writer appends "
                             "writers x per-writer")
    parser.add_argument("--reps", type=int, default=5, help="repetitions of each measurement (5)")
    parser.add_argument("--segment-bytes", type=int, default=64 * 1024 * 1024,
                        help="segment size of the timed runs (the default config: 64 MiB)")
    parser.add_argument("--rollover-segment-bytes", type=int, default=4096,
                        help="segment size of the untimed roll-over integrity run (4096, the config's minimum)")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated sections to run, of: {', '.join(SECTIONS)} (all but floor: the "
                             "16-vs-1 ratio of a bare flock+write loop, for reference)")
    parser.add_argument("--dir", default=None, help="where to put the scratch journals and databases (a temp dir)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 records, 1,000 per writer, 3 reps")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a budget is not met")
    args = parser.parse_args()
    if args.quick:
        args.records = min(args.records, 5_000)
        args.per_writer = min(args.per_writer, 1_000)
        args.reps = min(args.reps, 3)
    sections = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    fsync_records = args.fsync_records or max(100, args.records // 50)
    contended_records = args.per_writer * args.writers
    many = f"{args.writers} writers"

    base = tempfile.mkdtemp(prefix="popkit-bench-journal-", dir=args.dir)
    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    result: dict = {
        "machine": common.machine(),
        "command": " ".join([os.path.relpath(sys.executable), *sys.argv]),
        "params": {"records": args.records, "fsync_records": fsync_records, "writers": args.writers,
                   "contended_records": contended_records,
                   "per_writer": args.per_writer, "reps": args.reps, "segment_bytes": args.segment_bytes,
                   "rollover_segment_bytes": args.rollover_segment_bytes},
        "budgets": {},
    }
    integrity_failures: list[str] = []
    try:
        bodies = common.append_bodies(max(args.records, fsync_records), seed=1)
        result["params"]["mean_body_bytes"] = round(sum(map(len, bodies)) / len(bodies), 1)
        say(f"bodies: mean {result['params']['mean_body_bytes']:.0f} bytes; scratch dir {base}; "
            f"package {result['machine']['package']}")
        if "flush" in sections:
            say(f"1 process, flush: {args.records:,} records x {args.reps} reps ...")
            flush_bodies = bodies[:args.records]
            samples = alternate({
                "journal flush": lambda d: journal_single(flush_bodies, d, "flush"),
                "sqlite WAL NORMAL": lambda d: sqlite_single(flush_bodies, d, "NORMAL"),
                "sqlite WAL NORMAL BEGIN/COMMIT": lambda d: sqlite_single(flush_bodies, d, "NORMAL", explicit=True),
            }, args.reps, base)
            result["flush"] = summarize(samples, "journal flush", "sqlite WAL NORMAL")
            result["flush"]["vs_begin_commit"] = summarize(samples, "journal flush", "sqlite WAL NORMAL BEGIN/COMMIT")
            result["budgets"]["journal flush >= 3x SQLite WAL NORMAL"] = (
                result["flush"]["ratio_of_medians"] >= BUDGET_FLUSH_RATIO)
        if "fsync" in sections:
            say(f"1 process, fsync: {fsync_records:,} records x {args.reps} reps ...")
            fsync_bodies = bodies[:fsync_records]
            samples = alternate({
                "journal fsync": lambda d: journal_single(fsync_bodies, d, "fsync"),
                "sqlite WAL FULL": lambda d: sqlite_single(fsync_bodies, d, "FULL"),
            }, args.reps, base)
            result["fsync"] = summarize(samples, "journal fsync", "sqlite WAL FULL")
        if {"contended", "rollover", "floor"} & set(sections):
            contended_bodies = common.append_bodies(contended_records, seed=2, tag="w")
            shares = split(contended_bodies, args.writers)
        if "contended" in sections:
            say(f"{args.writers} processes vs 1: {contended_records:,} records in all x {args.reps} reps ...")
            segment_counts: list[int] = []

            def side(writer_shares: list[list[bytes]]):
                def run(directory: str) -> float:
                    aggregate, count = contended(writer_shares, directory, args.segment_bytes)
                    segment_counts.append(count)
                    return aggregate
                return run

            try:
                samples = alternate({many: side(shares), "1 writer": side([contended_bodies])}, args.reps, base)
                result["contended"] = summarize(samples, many, "1 writer")
                result["contended"]["segments"] = sorted(set(segment_counts))
                result["contended"]["start_spread_ms"] = list(START_SPREADS_MS)
                result["budgets"][f"{many} aggregate >= 1 writer"] = (
                    result["contended"]["ratio_of_medians"] >= BUDGET_CONTENDED_RATIO)
            except VerificationError as error:
                integrity_failures.append(f"timed runs ({args.segment_bytes:,}-byte segments): {error}")
        if "floor" in sections:
            say(f"lock floor (flock + write, no journal): {args.writers} processes vs 1 x {args.reps} reps ...")

            def floor_side(writer_shares: list[list[bytes]]):
                def run(directory: str) -> float:
                    target = os.path.join(directory, "floor")
                    os.mkdir(target)
                    return run_writers(target, writer_shares, 0, target=_floor_writer)[0]
                return run

            samples = alternate({f"floor {many}": floor_side(shares), "floor 1 writer": floor_side([contended_bodies])},
                                args.reps, base)
            result["floor"] = summarize(samples, f"floor {many}", "floor 1 writer")
        if "rollover" in sections:
            say(f"{args.writers} processes across roll-overs ({args.rollover_segment_bytes:,}-byte segments) ...")
            try:
                _, count = contended(shares, base, args.rollover_segment_bytes, timed=False)
                result["rollover"] = {"segment_bytes": args.rollover_segment_bytes, "segments": count,
                                      "records": contended_records, "ok": True}
            except VerificationError as error:
                integrity_failures.append(f"roll-over run ({args.rollover_segment_bytes:,}-byte segments): {error}")
                result["rollover"] = {"segment_bytes": args.rollover_segment_bytes, "records": contended_records,
                                      "ok": False, "error": str(error)}
        if "contended" in sections or "rollover" in sections:
            result["integrity_failures"] = integrity_failures
            result["budgets"][f"{many}: no lost, duplicated or interleaved record"] = not integrity_failures
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print_report(result, args, many)
    for failure in integrity_failures:
        print(f"JOURNAL INTEGRITY FAILURE: {failure}", file=sys.stderr)
    if integrity_failures:
        return 2
    if args.strict and not all(result["budgets"].values()):
        return 1
    return 0


def print_report(result: dict, args: argparse.Namespace, many: str) -> None:
    m = result["machine"]
    median, rate = common.median, common.rate
    print(f"\nmachine: {m['nproc']} CPUs ({m.get('cpu', '?')}), Python {m['python']}, SQLite {m['sqlite']}, "
          f"orjson {m['orjson']}")
    print(f"package: {m['package']} ({m.get('version', '?')})")
    print(f"bodies: mean {result['params']['mean_body_bytes']:.0f} bytes; medians of {args.reps} reps, sides "
          f"alternated\n")
    verdict = {True: "PASS", False: "FAIL"}
    rows = []
    if "flush" in result:
        f = result["flush"]
        s = f["samples"]
        rows.append(["1 process, flush", f"journal {rate(median(s['journal flush']))}",
                     f"SQLite WAL NORMAL {rate(median(s['sqlite WAL NORMAL']))}",
                     f"{f['ratio_of_medians']:.2f}x (paired {f['median_of_paired_ratios']:.2f}x)", ">= 3x",
                     verdict[result["budgets"]["journal flush >= 3x SQLite WAL NORMAL"]]])
        rows.append(["  same, SQLite with BEGIN/COMMIT (info)", f"journal {rate(median(s['journal flush']))}",
                     f"SQLite {rate(median(s['sqlite WAL NORMAL BEGIN/COMMIT']))}",
                     f"{f['vs_begin_commit']['ratio_of_medians']:.2f}x", "-", "-"])
    if "fsync" in result:
        f = result["fsync"]
        s = f["samples"]
        rows.append(["1 process, fsync (documents the cost)", f"journal {rate(median(s['journal fsync']))}",
                     f"SQLite WAL FULL {rate(median(s['sqlite WAL FULL']))}",
                     f"{f['ratio_of_medians']:.2f}x (paired {f['median_of_paired_ratios']:.2f}x)", "-", "-"])
    if "contended" in result:
        f = result["contended"]
        s = f["samples"]
        rows.append([f"{args.writers} processes at once vs 1", f"{many} {rate(median(s[many]))}",
                     f"1 writer {rate(median(s['1 writer']))}",
                     f"{f['ratio_of_medians']:.2f}x (paired {f['median_of_paired_ratios']:.2f}x)", ">= 1x",
                     verdict[result["budgets"][f"{many} aggregate >= 1 writer"]]])
    if "floor" in result:
        f = result["floor"]
        s = f["samples"]
        rows.append([f"lock floor, {args.writers} vs 1 (info)", f"{many} {rate(median(s[f'floor {many}']))}",
                     f"1 writer {rate(median(s['floor 1 writer']))}",
                     f"{f['ratio_of_medians']:.2f}x (paired {f['median_of_paired_ratios']:.2f}x)", "-", "-"])
    integrity = f"{many}: no lost, duplicated or interleaved record"
    if integrity in result["budgets"]:
        checked = []
        if "contended" in result or "contended" in args.only:
            checked.append(f"{2 * args.reps} timed runs")
        if result.get("rollover"):
            r = result["rollover"]
            checked.append(f"1 run over {r['segment_bytes']:,}-byte segments"
                           + (f" ({r['segments']} segments)" if r.get("ok") else ""))
        rows.append([f"{args.writers} processes, integrity", ", ".join(checked),
                     "seqs 1..n once each, checksums, per-writer order", "-", "none lost/dup/interleaved",
                     verdict[result["budgets"][integrity]]])
    print(common.table(rows, ["measurement", "A", "B", "A/B", "budget", "result"]))
    if "flush" in result and "fsync" in result:
        flush = median(result["flush"]["samples"]["journal flush"])
        fsync = median(result["fsync"]["samples"]["journal fsync"])
        print(f"\ncost of fsync: {1e6 / fsync:,.0f} us per append with fsync vs {1e6 / flush:,.1f} us with flush "
              f"({flush / fsync:,.0f}x)")
    for name in ("flush", "fsync", "contended", "floor"):
        if name in result:
            print(f"paired ratios per rep, {name}: " + " ".join(f"{r:.2f}" for r in result[name]["paired_ratios"]))
    if "contended" in result:
        spreads = result["contended"]["start_spread_ms"]
        print(f"contended runs: {result['params']['per_writer']:,} records per writer; first-to-last writer start "
              f"after the common start time: median {median(spreads):.1f} ms, max {max(spreads):.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
