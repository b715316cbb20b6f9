"""The Claude Code side of Power Mode: `popkit-power-hook`, one process per hook event of every agent.

    entry.py        reads the payload; with no active session it exits at once, having imported only the lookup
    handlers.py     one handler per Claude Code event: append what happened, read the agent's news, reply
    agent_state.py  the per-agent state file (cursor, counters, what the inbox remembers), typed, read and written here
    inbox.py        the inbox: a pure per-agent fold, journal events in, news items out
    news.py         one agent's news read from its cursor, bounded per call, for every path that delivers news
    texts.py        every text the model sees: the welcome, news lines, and the reply's layout under its cap
    transcript.py   a reply's news checked against Claude Code's transcript, and given again when it was lost
    wake.py         news that starts a turn: what the Stop hook and the waiter hand over, and the waiter's claim
    waiter.py       `popkit-power-hook wake`: an idle agent's waiter (the Stop hook marked `asyncRewake`)
    guard.py        the guardrails' PreToolUse check: a matching call held until the human approves it
    guard_rules.py  what a guardrail matches: commands read as the shell reads them (shell.py), and tool calls
    guard_paths.py  which files a Bash command writes, and whether a path matches a path pattern (globs.py)
    miswired.py     a set-up gone wrong made visible: one event reaching the hook twice, an unusable config.json
    log.py          the one-line error log (`hook.log`)

It runs on every tool call, so it is budgeted at 2x `python -c pass` (1.2x with Power Mode off): these modules
import only lean ones (docs/hot-path.md), and this file imports nothing. The waiter is the exception that may cost
more: Claude Code runs it in the background after a turn, never on a tool call.
"""
