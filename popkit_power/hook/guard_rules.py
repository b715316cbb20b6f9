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

Paths. A path pattern without `/` matches the file's name; one with `/` matches the path as given (normalized: `./`
and `..` resolved), the absolute path, the absolute path with symlinks resolved, and the path relative to the
call's working directory, to the project (`CLAUDE_PROJECT_DIR`) and to the git work tree the call runs in. In a
Bash call, the files a command writes are checked too: `>` and `>>` targets, and the operands of `rm`, `mv`, `cp`,
`tee`, `touch`, `sed -i` and the like, each against the directory the line has `cd`'d to.

This runs in the PreToolUse hook's process only, and imports no `re` (globs.py matches the patterns).
"""

from __future__ import annotations

import os

from ..conflicts import WRITE_TOOLS
from ..globs import glob_match
from ..shell import OPAQUE, UNKNOWN, Command, ShellSyntaxError, commands, is_known

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
}
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash"})
_SHELL_VALUE_OPTIONS = frozenset({"o", "O"})
_RUNS_STRING = {"su": "c", "runuser": "c", "script": "c", "flock": "c"}  # `su -c STRING`: STRING is a command line
_FIND_EXEC = frozenset({"-exec", "-execdir", "-ok", "-okdir"})
#: per command, flags that mean the same: written as one short letter before flags are compared
_SAME_FLAG: dict[str, dict[str, str]] = {
    "rm": {"R": "r", "--recursive": "r", "--force": "f", "--dir": "d"},
    "cp": {"R": "r", "--recursive": "r", "--force": "f"},
    "git": {"--force": "f", "--delete": "d", "--all": "a"},
    "chmod": {"--recursive": "R"}, "chown": {"--recursive": "R"},
}
#: commands whose operands are files they write or remove (`sed`, `perl` only with `-i`)
_WRITERS = frozenset({"rm", "rmdir", "unlink", "shred", "mv", "cp", "tee", "touch", "truncate", "ln", "install",
                      "chmod", "chown", "chgrp", "mkdir", "dd"})
_IN_PLACE = frozenset({"sed", "perl"})


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
            if words[0] == "cd" and command is not None:
                here = _cd(here, words)
            for path in _written(words, command):
                for pattern in path_patterns:
                    if path_matches(path, pattern, here, roots, real_dirs):
                        return pattern
    return None


def _runs(found: list[Command], depth: int) -> Iterator[tuple[list[str], Command | None]]:
    """Each command as written, then as each wrapper runs it, then what the strings it hands a shell run."""
    if depth > MAX_NESTING:
        raise ShellSyntaxError(f"wrappers and shells nested deeper than {MAX_NESTING}")
    for command in found:
        words = command.words
        outer: Command | None = command  # redirections belong to the command as written
        while words:
            yield words, outer
            outer = None
            inner, code = _unwrap(words, command)
            if code is not None:
                yield from _runs(commands(code, depth + 1), depth + 1)
            if inner is None:
                break
            words = inner


def _unwrap(words: list[str], command: Command) -> tuple[list[str] | None, str | None]:
    """(the command a wrapper runs, a string it runs as a command line), either None."""
    name = _base(words[0])
    args = words[1:]
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
            rest = [*rest, OPAQUE]  # the words it reads from its input (file names, as a rule)
        return (rest or None), code
    if name in _SHELLS:
        return None, _shell_code(args, command)
    if name == "trap" and len(args) >= 2 and not args[0].startswith("-"):  # trap 'CODE' SIGNAL...: run later
        return None, args[0] if is_known(args[0]) else None
    if name == "eval":
        return None, " ".join(args) if args and all(is_known(word) for word in args) else None
    if name in _RUNS_STRING:
        letter = _RUNS_STRING[name]
        for index, word in enumerate(args[:-1]):
            if word in (f"-{letter}", "--command") or (word.startswith("-") and not word.startswith("--") \
                    and word.endswith(letter)):
                return None, args[index + 1]
        return None, None
    if name == "find":
        for index, word in enumerate(args):
            if word in _FIND_EXEC:
                rest = args[index + 1:]
                end = next((at for at, item in enumerate(rest) if item in (";", "+")), len(rest))
                inner = [OPAQUE if item == "{}" else item for item in rest[:end]]
                return inner or None, None
    return None, None


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


def _cd(here: str | None, words: list[str]) -> str | None:
    target = [word for word in words[1:] if not word.startswith("-")]
    if not target:
        return os.environ.get("HOME")
    if not is_known(target[0]) or target[0] == "-":
        return None
    return os.path.normpath(os.path.join(here, target[0])) if here else None


def _written(words: list[str], command: Command | None) -> Iterator[str]:
    """The files this command writes or removes, where it says so plainly."""
    if command is not None:
        yield from (path for path in command.redirects if is_known(path))
    name = _base(words[0])
    operands = [word for word in words[1:] if not word.startswith("-") and is_known(word)]
    if name == "dd":
        yield from (word[3:] for word in operands if word.startswith("of="))
    elif name in _WRITERS or (name in _IN_PLACE and any(
            word.startswith("-") and not word.startswith("--") and "i" in word for word in words[1:])):
        yield from operands


class _Rule:
    """One command pattern, read as words: name, short flags, long flags, other words."""

    __slots__ = ("long", "name", "open_end", "operands", "pattern", "short")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        words = pattern.split()
        self.name = words[0]
        same = _SAME_FLAG.get(_base(self.name), {})
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
        name = words[0] if "/" in self.name else _base(words[0])
        if is_known(name) and not glob_match(name, self.name):
            return False
        same = _SAME_FLAG.get(_base(self.name), {})
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
                alias = same.get(flag)
                if alias:
                    short.add(alias)
                else:
                    long.append(flag)
                after_flag = not equals
            else:
                short.update(same.get(letter, letter) for letter in word[1:])
                after_flag = True
        if not wild and (not self.short <= short or
                         not all(any(glob_match(flag, want) for flag in long) for want in self.long)):
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


def path_matches(path: str, pattern: str, cwd: str | None, roots: list[str],
                 real_dirs: dict[str, str] | None = None) -> bool:
    """Whether a file path matches a guardrail path pattern (see the module's docstring). `real_dirs` caches the
    folders' resolved paths across the calls of one check."""
    given = os.path.normpath(path)
    absolute = given if os.path.isabs(given) else os.path.normpath(os.path.join(cwd, given)) if cwd else None
    candidates = {given}
    if absolute is not None:
        real = _real_path(absolute, {} if real_dirs is None else real_dirs)
        candidates.update((absolute, real))
        for root in roots:
            for full in (absolute, real):
                relative = os.path.relpath(full, root)
                if relative != ".." and not relative.startswith("../"):
                    candidates.add(relative)
    if "/" not in pattern:
        return any(glob_match(os.path.basename(candidate), pattern) for candidate in candidates)
    pattern = os.path.normpath(pattern) + ("/" if pattern.endswith("/") else "")
    if pattern.endswith("/"):
        pattern += "*"
    folder = pattern[:-2] if pattern.endswith("/*") else None  # a write into the guarded folder itself (`mv x dir/`)
    return any(glob_match(candidate, pattern) or candidate == folder for candidate in candidates)


def _real_path(absolute: str, real_dirs: dict[str, str]) -> str:
    """`os.path.realpath`, with the folder's part cached (a long command line names many files in few folders)."""
    folder, name = os.path.split(absolute)
    real_folder = real_dirs.get(folder)
    if real_folder is None:
        real_folder = real_dirs[folder] = os.path.realpath(folder)
    real = os.path.join(real_folder, name)
    return os.path.realpath(real) if os.path.islink(real) else real


def project_roots(cwd: str | None, project_dir: str | None) -> list[str]:
    """The folders a relative path pattern is read from: the call's folder, the project, the git work tree."""
    roots: list[str] = []
    for root in (cwd, project_dir, _work_tree(cwd)):
        if root and os.path.isabs(root):
            for form in (os.path.normpath(root), os.path.realpath(root)):
                if form not in roots:
                    roots.append(form)
    return roots


def _work_tree(cwd: str | None) -> str | None:
    """The nearest folder at or above `cwd` holding `.git` (a directory, or a worktree's file)."""
    if not cwd or not os.path.isabs(cwd):
        return None
    here = os.path.normpath(cwd)
    for _ in range(64):
        if os.path.lexists(os.path.join(here, ".git")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    return None


def _base(word: str) -> str:
    return word.rsplit("/", 1)[-1]
