"""`popkit-power demo`: a short but real Power Mode session, in a temporary power directory, with no Claude Code.

    story.py   what happens, as data from a seed: the objective, the tasks, and each simulated agent's script
    agent.py   one simulated agent: a process of its own that feeds real hook payloads to `popkit-power-hook` (with
               CLAUDE_PID set to its own pid, as Claude Code does) and runs `popkit-power` as its Bash tool
    run.py     the human's side: opens the session, runs the real coordinator, starts the agents, kills one mid-task,
               answers the approval, shows the live status, and cleans up every process it started
    outcome.py what the session shows happened, read back from its journal (what the demo reports at its end)

The command itself (`cli/demo.py`) puts these together. This `__init__` imports nothing.
"""
