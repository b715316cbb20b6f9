"""Attacks on replication (issue 9), each a test that fails when a promise breaks: replicator processes SIGKILLed
while both machines write, a Redis without persistence killed under running replicators, a machine 200,000 events
behind, hostile entries in the streams, three machines claiming at once, a second replicator, skewed clocks, a
session closed while another machine writes, and bad settings."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from support import RedisServer, free_port, until
from test_replication import LAYOUT, chatter, events, facts, join, sync

from popkit_power.config import DEFAULTS
from popkit_power.coordinator.decide import Rules, decide
from popkit_power.journal.verify import verify_journal
from popkit_power.journal.writer import Journal
from popkit_power.keys import ARBITER
from popkit_power.protocol import make_event
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.status_file import read_status
from popkit_power.session import Session, start_session, stop_session

SCRIPT = Path(sys.executable).parent / "popkit-power"


# -- helpers ----------------------------------------------------------------------------------------------------------

def made_ids(sessions: list[Session]) -> set[str]:
    """The ids of the events the machines made themselves (not pulled, not the arbiter's)."""
    return {e["id"] for session in sessions for e in events(session) if "oseq" not in e and e["origin"] != ARBITER}


def converged(sessions: list[Session]) -> bool:
    """Every machine's journal holds every event any machine made."""
    wanted = made_ids(sessions)
    return all({e["id"] for e in events(session)} >= wanted for session in sessions)


def check_once(url: str, sessions: list[Session]) -> None:
    """Every event of every origin once in every journal, once in its origin's stream (under its seq, and nothing
    else there), once in its channel stream; every arbiter decision once per journal, one per contest, the same
    everywhere; every journal valid."""
    journals = {session.origin: events(session) for session in sessions}
    made = {origin: [e for e in journal if "oseq" not in e and e["origin"] != ARBITER]
            for origin, journal in journals.items()}
    ids = sorted(e["id"] for made_here in made.values() for e in made_here)
    decisions: list[list[tuple[str, str]]] = []
    for session in sessions:
        journal = journals[session.origin]
        counted = Counter(e["id"] for e in journal if e["origin"] != ARBITER)
        assert sorted(counted) == ids, f"journal of {session.origin}: missing or foreign events"
        assert set(counted.values()) == {1}, f"journal of {session.origin}: {counted.most_common(3)}"
        assert all(e["origin"] != session.origin for e in journal if "oseq" in e), "never sent back"
        decided = [(e["data"]["contest"], e["id"]) for e in journal if e["type"] == "arbiter.decided"]
        assert len({contest for contest, _ in decided}) == len(decided), f"two decisions of one contest: {decided}"
        decisions.append(sorted(decided))
        report = verify_journal(Journal(session.journal.directory, read_only=True))
        assert report["ok"], {key: report[key] for key in ("damaged", "gaps", "repeats", "torn_tail")}
    assert all(found == decisions[0] for found in decisions), "the machines hold different decisions"
    with redis.Redis.from_url(url) as client:
        channel_ids: Counter[str] = Counter()
        for channel in ("broadcast", "heartbeat", "results", "insights", "coordinator", "human"):
            for _entry_id, fields in xrange_all(client, LAYOUT.channel_stream(channel)):
                channel_ids[orjson.loads(fields[b"event"])["id"]] += 1
        assert sorted(channel_ids) == ids and set(channel_ids.values()) == {1}, "channel streams"
        for origin, made_here in made.items():
            entries = xrange_all(client, LAYOUT.origin_stream(sessions[0].id, origin))
            assert [int(entry_id.split(b"-")[0]) for entry_id, _ in entries] == [e["seq"] for e in made_here], origin
            assert [orjson.loads(fields[b"e"])["id"] for _, fields in entries] == [e["id"] for e in made_here]


def xrange_all(client: redis.Redis, stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """A stream's entries, read in pages."""
    found: list[tuple[bytes, dict[bytes, bytes]]] = []
    start = "-"
    while page := client.xrange(stream, start, "+", count=10_000):
        found += page
        start = "(" + page[-1][0].decode()
    return found


def same_state(sessions: list[Session]) -> None:
    first = facts(sessions[0].projection(save_snapshot=False)[0])
    for session in sessions[1:]:
        assert facts(session.projection(save_snapshot=False)[0]) == first, f"{session.origin} projects otherwise"


class Writer:
    """A thread that makes one machine's agents talk and claim until stopped: broadcasts, heartbeats, insights,
    tasks created, claimed and completed."""

    def __init__(self, session: Session, who: str, seed: int, pause: float = 0.005) -> None:
        self.session, self.who, self.random, self.pause = session, who, random.Random(seed), pause
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def write(self, count: int) -> None:
        agent = f"{self.who}:main"
        if not self.written:  # an agent's first event, as the hook records it
            self.session.publish("agent.joined", {"name": self.who}, sender=agent)
        for _ in range(count):
            n = self.written
            roll = self.random.random()
            if roll < 0.1:
                task = f"{self.who}-t{n}"
                self.session.publish("task.created", {"task": task, "title": f"task {n}"}, sender="human")
                self.session.publish("task.claimed", {"task": task, "round": 0}, sender=agent)
            elif roll < 0.2:
                self.session.publish("insight.shared", {"text": f"{self.who} found thing {n}"}, sender=agent)
            elif roll < 0.3:
                self.session.publish("agent.heartbeat", {"tool_calls": n, "progress": n}, sender=agent)
            else:
                self.session.publish("message.broadcast", {"text": f"{self.who} says {n}"}, sender=agent)
            self.written += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.write(5)
            self._stop.wait(self.pause)  # a steady trickle rather than one burst


@pytest.fixture
def quiet_log() -> Iterator[list[logging.LogRecord]]:
    """The replication log's warnings, collected."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("popkit_power.replication")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def own(session: Session) -> Session:
    """The same session through its own Session object, for a replicator in this process (as the coordinator gives
    it one): a Journal object is not shared between threads that append."""
    return Session(session.power_dir, session.id)


def machines_in(tmp_path: Path, count: int) -> list[Session]:
    first = start_session(str(tmp_path / "m0"), "Attacks", sender="human")
    return [first, *(join(tmp_path / f"m{n}", first.id) for n in range(1, count))]


# -- 2. Redis killed and restarted under running replicators ---------------------------------------------------------

@pytest.mark.slow
def test_redis_killed_and_restarted_under_running_replicators(own_redis: RedisServer, tmp_path: Path) -> None:
    """A Redis without persistence is SIGKILLed twice while both machines write and claim, and comes back empty:
    the replicators (their own threads, nobody prodding them) notice, push again what the server lost, and every
    event ends once everywhere; the claims still have one decision each, the same on both machines."""
    a, b = machines_in(tmp_path, 2)
    replicators = [Replicator(own(session), RedisStreams(own_redis.url)) for session in (a, b)]
    writers = [Writer(a, "alice", 1).start(), Writer(b, "bob", 2).start()]
    for replicator in replicators:
        replicator.start()
    try:
        for _ in range(2):
            until(lambda: all(r.stats["pushed"] > 40 and r.stats["pulled"] > 40 for r in replicators), 20,
                  "replication under way")
            own_redis.kill()
            own_redis.start()
            for replicator in replicators:
                replicator.stats["pushed"] = replicator.stats["pulled"] = 0
        for writer in writers:
            writer.stop()
        until(lambda: converged([a, b]), 30, "both journals hold every event")
        until(lambda: all(r.lag() == 0 for r in replicators), 30, "everything pushed")
    finally:
        for writer in writers:
            writer.stop()
        for replicator in replicators:
            replicator.stop()
    check_once(own_redis.url, [a, b])
    same_state([a, b])


# -- 1. replicator processes SIGKILLed -------------------------------------------------------------------------------

def replicate(home: str, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    """`popkit-power replicate` for one machine, as its own process."""
    with open(log, "ab") as out:
        return subprocess.Popen([str(SCRIPT), "--home", home, "replicate"], stdout=subprocess.DEVNULL, stderr=out,
                                env={**os.environ, "REDIS_URL": redis_url})


@pytest.mark.slow
def test_replicator_processes_sigkilled_at_random_moments_while_both_machines_write(redis_url: str,
                                                                                    tmp_path: Path) -> None:
    """Each machine's `popkit-power replicate` is SIGKILLed four times at random moments (starting, resuming,
    pushing, pulling) while agents on both machines keep writing, and started again: every event ends once in every
    journal and every stream, and both machines project the same state."""
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    a, b = machines_in(tmp_path, 2)
    homes = [a.power_dir, b.power_dir]
    writers = [Writer(a, "alice", seed, pause=0.02).start(), Writer(b, "bob", seed + 1, pause=0.02).start()]
    progress = []
    try:
        for round_number in range(4):
            started = time.monotonic()
            running = [replicate(home, redis_url, tmp_path / f"replicate-{n}.log") for n, home in enumerate(homes)]
            if round_number % 2:  # mid-work: once each has moved something, at a random moment after
                for process, session in zip(running, (a, b), strict=True):
                    until(lambda p=process, s=session: (read_status(s.dir) or {}).get("pid") == p.pid, 20,
                          "the replicator at work")
                started = time.monotonic()
            for process, at in sorted(((process, rng.uniform(0.0, 1.2)) for process in running),
                                      key=lambda pair: pair[1]):
                time.sleep(max(0.0, started + at - time.monotonic()))  # the attack's own random moment
                process.send_signal(signal.SIGKILL)
                assert process.wait(10) == -signal.SIGKILL
            progress.append(sum(1 for e in events(b) if e["origin"] == a.origin))
    finally:
        for writer in writers:
            writer.stop()
    assert progress[-1] > 0, f"the killed replicators moved nothing (seed {seed})"
    final = [replicate(home, redis_url, tmp_path / f"replicate-{n}.log") for n, home in enumerate(homes)]
    try:
        until(lambda: converged([a, b]), 60, f"both journals hold every event (seed {seed})")
    finally:
        for process in final:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(30) for process in final]
    assert codes == [0, 0], [(tmp_path / f"replicate-{n}.log").read_text()[-2000:] for n in range(2)]
    assert all(writer.written > 100 for writer in writers)
    check_once(redis_url, [a, b])
    same_state([a, b])


def test_a_replicator_started_again_pushes_what_was_written_while_it_was_down(redis_url: str,
                                                                             tmp_path: Path) -> None:
    """A replicator stopped after pushing, then events pulled and written meanwhile: the next one pushes every event
    after the server's last (it once went on from the end of the journal, and the server never got them)."""
    a, b = machines_in(tmp_path, 2)
    first, other = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    chatter(a, "alice", 5)
    sync(first, other)
    chatter(b, "bob", 3)
    sync(first, other)
    chatter(a, "alice", 10)
    sync(Replicator(a, RedisStreams(redis_url)), other)
    assert [e["data"]["text"] for e in events(b) if e["from"] == "alice:main"][-1] == "alice says 9"
    check_once(redis_url, [a, b])


# -- 4. hostile entries -----------------------------------------------------------------------------------------------

FAR = 9_000_000_000_000  # an entry id far ahead of any journal


def plant(client: redis.Redis, stream: str, entry_id: str, **fields: Any) -> None:
    client.xadd(stream, fields, id=entry_id)


@pytest.mark.slow
def test_hostile_entries_are_logged_and_skipped_and_the_journals_stay_valid(
        redis_url: str, tmp_path: Path, quiet_log: list[logging.LogRecord]) -> None:
    """Entries planted in both machines' streams and the arbiter's (not JSON, no body, not UTF-8, another origin's
    event, another session's, an event sent back with its `oseq`, 5 MB, an id far ahead), and a key that is not a
    stream under a third origin's name: both replicators (running in their threads) log them and go on; the machines
    whose streams were taken over take them back, the others read them again from there; no planted entry reaches a
    journal, every real event reaches every journal once, and claims are still decided."""
    a, b = machines_in(tmp_path, 2)
    replicators = [Replicator(own(session), RedisStreams(redis_url)) for session in (a, b)]
    for replicator in replicators:
        replicator.start()
    client = redis.Redis.from_url(redis_url, decode_responses=True, encoding_errors="surrogateescape")
    try:
        chatter(a, "alice", 20)
        chatter(b, "bob", 20)
        until(lambda: converged([a, b]), 10, "first events replicated")
        stream_a, stream_b = (LAYOUT.origin_stream(a.id, s.origin) for s in (a, b))
        top = int(client.xinfo_stream(stream_b)["last-generated-id"].split("-")[0])

        def event_of(origin: str, session: str = a.id, **extra: Any) -> str:
            made = a.event("message.broadcast", {"text": "planted"}, sender="mallory:main")
            return orjson.dumps({**made, "origin": origin, "session": session, **extra}).decode()

        big = orjson.dumps({**a.event("message.broadcast", {"text": "x" * (5 << 20)}, sender="mallory:main"),
                            "origin": b.origin}).decode()
        planted = [{"e": "{not json"}, {"x": "no body"}, {"e": "\udcff\udcfe"},
                   {"e": event_of(a.origin)}, {"e": event_of(b.origin, session="20260101-000000-other0")},
                   {"e": event_of(a.origin, oseq=3, seq=3)}, {"e": big}]
        for n, fields in enumerate(planted, 1):
            client.xadd(stream_b, {key: value.encode("utf-8", "surrogateescape") for key, value in fields.items()},
                        id=f"{top + n}-0")
        plant(client, stream_b, f"{FAR}-0", e="far ahead")
        plant(client, stream_a, f"{FAR}-0", e="far ahead")
        plant(client, LAYOUT.origin_stream(a.id, ARBITER), f"{FAR // 1000}-0", e="far ahead")
        client.sadd(LAYOUT.origins(a.id), "ghost")
        client.set(LAYOUT.origin_stream(a.id, "ghost"), "not a stream")
        until(lambda: replicators[0].imported.get(b.origin) == FAR and replicators[1].imported.get(a.origin) == FAR,
              10, "both machines read past the planted entries")
        writers = [Writer(a, "alice", 3), Writer(b, "bob", 4)]
        for writer in writers:
            writer.write(60)
        until(lambda: converged([a, b]), 20, "every real event on both machines after the planting")
        claims = {e["data"]["task"] for e in events(a) if e["type"] == "task.claimed"}
        until(lambda: all({e["data"]["task"] for e in events(session) if e["type"] == "arbiter.decided"} == claims
                          for session in (a, b)), 20, "every claim decided on both machines")
        until(lambda: all(r.lag() == 0 for r in replicators), 10, "everything pushed")
        assert all(thread.is_alive() for replicator in replicators for thread in replicator._threads)
    finally:
        for replicator in replicators:
            replicator.stop()
    said = "\n".join(record.getMessage() for record in quiet_log)
    for text in ("not valid JSON", "origin", "session", "does not name", "not a stream", "taken back",
                 "this machine never wrote"):
        assert text in said, f"nothing logged about {text!r}: {said[-3000:]}"
    decided = [int(e["oseq"]) for e in events(a) if e["type"] == "arbiter.decided"]
    assert decided == sorted(decided) and decided[-1] > FAR // 1000, "decisions numbered past the planted entry"
    left = [entry_id for entry_id, fields in client.xrange(stream_b) if fields in planted]
    if left:  # planted below where B's events went on: read once and skipped, and no harm where they are
        client.xdel(stream_b, *left)
    client.close()
    check_once(redis_url, [a, b])
    same_state([a, b])
    for session in (a, b):
        verified = subprocess.run([str(SCRIPT), "--home", session.power_dir, "verify"], capture_output=True,
                                  text=True, timeout=60)
        assert verified.returncode == 0, verified.stdout + verified.stderr


# -- 3. far behind: a machine with 200,000 events joins late --------------------------------------------------------

def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


@pytest.mark.slow
def test_a_machine_200000_events_behind_joins_late_and_both_stay_bounded(redis_url: str, tmp_path: Path) -> None:
    """Machine A wrote 200,000 events before its replicator ever ran; B's replicator is already waiting. A's
    resume and push and B's pull go through in batches, each process's peak memory stays a small part of the
    journal, and B ends with each of them once, in order. Figures are printed (`-s`), not asserted."""
    a, b = machines_in(tmp_path, 2)
    template = a.event("message.broadcast", {"text": ""}, sender="alice:main")
    for start in range(0, 200_000, 100):  # appends of 100 (a journal batch is read whole before its first record)
        a.append_events([{**template, "id": f"{n:032x}", "data": {"text": f"old news {n}"}}
                         for n in range(start, start + 100)])
    chatter(b, "bob", 10)
    journal_mb = sum(os.path.getsize(a.journal.segment_path(s)) for s in a.journal.segments()) / 1e6
    puller = replicate(b.power_dir, redis_url, tmp_path / "b.log")
    pusher = None
    try:
        until(lambda: (read_status(b.dir) or {}).get("pid") == puller.pid, 20, "B's replicator running")
        started = time.monotonic()
        pusher = replicate(a.power_dir, redis_url, tmp_path / "a.log")
        last = a.journal.end_position().seq - 1
        pulled = until(lambda: (read_status(b.dir) or {}).get("imported", {}).get(a.origin, 0) >= last and
                       read_status(b.dir), 120, "B pulled all of A's events")
        elapsed = time.monotonic() - started
        peaks = peak_rss_mb(pusher.pid), peak_rss_mb(puller.pid)
        until(lambda: (read_status(a.dir) or {}).get("imported", {}).get(b.origin, 0) > 0, 20, "A pulled B's")
    finally:
        for process in (puller, pusher):
            if process is not None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)
    pushed = read_status(a.dir) or {}
    print(f"\n200,000 events behind: journal {journal_mb:.0f} MB; A pushed and B pulled them in {elapsed:.1f} s; "
          f"peak memory A {peaks[0]:.0f} MB, B {peaks[1]:.0f} MB; commands A {pushed.get('commands_sent')}, "
          f"B {pulled.get('commands_sent')}")
    assert max(peaks) < 150 + journal_mb / 2, f"peak memory {peaks} MB for a {journal_mb:.0f} MB journal"
    mine = [(e["seq"], e["id"]) for e in events(a) if "oseq" not in e]
    assert [(e["oseq"], e["id"]) for e in events(b) if e["origin"] == a.origin] == mine, "each once, in order"
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        info = client.xinfo_stream(LAYOUT.origin_stream(a.id, a.origin))
        assert (info["length"], info["first-entry"][0], info["last-entry"][0]) == (
            len(mine), f"{mine[0][0]}-0", f"{mine[-1][0]}-0")
        # the original layout's channel stream is capped near redis_channel_maxlen (MAXLEN ~: whole nodes of 100)
        cap = DEFAULTS["redis_channel_maxlen"][0]
        assert cap <= client.xlen(LAYOUT.channel_stream("broadcast")) <= cap + 100
    for session in (a, b):
        assert verify_journal(Journal(session.journal.directory, read_only=True))["ok"]


