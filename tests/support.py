"""Helpers shared by the tests: building event bodies, reading a journal's raw lines, and the child processes that
append concurrently or get killed. Child targets live here (not in a test module) so the "spawn" start method can
import them by name."""

from __future__ import annotations

import os
import signal
import time
import zlib
from typing import Any

from popkit_power.journal import codec
from popkit_power.journal.writer import Damage, Journal, segment_name
from popkit_power.protocol import EVENT_TYPES, make_event

SESSION = "20261124-100000-test01"
ORIGIN = "testhost-abc123"

#: A value of each field kind of protocol.EVENT_TYPES, for events that fill in every field.
KIND_SAMPLES: dict[str, Any] = {
    "string": "value",
    "integer": 7,
    "number": 0.5,
    "boolean": True,
    "array": ["src/app.py", "src/db.py"],
    "object": {"Edit": 2, "Read": 5},
}


def sample_data(event_type: str, *, optional: bool = True) -> dict[str, Any]:
    """`data` for a known type with every required field (and, with `optional`, every optional one) filled in."""
    _channel, fields = EVENT_TYPES[event_type]
    return {name: KIND_SAMPLES[kind] for name, (kind, required) in fields.items() if required or optional}


def sample_event(event_type: str, *, sender: str = "agent-a", ts: str | None = None) -> dict[str, Any]:
    """A valid envelope of a known type (a direct message gets a recipient)."""
    to = "agent-b" if event_type == "message.direct" else None
    return make_event(event_type, sample_data(event_type), sender=sender, session=SESSION, origin=ORIGIN, to=to,
                      ts=ts)


def body_of(event: dict[str, Any]) -> bytes:
    """The serialized envelope as Session.append_events writes it."""
    return codec.dumps(event).encode("utf-8")


def body(text: str = "hello", *, sender: str = "agent-a", **data: Any) -> bytes:
    """The body of a broadcast message with `text` and any extra data fields."""
    event = make_event("message.broadcast", {"text": text, **data}, sender=sender, session=SESSION, origin=ORIGIN)
    return body_of(event)


