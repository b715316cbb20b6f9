"""`popkit-power doctor`: every check of a Power Mode set-up, each with what to do about a problem.

Each check returns a `Check`: its name, a verdict (`OK`, `WARN` for something to know, `FAIL` for something that
stops Power Mode working), one line saying what was found, and the fixes. The checks, in the order a person debugs:

    hooks        the hooks registered exactly once (the plugin or a settings file, not both)
    hook runs    each registration's command runs popkit-power-hook, the way Claude Code runs it
    hooks over HTTP  (with hook_transport "http", or hooks that post) the settings post to the port and with the
                 secret config.json and the power directory hold, and the coordinator answers there
    recording    no agent of the active session works unrecorded (its process runs, its transcript moves on)
    config       config.json is valid
    power dir    the power directory and what is in it: yours, not a link, not open to others, modes 0700/0600
    trust        the hook speaks from it: it is $POPKIT_POWER_HOME, or popkit-power here made a session active in it
    journals     the journal passes verify (the active or newest session; all with --all)
    coordinator  the active session's coordinator is alive
    replication  the mode, and the replicator's lag where there is one
    hook.log     the errors the hook logged lately, with what each kind means
"""

from __future__ import annotations

import os
import stat
import time
from typing import Any, NamedTuple

from ..config import Config, load_config
from ..display import clean, cut, short_names
from ..errors import ConfigError, PowerModeError
from ..home import active_session, check_power_dir, list_sessions
from ..hook.log import HOOK_TWICE
from ..journal.lease import DISK_FULL, trouble
from ..journal.lease import held as lease_held
from ..journal.verify import verify_journal
from ..keys import CONFIG_FILE, COORDINATOR_LOG, HOOK_LOG
from ..session import Session
from ..status import coordinator_health, mode_info, replication_info, skipped_entries
from . import hook_errors, registrations
from .install import HOOK_SCRIPT, PLUGIN_COMMAND
from .problems import unreported_problem, untrusted_problem
from .unreported import running_here, unreported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..shapes.state import State

OK, WARN, FAIL = "ok", "warn", "FAIL"
RECENT_SECONDS = 24 * 3600  # hook.log errors younger than this are shown
MAX_WALKED = 20_000  # entries of the power directory looked at for their owner and mode


class Check(NamedTuple):
    name: str
    verdict: str
    found: str
    fixes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "found": self.found, "fixes": list(self.fixes)}


def run_all(power_dir: str, project_dir: str, *, all_sessions: bool = False, home: str | None = None) -> list[Check]:
    """Every check, in order."""
    found = registrations.find(project_dir, home)
    config, config_check = _config(power_dir)
    active = _active(power_dir, config)
    return [_hooks(found, power_dir), *_hook_runs(found), *_over_http(found, power_dir, config, active),
            _recording(active), config_check,
            _power_dir(power_dir), _trust(power_dir),
            *_journals(power_dir, config, all_sessions), _coordinator(active, config),
            _replication(power_dir, config),
            _hook_log(power_dir)]


def _hooks(found: list[dict[str, Any]], power_dir: str) -> Check:
    twice = [error for error in hook_errors.read_errors(power_dir) if error["code"] == HOOK_TWICE
             and error["ts"] is not None and time.time() - error["ts"] < RECENT_SECONDS]
    where = "; ".join(f"{one['where']} ({one['path'] or 'installed'})" for one in found)
    doubled = registrations.duplicates(found)
    remove = ("keep one: remove the settings entries with `popkit-power uninstall` (add --user for ~/.claude), or "
              "the plugin with `/plugin uninstall popkit@popkit-power` in Claude Code")
    if doubled:
        return Check("hooks", FAIL, f"registered {len(found)} times, so every event runs the hook twice (the hook "
                     f"ignores the second, but each costs a process): {where}", (remove,))
    if twice:
        return Check("hooks", FAIL, f"the hook saw events arrive twice ({len(twice)} time(s) in the last day): "
                     f"{twice[-1]['line'][20:200]}" + (f"; registered in {where}" if where else ""),
                     ("you probably also start claude with --plugin-dir while the hooks are in a settings file: "
                      "use one of the two", remove))
    if not found:
        return Check("hooks", WARN, "no settings file here registers the hook and the plugin is not enabled (a "
                     "plugin loaded with claude --plugin-dir is not visible from here)",
                     ("register them: popkit-power install (this project) or popkit-power install --user, or "
                      "load the plugin: claude --plugin-dir /path/to/popkit-power",))
    return Check("hooks", OK, f"registered once: {where}")


