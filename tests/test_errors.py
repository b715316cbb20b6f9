"""Errors with structure: every error class has a stable code that errors.py documents, the public names resolve
(the replication errors among them), and the CLI's exit codes come from one mapping."""

from __future__ import annotations

import ast
import errno
import importlib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import popkit_power
from popkit_power import errors, exit_codes
from popkit_power.cli.common import PowerModeGroup
from popkit_power.errors import PowerModeError, code_of
from popkit_power.replication import errors as replication_errors

PACKAGE = Path(popkit_power.__file__).parent


def every_error_class() -> list[type[PowerModeError]]:
    found: list[type[PowerModeError]] = []
    todo: list[type[PowerModeError]] = [PowerModeError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def documented_codes() -> dict[str, str]:
    """class name -> code, from the table in errors.py's docstring (`code   ClassName` lines under its heading)."""
    docstring = ast.get_docstring(ast.parse((PACKAGE / "errors.py").read_text())) or ""
    table = docstring.split("    code ", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    return {line.split()[1]: line.split()[0] for line in table}


def test_every_error_class_has_its_own_documented_code() -> None:
    classes = every_error_class()
    assert len(classes) >= 19, [cls.__name__ for cls in classes]
    codes = {cls.__name__: cls.code for cls in classes}
    assert all("code" in vars(cls) for cls in classes), "each class names its code (none inherits its parent's)"
    assert len(set(codes.values())) == len(codes), "codes are unique"
    assert all(code == code.lower() and " " not in code and "_" not in code for code in codes.values()), codes
    assert documented_codes() == codes


def test_an_error_s_code_is_one_a_program_can_rely_on() -> None:
    assert errors.UnsafePathError("x").code == "unsafe-path"
    assert errors.RecordTooLargeError(10, 5).code == "record-too-large"
    assert replication_errors.TransportUnreachableError("x").code == "replication-unreachable"
    assert code_of(errors.CoordinatorRunningError("x")) == "coordinator-running"
    assert code_of(OSError(errno.ENOSPC, "No space left on device")) == errors.OS_ERROR
    assert code_of(KeyError("x")) == errors.UNEXPECTED


def test_replication_errors_say_whether_trying_again_can_help() -> None:
    retryable = {cls.__name__ for cls in every_error_class()
                 if issubclass(cls, replication_errors.ReplicationError) and cls.retryable}
    assert retryable == {"TransportError", "TransportTimeoutError", "TransportUnreachableError",
                         "TransportServerError", "MalformedReplyError"}
    assert replication_errors.ReplicationError("busy", retryable=True).retryable
    assert not replication_errors.MissingDependencyError("pip install").retryable


def modules_with_all() -> list[str]:
    """Every module of the package whose source assigns `__all__`."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.Assign) and any(isinstance(target, ast.Name) and target.id == "__all__"
                                                    for target in node.targets) for node in tree.body):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_name_in_every_all_resolves() -> None:
    modules = modules_with_all()
    assert {"popkit_power", "popkit_power.errors", "popkit_power.journal"} <= set(modules), modules
    for name in modules:
        module = importlib.import_module(name)
        missing = [public for public in module.__all__ if getattr(module, public, None) is None]
        assert not missing, f"{name}.__all__ names {missing}, which do not resolve"
        assert len(set(module.__all__)) == len(module.__all__), name


def test_every_error_is_public_from_its_module_and_from_the_package() -> None:
    """From errors.py, or replication/errors.py for ReplicationError's family (kept off the hook's path)."""
    names = {cls.__name__ for cls in every_error_class()}
    family = {cls.__name__ for cls in every_error_class() if issubclass(cls, replication_errors.ReplicationError)}
    assert family == set(replication_errors.__all__) and len(family) == 10
    assert names - family <= set(errors.__all__)
    assert names <= set(popkit_power.__all__)
    assert popkit_power.TransportAuthError is replication_errors.TransportAuthError


def test_each_error_the_cli_catches_has_one_exit_code() -> None:
    assert exit_codes.exit_code_for(BrokenPipeError()) == exit_codes.OK
    assert exit_codes.exit_code_for(KeyboardInterrupt()) == exit_codes.INTERRUPTED
    made = {errors.RecordTooLargeError: lambda: errors.RecordTooLargeError(10, 5),
            errors.ClaimLostError: lambda: errors.ClaimLostError("x", task="t", winner="s:main", winning_seq=3, seq=4),
            errors.AnswerRefusedError: lambda: errors.AnswerRefusedError("x", request="r", first_status="granted",
                                                                         first_by="human", first_seq=3, first_ts=None)}
    for cls in every_error_class():
        error = made[cls]() if cls in made else cls("x")
        assert exit_codes.exit_code_for(error) == exit_codes.ERROR, cls
    assert exit_codes.exit_code_for(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")) == exit_codes.ERROR
    assert exit_codes.exit_code_for(PermissionError(errno.EACCES, "Permission denied")) == exit_codes.ERROR


@pytest.mark.parametrize(("error", "code", "said"), [
    (errors.SessionError("no active session"), 2, "popkit-power: no active session\n"),
    (replication_errors.TransportAuthError("token refused"), 2, "popkit-power: token refused\n"),
    (PermissionError(errno.EACCES, "Permission denied", "/p/active"),
     2, "popkit-power: /p/active: Permission denied (EACCES)\n"),
])  # a broken pipe (exit 0) points fd 1 at /dev/null, so it is run in a process of its own by test_cli
def test_the_command_group_ends_each_error_with_its_mapped_code(error: BaseException, code: int, said: str) -> None:
    """What the group does is what exit_codes says: the problem as one line on stderr, then the mapped code."""
    @click.group(cls=PowerModeGroup)
    def group() -> None:
        pass

    @group.command()
    def fail() -> None:
        raise error

    result = CliRunner().invoke(group, ["fail"], obj={"power_dir": "/p"})
    assert result.exit_code == code == exit_codes.exit_code_for(error)
    assert result.stderr == said