def without_journal_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A record as read, minus the fields the journal adds (`seq`, `crc`): the envelope that was appended."""
    return {key: value for key, value in record.items() if key not in ("seq", "crc")}


def raw_lines(journal: Journal) -> list[tuple[int, int, bytes]]:
    """(segment, byte offset, line) of every line of every segment, the last one even without its newline."""
    lines = []
    for segment in journal.segments():
        with open(os.path.join(journal.directory, segment_name(segment)), "rb") as handle:
            data = handle.read()
        offset = 0
        for line in data.split(b"\n"):
            if not line and offset == len(data):
                break
            complete = offset + len(line) < len(data)
            lines.append((segment, offset, line + b"\n" if complete else line))
            offset += len(line) + 1
    return lines


def read_all(journal: Journal) -> tuple[list[dict[str, Any]], list[Damage]]:
    """Every record a reader returns from the start, and the damage it reported."""
    damaged: list[Damage] = []
    return list(journal.reader(on_damage=damaged.append)), damaged


def segment_path(journal: Journal, segment: int = 1) -> str:
    return os.path.join(journal.directory, segment_name(segment))


# -- child processes --------------------------------------------------------------------------------------------------

def append_many(directory: str, writer: int, count: int, segment_max_bytes: int, barrier: Any) -> None:
    """Wait for the other writers at `barrier`, then append `count` records one by one, each naming its writer and
    its own running number (multiprocessing target)."""
    with Journal(directory, segment_max_bytes=segment_max_bytes) as journal:
        bodies = [body(f"writer {writer} record {number}", writer=writer, number=number) for number in range(count)]
        barrier.wait()
        for one in bodies:
            journal.append([one])


def kill_round_body(round_number: int, number: int) -> bytes:
    """The body a killed writer appends as its `number`th record of round `round_number`: about one in eight is
    large (up to ~200 KB) so that a kill can land inside a write, the rest are small."""
    mix = zlib.crc32(f"{round_number}:{number}".encode())
    size = 20_000 + mix % 180_000 if mix % 8 == 0 else 20 + mix % 300
    event = {"v": 1, "id": f"r{round_number}-n{number}", "ts": "2026-11-24T10:00:00.000000Z", "origin": ORIGIN,
             "session": SESSION, "from": f"writer-{round_number}", "ch": "broadcast", "type": "message.broadcast",
             "data": {"text": "x" * size, "round": round_number, "number": number}}
    return body_of(event)


def append_until_killed(directory: str, round_number: int, report_fd: int, segment_max_bytes: int) -> None:
    """Append records forever, writing each returned seq (8 bytes) to `report_fd` after the append returned."""
    journal = Journal(directory, segment_max_bytes=segment_max_bytes)
    number = 0
    while True:
        appended = journal.append([kill_round_body(round_number, number)])
        os.write(report_fd, appended.first_seq.to_bytes(8, "little"))
        number += 1


def append_then_tear(directory: str, round_number: int, report_fd: int, whole: int) -> None:
    """Append `whole` records (reporting their seqs), then start one more append whose write stops halfway, and
    SIGKILL this process there: the torn tail a writer killed in mid-write leaves behind."""
    journal = Journal(directory)
    for number in range(whole):
        appended = journal.append([kill_round_body(round_number, number)])
        os.write(report_fd, appended.first_seq.to_bytes(8, "little"))

    real_write = os.write

    def write_half_and_die(fd: int, data: bytes) -> int:
        real_write(fd, data[: max(1, len(data) // 2)])
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable: SIGKILL is not deliverable late")

    os.write = write_half_and_die  # type: ignore[assignment]  # this child only, it dies in the next line
    journal.append([kill_round_body(round_number, whole)])


def append_texts(directory: str, texts: list[str]) -> None:
    """Append one broadcast record per text, one append each (a child process's target)."""
    with Journal(directory) as journal:
        for text in texts:
            journal.append([body(text)])


def batch_body(round_number: int, batch: int, index: int, size: int) -> bytes:
    """Record `index` of the `size` records of batch `batch` that a killed writer appends in round `round_number`:
    about a third are large (100-200 KB) so that a kill lands inside a write."""
    mix = zlib.crc32(f"{round_number}:{batch}:{index}".encode())
    length = 100_000 + mix % 100_000 if mix % 3 == 0 else 20 + mix % 300
    event = {"v": 1, "id": f"r{round_number}-b{batch}-i{index}", "ts": "2026-11-29T10:00:00.000000Z",
             "origin": ORIGIN, "session": SESSION, "from": f"writer-{round_number}", "ch": "broadcast",
             "type": "message.broadcast", "data": {"text": "x" * length, "round": round_number, "batch": batch,
                                                   "index": index, "size": size}}
    return body_of(event)


def append_batches_until_killed(directory: str, round_number: int, report_fd: int,
                                segment_max_bytes: int = 4 * 1024 * 1024) -> None:
    """Append batches of 2-5 records forever; after each append returned, write its first and last seq (8 bytes
    each) to `report_fd`."""
    journal = Journal(directory, segment_max_bytes=segment_max_bytes)
    sizes = [2 + zlib.crc32(f"{round_number}:{n}".encode()) % 4 for n in range(1000)]
    for batch, size in enumerate(sizes):
        appended = journal.append([batch_body(round_number, batch, index, size) for index in range(size)])
        os.write(report_fd, appended.first_seq.to_bytes(8, "little") + appended.last_seq.to_bytes(8, "little"))
    raise AssertionError("not killed in time")


def read_reports(fd: int, wanted: int | None, *, width: int = 8) -> list[bytes]:
    """Reports of `width` bytes a child wrote to a pipe: `wanted` of them (blocking), or all until it closes."""
    data = b""
    while wanted is None or len(data) < width * wanted:
        chunk = os.read(fd, width * wanted - len(data) if wanted else 65536)
        if not chunk:
            break
        data += chunk
    return [data[i:i + width] for i in range(0, len(data) - len(data) % width, width)]


def run_child(target: Any, *args: Any) -> int:
    """Fork a child that runs `target(*args)` and never returns into the test runner; return its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            target(*args)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    return pid


# -- event timelines for the projector ---------------------------------------------------------------------------------

#: 2026-11-24T10:00:00Z, the start of every test timeline.
EPOCH = 1795514400


def ts_at(seconds: float) -> str:
    """The event timestamp `seconds` after EPOCH, with microseconds (as protocol.utc_now writes it)."""
    micros = round(seconds * 1_000_000)
    whole, fraction = divmod(micros, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(EPOCH + whole)) + f".{fraction:06d}Z"


class Timeline:
    """Builds a list of journal records (with seq, increasing ts, fixed ids) as a reader would return them."""

    def __init__(self, session: str = SESSION, origin: str = ORIGIN) -> None:
        self.events: list[dict[str, Any]] = []
        self.clock = 0.0
        self.session = session
        self.origin = origin

    def add(self, event_type: str, sender: str, *, to: str | None = None, after: float = 1.0,
            channel: str | None = None, **data: Any) -> dict[str, Any]:
        """Append one event `after` seconds after the previous one and return it."""
        self.clock += after
        seq = len(self.events) + 1
        event: dict[str, Any] = {"seq": seq, "v": 1, "id": f"{seq:032x}", "ts": ts_at(self.clock),
                                 "origin": self.origin, "session": self.session, "from": sender,
                                 "ch": channel or EVENT_TYPES.get(event_type, ("broadcast",))[0], "type": event_type}
        if to is not None:
            event["to"] = to
        event["data"] = data
        self.events.append(event)
        return event

    def envelopes(self) -> list[dict[str, Any]]:
        """The events without their seq: what a writer appends (the journal gives the seq back)."""
        return [without_journal_fields(event) for event in self.events]


def claude_parent(directory: Any, script: Any) -> Any:
    """A shell script named `claude` in `directory/bin` that runs `script` with its arguments as its child: a real
    parent process named like Claude Code, for the checks that look up the process tree."""
    claude = directory / "bin" / "claude"
    claude.parent.mkdir()
    claude.write_text(f'#!/bin/sh\n"{script}" "$@"\nexit $?\n')
    claude.chmod(0o755)
    return claude


# -- a real redis-server ----------------------------------------------------------------------------------------------

REDIS_SERVER = "/usr/bin/redis-server"


def free_port() -> int:
    """A free TCP port on the loopback interface (from the OS's ephemeral range, so never Redis's 6379)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    assert port != 6379, "the machine's Redis port is never used"
    return port


class RedisServer:
    """A redis-server of the test's own: on a free loopback port (and a unix socket) in `directory`, with no
    persistence, so it starts empty. `stop()` ends it politely, `kill()` with SIGKILL, and `start()` starts it
    again on the same port (empty again: nothing was saved)."""

    def __init__(self, directory: str, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.socket_path = os.path.join(directory, "redis.sock")
        self.log_path = os.path.join(directory, "redis.log")
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        import subprocess

        os.makedirs(self.directory, exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory, "--logfile", self.log_path, "--unixsocket", self.socket_path,
             "--unixsocketperm", "700", "--daemonize", "no", "--enable-debug-command", "local"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not start: {self.log_tail()}")
            time.sleep(0.01)
        return self

    def answers(self) -> bool:
        """Whether it answers PING now (a raw socket: the test's own client library is not under test here)."""
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(15)
        self.process = None

    def log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as log:
                return " | ".join(log.read().splitlines()[-5:])
        except OSError:
            return "(no log)"


def until(condition: Any, seconds: float, what: str) -> Any:
    """Wait for a promise with a deadline (the test fails if it is not kept in time): `condition()`'s first true
    value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.02)


def end_foreground(process: Any, seconds: float = 15) -> None:
    """A process the test started in the foreground (`popkit-power coordinator`), ended as a person ends it (SIGTERM)
    and killed if it does not end within `seconds`."""
    import signal
    import subprocess

    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def remove_tree(path: str) -> None:
    """`rm -rf path`, again while a process still writing into it makes new files under it (as rm -rf does, at
    most a few rounds)."""
    import shutil

    for _ in range(100):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            return
    raise AssertionError(f"{path} could not be removed")


def replace_power_dir(home: str, session_id: str, *, keep_old: bool = False) -> None:
    """Put a new power directory, whose active session has the same id (and an empty journal), in `home`'s place in
    one step (renameat2's RENAME_EXCHANGE), so that a process watching the path sees it replaced, never missing;
    then remove the old one (or, with `keep_old`, leave it at `home` + ".new")."""
    import ctypes

    from popkit_power.home import set_active_session
    from popkit_power.session import Session

    new = f"{home}.new"
    Session(new, session_id, create=True)
    set_active_session(new, session_id)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(new), -100, os.fsencode(home), 2) != 0:  # AT_FDCWD, RENAME_EXCHANGE
        raise OSError(ctypes.get_errno(), f"exchanging {new} and {home}")
    if not keep_old:
        remove_tree(new)


def race_barrier(event_prefix: str, variable: str) -> str:
    """A sitecustomize.py for racing CLI processes (loaded through PYTHONPATH): each one, just before it appends an
    event whose type starts with `event_prefix`, marks itself in the folder named by $`variable` and waits (60 s at
    most) until two have come that far, so both appends reach the journal and its order decides."""
    return f"""
import os, time
from popkit_power.session import Session
_publish = Session.publish
def publish(self, event_type, data, **kwargs):
    if event_type.startswith({event_prefix!r}) and os.environ.get({variable!r}):
        barrier = os.environ[{variable!r}]
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 60
        while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
            time.sleep(0.002)
    return _publish(self, event_type, data, **kwargs)
Session.publish = publish
"""


def two_machines_of_one_session(tmp_path: Any, objective: str, config: str) -> tuple[list[str], Any, Any]:
    """Two power directories, `a` and `b` under `tmp_path`, each with `config` as its config.json, in which the same
    session is active: started in the first, joined (made with its id) in the second, as `join` does on a second
    machine. Returns the two homes and the two sessions."""
    from popkit_power.home import set_active_session
    from popkit_power.session import Session, start_session

    homes = [str(tmp_path / "a"), str(tmp_path / "b")]
    for home in homes:
        os.makedirs(home)
        with open(os.path.join(home, "config.json"), "w") as file:
            file.write(config)
    a = start_session(homes[0], objective, sender="human")
    b = Session(homes[1], a.id, create=True)
    set_active_session(homes[1], a.id)
    return homes, a, b
