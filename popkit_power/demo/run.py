"""The human's side of the demo: a temporary power directory, a session, the real coordinator, three simulated agents
as processes of their own, one of them killed mid-task, the approval answered, a live status, and a clean end.

Every process the demo starts ends with it: the agents run in process groups of their own and are killed (with
anything they started) when the demo ends, whether it finished, failed or was interrupted (Ctrl-C, SIGTERM); the
coordinator runs in the demo's own process (`PowerModeCoordinator.start()`), so it cannot outlive it; and an agent
whose demo is gone ends by itself (agent.py). The power directory stays, so that `popkit-power --home DIR status`
and `replay` can look at the session afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from .. import provenance
from ..coordinator import PowerModeCoordinator
from ..follow import JournalWatch
from ..journal.writer import Position
from ..keys import HUMAN, agent_key
from ..replication.mode_selector import CREDENTIAL_VARS, FILE
from ..session import Session, start_session, stop_session
from ..status import StatusReader
from .story import story

#: The whole demo gives up after this long (it takes a few seconds at --pace 0, about 15 s at the default pace).
DEADLINE_SECONDS = 55.0
#: The agent killed mid-task has made this many tool calls on its task first.
CALLS_BEFORE_KILL = 3
TICK_SECONDS = 0.25  # the live view is redrawn at least this often


class DemoFailed(Exception):
    """The story did not happen as it should (named), or the demo ran past its deadline."""


class Demo:
    """One run of the demo in `directory` (power/, project/ and logs/ are made there)."""

    def __init__(self, directory: str, *, seed: int, pace: float, say: Callable[[str], None]) -> None:
        self.directory = directory
        self.power_dir = os.path.join(directory, "power")
        self.project = os.path.join(directory, "project")
        self.logs = os.path.join(directory, "logs")
        self.seed = seed
        self.pace = pace
        self.say = say
        self.plan = story(seed)
        self.personas: dict[Any, str] = {agent_key(agent["claude_session"]): persona
                                         for persona, agent in self.plan["agents"].items()}
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.coordinator: PowerModeCoordinator | None = None
        self.session: Session | None = None
        self.started = time.monotonic()
        self.story_lines: list[str] = []
        self.killed: str | None = None
        self.answered = False
        self.asked_at: float | None = None
        self.request: str | None = None
        self._log_offsets: dict[str, int] = {}

    # -- the run ----------------------------------------------------------------------------------------------------

    def open(self) -> Session:
        """The session with its tasks, and its coordinator running."""
        for path in (self.project, self.logs):
            os.makedirs(path, exist_ok=True)
        session = start_session(self.power_dir, self.plan["objective"], sender=HUMAN)
        self.session = session
        session.append_events([session.event("task.created", task, sender=HUMAN) for task in self.plan["tasks"]])
        coordinator = PowerModeCoordinator(power_dir=self.power_dir, session_id=session.id)
        coordinator.mode, coordinator.reason = FILE, "the demo runs on the file journal only"  # no network, ever
        coordinator.start()
        self.coordinator = coordinator
        return session

    def start_agents(self) -> None:
        env = {name: value for name, value in os.environ.items()
               if name not in (*CREDENTIAL_VARS, *provenance.AGENT_ENVIRONMENT, "POPKIT_POWER_AGENT")}
        env["POPKIT_POWER_HOME"] = self.power_dir
        deadline = time.time() + DEADLINE_SECONDS
        for persona in self.plan["agents"]:
            with open(os.path.join(self.logs, f"{persona}.log"), "ab") as log:
                self.agents[persona] = subprocess.Popen(
                    [sys.executable, "-m", "popkit_power.demo.agent", persona, str(self.seed), str(self.pace),
                     self.project, str(deadline)], env=env, cwd=self.project, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)

    def drive(self, show: Callable[[dict[str, Any]], None]) -> None:
        """Follow the journal, play the human's part (the kill, the answer), and show the status, until every task
        is done and every agent has ended; DemoFailed when that does not happen in time."""
        session = self.session
        assert session is not None
        status = StatusReader(Session(self.power_dir, session.id, read_only=True))
        reader = session.journal.reader(Position())
        watch = JournalWatch(session.journal.directory)
        done: set[Any] = set()
        victim_calls = 0
        victim = agent_key(self.plan["agents"][self.plan["victim"]]["claude_session"])
        try:
            while True:
                for event in reader:
                    self.tell(event)
                    kind, data, sender = event.get("type"), event.get("data") or {}, event.get("from")
                    if kind == "task.completed" and data.get("ok", True):
                        done.add(data.get("task"))
                    elif kind == "agent.tool" and sender == victim:
                        victim_calls += 1
                    elif kind == "approval.requested" and self.asked_at is None:
                        self.asked_at = time.monotonic()
                        self.request = data.get("request")
                self.read_agent_logs()
                if self.killed is None and victim_calls >= CALLS_BEFORE_KILL + 1:  # its claim, then its work
                    self.kill(self.plan["victim"])
                if self.asked_at is not None and not self.answered \
                        and time.monotonic() - self.asked_at >= 2 * self.pace:
                    self.answer(session)
                show(status.read())
                finished = {task["task"] for task in self.plan["tasks"]} <= done
                if finished and all(agent.poll() is not None for agent in self.agents.values()):
                    return
                self.check_deadline(done)
                watch.wait(TICK_SECONDS)
        finally:
            watch.close()
            status.session.journal.close()

    def check_deadline(self, done: set[Any]) -> None:
        if time.monotonic() - self.started <= DEADLINE_SECONDS:
            for persona, agent in self.agents.items():
                if agent.poll() not in (None, 0) and persona != self.killed:
                    raise DemoFailed(f"agent {persona} ended with exit code {agent.returncode} (its log: "
                                     f"{os.path.join(self.logs, persona + '.log')})")
            return
        missing = [task["task"] for task in self.plan["tasks"] if task["task"] not in done]
        raise DemoFailed(f"the demo did not finish within {DEADLINE_SECONDS:g} s (tasks not done: "
                         f"{', '.join(missing) or 'none'}; the agents' logs are in {self.logs})")

    def kill(self, persona: str) -> None:
        """SIGKILL the agent's own process, mid-task, as a crash would: no SessionEnd, nothing said."""
        process = self.agents[persona]
        self.killed = persona
        self.note(f"the demo kills {persona} (pid {process.pid}) mid-task with SIGKILL")
        try:
            os.kill(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def answer(self, session: Session) -> None:
        """The human grants the approval (in the demo, the demo is the human: its answer says so)."""
        self.answered = True
        session.publish("approval.granted", {"request": self.request, "note": self.plan["note"], "demo": True},
                        sender=HUMAN)  # with the evidence of this process, as every event sent as the human

    def close(self, reason: str) -> None:
        """Stop the coordinator and close the session (Power Mode off in the demo's power directory)."""
        if self.coordinator is not None:
            self.coordinator.stop()
            self.coordinator = None
        if self.session is not None:
            try:
                stop_session(self.power_dir, sender=HUMAN, reason=reason)
            except Exception:  # already closed, or the journal is gone: the demo is ending anyway
                pass
            self.session.journal.close()

    def end_agents(self) -> None:
        """Kill every agent still running, with anything it started (its process group), and reap them."""
        for process in self.agents.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # a hook it left running, even when it ended by itself
            except (ProcessLookupError, PermissionError):
                pass
            process.wait()

    # -- telling the story ------------------------------------------------------------------------------------------

    def who(self, key: Any) -> str:
        if key in (HUMAN, "coordinator"):
            return f"the {key}"
        return self.personas.get(key) or str(key)

    def tell(self, event: dict[str, Any]) -> None:
        """One line of the story for the events a person follows (story_line)."""
        line = story_line(event, self.who)
        if line:
            self.note(line)

    def note(self, line: str) -> None:
        line = f"{time.monotonic() - self.started:5.1f}s  {line}"
        self.story_lines.append(line)
        self.say(line)

    def read_agent_logs(self) -> None:
        """What the agents heard in their hooks' replies since the last look (their logs, one JSON object a line)."""
        import orjson

        for persona in self.agents:
            path = os.path.join(self.logs, f"{persona}.log")
            try:
                with open(path, "rb") as log:
                    log.seek(self._log_offsets.get(persona, 0))
                    data = log.read()
            except OSError:
                continue
            whole = data[: data.rfind(b"\n") + 1]
            self._log_offsets[persona] = self._log_offsets.get(persona, 0) + len(whole)
            for raw in whole.splitlines():
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if entry.get("what") in ("heard", "gave up", "hook failed"):
                    self.note(f"{persona} {entry['what']}: {str(entry.get('text'))[:110]}")


def story_line(event: dict[str, Any], who: Callable[[Any], str]) -> str | None:
    """A person's line for one event, or None for the ones the story leaves out (tool calls, heartbeats)."""
    kind, data, sender = event.get("type"), event.get("data") or {}, event.get("from")
    lines: dict[str, Callable[[], str]] = {
        "session.opened": lambda: f"the human opened the session: {data.get('objective')!r}",
        "task.created": lambda: f"{who(sender)} added task {data.get('task')}: {data.get('title')}",
        "coordinator.started": lambda: f"the coordinator started (pid {data.get('pid')})",
        "agent.joined": lambda: f"{who(sender)} joined as {data.get('name')} (Claude Code pid {data.get('pid')})",
        "task.claimed": lambda: f"{who(sender)} claimed {data.get('task')}",
        "insight.shared": lambda: f"{who(sender)} shared an insight: {data.get('text')!r}",
        "approval.requested": lambda: f"{who(sender)} asks the human: {data.get('question')!r}",
        "approval.granted": lambda: f"the human granted request {data.get('request')}: {data.get('note')!r}",
        "agent.lost": lambda: f"the coordinator declared {who(data.get('agent'))} lost: {data.get('reason')}",
        "task.orphaned": lambda: f"{data.get('task')} is orphaned, offered to the others",
        "task.completed": lambda: f"{who(sender)} finished {data.get('task')}: {data.get('result')!r}",
        "agent.left": lambda: f"{who(sender)} left",
        "session.closed": lambda: f"the session is closed ({data.get('reason')})",
    }
    make = lines.get(str(kind))
    return make() if make else None


def new_directory(parent: str | None) -> str:
    """A new private directory for one demo run (in `parent`, else the system's temporary directory)."""
    if parent:
        os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix="popkit-power-demo-", dir=parent)
