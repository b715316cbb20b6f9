"""Replication between "machines" (power directories with their own origin) through one server: every event once
in every journal and every stream, whatever fails in between; claims on two machines converge to one winner."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import KINDS, bridge_for, make_transport

from popkit_power.home import set_active_session
from popkit_power.keys import ARBITER, RedisLayout
from popkit_power.projector import State
from popkit_power.replication.errors import ReplicationError, TransportError
from popkit_power.replication.memory import FaultyTransport, MemoryTransport
from popkit_power.replication.redis_streams import RedisStreams
from popkit_power.replication.replicator import Replicator
from popkit_power.replication.transport import Transport
from popkit_power.session import Session, start_session

LAYOUT = RedisLayout()


def join(power_dir: Path, session_id: str) -> Session:
    """Machine B's copy of a session that machine A opened: empty until it pulls."""
    session = Session(str(power_dir), session_id, create=True)
    set_active_session(str(power_dir), session_id)
    return session


@pytest.fixture
def machines(tmp_path: Path) -> tuple[Session, Session]:
    a = start_session(str(tmp_path / "a"), "Two machines", sender="human")
    return a, join(tmp_path / "b", a.id)


def events(session: Session) -> list[dict[str, Any]]:
    return list(session.journal.reader())


def sync(*replicators: Replicator, rounds: int = 50) -> None:
    """Push and pull on every machine until nothing moves (failures are retried, as the loops do)."""
    for _ in range(rounds):
        moved = 0
        for replicator in replicators:
            for step in (replicator.push_once, replicator.pull_once):
                try:
                    moved += step()
                except TransportError:
                    replicator._resumed = False  # what the loop does after a failure
                    moved += 1
        if not moved:
            return
    raise AssertionError("replication did not settle")


def facts(state: State) -> dict[str, Any]:
    """What two machines must agree on (lists whose order is arrival order, and local seqs, aside)."""
    return {
        "agents": {key: (agent["status"], agent["current_task"], agent["tool_calls"])
                   for key, agent in state["agents"].items()},
        "tasks": {key: (task["status"], task["owner"], task["attempts"]) for key, task in state["tasks"].items()},
        "finished": {key: (task["status"], task["owner"]) for key, task in state["finished"].items()},
        "orphans": sorted(state["orphans"]), "objective": (state["objective"] or {}).get("text"),
        "insights": sorted(insight["id"] for insight in state["insights"]),
        "approvals": {key: value["status"] for key, value in {**state["approvals"], **state["answered"]}.items()},
        "counts": {key: n for key, n in state["counts"].items()},
    }


def assert_exactly_once(transport: Transport, sessions: list[Session]) -> None:
    """Every event of every origin once in every journal, once in its origin's stream, once in its channel stream."""
    made = {session.origin: [e for e in events(session) if "oseq" not in e and e["origin"] != ARBITER]
            for session in sessions}
    ids = sorted(e["id"] for made_here in made.values() for e in made_here)
    for session in sessions:
        journal = events(session)
        counted = Counter(e["id"] for e in journal if e["origin"] != ARBITER)
        assert sorted(counted) == ids and set(counted.values()) == {1}, f"journal of {session.origin}"
        pulled = [e for e in journal if "oseq" in e]
        assert all(e["origin"] != session.origin for e in pulled), "never sent back where it came from"
    channel_ids: Counter[str] = Counter()
    for channel in ("broadcast", "heartbeat", "results", "insights", "coordinator", "human"):
        [found] = transport.execute([["XRANGE", LAYOUT.channel_stream(channel), "-", "+"]], timeout=10)
        for _entry_id, fields in found:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            channel_ids[__import__("orjson").loads(values["event"])["id"]] += 1
    assert sorted(channel_ids) == ids and set(channel_ids.values()) == {1}
    for origin, made_here in made.items():
        [entries] = transport.execute([["XRANGE", LAYOUT.origin_stream(sessions[0].id, origin), "-", "+"]],
                                      timeout=10)
        assert [int(entry_id.split("-")[0]) for entry_id, _ in entries] == [e["seq"] for e in made_here]


