"""Guardrails: a PreToolUse check that holds a risky call until the human approves it.

With `guardrail_paths` or `guardrail_commands` in config.json (and the PreToolUse hook registered: `popkit-power
guardrails on`, or `install` once they are set), a matching call is denied with a reason that names the approval
request it raised, and the request appears in `status` for the human. Once the human approves it, the same call
(same tool, same file or command) passes for that agent; a denied one stays denied. Nothing else is ever decided
here: a call that matches no pattern, or is approved, gets no output, so Claude Code's own permission rules apply.

What matches: `guardrail_paths` against the file of a writing tool (Edit, Write, MultiEdit, NotebookEdit): a
pattern without `/` against the file's name, one with `/` against its path relative to the agent's working directory
and against its absolute path (`*` also matches `/`). `guardrail_commands` against a Bash command as a whole and
against each part of it between `;`, `&&`, `||`, `|` and line breaks, so `cd x && git push` matches `git push*`.

This runs in its own hook process, only where guardrails are registered, so it may import `fnmatch` (and `re`);
the PostToolUse path never imports this module.
"""

from __future__ import annotations

import fnmatch
import os
import re

from ..conflicts import WRITE_TOOLS
from ..errors import JournalError
from ..journal import Position
from ..keys import new_request_id
from .agent_state import MAX_GUARDS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..session import Session
    from .agent_state import AgentState

GRANTED, DENIED = "granted", "denied"
MAX_SUBJECT_CHARS = 1000  # of a command or path, in the request and the agent's state
MAX_SCAN_RECORDS = 50_000  # records read per call while looking for an answer (the scan resumes next time)
_PARTS = re.compile(r"&&|\|\||[;|\n]")


def matching_rule(config: Any, tool: str, tool_input: dict[str, Any], cwd: str | None) -> tuple[str, str] | None:
    """(what the call touches, the pattern it matches), or None when no guardrail applies."""
    if tool in WRITE_TOOLS:
        path = tool_input.get("file_path") or tool_input.get("notebook_path")
        if isinstance(path, str) and path:
            for pattern in config.guardrail_paths:
                if _path_matches(path, pattern, cwd):
                    return path[:MAX_SUBJECT_CHARS], pattern
    elif tool == "Bash":
        command = tool_input.get("command")
        if isinstance(command, str) and command.strip():
            parts = [command.strip(), *(part.strip() for part in _PARTS.split(command))]
            for pattern in config.guardrail_commands:
                if any(part and fnmatch.fnmatchcase(part, pattern) for part in parts):
                    return command[:MAX_SUBJECT_CHARS], pattern
    return None


def _path_matches(path: str, pattern: str, cwd: str | None) -> bool:
    if "/" not in pattern:
        return fnmatch.fnmatchcase(os.path.basename(path), pattern)
    candidates = [path]
    if cwd and os.path.isabs(path):
        candidates.append(os.path.relpath(path, cwd))
    return any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates)


def check(session: Session, state: AgentState, agent_key: str, agent_name: str, tool: str,
          tool_input: dict[str, Any], cwd: str | None) -> str | None:
    """The reason to deny this call, or None to let Claude Code's own rules decide. Raises the approval request the
    first time a call matches; reads the human's answer from the journal after that."""
    config = session.config
    if not config.guardrail_paths and not config.guardrail_commands:
        return None
    match = matching_rule(config, tool, tool_input, cwd)
    if match is None:
        return None
    subject, pattern = match
    fingerprint = f"{tool}\n{subject}"
    entry = state.guards.get(fingerprint)
    if entry is None or not isinstance(entry.get("request"), str) or not isinstance(entry.get("scan"), dict):
        entry = _ask(session, state, agent_key, agent_name, tool, subject, pattern)
        state.guards[fingerprint] = entry
        while len(state.guards) > MAX_GUARDS:
            del state.guards[next(iter(state.guards))]
    elif entry.get("answer") is None:
        _look_for_answer(session, entry)
    request = entry["request"]
    answer = entry.get("answer")
    if answer == GRANTED:
        return None
    what = "run this command" if tool == "Bash" else f"{tool} {subject}"
    rule = f"it matches the guardrail {pattern!r}"
    if answer == DENIED:
        return (f"Power Mode guardrail: the human denied request {request} to {what} ({rule}). Do not retry it; "
                f"ask the human (popkit-power ask \"...\") if you need another way.")
    return (f"Power Mode guardrail: {rule}, so it waits for the human's approval, request {request} (the human "
            f"answers with: popkit-power approve {request}). Carry on with other work and try the same call again "
            f"once the answer reaches you after a later tool call; it passes once granted.")


def reply(session: Session, state: AgentState, agent_key: str, agent_name: str, payload: dict[str, Any]) -> str | None:
    """The PreToolUse reply: a denial with its reason, or None (no output) to let the call go on as usual."""
    from .. import codec

    tool, tool_input, cwd = payload.get("tool_name"), payload.get("tool_input"), payload.get("cwd")
    if not isinstance(tool, str) or not isinstance(tool_input, dict):
        return None
    reason = check(session, state, agent_key, agent_name, tool, tool_input, cwd if isinstance(cwd, str) else None)
    if reason is None:
        return None
    return codec.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                               "permissionDecisionReason": reason}})


def _ask(session: Session, state: AgentState, agent_key: str, agent_name: str, tool: str, subject: str,
         pattern: str) -> dict[str, Any]:
    """Append the approval request for this call; the entry remembers where to look for the answer."""
    request = new_request_id()
    start = session.journal.end_position()
    verb = f"run `{subject}`" if tool == "Bash" else f"{tool} {subject}"
    question = f"guardrail {pattern!r}: may {agent_name} {verb}?"
    session.publish("approval.requested", {"request": request, "question": question, "options": ["approve", "deny"],
                                           "guard": {"tool": tool, "subject": subject, "pattern": pattern}},
                    sender=agent_key)
    return {"request": request, "answer": None, "scan": start.as_dict()}


def _look_for_answer(session: Session, entry: dict[str, Any]) -> None:
    """Read on from where the last look stopped; record the human's first answer to the entry's request."""
    from ..keys import HUMAN
    from ..protocol import APPROVAL_ANSWERS

    try:
        reader = session.journal.reader(Position.from_dict(entry["scan"]))
        reader.check()
    except JournalError:  # a position the journal cannot honour (a damaged state file): look from the start
        reader = session.journal.reader()
    for count, event in enumerate(reader):
        data = event.get("data")
        if event.get("type") in APPROVAL_ANSWERS and event.get("from") == HUMAN and isinstance(data, dict) \
                and data.get("request") == entry["request"]:
            entry["answer"] = GRANTED if event["type"] == "approval.granted" else DENIED
            break
        if count >= MAX_SCAN_RECORDS:
            break
    entry["scan"] = reader.position.as_dict()
