"""What a guardrail matches: a tool call against `guardrail_paths` and `guardrail_commands`, read as the shell and
the file system would read it.

Commands. A Bash command line is parsed (shell.py) into every simple command it can run; each is matched with its
wrappers (`env`, `command`, `sudo`, `nohup`, `time`, `nice`, `exec`, `xargs`, `timeout`, ...) and without them,
and the strings that `bash -c`, `sh -c`, `eval`, `su -c`, `watch`, `env -S`, `find -exec` and a shell fed by a
here-document or an `echo` run are parsed again. A pattern such as `rm -rf *` is read as words: its first word
matches the command's name (`/usr/bin/rm` is `rm`); its short flags must all be among the command's, wherever they
stand and however they are grouped (`-fr`, `-r -f`, `-Rf`, `--recursive --force` for `rm`); its long flags must
each match one of the command's (`--force*` matches `--force-with-lease`); and its other words must match the
command's other words in order, where a word right after a flag may be skipped as that flag's value
(`git -C repo push` is `git push`). A pattern that ends with `*` lets more words follow. A word whose value only the
running shell knows (`$X`, `$(...)`, a glob) may be anything, so it matches any pattern word; unquoted, it may also
be any flags. The pattern is also
matched as a plain glob against the command's words joined by single spaces, as before.

Paths. What a path pattern matches, and which files a Bash command writes (`>` targets, the operands of `rm`, `mv`,
`cp`, `tee`, `sed -i`, `git checkout`, ...), each against the directory the line has `cd`'d to: guard_paths.py.

This runs in the PreToolUse hook's process only, and imports no `re` (globs.py matches the patterns).
"""

from __future__ import annotations

from ..globs import glob_match
from ..shell import OPAQUE, UNKNOWN, Command, ShellSyntaxError, commands, is_known
from ..tool_calls import WRITE_TOOLS
from .guard_paths import base, changed_dir, path_matches, project_roots, written

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

MAX_SUBJECT_CHARS = 4000  # of a command or path the human can be asked about (a longer one is denied: guard.py)
MAX_NESTING = 8  # wrappers and re-parsed strings inside each other
UNREADABLE = "(a command line that cannot be read)"  # the pattern named when a line cannot be parsed

#: wrapper -> (its short options that take a value, its long options that take a value, how many operands come
#: before the command it runs)
_WRAPPERS: dict[str, tuple[str, frozenset[str], int]] = {
    "env": ("uCS", frozenset({"--unset", "--chdir", "--split-string"}), 0),
    "command": ("", frozenset(), 0), "builtin": ("", frozenset(), 0), "nohup": ("", frozenset(), 0),
    "exec": ("a", frozenset(), 0), "setsid": ("", frozenset(), 0), "unbuffer": ("", frozenset(), 0),
    "sudo": ("ugCDhprtTUR", frozenset({"--user", "--group", "--chdir", "--host", "--prompt", "--role", "--type",
                                       "--close-from", "--other-user", "--command-timeout"}), 0),
    "doas": ("uC", frozenset(), 0), "time": ("fo", frozenset({"--format", "--output"}), 0),
    "nice": ("n", frozenset({"--adjustment"}), 0), "ionice": ("cnpPu", frozenset({"--class", "--classdata"}), 0),
    "timeout": ("sk", frozenset({"--signal", "--kill-after"}), 1),
    "stdbuf": ("ioe", frozenset({"--input", "--output", "--error"}), 0),
    "xargs": ("nLPsIdEa", frozenset({"--max-args", "--max-lines", "--max-procs", "--max-chars", "--delimiter",
                                     "--eof", "--arg-file", "--replace"}), 0),
    "flock": ("wE", frozenset({"--timeout", "--conflict-exit-code"}), 1), "chroot": ("", frozenset(), 1),
    "busybox": ("", frozenset(), 0),
    "taskset": ("", frozenset(), 1), "watch": ("nd", frozenset({"--interval"}), 0),
    "strace": ("oepsuEIabPXS", frozenset({"--output", "--expr", "--attach", "--user"}), 0),
    "ltrace": ("oepsuna", frozenset({"--output"}), 0), "unshare": ("", frozenset(), 0),
    "nsenter": ("tSG", frozenset({"--target"}), 0), "firejail": ("", frozenset(), 0),
    "systemd-run": ("pEuM", frozenset({"--property", "--setenv", "--unit", "--machine", "--description"}), 0),
    "fakeroot": ("isl", frozenset(), 0), "faketime": ("f", frozenset(), 1), "proxychains": ("f", frozenset(), 0),
    "proxychains4": ("f", frozenset(), 0), "torsocks": ("uapP", frozenset(), 0),
    "pkexec": ("", frozenset({"--user"}), 0),
    "xvfb-run": ("nsfeNlp", frozenset({"--server-num", "--server-args", "--auth-file", "--error-file"}), 0),
    "dbus-launch": ("", frozenset(), 0), "ssh-agent": ("aEtP", frozenset(), 0), "catchsegv": ("", frozenset(), 0),
    "chrt": ("", frozenset(), 1), "runuser": ("ugGl", frozenset({"--user", "--group", "--supp-group"}), 0),
    "caffeinate": ("tw", frozenset(), 0), "cgexec": ("g", frozenset(), 0), "numactl": ("", frozenset(), 0),
}
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "rbash", "fish", "csh", "tcsh",
                     "posh", "oksh", "loksh"})
