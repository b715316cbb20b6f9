"""What the coordinator decides, as a pure function: the state, what it saw of the agents' processes, and the time
in; the events to append out. No I/O and no clock, so every decision can be tested with any state and any time, and
replaying the journal shows why each was made.

- An agent whose Claude Code process was checked on this machine is lost the moment the process is gone (or its pid
  belongs to a process started at another time). Nothing else decides it: a long tool call keeps its process
  running, so it is never taken for death.
- An agent whose process cannot be checked here (another machine, no `CLAUDE_PID`, no /proc) is lost when it has
  been silent, while active, for more than `agent_timeout_seconds` plus `heartbeat_miss_threshold - 1` more periods
  of `heartbeat_seconds`. An idle agent (its turn ended, waiting for input) is silent by design and is not timed out.
- Silence is how long ago this coordinator heard a word, measured by its own monotonic clock (`Silences`, filled in
  by hearing.py), never by the timestamps in the events: a clock stepped on either machine moves no verdict. The
  evidence of each verdict carries what was measured, so replaying the journal shows why it was made.
- A lost agent's open tasks are orphaned (and so are those an agent still held when it ended: a session that
  ended, a subagent that finished), with what the next agent needs to go on (the title, the agent's last
  progress and files, when it was last heard of), in the same batch as the `agent.lost`; a task that has already
  been handed over `max_reassign_attempts` times is parked for the human instead.
- With `auto_reassign_orphaned`, an orphaned task is given to the live agent holding the fewest open tasks.
- The coordinator says it is alive (`coordinator.status`) every `heartbeat_seconds`.

A decision already made is in the state (the agent is no longer live, the task no longer owned), so deciding again on
a state that holds the coordinator's own events decides nothing twice: a restarted coordinator goes on where the
journal says it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..keys import COORDINATOR
from ..projector import (
    AGENT_ACTIVE,
    GONE_AGENT_STATES,
    HANDOVER_FILES,
    OPEN_TASK_STATES,
    State,
    live_agents,
    open_tasks_of,
    watching,
)
from ..timestamps import seconds_of

if TYPE_CHECKING:
    from ..shapes.state import Agent, Coordinator, Task

Decision = tuple[str, dict[str, Any]]  # (event type, data)


class Rules:
    """The settings decisions depend on (from config.py, where their defaults are)."""

    __slots__ = ("agent_timeout_seconds", "auto_reassign_orphaned", "heartbeat_miss_threshold", "heartbeat_seconds",
                 "machine_slack_seconds", "max_reassign_attempts")

    def __init__(self, *, agent_timeout_seconds: float, heartbeat_seconds: float, heartbeat_miss_threshold: int,
                 max_reassign_attempts: int, auto_reassign_orphaned: bool = False,
                 machine_slack_seconds: float = 0.0) -> None:
        #: how late another machine's word may arrive through replication (Upstash's idle polls on both ends)
        self.machine_slack_seconds = machine_slack_seconds
        self.agent_timeout_seconds = agent_timeout_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.heartbeat_miss_threshold = heartbeat_miss_threshold
        self.max_reassign_attempts = max_reassign_attempts
        self.auto_reassign_orphaned = auto_reassign_orphaned

    @classmethod
    def from_config(cls, config: Any, *, machine_slack_seconds: float = 0.0) -> Rules:
        return cls(**{name: getattr(config, name) for name in cls.__slots__ if name != "machine_slack_seconds"},
                   machine_slack_seconds=machine_slack_seconds)

    @property
    def machine_silence_limit(self) -> float:
        """How long another machine's coordinator may go unheard before its agents are lost: the silence limit plus
        how late replication may bring its word."""
        return self.silence_limit + self.machine_slack_seconds

    @property
    def silence_limit(self) -> float:
        """How long an active agent whose process cannot be checked may be silent before it is lost."""
        return self.agent_timeout_seconds + (self.heartbeat_miss_threshold - 1) * self.heartbeat_seconds


class Silences:
    """How long, in seconds, each live agent (`agents`) and each machine's coordinator (`machines`, by origin) has
    gone unheard, and `own`: since this machine's coordinator last said it is alive (None: it never did)."""

    __slots__ = ("agents", "machines", "measured", "own")

    def __init__(self, agents: Mapping[str, float], machines: Mapping[str, float], own: float | None,
                 measured: str) -> None:
        self.agents = agents
        self.machines = machines
        self.own = own
        self.measured = measured  # how: "monotonic" (a running coordinator) or "timestamps"

    @classmethod
    def from_stamps(cls, state: State, now: float, origin: str | None) -> Silences:
        """The silences by the events' own timestamps against `now` (seconds since the epoch): for looking at a
        journal afterwards and for tests. A running coordinator measures them with its monotonic clock instead
        (hearing.py): timestamps are only as right as the clocks that wrote them."""
        def since(ts: Any) -> float | None:
            when = seconds_of(ts)
            return None if when is None else now - when

        agents = {key: since(state["agents"][key].get("last_seen")) for key in live_agents(state)}
        machines = {where: since(machine.get("heard") or machine.get("last_seen"))
                    for where, machine in state["coordinators"].items()}
        coordinator = state["coordinator"] if origin is None else state["coordinators"].get(origin, {})
        own = since(coordinator.get("last_seen")) if coordinator.get("by") == COORDINATOR else None
        return cls({key: value for key, value in agents.items() if value is not None},
                   {key: value for key, value in machines.items() if value is not None}, own, "timestamps")


