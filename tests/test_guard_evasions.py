"""Guardrail patterns catch the same command written another way (issue 16, item 8): a table of evasions that must
be held, plain calls that must not be, the lines that cannot be read (held: the guard fails closed), and the limits
that no pattern can catch (listed in the README and docs/design.md)."""

from __future__ import annotations

import fnmatch
import io
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from popkit_power.config import Config
from popkit_power.globs import glob_match
from popkit_power.hook import entry as hook
from popkit_power.hook.guard_rules import UNREADABLE, matching_rule
from popkit_power.session import start_session
from popkit_power.shell import ShellSyntaxError, commands

CONFIG = Config(guardrail_commands=["git push*", "rm -rf *", "terraform apply*", "git reset --hard*"],
                guardrail_paths=["*.env", "migrations/*"])
PUSH, RM, APPLY, ENV, MIGRATIONS = "git push*", "rm -rf *", "terraform apply*", "*.env", "migrations/*"
RESET = "git reset --hard*"

#: (command line, the pattern it must match): 80 ways of writing what a guardrail names
EVASIONS: list[tuple[str, str]] = [
    ("git  push", PUSH), ("git\tpush origin", PUSH), ("sleep 0 & git push", PUSH), ("(git push)", PUSH),
    ("$(git push)", PUSH), ("echo $(git push)", PUSH), ("echo `git push`", PUSH), ("FOO=1 git push", PUSH),
    ("FOO=1 BAR='a b' git push", PUSH), ("env git push", PUSH), ("env -i PATH=/usr/bin git push", PUSH),
    ("command git push", PUSH), ("sudo git push", PUSH), ("sudo -u deploy -E git push", PUSH),
    ("nohup git push &", PUSH), ("time git push", PUSH), ("time -p git push", PUSH), ("nice -n 10 git push", PUSH),
    ("nice -5 git push", PUSH), ("exec git push", PUSH), ("echo origin | xargs git push", PUSH),
    ("xargs -n 1 -P 2 git push < remotes", PUSH), ("bash -c 'git push'", PUSH), ('sh -c "git push origin main"', PUSH),
    ("bash -lc 'cd app && git push'", PUSH), ("bash -x -c 'git push'", PUSH), ("eval git push", PUSH),
    ("eval 'git push --force'", PUSH), ("true\ngit push", PUSH), ("true && git push", PUSH),
    ("false || git push", PUSH), ("ls | git push", PUSH), ("/usr/bin/git push", PUSH), ("g\\it push", PUSH),
    ("'git' push", PUSH), ('"git" "push"', PUSH), ("gi''t pu\"\"sh", PUSH), ("git \\\n push", PUSH),
    ("G=git; $G push", PUSH), ("P='git push'; $P", PUSH), ("export G=git; ${G} push", PUSH),
    ("$'git' $'\\x70ush'", PUSH), ("{git,push}", PUSH), ("git -C /repo push", PUSH),
    ("git -c core.askPass=x push", PUSH), ("git --git-dir=.git push", PUSH), ("git --no-pager push", PUSH),
    ("if true; then git push; fi", PUSH), ("for r in a b; do git push $r; done", PUSH),
    ("while false; do :; done; git push", PUSH), ("{ git push; }", PUSH), ("f() { git push; }; f", PUSH),
    ("function f { git push; }", PUSH), ("case x in *) git push;; esac", PUSH), ("bash <<'EOF'\ngit push\nEOF", PUSH),
    ("echo 'git push' | sh", PUSH), ("printf 'git push' | bash", PUSH), ("sh <<< 'git push'", PUSH),
    ("cat <<EOF\n$(git push)\nEOF", PUSH), ('echo "$(git push)"', PUSH), ("diff <(git push) /dev/null", PUSH),
    ("timeout 60 git push", PUSH), ("timeout -s KILL 60 git push", PUSH), ("stdbuf -oL git push", PUSH),
    ("find . -maxdepth 0 -exec git push \\;", PUSH), ("watch -n 5 git push", PUSH), ("su -c 'git push' deploy", PUSH),
    ("env -S 'git push'", PUSH), ("! git push", PUSH), ("x=$(git push)", PUSH), ("[ -d .git ] && git push", PUSH),
    ("echo ${X:-$(git push)}", PUSH), ("$GIT push", PUSH), ("git $SUBCOMMAND", PUSH),
    ("sudo sh -c 'nohup git push'", PUSH), ("git${IFS}push", PUSH), ("trap 'git push' EXIT", PUSH),
    ("busybox sh -c 'git push'", PUSH), ("script -qc 'git push' /dev/null", PUSH), ("\\git push", PUSH),
    ("rm -fr build", RM), ("rm -r -f build", RM), ("rm -Rf build", RM), ("rm --recursive --force build", RM),
    ("rm build -rf", RM), ("/bin/rm -rf build", RM), ("rm -rfv build", RM), ("sudo rm -rf /", RM),
    ("find . -name x -exec rm -rf {} +", RM), ("echo build | xargs rm -rf", RM), ("F=-rf; rm $F build", RM),
    ("rm -rf -- -build", RM), ("rm $OPTS build", RM), ("rm `flags` build", RM),
    ("cd infra && terraform apply -auto-approve", APPLY),
    ("echo x > migrations/0001.py", MIGRATIONS), ("cd src && echo x >> ../migrations/0001.py", MIGRATIONS),
    ("rm ./migrations/0001.py", MIGRATIONS), ("tee /repo/migrations/x.py < in", MIGRATIONS),
    ("sed -i s/a/b/ migrations/x.py", MIGRATIONS), ("mv draft.py migrations/", MIGRATIONS), ("cp new.env .env", ENV),
    ("echo KEY=1 >| config/prod.env", ENV), ("dd if=/dev/zero of=prod.env", ENV),
    # found by the attack on the merged guard (each passed before)
    ("alias g=git\ng push", PUSH), ("alias p='git push'\np", PUSH), ("coproc P { git push; }", PUSH),
    ("IFS=,; x=git,push; $x", PUSH), ("$0 -c 'git push'", PUSH), ("$SHELL -c 'git push'", PUSH),
    ('set -- git push; "$@"', PUSH), ('a=(git push); "${a[@]}"', PUSH), ("$CMD", PUSH),
    ("flock /tmp/l -c 'git push'", PUSH), ("su -c'git push'", PUSH), ("su --command='git push'", PUSH),
    ("script --command='git push' /dev/null", PUSH), ("sg deploy -c 'git push'", PUSH),
    ("strace -f -o log git push", PUSH), ("unshare -r git push", PUSH), ("chrt -f 1 git push", PUSH),
    ("runuser -u deploy -- git push", PUSH), ("fakeroot git push", PUSH), ("faketime now git push", PUSH),
    ("xvfb-run git push", PUSH), ("firejail git push", PUSH), ("systemd-run --user git push", PUSH),
    ("pkexec git push", PUSH), ("parallel git push ::: origin", PUSH), ("parallel ::: 'git push'", PUSH),
    ("fish -c 'git push'", PUSH), ("rbash -c 'git push'", PUSH), ("tcsh -c 'git push'", PUSH),
    ("git reset --har", RESET), ("git reset --ha HEAD~1", RESET), ("git -c a=b reset --hard", RESET),
    ("rm --rec --forc build", RM), ("rm -r --f build", RM),
    ("{ echo; } > migrations/x.py", MIGRATIONS), ("(echo) > migrations/x.py", MIGRATIONS), ("> .env", ENV),
    ("for f in a; do echo $f; done > .env", ENV), ("echo > $HOME/.env", ENV), ("echo > migrations/$x", MIGRATIONS),
    ("cp --target-directory=migrations a.py", MIGRATIONS), ("sed --in-place s/a/b/ migrations/x.py", MIGRATIONS),
    ("sed --in-place=.bak s/a/b/ prod.env", ENV), ("awk -i inplace 1 prod.env", ENV),
    ("git checkout -- migrations/x.py", MIGRATIONS), ("git restore migrations/x.py", MIGRATIONS),
    ("git checkout HEAD .env", ENV), ("git rm migrations/x.py", MIGRATIONS), ("git mv a.py migrations/", MIGRATIONS),
    ("patch migrations/x.py < fix.diff", MIGRATIONS), ("pushd migrations && rm x.py", MIGRATIONS),
    ("find migrations -delete", MIGRATIONS), ("rsync -a new/ migrations/", MIGRATIONS),
    ("sort -o prod.env a", ENV), ("curl -o prod.env http://x", ENV), ("wget -O prod.env http://x", ENV),
    ("echo x 1<>prod.env", ENV), ("cat <<EOF | sh\ngit push\nEOF", PUSH), ("cat <<EOF | bash\ngit push", PUSH),
    ("printf '%s\\n' 'git push' | sh", PUSH), ("xargs -I{} git {} <<< push", PUSH),
    ("echo push | xargs -I % git %", PUSH), ("echo push | xargs --replace git {}", PUSH),
    ("echo push | parallel git {}", PUSH),
]

