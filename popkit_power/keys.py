"""Every identity and name, built in one place: agent keys and their readable names, task and request ids, event ids,
the host name, the original Power Mode's `pop:*` Redis key names, and the names of Power Mode's files and folders.

An agent key is `<Claude Code session id>:<agent id>`, where the agent id is Claude Code's `agent_id` for a subagent
and `main` for a session's main agent. Subagents share their parent's session id, so the key tells them apart.

This module is on the hook's hot path: it imports only `os`.
"""

# No `from __future__ import annotations` on the hook's off path (docs/hot-path.md): quoted annotations instead.

import os

MAIN = "main"
HUMAN = "human"
COORDINATOR = "coordinator"
#: Senders no agent may take: the reader of a news line trusts these two names.
ARBITER = "arbiter"  # the origin and sender of the facts the Redis server decides (replication/scripts.py)
RESERVED_SENDERS = frozenset({HUMAN, COORDINATOR, ARBITER})


def agent_key(claude_session: str, agent_id: str | None = None) -> str:
    """The key of a session's main agent, or of its subagent `agent_id`."""
    return f"{claude_session}:{agent_id or MAIN}"


def split_agent_key(key: str) -> tuple[str, str]:
    """(Claude Code session id, agent id) of an agent key; ("", key) for a name that is not one."""
    claude_session, _, agent_id = key.rpartition(":")
    return claude_session, agent_id


def agent_name(key: str, agent_type: str | None = None) -> str:
    """The readable name the hook gives an agent: `main-<session start>` for a main agent, `<agent type>-<agent id
    start>` for a subagent; the key itself for a name that is not an agent key."""
    claude_session, agent_id = split_agent_key(key)
    if not claude_session:
        return key
    if agent_id == MAIN:
        return f"main-{claude_session[:6]}"
    return f"{agent_type or 'agent'}-{agent_id[:6]}"


def subagent_task(agent_id: str) -> str:
    """The id of the task a subagent works on (it exists from SubagentStart, or the Agent tool's launch, on)."""
    return f"agent-{agent_id}"


def new_id() -> str:
    """A random 128-bit id in hex: an event's id, unique across machines without coordination."""
    return os.urandom(16).hex()


def new_request_id() -> str:
    """The id of an approval request, short enough to type: `popkit-power approve <id>`."""
    return new_id()[:12]


def new_task_id() -> str:
    """The id of a task added from the command line, short enough to type: `t-1a2b3c` (24 random bits; the command
    that adds one draws again while the id is taken in its session)."""
    return f"t-{new_id()[:6]}"


def new_result_task_id() -> str:
    """The task id of a result reported without a task."""
    return f"result-{new_id()[:8]}"


_HOST: list[str] = []


def host_name() -> str:
    """This machine's name as the OS gives it (looked up once per process)."""
    if not _HOST:
        _HOST.append(os.uname().nodename if hasattr(os, "uname") else "unknown")
    return _HOST[0]


# -- the original Power Mode's Redis layout, kept readable for outside tools ----------------------------------------

DEFAULT_PREFIX = "pop"


class RedisLayout:
    """Every Redis name popkit-power uses, under one prefix (`pop` by default, `redis_prefix` in config.json), so that
    several projects can share one database. docs/replication.md describes each.

    The original Power Mode's names: the six channel streams `pop:<channel>`, and the keys `pop:objective`,
    `pop:state:{agent_id}`, `pop:completed:{session_id}`, `pop:tasks:orphaned`, `pop:coordinator:status`,
    `pop:patterns:{pattern_id}`. Replication's own names (per session): one stream per origin, whose entry ids are
    the origin's journal seqs, the set of origins and the stream announcing them, and the arbiter's stream, counter
    and decided contests.
    """

    __slots__ = ("prefix",)

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix

    def channel_stream(self, channel: str) -> str:
        """The stream of one of the six channels: `pop:broadcast`, `pop:heartbeat`, ..."""
        return f"{self.prefix}:{channel}"

    @property
    def objective(self) -> str:
        return f"{self.prefix}:objective"

    @property
    def orphaned_tasks(self) -> str:
        return f"{self.prefix}:tasks:orphaned"

    @property
    def coordinator_status(self) -> str:
        return f"{self.prefix}:coordinator:status"

    @property
    def active_session(self) -> str:
        """The session the team works in: `join` on another machine takes it from here."""
        return f"{self.prefix}:session"

    def agent_state(self, agent: str) -> str:
        """The hash holding one agent's latest state."""
        return f"{self.prefix}:state:{agent}"

    def completed(self, session_id: str) -> str:
        """A closed session's summary (kept 24 hours)."""
        return f"{self.prefix}:completed:{session_id}"

    def pattern(self, pattern_id: str) -> str:
        """One shared insight (kept 24 hours)."""
        return f"{self.prefix}:patterns:{pattern_id}"

    def origin_stream(self, session_id: str, origin: str) -> str:
        """One machine's events of a session, each under the id `<its journal seq>-0`."""
        return f"{self.prefix}:journal:{session_id}:{origin}"

    def origins(self, session_id: str) -> str:
        """The set of origins that have written to a session."""
        return f"{self.prefix}:journal:{session_id}:origins"

    def joined(self, session_id: str) -> str:
        """A stream announcing each origin as it joins a session (read by the same XREAD as the origins' streams)."""
        return f"{self.prefix}:joined:{session_id}"

    def arbiter_counter(self, session_id: str) -> str:
        return f"{self.prefix}:arbiter:{session_id}:seq"

    def contests(self, session_id: str) -> str:
        """contest -> the event that won it (claims of one task in one round)."""
        return f"{self.prefix}:arbiter:{session_id}:won"


