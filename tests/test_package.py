"""The package's public surface and its shape: every public name resolves, the hook's modules stay lean, and the
tables that must agree do."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import popkit_power
from popkit_power import config, projector, protocol
from popkit_power.fold import model

PACKAGE = Path(popkit_power.__file__).parent


def test_every_public_name_resolves() -> None:
    for name in popkit_power.__all__:
        assert getattr(popkit_power, name) is not None, name
        module = popkit_power._PUBLIC[name]
        assert getattr(__import__(f"popkit_power.{module}", fromlist=[name]), name) is getattr(popkit_power, name)


def test_every_public_name_is_typed_for_checkers() -> None:
    """Each public name is imported under TYPE_CHECKING from the module `__getattr__` loads it from."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                typed[alias.name] = node.module
    assert {name: typed.get(name) for name in popkit_power.__all__} == popkit_power._PUBLIC


def test_every_error_is_a_power_mode_error() -> None:
    from popkit_power import errors

    classes = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert len(classes) >= 8
    assert all(issubclass(cls, errors.PowerModeError) for cls in classes)
    documented = (PACKAGE / "errors.py").read_text().split('"""')[1]
    assert all(cls.__name__ in documented for cls in classes), "the tree in the docstring names every error"


def test_every_projector_handler_is_a_known_event_type() -> None:
    assert set(projector._HANDLERS) <= set(protocol.EVENT_TYPES)
    unhandled = set(protocol.EVENT_TYPES) - set(projector._HANDLERS)
    assert unhandled == {"coordinator.command"}, unhandled


def test_config_annotations_are_the_defaults_table() -> None:
    assert set(config.Config.__annotations__) == set(config.DEFAULTS)
    assert set(projector.Rules.SETTINGS) <= set(config.DEFAULTS)
    assert set(projector.Rules.__slots__) == {*projector.Rules.SETTINGS, *model.BOUNDS}
    assert not set(model.BOUNDS) & set(config.DEFAULTS), "a bound is not a setting"
    assert {name: getattr(projector.Rules(), name) for name in projector.Rules.SETTINGS} == {
        name: config.DEFAULTS[name][0] for name in projector.Rules.SETTINGS}


HEAVY = ("re", "json", "typing", "dataclasses", "logging", "orjson", "click", "hashlib")


def test_the_hook_with_news_to_read_imports_nothing_heavy(tmp_path: Path) -> None:
    """Power Mode on, a message waiting, a real reply: the hook's whole path loads none of the costly modules."""
    from popkit_power.session import start_session

    home = str(tmp_path / "power")
    session = start_session(home, "Lean", sender="human")
    payload = ('{"session_id":"c0ffee","hook_event_name":"PostToolUse","tool_name":"Edit",'
               '"tool_input":{"file_path":"/repo/a.py"},"tool_response":{}}')
    probe = (
        "import io, sys\n"
        "from popkit_power.hook import entry\n"
        f"payload = {payload!r}.encode()\n"
        f"entry.run(io.BytesIO(payload), {home!r}, {{}})\n"
        f"from popkit_power.session import Session\n"
        f"Session({home!r}, {session.id!r}).publish('message.broadcast', {{'text': 'hi'}}, sender='human')\n"
        f"reply = entry.run(io.BytesIO(payload), {home!r}, {{}})\n"
        "assert reply and 'hi' in reply, reply\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "POPKIT_POWER_HOME": home}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_all_lists_exactly_the_lazy_names() -> None:
    assert sorted(popkit_power.__all__) == sorted(popkit_power._PUBLIC)