def _hook_runs(found: list[dict[str, Any]]) -> list[Check]:
    """Each registered command, run with --version as Claude Code runs it; with none registered, the plugin's
    launcher of this package (what --plugin-dir would run)."""
    runs = [(command, one.get("root")) for one in found for command in one["commands"]] or \
        [(PLUGIN_COMMAND, registrations.package_plugin_root())]
    checks = []
    for command, root in dict.fromkeys(runs):
        works, said = registrations.try_command(command, root)
        shown = cut(command, 99)
        if works:
            checks.append(Check("hook runs", OK, f"{shown} -> {said}"))
            continue
        fixes = [f"install popkit-power where it can be found: pipx install popkit-power puts {HOOK_SCRIPT} in "
                 f"~/.local/bin; or run popkit-power install again from the venv you use (it writes that venv's "
                 f"path); or set POPKIT_POWER_HOOK=/path/to/{HOOK_SCRIPT} in the shell that starts claude"]
        if "${CLAUDE_PLUGIN_ROOT}" not in command and not os.path.isabs(command.split()[0].strip("'\"")):
            fixes.append("this command relies on PATH: Claude Code uses the PATH of the shell that started it")
        checks.append(Check("hook runs", FAIL, f"{shown} does not run the hook ({said}); Claude Code would show "
                            f"exit 127 on every call, or nothing is recorded", tuple(fixes)))
    return checks


def _over_http(found: list[dict[str, Any]], power_dir: str, config: Config,
               active: tuple[Session, State] | None) -> list[Check]:
    """With hooks over HTTP configured or registered: do the settings post where the coordinator answers, with the
    secret it checks, and does it answer now?"""
    from ..hook_transport import HTTP, certificate_paths, read_secret, url

    posted: dict[str, dict[str, list[Any]]] = {}
    for registration in found:  # one URL may be in two settings files: every file's secrets are checked
        for address, one in registration.get("http", {}).items():
            seen = posted.setdefault(address, {"events": [], "secrets": []})
            seen["events"] += one["events"]
            seen["secrets"] += one["secrets"]
    if config.hook_transport != HTTP and not posted:
        return []
    install = "run popkit-power install (it writes the hooks config.json's hook_transport asks for)"
    if config.hook_transport != HTTP:
        return [Check("hooks over HTTP", FAIL, f"the settings post the hooks to {', '.join(posted)}, but config.json "
                      f"says hook_transport {config.hook_transport!r}: no coordinator answers them, so nothing is "
                      f"recorded", (install,))]
    expected = url(config.hook_port)
    if not posted:
        return [Check("hooks over HTTP", FAIL, "config.json says hook_transport \"http\", but no settings file "
                      "posts the hooks", ("run popkit-power install --transport http (without the plugin); or, for "
                                          "the hooks as processes again: popkit-power uninstall (the plugin's stay) "
                                          "or popkit-power install --transport command",))]
    wrong = [address for address in posted if address != expected]
    if wrong:
        return [Check("hooks over HTTP", FAIL, f"the settings post to {', '.join(wrong)}, but the coordinator "
                      f"answers {expected} (hook_port in config.json)", (install,))]
    try:
        secret = read_secret(power_dir)
    except PowerModeError as error:  # not a secret, or a link in its place
        return [Check("hooks over HTTP", FAIL, f"the project's secret cannot be used: {error}", (install,))]
    if secret is None or any(given != secret for one in posted.values() for given in one["secrets"]):
        return [Check("hooks over HTTP", FAIL, "the secret the settings send is not the project's (the power "
                      "directory's hook-secret): every call is refused", (install,))]
    if active is None:
        return [Check("hooks over HTTP", OK, f"posted to {expected}; Power Mode is off, so nothing answers")]
    session, _state = active
    answer = _answers(config.hook_port, certificate_paths(power_dir)[0])
    if answer is None:
        return [Check("hooks over HTTP", OK, f"answered at {expected}")]
    fix = (f"see {os.path.join(session.dir, COORDINATOR_LOG)}; stop and start the session, or run "
           f"popkit-power coordinator",)
    return [Check("hooks over HTTP", FAIL, f"nothing answers {expected} ({answer}): the agents' tool calls are not "
                  f"recorded, and their news waits", fix)]