#: (tool, file, folder of the call, the pattern it must match): the same file named another way
PATH_EVASIONS: list[tuple[str, str, str, str]] = [
    ("Edit", "./migrations/x.py", "/repo", MIGRATIONS),
    ("Edit", "/repo/migrations/x.py", "/repo/src", MIGRATIONS),  # an absolute path from a subfolder
    ("Write", "../migrations/x.py", "/repo/src", MIGRATIONS),
    ("Write", "/repo/src/../migrations/x.py", "/repo/src", MIGRATIONS),
    ("MultiEdit", "migrations//x.py", "/repo", MIGRATIONS),
    ("NotebookEdit", "/repo/migrations/a/b.ipynb", "/repo/src/deep", MIGRATIONS),
    ("Write", "/repo/config/.env", "/repo", ENV), ("Edit", "prod.env", "/repo/src", ENV),
]

#: calls that do nothing a guardrail names: they must pass
PLAIN: list[tuple[str, str]] = [
    ("Bash", "git status"), ("Bash", "git log --oneline -5"), ("Bash", "echo 'git push'"), ("Bash", "echo git push"),
    ("Bash", "git commit -m 'push the fix'"), ("Bash", "grep -r 'git push' docs"), ("Bash", "cat push.txt"),
    ("Bash", "rm build.log"), ("Bash", "rm -f build.log"), ("Bash", "rm -r build"), ("Bash", "ls -lrf"),
    ("Bash", "npm run build"), ("Bash", "printf '%s\\n' 'rm -rf /'"), ("Bash", "python -c 'print(\"git push\")'"),
    ("Bash", "# git push"), ("Bash", "echo \"rm -rf /\" > notes.txt"), ("Bash", "cat migrations/0001.py"),
    ("Bash", "git diff migrations/"), ("Bash", "git pull && pytest -q"), ("Bash", "terraform plan"),
    ("Bash", "ls *.py | wc -l"), ("Bash", "for f in *.py; do echo $f; done"), ("Bash", "git log --grep=push"),
    ("Bash", "echo $(date) > build/stamp"), ("Bash", "case $x in push) echo hi;; esac"),
    ("Bash", 'rm -f "$tmp"'), ("Bash", "find . -name '*.pyc' | xargs rm -f"), ("Bash", "rm -f *.log"),
    ("Bash", "git log \"$(git rev-parse HEAD)\""), ("Edit", "/repo/src/migrations_helper.py"),
    ("Edit", "/elsewhere/migrations/x.py"), ("Read", "/repo/.env"),
    ("Write", "/repo/src/env.py"),
    # beside the evasions found by the attack: what they must not catch
    ("Bash", "git reset --soft HEAD~1"), ("Bash", "git checkout -b feature"), ("Bash", "rm -r --verbose build"),
    ("Bash", "find . -name '*.pyc' -delete"), ("Bash", "alias ls='ls --color'\nls"), ("Bash", "$PYTHON -c 'print(1)'"),
    ("Bash", '"$EDITOR" notes.md'), ("Bash", "$(which python) script.py"), ("Bash", "git rm --cached build.log"),
    ("Bash", "pushd src && rm -f x.log"), ("Bash", 'echo "$@"'), ("Bash", "git restore --staged src/a.py"),
    ("Bash", "rsync -a src/ build/"), ("Bash", "parallel echo ::: a b"), ("Bash", "{ echo a; } > build/out"),
    ("Bash", "echo x > $TMPDIR/out"), ("Bash", "IFS=, read a b <<< 'x,y'"), ("Bash", "cat <<EOF | sh\nls\nEOF"),
]

