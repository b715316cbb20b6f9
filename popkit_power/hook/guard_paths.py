"""Which files a Bash command writes, and whether a path matches a guardrail path pattern (guard_rules.py uses
both).

A path pattern without `/` matches the file's name; one with `/` matches the path as given (normalized: `./` and
`..` resolved), the absolute path, the absolute path with symlinks resolved, and the path relative to the call's
working directory, to the project (`CLAUDE_PROJECT_DIR`) and to the git work tree the call runs in.

The files a command writes: its `>`, `>>`, `>|`, `&>`, `<>` targets (a compound command's too), the operands of
`rm`, `mv`, `cp`, `tee`, `touch`, `ln`, `dd of=`, `sed -i`/`--in-place`, `perl -i`, `awk -i inplace`, `patch FILE`,
`git checkout/restore/rm/mv`, `rsync`'s destination, the paths `find ... -delete` starts from, and the values of
`--target-directory=`, `sort -o`, `curl -o`, `wget -O`. A path with a part only the running shell knows
(`$HOME/.env`, `migrations/$x`) is read with that part as one plain name, so its known parts still match.

It imports no `re`: it runs in the PreToolUse hook's process.
"""

from __future__ import annotations

import os

from ..globs import glob_match
from ..shell import OPAQUE, UNKNOWN, is_known

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from ..shell import Command

#: commands whose operands are files they write or remove (`sed`, `perl` only with `-i`)
_WRITERS = frozenset({"rm", "rmdir", "unlink", "shred", "mv", "cp", "tee", "touch", "truncate", "ln", "install",
                      "chmod", "chown", "chgrp", "mkdir", "dd", "patch"})
_IN_PLACE = frozenset({"sed", "perl"})
_AWKS = frozenset({"awk", "gawk"})
#: git subcommands whose operands are files in the work tree they overwrite or remove
_GIT_WRITERS = frozenset({"checkout", "restore", "rm", "mv"})
_GIT_VALUE_OPTIONS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"})
#: command -> its options whose value is a file it writes
_OUTPUT_OPTIONS: dict[str, frozenset[str]] = {
    "sort": frozenset({"-o", "--output"}), "curl": frozenset({"-o", "--output"}),
    "wget": frozenset({"-O", "--output-document"}), "unzip": frozenset({"-d"}),
}


def changed_dir(here: str | None, words: list[str]) -> str | None:
    """The folder after `cd`/`pushd` WORDS run in `here` (None: not known)."""
    target = [word for word in words[1:] if not word.startswith("-")]
    if not target:
        return os.environ.get("HOME") if words[0] == "cd" else here
    if not is_known(target[0]) or target[0] == "-":
        return None
    return os.path.normpath(os.path.join(here, target[0])) if here else None


def written(words: list[str], command: Command | None) -> Iterator[str]:
    """The files this command writes or removes, where it says so plainly."""
    if command is not None:
        yield from map(_plain, command.redirects)
    name = base(words[0])
    args = words[1:]
    operands = [_plain(word) for word in args if not word.startswith("-")]
    for index, word in enumerate(args):
        flag, equals, value = word.partition("=")
        if flag == "--target-directory" and equals:
            yield _plain(value)
        elif word in _OUTPUT_OPTIONS.get(name, ()) and index + 1 < len(args):
            yield _plain(args[index + 1])
        elif equals and flag in _OUTPUT_OPTIONS.get(name, ()):
            yield _plain(value)
    if name == "dd":
        yield from (word[3:] for word in operands if word.startswith("of="))
    elif name in _WRITERS or (name in _IN_PLACE and any(
            (word.startswith("-") and not word.startswith("--") and "i" in word) or word.startswith("--in-place")
            for word in args)) or (name in _AWKS and "inplace" in args):
        yield from operands
    elif name == "git":
        yield from _git_written(args)
    elif name == "rsync" and len(operands) > 1:
        yield operands[-1]
    elif name == "find" and "-delete" in args:
        for word in args:
            if word.startswith("-") or word in ("(", "!"):
                break
            yield _plain(word)


def _git_written(args: list[str]) -> Iterator[str]:
    """`git [options] checkout|restore|rm|mv ... FILES`: the files (a branch name among them matches nothing)."""
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in _GIT_VALUE_OPTIONS else 1
    if index < len(args) and args[index] in _GIT_WRITERS:
        yield from (_plain(word) for word in args[index + 1:] if not word.startswith("-"))


def _plain(path: str) -> str:
    """A path with the parts only the running shell knows read as one plain name (`$HOME/.env` is `x/.env`)."""
    return path if is_known(path) else path.replace(UNKNOWN, "x").replace(OPAQUE, "x")


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


def base(word: str) -> str:
    """A command's name without its folder (`/usr/bin/git` is `git`)."""
    return word.rsplit("/", 1)[-1]
