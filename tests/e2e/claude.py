"""Installing and running the real Claude Code for the e2e tests.

The binary comes from the npm registry (``@anthropic-ai/claude-code``, which pulls its native build in
as an optional dependency) into a cache that outlives test runs. Each run gets a clean environment built
from a short allowlist, a fresh ``HOME`` so no ``~/.claude`` state is shared or leaked, and a debug log
file for diagnosis. Runs talk only to a local :class:`~model_server.ModelServer`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CLAUDE_CODE_VERSION",
    "ClaudeInstallError",
    "ClaudeProcess",
    "ClaudeResult",
    "cache_root",
    "claude_env",
    "ensure_claude",
    "run_claude",
    "start_claude",
]

CLAUDE_CODE_VERSION = "2.1.330"
"""The version the hook facts in docs/claude-code.md were checked against."""

PACKAGE = "@anthropic-ai/claude-code"

# Variables of the test runner's environment that a Claude Code child may inherit. Everything else
# (CLAUDECODE, ANTHROPIC_*, proxies, a developer's HOME) is left out on purpose.
_INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "USER", "LOGNAME", "SHELL")


class ClaudeInstallError(RuntimeError):
    """Claude Code could not be installed or does not run."""


def cache_root() -> Path:
    """Where installs are kept: ``$POPKIT_E2E_CACHE`` or ``~/.cache/popkit-power/claude-code``; one folder a version."""
    configured = os.environ.get("POPKIT_E2E_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "popkit-power" / "claude-code"


def _bin_path(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "claude"


def _installed_version(binary: Path) -> str | None:
    """The version ``claude --version`` reports, or None when the binary is missing or does not run."""
    if not binary.exists():
        return None
    try:
        with tempfile.TemporaryDirectory(prefix="claude-version-") as home:
            done = subprocess.run(
                [str(binary), "--version"],
                env=claude_env(home=Path(home)),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return done.stdout.split()[0]


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise ClaudeInstallError(
            "npm is not on PATH: the e2e tests install Claude Code from the npm registry. "
            "Install Node.js and npm (e.g. `apt-get install nodejs npm`) and run again."
        )
    return npm


def _pick_version(npm: str, wanted: str) -> str:
    """``wanted`` if the registry has it, else the newest published version (with a warning saying so)."""
    done = subprocess.run(
        [npm, "view", PACKAGE, "versions", "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise ClaudeInstallError(f"`npm view {PACKAGE} versions` failed:\n{done.stderr.strip()}")
    versions = json.loads(done.stdout)
    versions = [versions] if isinstance(versions, str) else versions
    if wanted in versions:
        return wanted
    newest = str(versions[-1])
    warnings.warn(f"{PACKAGE}@{wanted} is not in the registry; using the newest, {newest}", stacklevel=2)
    return newest


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive fcntl lock, so parallel test processes install once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_claude(version: str = CLAUDE_CODE_VERSION) -> Path:
    """The path of a working ``claude`` binary, installing ``version`` into the cache first if needed.

    Nothing touches the network when the cached ``version`` already runs. If the registry lacks
    ``version`` the newest published one is used instead (installed once, then reused) and a warning
    names it; the registry is asked again on each call in that case.
    """
    root = cache_root()
    binary = _bin_path(root / version)
    if _installed_version(binary) == version:
        return binary
    with _locked(root / ".install.lock"):
        if _installed_version(binary) == version:
            return binary
        npm = _npm()
        chosen = _pick_version(npm, version)
        prefix = root / chosen
        binary = _bin_path(prefix)
        if _installed_version(binary) == chosen:
            return binary
        prefix.mkdir(parents=True, exist_ok=True)
        _npm_install(npm, prefix, f"{PACKAGE}@{chosen}")
        found = _installed_version(binary)
        if found != chosen:
            raise ClaudeInstallError(
                f"installed {PACKAGE}@{chosen} into {prefix}, but `claude --version` gave {found!r}"
            )
        return binary


#: An install takes ~10 s here; once a download stalled and npm waited out a 900 s timeout, failing CI. So each try
#: is short, npm gives up on a stalled fetch itself after a minute (and retries it), and a try that still hangs is
#: killed and made again.
INSTALL_TRIES, INSTALL_SECONDS = 3, 240


def _npm_install(npm: str, prefix: Path, package: str) -> None:
    """`npm install package` into `prefix`, tried again when it fails or hangs; ClaudeInstallError naming every
    try's failure when none succeeds."""
    failures = []
    for attempt in range(1, INSTALL_TRIES + 1):
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--fetch-timeout=60000",
                 "--fetch-retries=4", package],
                capture_output=True, text=True, timeout=INSTALL_SECONDS, check=False,
            )
        except subprocess.TimeoutExpired:
            failures.append(f"try {attempt}: no end after {INSTALL_SECONDS} s")
            continue
        if done.returncode == 0:
            return
        failures.append(f"try {attempt}: exit {done.returncode}: {done.stderr.strip()[-2000:]}")
    raise ClaudeInstallError(f"npm install {package} failed {INSTALL_TRIES} times:\n" + "\n".join(failures))