def decide(state: State, now: float, running: Mapping[str, bool | None], rules: Rules,
           status: Mapping[str, Any] | None = None, origin: str | None = None,
           silences: Silences | None = None) -> list[list[Decision]]:
    """The batches of events to append, each batch one atomic append.

    `running` says, for agents whose process was checked on this machine, whether it still runs (True/False; True
    also when this process failed to look, as with no file descriptor left: no evidence, no verdict); agents missing
    from it, or with None, cannot be checked here and are judged by silence. `status`, when given, is what a due
    `coordinator.status` carries besides the counts (pid, host). `origin` is this machine's (replication): an agent
    of another machine whose coordinator runs is that coordinator's to judge, unless that machine falls silent; then,
    like the auto-assignment, only the leader decides (the running coordinator with the lowest origin), so that
    machines do not decide the same thing twice. `silences` are what a running coordinator measured; without them
    they are worked out from the events' timestamps against `now`.
    """
    heard = Silences.from_stamps(state, now, origin) if silences is None else silences
    batches: list[list[Decision]] = []
    leader = _leader(state, origin, heard, rules)
    for key in live_agents(state):
        agent = state["agents"][key]
        machine = _machine_of(state, agent, origin)
        if machine is None:
            lost = _lost(key, agent, heard, running.get(key), rules)
        else:
            lost = _machine_silent(key, agent, machine, heard, rules) if leader else None
        if lost is not None:
            batches.append([lost, *_hand_over(state, key, rules)])
    holders = {task["owner"] for task in state["tasks"].values() if task["status"] in OPEN_TASK_STATES}
    # An agent that ended holding tasks left them behind, and a task can still come to one that is gone (an
    # assignment made on another machine before it heard of the leaving or the loss; the server's order giving back
    # a claim that lost here): hand them on. A loss hands on what the agent held then, in the same batch (above).
    for key in state["departed"]:
        agent = state["agents"][key]
        if agent["status"] in GONE_AGENT_STATES and key in holders and (
                _machine_of(state, agent, origin) is None or leader):
            batches.append(_hand_over(state, key, rules))
    if leader:  # a task that came to an agent that departed long ago (gone from the state, its machine unknown here)
        gone = state["departed_ids"]
        batches += [_hand_over(state, key, rules) for key in sorted(
            key for key in holders if isinstance(key, str) and key in gone and key not in state["agents"])]
    if rules.auto_reassign_orphaned and not batches and leader:  # once the orphaning is folded: give each out
        assigned = _assignments(state)
        if assigned:
            batches.append(assigned)
    if status is not None and (heard.own is None or heard.own >= rules.heartbeat_seconds):
        open_tasks = sum(1 for task in state["tasks"].values() if task["status"] in OPEN_TASK_STATES)
        batches.append([("coordinator.status", {"agents": len(live_agents(state)), "open_tasks": open_tasks,
                                                **status})])
    return batches


def _machine_of(state: State, agent: Agent, origin: str | None) -> Coordinator | None:
    """The coordinator entry of the other machine an agent works on, when that machine has a running coordinator;
    None for this machine's agents and for agents no running coordinator watches (judged here by silence)."""
    where = agent.get("origin")
    if origin is None or where in (None, origin):
        return None
    machine: Coordinator | None = state["coordinators"].get(where) if where is not None else None
    return machine if machine is not None and machine.get("status") == "running" else None


