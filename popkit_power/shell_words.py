"""The words of a Bash command line, read as the shell reads them: quoting, expansions and what cannot be known.

`WordReader` is the half of shell.py's parser that reads one word at a time: `'...'`, `"..."`, `$'...'` with its
escapes, backslashes and line continuations, `$NAME` and `${NAME}` from the variables assigned earlier on the line
(an unquoted value with blanks splits into several words), brace expansion, globs, and the substitutions inside a
word (`$(...)`, backquotes, `<(...)`, `$((...))`), whose commands the parser (shell.py) reads. A part whose value only
the running shell knows is kept in its word as `UNKNOWN`.

It imports nothing: it runs in the PreToolUse hook's process.
"""

from __future__ import annotations

UNKNOWN = "\x00"  # an unquoted part only the running shell knows: it may become any words, flags included
MAX_EXPANDED_CHARS = 4_000_000  # of variables' values expanded on one line (a line itself has at most 1,000,000)
OPAQUE = "\x01"  # a quoted expansion or a glob: it stays one word (a glob: words) whose value is not known here
MAX_BRACE_WORDS = 10_000
MAX_DEPTH = 20  # nested substitutions and re-parsed strings; deeper is refused (fail closed)
_META = frozenset(" \t\n;&|()<>")
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


class Variables(dict[str, str]):
    """NAME -> value, from the plain assignments seen so far on one line (shared by its nested parsers), and how much
    text their expansions have made: `a=xx; a=$a$a; a=$a$a; ...` doubles at each step, so the total is bounded
    (past it the line is refused as unreadable, which the guard holds) rather than read for ever."""

    __slots__ = ("expanded",)

    def __init__(self) -> None:
        super().__init__()
        self.expanded = 0

    def spend(self, chars: int) -> None:
        self.expanded += chars
        if self.expanded > MAX_EXPANDED_CHARS:
            raise ShellSyntaxError(f"variables that expand to more than {MAX_EXPANDED_CHARS:,} characters")


class WordReader:
    """Reads words from `text` at `pos`; the parser (shell.py) supplies how substitutions are parsed."""

    __slots__ = ("_bracket", "depth", "found", "pos", "text", "variables")

    def __init__(self, text: str, depth: int, variables: Variables) -> None:
        if depth > MAX_DEPTH:
            raise ShellSyntaxError(f"nested deeper than {MAX_DEPTH} levels")
        self.text = text
        self.pos = 0
        self.depth = depth
        self.found: list[Command] = []
        self.variables = variables  # NAME -> value, from plain assignments seen so far on this line
        self._bracket = (-1, False)  # (where the last scan for a glob's `]` stopped, whether it found one)

    def _variable(self, name: str) -> str | None:
        """A variable's value if known here: assigned earlier on the line, or IFS, which is blank unless it was
        (`git${IFS}push` is `git push`)."""
        value = self.variables.get(name)
        if value:
            self.variables.spend(len(value))
        return " \t\n" if value is None and name == "IFS" else value

    def _splits(self, value: str) -> bool:
        """Whether an IFS set on the line (`IFS=,`) splits this value at a character other than a blank."""
        separators = self.variables.get("IFS")
        return separators is not None and any(char in separators for char in value)

    def _split(self, value: str) -> list[str]:
        """An unquoted value's fields: split at blanks and at the characters of an IFS set on the line."""
        for char in self.variables.get("IFS") or "":
            value = value.replace(char, " ")
        return value.split()

    def _substitute(self, closer: str) -> None:
        """`$(...)`, `<(...)`, `>(...)`: parse the commands inside, up to the matching closer."""
        raise NotImplementedError

    def _backquoted(self) -> None:
        """`...`: parse the text up to the closing backquote as commands."""
        raise NotImplementedError

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
                    part.append(OPAQUE)  # it becomes a path such as /dev/fd/63
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
                elif any(blank in value for blank in " \t\n") or self._splits(value):  # split into fields
                    pieces = self._split(value)
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
                part.append(OPAQUE + char)  # a glob: the files it names are known only when it runs
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
            expanded.extend(_expand_braces(field, [MAX_BRACE_WORDS]) if _BRACE_OPEN in field else [field])
        return [field.replace(_BRACE_OPEN, "{").replace(_BRACE_COMMA, ",").replace(_BRACE_CLOSE, "}")
                for field in expanded]

    def _closes_bracket(self) -> bool:
        """Whether the `[` just read opens a glob: a `]` follows in the same word. The scan's end is kept, so a
        word of many `[` is read in linear time."""
        until, found = self._bracket
        if self.pos > until:
            end = self.pos
            while end < len(self.text) and self.text[end] not in _META and self.text[end] != "]":
                end += 1
            found = end < len(self.text) and self.text[end] == "]"
            self._bracket = (end, found)
        return found

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
                part.append(OPAQUE)
            elif char == "$":
                start = self.pos
                value = self._dollar(in_quotes=True)
                written = text[start:self.pos]
                many = written == "@" or written.startswith("{@") or "[@]" in written  # "$@": a word for each item
                part.append(UNKNOWN if many else OPAQUE if value is None else value)
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
            return self._variable(name)
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
                    return self._variable(name) if name.isidentifier() else None
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


def is_known(word: str) -> bool:
    return UNKNOWN not in word and OPAQUE not in word


def _take(text: str, start: int, allowed: str, most: int) -> str:
    end = start
    while end < len(text) and end - start < most and text[end] in allowed:
        end += 1
    return text[start:end]


def _expand_braces(word: str, budget: list[int]) -> list[str]:
    """Bash's brace expansion of `a{b,c}d` (nested too); a brace without a comma stays as it is. `budget` counts
    down the words made: past MAX_BRACE_WORDS the line is refused rather than expanded for ever."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ShellSyntaxError(f"a brace expansion of more than {MAX_BRACE_WORDS} words")
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
                    for alternative in _expand_braces(word[left + 1:right], budget):
                        result.extend(prefix + alternative + tail for tail in _expand_braces(suffix, budget))
                return result
    return [word]