_SHELL_VALUE_OPTIONS = frozenset({"o", "O"})
#: `su -c STRING`: STRING is a command line
_RUNS_STRING = {"su": "c", "runuser": "c", "script": "c", "flock": "c", "sg": "c"}
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
#: per command, flags that mean the same: written as one short letter before flags are compared
_SAME_FLAG: dict[str, dict[str, str]] = {
    "rm": {"R": "r", "--recursive": "r", "--force": "f", "--dir": "d"},
    "cp": {"R": "r", "--recursive": "r", "--force": "f"},
    "git": {"--force": "f", "--delete": "d", "--all": "a"},
    "chmod": {"--recursive": "R"}, "chown": {"--recursive": "R"},
}


def matching_rule(config: Any, tool: str, tool_input: dict[str, Any], cwd: str | None,
                  project_dir: str | None = None) -> tuple[str, str] | None:
    """(what the call touches, the pattern it matches), or None when no guardrail applies. A Bash command line that
    cannot be parsed while a guardrail could apply to it matches `UNREADABLE` (the guard fails closed)."""
    if tool in WRITE_TOOLS:
        path = tool_input.get("file_path") or tool_input.get("notebook_path")
        if isinstance(path, str) and path:
            roots = project_roots(cwd, project_dir)
            for pattern in config.guardrail_paths:
                if path_matches(path, pattern, cwd, roots):
                    return path, pattern
    elif tool == "Bash":
        line = tool_input.get("command")
        if isinstance(line, str) and line.strip() and (config.guardrail_commands or config.guardrail_paths):
            try:
                pattern = command_rule(line, config.guardrail_commands, config.guardrail_paths, cwd, project_dir)
            except ShellSyntaxError as error:
                return line, f"{UNREADABLE}: {error}"
            if pattern is not None:
                return line, pattern
    return None


def command_rule(line: str, command_patterns: tuple[str, ...], path_patterns: tuple[str, ...], cwd: str | None,
                 project_dir: str | None) -> str | None:
    """The first pattern that a command `line` runs (or a file it writes) matches; ShellSyntaxError if it cannot be
    read."""
    rules = [_Rule(pattern) for pattern in command_patterns]
    roots = project_roots(cwd, project_dir) if path_patterns else []
    real_dirs: dict[str, str] = {}
    here = cwd
    for words, command in _runs(commands(line), 0):
        for rule in rules:
            if rule.matches(words):
                return rule.pattern
        if path_patterns:
            if words[0] in ("cd", "pushd") and command is not None:
                here = changed_dir(here, words)
            for path in written(words, command):
                for pattern in path_patterns:
                    if path_matches(path, pattern, here, roots, real_dirs):
                        return pattern
    return None


def _runs(found: list[Command], depth: int,
          aliases: dict[str, str] | None = None) -> Iterator[tuple[list[str], Command | None]]:
    """Each command as written, then as each wrapper or alias runs it, then what the strings it hands a shell run.
    `aliases` are those defined earlier on the line (Claude Code's shell expands them, on the lines after)."""
    if depth > MAX_NESTING:
        raise ShellSyntaxError(f"wrappers and shells nested deeper than {MAX_NESTING}")
    aliases = {} if aliases is None else aliases
    for command in found:
        words = command.words
        outer: Command | None = command  # redirections belong to the command as written
        while words:
            yield words, outer
            outer = None
            if words[0] == "alias":
                aliases.update(word.partition("=")[::2] for word in words[1:] if "=" in word and is_known(word))
            elif words[0] in aliases:  # not again inside its own expansion, as the shell does
                inner_aliases = {name: value for name, value in aliases.items() if name != words[0]}
                line = " ".join([aliases[words[0]], *words[1:]])
                yield from _runs(commands(line, depth + 1), depth + 1, inner_aliases)
            inner, code = _unwrap(words, command)
            if code is not None:
                if is_known(words[0]):
                    yield from _runs(commands(code, depth + 1), depth + 1, aliases)
                else:  # `$0 -c '...'`, `$SHELL -c`: a shell if the string reads as a command line
                    yield from _maybe_runs(code, depth + 1, aliases)
            if inner is None:
                break
            words = inner