# -- 5. three machines ----------------------------------------------------------------------------------------------

def test_three_machines_claim_at_once_and_a_lost_agent_s_task_is_claimed_on_both_others(redis_url: str,
                                                                                       tmp_path: Path) -> None:
    """Agents on three machines claim one task at the same moment (each journal holds its own claim first): one
    winner everywhere, the one whose claim reached the server first. Then an agent dies on machine A, its coordinator
    orphans its task, and agents on B and C both claim it: again one winner, and all three agree on everything
    (owners, attempts, current tasks, who created each task)."""
    machines = machines_in(tmp_path, 3)
    a, b, c = machines
    replicators = [Replicator(session, RedisStreams(redis_url)) for session in machines]
    names = ("alice", "bob", "carol")
    for session, who in zip(machines, names, strict=True):
        session.publish("agent.joined", {"name": who}, sender=f"{who}:main")
    a.publish("task.created", {"task": "t1", "title": "the lexer"}, sender="human")
    a.publish("task.created", {"task": "t2", "title": "the parser", "owner": "alice:main"}, sender="human")
    sync(*replicators)
    for session, who in zip(machines, names, strict=True):
        session.publish("task.claimed", {"task": "t1", "round": 0}, sender=f"{who}:main")
        assert session.projection(save_snapshot=False)[0]["tasks"]["t1"]["owner"] == f"{who}:main"
    for n in (2, 0, 1):  # carol's claim reaches the server first
        replicators[n].push_once()
    sync(*replicators)
    for session in machines:
        state = session.projection(save_snapshot=False)[0]
        assert (state["tasks"]["t1"]["owner"], state["tasks"]["t1"]["attempts"]) == ("carol:main", 1)
        assert state["agents"]["bob:main"]["current_task"] is None
    rules = Rules(agent_timeout_seconds=3600, heartbeat_seconds=3600, heartbeat_miss_threshold=3,
                  max_reassign_attempts=3)
    [batch] = decide(a.projection(save_snapshot=False)[0], time.time(), {"alice:main": False}, rules, None, a.origin)
    assert [kind for kind, _ in batch] == ["agent.lost", "task.orphaned"]
    a.append_events([a.event(kind, data, sender="coordinator") for kind, data in batch])
    sync(*replicators)
    assert all(session.projection(save_snapshot=False)[0]["orphans"] == ["t2"] for session in machines)
    b.publish("task.claimed", {"task": "t2", "round": 1}, sender="bob:main")
    c.publish("task.claimed", {"task": "t2", "round": 1}, sender="carol:main")
    replicators[1].push_once()
    replicators[2].push_once()
    sync(*replicators)
    for session in machines:
        state = session.projection(save_snapshot=False)[0]
        assert (state["tasks"]["t2"]["owner"], state["tasks"]["t2"]["attempts"]) == ("bob:main", 2)
        assert state["agents"]["carol:main"]["current_task"] == "t1", "carol's lost claim took nothing from her"
        assert {key: task["created_by"] for key, task in state["tasks"].items()} == {"t1": "human", "t2": "human"}
    check_once(redis_url, machines)
    same_state(machines)