# -- the names of Power Mode's files and folders -----------------------------------------------------------------
# Every file and folder name of a power directory and of a session, written once; the modules that read and write
# them (home.py, config.py, session.py, journal/, hook/, replication/) take them from here. home.py describes the
# layout.

#: The power directory in a git repository: `<git common dir>/popkit-power`; and the folder of this user's state
#: outside every project (`$XDG_STATE_HOME/popkit-power`).
APP_DIR = "popkit-power"
#: The power directory outside git: here, or in the nearest folder above that has one.
LOCAL_DIR = ".popkit-power"
CONFIG_FILE = "config.json"
#: The last config.json that passed (config.usable_config).
LAST_VALID_FILE = "config.last-valid.json"
#: The problem the hook last logged (hook/miswired.py), dropped when a changed config.json validates.
CONFIG_PROBLEM_FILE = "config.problem"
#: This power directory's origin id, written once.
ORIGIN_FILE = "origin"
#: The active-session pointer: the id of the active session, absent when Power Mode is off.
ACTIVE_FILE = "active"
#: The hook's one-line error log.
HOOK_LOG = "hook.log"
#: The running dashboards' addresses and tokens (0600; dashboard/access.py), gone when the last stops; and the lock
#: over its changes.
DASHBOARD_FILE, DASHBOARD_LOCK = "dashboard.json", "dashboard.lock"
SESSIONS_DIR = "sessions"
#: The trust markers in this user's state folder (home.trust_dir).
TRUSTED_DIR = "trusted"
#: Claude Code's own folder, in the user's home (its settings and transcripts) and in a project (its settings).
CLAUDE_DIR = ".claude"

# In a session's folder, `sessions/<session id>/`:
JOURNAL_DIR = "journal"
SNAPSHOTS_DIR = "snapshots"
AGENTS_DIR = "agents"
COORDINATOR_LOG = "coordinator.log"
#: The replicator's report on its work (replication/status_file.py).
REPLICATION_STATUS_FILE = "replication.json"
#: The names of the two leases (journal/lease.py): `<name>.lock` is locked, `<name>.json` names the holder.
COORDINATOR_LEASE = COORDINATOR
REPLICATOR_LEASE = "replicator"
#: A journal segment: `<16 digits>.jsonl` (journal/records.segment_name).
SEGMENT_SUFFIX = ".jsonl"
SNAPSHOT_SUFFIX = ".snapshot.json"
#: What a file is written as before it is renamed into place (_fs.write_file_atomically).
TEMPORARY_SUFFIX = ".tmp"
#: An agent's files in `agents/`: its state, the lock over it, and the claim of its idle waiter (hook/wake.py).
AGENT_STATE_SUFFIX, AGENT_LOCK_SUFFIX, WAITER_CLAIM_SUFFIX = ".json", ".lock", ".waiter"


def sessions_dir(power_dir: str) -> str:
    """`<power dir>/sessions`."""
    return os.path.join(power_dir, SESSIONS_DIR)


def lease_lock_file(session_dir: str, name: str) -> str:
    """The file a lease's holder locks: `<session dir>/coordinator.lock` (`replicator.lock`)."""
    return os.path.join(session_dir, f"{name}.lock")


def lease_holder_file(session_dir: str, name: str) -> str:
    """The file naming a lease's holder: `<session dir>/coordinator.json` (`replicator.json`)."""
    return os.path.join(session_dir, f"{name}.json")


def journal_lock_file(journal_dir: str) -> str:
    """The journal's writer lock, beside its folder: `<session dir>/journal.lock`."""
    return journal_dir.rstrip("/\\") + ".lock"


def torn_file(journal_dir: str, segment_file: str, offset: int) -> str:
    """Where the torn tail cut from `segment_file` at byte `offset` is kept: `<segment>.torn-<offset>` beside it."""
    return os.path.join(journal_dir, f"{segment_file}.torn-{offset}")


def agent_file(agents_dir: str, safe_key: str, suffix: str = AGENT_STATE_SUFFIX) -> str:
    """One of an agent's files in `agents/` (`suffix`: AGENT_STATE_SUFFIX, AGENT_LOCK_SUFFIX or
    WAITER_CLAIM_SUFFIX), for the agent key `safe_key` already made safe as a name (home.safe_name)."""
    return os.path.join(agents_dir, safe_key + suffix)


def subagent_transcript(session_transcript_stem: str, agent_id: str) -> str:
    """Claude Code's transcript of a subagent: `<session transcript without .jsonl>/subagents/agent-<id>.jsonl`."""
    return os.path.join(session_transcript_stem, "subagents", f"agent-{agent_id}.jsonl")