def claude_env(
    *, home: Path, tmpdir: Path | None = None, base_url: str | None = None, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a Claude Code child: an allowlist of the runner's variables, a private
    ``HOME`` (and ``TMPDIR``, where Claude Code keeps task output and its messaging socket), the settings
    that keep it offline and non-interactive, then ``env`` on top."""
    child = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    if tmpdir is not None:
        child["TMPDIR"] = str(tmpdir)
    child.update(
        {
            "HOME": str(home),
            "ANTHROPIC_API_KEY": "sk-ant-dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            # Lets Claude Code run its tools as root (CI and these machines run as root).
            "IS_SANDBOX": "1",
        }
    )
    if base_url is not None:
        child["ANTHROPIC_BASE_URL"] = base_url
    child.update(env or {})
    return child


def _kill_tree(root: int) -> None:
    """SIGKILL a process and all its descendants.

    A process group is not enough: Claude Code runs each Bash command in a new session of its own, so
    the tree is read from /proc (Linux) before anything is killed, since orphans get re-parented.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class ClaudeResult:
    """What one ``claude -p`` run left behind."""

    pid: int
    returncode: int
    stdout: str
    stderr: str
    output: Any
    """``stdout`` parsed as JSON (``--output-format json``), or None if it was not JSON."""
    debug_file: Path
    home: Path
    duration: float
    timed_out: bool

    @property
    def result_text(self) -> str | None:
        """The final assistant text from the JSON output (its ``result`` field)."""
        return self.output.get("result") if isinstance(self.output, dict) else None

    def debug_log(self) -> str:
        """The ``--debug-file`` log, or an empty string if Claude Code wrote none."""
        return self.debug_file.read_text(errors="replace") if self.debug_file.exists() else ""

    def describe(self) -> str:
        """A summary for assertion messages: exit code, both streams, and where the debug log is."""
        return (
            f"claude exited {self.returncode}{' (timed out)' if self.timed_out else ''} after {self.duration:.1f}s\n"
            f"stdout: {self.stdout[-3000:]}\nstderr: {self.stderr[-3000:]}\ndebug log: {self.debug_file}"
        )


class ClaudeProcess:
    """A running ``claude -p``; output goes to files so many can run at once without pipe deadlocks."""

    def __init__(
        self, popen: subprocess.Popen[bytes], state_dir: Path, stdout: IO[bytes], stderr: IO[bytes], timeout: float
    ) -> None:
        self.popen = popen
        self.state_dir = state_dir
        self._stdout = stdout
        self._stderr = stderr
        self._timeout = timeout
        self._started = time.monotonic()

    @property
    def pid(self) -> int:
        """The Claude Code process id (what hooks see as ``CLAUDE_PID``)."""
        return self.popen.pid

    def wait(self, timeout: float | None = None) -> ClaudeResult:
        """Wait for exit (killing the process after ``timeout``, default the start timeout) and collect the result."""
        limit = self._timeout if timeout is None else timeout
        remaining = max(0.0, limit - (time.monotonic() - self._started))
        timed_out = False
        try:
            returncode = self.popen.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_tree(self.popen.pid)
            returncode = self.popen.wait()
        duration = time.monotonic() - self._started
        for handle in (self._stdout, self._stderr):
            handle.close()
        stdout = (self.state_dir / "stdout").read_text(errors="replace")
        stderr = (self.state_dir / "stderr").read_text(errors="replace")
        try:
            output = json.loads(stdout)
        except json.JSONDecodeError:
            output = None
        return ClaudeResult(
            pid=self.popen.pid,
            returncode=returncode,
            stdout=stdout,
            stderr=stderr,
            output=output,
            debug_file=self.state_dir / "debug.log",
            home=self.state_dir / "home",
            duration=duration,
            timed_out=timed_out,
        )


def start_claude(
    prompt: str,
    *,
    cwd: Path,
    base_url: str,
    plugin_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    allowed_tools: str = "Bash Agent",
    timeout: float = 120,
    extra_args: Sequence[str] = (),
    claude_bin: Path | None = None,
    state_dir: Path | None = None,
) -> ClaudeProcess:
    """Start ``claude -p PROMPT --output-format json`` against ``base_url`` and return at once.

    ``state_dir`` (default: a new temp dir) receives the run's ``home/``, ``tmp/``, ``debug.log``,
    ``stdout`` and ``stderr``; it is kept after the run so a failure can be diagnosed.
    """
    binary = claude_bin if claude_bin is not None else ensure_claude()
    state = Path(tempfile.mkdtemp(prefix="claude-run-")) if state_dir is None else state_dir
    home = state / "home"
    tmp = state / "tmp"
    for folder in (home, tmp):
        folder.mkdir(parents=True, exist_ok=True)
    args = [
        str(binary),
        "-p",
        prompt,
        "--output-format",
        "json",
        "--debug-file",
        str(state / "debug.log"),
        # --allowedTools takes a variable number of values, so it goes after the prompt and before other flags.
        "--allowedTools",
        allowed_tools,
    ]
    if plugin_dir is not None:
        args += ["--plugin-dir", str(plugin_dir)]
    args += list(extra_args)
    stdout = (state / "stdout").open("wb")
    stderr = (state / "stderr").open("wb")
    popen = subprocess.Popen(
        args,
        cwd=cwd,
        env=claude_env(home=home, tmpdir=tmp, base_url=base_url, env=env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
    return ClaudeProcess(popen, state, stdout, stderr, timeout)


def run_claude(
    prompt: str,
    *,
    cwd: Path,
    base_url: str,
    plugin_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    allowed_tools: str = "Bash Agent",
    timeout: float = 120,
    extra_args: Sequence[str] = (),
    claude_bin: Path | None = None,
    state_dir: Path | None = None,
) -> ClaudeResult:
    """Run ``claude -p PROMPT`` to completion; see :func:`start_claude` for the arguments."""
    return start_claude(
        prompt,
        cwd=cwd,
        base_url=base_url,
        plugin_dir=plugin_dir,
        env=env,
        allowed_tools=allowed_tools,
        timeout=timeout,
        extra_args=extra_args,
        claude_bin=claude_bin,
        state_dir=state_dir,
    ).wait()