def _answers(port: int, certificate: str) -> str | None:
    """None when popkit-power's hook server answers on 127.0.0.1:`port` with the project's `certificate` (it
    refuses a request without the secret with 403 and its own words), else what was found instead."""
    import http.client
    import ssl

    from ..hook_transport import DOCTOR_AGENT

    try:
        context = ssl.create_default_context(cafile=certificate)
    except (OSError, ssl.SSLError) as error:
        return f"the certificate {certificate} cannot be read: {error}"
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("POST", "/popkit-power/hook", body=b"{}", headers={"Content-Type": "application/json",
                                                                             "User-Agent": DOCTOR_AGENT})
        reply = connection.getresponse()
        said = reply.read(200)
    except ssl.SSLError as error:
        return f"something else answers there, without the project's certificate ({error.reason})"
    except TimeoutError:
        return ("a process holds the port but does not answer: a coordinator stopped (Ctrl-Z, SIGSTOP), or another "
                "program")
    except OSError as error:
        return error.strerror or str(error)
    finally:
        connection.close()
    if reply.status == 403 and b"X-Popkit-Hook-Secret" in said:
        return None
    return f"something else answers there: HTTP {reply.status}"


def _active(power_dir: str, config: Config) -> tuple[Session, State] | None:
    """The active session and its state, projected once for the checks that read it (read only: no snapshot
    written, damage left to the journals check); None when Power Mode is off."""
    session_id = active_session(power_dir) if os.path.isdir(power_dir) else None
    if session_id is None:
        return None
    session = Session(power_dir, session_id, config, read_only=True)
    try:
        state, _ = session.projection(save_snapshot=False, on_damage=lambda _damage: None)
    finally:
        session.journal.close()
    return session, state


def _recording(active: tuple[Session, State] | None) -> Check:
    """Agents of the active session whose Claude Code process runs here but whose tool calls are no longer
    recorded (unreported.py): the hook stopped running for them."""
    if active is None:
        return Check("recording", OK, "Power Mode is off: no agent to record")
    session, state = active
    here = running_here(state["agents"])
    silent = unreported(state["agents"], now=time.time())
    if silent:
        names = short_names(state)
        return Check("recording", FAIL, "; ".join(unreported_problem(one, names[one["key"]], state["agents"])
                                                  for one in silent),
                     ("register the hooks again: popkit-power install (or load the plugin); Claude Code reads its "
                      "settings again and the agents are recorded from their next tool call",))
    return Check("recording", OK, f"{len(here)} agent(s) of session {session.id} running on this machine, none "
                 f"working unrecorded")


