"""What the CLI prints for people: status (the model is status.py), verify reports and replayed events as text."""

from __future__ import annotations

from typing import Any

_SUMMARY_KEYS = ("text", "question", "result", "title", "objective", "tool", "reason", "agent", "task", "request",
                 "name")


def no_session_text(info: dict[str, Any]) -> str:
    return (f"Power Mode off: no sessions in {info['power_dir']}\n"
            f"mode: {info['mode']['mode']} ({info['mode']['reason']})\n"
            'start one with: popkit-power start "objective"')


def status_text(info: dict[str, Any]) -> str:
    lines = [
        f"session   {info['session']} ({'active' if info['active'] else 'not active'}"
        f"{', closed ' + info['closed'] if info['closed'] else ''})",
        f"objective {info['objective'] or '-'}",
        f"mode      {info['mode']['mode']} ({info['mode']['reason']})",
        f"journal   {info['journal']['directory']} through seq {info['journal']['records_through_seq']}",
        f"coordinator {info['coordinator'].get('status', 'none')}",
        "",
        f"agents ({len(info['agents'])})",
    ]
    for key, agent in info["agents"].items():
        task = f" task {agent['current_task']}" if agent.get("current_task") else ""
        lines.append(f"  {agent.get('name', key):<24} {agent['status']:<7} last seen {agent['last_seen'] or '-'}  "
                     f"{agent['tool_calls']} tool calls{task}")
    lines.append(f"tasks ({len(info['tasks'])}, {len(info['open_tasks'])} open, {len(info['orphans'])} orphaned)")
    for task_id, task in info["tasks"].items():
        lines.append(f"  {task_id:<24} {task['status']:<9} owner {task['owner'] or '-'}  attempts {task['attempts']}")
    insights = [insight for insight in info["insights"] if insight["dup_of"] is None]
    lines.append(f"insights ({len(insights)}, {len(info['insights']) - len(insights)} duplicates)")
    lines.extend(f"  {insight['text']}" for insight in insights[-5:])
    lines.append(f"approvals pending ({len(info['pending_approvals'])})")
    for key in info["pending_approvals"]:
        lines.append(f"  {key}: {info['approvals'][key].get('question')}")
    if info["conflicts"]:
        lines.append(f"file conflicts ({len(info['conflicts'])})")
        lines.extend(f"  {c['file']}: {', '.join(c['agents'])}" for c in info["conflicts"][-5:])
    return "\n".join(lines)


def verify_text(report: dict[str, Any]) -> str:
    seqs = f"seq {report['first_seq']}..{report['last_seq']}" if report["records"] else "no records"
    lines = [f"{'OK' if report['ok'] else 'DAMAGED'}: {report['records']} records, {seqs}, "
             f"{len(report['segments'])} segment(s) in {report['journal']}"]
    for damage in report["damaged"]:
        lines.append(f"  damaged: seq {damage['seq']} at {damage['segment']} byte {damage['offset']}: "
                     f"{damage['reason']}")
    for gap in report["gaps"]:
        lines.append(f"  gap: no record between seq {gap['after']} and seq {gap['before']}")
    for seq in report["repeats"]:
        lines.append(f"  repeated: seq {seq}")
    if report["torn_tail"]:
        torn = report["torn_tail"]
        lines.append(f"  torn tail: {torn['bytes']} bytes at {torn['segment']} byte {torn['offset']} "
                     f"(repaired by the next append)")
    return "\n".join(lines)


def event_line(event: dict[str, Any]) -> str:
    """One readable line for an event: seq, time, channel, type, sender, recipient, and its main text."""
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    text = next((str(data[key]) for key in _SUMMARY_KEYS if key in data), "")
    to = f" -> {event['to']}" if event.get("to") else ""
    return (f"{event.get('seq', '?'):>6} {str(event.get('ts', ''))[:23]} {event.get('ch', ''):<11} "
            f"{event.get('type', ''):<18} {event.get('from', '')}{to}: {text[:160]}")
