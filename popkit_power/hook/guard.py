"""Guardrails: a PreToolUse check that holds a risky call until the human approves it.

With `guardrail_paths` or `guardrail_commands` in config.json (and the PreToolUse hook registered: `popkit-power
guardrails on`, or `install` once they are set), a matching call (guard_rules.py says which match) is denied with a
reason that names the approval request it raised, and the request appears in `status` for the human. Once the human
approves it, the same call (same tool, same file, or same command in the same folder) passes for that agent from
then on; a denied one stays denied.
Nothing else is ever decided here: a call that matches no pattern, or is approved, gets no output, so Claude Code's
own permission rules apply.

A guardrail fails closed:
- A grant comes only from the journal. The agent's state file (which the agent could edit) only says where to look:
  the position of its `approval.requested` record and of the human's answer. Both records are read again at every
  guarded call, and the call passes only if the request is this agent's, for this tool and this file or command,
  and the answer after it is an `approval.granted` from `human` for that request. Anything else asks anew.
- A config.json that cannot be used keeps its guardrails (config.usable_config); a guardrail setting that cannot be
  known at all denies every call of its kind, with a reason that names the config error.
- A command line that cannot be parsed matches (its request names why), so it too waits for the human.
- The human is asked about the whole call: a matching call longer than MAX_SUBJECT_CHARS is denied without a request
  (a request for its first part would grant every line that starts with it, and hide the rest from the human).
- When the request cannot be written or the answer cannot be read (a session directory that cannot be written, a
  full disk), a matching call is denied with a reason that says so.

This runs in its own hook process, only where guardrails are registered; a call that matches nothing returns before
the session, the journal or the agent's state are touched.
"""

from __future__ import annotations

from ..config import usable_config
from ..errors import PowerModeError, code_of
from ..keys import HUMAN, MAIN, agent_key, agent_name, new_request_id
from .guard_rules import MAX_SUBJECT_CHARS, UNREADABLE, matching_rule
from .log import GUARD_REQUEST_STALE, log_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ..config import ConfigProblem
    from ..session import Session
    from .agent_state import AgentState

GRANTED, DENIED = "granted", "denied"
MAX_SCAN_RECORDS = 50_000  # records read per call while looking for an answer (the scan resumes next time)
MAX_LOOK_AHEAD = 1000  # records between a stored position and the record it stands for (appends in between)

def respond(power_dir: str, session_id: str, payload: dict[str, Any], environ: Any,
            deliver: Any = None) -> str | None:
    """The PreToolUse reply: a denial with its reason, or None (no output) to let the call go on as usual."""

    try:
        reason = _reason(power_dir, session_id, payload, environ)
    except Exception as error:  # a guard that cannot decide must not let the call through
        log_error(power_dir, f"the guardrail check failed, the call is denied: {type(error).__name__}: {error}",
                  code=code_of(error))
        reason = (f"Power Mode guardrail: the check of this call failed ({type(error).__name__}: {error}), so it is "
                  f"denied; tell the human (popkit-power doctor shows the hook's errors).")
    return _deny(reason, deliver) if reason else None


def refuse(power_dir: str, raw: bytes, error: Exception, environ: Any, deliver: Any = None) -> str | None:
    """The PreToolUse reply when whether Power Mode is on here cannot be told (the active session's file cannot be
    read): a call that a guardrail matches is denied, naming the error; any other gets no output."""
    from ..journal import codec

    log_error(power_dir, f"the active session cannot be read ({type(error).__name__}: {error}); guarded calls are "
                         f"denied until it can", code=code_of(error))
    try:
        payload = codec.loads(raw.decode("utf-8"))
        tool, tool_input, cwd = payload.get("tool_name"), payload.get("tool_input"), payload.get("cwd")
        config, _ = usable_config(power_dir)
        project = environ.get("CLAUDE_PROJECT_DIR")
        match = matching_rule(config, tool, tool_input, cwd if isinstance(cwd, str) else None,
                              project if isinstance(project, str) and project else None) \
            if isinstance(tool, str) and isinstance(tool_input, dict) else None
        if match is None:
            return None
        reason = (f"Power Mode guardrail: this call matches the guardrail {match[1]!r}, and the active session "
                  f"cannot be read ({error}), so its approval cannot be asked for: it is denied. Tell the human "
                  f"(popkit-power doctor names the problem).")
    except Exception as failure:  # the payload itself cannot be read: a guard that cannot decide denies
        reason = (f"Power Mode guardrail: the active session cannot be read ({error}) and this call cannot be "
                  f"checked ({type(failure).__name__}), so it is denied. Tell the human.")
    return _deny(reason, deliver)


def _deny(reason: str, deliver: Any) -> str:
    from ..journal import codec

    reply = codec.dumps({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                                "permissionDecisionReason": reason}})
    if deliver is not None:
        deliver(reply)
    return reply


