"""How Claude Code reaches the hook: a process per call (`command`, the default), or an HTTP request to the running
coordinator (`http`, set by `hook_transport` in config.json). What `install` writes and the server checks.

Over HTTP (docs/hook-setup.md, "Hooks over HTTP"):

- The events of every tool call and of an agent's life go to `http://127.0.0.1:<hook_port>/popkit-power/hook`
  (`HTTP_EVENTS`). SessionStart stays a command hook: Claude Code 2.1.330 sends no HTTP hook for it, and it is
  where the agent's process id is learnt. The guardrails' PreToolUse and the idle agent's waiter stay commands too:
  a guard that nobody answers must deny, not pass, and the waiter waits for hours.
- Over TLS, with the project's own certificate: a self-signed one for 127.0.0.1 only, that can sign nothing else
  (CA:FALSE), its key 0600 in the power directory. Claude Code trusts it through NODE_EXTRA_CA_CERTS in the
  settings' `env` (which it reads at start and on each change of the file). Any other process on the machine can
  listen on the port while the coordinator is down, but without the key Claude Code sends it nothing: no tool
  input, no secret, and its answers never reach the model.
- Each request carries the project's secret in `SECRET_HEADER`, written as a literal header into the project's
  `.claude/settings.local.json` (kept 0600). The coordinator answers only requests that carry it; the secret lives
  in the power directory (`SECRET_FILE`, 0600) and is made once per project, by `install`.
"""

from __future__ import annotations

import json
import os
import secrets

from ._fs import open_file, read_file, write_file_atomically
from .errors import ConfigError, PowerModeError
from .loopback import LOOPBACK

COMMAND, HTTP = "command", "http"
TRANSPORTS = (COMMAND, HTTP)
PATH = "/popkit-power/hook"
SECRET_HEADER = "X-Popkit-Hook-Secret"
SECRET_FILE = "hook-secret"
CERT_FILE, KEY_FILE = "hook-cert.pem", "hook-key.pem"
#: The certificate Claude Code trusts, with the ones NODE_EXTRA_CA_CERTS named before (`trusted_certificates`).
BUNDLE_FILE = "hook-trust.pem"
#: The certificate files NODE_EXTRA_CA_CERTS named when `install` ran (a JSON list), bundled at every install.
SOURCES_FILE = "hook-trust-sources.json"
#: Written by the process that answers the hooks while it does (its pid and port), for `status`.
SERVED_FILE = "hook-server.json"
TRUST_ENV = "NODE_EXTRA_CA_CERTS"
CERT_DAYS = 3650
#: The events sent over HTTP when it is on: every one the hook records but SessionStart (never sent over HTTP by
#: Claude Code) and PreToolUse (the guard, which must deny when unanswered).
HTTP_EVENTS = ("PostToolUse", "PostToolUseFailure", "SubagentStart", "SubagentStop", "Stop", "SessionEnd")
#: Seconds Claude Code waits for an answer over HTTP (install writes them), and so how long a call may wait for its
#: agent in the server: a call waiting longer has no caller left. A stopped coordinator that still holds its port
#: costs each call this much; an answer takes milliseconds, and one cut off loses nothing (its news comes again).
HTTP_TIMEOUT = 3
HTTP_START_TIMEOUT = 10  # a subagent's welcome may fold the journal since the last snapshot
#: The User-Agent of doctor's look at the server: its refusal (no secret) is expected and not logged.
DOCTOR_AGENT = "popkit-power-doctor"
#: Set in the environment the server gives the hook's handlers: how the call came (hook/miswired.py says it).
VIA_ENV = "POPKIT_HOOK_VIA"


def url(port: int) -> str:
    """The URL Claude Code posts hook events to."""
    return f"https://{LOOPBACK}:{port}{PATH}"


def port_of(address: object) -> int | None:
    """The port of a URL `url` made, or None for any other address (a user's own http hook)."""
    if not isinstance(address, str):
        return None
    head, _, rest = address.partition(f"https://{LOOPBACK}:")
    port, _, path = rest.partition("/")
    if head or not port.isdigit() or f"/{path}" != PATH or not 0 < int(port) < 65536:
        return None
    return int(port)


