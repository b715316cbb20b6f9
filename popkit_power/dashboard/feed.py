"""The dashboard's picture of one session, kept current by a thread of its own and handed to every open page.

    Feed(session).start()      read the session (the projection from its newest snapshot, the lanes from the
                               journal's start), then follow the journal as it grows (JournalWatch: inotify)
    feed.subscribe()           a Mailbox for one page: the latest status (replaced, never queued), the lane cells
                               changed since the page last took them (merged), woken by `notify` on its event loop
    feed.close()

After each batch of new records (everything the journal holds when the thread looks) the thread folds them into the
state (projector.apply, the fold every view uses), places them on the lanes (replay.timeline.Lanes, the timeline's
rule), renders the status as `status --json` does (status.session_status) plus what a page needs beyond it (the
recent hand-overs, the recently answered approvals, doctor's problems) and drops it into every mailbox. A page that
reads slowly misses intermediate statuses, never the latest, and holds at most one status and the bins' cells: its
memory does not grow with the session's length. With nothing new, the status is sent again every `refresh_seconds`
(ages move on, a coordinator falls silent); doctor's checks run every `doctor_seconds` while a page is open, in a
thread of their own (they verify journals and run the hook: seconds on a long session).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..journal.reader import warn_damage
from ..projector import State, apply
from ..replay.story import Book
from ..replay.timeline import KINDS, Bins, Lanes
from ..session import Session
from ..status import session_status
from ..timestamps import seconds_of

log = logging.getLogger(__name__)

#: Lane columns the page draws (the timeline file has more; a live page redraws them often).
COLUMNS = 240
#: Cells a page holds at most: past this the bins double, as the timeline's do.
MAX_CELLS = 8000
#: The hand-overs a live page is sent (the most recent); a replay keeps more, for its status at any point.
LIVE_HANDOVERS, REPLAY_HANDOVERS = 50, 20_000
MAX_ANSWERED = 10
REFRESH_SECONDS = 1.0
#: The least time between two statuses sent to the pages: under a burst of events they go out at most this often,
#: each with all that came meanwhile (a status is ~80 KB on a busy session: one per event, at 200 events a second,
#: kept a browser seconds behind).
PUBLISH_SECONDS = 0.05
#: How long a stop waits for the thread (which looks at the stop between batches of BATCH records).
CLOSE_SECONDS = 3.0
DOCTOR_SECONDS = 30.0
#: Records folded before the thread looks at the clock: a page is sent a status at least this often while a long
#: journal is read, so a page opened on a huge session draws something at once.
BATCH = 5000


class Mailbox:
    """What one page has not taken yet: the newest status and the lane cells changed since (`take`), and a `notify`
    that wakes the page's sender, given by whoever subscribes (on its own event loop)."""

    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self._lock = threading.Lock()
        self._status: bytes | None = None
        self._lanes: dict[str, Any] | None = None
        self._cells: dict[tuple[int, int, int], list[Any]] = {}
        self._full = True
        self.gone: str | None = None
        self.reload = False  # with `gone`: the page should load again (the dashboard shows another session now)

    def put(self, status: bytes | None, lanes: dict[str, Any] | None, cells: dict[tuple[int, int, int], list[Any]],
            *, full: bool) -> None:
        with self._lock:
            if status is not None:
                self._status = status
            if lanes is not None:
                self._lanes = lanes
            if full:
                self._cells, self._full = dict(cells), True
            else:
                self._cells.update(cells)
        self._notify()

    def close(self, why: str, *, reload: bool = False) -> None:
        self.gone, self.reload = why, reload
        self._notify()

    def take(self) -> tuple[bytes | None, bytes | None]:
        """(the status, the lanes message) not yet taken, each None when nothing new."""
        with self._lock:
            status, self._status = self._status, None
            lanes, cells, full = self._lanes, self._cells, self._full
            self._lanes, self._cells, self._full = None, {}, False
        if lanes is None and not cells:
            return status, None
        message = {**(lanes or {}), "full": full,
                   "cells": [[lane, kind, column, *cell_out(cell)] for (lane, kind, column), cell in cells.items()]}
        return status, orjson.dumps(message)


