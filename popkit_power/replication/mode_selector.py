"""Which server carries a power session besides the journal, and why (the original Power Mode's `mode_selector.py`):

- Upstash when UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are both set and Upstash answers a PING;
  when it does not, "Upstash connection failed. Check your credentials." with the exact failure, and `ok` False;
- a Redis server when REDIS_URL is set (the reason says whether it answered a PING; `ok` False when it did not, or
  when the URL is not one);
- otherwise the file journal alone: "File-based mode", with the original's "Upstash credentials required ..." (or,
  when only one of the two Upstash variables is set, which one is missing).

The journal on disk stays the single truth in every mode; a server only mirrors it. Nothing here imports httpx or
redis-py until credentials are set, so `popkit-power status` in file mode costs no more than before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..display import quoted
from ..errors import PowerModeError
from .errors import ReplicationError

if TYPE_CHECKING:
    from .transport import Transport

FILE, REDIS, UPSTASH = "file", "redis", "upstash"
URL_VAR, TOKEN_VAR, REDIS_VAR = "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "REDIS_URL"
CREDENTIAL_VARS = (URL_VAR, TOKEN_VAR, REDIS_VAR)

NOT_CONFIGURED = ("Upstash credentials required for Power Mode Redis features. "
                  "Set UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN environment variables.")
CONNECTION_FAILED = "Upstash connection failed. Check your credentials."
FILE_BASED = "File-based mode"
#: How long selecting a mode waits for a PING (seconds), connecting included.
PING_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Mode:
    """The selected mode: `kind` (file, redis, upstash), `reason` (one line for people), and `ok`: False when the
    selected server cannot be used now (it did not answer, or its settings are wrong)."""

    kind: str
    reason: str
    ok: bool


def ping_transport(transport: Transport) -> float:
    """One PING; its round trip in milliseconds. Raises a TransportError, or ReplicationError for an answer that
    is not PONG."""
    started = time.perf_counter()
    [reply] = transport.execute([["PING"]], timeout=PING_TIMEOUT_SECONDS)
    elapsed = (time.perf_counter() - started) * 1000
    if reply != "PONG":
        raise ReplicationError(f"{transport.describe()}: PING answered {quoted(str(reply), 100)}, not PONG")
    return elapsed


def select_mode(environ: Mapping[str, str], *, ping: Callable[[Transport], float] = ping_transport,
                check: bool = True) -> Mode:
    """The mode for this environment. With `check`, the selected server is asked for a PING through `ping`
    (replaceable in tests); without, nothing is contacted and the reason says so."""
    url, token, redis_url = (environ.get(name, "").strip() for name in CREDENTIAL_VARS)
    half = half_set(environ)
    if url and token:
        outcome = _checked(UPSTASH, environ, ping) if check else None
        if outcome is None:
            return Mode(UPSTASH, f"{URL_VAR} and {TOKEN_VAR} are set (not checked: `popkit-power upstash ping` "
                                 f"checks them)", True)
        answered, said = outcome
        return Mode(UPSTASH, said if answered else f"{CONNECTION_FAILED} ({said})", answered)
    if redis_url:
        also = f"; {half}, so Upstash is not used" if half else ""
        outcome = _checked(REDIS, environ, ping) if check else None
        if outcome is None:
            return Mode(REDIS, f"{REDIS_VAR} is set (not checked: `popkit-power upstash ping` checks it){also}", True)
        answered, said = outcome
        return Mode(REDIS, f"{said if answered else f'{REDIS_VAR} is set, but PING failed ({said})'}{also}",
                    answered)
    if half:
        return Mode(FILE, f"{FILE_BASED}: {half}, so Upstash is not used", True)
    return Mode(FILE, f"{FILE_BASED}: {NOT_CONFIGURED}", True)


def not_replicated(mode: Mode) -> str | None:
    """What `start` warns about on its first screen when credentials are set but their server cannot be used (the
    session then runs on the file journal alone, replicated nowhere); None when all is as the variables say."""
    if mode.ok:
        return None
    return (f"warning: {mode.reason}; this session is NOT replicated. Fix it (popkit-power upstash ping shows the "
            f"failure), then run: popkit-power replicate")


def half_set(environ: Mapping[str, str]) -> str | None:
    """Which of the two Upstash variables is missing when exactly one is set, in words; None otherwise."""
    url, token = (environ.get(name, "").strip() for name in (URL_VAR, TOKEN_VAR))
    if url and not token:
        return f"{URL_VAR} is set but {TOKEN_VAR} is not"
    if token and not url:
        return f"{TOKEN_VAR} is set but {URL_VAR} is not"
    return None


def open_transport(kind: str, environ: Mapping[str, str], *,
                   connect_timeout: float | None = None) -> Transport | None:
    """The transport for a mode's kind, from the environment's credentials (None for the file mode). Imports httpx
    or redis-py only here. Raises ConfigError for credentials that cannot be used, MissingDependencyError when
    REDIS_URL is set but redis-py is not installed."""
    from .transport import CONNECT_TIMEOUT_SECONDS

    timeout = CONNECT_TIMEOUT_SECONDS if connect_timeout is None else connect_timeout
    if kind == UPSTASH:
        from .upstash_rest import UpstashRest

        return UpstashRest(environ.get(URL_VAR, "").strip(), environ.get(TOKEN_VAR, "").strip(),
                           connect_timeout=timeout)
    if kind == REDIS:
        from .redis_streams import RedisStreams

        return RedisStreams(environ.get(REDIS_VAR, "").strip(), connect_timeout=timeout)
    return None


def _checked(kind: str, environ: Mapping[str, str], ping: Callable[[Transport], float]) -> tuple[bool, str]:
    """(whether the server answered a PING, what to say about it)."""
    try:
        transport = open_transport(kind, environ, connect_timeout=PING_TIMEOUT_SECONDS)
    except PowerModeError as error:
        return False, str(error)
    assert transport is not None
    try:
        elapsed = ping(transport)
    except PowerModeError as error:
        return False, str(error)
    finally:
        transport.close()
    return True, f"{transport.describe()} answered PING in {elapsed:.0f} ms"
