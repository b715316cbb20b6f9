"""A Bash command line read as the shell reads it: every simple command it can run, as words after quote removal.

The guardrails (hook/guard_rules.py) match their patterns against these commands, so `git  push`, `(git push)`,
`sleep 0 & git push`, `$(git push)`, `g\\it push` and `G=git; $G push` all show the command `git push`; what it reads
is listed in docs/design.md ("Guardrails"). A part whose value cannot be known here (the environment, a command's
output, a glob) stays in its word as `UNKNOWN` (unquoted: it may become several words, flags too) or `OPAQUE` (one
word): a matcher takes it to be anything. A line the shell itself would refuse raises ShellSyntaxError, and the
guard fails closed on it. Written here rather than taken from bashlex or tree-sitter-bash, which failed lines the
guard must read and cost more than the hook's budget (tools/BENCHMARKS.md). The words themselves (quoting,
expansions) are read by shell_words.py. It imports nothing else: it runs in the PreToolUse hook's process.
"""

from __future__ import annotations

from .shell_words import OPAQUE, UNKNOWN, Command, ShellSyntaxError, Variables, WordReader, is_known

__all__ = ["OPAQUE", "UNKNOWN", "Command", "ShellSyntaxError", "commands", "is_known"]

MAX_COMMANDS = 2000
MAX_LINE_CHARS = 1_000_000  # parsing is linear, ~1 us a character: a longer line is refused, not read for seconds
_RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "{", "}", "!", "esac",
                       "function", "for", "select", "coproc", "in"})


def commands(line: str, depth: int = 0) -> list[Command]:
    """Every simple command `line` can run, in order of appearance; raise ShellSyntaxError if it cannot be read."""
    if len(line) > MAX_LINE_CHARS:
        raise ShellSyntaxError(f"a command line of more than {MAX_LINE_CHARS:,} characters")
    parser = _Parser(line, depth, Variables())
    parser.parse_list(None)
    return parser.found