#: what no pattern can catch: code built or stored at run time (docs: "what guardrails cannot see")
LIMITS = [
    "echo Z2l0IHB1c2g= | base64 -d | sh",
    "printf 'git push' > push.sh; sh push.sh",
    "python -c 'import os; os.system(\"git push\")'",
    "git -c alias.p=push p",
    "make deploy",
    "ssh deploy@host git push",
    "X=$(printf 'git push'); eval \"$X\"",
    "source <(echo git push)", "git apply fix.diff", "patch -p1 < fix.diff", "vim -c wq .env", "git send-pack origin",
]

UNREADABLE_LINES = ["echo 'unclosed", "(git status", "echo $(git status", "git status )", "cat <(ls", "a=(;)"]


def test_the_tables_are_as_long_as_promised() -> None:
    assert len(EVASIONS) + len(PATH_EVASIONS) >= 60 and len(PLAIN) >= 25


@pytest.mark.parametrize(("line", "pattern"), EVASIONS)
def test_every_way_of_writing_a_guarded_command_is_held(line: str, pattern: str) -> None:
    assert matching_rule(CONFIG, "Bash", {"command": line}, "/repo", "/repo") == (line, pattern)


@pytest.mark.parametrize(("tool", "path", "cwd", "pattern"), PATH_EVASIONS)
def test_every_way_of_naming_a_guarded_file_is_held(tool: str, path: str, cwd: str, pattern: str) -> None:
    field = "notebook_path" if tool == "NotebookEdit" else "file_path"
    assert matching_rule(CONFIG, tool, {field: path}, cwd, "/repo") == (path, pattern)


