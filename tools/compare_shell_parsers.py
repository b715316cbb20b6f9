"""How bashlex and tree-sitter-bash do on the guardrails' evasion table (tools/BENCHMARKS.md, "Why not bashlex").

    python -m venv /tmp/parsers && /tmp/parsers/bin/pip install bashlex==0.18 tree-sitter tree-sitter-bash
    /tmp/parsers/bin/python tools/compare_shell_parsers.py bashlex|tree-sitter

Neither library is a dependency: this script is how the figures were made. It reads the table from
tests/test_guard_evasions.py, parses each line, and counts the lines it refuses, the lines where it finds the guarded
command (`git`, `rm`, `terraform` with at least one word after it, words as written), and the unreadable lines it
refuses. Import cost is measured separately, as whole processes: `python -c "import bashlex"`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parents[1] / "tests" / "test_guard_evasions.py"


def table() -> dict[str, Any]:
    """The module-level constants of the test file (its tables), without importing pytest or the package."""
    names: dict[str, Any] = {}
    for node in ast.parse(TABLE.read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            try:
                exec(compile(ast.Module([node], []), str(TABLE), "exec"), names)  # our own test file
            except NameError:
                continue
    return names


def bashlex_commands(line: str) -> list[list[str]]:
    import bashlex  # type: ignore[import-not-found]

    found: list[list[str]] = []

    class Visitor(bashlex.ast.nodevisitor):  # type: ignore[misc]
        def visitcommand(self, node: Any, parts: Any) -> None:
            found.append([part.word for part in parts if part.kind == "word"])

    for tree in bashlex.parse(line):
        Visitor().visit(tree)
    return found


def tree_sitter_commands(line: str) -> list[list[str]]:
    import tree_sitter  # type: ignore[import-not-found]
    import tree_sitter_bash  # type: ignore[import-not-found]

    tree = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language())).parse(line.encode())
    if tree.root_node.has_error:
        raise SyntaxError("the tree has an error node")
    found: list[list[str]] = []

    def walk(node: Any) -> None:
        if node.type == "command":
            found.append([child.text.decode() for child in node.children
                          if child.type in ("command_name", "word", "string", "raw_string", "concatenation")])
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return found


def main() -> None:
    parse = {"bashlex": bashlex_commands, "tree-sitter": tree_sitter_commands}[sys.argv[1]]
    names = table()
    lines = [line for line, _pattern in names["EVASIONS"]]
    errors: list[str] = []
    found = 0
    for line in lines:
        try:
            commands = parse(line)
        except Exception:  # each library has its own errors
            errors.append(line)
            continue
        found += any(len(words) >= 2 and words[0] in ("git", "rm", "terraform") for words in commands)
    refused = 0
    for line in names["UNREADABLE_LINES"]:
        try:
            parse(line)
        except Exception:
            refused += 1
    print(f"{sys.argv[1]}: {len(lines)} lines, {len(errors)} refused, guarded command found in {found}, "
          f"{refused} of {len(names['UNREADABLE_LINES'])} unreadable lines refused")
    print(f"refused: {errors}")


if __name__ == "__main__":
    main()
