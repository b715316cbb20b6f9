"""The package's layers, read from the source: every import counts, at module level, in a function or only for type
checkers (under TYPE_CHECKING), because a circle in type hints is still a circle a reader has to untangle.

- No two files import each other, directly or round a circle.
- No two parts (a package such as `journal/`, or a top-level module) import each other either.
- Each part imports only the parts below it: the storage core knows nothing of sessions, the fold nothing of files,
  and nothing below the command line imports it (LOWER_THAN names the parts each part must not reach).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "popkit_power"

#: part -> the parts it must never import (what lies above it, or beside it with no business there).
ABOVE_EVERYTHING = {"cli", "demo", "setup", "status", "replay", "coordinator", "hook", "replication", "upstash_adapter",
                    "dashboard", "hook_server"}
LOWER_THAN = {
    "journal": ABOVE_EVERYTHING | {"session", "projector", "fold", "config", "home", "protocol", "roster"},
    "fold": ABOVE_EVERYTHING | {"session", "journal", "home", "roster"},
    "projector": ABOVE_EVERYTHING | {"session", "journal", "home", "roster"},
    "protocol": ABOVE_EVERYTHING | {"session", "journal", "fold", "projector", "config", "home"},
    "display": ABOVE_EVERYTHING | {"session", "journal", "projector", "config", "home"},
    "config": ABOVE_EVERYTHING | {"session", "projector", "fold", "home"},
    "session": ABOVE_EVERYTHING,
    "hook": ABOVE_EVERYTHING - {"hook"},
    "replication": ABOVE_EVERYTHING - {"replication"},
    "coordinator": ABOVE_EVERYTHING - {"coordinator", "replication"},
    "replay": ABOVE_EVERYTHING - {"replay"},
    "status": {"cli", "demo", "setup", "replay", "hook", "coordinator", "dashboard"},
    "setup": {"cli", "demo", "replay", "dashboard"},
    "dashboard": {"cli", "demo", "hook", "hook_server"},
    "hook_server": {"cli", "demo", "setup"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports anywhere in its file. `from . import x` counts as importing the
    module `x`, not the package it lies in."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & known.keys()
            found |= submodules
            if len(submodules) < len(node.names) and target in known:
                found.add(target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & known.keys()
    found.discard(name)
    return found


def part(name: str) -> str:
    """The part a module belongs to: its top-level package or module under popkit_power."""
    pieces = name.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_the_reader_finds_imports_of_every_kind(tmp_path: Path) -> None:
    """The reader of imports sees a relative, an absolute, a function-level and a type-only import, and `from . import`
    of a module as that module."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "c.py", "sub/__init__.py", "sub/d.py"):
        (package / name).write_text("")
    source = package / "sub" / "e.py"
    source.write_text("from ..a import x\nimport pkg.b\nTYPE_CHECKING = False\n"
                      "if TYPE_CHECKING:\n    from ..c import y\ndef f():\n    from . import d\n")
    known = {"pkg": package, "pkg.a": package / "a.py", "pkg.b": package / "b.py", "pkg.c": package / "c.py",
             "pkg.sub": package / "sub", "pkg.sub.d": package / "sub" / "d.py", "pkg.sub.e": source}
    assert imports("pkg.sub.e", source, known) == {"pkg.a", "pkg.b", "pkg.c", "pkg.sub.d"}
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_file_imports_itself_round_a_circle(graph: dict[str, set[str]]) -> None:
    assert circles(graph) == []


def test_no_two_parts_import_each_other(graph: dict[str, set[str]]) -> None:
    parts: dict[str, set[str]] = defaultdict(set)
    for name, targets in graph.items():
        parts[part(name)] |= {part(target) for target in targets} - {part(name)}
    assert circles(parts) == []


def test_no_part_imports_a_part_above_it(graph: dict[str, set[str]]) -> None:
    upward = sorted(f"{name} imports {target}" for name, targets in graph.items() for target in targets
                    if part(target) in LOWER_THAN.get(part(name), ()))
    assert upward == []
