"""A power session: its journal, publishing events into it, and its projection with snapshots.

`Session` is what the CLI and the hook hold. Opening one reads nothing but the config; publishing builds an envelope
(protocol.py), serializes it, and appends it. `Session.projection()` is the state folded from the latest valid
snapshot plus the records after it, so start-up costs O(tail), not O(history).

This module is on the hook's hot path for publishing; the projection half imports orjson and the projector lazily.
"""

from __future__ import annotations

import os
import time

from ._fs import DIR_MODE, private_dir
from .config import Config, load_config
from .display import shown
from .errors import PowerModeError, SessionError
from .home import (
    active_session,
    check_session_id,
    existing_session_dir,
    origin_id,
    session_dir,
    set_active_session,
)
from .journal import codec
from .journal.reader import warn_damage
from .journal.writer import Appended, Journal, Position
from .keys import HUMAN, JOURNAL_DIR, SNAPSHOTS_DIR, sessions_dir
from .protocol import make_event

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from .journal.snapshots import Snapshots
    from .journal.writer import Damage, DamageHandler
    from .projector import Rules, State
    from .shapes.state import Task

#: A long fold (no snapshot yet, or one made with other settings) saves its progress this often.
INTERMEDIATE_SNAPSHOT_EVERY = 100_000


class Session:
    """One session of one power directory: made with `create`, else it must exist (its journal too). A session
    opened `read_only` (status, verify, replay) creates and writes nothing, and reads where it cannot write."""

    def __init__(self, power_dir: str, session_id: str, config: Config | None = None, *, create: bool = False,
                 read_only: bool = False) -> None:
        self.power_dir = power_dir
        self.id = check_session_id(session_id)
        self.read_only = read_only
        self.dir = (session_dir(power_dir, session_id) if create
                    else existing_session_dir(power_dir, session_id, for_writing=not read_only))
        self.config = config or load_config(power_dir)
        if create:
            private_dir(power_dir)
            private_dir(os.path.dirname(self.dir))
            private_dir(self.dir)
        self.journal = Journal(
            os.path.join(self.dir, JOURNAL_DIR),
            durability=self.config.durability,
            segment_max_bytes=self.config.segment_max_bytes,
            max_record_bytes=self.config.max_record_bytes,
            create=create,
            read_only=read_only,
        )
        self._origin: str | None = None

    @classmethod
    def active(cls, power_dir: str, config: Config | None = None) -> Session:
        """The active session; raise SessionError if Power Mode is off."""
        session_id = active_session(power_dir)
        if session_id is None:
            raise SessionError(f"no active power session in {power_dir}; "
                               f"start one with: popkit-power start \"objective\"")
        return cls(power_dir, session_id, config)

    @property
    def origin(self) -> str:
        if self._origin is None:
            self._origin = origin_id(self.power_dir)
        return self._origin

    def event(self, event_type: str, data: Mapping[str, Any], *, sender: str, to: str | None = None,
              channel: str | None = None) -> dict[str, Any]:
        """A validated envelope for this session (not yet appended)."""
        return make_event(event_type, data, sender=sender, session=self.id, origin=self.origin, to=to,
                          channel=channel)

    def publish(self, event_type: str, data: Mapping[str, Any], *, sender: str, to: str | None = None,
                channel: str | None = None) -> Appended:
        """Build, validate and append one event; return where it landed."""
        return self.append_events([self.event(event_type, data, sender=sender, to=to, channel=channel)])

    def append_events(self, events: Sequence[dict[str, Any]]) -> Appended:
        """Append already built envelopes, in order, as one atomic write.

        Every event this machine sends as the human carries the evidence of the process that appends it
        (`provenance.evidence`), replacing whatever evidence the caller put there: every API that appends goes
        through here, so none records the human's word without it. Events pulled from other machines (another
        origin, with the `oseq` the replicator gives them) keep the evidence recorded where they were sent."""
        if any(_stamped(event, self.origin) for event in events):
            events = self._with_evidence(events)
        return self.journal.append([codec.dumps(event).encode("utf-8") for event in events])

    # -- task verbs -------------------------------------------------------------------------------------------------

    def complete_task(self, task_id: str, result: str, *, sender: str, ok: bool = True,
                      seen: tuple[State, Position] | None = None) -> Appended:
        """Report `task_id` finished (or failed, `ok` False) with its result, as `sender`; return where it landed.

        Only the task's holder, or the human, finishes a task (fold/tasks.py, `may_finish`): any other sender is
        refused with a SessionError that names who holds it, and nothing is written. The check is made on `seen`
        (the projection the caller looked at) or the current projection, and again on the journal as of the
        completion once it is appended: when a release or a reassignment came in between, the completion changes
        nothing, and the caller is told so, naming the new holder. With machines replicating, the server's order of
        task changes has the last word (`popkit-power done` waits for the result's place; this does not).
        """
        from .fold.tasks import may_finish

        state, position = seen or self.projection()
        if not may_finish(state, task_id, sender):
            raise SessionError(f"{why_not_finished(state, task_id)}; nothing written")
        owner = state["tasks"][task_id]["owner"] if task_id in state["tasks"] else None
        holder = {"holder": owner} if isinstance(owner, str) and owner != sender else {}  # told by its hook
        appended = self.publish("task.completed", {"task": task_id, "result": result, "ok": ok, **holder},
                                sender=sender)
        state = self.fold_through(state, position, appended.first_seq)
        if task_id not in state["finished"] or state["finished"][task_id]["completed_by"] != sender:
            raise SessionError(f"task {shown(task_id)} was not recorded as done: {why_not_finished(state, task_id)} "
                               f"(it changed hands just before your result, seq {appended.first_seq}, which counts "
                               f"for nothing)")
        return appended

    def fold_through(self, state: State, position: Position, seq: int) -> State:
        """`state` (covering the journal up to `position`) with the records after it folded in, up to and including
        `seq`: the state as `seq` left it, whatever was appended after it."""
        from .projector import apply

        rules = self.rules()
        for event in self.journal.reader(position):
            apply(state, event, rules)
            if event.get("seq", 0) >= seq:
                break
        return state

    def _with_evidence(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        from .provenance import evidence

        found = evidence(os.environ)  # of this very process, whoever called: so no caller can leave it out
        return [{**event, "data": {**event["data"], "evidence": found}} if _stamped(event, self.origin) else event
                for event in events]

    # -- projection -------------------------------------------------------------------------------------------------

    def rules(self) -> Rules:
        from .projector import Rules

        return Rules.from_config(self.config)

    def projection(self, *, save_snapshot: bool = True,
                   on_damage: DamageHandler | None = None) -> tuple[State, Position]:
        """The current state and the position it covers: the latest snapshot plus the tail after it.

        With `save_snapshot`, a new snapshot is written when the tail was longer than `snapshot_every_events`, and
        also every `INTERMEDIATE_SNAPSHOT_EVERY` events on the way: a fold that is killed part way (a hook at its
        timeout) leaves its progress for the next one. A snapshot is a cache: a read-only session writes none, and
        one that cannot be written (a full or read-only disk) is skipped.
        """
        from .projector import Folding, apply, new_state

        rules = self.rules()
        snapshots = self.snapshots
        loaded = snapshots.latest(self.journal.end_position())
        state, position = loaded if loaded else (new_state(), Position())
        lines = [0]  # records and damaged lines passed: a long stretch of damage is progress worth saving too

        report = on_damage or warn_damage

        def count_damage(damage: Damage) -> None:
            lines[0] += 1
            report(damage)

        reader = self.journal.reader(position, on_damage=count_damage)
        saved_at = 0
        save_snapshot = save_snapshot and not self.read_only
        with Folding():  # the fold makes no reference cycles: the collector would only walk the state (projector.py)
            for event in reader:
                apply(state, event, rules)
                lines[0] += 1
                if save_snapshot and lines[0] - saved_at >= INTERMEDIATE_SNAPSHOT_EVERY:
                    save_snapshot = _save_if_possible(snapshots, state, reader.position)
                    saved_at = lines[0]
        if save_snapshot and lines[0] >= self.config.snapshot_every_events and lines[0] > saved_at:
            _save_if_possible(snapshots, state, reader.position)
        return state, reader.position

    @property
    def snapshots(self) -> Snapshots:
        """This session's projection snapshots, for its current rules."""
        from .journal.snapshots import Snapshots
        from .projector import FOLD_VERSION

        fold_key = {**self.rules().key(), "fold_version": FOLD_VERSION}
        return Snapshots(os.path.join(self.dir, SNAPSHOTS_DIR), self.id, fold_key, self.journal)


def _stamped(event: dict[str, Any], origin: str) -> bool:
    """Whether `event` gets the evidence of this process: sent as the human, and not pulled from another machine."""
    return (event.get("from") == HUMAN and isinstance(event.get("data"), dict)
            and (event.get("origin") == origin or "oseq" not in event))


def _save_if_possible(snapshots: Snapshots, state: State, position: Position) -> bool:
    """Save a snapshot; False (and nothing more tried) when it cannot be written: it is only a cache."""
    try:
        snapshots.save(state, position)
    except (OSError, PowerModeError):
        return False
    return True


def why_not_finished(state: State, task_id: str) -> str:
    """Why a completion of `task_id` finishes nothing in `state`: who holds it, that nobody does, or that it is
    finished."""
    finished = state["finished"].get(task_id)
    if finished is not None:
        return f"task {shown(task_id)} is already {finished['status']} by {_agent(state, finished['completed_by'])}"
    if task_id in state["finished_ids"]:  # finished long ago: its record is in the journal (`popkit-power replay`)
        return f"task {shown(task_id)} is already {'completed' if state['finished_ids'][task_id] else 'failed'}"
    task: Task | dict[str, Any] = state["tasks"].get(task_id) or {}
    if task.get("owner"):
        return (f"task {shown(task_id)} belongs to {_agent(state, task['owner'])}: only its holder or the human "
                f"reports its result")
    return f"task {shown(task_id)} is {task.get('status')}: nobody holds it; claim it before you report its result"


def _agent(state: State, key: Any) -> str:
    """An agent as a message names it: `name (key)`, each cut and escaped to one plain line."""
    name = (state["agents"][key]["name"] if key in state["agents"] else None) or key
    return shown(str(name)) if name == key else f"{shown(str(name))} ({shown(str(key))})"


def new_session_id() -> str:
    """A session id that sorts by its UTC start time: 20261124-100000-ab12cd."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + os.urandom(3).hex()


def start_session(power_dir: str, objective: str, *, sender: str, config: Config | None = None) -> Session:
    """Open a new session with `objective`, record it in its journal, and make it the active one.

    All or nothing: when a step fails (a full disk), the new session's directory is removed again and the active
    session stays what it was, so no empty or half-written session is left to count as the newest one.
    """
    if not isinstance(objective, str) or not objective.strip():
        raise SessionError("the objective must be a non-empty text")
    private_dir(power_dir)
    private_dir(sessions_dir(power_dir))
    for _attempt in range(100):  # a directory this call makes itself, so that a failure removes only its own
        session_id = new_session_id()
        directory = session_dir(power_dir, session_id)
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode goes through the umask
        break
    else:
        raise SessionError(f"could not make a new session directory in {sessions_dir(power_dir)}")
    session: Session | None = None
    try:
        session = Session(power_dir, session_id, config, create=True)
        session.append_events([
            session.event("session.opened", {"objective": objective.strip()}, sender=sender),
            session.event("objective.set", {"text": objective.strip()}, sender=sender),
        ])
        set_active_session(power_dir, session.id)
    except BaseException:
        import shutil

        if session is not None:
            try:
                session.journal.close()
            except OSError:
                pass
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return session


def stop_session(power_dir: str, *, sender: str, reason: str = "stopped") -> Session:
    """Close the active session, recording in its journal what was done (`summarize`), and turn Power Mode off."""
    session = Session.active(power_dir)
    state, _ = session.projection()
    session.publish("session.closed", {"reason": reason, "summary": summarize(state)}, sender=sender)
    set_active_session(power_dir, None)
    return session


def summarize(state: State) -> dict[str, Any]:
    """What a session did, in counts: agents, tasks by status, insights (not counting near-duplicates), approvals
    by status."""
    def by_status(items: dict[str, Any]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in items.values():
            counts[item.get("status", "?")] = counts.get(item.get("status", "?"), 0) + 1
        return counts

    return {"agents": len(state["agents"]) + sum(state["totals"]["agents"].values()),
            "tasks": {**by_status(state["tasks"]), **state["totals"]["tasks"]},
            "insights": sum(1 for insight in state["insights"] if insight.get("dup_of") is None),
            "approvals": {**by_status(state["approvals"]), **state["totals"]["approvals"]}}