# -- 6. a second replicator -------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_second_replicator_for_the_session_is_refused_naming_the_first(redis_url: str, tmp_path: Path) -> None:
    a = start_session(str(tmp_path / "a"), "Attacks", sender="human")
    first = replicate(a.power_dir, redis_url, tmp_path / "first.log")
    try:
        until(lambda: (read_status(a.dir) or {}).get("pid") == first.pid, 20, "the first replicator running")
        second = subprocess.run([str(SCRIPT), "--home", a.power_dir, "replicate"], capture_output=True, text=True,
                                timeout=60, env={**os.environ, "REDIS_URL": redis_url})
        assert second.returncode == 2, second.stderr
        assert f"a replicator already runs for session {a.id}: pid {first.pid}" in second.stderr
        assert first.poll() is None, "the first one goes on"
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0


# -- 7. and more: clocks, a closed session, a server that names no session, bad settings ----------------------------

def with_origin(home: Path, origin: str) -> str:
    """A power directory whose origin is `origin` (the leader among machines is the lowest origin)."""
    home.mkdir(mode=0o700)
    (home / "origin").write_text(origin + "\n")
    (home / "origin").chmod(0o600)
    return str(home)


def test_a_machine_whose_clock_is_off_is_judged_by_when_it_was_heard(redis_url: str, tmp_path: Path) -> None:
    """Machine B's clock is 10 minutes behind: its coordinator's statuses, just received, must not make the leader
    (A) declare B's agents lost. Then B's clock is an hour ahead and B falls silent: A declares them lost once it has
    not heard from B for longer than the limit, not an hour later."""
    a = start_session(with_origin(tmp_path / "a", "a-machine"), "Clocks", sender="human")
    b = join(Path(with_origin(tmp_path / "b", "b-machine")), a.id)
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    rules = Rules(agent_timeout_seconds=60, heartbeat_seconds=15, heartbeat_miss_threshold=3,
                  max_reassign_attempts=3)

    def b_says(skew: float) -> None:
        at = ts_at_seconds(time.time() + skew)
        b.append_events([make_event(kind, data, sender=sender, session=b.id, origin=b.origin, ts=at)
                         for kind, data, sender in (("coordinator.status", {"pid": 1, "host": "b"}, "coordinator"),
                                                    ("agent.heartbeat", {"tool_calls": 1}, "bob:main"))])

    a.publish("coordinator.started", {"pid": 1, "host": "a"}, sender="coordinator")
    b.publish("agent.joined", {"name": "bob"}, sender="bob:main")
    a.publish("task.created", {"task": "t1", "title": "the lexer", "owner": "bob:main"}, sender="human")
    b_says(-600)
    sync(one, two)
    now = time.time()
    assert decide(a.projection(save_snapshot=False)[0], now, {}, rules, None, a.origin) == [], \
        "B was heard from just now"
    b_says(+3600)
    sync(one, two)
    later = time.time() + rules.silence_limit + 5
    decided = [kind for batch in decide(a.projection(save_snapshot=False)[0], later, {}, rules, None, a.origin)
               for kind, _ in batch]
    assert decided == ["agent.lost", "task.orphaned"], "B has been silent for longer than the limit"


