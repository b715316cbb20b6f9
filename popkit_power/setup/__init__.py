"""Setting Power Mode up on a machine, and telling what is wrong with a set-up.

    install.py        `install` and `uninstall`: the hook registered in Claude Code's settings (or the plugin)
    registrations.py  where the hook is registered today, read back from every settings file and the plugin
    hook_errors.py    the hook's own failures, kept in `hook.log` with the advice each one needs
    unreported.py     agents whose Claude Code runs but whose hook no longer records them
    problems.py       the problems `status` shows in one line each (what `doctor` would report), with the fix
    doctor.py         `doctor`: every check of a set-up, each problem with its fix

This `__init__` imports nothing.
"""