@pytest.mark.parametrize(("tool", "subject"), PLAIN)
def test_calls_that_do_nothing_guarded_pass(tool: str, subject: str) -> None:
    tool_input = {"command": subject} if tool == "Bash" else {"file_path": subject}
    assert matching_rule(CONFIG, tool, tool_input, "/repo", "/repo") is None


@pytest.mark.parametrize("line", LIMITS)
def test_the_documented_limits_are_what_they_say(line: str) -> None:
    assert matching_rule(CONFIG, "Bash", {"command": line}, "/repo", "/repo") is None
    docs = (Path(__file__).parents[1] / "README.md").read_text() + \
        (Path(__file__).parents[1] / "docs" / "design.md").read_text()
    assert "base64 -d | sh" in docs and "script written and then run" in docs


@pytest.mark.parametrize("line", UNREADABLE_LINES)
def test_a_line_that_cannot_be_read_is_held(line: str) -> None:
    with pytest.raises(ShellSyntaxError):
        commands(line)
    match = matching_rule(CONFIG, "Bash", {"command": line}, "/repo", "/repo")
    assert match is not None and match[1].startswith(UNREADABLE)


def test_an_unreadable_line_passes_where_no_guardrail_could_apply() -> None:
    assert matching_rule(Config(guardrail_paths=["*.env"], guardrail_commands=[]), "Edit",
                         {"file_path": "/repo/a.py"}, "/repo") is None
    assert matching_rule(Config(), "Bash", {"command": "echo 'unclosed"}, "/repo") is None


def test_a_path_through_a_symlink_and_from_a_git_work_tree_is_held(tmp_path: Path) -> None:
    """With no CLAUDE_PROJECT_DIR, relative patterns are read from the git work tree the call runs in; a path that
    reaches a guarded folder through a symlink is held too."""
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "migrations").mkdir()
    (repo / ".git").mkdir()
    (repo / "src" / "m").symlink_to(repo / "migrations")
    for path in (str(repo / "migrations" / "x.py"), "m/x.py", "../migrations/x.py"):
        assert matching_rule(CONFIG, "Write", {"file_path": path}, str(repo / "src")) == (path, MIGRATIONS)
    assert matching_rule(CONFIG, "Bash", {"command": "echo x > m/x.py"}, str(repo / "src")) is not None
    assert matching_rule(CONFIG, "Write", {"file_path": "x.py"}, str(repo / "src")) is None