def ts_at_seconds(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1_000_000):06d}Z"


def test_a_session_closed_on_one_machine_while_the_other_writes(redis_url: str, tmp_path: Path) -> None:
    """A closes the session while B's agents still write: both journals end with every event once and agree that
    the session is closed; the server no longer names it, so a third machine's `join` does not pick it."""
    a, b = machines_in(tmp_path, 2)
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    chatter(a, "alice", 5)
    chatter(b, "bob", 5)
    sync(one, two)
    stop_session(a.power_dir, sender="human")
    chatter(b, "bob", 5)  # B has not heard yet
    sync(one, two)
    chatter(b, "bob", 3)  # nor has B's agent looked since
    sync(one, two)
    assert all(session.projection(save_snapshot=False)[0]["closed"] for session in (a, b))
    check_once(redis_url, [a, b])
    same_state([a, b])
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        assert client.get(LAYOUT.active_session) is None
    joined = subprocess.run([str(SCRIPT), "--home", str(tmp_path / "c"), "join", "--no-coordinator"],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "REDIS_URL": redis_url})
    assert joined.returncode == 2 and "names no active session" in joined.stderr, joined.stderr


def run_cli(home: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "--home", str(home), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **environ})


@pytest.mark.slow
def test_bad_settings_get_clear_errors(redis_url: str, tmp_path: Path) -> None:
    """`join` when the server names no session or holds something else under its name, a REDIS_URL that does not
    answer or is not a Redis URL (its password never shown), redis-py missing: exit 2 and one line naming what is
    wrong and what to do."""
    home = tmp_path / "m"
    start_session(str(tmp_path / "other"), "Elsewhere", sender="human")
    said = run_cli(home, "join", "--no-coordinator", REDIS_URL=redis_url)
    assert said.returncode == 2 and "names no active session under pop:session" in said.stderr, said.stderr
    with redis.Redis.from_url(redis_url) as client:
        client.rpush(LAYOUT.active_session, "not a session id")
    said = run_cli(home, "join", "--no-coordinator", REDIS_URL=redis_url)
    assert said.returncode == 2 and "pop:session holds something else" in said.stderr, said.stderr
    assert "WRONGTYPE" in said.stderr and "popkit-power join SESSION" in said.stderr
    start_session(str(home), "Here", sender="human")
    password = "s3cr3t-passw0rd-4242"
    said = run_cli(home, "replicate", REDIS_URL=f"redis://:{password}@127.0.0.1:{free_port()}/0")
    assert said.returncode == 2 and "cannot connect" in said.stderr and password not in said.stderr, said.stderr
    said = run_cli(home, "replicate", REDIS_URL="http://127.0.0.1:6379")
    assert said.returncode == 2 and "must start with redis://, rediss:// or unix://" in said.stderr, said.stderr
    shim = tmp_path / "shim" / "redis"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('raise ImportError("No module named \'redis\'")\n')
    said = run_cli(home, "replicate", REDIS_URL=redis_url, PYTHONPATH=str(shim.parent))
    assert said.returncode == 2 and "needs redis-py" in said.stderr and "pip install" in said.stderr, said.stderr


