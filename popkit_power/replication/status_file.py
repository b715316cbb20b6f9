"""`replication.json` beside the journal: what the replicator last said about itself (positions, counts, its last
error), which `status` reads for the lag (importing only this module of replication). Never the token: transports
describe themselves masked."""

from __future__ import annotations

import os
from typing import Any

from .._fs import read_file, write_file_atomically
from ..errors import PowerModeError
from ..journal import codec
from ..keys import REPLICATION_STATUS_FILE


def write_status(session_dir: int, status: dict[str, Any]) -> None:
    """Replace the status file in the session directory open as `session_dir` (a descriptor: the directory the
    replicator opened, never one put in its place since); a failure is logged, never raised (replication goes on
    without it)."""
    try:
        write_file_atomically(REPLICATION_STATUS_FILE, codec.dumps(status).encode(), durable=False,
                              dir_fd=session_dir)
    except (OSError, PowerModeError) as error:
        import logging  # only here: `status` reads this file, and logging costs ~4 ms to import

        logging.getLogger("popkit_power.replication").warning("replication status not written: %s", error)


def read_status(session_dir: str) -> dict[str, Any] | None:
    """What the replicator last wrote, or None."""
    try:
        found = codec.loads(read_file(os.path.join(session_dir, REPLICATION_STATUS_FILE), 1 << 20).decode("utf-8"))
    except (OSError, ValueError, PowerModeError):
        return None
    return found if isinstance(found, dict) else None
