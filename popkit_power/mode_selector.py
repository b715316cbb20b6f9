"""Which transport carries a power session, and why (the original Power Mode's `mode_selector.py`).

Upstash when `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN` are set, native Redis when `REDIS_URL` is set,
otherwise the file journal alone. Replication is not built yet, so today the answer is always the file journal,
with a reason that says what was found in the environment.
"""

from __future__ import annotations

from collections.abc import Mapping

FILE, REDIS, UPSTASH = "file", "redis", "upstash"
FILE_MODE_REASON = ("File-based mode: UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are not set, "
                    "and REDIS_URL is not set")


def select_mode(environ: Mapping[str, str]) -> tuple[str, str]:
    """(mode, reason) for this environment."""
    upstash = bool(environ.get("UPSTASH_REDIS_REST_URL") and environ.get("UPSTASH_REDIS_REST_TOKEN"))
    if upstash or environ.get("REDIS_URL"):
        which = "UPSTASH_REDIS_REST_URL/TOKEN" if upstash else "REDIS_URL"
        return FILE, f"{which} is set, but this version has no replicator yet: the file journal is the whole truth"
    return FILE, FILE_MODE_REASON
