"""The exceptions popkit-power raises on purpose, rooted in one base class.

    PowerModeError
    ├── ConfigError            a bad value in config.json or the environment
    ├── ProtocolError          an event that does not follow journal/SPEC.md (names the field)
    ├── SessionError           no such session, no active session, a bad session id
    │   └── CoordinatorRunningError   a second coordinator for a session (names the running one)
    ├── HookInputError         a Claude Code hook payload the hook cannot use (logged, never raised to Claude Code)
    ├── UnsafePathError        a path under the power directory that must not be used: a symlink, a directory
    │                          where a file belongs, one not owned by you or writable by others
    └── JournalError           the journal cannot be read or written
        └── RecordTooLargeError    one record over `max_record_bytes`

Every message is one line that names what is wrong, so the CLI can print it as it is. This module is on the hook's
hot path: it imports nothing.
"""

from __future__ import annotations


class PowerModeError(Exception):
    """Base of every error popkit-power raises on purpose."""


class ConfigError(PowerModeError):
    """A configuration value is missing, of the wrong type, or out of range."""


class ProtocolError(PowerModeError, ValueError):
    """An event or message does not follow the protocol; the message names the offending field."""


class SessionError(PowerModeError):
    """A session that does not exist, is not active, or whose id is not allowed."""


class CoordinatorRunningError(SessionError):
    """A coordinator already runs for the session; the message names its pid, host and start."""


class HookInputError(PowerModeError):
    """A hook payload the hook cannot use: not JSON, not UTF-8, too large, an unknown event, no session id."""


class UnsafePathError(PowerModeError):
    """A file or directory under the power directory that popkit-power refuses to use, named with the reason."""


class JournalError(PowerModeError):
    """The journal could not be read or appended to."""


class RecordTooLargeError(JournalError):
    """One serialized record is larger than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"record of {size} bytes is over the size limit of {limit} bytes (max_record_bytes)")
        self.size = size
        self.limit = limit
