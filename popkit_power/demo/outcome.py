"""What the demo's session shows happened, read back from its journal (never from what was printed on the way)."""

from __future__ import annotations

from typing import Any

from ..keys import HUMAN, agent_key
from ..session import Session
from ..timestamps import seconds_of


def outcome(session: Session, plan: dict[str, Any]) -> dict[str, Any]:
    """The facts of the story as the journal has them: who was lost and how fast the coordinator said so, which
    task was orphaned and who took it over, the insight, the approval and its answer, and each task's end."""
    personas: dict[Any, str] = {agent_key(agent["claude_session"]): persona
                                for persona, agent in plan["agents"].items()}
    facts: dict[str, Any] = {"lost": [], "orphaned": [], "claims": [], "insights": [], "approvals": {},
                             "completed": {}, "events": 0, "session": session.id}
    last_seen: dict[str, float] = {}
    for event in session.journal.reader():
        facts["events"] += 1
        kind, data, sender = event.get("type"), event.get("data") or {}, event.get("from")
        when = seconds_of(event.get("ts"))
        if isinstance(sender, str) and when is not None and sender in personas:
            last_seen[sender] = when
        if kind == "agent.lost":
            gone = data.get("agent")
            silence = when - last_seen[gone] if when is not None and gone in last_seen else None
            facts["lost"].append({"agent": personas.get(gone, gone), "reason": data.get("reason"),
                                  "after_last_event_s": silence})
        elif kind == "task.orphaned":
            facts["orphaned"].append({"task": data.get("task"), "from": personas.get(data.get("agent"))})
        elif kind == "task.claimed":
            facts["claims"].append({"task": data.get("task"), "by": personas.get(sender, sender)})
        elif kind == "insight.shared":
            facts["insights"].append({"by": personas.get(sender, sender), "text": data.get("text")})
        elif kind == "approval.requested":
            facts["approvals"][data.get("request")] = {"by": personas.get(sender, sender),
                                                       "question": data.get("question"), "answer": None}
        elif kind in ("approval.granted", "approval.denied") and sender == HUMAN \
                and data.get("request") in facts["approvals"]:
            facts["approvals"][data["request"]]["answer"] = kind.split(".")[1]
        elif kind == "task.completed":
            facts["completed"][data.get("task")] = {"by": personas.get(sender, sender), "ok": data.get("ok", True)}
    orphaned = {item["task"] for item in facts["orphaned"]}
    facts["taken_over"] = [claim for claim in facts["claims"]
                           if claim["task"] in orphaned and claim["by"] != plan["victim"]]
    return facts


def happened(facts: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    """What the story needs and the journal does not show, in words; empty when it all happened."""
    missing = []
    if not any(lost["agent"] == plan["victim"] for lost in facts["lost"]):
        missing.append(f"{plan['victim']} was not declared lost")
    if not facts["taken_over"]:
        missing.append("no agent took over the orphaned task")
    if not facts["insights"]:
        missing.append("no insight was shared")
    if not any(approval["answer"] == "granted" for approval in facts["approvals"].values()):
        missing.append("no approval was asked and granted")
    undone = [task["task"] for task in plan["tasks"] if task["task"] not in facts["completed"]]
    if undone:
        missing.append(f"tasks not completed: {', '.join(undone)}")
    return missing


def summary_lines(facts: dict[str, Any]) -> list[str]:
    """The story in a few lines, from the facts."""
    lines = []
    for lost in facts["lost"]:
        after = lost["after_last_event_s"]
        timing = f", {after * 1000:.0f} ms after its last event" if after is not None else ""
        lines.append(f"{lost['agent']} was killed mid-task; the coordinator declared it lost ({lost['reason']}"
                     f"{timing})")
    for item in facts["orphaned"]:
        takers = [claim["by"] for claim in facts["taken_over"] if claim["task"] == item["task"]]
        finisher = facts["completed"].get(item["task"], {}).get("by")
        lines.append(f"{item['task']} was orphaned from {item['from']} and offered to the others; "
                     f"{' and '.join(takers) or 'nobody'} claimed it"
                     f"{f', {finisher} finished it' if finisher else ''}")
    for insight in facts["insights"]:
        lines.append(f"{insight['by']} shared an insight: {insight['text']!r}")
    for request, approval in facts["approvals"].items():
        lines.append(f"{approval['by']} asked the human {approval['question']!r} (request {request}): "
                     f"{approval['answer'] or 'no answer'}")
    done = [task for task, end in facts["completed"].items() if end["ok"]]
    lines.append(f"{len(done)} task{'s' * (len(done) != 1)} completed ({', '.join(done)}); "
                 f"{facts['events']} events in the journal")
    return lines