@pytest.mark.slow
def test_a_key_that_is_not_a_stream_under_this_machine_s_stream_stops_the_push_only(
        redis_url: str, tmp_path: Path) -> None:
    """Something else stands under machine A's own stream name: A pushes nothing and says why in
    replication.json, while it still pulls B's events; once the key is deleted, A pushes everything."""
    a, b = machines_in(tmp_path, 2)
    with redis.Redis.from_url(redis_url) as client:
        client.set(LAYOUT.origin_stream(a.id, a.origin), "squatter")
    one, two = Replicator(own(a), RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    one.start()
    try:
        chatter(b, "bob", 5)
        while two.push_once():
            pass
        until(lambda: sum(1 for e in events(a) if e["origin"] == b.origin) == 5, 10, "A pulls B's events")
        chatter(a, "alice", 3)
        until(lambda: "is not a stream" in str((read_status(a.dir) or {}).get("last_error")), 10, "A says why")
        assert "delete" in (read_status(a.dir) or {})["last_error"]
        with redis.Redis.from_url(redis_url) as client:
            client.delete(LAYOUT.origin_stream(a.id, a.origin))
        until(lambda: (read_status(a.dir) or {}).get("pushed", 0) >= 4, 20, "A pushes once the key is gone")
    finally:
        one.stop()
    sync(Replicator(a, RedisStreams(redis_url)), two)
    check_once(redis_url, [a, b])
