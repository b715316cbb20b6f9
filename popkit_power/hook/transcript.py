"""What reached the model: a reply's news checked against Claude Code's transcript, and given again if it was lost.

Claude Code drops a hook's output in two cases the hook cannot see from inside (docs/claude-code.md, "When a hook's
output is lost"): a tool hook's reply printed before Claude Code's timeout ended the process (the transcript then
records `hook_cancelled`), and an idle agent's waiter that wrote its news but ended by a signal instead of exit 2.
So each reply that carries news is marked with a short reference (`(delivery 1a2b3c4d)` in its first line) and
remembered in the agent's state, with where the transcript ended when it went out. At the agent's next hook call
the part of the transcript written since then tells what happened (`settle`):

- the reference is there, whole (`delivery_mark`), in what the model sees, not only in the log of the hook's
  stdout: forgotten.
- a tool reply: the transcript holds the tool's result and, after it, an answer of the model made after the reply
  went out, without the reference: Claude Code sent its next request without the news. Lost: its lines are
  delivered again. (Made after the reply: a parallel call's block streamed in the same answer is not one.)
- a waiter's or Stop hook's reply: the transcript holds an answer of the model made after the reply went out,
  without the reference. Lost likewise.
- otherwise it cannot be told yet (parallel tool calls whose hooks run together, a transcript that lags): kept for
  a later call, at most `MAX_UNCONFIRMED` replies; one whose transcript is gone (or not a regular file), or grew by
  more than `MAX_BEHIND` without telling, is taken as delivered, as every reply was before.

Bounded and cheap: only a call that follows a reply reads anything, and then only what was written since, up to
`MAX_READ` bytes per reply. When that much told nothing (big tool results: a Read's result is written twice in its
line, and parallel calls write several before the answer), the next call reads on from the last whole line read,
remembering whether the tool's result was passed. Without a transcript (an older Claude Code, tests) nothing is
remembered. Hot path: lean imports.
"""

from __future__ import annotations

import os
import stat
import time

from ..journal import codec
from ..keys import subagent_transcript
from ..timestamps import seconds_of
from .news import keep_pending, pending_turns, turns_of
from .texts import delivery_mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .agent_state import AgentState

#: Bytes of transcript read per remembered reply and call at most: 2.1.330 writes ~30 KB per tool call, so this is
#: many calls' worth of evidence (usually a call reads one reply's few KB; at most MAX_READ_PER_CALL in all)
MAX_READ = 512 << 10
#: Replies remembered per agent; past this the oldest is taken as delivered. Parallel tool calls in one answer are
#: all undecided until the model answers after them, so this is more than the parallel calls of one answer.
MAX_UNCONFIRMED = 32
#: Bytes of transcript one call reads at most, all replies together (the others wait for the next call). Replies
#: remembered from one transcript share one read from the earliest of them when it reaches the transcript's end.
MAX_READ_PER_CALL = 8 * MAX_READ
MAX_BEHIND = 32 * MAX_READ  # transcript read past a reply without telling: then it is taken as delivered
#: Bytes read again when a read ends inside one line longer than it: more than a reference or a tool_use_id field
OVERLAP = 128
_ASSISTANT = b'"type":"assistant"'
_HOOK_STDOUT = b'"type":"hook_success"'
STAMP_RESOLUTION = 0.001  # seconds: the transcript's timestamps are in milliseconds


def new_reference() -> str:
    """A reference for one reply: 8 hex digits, unlikely to occur by chance in what follows it."""
    return os.urandom(4).hex()


def transcript_of(payload: dict[str, Any], agent_id: str | None) -> str | None:
    """The transcript that records what this agent's model sees, if Claude Code named one that exists: the
    session's, or a subagent's own (`<session>/subagents/agent-<id>.jsonl` beside it)."""
    path = payload.get("transcript_path")
    if not isinstance(path, str) or not path.endswith(".jsonl"):
        return None
    if agent_id is not None:
        path = subagent_transcript(path[: -len(".jsonl")], agent_id)
    return path if os.path.isfile(path) else None


def remember(state: AgentState, transcript: str, reference: str, context: str, tool_use_id: str | None,
             turns: list[bool] | None = None) -> None:
    """Remember a reply (its text `context`, marked with `reference`) until the transcript tells whether the model
    got it. Called before the reply goes out: the transcript's end then is before anything that answers it.
    `turns`: for each line the reply was made of, in order, whether it starts a turn (given back with it)."""
    try:
        size = os.stat(transcript).st_size
    except OSError:
        return
    lines = [line for line in context.split("\n") if line.startswith("- [")]  # the news lines (texts.news_line)
    record: dict[str, Any] = {"ref": reference, "path": transcript, "at": size, "sent": time.time(), "lines": lines}
    if turns is not None:  # the reply's news lines are the first of the lines it was made of
        record["turns"] = [index for index, starts in enumerate(turns[:len(lines)]) if starts]
    if tool_use_id:
        record["tool"] = tool_use_id
    state.unconfirmed.append(record)
    del state.unconfirmed[: max(0, len(state.unconfirmed) - MAX_UNCONFIRMED)]


