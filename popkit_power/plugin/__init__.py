"""The Claude Code plugin's files (`.claude-plugin/plugin.json` at the repository's root points at its hooks and its
commands); no Python code:

    hooks.json         the hooks the plugin registers: the same as `popkit-power install` writes (setup/install.py
                       makes both, and tests/test_install.py holds them equal), each running the launcher
    run-hook.sh        the launcher: finds `popkit-power-hook` without PATH or a path written anywhere, and never
                       fails the agent when there is none (docs/hook-setup.md)
    bin/popkit-power-hook  the hook itself, installed as a plain script (pyproject's `script-files`), not an entry
                       point, whose wrapper imports `re`
    commands/power.md  the `/popkit:power` command

This `__init__` imports nothing.
"""
