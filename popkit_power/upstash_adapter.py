"""The original Power Mode's credential checks (its `upstash_adapter.py`):

    python -m popkit_power.upstash_adapter --status | --ping | --test
    popkit-power upstash status | ping | test

- `--status`: what is set (UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN and REDIS_URL, secrets masked) and
  the mode that would be selected; contacts nothing.
- `--ping`: one PING to the selected server (Upstash when both Upstash variables are set, else REDIS_URL's Redis):
  its round trip in milliseconds, or the exact failure.
- `--test`: every command popkit-power sends, round-tripped under a throwaway key prefix that is deleted afterwards;
  one line per check.

Exit codes (exit_codes.py): 0 all good, 1 a check failed, 2 nothing to check (no credentials set) or a value that
cannot be used.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .display import cut
from .errors import ConfigError, PowerModeError
from .exit_codes import FAILED, OK, exit_code_for
from .replication.mode_selector import (
    CREDENTIAL_VARS,
    REDIS,
    REDIS_VAR,
    TOKEN_VAR,
    UPSTASH,
    URL_VAR,
    open_transport,
    ping_transport,
    select_mode,
)
from .replication.transport import ReplyError, Script, Transport, mask, safe_url

Out = Callable[[str], None]
#: How long each check waits for its reply (seconds).
CHECK_TIMEOUT_SECONDS = 10.0
#: The throwaway keys of `--test` start with this, then a random part: nothing of a real session is touched.
TEST_PREFIX = "popkit-power:selftest:"


def show_status(environ: Mapping[str, str], out: Out = print) -> int:
    """Print what is set, masked, and the mode it selects (nothing contacted)."""
    for name in CREDENTIAL_VARS:
        value = environ.get(name, "").strip()
        out(f"{name:<26}{_shown(name, value) if value else 'not set'}")
    mode = select_mode(environ, check=False)
    out(f"{'mode':<26}{mode.kind} ({mode.reason})")
    return OK


def ping(environ: Mapping[str, str], out: Out = print) -> int:
    """PING the selected server: 0 and the round trip, or 1 and the exact failure."""
    transport = _target(environ)
    try:
        elapsed = ping_transport(transport)
    except PowerModeError as error:
        out(f"FAIL  PING: {error}")
        return FAILED
    finally:
        transport.close()
    out(f"ok    PING {transport.describe()}: PONG in {elapsed:.1f} ms")
    return OK


def self_test(environ: Mapping[str, str], out: Out = print) -> int:
    """Round-trip the commands popkit-power uses, one line per check; 0 when all passed, else 1."""
    transport = _target(environ)
    try:
        return run_checks(transport, out)
    finally:
        transport.close()


def run_checks(transport: Transport, out: Out = print) -> int:
    """The checks of `--test` against any transport (0 when all passed, else 1); the keys are deleted after."""
    nonce = secrets.token_hex(6)
    prefix = f"{TEST_PREFIX}{nonce}:"
    stream, other, text, record = (f"{prefix}{name}" for name in ("stream", "other", "string", "hash"))
    # A script no server has cached yet (its source names this run), so the EVALSHA -> NOSCRIPT -> EVAL path runs.
    script = Script(f"-- popkit-power self-test {nonce}\nreturn redis.call('XLEN', KEYS[1])")
    out(f"Testing {transport.describe()} under {prefix}*")

    def run(commands: Sequence[Sequence[Any]]) -> list[Any]:
        return transport.execute(commands, timeout=CHECK_TIMEOUT_SECONDS)

    checks: list[tuple[str, Callable[[], Any], Callable[[Any], bool]]] = [
        ("PING", lambda: run([["PING"]]), lambda r: r == ["PONG"]),
        ("XADD with explicit ids, a duplicate refused in its place",
         lambda: run([["XADD", stream, "1-0", "n", "1"], ["XADD", stream, "2-0", "n", "2"],
                      ["XADD", stream, "2-0", "n", "dup"]]),
         lambda r: r[:2] == ["1-0", "2-0"] and isinstance(r[2], ReplyError) and "equal or smaller" in r[2].message),
        ("XREAD over two streams in one command",
         lambda: run([["XADD", other, "5-0", "n", "5"],
                      ["XREAD", "COUNT", 10, "STREAMS", stream, other, "1-0", "0-0"]]),
         lambda r: r == ["5-0", [[stream, [["2-0", ["n", "2"]]]], [other, [["5-0", ["n", "5"]]]]]]),
        ("XRANGE", lambda: run([["XRANGE", stream, "-", "+"]]),
         lambda r: r == [[["1-0", ["n", "1"]], ["2-0", ["n", "2"]]]]),
        ("XLEN", lambda: run([["XLEN", stream]]), lambda r: r == [2]),
        ("EVALSHA, falling back to EVAL on NOSCRIPT, then EVALSHA again",
         lambda: [script.run(transport, [stream], timeout=CHECK_TIMEOUT_SECONDS),
                  run([script.evalsha([stream])])[0]],
         lambda r: r == [2, 2]),
        ("SET with EX, GET", lambda: run([["SET", text, "v\u00e9", "EX", 120], ["GET", text]]),
         lambda r: r == ["OK", "v\u00e9"]),
        ("HSET, HGETALL", lambda: run([["HSET", record, "a", "1", "b", "2"], ["HGETALL", record]]),
         lambda r: r[0] == 2 and sorted(zip(r[1][::2], r[1][1::2], strict=True)) == [("a", "1"), ("b", "2")]),
        ("EXPIRE, TTL", lambda: run([["EXPIRE", record, 120], ["TTL", record]]),
         lambda r: r[0] == 1 and isinstance(r[1], int) and 0 < r[1] <= 120),
        ("DEL", lambda: run([["DEL", stream, other, text, record], ["EXISTS", stream, other, text, record]]),
         lambda r: r == [4, 0]),
    ]

    failed = 0
    for name, call, good in checks:
        started = time.perf_counter()
        try:
            replies = call()
        except PowerModeError as error:
            out(f"FAIL  {name}: {error}")
            failed += 1
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if good(replies):
            out(f"ok    {name} ({elapsed:.1f} ms)")
        else:
            out(f"FAIL  {name}: unexpected replies {cut(str(replies), 300)}")
            failed += 1
    if failed:  # the DEL check may not have run: delete again, as well as we can
        try:
            run([["DEL", stream, other, text, record]])
        except PowerModeError as error:
            out(f"note  the test keys {prefix}* could not be deleted ({error}); they expire in 120 s at most "
                f"where EXPIRE ran")
    out(f"{len(checks) - failed} of {len(checks)} checks passed, {transport.commands_sent} commands sent")
    return FAILED if failed else OK


def _target(environ: Mapping[str, str]) -> Transport:
    """The transport `--ping` and `--test` use: Upstash when both of its variables are set, else REDIS_URL's."""
    mode = select_mode(environ, check=False)
    if mode.kind not in (UPSTASH, REDIS):
        raise ConfigError(f"nothing to check: {mode.reason}")
    transport = open_transport(mode.kind, environ)
    assert transport is not None
    return transport


def _shown(name: str, value: str) -> str:
    if name == TOKEN_VAR:
        return f"{mask(value)} ({len(value)} characters)"
    try:
        shown, secret = safe_url(value)
    except ValueError:
        return f"not a URL ({len(value)} characters)"
    return f"{shown} ({'secret ' + mask(secret) if name == URL_VAR else 'password ' + mask(secret)})" if secret \
        else shown


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m popkit_power.upstash_adapter",
        description=f"Check Power Mode's Upstash ({URL_VAR}, {TOKEN_VAR}) or Redis ({REDIS_VAR}) credentials.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--status", action="store_true", help="show what is set (masked) and the mode it selects")
    action.add_argument("--ping", action="store_true", help="PING the server: round trip or the exact failure")
    action.add_argument("--test", action="store_true", help="round-trip every command popkit-power uses")
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    try:
        if args.status:
            return show_status(env)
        return ping(env) if args.ping else self_test(env)
    except PowerModeError as error:
        print(f"popkit-power: {error}", file=sys.stderr)
        return exit_code_for(error)


if __name__ == "__main__":
    sys.exit(main())
