#!/bin/sh
# popkit-power's plugin runs its hook through this launcher, because a plugin cannot name a path of its own and
# Claude Code's PATH is whatever the shell that started it had (docs/hook-setup.md). It looks, in this order:
#   1. $POPKIT_POWER_HOOK (a path, for an installation nothing below finds);
#   2. popkit-power-hook on PATH;
#   3. <plugin root>/.venv/bin/popkit-power-hook (the repository cloned, with `pip install .` in its own .venv);
#   4. ~/.local/bin/popkit-power-hook (where pipx puts it).
# and runs the first it finds with the payload on stdin. When there is none, it never fails the agent: it exits 0,
# and at SessionStart it tells the user, once per session, in a message Claude Code shows them.
# `run-hook.sh --where` prints the hook it would run; with any argument, a missing hook is an error (exit 1) naming
# where it looked, for `popkit-power doctor`.
# Plain sh, no subshell on the way to the hook: it runs before every hook call.

root=${0%popkit_power/plugin/run-hook.sh}
root=${root%/}
root=${CLAUDE_PLUGIN_ROOT:-${root:-.}}
hook=

find_hook() {
    if [ -n "$POPKIT_POWER_HOOK" ]; then
        hook=$POPKIT_POWER_HOOK
        return 0
    fi
    set -f
    saved_ifs=$IFS
    IFS=:
    for dir in $PATH; do
        if [ -f "${dir:-.}/popkit-power-hook" ] && [ -x "${dir:-.}/popkit-power-hook" ]; then
            hook=${dir:-.}/popkit-power-hook
            IFS=$saved_ifs
            set +f
            return 0
        fi
    done
    IFS=$saved_ifs
    set +f
    for candidate in "$root/.venv/bin/popkit-power-hook" "$HOME/.local/bin/popkit-power-hook"; do
        if [ -f "$candidate" ] && [ -x "$candidate" ]; then
            hook=$candidate
            return 0
        fi
    done
    return 1
}

if [ "$1" = "--where" ] && find_hook; then
    printf '%s\n' "$hook"
    exit 0
fi
if [ "$1" != "--where" ] && find_hook; then
    exec "$hook" "$@"
fi
if [ $# -gt 0 ]; then  # a person, or popkit-power doctor, asked (Claude Code passes no argument)
    echo "popkit-power-hook not found: POPKIT_POWER_HOOK is not set, it is not on PATH, not in $root/.venv/bin, not in $HOME/.local/bin" >&2
    exit 1
fi

payload=$(cat)
case $payload in
    *'"SessionStart"'*)
        printf '%s\n' '{"systemMessage": "popkit-power: the Power Mode hook (popkit-power-hook) was not found, so this session is not recorded. It is not on PATH, in the plugin'"'"'s .venv, or in ~/.local/bin, and POPKIT_POWER_HOOK is not set. Install popkit-power (pipx install popkit-power, or pip install . in a venv), or set POPKIT_POWER_HOOK to the hook'"'"'s path; then run: popkit-power doctor"}'
        ;;
esac
exit 0