def read_secret(power_dir: str) -> str | None:
    """The project's hook secret, or None when `install --transport http` has not made one. ConfigError naming the
    file when it holds anything but what `ensure_secret` writes; UnsafePathError for a link or a non-file there."""
    path = os.path.join(power_dir, SECRET_FILE)
    try:
        text = read_file(path, 1024).strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    if not 32 <= len(text) <= 128 or text.strip(b"0123456789abcdef"):
        raise ConfigError(f"{path} does not hold a hook secret (32 to 128 hex digits): remove it and run "
                          f"popkit-power install --transport http, which makes a new one")
    return text.decode("ascii")


def ensure_secret(power_dir: str) -> str:
    """The project's hook secret, made (256 random bits, hex: no `$`, which Claude Code would interpolate in a
    header) and written 0600 the first time, or in place of one that is not a secret."""
    try:
        existing = read_secret(power_dir)
    except ConfigError:
        existing = None
    if existing is not None:
        return existing
    secret = secrets.token_hex(32)
    write_file_atomically(os.path.join(power_dir, SECRET_FILE), secret.encode("ascii") + b"\n")
    return secret


def certificate_paths(power_dir: str) -> tuple[str, str]:
    """(certificate, key) of the project's hook server, in the power directory."""
    return os.path.join(power_dir, CERT_FILE), os.path.join(power_dir, KEY_FILE)


def certificate_identity(power_dir: str) -> tuple[int, ...] | None:
    """What tells the certificate and key now in place from others (inode and change time of each), or None when
    either is missing; UnsafePathError for a link or a non-file in their place (TLS libraries would follow it)."""
    found: list[int] = []
    for path in certificate_paths(power_dir):
        try:
            fd = open_file(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        found += [info.st_ino, info.st_mtime_ns, info.st_size]
    return tuple(found)


def write_served(power_dir: str, port: int) -> None:
    """Say that this process answers the hooks on `port` now (`SERVED_FILE`: status reads it)."""
    write_file_atomically(os.path.join(power_dir, SERVED_FILE), json.dumps({"pid": os.getpid(), "port": port}).encode())


def remove_served(power_dir: str) -> None:
    try:
        os.unlink(os.path.join(power_dir, SERVED_FILE))
    except FileNotFoundError:
        pass


def served(power_dir: str) -> dict[str, int] | None:
    """{"pid", "port"} of the process that says it answers the hooks, or None (none says so, or it cannot be read).
    Whether that process still runs is the reader's question (the coordinator's lease tells)."""
    try:
        found = json.loads(read_file(os.path.join(power_dir, SERVED_FILE), 4096))
    except (OSError, ValueError, PowerModeError):
        return None
    if not isinstance(found, dict) or not all(isinstance(found.get(key), int) for key in ("pid", "port")):
        return None
    return {"pid": found["pid"], "port": found["port"]}


def ensure_certificate(power_dir: str) -> str:
    """The path of the project's certificate for 127.0.0.1, made with its key the first time (EC P-256, valid
    CERT_DAYS, self-signed, CA:FALSE: trusting it lets nobody sign anything else)."""
    cert_path, key_path = certificate_paths(power_dir)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "popkit-power hooks (127.0.0.1)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                                  critical=True)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .sign(key, hashes.SHA256()))
    write_file_atomically(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    write_file_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path


def trusted_certificates(power_dir: str, others: list[str]) -> str:
    """What NODE_EXTRA_CA_CERTS is to name: the project's certificate, or, when certificates were named there
    already (`others`: the files a company proxy's CA may be in), a bundle of theirs and ours, so that setting it
    for the hooks does not drop them. The files named once are remembered (`SOURCES_FILE`) and bundled again at
    every install, wherever it is run from, as long as they exist; each time from their current content."""
    cert_path = ensure_certificate(power_dir)
    ours = (cert_path, os.path.join(power_dir, BUNDLE_FILE))
    sources_path = os.path.join(power_dir, SOURCES_FILE)
    try:
        remembered = json.loads(read_file(sources_path, 1 << 16))
    except (OSError, ValueError, PowerModeError):
        remembered = []
    named = [path for path in [*(remembered if isinstance(remembered, list) else []), *others]
             if isinstance(path, str) and os.path.abspath(path) not in ours]
    named = [path for path in dict.fromkeys(named) if os.path.isfile(path)]
    write_file_atomically(sources_path, json.dumps(named).encode("utf-8"))
    if not named:
        return cert_path
    parts = []
    for path in named:
        with open(path, "rb") as handle:
            parts.append(handle.read().strip() + b"\n")
    parts.append(read_file(cert_path))
    bundle = os.path.join(power_dir, BUNDLE_FILE)
    write_file_atomically(bundle, b"".join(parts))
    return bundle