def cell_out(cell: list[Any]) -> list[Any]:
    """A bins cell as a page gets it: count, first and last offset (seconds after t0), and its sample."""
    count, _first_seq, _last_seq, first, last, shown = cell
    return [count, round(first, 3), round(last, 3), shown]


class Feed:
    """One session's status and lanes, kept current by a thread (see the module's docstring)."""

    def __init__(self, session: Session, *, doctor: Callable[[], list[dict[str, Any]]] | None = None,
                 refresh_seconds: float = REFRESH_SECONDS, doctor_seconds: float = DOCTOR_SECONDS,
                 follow: bool = True, clock: Callable[[], float] = time.time,
                 max_handovers: int = LIVE_HANDOVERS) -> None:
        """`follow`: go on reading as the journal grows (a live page), else read it once (a replay, whose status is
        as of its last record's time). `clock`: the status's "now" in a live page."""
        self.session = session
        self._doctor = doctor
        self._refresh_seconds = refresh_seconds
        self._doctor_seconds = doctor_seconds
        self._mailboxes: set[Mailbox] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self.problems: list[dict[str, Any]] = []
        self._checker: threading.Thread | None = None
        self._checked = threading.Event()  # set to end the checker's wait early (a page opened, or a stop)
        self._sent_doublings = -1
        self.handovers: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_handovers)
        self._orphaned: dict[str, dict[str, Any]] = {}
        self._departures: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.ready = threading.Event()
        self.error: str | None = None
        self._fresh: set[Mailbox] = set()  # pages that have not had the whole picture yet
        self._closed: tuple[str, bool] | None = None  # (why, reload) once closed: a page that comes later is told
        self._woken = threading.Event()
        self._follow_journal = follow
        self._clock = clock
        self.first: tuple[int, Any] | None = None  # (seq, ts) of the journal's first record, and of its last
        self.last: tuple[int, Any] | None = None

    # -- the pages' side --------------------------------------------------------------------------------------------

    def subscribe(self, notify: Callable[[], None]) -> Mailbox:
        """A mailbox for a new page; the thread puts the whole picture into it at once (it alone reads the lanes)."""
        mailbox = Mailbox(notify)
        with self._lock:
            if self._closed is not None:  # closed already (the dashboard shows another session now, or stops)
                mailbox.close(self._closed[0], reload=self._closed[1])
                return mailbox
            self._mailboxes.add(mailbox)
            self._fresh.add(mailbox)
            if self.error is not None:
                mailbox.close(self.error)
            first = len(self._mailboxes) == 1
        self._wake()
        if first:
            self._checked.set()  # the first page open: doctor looks now, not at its next round
        return mailbox

    def unsubscribe(self, mailbox: Mailbox) -> None:
        with self._lock:
            self._mailboxes.discard(mailbox)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="popkit-power-dashboard-feed", daemon=True)
        self._thread.start()
        if self._doctor is not None:
            self._checker = threading.Thread(target=self._check, name="popkit-power-dashboard-doctor", daemon=True)
            self._checker.start()

    def _wake(self) -> None:
        self._woken.set()
        if self._watch is not None:
            self._watch.wake()

    def close(self, why: str = "the dashboard stopped", *, reload: bool = False) -> None:
        """Stop reading, and tell every page `why` (`reload`: it should load again, to see what replaced this)."""
        self._stop.set()
        self._wake()
        self._checked.set()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_SECONDS)  # a daemon thread: one still folding does not hold the exit
        with self._lock:
            self._closed = (why, reload)
            for mailbox in self._mailboxes:
                mailbox.close(why, reload=reload)

    # -- the thread -------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as error:  # a page shows why the feed stopped instead of a status that never moves
            log.exception("the dashboard's feed stopped")
            self.error = (f"the dashboard stopped reading the session ({type(error).__name__}: {error}): start it "
                          f"again (popkit-power dashboard), and see its log for what happened")
            with self._lock:
                for mailbox in self._mailboxes:
                    mailbox.close(self.error)
        finally:
            self.ready.set()

    def _follow(self) -> None:
        session = self.session
        rules = session.rules()
        state, position = session.projection(save_snapshot=False)
        self._state = state
        self._bins = Bins(columns=COLUMNS, max_marks=MAX_CELLS, track=True)
        self._book = Book(rules)
        self._lanes = Lanes(self._book, self._bins)
        reader = session.journal.reader(on_damage=warn_damage)  # the lanes need every record since the start
        if self._follow_journal:
            from ..follow import JournalWatch

            self._watch = JournalWatch(session.journal.directory)
        try:
            self._read(reader, state, rules, fold_from=position.seq)
            self._publish(reader.position)
            self.ready.set()
            published = time.monotonic()
            pending = False  # records read that no status has gone out for yet
            while not self._stop.is_set():
                waiting = pending or bool(self._fresh)
                wait = max(0.0, published + PUBLISH_SECONDS - time.monotonic()) if waiting else self._refresh_seconds
                if self._watch is not None:
                    self._watch.wait(wait)
                else:
                    self._woken.wait(wait)
                self._woken.clear()
                if self._stop.is_set():
                    return
                if self._watch is not None and self._read(reader, state, rules, fold_from=0):
                    pending = True
                since = time.monotonic() - published
                if ((pending or self._fresh) and since >= PUBLISH_SECONDS) or (
                        self._watch is not None and since >= self._refresh_seconds):
                    self._publish(reader.position)
                    published, pending = time.monotonic(), False
        finally:
            if self._watch is not None:
                self._watch.close()

    def _read(self, reader: Any, state: State, rules: Any, *, fold_from: int) -> int:
        """Fold and place every record the journal holds beyond `reader`'s position (records before `fold_from` are
        in `state` already: only placed on the lanes); how many. A long read publishes every BATCH records."""
        count = 0
        for count, event in enumerate(reader, 1):
            seq = event.get("seq")
            if not isinstance(seq, int) or seq >= fold_from:
                apply(state, event, rules)
            if isinstance(seq, int):
                self.last = (seq, event.get("ts"))
                if self.first is None:
                    self.first = self.last
            self._book.see(event)
            self._lanes.add(event)
            self._note_handover(event)
            if count % BATCH == 0:
                if self._stop.is_set():  # closed while a long journal is read: stop now, not at its end
                    return count
                self._publish(reader.position)
        return count

    def _note_handover(self, event: dict[str, Any]) -> None:
        """Remember the task hand-overs: a task orphaned (or parked) by an agent that departed, then taken by
        another; and the human's reassignment of a task someone held."""
        kind = event.get("type")
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        assert isinstance(data, dict)
        task = data.get("task")
        if kind in ("agent.lost", "agent.left") and isinstance(data.get("agent") or event.get("from"), str):
            key = data.get("agent") if kind == "agent.lost" else event.get("from")
            self._departures[str(key)] = str(data.get("reason") or ("lost" if kind == "agent.lost" else "left"))
            while len(self._departures) > 1000:
                self._departures.popitem(last=False)
            return
        if not isinstance(task, str):
            return
        if kind in ("task.orphaned", "task.parked"):
            holder = data.get("agent")
            self._orphaned[task] = {"from": holder, "why": self._departures.get(str(holder), "its agent departed")}
            while len(self._orphaned) > 10_000:
                self._orphaned.pop(next(iter(self._orphaned)))
            if kind == "task.parked":
                self._record(task, event, holder, None, "parked for a human: " + str(data.get("reason") or ""))
            return
        taker = event.get("from") if kind == "task.claimed" else data.get("agent") if kind == "task.assigned" else None
        if not isinstance(taker, str):
            return
        orphaned = self._orphaned.pop(task, None)
        if orphaned is not None:
            self._record(task, event, orphaned["from"], taker, orphaned["why"])
        elif kind == "task.assigned" and isinstance(data.get("holder"), str) and data["holder"] != taker:
            self._record(task, event, data["holder"], taker, "reassigned by the human")

    def _record(self, task: str, event: dict[str, Any], source: Any, taker: str | None, why: str) -> None:
        self.handovers.append({"task": task, "title": self._book.titles.get(task), "from": source, "to": taker,
                               "why": why, "seq": event.get("seq"), "ts": event.get("ts")})

    def _check(self) -> None:
        """Doctor's checks, every `doctor_seconds` while a page is open, in a thread of their own: they verify
        journals and run the hook, seconds on a long session, and the pages must not wait for them."""
        assert self._doctor is not None
        while not self._stop.is_set():
            if self._mailboxes:
                try:
                    problems = self._doctor()
                except Exception as error:  # doctor's own trouble is a problem to show, not a reason to stop
                    log.exception("doctor's checks failed")
                    problems = [{"level": "warn", "check": "doctor", "text": f"the checks failed: {error}"}]
                if problems != self.problems:
                    self.problems = problems
                    self._wake()
            self._checked.wait(self._doctor_seconds)
            self._checked.clear()

    def _publish(self, position: Any) -> None:
        last = seconds_of(self.last[1]) if self.last is not None and not self._follow_journal else None
        now = self._clock() if last is None else last
        status = session_status(self.session, self._state, position, now=now)
        status.update(extras(self._state, list(self.handovers)[-LIVE_HANDOVERS:], self.problems, position.seq - 1))
        rendered = orjson.dumps(status, default=str)
        bins = self._bins
        changed = bins.changed if bins.changed is not None else set()
        doubled = bins.doublings != self._sent_doublings
        self._sent_doublings = bins.doublings
        lanes = self._lanes_message()
        cells = {key: bins.cells[key] for key in changed if key in bins.cells}
        changed.clear()
        with self._lock:
            fresh, self._fresh = self._fresh, set()
            for mailbox in self._mailboxes:
                if doubled or mailbox in fresh:  # the whole picture (Mailbox.put copies it)
                    mailbox.put(rendered, lanes, bins.cells, full=True)
                else:
                    mailbox.put(rendered, lanes, cells, full=False)

    def _lanes_message(self) -> dict[str, Any]:
        bins, placed = self._bins, self._lanes
        t0 = bins.t0
        return {"t0": t0, "bin_seconds": bins.width, "max_columns": COLUMNS,
                "segments": [[0.0, t0], *bins.breaks] if t0 is not None else [],  # silences cut (timeline.Bins)
                "columns": min(COLUMNS, int(bins.last / bins.width) + 1) if t0 is not None else 0,
                "lanes": [{"index": placed.lanes[key]["index"], **placed.lane(key)} for key in placed.order()]}