def settle(state: AgentState) -> int:
    """Check the agent's remembered replies against their transcripts; put the lines of those that were lost back
    in front of its pending lines (the next reply carries them). Returns how many replies were lost."""
    if not state.unconfirmed:
        return 0
    kept: list[dict[str, Any]] = []
    again: list[str] = []
    again_turns: list[bool] = []
    lost = 0
    reads = _Reads(state.unconfirmed)
    for record in state.unconfirmed:
        verdict = _verdict(record, reads)
        if verdict is None:
            kept.append(record)
        elif not verdict:
            lost += 1
            lines = [line for line in record.get("lines", ()) if isinstance(line, str)]
            turns = record.get("turns")
            again += lines  # a record of a version that did not keep `turns`: judged by the lines' labels
            again_turns += turns_of(lines, turns if isinstance(turns, list) else None)
    state.unconfirmed = kept
    if again:
        keep_pending(state, again + state.pending, again_turns + pending_turns(state))
    return lost


class _Reads:
    """One call's reads of transcripts: one read per transcript from its earliest remembered reply serves every
    reply after it when it reached the file's end; at most `MAX_READ_PER_CALL` bytes in all."""

    __slots__ = ("earliest", "left", "shared")

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.earliest: dict[str, int] = {}
        for record in records:
            path, at = record.get("path"), record.get("at")
            if isinstance(path, str) and isinstance(at, int) and not isinstance(at, bool) and at >= 0:
                self.earliest[path] = min(at, self.earliest.get(path, at))
        self.shared: dict[str, bytes] = {}
        self.left = MAX_READ_PER_CALL

    def read(self, path: str, at: int) -> bytes | None:
        """Up to MAX_READ bytes of `path` from `at`; None when this call has read all it may."""
        base = self.earliest.get(path)
        if base is not None and base <= at:
            if path not in self.shared and self.left > 0:
                self.shared[path] = self._read(path, base)
            data = self.shared.get(path)
            if data is not None and (at == base or (len(data) < MAX_READ and at - base <= len(data))):
                return data[at - base:]  # the read from `at`, or one that reached the end: all there is from `at`
        return self._read(path, at) if self.left > 0 else None

    def _read(self, path: str, at: int) -> bytes:
        data = _read(path, at)
        self.left -= max(len(data), 1)
        return data


def _verdict(record: dict[str, Any], reads: _Reads) -> bool | None:
    """True: the model got the reply (or it cannot be judged any more); False: it was lost; None: not known yet (a
    read that told nothing moves the record's `at` on, for the next call)."""
    try:
        at = int(record["at"])
        start = int(record.get("from", at))  # where the transcript was when the reply went out
        written = reads.read(record["path"], at)
    except (OSError, KeyError, TypeError, ValueError, OverflowError):
        return True  # the transcript is gone or the record is damaged: nothing to judge by
    if written is None:
        return None  # this call read all it may: the next one looks
    if _seen(written, delivery_mark(str(record.get("ref"))).encode()):
        return True
    tool = record.get("tool")
    after: int | None = 0  # where an answer counts from: a tool reply's, after the tool's result
    if isinstance(tool, str) and record.get("result") is not True:
        after = written.find(b'"tool_use_id":' + codec.dumps(tool).encode())
        after = None if after < 0 else after
    if after is not None and _answer_after(written, after, record.get("sent")):
        return False
    if len(written) < MAX_READ:
        return None  # all that was written since: a later call looks again from the same place
    # A whole read told nothing: the next call reads on from its last whole line (or, inside one longer line, a
    # little before the end of this read, so that nothing is cut in two).
    last_line = written.rfind(b"\n") + 1
    record["at"] = at + (last_line if last_line > 0 else len(written) - OVERLAP)
    record["from"] = start
    if after is not None and isinstance(tool, str):
        record["result"] = True
    return True if record["at"] - start > MAX_BEHIND else None


def _read(path: str, start: int) -> bytes:
    """Up to MAX_READ bytes of a regular file from `start`; never blocks (a FIFO put in its place is refused)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.pread(descriptor, MAX_READ, start)
    finally:
        os.close(descriptor)


def _seen(written: bytes, reference: bytes) -> bool:
    """Whether `reference` is in what the model sees: any line but the log of a hook's stdout (`hook_success`),
    which does not say whether the context was passed on (it was reported dropped for the Agent tool)."""
    found = written.find(reference)
    while found >= 0:
        line_start = written.rfind(b"\n", 0, found) + 1
        line_end = written.find(b"\n", found)
        line_end = len(written) if line_end < 0 else line_end
        if _HOOK_STDOUT not in written[line_start:line_end]:
            return True
        found = written.find(reference, line_end)
    return False


def _answer_after(written: bytes, start: int, sent: Any) -> bool:
    """Whether a whole line after `start` is an answer of the model (of this conversation, not a sidechain), made
    after `sent` (seconds) when given."""
    found = written.find(_ASSISTANT, start)
    while found >= 0:
        line_start = written.rfind(b"\n", 0, found) + 1
        line_end = written.find(b"\n", found)
        if line_end < 0:
            return False  # a line still being written
        try:
            entry = codec.loads(written[line_start:line_end].decode("utf-8"))
        except ValueError:
            entry = None
        if isinstance(entry, dict) and entry.get("type") == "assistant" and entry.get("isSidechain") is not True:
            made = seconds_of(entry.get("timestamp"))
            # Claude Code writes milliseconds, cut rather than rounded: an answer written after `sent` may carry a
            # stamp up to 1 ms before it, so "made after" is judged at that resolution.
            if not isinstance(sent, (int, float)) or (made is not None and made + STAMP_RESOLUTION > sent):
                return True
        found = written.find(_ASSISTANT, line_end)
    return False