def _maybe_runs(code: str, depth: int, aliases: dict[str, str]) -> Iterator[tuple[list[str], Command | None]]:
    try:
        found = commands(code, depth)
    except ShellSyntaxError:
        return
    yield from _runs(found, depth, aliases)


def _unwrap(words: list[str], command: Command) -> tuple[list[str] | None, str | None]:
    """(the command a wrapper runs, a string it runs as a command line), either None."""
    name = base(words[0])
    args = words[1:]
    if not is_known(name):  # an unknown program given `-c STRING` may be a shell
        return None, _shell_code(args, command) if args else None
    if name in _RUNS_STRING:
        string = _string_option(args, _RUNS_STRING[name])
        if string is not None or name not in _WRAPPERS:
            return None, string
    if name == "parallel":
        return _parallel(args)
    if name in _WRAPPERS:
        value_short, value_long, operands = _WRAPPERS[name]
        index, code = 0, None
        while index < len(args):
            word = args[index]
            if word == "--":
                index += 1
                break
            if name == "env" and "=" in word and not word.startswith("-"):
                index += 1
                continue
            if word.startswith("--") and len(word) > 2:
                flag, equals, value = word.partition("=")
                takes = flag in value_long
                if name == "env" and flag == "--split-string":
                    code = value if equals else (args[index + 1] if index + 1 < len(args) else None)
                index += 2 if takes and not equals else 1
                continue
            if word.startswith("-") and len(word) > 1 and not (name == "nice" and word[1:].isdigit()):
                for position, letter in enumerate(word[1:], 1):
                    if letter in value_short:
                        value = word[position + 1:] or (args[index + 1] if index + 1 < len(args) else "")
                        if name == "env" and letter == "S":
                            code = value
                        index += 1 if word[position + 1:] else 2
                        break
                else:
                    index += 1
                continue
            if name == "nice" and word.lstrip("-+").isdigit():
                index += 1
                continue
            break
        rest = args[index + operands:]
        if name == "watch" and rest:
            return None, " ".join(rest)
        if name == "xargs" and rest:
            replace = _xargs_replace(args[:index])  # `-I{}`: each word holding it becomes what is read
            rest = [OPAQUE if replace and replace in word else word for word in rest]
            rest = [*rest, OPAQUE]  # the words it reads from its input (file names, as a rule)
        return (rest or None), code
    if name in _SHELLS:
        return None, _shell_code(args, command)
    if name == "trap" and len(args) >= 2 and not args[0].startswith("-"):  # trap 'CODE' SIGNAL...: run later
        return None, args[0] if is_known(args[0]) else None
    if name == "eval":
        return None, " ".join(args) if args and all(is_known(word) for word in args) else None
    if name == "find":
        for index, word in enumerate(args):
            if word in _FIND_EXEC:
                rest = args[index + 1:]
                end = next((at for at, item in enumerate(rest) if item in (";", "+")), len(rest))
                inner = [OPAQUE if item == "{}" else item for item in rest[:end]]
                return inner or None, None
    return None, None


def _string_option(args: list[str], letter: str) -> str | None:
    """The command line given to `su -c STRING` (also `-cSTRING`, `-lc STRING`, `--command[=]STRING`)."""
    for index, word in enumerate(args):
        following = args[index + 1] if index + 1 < len(args) else None
        if word.startswith("--command"):
            flag, equals, value = word.partition("=")
            if flag == "--command":
                return value if equals else following
        elif word.startswith("-") and not word.startswith("--") and letter in word:
            at = word.index(letter)
            return word[at + 1:] or following
    return None


def _xargs_replace(options: list[str]) -> str | None:
    """The string `xargs -I STRING` (`-ISTRING`, `--replace[=STRING]`, `-i`) replaces, if any."""
    for index, word in enumerate(options):
        if word == "-I" and index + 1 < len(options):
            return options[index + 1]
        if word.startswith("-I") and len(word) > 2:
            return word[2:]
        if word == "-i" or word == "--replace":
            return "{}"
        if word.startswith("--replace=") or word.startswith("-i"):
            return word.partition("=")[2] or word[2:] or "{}"
    return None


def _parallel(args: list[str]) -> tuple[list[str] | None, str | None]:
    """`parallel [options] COMMAND ::: ARGS` runs COMMAND with each; with no COMMAND, each ARG is a command line."""
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] not in (":::", "::::"):
        index += 2 if args[index] in ("-j", "-S", "--jobs", "-a", "--arg-file") else 1
    rest = args[index:]
    end = next((at for at, word in enumerate(rest) if word in (":::", "::::", ":::+")), len(rest))
    if end:  # `{}`, `{.}`, `{1}`...: replaced by what is read
        return [*(OPAQUE if "{" in word and "}" in word else word for word in rest[:end]), OPAQUE], None
    inputs = [word for word in rest[end + 1:] if word not in (":::", "::::", ":::+")]
    return None, "\n".join(inputs) if inputs and all(map(is_known, inputs)) else None