def _leader(state: State, origin: str | None, heard: Silences, rules: Rules) -> bool:
    """Whether this machine decides for the team: alone, or the lowest origin among the coordinators not silent."""
    if origin is None:
        return True
    alive = [where for where, machine in state["coordinators"].items() if machine.get("status") == "running"
             and heard.machines.get(where, math.inf) <= rules.machine_silence_limit]
    return not alive or min([*alive, origin]) == origin


def _machine_silent(key: str, agent: Agent, machine: Coordinator, heard: Silences,
                    rules: Rules) -> Decision | None:
    silent = heard.machines.get(agent.get("origin") or "")
    if silent is None or silent <= rules.machine_silence_limit:
        return None
    evidence = {"origin": agent.get("origin"), "coordinator_last_seen": machine.get("last_seen"),
                "heard": machine.get("heard"), "silent_seconds": round(silent, 1),
                "limit_seconds": rules.machine_silence_limit, "measured": heard.measured}
    return ("agent.lost", {"agent": key, "reason": f"its machine {agent.get('origin')} has been silent for "
                                                   f"{int(silent)} s (its coordinator's last status; the limit is "
                                                   f"{int(rules.machine_silence_limit)} s)", "evidence": evidence})


def _lost(key: str, agent: Agent, heard: Silences, running: bool | None, rules: Rules) -> Decision | None:
    if running is False:
        evidence: dict[str, Any]
        evidence = {"pid": agent.get("pid"), "pid_start": agent.get("pid_start"), "host": agent.get("host"),
                    "checked": "process table"}
        return ("agent.lost", {"agent": key, "reason": f"its Claude Code process {agent.get('pid')} is gone",
                               "evidence": evidence})
    if running is True or agent.get("status") != AGENT_ACTIVE:
        return None
    silent = heard.agents.get(key)
    if silent is None or silent <= rules.silence_limit:
        return None
    evidence = {"last_seen": agent.get("last_seen"), "silent_seconds": round(silent, 1),
                "limit_seconds": rules.silence_limit, "measured": heard.measured}
    return ("agent.lost", {"agent": key, "reason": f"no event for {int(silent)} s (the limit is "
                                                   f"{int(rules.silence_limit)} s), and its process cannot be "
                                                   f"checked from here", "evidence": evidence})


def _hand_over(state: State, key: str, rules: Rules) -> list[Decision]:
    agent: Agent | dict[str, Any] = state["agents"].get(key) or {}  # {}: departed long ago, only its key is kept
    decisions: list[Decision] = []
    for task_id in open_tasks_of(state, key):
        task = state["tasks"][task_id]
        handed_over = max(0, task.get("attempts", 1) - 1)  # attempts counts owners; the first is no hand-over
        if handed_over >= rules.max_reassign_attempts:
            decisions.append(("task.parked", {
                "task": task_id, "agent": key, "attempts": task.get("attempts", 0),
                "reason": f"lost its agent after {handed_over} hand-over(s) (max_reassign_attempts "
                          f"{rules.max_reassign_attempts}): a human decides"}))
            continue
        context = {"title": task.get("title"), "progress": agent.get("progress"),
                   "files": list(agent.get("files_touched") or [])[-HANDOVER_FILES:],
                   "last_seen": agent.get("last_seen"),
                   "last_message": last["text"] if (last := agent.get("last_message")) else None}
        decisions.append(("task.orphaned", {"task": task_id, "agent": key, "context": context}))
    return decisions


def _assignments(state: State) -> list[Decision]:
    """With `auto_reassign_orphaned`: each orphaned task to the live agent holding the fewest open tasks (never the
    one it was orphaned from; ties go to the agent seen most recently, then by key), counting each assignment made
    here as it goes. An agent that only looks on (`projector.watching`: a person's own session) is not given work."""
    load = {key: len(open_tasks_of(state, key)) for key in live_agents(state)
            if not watching(state["agents"][key])}
    decisions: list[Decision] = []
    for task_id in state["orphans"]:
        task: Task | dict[str, Any] = state["tasks"].get(task_id) or {}
        candidates = [key for key in load if key != task.get("previous_owner")]
        if not candidates:
            continue
        chosen = min(candidates, key=lambda key: (load[key], -(seconds_of(state["agents"][key].get("last_seen")) or 0),
                                                  key))
        load[chosen] += 1
        decisions.append(("task.assigned", {"task": task_id, "agent": chosen}))
    return decisions