def _config(power_dir: str) -> tuple[Config, Check]:
    path = os.path.join(power_dir, CONFIG_FILE)
    try:
        config = load_config(power_dir)
    except ConfigError as error:
        return Config(), Check("config", FAIL, f"{error}; until it is fixed the hook runs with its last valid "
                                               f"settings (or the defaults) and keeps the guardrails",
                               (f"edit {path}: the settings, their defaults and limits are in the README's "
                                f"'Settings' and popkit_power/config.py",))
    changed = {name: value for name, value in config.as_dict().items() if value != Config().as_dict()[name]}
    shown = ", ".join(f"{name}={value}" for name, value in changed.items()) or "all defaults"
    return config, Check("config", OK, f"{path if os.path.exists(path) else 'no config.json'}: {shown}")


def _power_dir(power_dir: str) -> Check:
    if not os.path.lexists(power_dir):
        return Check("power dir", OK, f"{power_dir} does not exist yet (popkit-power start makes it)")
    try:
        check_power_dir(power_dir)
    except PowerModeError as error:
        return Check("power dir", FAIL, str(error), (f"make it yours and private: chown -R \"$USER\" {power_dir} "
                                                     f"&& chmod -R go-rwx {power_dir}",))
    loose, foreign, walked = [], [], 0
    for directory, dirs, files in os.walk(power_dir):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            walked += 1
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if info.st_uid != os.getuid():
                foreign.append(path)
            elif stat.S_IMODE(info.st_mode) & 0o077 and not stat.S_ISLNK(info.st_mode):
                loose.append(path)
        if walked > MAX_WALKED:
            break
    if foreign:
        return Check("power dir", FAIL, f"{len(foreign)} entr{'ies' if len(foreign) > 1 else 'y'} not yours, such "
                     f"as {foreign[0]}", (f"chown -R \"$USER\" {power_dir}",))
    if loose:
        return Check("power dir", WARN, f"{len(loose)} entr{'ies' if len(loose) > 1 else 'y'} open to others, such "
                     f"as {loose[0]} (popkit-power makes 0700 folders and 0600 files)",
                     (f"chmod -R go-rwx {power_dir}",))
    return Check("power dir", OK, f"{power_dir}: yours, private (0700 folders, 0600 files)")


def _trust(power_dir: str) -> Check:
    untrusted = untrusted_problem(power_dir)
    if untrusted:
        return Check("trust", FAIL, untrusted, (f"look at it first (popkit-power status, popkit-power replay), then "
                                                f"trust it: popkit-power trust; or remove it: rm -r {power_dir}",))
    return Check("trust", OK, f"{power_dir}: trusted (or not made yet)")


def _journals(power_dir: str, config: Config, all_sessions: bool) -> list[Check]:
    sessions = list_sessions(power_dir)
    if not sessions:
        return [Check("journals", OK, "no sessions yet")]
    chosen = sessions if all_sessions else [active_session(power_dir) or sessions[-1]]
    checks = []
    for session_id in chosen:
        try:
            session = Session(power_dir, session_id, config, read_only=True)
            report = verify_journal(session.journal)
            session.journal.close()
        except (OSError, PowerModeError) as error:
            checks.append(Check("journals", FAIL, f"{session_id}: cannot be read: {error}"))
            continue
        if report["ok"]:
            checks.append(Check("journals", OK, f"{session_id}: {report['records']} records, all whole"))
        elif report["torn_tail"] and not (report["damaged"] or report["gaps"] or report["repeats"]):
            checks.append(Check("journals", WARN, f"{session_id}: a torn tail (a writer was killed mid-write)",
                                ("nothing to do: the next append repairs it and keeps its bytes aside",)))
        else:
            checks.append(Check("journals", FAIL, f"{session_id}: {len(report['damaged'])} damaged, "
                                f"{len(report['gaps'])} gap(s), {len(report['repeats'])} repeated seq(s)",
                                (f"popkit-power verify {session_id} lists them; readers skip damaged lines",)))
    if not all_sessions and len(sessions) > 1:
        checks[-1] = checks[-1]._replace(found=checks[-1].found + f" (one of {len(sessions)} sessions: --all "
                                                                  f"checks every one)")
    return checks


