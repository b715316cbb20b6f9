"""What one pushed event writes besides its origin stream: the original Power Mode's Redis layout, and the contest
it enters for the arbiter.

Pure: an event in, a list of Redis commands out, run by the push script only when the event is new on the server
(scripts.py), so a resent event writes nothing twice. Entries and keys (under the configured prefix):

    <channel stream>            every event, as {"event": <envelope JSON>, "type", "from", "origin"} (written by the
                                script itself, capped near `redis_channel_maxlen` entries: the origin streams keep all)
    objective                   SET by session.opened, objective.set / objective.updated
    active session              SET by session.opened, deleted by session.closed while it still names this session
    state:{agent}               HSET by the agent's join, heartbeat, idle, leaving; and by agent.lost
    completed:{session}         SET (24 h) by session.closed: its summary
    tasks:orphaned              RPUSH by task.orphaned; LREM when the task is claimed, assigned, released, parked,
                                or completed
    coordinator:status          SET by coordinator.started / status / stopped
    patterns:{insight id}       HSET (24 h) by insight.shared

A claim (`task.claimed`) also enters the contest `claim:<task>:<round>` (round: how many owners the task had when the
claimant looked); the first claim the server sees wins it, and the arbiter's `arbiter.decided` names the winner (its
event id, agent, origin, and `claim_seq`: its seq there, so that a puller appends the decision after the claim).
"""

from __future__ import annotations

from typing import Any

from ..fold.tasks import TRANSITIONS
from ..journal import codec
from ..keys import ARBITER, RedisLayout
from ..protocol import make_event

DAY_SECONDS = 86_400
CONTEST = "CONTEST"  # not a Redis command: the push script's own step (scripts.py)
UNSET = "UNSET"  # nor this: delete a key only while it holds the given value
ORDER = "ORDER"  # nor this: number a task transition in the arbiter's order
#: The task transitions the arbiter orders: every transition the fold knows (fold/tasks.py applies a task's
#: transitions in that order), so that a transition added there is ordered here too.
ORDERED_TYPES = frozenset(TRANSITIONS)

Command = list[str]


def effects(event: dict[str, Any], layout: RedisLayout) -> list[Command]:
    """The commands `event` runs on the server when it is new there, besides its channel stream entry."""
    kind, sender, data = event.get("type"), event.get("from"), event.get("data") or {}
    commands: list[Command] = []
    task = data.get("task") if isinstance(data.get("task"), str) else None
    if kind == "session.opened":
        commands.append(["SET", layout.active_session, str(event.get("session"))])
        if isinstance(data.get("objective"), str):
            commands.append(["SET", layout.objective, data["objective"]])
    elif kind in ("objective.set", "objective.updated") and isinstance(data.get("text"), str):
        commands.append(["SET", layout.objective, data["text"]])
    elif kind == "session.closed":  # a later session's name, set meanwhile, stays
        commands.append([UNSET, layout.active_session, str(event.get("session"))])
        commands.append(["SET", layout.completed(str(event.get("session"))), codec.dumps(data), "EX",
                         str(DAY_SECONDS)])
    elif kind in ("agent.joined", "agent.heartbeat", "agent.idle", "agent.left"):
        status = {"agent.idle": "idle", "agent.left": "left"}.get(kind, "active")
        fields = ["status", status, "last_seen", str(event.get("ts"))]
        for name in ("name", "current_task", "progress", "host", "cwd"):
            if isinstance(data.get(name), (str, int, float)) and not isinstance(data.get(name), bool):
                fields += [name, str(data[name])]
        commands.append(["HSET", layout.agent_state(str(sender)), *fields])
    elif kind == "agent.lost" and isinstance(data.get("agent"), str):
        commands.append(["HSET", layout.agent_state(data["agent"]), "status", "lost", "lost_reason",
                         str(data.get("reason") or "")])
    elif kind == "task.orphaned" and task:
        commands.append(["RPUSH", layout.orphaned_tasks, task])
    elif kind in ("task.claimed", "task.assigned", "task.released", "task.parked", "task.completed") and task:
        commands.append(["LREM", layout.orphaned_tasks, "0", task])
    elif kind in ("coordinator.started", "coordinator.status", "coordinator.stopped"):
        commands.append(["SET", layout.coordinator_status, codec.dumps({**data, "state": kind.split(".")[1],
                                                                        "ts": event.get("ts"),
                                                                        "origin": event.get("origin")})])
    elif kind == "insight.shared" and isinstance(data.get("text"), str):
        key = layout.pattern(str(event.get("id")))
        commands.append(["HSET", key, "text", data["text"], "from", str(sender),
                         "tags", codec.dumps(data.get("tags") or []), "ts", str(event.get("ts"))])
        commands.append(["EXPIRE", key, str(DAY_SECONDS)])
    if kind == "task.claimed" and task:
        commands.append(_claim_contest(event, task, data, layout))
    if kind in ORDERED_TYPES and task:
        commands.append(_order(event, task, layout))
    return commands