def _reason(power_dir: str, session_id: str, payload: dict[str, Any], environ: Any) -> str | None:
    tool, tool_input, cwd = payload.get("tool_name"), payload.get("tool_input"), payload.get("cwd")
    if not isinstance(tool, str) or not isinstance(tool_input, dict):
        return None
    config, problem = usable_config(power_dir)
    if problem is not None:
        from .miswired import log_config_problem

        log_config_problem(power_dir, problem)
    blind = _unreadable(problem, tool)
    if blind is not None:
        return blind
    if not config.guardrail_paths and not config.guardrail_commands:
        return None
    project = environ.get("CLAUDE_PROJECT_DIR")
    match = matching_rule(config, tool, tool_input, cwd if isinstance(cwd, str) else None,
                          project if isinstance(project, str) and project else None)
    if match is None:
        return None
    subject, pattern = match
    if len(subject) > MAX_SUBJECT_CHARS:  # a request shows the whole call, or is not raised: no grant for a cut text
        return (f"Power Mode guardrail: this call matches the guardrail {pattern!r}, and it is too long to be shown to "
                f"the human for approval ({len(subject):,} characters, at most {MAX_SUBJECT_CHARS:,}), so it is "
                f"denied. Run the guarded command on a shorter line of its own; it then waits for approval.")
    try:
        from ..session import Session
        from .agent_state import AgentState

        session = Session(power_dir, session_id, config)
        claude_session = payload["session_id"]
        raw_id = payload.get("agent_id")
        key = agent_key(claude_session, raw_id if isinstance(raw_id, str) and raw_id else MAIN)
        agent_type = payload.get("agent_type")
        name = agent_name(key, agent_type[:100] if isinstance(agent_type, str) and agent_type else None)
        state = AgentState(session.dir, key, durable=config.durability == "fsync")
        with state.lock:
            state.load()
            where = (cwd if isinstance(cwd, str) else "") if tool == "Bash" else None
            reason = check(session, state, key, name, tool, subject, pattern, where)
            state.save()
        return reason or None
    except (OSError, PowerModeError) as error:  # the request cannot be recorded or its answer read: fail closed
        log_error(power_dir, f"guardrail {pattern!r} matched a {tool} call that was denied because the session "
                             f"cannot be written or read: {type(error).__name__}: {error}", code=code_of(error))
        return (f"Power Mode guardrail: this call matches the guardrail {pattern!r}, and the approval it needs "
                f"cannot be recorded: the session's journal cannot be written or read ({error}). It stays denied "
                f"until the power directory can be written again; tell the human.")


def _unreadable(problem: ConfigProblem | None, tool: str) -> str | None:
    """The denial for a call whose guardrails cannot be known (config.json broken, no valid version kept)."""
    if problem is None:
        return None
    from ..tool_calls import WRITE_TOOLS

    # Bash calls write files too (`>`, `rm`, `tee`): a path guardrail that cannot be read holds them as well.
    settings = {"guardrail_commands", "guardrail_paths"} if tool == "Bash" else \
        {"guardrail_paths"} if tool in WRITE_TOOLS else set()
    if not settings & set(problem.unreadable):
        return None
    kind = "Bash" if tool == "Bash" else "Edit, Write, MultiEdit and NotebookEdit"
    return (f"Power Mode guardrail: every {kind} call is denied because the guardrails cannot be read: "
            f"{problem.error}. There is no earlier valid config.json to fall back on. Ask the human to fix "
            f"config.json (popkit-power doctor names the problem); then try again.")


def check(session: Session, state: AgentState, key: str, name: str, tool: str, subject: str,
          pattern: str, where: str | None = None) -> str:
    """The reason this matching call is denied, or "" when the human granted it. Raises the approval request the
    first time a call matches; reads the human's answer from the journal, and checks it there, after that. `where`
    is a Bash call's folder: a grant is for the line in the folder the human was shown."""
    fingerprint = f"{tool}\n{subject}" if where is None else f"{tool}\n{where}\n{subject}"
    entry = state.guards.get(fingerprint)
    answer = None
    if entry is not None and _well_formed(entry) and _is_our_request(session, entry, key, name, tool, subject,
                                                                     where):
        answer = _answer(session, entry)
    else:
        if entry is not None:
            log_error(session.power_dir, f"agent {key}: its stored guardrail request for a {tool} call does not "
                                         f"match the journal; asking the human again", code=GUARD_REQUEST_STALE)
        entry = _ask(session, key, name, tool, subject, pattern, where)
        state.guards[fingerprint] = entry
        from .agent_state import MAX_GUARDS

        while len(state.guards) > MAX_GUARDS:
            del state.guards[next(iter(state.guards))]
    request = entry["request"]
    if answer == GRANTED:
        return ""
    what = "run this command" if tool == "Bash" else f"{tool} {subject}"
    rule = (f"it cannot be read as a shell command line ({pattern[len(UNREADABLE) + 2:]})"
            if pattern.startswith(UNREADABLE) else f"it matches the guardrail {pattern!r}")
    if answer == DENIED:
        return (f"Power Mode guardrail: the human denied request {request} to {what} ({rule}). Do not retry it; "
                f"ask the human (popkit-power ask \"...\") if you need another way.")
    return (f"Power Mode guardrail: {rule}, so it waits for the human's approval, request {request} (the human "
            f"answers with: popkit-power approve {request}). Carry on with other work and try the same call again "
            f"once the answer reaches you after a later tool call; it passes once granted.")


