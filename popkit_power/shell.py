"""A Bash command line read as the shell reads it: every simple command it can run, as words after quote removal.

The guardrails (hook/guard_rules.py) match their patterns against these commands, so `git  push`, `(git push)`,
`sleep 0 & git push`, `$(git push)`, `g\\it push` and `G=git; $G push` all show the command `git push`. What this
reads: lists (`;`, `&`, `&&`, `||`, newlines), pipes, subshells, `{ }` groups, `if`/`while`/`for`/`case` bodies,
function bodies, command and process substitution (also inside double quotes, `${...}` and unquoted here-documents),
backquotes, all quoting (`'...'`, `"..."`, `$'...'` with its escapes, backslashes, line continuations), brace
expansion (`{git,push}`), here-documents and here-strings (kept as the command's input, `Command.stdin`), and
variables assigned earlier on the same line. A part whose value cannot be known here (a variable from the
environment, a command's output, an arithmetic result, an unquoted glob) is kept in its word as `UNKNOWN`: a matcher
takes such a word to be anything.

A line the shell itself would refuse (an unclosed quote, parenthesis or substitution) raises ShellSyntaxError: the
guard fails closed on it. This parser was written, rather than taken from bashlex or tree-sitter-bash, because both
failed cases the guard must read or cost more than the hook's budget (figures in tools/BENCHMARKS.md).

It imports nothing: it runs in the PreToolUse hook's process.
"""

from __future__ import annotations

UNKNOWN = "\x00"  # a part of a word whose value only the running shell knows (NUL cannot occur in a shell word)
MAX_DEPTH = 20  # nested substitutions and re-parsed strings; deeper is refused (fail closed)
MAX_COMMANDS = 2000

_META = frozenset(" \t\n;&|()<>")
_RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "{", "}", "!", "esac",
                       "function", "for", "select", "coproc", "in"})
_ANSI = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "v": "\v",
         "\\": "\\", "'": "'", '"': '"', "?": "?"}
_BRACE_OPEN, _BRACE_COMMA, _BRACE_CLOSE = "\x02", "\x03", "\x04"  # unquoted { , } while a word is read


class ShellSyntaxError(ValueError):
    """A command line the shell would refuse (or one nested past MAX_DEPTH): what it runs cannot be read."""


class Command:
    """One simple command: its words (assignments before it left out) and, if given, the text on its input."""

    __slots__ = ("redirects", "stdin", "words")

    def __init__(self, words: list[str], redirects: list[str], stdin: str | None) -> None:
        self.words = words
        self.redirects = redirects  # the files it writes through `>`, `>>`, `&>`, `>|`
        self.stdin = stdin  # a here-document's or here-string's text, or an `echo`'s piped into it

    def __repr__(self) -> str:
        return f"Command({self.words!r})"


def commands(line: str, depth: int = 0) -> list[Command]:
    """Every simple command `line` can run, in order of appearance; raise ShellSyntaxError if it cannot be read."""
    parser = _Parser(line, depth, {})
    parser.parse_list(None)
    return parser.found


def is_known(word: str) -> bool:
    return UNKNOWN not in word