def chatter(session: Session, who: str, count: int) -> None:
    for n in range(count):
        session.publish("message.broadcast", {"text": f"{who} says {n}"}, sender=f"{who}:main")


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_two_machines_see_each_other_once_and_project_the_same_state(kind: str, redis_url: str,
                                                                    machines: tuple[Session, Session],
                                                                    request: pytest.FixtureRequest) -> None:
    a, b = machines
    bridge = bridge_for(kind, request)
    transport = make_transport(kind, redis_url, bridge)
    other = transport.sibling() if isinstance(transport, MemoryTransport) else make_transport(kind, redis_url, bridge)
    chatter(a, "alice", 30)
    b.publish("insight.shared", {"text": "the cache needs the tenant id", "tags": ["cache"]}, sender="bob:main")
    chatter(b, "bob", 20)
    one, two = Replicator(a, transport), Replicator(b, other)
    sync(one, two)
    assert [e["data"]["text"] for e in events(b) if e["from"] == "alice:main"] == [f"alice says {n}" for n in range(30)]
    pulled = [e for e in events(b) if e["origin"] == a.origin]
    assert [e["oseq"] for e in pulled] == [e["seq"] for e in events(a) if e["origin"] == a.origin]
    assert_exactly_once(transport, [a, b])
    assert facts(a.projection()[0]) == facts(b.projection()[0])
    [objective] = transport.execute([["GET", LAYOUT.objective]], timeout=10)
    assert objective == "Two machines"
    transport.close()
    other.close()


@pytest.mark.parametrize("fault", ["timeout_after_applying", "timeout_before_sending", "server_error_applied",
                                   "server_error", "reset_applied", "reset", "unreachable", "auth_refused",
                                   "daily_limit"])
def test_every_event_exactly_once_whatever_fails(fault: str, redis_url: str,
                                                 machines: tuple[Session, Session]) -> None:
    """Each fault strikes every third call of machine A and B, pushes and pulls alike, while both write."""
    a, b = machines
    faulty = [FaultyTransport(RedisStreams(redis_url)), FaultyTransport(RedisStreams(redis_url))]
    one, two = Replicator(a, faulty[0]), Replicator(b, faulty[1])
    name, _, applied = fault.partition("_applied")
    for round_number in range(6):
        chatter(a, "alice", 7)
        chatter(b, "bob", 5)
        for replicator in faulty:
            planner = getattr(replicator, {"server_error": "server_error", "reset": "connection_reset"}.get(
                name, name))
            if name in ("server_error", "reset"):
                planner(applied=bool(applied) or fault.endswith("applied"))
            else:
                planner()
        sync(one, two)
        struck = [len(replicator.raised) for replicator in faulty]
        assert struck == [round_number + 1] * 2, f"round {round_number}: each machine's planned fault struck once"
        assert facts(a.projection()[0]) == facts(b.projection()[0]), f"round {round_number}: the machines agree"
    assert_exactly_once(faulty[0], [a, b])
    assert facts(a.projection()[0]) == facts(b.projection()[0])


def test_redis_killed_and_restarted_mid_stream_loses_and_duplicates_nothing(own_redis: Any,
                                                                           machines: tuple[Session, Session]) -> None:
    """A Redis without persistence restarts empty: each machine pushes again what the server no longer holds, and
    pulls nothing twice."""
    a, b = machines
    one, two = Replicator(a, RedisStreams(own_redis.url)), Replicator(b, RedisStreams(own_redis.url))
    chatter(a, "alice", 10)
    chatter(b, "bob", 10)
    sync(one, two)
    own_redis.kill()
    chatter(a, "alice", 5)
    with pytest.raises(TransportError):
        one.push_once()
    own_redis.start()
    one._resumed = two._resumed = False
    chatter(b, "bob", 5)
    sync(one, two)
    assert_exactly_once(RedisStreams(own_redis.url), [a, b])