def extras(state: State, handovers: Any, problems: list[dict[str, Any]], through: int) -> dict[str, Any]:
    """What a page shows beyond `status --json`: the recent hand-overs, the recently answered approvals (with how
    the answer came: `via` the dashboard or not), doctor's problems, and the seq the status covers."""
    answered = []
    for request, approval in list(state["answered"].items())[-MAX_ANSWERED:]:
        evidence = approval.get("evidence") if isinstance(approval.get("evidence"), dict) else {}
        assert isinstance(evidence, dict)
        answered.append({"request": request, "status": approval.get("status"), "by": approval.get("by"),
                         "via": evidence.get("via"), "answered": approval.get("answered"),
                         "question": approval.get("question"), "from": approval.get("from")})
    return {"handovers": list(handovers), "answered_recently": answered, "problems": problems,
            "drawn_through": through}


def hello(session: Session, *, mode: str, can_answer: bool, why_not: str | None,
          replay: dict[str, Any] | None = None) -> bytes:
    """The first message a page gets: which session, whether it is live or a replay, whether this dashboard may
    answer approvals (not when it runs inside an agent's session), and the kinds of lane marks."""
    return orjson.dumps({"mode": mode, "session": session.id, "power_dir": session.power_dir,
                         "can_answer": can_answer, "why_not": why_not, "replay": replay,
                         "kinds": [{"id": kind, "label": label} for kind, label in KINDS]})
