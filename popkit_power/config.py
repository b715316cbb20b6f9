"""Settings: every default in one table, validated once, read from `<power dir>/config.json`.

Library classes take plain arguments; only entry points (CLI, hook) call `load_config`. This module is on the hook's
hot path, so it parses with `codec` rather than `json`.
"""

from __future__ import annotations

import os

from ._fs import private_dir, read_file, write_file_atomically
from .display import quoted
from .errors import ConfigError, UnsafePathError
from .journal import codec
from .journal.records import DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_MAX_BYTES, DURABILITY_FLUSH, DURABILITY_FSYNC
from .keys import CONFIG_FILE, CONFIG_PROBLEM_FILE, DEFAULT_PREFIX, LAST_VALID_FILE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: name -> (default, kind, minimum); kinds: "int", "float", "bool", "globs" (a list of patterns), "name" (a short
#: word), or a tuple of allowed strings.
DEFAULTS: dict[str, tuple[Any, Any, float | None]] = {
    "checkin_every_n_tools": (5, "int", 1),
    "durability": (DURABILITY_FLUSH, (DURABILITY_FLUSH, DURABILITY_FSYNC), None),
    "segment_max_bytes": (DEFAULT_SEGMENT_MAX_BYTES, "int", 4096),
    "max_record_bytes": (DEFAULT_MAX_RECORD_BYTES, "int", 1024),
    "context_max_chars": (2000, "int", 500),
    "conflict_window_seconds": (600, "float", 0),
    "insight_similarity_threshold": (0.8, "float", 0.05),  # at 0 every insight after the first is a duplicate
    "max_insights_kept": (500, "int", 1),
    "max_files_per_agent": (50, "int", 1),
    "snapshot_every_events": (10_000, "int", 100),
    "max_insights_per_pull": (3, "int", 1),  # insights one tool call brings an agent; the rest come at the next
    # the coordinator (coordinator/): how often it says it is alive, and when a silent agent is lost
    "heartbeat_seconds": (15, "float", 1),
    "agent_timeout_seconds": (60, "float", 1),
    "heartbeat_miss_threshold": (3, "int", 1),
    "max_reassign_attempts": (2, "int", 0),
    "auto_reassign_orphaned": (False, "bool", None),  # the coordinator gives an orphaned task to the least busy agent
    # an idle agent's waiter (hook/waiter.py) ends after this long: an agent idle longer hears news at its next turn
    "wake_max_seconds": (8 * 3600, "float", 1),
    # guardrails (hook/guard.py): a matching Edit/Write or Bash call waits for the human's approval
    "guardrail_paths": ((), "globs", None),  # e.g. ["*.env", "migrations/*"]
    "guardrail_commands": ((), "globs", None),  # e.g. ["git push*", "rm -rf *"]
    # replication (replication/): the Redis names' prefix, and how the replicator batches, waits and polls
    "redis_prefix": (DEFAULT_PREFIX, "name", None),  # several projects can share one database under different prefixes
    "replication_batch_events": (500, "int", 1),
    "replication_timeout_seconds": (10, "float", 0.5),
    # the original layout's channel streams (pop:broadcast, ...) keep about this many entries each (0: all); the
    # replication itself reads the per-origin streams, which are never trimmed
    "redis_channel_maxlen": (10_000, "int", 0),
    # Upstash bills every command: an idle poll is 2 (the statuses pushed, XREAD), so 80 s is about 95 an idle hour
    "upstash_idle_poll_seconds": (80, "float", 1),
    # How Claude Code reaches the hook (hook_transport.py): a process per call, or HTTP answered by the coordinator
    # on 127.0.0.1:hook_port (0: none chosen yet; `popkit-power install --transport http` picks a free one).
    "hook_transport": ("command", ("command", "http"), None),
    "hook_port": (0, "int", 0),
}
MAX_GLOBS = 100
MAX_GLOB_CHARS = 500

#: Upper bounds, for the settings that have one: a reply over 10,000 characters reaches the model only as a preview
#: (Claude Code's cap on additionalContext); a similarity above 1 can never be met; a channel cap past 10^9 would
#: not reach Redis intact through Lua's numbers; a record over 2 MiB, with the copies its effects make, could not be
#: pushed to Upstash (10 MB a request; replication/outbox.py).
MAXIMUMS: dict[str, float] = {"context_max_chars": 9000, "insight_similarity_threshold": 1,
                               "redis_channel_maxlen": 1_000_000_000, "max_record_bytes": 2 * 1024 * 1024,
                               "hook_port": 65535}

_INFINITY = float("inf")


class Config:
    """Validated settings; attribute access by the names in DEFAULTS."""

    __slots__ = tuple(DEFAULTS)

    checkin_every_n_tools: int
    durability: str
    segment_max_bytes: int
    max_record_bytes: int
    context_max_chars: int
    conflict_window_seconds: float
    insight_similarity_threshold: float
    max_insights_kept: int
    max_files_per_agent: int
    snapshot_every_events: int
    max_insights_per_pull: int
    heartbeat_seconds: float
    agent_timeout_seconds: float
    heartbeat_miss_threshold: int
    max_reassign_attempts: int
    auto_reassign_orphaned: bool
    wake_max_seconds: float
    guardrail_paths: tuple[str, ...]
    guardrail_commands: tuple[str, ...]
    redis_prefix: str
    replication_batch_events: int
    replication_timeout_seconds: float
    redis_channel_maxlen: int
    upstash_idle_poll_seconds: float
    hook_transport: str
    hook_port: int

    def __init__(self, **values: Any) -> None:
        for name, (default, _kind, _minimum) in DEFAULTS.items():
            setattr(self, name, default)
        for name, value in values.items():
            setattr(self, name, check_value(name, value))

    def as_dict(self) -> dict[str, Any]:
        """All settings by name, defaults included."""
        return {name: getattr(self, name) for name in DEFAULTS}


def check_value(name: str, value: Any, source: str = "config") -> Any:
    """Return `value` converted to the setting's type, or raise ConfigError naming the setting and the problem."""
    if name not in DEFAULTS:
        raise ConfigError(f"{source}: unknown setting {name!r} (known: {', '.join(sorted(DEFAULTS))})")
    _default, kind, minimum = DEFAULTS[name]
    if isinstance(kind, tuple):
        if value not in kind:
            raise ConfigError(f"{source}: {name!r} must be one of {', '.join(kind)}; got {value!r}")
        return value
    if kind == "globs":
        return _check_globs(name, value, source)
    if kind == "name":
        if not isinstance(value, str) or not 0 < len(value) <= 40 or not all(
                char.isascii() and (char.isalnum() or char in "_.-") for char in value):
            raise ConfigError(f"{source}: {name!r} must be 1 to 40 letters, digits, '_', '.' or '-'; got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {name!r} must be true or false; got {value!r}")
        return value
    number: int | float
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{source}: {name!r} must be a number; got {value!r}")
    try:
        number = int(value) if kind == "int" else float(value)
        if number != number or number in (_INFINITY, -_INFINITY):  # NaN, Infinity and 1e400 parse as JSON
            raise ValueError(number)
    except (ValueError, OverflowError):  # int(inf) raises OverflowError
        raise ConfigError(f"{source}: {name!r} must be {'a whole number' if kind == 'int' else 'a finite number'}; "
                          f"got {value!r}") from None
    if kind == "int" and isinstance(value, float) and value != number:
        raise ConfigError(f"{source}: {name!r} must be a whole number; got {value!r}")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{source}: {name!r} must be at least {minimum:g}; got {value!r}")
    if name in MAXIMUMS and number > MAXIMUMS[name]:
        raise ConfigError(f"{source}: {name!r} must be at most {MAXIMUMS[name]:g}; got {value!r}")
    return number


def _check_globs(name: str, value: Any, source: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{source}: {name!r} must be a list of patterns such as [\"*.env\"]; got {value!r}")
    if len(value) > MAX_GLOBS:
        raise ConfigError(f"{source}: {name!r} may hold at most {MAX_GLOBS} patterns; got {len(value)}")
    for item in value:
        if not item.strip() or len(item) > MAX_GLOB_CHARS:
            raise ConfigError(f"{source}: {name!r} has a pattern that is empty or over {MAX_GLOB_CHARS} characters: "
                              f"{quoted(item, 60)}")
    return tuple(item.strip() for item in value)


def load_config(power_dir: str) -> Config:
    """Read `<power_dir>/config.json` (absent means all defaults); raise ConfigError on any bad value. A file that
    passes is kept as the last valid one (`LAST_VALID_FILE`), for `usable_config` when a later edit breaks it."""
    path = os.path.join(power_dir, CONFIG_FILE)
    raw = _read(path)
    if raw is None:
        return Config()
    config = Config(**_parse(path, raw))
    _keep_last_valid(power_dir, raw)
    return config


def update_config(power_dir: str, values: dict[str, Any]) -> Config:
    """Set `values` in `<power_dir>/config.json`, keeping every other setting as written; the new settings. A file
    that does not pass as it is raises ConfigError and is left alone: the user fixes it first."""
    import json

    path = os.path.join(power_dir, CONFIG_FILE)
    raw = _read(path)
    written: dict[str, Any] = {}
    if raw is not None and raw.strip():
        _parse(path, raw)  # the whole file must pass before anything is added to it
        written = json.loads(raw.decode("utf-8"))
    written.update({name: check_value(name, value, path) for name, value in values.items()})
    private_dir(power_dir)
    write_file_atomically(path, (json.dumps(written, indent=2) + "\n").encode("utf-8"))
    return load_config(power_dir)


class ConfigProblem:
    """Why config.json cannot be used, what is used instead, and the guardrail settings nothing could give."""

    __slots__ = ("error", "fallback", "unreadable")

    def __init__(self, error: ConfigError, fallback: str, unreadable: tuple[str, ...]) -> None:
        self.error = error
        self.fallback = fallback  # what the other settings come from, in words
        self.unreadable = unreadable  # "guardrail_paths" and/or "guardrail_commands"

    def __str__(self) -> str:
        return str(self.error)


def usable_config(power_dir: str) -> tuple[Config, ConfigProblem | None]:
    """The settings to run with, and the problem if config.json cannot be used as it is.

    A broken config.json never turns a guardrail off. Each setting is taken from the file when its value there is
    valid, and is its default when the file leaves it out. When the file cannot be read as JSON, or holds a bad value
    for the setting (for a guardrail left out: a misspelt guardrail name), it comes from the last config.json that
    was valid (its default if that one left it out); with no valid version kept, a setting takes its default and a
    guardrail is `unreadable`: the guard then denies every call of its kind, naming the error."""
    try:
        return load_config(power_dir), None
    except ConfigError as error:
        problem = error
    path = os.path.join(power_dir, CONFIG_FILE)
    values: dict[str, Any] | None = None
    try:
        raw = _read(path)
        loaded = codec.loads(raw.decode("utf-8")) if raw is not None else {}
        values = loaded if isinstance(loaded, dict) else None
    except (ConfigError, ValueError):  # UnicodeDecodeError is a ValueError
        pass
    last = _last_valid(power_dir)
    settings: dict[str, Any] = {}
    unreadable: list[str] = []
    for name in DEFAULTS:
        value = _valid_or_none(name, values.get(name)) if values is not None and name in values else None
        if value is not None:
            settings[name] = value
            continue
        broken = values is None or name in values or (name.startswith("guardrail") and any(
            key.startswith("guardrail") and key not in DEFAULTS for key in values))
        if not broken:
            continue  # absent from a file that is otherwise readable: its default
        if last is not None:  # what the last valid file said; one it left out had its default
            if name in last:
                settings[name] = last[name]
        elif name.startswith("guardrail"):
            unreadable.append(name)
    fallback = "its last valid version" if last is not None else "the defaults"
    return Config(**settings), ConfigProblem(problem, fallback, tuple(unreadable))


def _read(path: str) -> bytes | None:
    try:
        return read_file(path, 1 << 20)
    except FileNotFoundError:
        return None
    except (OSError, UnsafePathError) as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from None


def _parse(path: str, raw: bytes) -> dict[str, Any]:
    try:
        values = codec.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: cannot be read: {error}") from None
    except ValueError as error:
        raise ConfigError(f"{path}: is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must hold a JSON object of settings")
    return {name: check_value(name, value, path) for name, value in values.items()}


def _valid_or_none(name: str, value: Any) -> Any:
    try:
        return check_value(name, value)
    except ConfigError:
        return None


def _keep_last_valid(power_dir: str, raw: bytes) -> None:
    """Copy a config.json that passed to LAST_VALID_FILE, unless the copy holds it already. Best effort: a power
    directory that cannot be written keeps its older copy (the guard then falls back to that)."""
    path = os.path.join(power_dir, LAST_VALID_FILE)
    try:
        if read_file(path, 1 << 20) == raw:
            return
    except (OSError, UnsafePathError):
        pass
    try:
        write_file_atomically(path, raw, durable=False)
        os.unlink(os.path.join(power_dir, CONFIG_PROBLEM_FILE))  # a later problem is logged again
    except (OSError, UnsafePathError):
        pass


def _last_valid(power_dir: str) -> dict[str, Any] | None:
    """The settings of the last valid config.json, checked again (None if there is none, or it no longer passes)."""
    path = os.path.join(power_dir, LAST_VALID_FILE)
    try:
        raw = _read(path)
        return None if raw is None else _parse(path, raw)
    except ConfigError:
        return None
