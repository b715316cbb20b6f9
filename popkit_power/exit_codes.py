"""The exit codes of `popkit-power` (and `python -m popkit_power.upstash_adapter`), and which error ends a command
with which: the one place where an error becomes a number.

    0    OK           done; also when the reader of the output went away (`replay | head`)
    1    FAILED       the command ran, and what it checked or waited for came out no: `verify` found damage,
                      `doctor` a problem, `ask --wait` a denial, an `upstash` check failed, the demo's story fell short
    2    ERROR        the command could not do what it was asked: a PowerModeError (named in one line on stderr), an
                      error of the file system, text that is not UTF-8; and click's usage errors
    3    TIMED_OUT    `ask --wait`: no answer within --timeout (the request stays open)
    130  INTERRUPTED  Ctrl-C (128 + SIGINT) where a command reports it rather than stopping at once (the demo);
                      elsewhere click stops with "Aborted!" and 1, and `status --watch`, `replay --follow` with 0

The hook has codes of its own (hook/entry.py: always 0; its waiter 2 to wake the agent): Claude Code reads them.
"""

from __future__ import annotations

from .errors import PowerModeError

OK = 0
FAILED = 1
ERROR = 2
TIMED_OUT = 3
INTERRUPTED = 130

#: error class -> exit code: the first class in this order that the error is an instance of decides (BrokenPipeError
#: before OSError, whose subclass it is). The CLI catches only these; any other error is a bug, and keeps its
#: traceback.
BY_ERROR: tuple[tuple[type[BaseException], int], ...] = (
    (BrokenPipeError, OK),
    (KeyboardInterrupt, INTERRUPTED),
    (PowerModeError, ERROR),
    (UnicodeError, ERROR),
    (OSError, ERROR),
)


def exit_code_for(error: BaseException) -> int:
    """The exit code a command ends with after `error` (ERROR for one of no class in BY_ERROR)."""
    return next((code for kind, code in BY_ERROR if isinstance(error, kind)), ERROR)