class _Parser(WordReader):
    """Commands, lists and compound commands; the words themselves are read by WordReader (shell_words.py)."""

    __slots__ = ("heredocs",)

    def __init__(self, text: str, depth: int, variables: Variables) -> None:
        super().__init__(text, depth, variables)
        self.heredocs: list[tuple[Command, str, bool]] = []  # waiting for the next newline: (command, end, expand)

    # -- structure ---------------------------------------------------------------------------------------------

    def parse_list(self, closer: str | None) -> None:
        """Commands until `closer` (`)` or a backquote's end) or the end of the text; consumes the closer."""
        text = self.text
        previous: Command | None = None  # the command before a `|`, whose echo may feed a shell
        piped = False
        fed: list[tuple[Command, Command]] = []  # `cat <<EOF | sh`: the body is read after the line, at its newline
        while True:
            self._blanks()
            if self.pos >= len(text):
                if closer is not None:
                    raise ShellSyntaxError(f"missing {closer!r}")
                self._read_heredocs()  # an unterminated here-document at the very end: bash takes the rest
                _feed(fed)
                return
            char = text[self.pos]
            if closer is not None and text.startswith(closer, self.pos):
                self.pos += len(closer)
                _feed(fed)
                return
            if char == "\n":
                self.pos += 1
                self._read_heredocs()
                _feed(fed)
                previous, piped = None, False
                continue
            if char == "#":
                while self.pos < len(text) and text[self.pos] != "\n":
                    self.pos += 1
                continue
            if char in ";&|":
                operator = self._operator()
                piped = operator in ("|", "|&")
                if not piped:
                    previous = None
                continue
            if char == ")":
                raise ShellSyntaxError("unexpected ')'")
            if char == "(":
                self.pos += 1
                if text.startswith("(", self.pos):  # (( arithmetic ))
                    self._skip_arithmetic()
                else:  # a subshell, one level deeper (MAX_DEPTH)
                    self._substitute(")")
                previous = None
                continue
            command = self._simple_command()
            if command is not None:
                if piped and previous is not None and command.stdin is None:
                    command.stdin = _echoed(previous)
                    if command.stdin is None and previous.words in (["cat"], ["cat", "-"]):
                        fed.append((previous, command))
                previous = command
            piped = False

    def _operator(self) -> str:
        text, start = self.text, self.pos
        for operator in (";;&", ";;", ";&", "&&", "||", "|&", ";", "&", "|"):
            if text.startswith(operator, start):
                self.pos += len(operator)
                return operator
        raise ShellSyntaxError(f"unexpected {text[start]!r}")  # pragma: no cover (every first char is listed)

    def _simple_command(self) -> Command | None:
        words: list[str] = []
        redirects: list[str] = []
        command = Command(words, redirects, None)
        assignments: list[tuple[str, str]] = []
        text = self.text
        while True:
            self._blanks()
            if self.pos >= len(text) or (text[self.pos] in "\n;&|)" and not self._redirect_ahead()):
                break
            if text[self.pos] == "(":
                if len(words) == 1 and text.startswith(")", self._skip_blanks(self.pos + 1)):  # name () body
                    self.pos = self._skip_blanks(self.pos + 1) + 1
                    words.clear()
                    break
                raise ShellSyntaxError("unexpected '('")
            if text[self.pos] == "#":  # a comment, to the end of the line
                while self.pos < len(text) and text[self.pos] != "\n":
                    self.pos += 1
                continue
            if self._redirect(command):
                continue
            start = self.pos
            fields = self._word()
            raw = text[start:self.pos]
            if not words and raw in _RESERVED:
                if raw in ("for", "select"):
                    self._for_header()
                elif raw == "coproc":  # coproc [NAME] COMPOUND: a NAME before `{` or `(` is not a command
                    after = self._skip_blanks(self.pos)
                    self.pos = after
                    name = self._peek_word()
                    if name and self.text[self._skip_blanks(after + len(name)):][:1] in ("{", "("):
                        self.pos = after + len(name)
                elif raw == "function":  # function NAME [()] BODY
                    self._blanks()
                    self._word()
                    self._blanks()
                    if self.text.startswith("()", self.pos):
                        self.pos += 2
                continue
            if not words and raw == "case":
                self._case()
                return None
            if not words and raw == "[[":
                words.append("[[")
                continue
            if not words and _is_assignment(raw):
                name, _, _ = raw.partition("=")
                value = "".join(fields)[len(name) + 1:]
                if text.startswith("(", self.pos):  # name=( array )
                    self.pos += 1
                    self.parse_words_until(")")
                    value = UNKNOWN
                assignments.append((name.rstrip("+"), value))
                continue
            words.extend(fields)
        if not words:
            for name, value in assignments:
                self._assign(name, value)
            if not redirects:
                return None
            words.append(":")  # `> file` alone, or a compound command's `{ ...; } > file`: it writes the file

        if words[0] in ("export", "declare", "typeset", "local", "readonly"):
            for word in words[1:]:
                if _is_assignment(word):
                    name, _, value = word.partition("=")
                    self._assign(name.rstrip("+"), value)
        elif words[0] == "unset":
            for word in words[1:]:
                self.variables.pop(word, None)
        if len(self.found) >= MAX_COMMANDS:
            raise ShellSyntaxError(f"more than {MAX_COMMANDS} commands")
        self.found.append(command)
        return command

    def parse_words_until(self, closer: str) -> None:
        """Words up to `closer` (an array's items), their substitutions parsed, their values dropped."""
        while True:
            self._blanks(newlines=True)
            if self.pos >= len(self.text):
                raise ShellSyntaxError(f"missing {closer!r}")
            if self.text.startswith(closer, self.pos):
                self.pos += len(closer)
                return
            self._word_or_refuse("an array")

    def _word_or_refuse(self, where: str) -> None:
        """A word where only words may stand: an operator there (`a=(;)`, `for x in (`) is refused, as bash refuses
        it (reading on would never end)."""
        start = self.pos
        self._word()
        if self.pos == start:
            raise ShellSyntaxError(f"unexpected {self.text[start]!r} in {where}")

    def _assign(self, name: str, value: str) -> None:
        if is_known(value):
            self.variables[name] = value
        else:
            self.variables.pop(name, None)

    def _for_header(self) -> None:
        """`for NAME in WORDS` up to `;` or a newline: words, not a command (their substitutions still run)."""
        while True:
            self._blanks()
            if self.pos >= len(self.text) or self.text[self.pos] in ";\n&|":
                return
            if self.text.startswith("((", self.pos):
                self.pos += 1
                self._skip_arithmetic()
                continue
            self._word_or_refuse("a 'for' list")

    def _case(self) -> None:
        """`case WORD in (PATTERN|...) LIST ;; ... esac`: the patterns are words, the lists are commands."""
        self._blanks()
        self._word()
        self._blanks(newlines=True)
        if self._word_text() != "in":
            raise ShellSyntaxError("'case' without 'in'")
        while True:
            self._blanks(newlines=True)
            if self.pos >= len(self.text):
                raise ShellSyntaxError("'case' without 'esac'")
            if self._peek_word() == "esac":
                self._word()
                return
            if self.text[self.pos] == "(":
                self.pos += 1
            while True:  # the patterns, up to ')'
                self._blanks()
                if self.pos >= len(self.text):
                    raise ShellSyntaxError("'case' pattern without ')'")
                if self.text[self.pos] == ")":
                    self.pos += 1
                    break
                if self.text[self.pos] == "|":
                    self.pos += 1
                    continue
                self._word_or_refuse("a 'case' pattern")
            self._case_body()

    def _case_body(self) -> None:
        while True:
            self._blanks(newlines=True)
            if self.pos >= len(self.text) or self._peek_word() == "esac":
                return
            for end in (";;&", ";;", ";&"):
                if self.text.startswith(end, self.pos):
                    self.pos += len(end)
                    return
            sub = _Parser(self.text, self.depth + 1, self.variables)
            sub.pos = self.pos
            sub._one_pipeline_segment()
            if sub.pos == self.pos:  # `case x in a) )`: nothing read, and nothing would be, for ever
                raise ShellSyntaxError(f"unexpected {self.text[self.pos]!r} in a 'case' body")
            self.found.extend(sub.found)
            self.pos = sub.pos

    def _one_pipeline_segment(self) -> None:
        """One command or operator, for a case body that ends at `;;` rather than at a closer."""
        char = self.text[self.pos]
        if char in "&|" or (char == ";" and not self.text.startswith(";;", self.pos)):
            self._operator()
        elif char == "(":
            self.pos += 1
            self.parse_list(")")
        else:
            self._simple_command()

    # -- words -------------------------------------------------------------------------------------------------

    def _backquoted(self) -> None:
        """`...`: the text up to the closing backquote, unescaped once, parsed as commands."""
        text = self.text
        inner: list[str] = []
        while True:
            if self.pos >= len(text):
                raise ShellSyntaxError("unclosed backquote")
            char = text[self.pos]
            self.pos += 1
            if char == "`":
                break
            if char == "\\" and self.pos < len(text) and text[self.pos] in "$`\\":
                char = text[self.pos]
                self.pos += 1
            inner.append(char)
        self.found.extend(_Parser("".join(inner), self.depth + 1, self.variables).parsed())

    def parsed(self) -> list[Command]:
        self.parse_list(None)
        return self.found

    def _substitute(self, closer: str) -> None:
        """`$(...)`, `<(...)`, `>(...)`: the commands inside, up to the matching closer."""
        sub = _Parser(self.text, self.depth + 1, self.variables)
        sub.pos = self.pos
        sub.parse_list(closer)
        self.found.extend(sub.found)
        self.pos = sub.pos

    def _redirect_ahead(self) -> bool:
        return self.text.startswith("&>", self.pos)

    def _redirect(self, command: Command) -> bool:
        """A redirection at `pos` (with an optional fd number before it): consume it and its target."""
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos].isdigit():
            self.pos += 1
        if self.pos < len(text) and text[self.pos] == "{":  # {fd}>file
            end = text.find("}", self.pos)
            if end > 0 and text[self.pos + 1:end].isidentifier() and text[end + 1:end + 2] in ("<", ">"):
                self.pos = end + 1
        operator = next((op for op in ("<<<", "<<-", "<<", "&>>", "&>", ">>", ">|", ">&", "<&", "<>", ">", "<")
                         if text.startswith(op, self.pos)), None)
        if operator is None or (operator in ("<", ">") and text.startswith("(", self.pos + 1)):
            self.pos = start
            return False
        self.pos += len(operator)
        self._blanks()
        if operator in ("<<", "<<-"):
            word_start = self.pos
            delimiter = self._word_text()
            raw = text[word_start:self.pos]
            delimiter = delimiter.replace(UNKNOWN, "$").replace(OPAQUE, "$")
            self.heredocs.append((command, delimiter, not any(q in raw for q in "'\"\\")))
            return True
        if self.pos >= len(text) or text[self.pos] in "\n;&|()<>":
            raise ShellSyntaxError(f"{operator!r} without a target")
        target = self._word_text()
        if operator == "<<<":
            command.stdin = target
        elif operator in (">", ">>", ">|", "&>", "&>>", "<>") or (operator == ">&" and not target.isdigit() \
                and target != "-"):
            command.redirects.append(target)
        return True

    def _read_heredocs(self) -> None:
        """After a newline: the bodies of the here-documents opened on the line before."""
        text = self.text
        for command, delimiter, expand in self.heredocs:
            lines: list[str] = []
            while True:
                if self.pos >= len(text):
                    break  # bash warns and takes the rest as the body
                end = text.find("\n", self.pos)
                end = len(text) if end < 0 else end
                line = text[self.pos:end]
                self.pos = min(end + 1, len(text))
                if line.lstrip("\t") == delimiter:
                    break
                lines.append(line)
            body = "\n".join(lines)
            if expand:  # an unquoted delimiter: the body's substitutions run
                sub = _Parser('"' + body.replace('"', '\\"') + '"', self.depth + 1, self.variables)
                body = "".join(sub._word())
                self.found.extend(sub.found)
            command.stdin = body
        self.heredocs.clear()

    def _skip_blanks(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t":
            pos += 1
        return pos


def _is_assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.rstrip("+").isidentifier() and name.isascii()


def _feed(fed: list[tuple[Command, Command]]) -> None:
    """A plain `cat` passes its input (a here-document's body, read once its line ended) on to the next command."""
    for cat, command in fed:
        if command.stdin is None:
            command.stdin = cat.stdin
    fed.clear()


def _echoed(command: Command) -> str | None:
    """What `echo WORDS` or `printf WORD` writes to a pipe, when it can be known (a shell may read it as code)."""
    words = command.words
    if not words or words[0] not in ("echo", "printf") or not all(is_known(word) for word in words):
        return None
    args = words[1:]
    while args and args[0] in ("-n", "-e", "-E", "--"):
        args = args[1:]
    if words[0] == "printf" and len(args) > 1 and "%" in args[0]:  # printf '%s\n' 'git push': its arguments
        return "\n".join(args[1:])
    return " ".join(args)

