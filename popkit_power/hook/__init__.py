"""The Claude Code side of Power Mode: `popkit-power-hook`, one process per hook event of every agent.

    entry.py        reads the payload; with no active session it exits at once, having imported only the lookup
    handlers.py     one handler per Claude Code event: append what happened, read the agent's news, reply
    agent_state.py  the per-agent state file (cursor, counters, what the inbox remembers), typed, read and written here
    inbox.py        the inbox: a pure per-agent fold, journal events in, news items out
    texts.py        every text the model sees: the welcome, news lines, and the reply's layout under its cap
    log.py          the one-line error log

It runs on every tool call, so it is budgeted at 2x `python -c pass` (1.2x with Power Mode off): these modules
import only lean ones (docs/hot-path.md), and this file imports nothing.
"""