def test_claims_on_two_machines_at_once_converge_to_the_claim_the_server_saw_first(
        redis_url: str, machines: tuple[Session, Session]) -> None:
    """Both claims win locally (each journal has its own first); the arbiter's decision names B's claim, pushed
    first, and both machines end with the same owner, attempts and current tasks."""
    a, b = machines
    one, two = Replicator(a, RedisStreams(redis_url)), Replicator(b, RedisStreams(redis_url))
    a.publish("task.created", {"task": "t1", "title": "the lexer"}, sender="human")
    sync(one, two)
    a.publish("task.claimed", {"task": "t1", "round": 0}, sender="alice:main")
    b.publish("task.claimed", {"task": "t1", "round": 0}, sender="bob:main")
    assert a.projection()[0]["tasks"]["t1"]["owner"] == "alice:main"
    assert b.projection()[0]["tasks"]["t1"]["owner"] == "bob:main"
    two.push_once()
    one.push_once()
    sync(one, two)
    state_a, state_b = a.projection()[0], b.projection()[0]
    assert state_a["tasks"]["t1"]["owner"] == state_b["tasks"]["t1"]["owner"] == "bob:main"
    assert state_a["tasks"]["t1"]["attempts"] == state_b["tasks"]["t1"]["attempts"] == 1
    assert facts(state_a) == facts(state_b)
    decided = [e for e in events(a) if e["type"] == "arbiter.decided"]
    assert len(decided) == 1 and decided[0]["data"]["agent"] == "bob:main" and decided[0]["from"] == ARBITER
    assert [e["id"] for e in events(b) if e["type"] == "arbiter.decided"] == [decided[0]["id"]]


def test_failures_back_off_doubling_and_a_refused_token_waits_longest(machines: tuple[Session, Session]) -> None:
    """1 s, 2 s, 4 s between tries while the server is unreachable; a refused token waits 60 s at once; a success
    starts over at 1 s. Each failure is in the status file for `status`, without the token."""
    a, _ = machines
    faulty = FaultyTransport(MemoryTransport())
    replicator = Replicator(a, faulty, clock=lambda: 1000.0)
    waits: list[float] = []
    replicator._stop.wait = lambda seconds=None: waits.append(seconds) or False  # type: ignore[method-assign]
    faulty.unreachable(times=3)
    for _ in range(3):
        assert replicator._guarded(replicator.push_once) == 0
    faulty.auth_refused()
    replicator._guarded(replicator.push_once)
    assert replicator._guarded(replicator.push_once) > 0, "the session's events are pushed once it answers"
    faulty.unreachable()
    chatter(a, "alice", 1)
    replicator._guarded(replicator.push_once)
    assert waits == [1.0, 2.0, 4.0, 60.0, 1.0]
    status = __import__("orjson").loads(Path(a.dir, "replication.json").read_bytes())
    assert status["errors"] == 5 and "Unreachable" in status["last_error"] and status["backoff_until"] == 1001.0


def test_a_stopped_replicator_is_not_started_again_in_silence(machines: tuple[Session, Session]) -> None:
    """start() after stop() would start threads that end at once (the stop stays set) and replicate nothing."""
    a, _ = machines
    replicator = Replicator(a, MemoryTransport())
    replicator.start()
    replicator.stop()
    with pytest.raises(ReplicationError, match="one start, then a new Replicator"):
        replicator.start()


@pytest.mark.parametrize("kind", KINDS)
def test_a_machine_that_joins_is_read_at_the_next_poll_without_reading_the_set_of_origins(
        kind: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """On Upstash nine polls in ten skip the set of origins (SMEMBERS costs a command): a machine that joined was then
    unknown to the others for up to ten idle polls (~13 minutes), its events and its coordinator unseen. The
    machines that join are announced on a stream the poll's one XREAD reads anyway."""
    bridge = bridge_for(kind, request)
    first = make_transport(kind, redis_url, bridge)
    a = start_session(str(tmp_path / "a"), "Joining", sender="human")
    one = Replicator(a, first)
    one.push_once()
    one.pull_once(with_members=True)
    b = join(tmp_path / "b", a.id)
    chatter(b, "bob", 3)
    two = Replicator(b, first.sibling() if isinstance(first, MemoryTransport) else make_transport(kind, redis_url,
                                                                                                  bridge))
    two.push_once()
    assert one.pull_once(with_members=False) == 3
    assert [e["data"]["text"] for e in events(a) if e["origin"] == b.origin] == [f"bob says {n}" for n in range(3)]