def _coordinator(active: tuple[Session, State] | None, config: Config) -> Check:
    if active is None:
        return Check("coordinator", OK, "Power Mode is off: no session needs one")
    session, state = active
    session_id = session.id
    held = lease_held(session.dir)  # a coordinator holds the session's lease now
    health = coordinator_health(state["coordinators"].get(session.origin, state["coordinator"]), time.time(),
                                config.heartbeat_seconds)
    fix = ("run one: popkit-power coordinator (in the foreground), or stop and start the session",)
    if not held:
        return Check("coordinator", FAIL, f"none runs for the active session {session_id}: nobody notices an "
                     f"agent that dies", fix)
    problem = trouble(session.dir)
    log = os.path.join(session.dir, COORDINATOR_LOG)
    if problem is not None:
        advice = ("free space on the disk that holds the power directory: it appends again by itself"
                  if problem.startswith(DISK_FULL) else f"see {log}: it retries by itself "
                  f"once what is named there is fixed")
        return Check("coordinator", FAIL, f"it runs but cannot append its decisions: {problem}", (advice,))
    if not health["alive"]:
        return Check("coordinator", WARN, f"it holds the session but its last status is {health['ago']} "
                     f"(expected every {config.heartbeat_seconds:g} s)", (f"see {log}",))
    return Check("coordinator", OK, f"alive, pid {health.get('pid')}, last status {health['ago']}")


def _replication(power_dir: str, config: Config) -> Check:
    """What mirrors the journal (status.mode_info): for the active session what runs, else what the environment
    selects."""
    session_id = active_session(power_dir) if os.path.isdir(power_dir) else None
    report = None
    if session_id is not None:
        session = Session(power_dir, session_id, config, read_only=True)
        try:
            report = replication_info(session, session.journal.end_position(), time.time())
        finally:
            session.journal.close()
    mode = mode_info(report, session=session_id is not None)
    where = f"{mode['mode']}: {mode['reason']}"
    if not mode["ok"]:
        return Check("replication", FAIL, where, ("popkit-power upstash ping shows the exact failure of the server "
                                                  "this shell's variables name",
                                                  "once it answers: popkit-power replicate (or stop and start the "
                                                  "session: its coordinator runs the replicator)"))
    if mode["mode"] == "file":
        return Check("replication", OK, f"file mode: nothing to replicate ({mode['reason']})")
    if report is None:
        return Check("replication", OK, f"{where}; Power Mode is off, nothing to replicate")
    if report.get("last_error") and report["behind"]:
        return Check("replication", WARN, f"{report['behind']} record(s) behind; last error: {report['last_error']}",
                     (f"see the {COORDINATOR_LOG} of session {session_id}; popkit-power upstash ping shows the exact "
                      f"failure",))
    found = f"{where}; {report.get('pulled') or 0} pulled from {len(report.get('origins') or [])} other machine(s)"
    if report.get("skipped_entries"):  # written into the session's streams by something other than popkit-power
        return Check("replication", WARN, f"{found}; {skipped_entries(report)}",
                     ("something with the credentials writes into the session's streams: see the replicator's log "
                      f"(the {COORDINATOR_LOG} of session {session_id})",))
    return Check("replication", OK, found)


def _hook_log(power_dir: str) -> Check:
    recent = [error for error in hook_errors.read_errors(power_dir)
              if error["ts"] is not None and time.time() - error["ts"] < RECENT_SECONDS]
    path = os.path.join(power_dir, HOOK_LOG)
    if not recent:
        return Check(HOOK_LOG, OK, "no errors in the last day")
    kinds = list(dict.fromkeys(error["advice"] for error in recent if error["advice"]))
    last = recent[-1]["line"]
    return Check(HOOK_LOG, WARN, f"{len(recent)} line(s) in the last day, the latest: {clean(last, 300)}",
                 (*kinds, f"all of them: {path}"))