def test_the_hook_process_holds_an_evasion_and_a_line_it_cannot_read(tmp_path: Path) -> None:
    home = tmp_path / "power"
    home.mkdir()
    (home / "config.json").write_text('{"guardrail_commands": ["git push*"]}')
    session = start_session(str(home), "Ship it", sender="human")

    def pre_tool_use(command: str) -> dict[str, Any] | None:
        payload = {"session_id": "c0ffee00-1111-2222-3333-444455556666", "cwd": "/repo",
                   "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": command}}
        reply = hook.run(io.BytesIO(orjson.dumps(payload)), session.power_dir, {})
        return None if reply is None else orjson.loads(reply)["hookSpecificOutput"]

    held = pre_tool_use("cd app; FOO=1 env git  push --force")
    assert held is not None and "'git push*'" in held["permissionDecisionReason"]
    unreadable = pre_tool_use("echo 'unclosed")
    assert unreadable is not None and "cannot be read as a shell command line" in \
        unreadable["permissionDecisionReason"] and "unclosed single quote" in unreadable["permissionDecisionReason"]
    assert pre_tool_use("git status") is None


@pytest.mark.slow
def test_the_glob_matcher_agrees_with_fnmatchcase() -> None:
    """globs.py replaces fnmatch on the hook's path (no `re` import): the same answer on 100,000 random cases over
    an alphabet of wildcards, brackets, ranges and slashes."""
    rng = random.Random(16)
    for _ in range(100_000):
        pattern = "".join(rng.choice("ab/*?[]!-c") for _ in range(rng.randint(0, 7)))
        text = "".join(rng.choice("ab/c[]!-*?") for _ in range(rng.randint(0, 7)))
        assert glob_match(text, pattern) == fnmatch.fnmatchcase(text, pattern), (text, pattern)


@pytest.mark.parametrize("line", [
    "echo " + "{a,b}" * 30,  # 2**30 words
    "( " * 5000 + "git status" + " )" * 5000,  # nesting past MAX_DEPTH
    "echo $(" * 500 + "x" + ")" * 500,
    "case x in a) " * 500 + "ls" + " ;; esac" * 500,
    "x" * 1_000_001,  # past MAX_LINE_CHARS
    "a=xx; " + "a=$a$a; " * 40 + "echo $a",  # a value doubled 40 times (2**41 characters: it hung the hook)
    "a=" + "x" * 500_000 + "; echo" + " $a" * 20,  # 10,000,000 characters made of a 500,000-character line
])
def test_a_hostile_line_is_refused_not_read_for_ever(line: str) -> None:
    """Lines built to make the parser slow or deep end in ShellSyntaxError (held as unreadable), never in a
    RecursionError or a hook that outlives Claude Code's timeout (which would let the call through)."""
    with pytest.raises(ShellSyntaxError):
        commands(line)


def test_a_word_of_many_brackets_is_read_in_one_pass() -> None:
    """200,000 `[` without a `]` (each would scan the rest of the word: 2*10**10 steps) is one plain word."""
    [command] = commands("echo " + "[" * 200_000 + " x[a]")
    assert command.words[1] == "[" * 200_000 and not command.words[2].isprintable()


def test_random_lines_are_read_or_refused_never_looped_on() -> None:
    """Fuzzing found `a=(;)`, `for x in (` and `case x in a) )` looping for ever (the hook outlived Claude Code's
    timeout, which lets the call through). 5,000 random lines of shell pieces each end: read, or refused."""
    rng = random.Random(21)
    pieces = ["for x in ", "case x in ", "a=(", "git", "push", " ", "'", '"', "$", "(", ")", "{", "}", "`", "\\",
              "\n", ";", "|", "&", "<", ">", "<<", "EOF", "=", "-", "*", "[", "]", "#", "alias ", "xargs -I{} ",
              "IFS=,", ",", "$@", "coproc ", "cd ", "esac", ";;", "do ", "done", "0", "\t", "!"]
    for _ in range(5000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 25)))
        try:
            matching_rule(CONFIG, "Bash", {"command": line}, "/repo", "/repo")
        except ShellSyntaxError:  # pragma: no cover (matching_rule turns it into a match)
            raise AssertionError(line) from None