class _Parser:
    __slots__ = ("depth", "found", "heredocs", "pos", "text", "variables")

    def __init__(self, text: str, depth: int, variables: dict[str, str]) -> None:
        if depth > MAX_DEPTH:
            raise ShellSyntaxError(f"nested deeper than {MAX_DEPTH} levels")
        self.text = text
        self.pos = 0
        self.depth = depth
        self.found: list[Command] = []
        self.variables = variables  # NAME -> value, from plain assignments seen so far on this line
        self.heredocs: list[tuple[Command, str, bool]] = []  # waiting for the next newline: (command, end, expand)

    # -- structure ---------------------------------------------------------------------------------------------

    def parse_list(self, closer: str | None) -> None:
        """Commands until `closer` (`)` or a backquote's end) or the end of the text; consumes the closer."""
        text = self.text
        previous: Command | None = None  # the command before a `|`, whose echo may feed a shell
        piped = False
        while True:
            self._blanks()
            if self.pos >= len(text):
                if closer is not None:
                    raise ShellSyntaxError(f"missing {closer!r}")
                return
            char = text[self.pos]
            if closer is not None and text.startswith(closer, self.pos):
                self.pos += len(closer)
                return
            if char == "\n":
                self.pos += 1
                self._read_heredocs()
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
                else:
                    self.parse_list(")")
                previous = None
                continue
            command = self._simple_command()
            if command is not None:
                if piped and previous is not None and command.stdin is None:
                    command.stdin = _echoed(previous)
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
            return None
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
            self._word()

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
            self._word()

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
                self._word()
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
            sub = _Parser(self.text, self.depth, self.variables)
            sub.pos = self.pos
            sub._one_pipeline_segment()
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

    def _word(self) -> list[str]:
        """Read one word at `pos`; return its fields after expansion (usually one; several for an unquoted
        variable holding spaces or a brace expansion; none for an unquoted empty variable)."""
        text = self.text
        fields: list[str] = []
        part: list[str] = []
        quoted = False  # any quoting: an empty quoted word is still a word
        while self.pos < len(text):
            char = text[self.pos]
            if char in _META:
                if char in "<>" and text.startswith("(", self.pos + 1):  # <(process substitution)
                    self.pos += 2
                    self._substitute(")")
                    part.append(UNKNOWN)
                    continue
                break
            self.pos += 1
            if char == "\\":
                if self.pos < len(text):
                    if text[self.pos] != "\n":
                        part.append(text[self.pos])
                    self.pos += 1
                quoted = True
            elif char == "'":
                end = text.find("'", self.pos)
                if end < 0:
                    raise ShellSyntaxError("unclosed single quote")
                part.append(text[self.pos:end])
                self.pos = end + 1
                quoted = True
            elif char == '"':
                part.append(self._double_quoted())
                quoted = True
            elif char == "`":
                self._backquoted()
                part.append(UNKNOWN)
            elif char == "$":
                value = self._dollar(in_quotes=False)
                if value is None:
                    part.append(UNKNOWN)
                elif any(blank in value for blank in " \t\n"):  # an unquoted value is split into fields
                    pieces = value.split()
                    if value[:1].isspace() and (part or quoted):
                        fields.append("".join(part))
                        part, quoted = [], False
                    for index, piece in enumerate(pieces):
                        part.append(piece)
                        if index < len(pieces) - 1 or value[-1:].isspace():
                            fields.append("".join(part))
                            part, quoted = [], False
                else:
                    part.append(value)
            elif char in "*?" or (char == "[" and self._closes_bracket()):
                part.append(UNKNOWN + char)  # a glob: the files it names are known only when it runs
            elif char == "{":
                part.append(_BRACE_OPEN)
            elif char == ",":
                part.append(_BRACE_COMMA)
            elif char == "}":
                part.append(_BRACE_CLOSE)
            else:
                part.append(char)
        if part or quoted:
            fields.append("".join(part))
        expanded: list[str] = []
        for field in fields:
            expanded.extend(_expand_braces(field) if _BRACE_OPEN in field else [field])
        return [field.replace(_BRACE_OPEN, "{").replace(_BRACE_COMMA, ",").replace(_BRACE_CLOSE, "}")
                for field in expanded]

    def _closes_bracket(self) -> bool:
        """Whether the `[` just read opens a glob: a `]` follows in the same word."""
        end = self.pos
        while end < len(self.text) and self.text[end] not in _META:
            if self.text[end] == "]":
                return True
            end += 1
        return False

    def _word_text(self) -> str:
        return "".join(self._word())

    def _peek_word(self) -> str:
        start = self.pos
        end = start
        while end < len(self.text) and self.text[end] not in _META:
            end += 1
        return self.text[start:end]

    def _double_quoted(self) -> str:
        text = self.text
        part: list[str] = []
        while True:
            if self.pos >= len(text):
                raise ShellSyntaxError("unclosed double quote")
            char = text[self.pos]
            self.pos += 1
            if char == '"':
                return "".join(part)
            if char == "\\" and self.pos < len(text) and text[self.pos] in '$`"\\\n':
                if text[self.pos] != "\n":
                    part.append(text[self.pos])
                self.pos += 1
            elif char == "`":
                self._backquoted()
                part.append(UNKNOWN)
            elif char == "$":
                value = self._dollar(in_quotes=True)
                part.append(UNKNOWN if value is None else value)
            else:
                part.append(char)

    def _dollar(self, *, in_quotes: bool) -> str | None:
        """After a `$`: the expansion's value if it is known here, else None (its substitutions are parsed)."""
        text = self.text
        if self.pos >= len(text):
            return "$"
        char = text[self.pos]
        if text.startswith("((", self.pos):
            self.pos += 1
            self._skip_arithmetic()
            return None
        if char == "(":
            self.pos += 1
            self._substitute(")")
            return None
        if char == "{":
            return self._braced_parameter()
        if char == "'" and not in_quotes:
            return self._ansi_c()
        if char == '"' and not in_quotes:
            self.pos += 1
            return self._double_quoted()
        if char.isalpha() or char == "_":
            end = self.pos
            while end < len(text) and (text[end].isalnum() or text[end] == "_"):
                end += 1
            name, self.pos = text[self.pos:end], end
            return self.variables.get(name)
        if char.isdigit() or char in "@*#?$!-":
            self.pos += 1
            return None
        return "$"

    def _braced_parameter(self) -> str | None:
        """`${...}`: a plain `${NAME}` known here has its value; anything else is unknown, its substitutions
        parsed."""
        text = self.text
        start = self.pos + 1
        self.pos = start
        depth = 1
        while self.pos < len(text):
            char = text[self.pos]
            if char == "\\":
                self.pos += 2
                continue
            if char == "'":
                end = text.find("'", self.pos + 1)
                if end < 0:
                    raise ShellSyntaxError("unclosed single quote")
                self.pos = end + 1
                continue
            self.pos += 1
            if char == '"':
                self._double_quoted()
            elif char == "`":
                self._backquoted()
            elif char == "$" and self.pos < len(text) and text[self.pos] in "({":
                if text[self.pos] == "(":
                    self.pos += 1
                    self._substitute(")")
                else:
                    depth += 1
                    self.pos += 1
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if not depth:
                    name = text[start:self.pos - 1]
                    return self.variables.get(name) if name.isidentifier() else None
        raise ShellSyntaxError("unclosed '${'")

    def _ansi_c(self) -> str:
        """`$'...'` with its backslash escapes."""
        text = self.text
        self.pos += 1
        part: list[str] = []
        while True:
            if self.pos >= len(text):
                raise ShellSyntaxError("unclosed $'...'")
            char = text[self.pos]
            self.pos += 1
            if char == "'":
                return "".join(part)
            if char != "\\" or self.pos >= len(text):
                part.append(char)
                continue
            escape = text[self.pos]
            self.pos += 1
            if escape in _ANSI:
                part.append(_ANSI[escape])
            elif escape in "xuU":
                digits = _take(text, self.pos, "0123456789abcdefABCDEF", {"x": 2, "u": 4, "U": 8}[escape])
                self.pos += len(digits)
                part.append(chr(int(digits, 16)) if digits and int(digits, 16) < 0x110000 else "\\" + escape)
            elif escape in "01234567":
                digits = escape + _take(text, self.pos, "01234567", 2)
                self.pos += len(digits) - 1
                part.append(chr(int(digits, 8) & 0xFF))
            elif escape == "c" and self.pos < len(text):
                part.append(chr(ord(text[self.pos]) & 0x1F))
                self.pos += 1
            else:
                part.append("\\" + escape)

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

    def _skip_arithmetic(self) -> None:
        """After `((` (at its second parenthesis): skip to the matching `))`."""
        depth = 0
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
                if depth == 0:
                    if text.startswith(")", self.pos):
                        self.pos += 1
                    return
            elif char == "$" and text.startswith("(", self.pos) and not text.startswith("((", self.pos):
                self.pos += 1
                self._substitute(")")
        raise ShellSyntaxError("unclosed '(('")

    # -- redirections and here-documents ------------------------------------------------------------------------

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
            self.heredocs.append((command, delimiter.replace(UNKNOWN, "$"), not any(q in raw for q in "'\"\\")))
            return True
        if self.pos >= len(text) or text[self.pos] in "\n;&|()<>":
            raise ShellSyntaxError(f"{operator!r} without a target")
        target = self._word_text()
        if operator == "<<<":
            command.stdin = target
        elif operator in (">", ">>", ">|", "&>", "&>>") or (operator == ">&" and not target.isdigit() \
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

    def _blanks(self, *, newlines: bool = False) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t" or (newlines and char == "\n"):
                self.pos += 1
            elif char == "\\" and text.startswith("\n", self.pos + 1):
                self.pos += 2
            else:
                return

    def _skip_blanks(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t":
            pos += 1
        return pos


def _is_assignment(word: str) -> bool:
    name, equals, _ = word.partition("=")
    return bool(equals) and name.rstrip("+").isidentifier() and name.isascii()


def _take(text: str, start: int, allowed: str, most: int) -> str:
    end = start
    while end < len(text) and end - start < most and text[end] in allowed:
        end += 1
    return text[start:end]


def _echoed(command: Command) -> str | None:
    """What `echo WORDS` or `printf WORD` writes to a pipe, when it can be known (a shell may read it as code)."""
    words = command.words
    if not words or words[0] not in ("echo", "printf") or not all(is_known(word) for word in words):
        return None
    args = words[1:]
    while args and args[0] in ("-n", "-e", "-E", "--"):
        args = args[1:]
    return " ".join(args)


def _expand_braces(word: str) -> list[str]:
    """Bash's brace expansion of `a{b,c}d` (nested too); a brace without a comma stays as it is."""
    depth = 0
    open_at = -1
    commas: list[int] = []
    for index, char in enumerate(word):
        if char == _BRACE_OPEN:
            if depth == 0:
                open_at, commas = index, []
            depth += 1
        elif char == _BRACE_COMMA and depth == 1:
            commas.append(index)
        elif char == _BRACE_CLOSE and depth > 0:
            depth -= 1
            if depth == 0:
                if not commas:
                    continue
                prefix, suffix = word[:open_at], word[index + 1:]
                cuts = [open_at, *commas, index]
                result: list[str] = []
                for at in range(len(cuts) - 1):
                    left, right = cuts[at], cuts[at + 1]
                    for alternative in _expand_braces(word[left + 1:right]):
                        result.extend(prefix + alternative + tail for tail in _expand_braces(suffix))
                return result
    return [word]