class BatchText:
    """The push script's batch (scripts.py), built an event at a time: its ARGV is four words and the whole batch as
    one string. Per event: a header `<seq> <body bytes> <channel bytes> <type bytes> <sender bytes> <commands>:`,
    those four texts one after the other, then per effect command its words as `<bytes>:<word>`, the first being
    the number of words. `size` is the string's length in bytes, so that a batch can stay under a request limit.

    One string rather than ~17 arguments an event: a client packs each argument of a command separately (redis-py
    in Python, ~1 us each), which was more than half of a push's time (tools/BENCHMARKS.md, "Where a push's time
    goes"); the script cuts the string with one string.match per event and string.sub, in C."""

    __slots__ = ("_channels", "_parts", "_sizes", "count", "layout", "size")

    def __init__(self, layout: RedisLayout) -> None:
        self.layout = layout
        self.count = self.size = 0
        self._parts: list[str] = []
        self._sizes: list[tuple[int, int]] = []  # per event: where its parts begin, its bytes
        self._channels: dict[str, str] = {}

    def add(self, event: dict[str, Any], body: str) -> None:
        """Add `event`, serialized as `body` (positions.body)."""
        parts, begin = self._parts, len(self._parts)
        channel = self._channels.get(event["ch"]) or self._channels.setdefault(
            event["ch"], self.layout.channel_stream(event["ch"]))
        kind, sender = str(event["type"]), str(event["from"])
        commands = effects(event, self.layout)
        sizes = (_size(body), _size(channel), _size(kind), _size(sender))
        header = f"{event['seq']} {sizes[0]} {sizes[1]} {sizes[2]} {sizes[3]} {len(commands)}:"
        parts.append(header)
        parts += (body, channel, kind, sender)
        added = len(header) + sum(sizes)
        for command in commands:
            count = f"{len(str(len(command)))}:{len(command)}"
            parts.append(count)
            added += len(count)
            for word in command:
                prefix = f"{_size(word)}:"
                parts.append(prefix + word)
                added += len(prefix) + _size(word)
        self._sizes.append((begin, added))
        self.count += 1
        self.size += added

    def drop_last(self) -> None:
        """Take the last event added out again (it made the batch too large)."""
        begin, added = self._sizes.pop()
        del self._parts[begin:]
        self.count -= 1
        self.size -= added

    def args(self, after: int, origin: str, channel_maxlen: int) -> list[str | int]:
        """The script's ARGV: pushed after seq `after` (the last one the server holds), for `origin`."""
        return [after, self.count, origin, channel_maxlen, "".join(self._parts)]


def _size(word: str) -> int:
    """A text's length in bytes, as Lua counts it."""
    return len(word) if word.isascii() else len(word.encode("utf-8"))


def contest_of(task: str, data: dict[str, Any]) -> str:
    """The contest a claim of `task` enters: one per task and round."""
    round_number = data.get("round")
    return f"claim:{task}:{round_number if isinstance(round_number, int) else 0}"


def _order(event: dict[str, Any], task: str, layout: RedisLayout) -> Command:
    """The task transition's place in the one order of all machines' task transitions: the arbiter's next number,
    under which an `arbiter.ordered` fact naming it is appended to the arbiter's stream."""
    session = str(event.get("session"))
    ordered = make_event("arbiter.ordered", {"event": event.get("id"), "task": task, "type": event.get("type"),
                                             "origin": event.get("origin"), "seq": event.get("seq")},
                         sender=ARBITER, session=session, origin=ARBITER)
    return [ORDER, layout.arbiter_counter(session), layout.origin_stream(session, ARBITER), codec.dumps(ordered)]


def _claim_contest(event: dict[str, Any], task: str, data: dict[str, Any], layout: RedisLayout) -> Command:
    session = str(event.get("session"))
    contest = contest_of(task, data)
    decided = make_event("arbiter.decided", {"contest": contest, "event": event.get("id"), "type": "task.claimed",
                                             "task": task, "agent": event.get("from"), "origin": event.get("origin"),
                                             "claim_seq": event.get("seq")},
                         sender=ARBITER, session=session, origin=ARBITER)
    return [CONTEST, layout.contests(session), contest, str(event.get("id")), layout.arbiter_counter(session),
            layout.origin_stream(session, ARBITER), codec.dumps(decided)]