def _ask(session: Session, key: str, name: str, tool: str, subject: str, pattern: str,
         where: str | None) -> dict[str, Any]:
    """Append the approval request for this call; the entry remembers where it is, and where to look for the
    answer."""
    request = new_request_id()
    start = session.journal.end_position()
    guard = {"tool": tool, "subject": subject, "pattern": pattern, **({} if where is None else {"cwd": where})}
    appended = session.publish("approval.requested", {
        "request": request, "question": _question(pattern, name, tool, subject, where),
        "options": ["approve", "deny"], "guard": guard}, sender=key)
    return {"request": request, "asked": start.as_dict(), "seq": appended.first_seq, "scan": start.as_dict()}


def _question(pattern: str, name: str, tool: str, subject: str, where: str | None) -> str:
    """What the human is asked: the request's question, which names the exact call (a command, and its folder)."""
    verb = f"run `{subject}`" + (f" in {where}" if where else "") if tool == "Bash" else f"{tool} {subject}"
    return f"guardrail {pattern!r}: may {name} {verb}?"


def _well_formed(entry: dict[str, Any]) -> bool:
    return isinstance(entry.get("request"), str) and isinstance(entry.get("seq"), int) and all(
        isinstance(entry.get(field), dict) for field in ("asked", "scan"))


def _is_our_request(session: Session, entry: dict[str, Any], key: str, name: str, tool: str, subject: str,
                    where: str | None) -> bool:
    """Whether the journal holds, where the entry says, this agent's request for this very call, asked in the words
    the guard uses (so the human saw the exact call: a request the agent wrote itself with another question, then
    pointed its entry at, grants nothing)."""
    record = _record_at(session, entry["asked"], entry["seq"])
    if record is None or record.get("type") != "approval.requested" or record.get("from") != key:
        return False
    data = record.get("data")
    if not isinstance(data, dict):
        return False
    guard = data.get("guard")
    return isinstance(guard, dict) and data.get("request") == entry["request"] and guard.get("tool") == tool \
        and guard.get("subject") == subject and isinstance(guard.get("pattern"), str) and guard.get("cwd") == where \
        and data.get("question") == _question(guard["pattern"], name, tool, subject, where)


def _answer(session: Session, entry: dict[str, Any]) -> str | None:
    """The human's answer to the entry's request, read from the journal: where it was found before (read again
    and checked), else by reading on from where the last look stopped."""
    found = entry.get("answer")
    if isinstance(found, dict) and isinstance(entry.get("answer_seq"), int):
        record = _record_at(session, found, entry["answer_seq"])
        answer = _answer_in(record, entry) if record is not None else None
        if answer is not None:
            return answer
        entry["scan"] = entry["asked"]  # the stored answer is not there: look again from the request
    entry.pop("answer", None)
    entry.pop("answer_seq", None)
    return _look_for_answer(session, entry)


def _answer_in(record: dict[str, Any], entry: dict[str, Any]) -> str | None:
    from ..protocol import APPROVAL_ANSWERS

    data = record.get("data")
    if record.get("type") in APPROVAL_ANSWERS and record.get("from") == HUMAN and isinstance(data, dict) \
            and data.get("request") == entry["request"] and record.get("seq", 0) > entry["seq"]:
        return GRANTED if record["type"] == "approval.granted" else DENIED
    return None


def _look_for_answer(session: Session, entry: dict[str, Any]) -> str | None:
    """Read on from where the last look stopped; remember where the human's first answer to the request is."""
    reader = _reader(session, entry["scan"]) or _reader(session, entry["asked"]) or _reader(session, None)
    before = reader.position.copy()
    answer = None
    for count, record in enumerate(reader):
        answer = _answer_in(record, entry)
        if answer is not None:
            entry["answer"], entry["answer_seq"] = before.as_dict(), record.get("seq")
            break
        before = reader.position.copy()
        if count >= MAX_SCAN_RECORDS:
            break
    entry["scan"] = reader.position.as_dict()
    return answer


def _record_at(session: Session, position: dict[str, Any], seq: int) -> dict[str, Any] | None:
    """The record numbered `seq` at or shortly after a stored position, or None if it is not there."""
    reader = _reader(session, position)
    if reader is None:
        return None
    for count, record in enumerate(reader):
        found = record.get("seq")
        if found == seq:
            return dict(record)
        if not isinstance(found, int) or found > seq or count >= MAX_LOOK_AHEAD:
            return None
    return None


def _reader(session: Session, position: Any) -> Any:
    """A reader from a stored position (None: the journal's start), or None when the position is not one the
    journal can honour. It parses with `codec` and logs damage to hook.log: orjson's import (with dataclasses,
    inspect, uuid) would cost more than the rest of this hook process."""
    from ..errors import JournalError
    from ..journal import codec
    from ..journal.writer import Position
    from .log import DamageLog

    try:
        start = Position() if position is None else Position.from_dict(position)
        reader = session.journal.reader(start, loads=lambda line: codec.loads(line.decode("utf-8")),
                                        on_damage=DamageLog(session))
        reader.check()
    except JournalError:
        return None
    return reader