def _shell_code(args: list[str], command: Command) -> str | None:
    """The command line a shell runs: its `-c` string, or its input when it reads one (a script file: None)."""
    index = 0
    string_next = False
    while index < len(args):
        word = args[index]
        if word in ("--", "-"):
            index += 1
            break
        if word.startswith("--"):
            index += 2 if word in ("--rcfile", "--init-file") else 1
            continue
        if word[:1] in "-+" and len(word) > 1:
            letters = word[1:]
            string_next = string_next or "c" in letters
            index += 2 if any(letter in _SHELL_VALUE_OPTIONS for letter in letters) else 1
            continue
        break
    rest = args[index:]
    if string_next:
        return rest[0] if rest and is_known(rest[0]) else None
    if not rest:
        return command.stdin
    return None


class _Rule:
    """One command pattern, read as words: name, short flags, long flags, other words."""

    __slots__ = ("long", "name", "open_end", "operands", "pattern", "short")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        words = pattern.split()
        self.name = words[0]
        same = _SAME_FLAG.get(base(self.name), {})
        self.short: set[str] = set()
        self.long: list[str] = []
        self.operands: list[str] = []
        for word in words[1:]:
            if word.startswith("--") and len(word) > 2:
                alias = same.get(word)
                if alias:
                    self.short.add(alias)
                else:
                    self.long.append(word)
            elif word.startswith("-") and len(word) > 1 and word[1] not in "*?[":
                self.short.update(same.get(letter, letter) for letter in word[1:])
            else:
                self.operands.append(word)
        self.open_end = pattern.endswith("*")

    def matches(self, words: list[str]) -> bool:
        if all(map(is_known, words)) and glob_match(" ".join(words), self.pattern):
            return True  # the pattern as a plain glob, as guardrails were matched before commands were parsed
        name = words[0] if "/" in self.name else base(words[0])
        if is_known(name) and not glob_match(name, self.name):
            return False
        if len(words) == 1 and UNKNOWN in words[0]:  # `$CMD`, `"$@"`: it may be this whole command
            return True
        same = _SAME_FLAG.get(base(self.name), {})
        short: set[str] = set()
        long: list[str] = []
        operands: list[tuple[str, bool]] = []  # (word, may be a flag's value)
        wild = False
        options_end = False
        after_flag = False
        for word in words[1:]:
            if not is_known(word):
                wild = wild or UNKNOWN in word  # an unquoted unknown may be flags; a quoted one or a glob, not
                operands.append((word, True))
                after_flag = False
            elif options_end or word == "-" or not word.startswith("-"):
                operands.append((word, after_flag))
                after_flag = False
            elif word == "--":
                options_end = True
            elif word.startswith("--"):
                flag, equals, _ = word.partition("=")
                alias = same.get(flag) or same.get(_unique_prefix(flag, same))
                if alias:
                    short.add(alias)
                else:
                    long.append(flag)
                after_flag = not equals
            else:
                short.update(same.get(letter, letter) for letter in word[1:])
                after_flag = True
        if not wild and (not self.short <= short or
                         not all(any(_long_match(flag, want) for flag in long) for want in self.long)):
            return False
        return self._operands_match(operands)

    def _operands_match(self, operands: list[tuple[str, bool]]) -> bool:
        """The pattern's words in order among the command's, skipping only words that may be a flag's value."""
        wanted = self.operands
        count = len(wanted)
        states = {0}
        for word, skippable in operands:
            known = is_known(word)
            reached: set[int] = set()
            for state in states:
                if state < count and (not known or glob_match(word, wanted[state])):
                    reached.add(state + 1)
                if skippable or not known or (state == count and self.open_end):
                    reached.add(state)
            states = reached
            if not states:
                return False
        return count in states


def _long_match(flag: str, want: str) -> bool:
    """A long flag as written matches the pattern's: by glob, or as a start of it (`--har` is `--hard`: GNU and git
    take any unambiguous start of a long option)."""
    return glob_match(flag, want) or (len(flag) > 2 and want.startswith(flag))


def _unique_prefix(flag: str, same: dict[str, str]) -> str:
    """The one long option of `same` that `flag` starts (`--rec` is `--recursive`), else ""."""
    found = [option for option in same if option.startswith("--") and len(flag) > 2 and option.startswith(flag)]
    return found[0] if len(found) == 1 else ""
