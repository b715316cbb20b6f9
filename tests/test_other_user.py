"""Agents running as another OS user than the human's, with real users and real processes (useradd, setpriv): what
docs/design.md ("Who said what") states as the limit of this layout. Such an agent cannot give the human's word, by
any means: the command, the library, or writing the journal's file itself; and it cannot append anything either, so
in this layout it cannot take part in the session. Needs root (to add a user); skipped elsewhere."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from test_hook import tool

from popkit_power.session import Session, start_session

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("useradd", "userdel",
                                                                                              "setpriv")),
                                reason="adds a real OS user: needs root, useradd and setpriv")
BIN = Path(sys.executable).parent
WAIT = 60.0


@pytest.fixture
def agent_user() -> Iterator[pwd.struct_passwd]:
    """A real OS user for the agents, removed afterwards."""
    name = f"pkp-agent-{os.urandom(3).hex()}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   capture_output=True, timeout=WAIT)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=WAIT)


@pytest.fixture
def shared_session() -> Iterator[Session]:
    """The human's session in a folder every user may pass through (pytest's own tmp folder is the human's only),
    so that only the power directory's own modes stand between the agent and the journal."""
    shared = tempfile.mkdtemp(prefix="pkp-shared-")
    os.chmod(shared, 0o755)
    try:
        yield start_session(os.path.join(shared, "power"), "Ship it", sender="human")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def as_agent(user: pwd.struct_passwd, argv: list[str], home: str, stdin: bytes = b"", *,
             inside: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` as `user` (its own uid and group, no other groups), as the agents' processes would run: with
    Claude Code's variable set, or `inside=False` as a process that cleared its environment (`env -i`)."""
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "POPKIT_POWER_HOME": home, "HOME": "/nonexistent",
           "PYTHONDONTWRITEBYTECODE": "1", **({"CLAUDE_CODE_SESSION_ID": "c0ffee00-1111"} if inside else {})}
    return subprocess.run(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv],
                          env=env, input=stdin, capture_output=True, timeout=WAIT)


def journal_bytes(session: Session) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(Path(session.journal.directory).glob("*.jsonl")))


def test_an_agent_of_another_user_cannot_give_the_humans_word(agent_user: pwd.struct_passwd,
                                                                shared_session: Session) -> None:
    shared_session.publish("approval.requested", {"request": "r-push", "question": "force-push main?"},
                    sender="c0ffee00-1111:main")
    before = journal_bytes(shared_session)
    home = shared_session.power_dir
    command = as_agent(agent_user, [str(BIN / "popkit-power"), "approve", "r-push"], home, inside=False)
    assert command.returncode == 2 and b"belongs to user id 0, not to you" in command.stderr, command
    library = as_agent(agent_user, [sys.executable, "-c", (
        "from popkit_power.session import Session; "
        f"Session({home!r}, {shared_session.id!r}).publish('approval.granted', {{'request': 'r-push'}}, "
        "sender='human')")],
        home)
    assert library.returncode != 0 and b"belongs to user id 0, not to you" in library.stderr, library
    # past the library's own check, the kernel's: the journal's file is the human's, 0600 in a 0700 directory
    segment = next(Path(shared_session.journal.directory).glob("*.jsonl"))
    raw = as_agent(agent_user, [sys.executable, "-c", f"open({str(segment)!r}, 'ab').write(b'{{}}\\n')"], home)
    assert raw.returncode != 0 and b"PermissionError" in raw.stderr, raw
    assert journal_bytes(shared_session) == before
    state, _ = shared_session.projection()
    assert state["approvals"]["r-push"]["status"] == "pending"


def test_in_this_layout_such_an_agent_cannot_append_either(agent_user: pwd.struct_passwd,
                                                           shared_session: Session) -> None:
    """The limit, stated in docs/design.md: the power directory is the human's alone (0700), so the hook of an agent
    running as another user records nothing (it never breaks the agent: exit 0, no output)."""
    before = journal_bytes(shared_session)
    hook = as_agent(agent_user, [str(BIN / "popkit-power-hook")], shared_session.power_dir,
                    stdin=orjson.dumps(tool()))
    assert (hook.returncode, hook.stdout) == (0, b""), hook
    sent = as_agent(agent_user, [str(BIN / "popkit-power"), "broadcast", "hello", "--as", "c0ffee00-1111:main"],
                    shared_session.power_dir)
    assert sent.returncode == 2 and b"belongs to user id 0, not to you" in sent.stderr, sent
    assert journal_bytes(shared_session) == before
