"""Setting hooks over HTTP up and taking them down: `install --transport http|command` switches the registered hooks
(never both at once), writes what Claude Code needs (URL, secret, the certificate to trust), and `doctor` names what
does not fit."""

from __future__ import annotations

import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hook_http_support import serving, turn_on_http
from test_doctor import doctor, enable_plugin

from popkit_power.cli import main
from popkit_power.hook_transport import HTTP_EVENTS, SECRET_HEADER, certificate_paths
from popkit_power.session import start_session
from popkit_power.setup.install import HOOK_EVENTS, HOOK_PORTS


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder, a HOME of the test's own (Claude Code's user settings live there), no inherited trust."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NODE_EXTRA_CA_CERTS", raising=False)
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def install(project: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["install", "--project-dir", str(project), *args])


def settings(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((project / ".claude" / "settings.local.json").read_text())
    return loaded


def handlers(project: Path) -> dict[str, list[dict[str, Any]]]:
    """Every event's handlers, in order."""
    return {event: [handler for group in groups for handler in group["hooks"]]
            for event, groups in settings(project).get("hooks", {}).items()}


def config(power_dir: str) -> dict[str, Any]:
    """config.json as written ({} when there is none)."""
    path = Path(power_dir, "config.json")
    loaded: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return loaded


def test_install_over_http_and_back_never_registers_both(power_dir: str, project: Path) -> None:
    assert install(project, "--transport", "http").exit_code == 0
    over_http = handlers(project)
    port = config(power_dir)["hook_port"]
    assert config(power_dir)["hook_transport"] == "http" and port in HOOK_PORTS
    secret = Path(power_dir, "hook-secret").read_text().strip()
    for event in HOOK_EVENTS:
        kinds = [handler["type"] for handler in over_http[event]]
        if event in HTTP_EVENTS:
            (posted,) = [handler for handler in over_http[event] if handler["type"] == "http"]
            assert posted == {"type": "http", "url": f"https://127.0.0.1:{port}/popkit-power/hook",
                              "headers": {SECRET_HEADER: secret}, "timeout": 10 if event == "SubagentStart" else 3,
                              "onFailure": "continue"}
            assert kinds == (["http", "command"] if event == "Stop" else ["http"]), (event, kinds)  # + the waiter
        else:
            assert kinds == ["command"], event
    assert settings(project)["env"] == {"NODE_EXTRA_CA_CERTS": certificate_paths(power_dir)[0]}
    assert (os.stat(project / ".claude" / "settings.local.json").st_mode & 0o777) == 0o600
    assert install(project, "--transport", "http").output.startswith("already installed"), "idempotent"

    assert install(project, "--transport", "command").exit_code == 0
    back = handlers(project)
    assert all(handler["type"] == "command" for handlers_ in back.values() for handler in handlers_)
    assert all(len([h for h in back[event] if not h["command"].endswith(" wake")]) == 1 for event in HOOK_EVENTS)
    assert "env" not in settings(project), "the certificate's trust goes with the hooks"
    assert config(power_dir)["hook_transport"] == "command" and config(power_dir)["hook_port"] == port

    assert install(project, "--transport", "http").exit_code == 0
    assert config(power_dir)["hook_port"] == port, "the same port again, while it is free"
    assert CliRunner().invoke(main, ["uninstall", "--project-dir", str(project)]).exit_code == 0
    assert not (project / ".claude" / "settings.local.json").exists(), "nothing of ours is left"


def test_a_plain_install_follows_config_json(power_dir: str, project: Path) -> None:
    turn_on_http(power_dir)
    assert install(project).exit_code == 0
    assert handlers(project)["PostToolUse"][0]["type"] == "http"


def test_guardrails_stay_a_command_hook_over_http(power_dir: str, project: Path) -> None:
    """A guard nobody answers would let the call pass: it stays a process, which denies when it cannot decide."""
    os.makedirs(power_dir)
    Path(power_dir, "config.json").write_text(json.dumps({"guardrail_paths": ["*.env"]}))
    assert install(project, "--transport", "http").exit_code == 0
    (guard,) = handlers(project)["PreToolUse"]
    assert guard["type"] == "command" and guard["command"].endswith("popkit-power-hook")


def test_a_port_taken_by_someone_else_is_replaced_at_install(power_dir: str, project: Path) -> None:
    turn_on_http(power_dir)
    taken = config(power_dir)["hook_port"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        assert install(project, "--transport", "http").exit_code == 0
    assert config(power_dir)["hook_port"] != taken
    assert handlers(project)["PostToolUse"][0]["url"] == f"https://127.0.0.1:{config(power_dir)['hook_port']}" \
                                                          f"/popkit-power/hook"


def test_over_http_is_refused_for_the_user_settings_and_beside_the_plugin_or_a_user_install(
        power_dir: str, project: Path) -> None:
    refused = install(project, "--user", "--transport", "http")
    assert refused.exit_code != 0 and "per project" in refused.output
    assert install(project, "--user").exit_code == 0  # command hooks for every project
    beside = install(project, "--transport", "http")
    assert beside.exit_code != 0 and "recorded twice" in beside.output and "user settings" in beside.output
    assert not (project / ".claude" / "settings.local.json").exists(), "nothing was written"
    assert CliRunner().invoke(main, ["uninstall", "--user"]).exit_code == 0
    enable_plugin(Path(os.environ["HOME"]), Path(__file__).resolve().parents[1])
    with_plugin = install(project, "--transport", "http")
    assert with_plugin.exit_code != 0 and "the plugin popkit@popkit-power" in with_plugin.output


def test_certificates_named_before_are_trusted_with_the_projects(power_dir: str, project: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A corporate proxy's CA in NODE_EXTRA_CA_CERTS: the settings' value would replace it for Claude Code, so it
    names a bundle of both."""
    corporate = tmp_path / "corporate.pem"
    corporate.write_text("-----BEGIN CERTIFICATE-----\nMIIcorporate\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(corporate))
    assert install(project, "--transport", "http").exit_code == 0
    bundle = Path(settings(project)["env"]["NODE_EXTRA_CA_CERTS"])
    assert bundle == Path(power_dir, "hook-trust.pem")
    text = bundle.read_text()
    assert "MIIcorporate" in text and Path(certificate_paths(power_dir)[0]).read_text() in text


def test_a_settings_file_that_names_its_own_trust_is_left_alone(power_dir: str, project: Path) -> None:
    path = project / ".claude" / "settings.local.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"env": {"NODE_EXTRA_CA_CERTS": "/etc/corp.pem"}}))
    refused = install(project, "--transport", "http")
    assert refused.exit_code != 0 and "NODE_EXTRA_CA_CERTS" in refused.output
    assert json.loads(path.read_text()) == {"env": {"NODE_EXTRA_CA_CERTS": "/etc/corp.pem"}}
    assert "hook_transport" not in config(power_dir), "config.json is not switched when the settings are not"


def test_certificates_named_once_stay_trusted_when_install_runs_from_another_shell(
        power_dir: str, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corporate = tmp_path / "corporate.pem"
    corporate.write_text("-----BEGIN CERTIFICATE-----\nMIIcorporate\n-----END CERTIFICATE-----\n")
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(corporate))
    assert install(project, "--transport", "http").exit_code == 0
    monkeypatch.delenv("NODE_EXTRA_CA_CERTS")
    corporate.write_text("-----BEGIN CERTIFICATE-----\nMIIrotated\n-----END CERTIFICATE-----\n")
    assert install(project).exit_code == 0  # a plain install later, from a shell without the variable
    bundle = Path(settings(project)["env"]["NODE_EXTRA_CA_CERTS"]).read_text()
    assert "MIIrotated" in bundle and "MIIcorporate" not in bundle, "still bundled, from its current content"


def test_uninstall_turns_the_transport_back_to_command(power_dir: str, project: Path) -> None:
    assert install(project, "--transport", "http").exit_code == 0
    assert CliRunner().invoke(main, ["uninstall", "--project-dir", str(project)]).exit_code == 0
    assert config(power_dir)["hook_transport"] == "command", "nothing posts: the coordinator need not answer"
    _result, checks = doctor(project)
    assert "hooks over HTTP" not in checks


def test_a_linked_settings_file_gets_no_secret(power_dir: str, project: Path, tmp_path: Path) -> None:
    """settings.local.json linked to a file elsewhere (a dotfiles repository): the secret would land there."""
    shared = tmp_path / "dotfiles-settings.json"
    shared.write_text("{}")
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.local.json").symlink_to(shared)
    refused = install(project, "--transport", "http")
    assert refused.exit_code != 0 and "is a link" in refused.output
    assert shared.read_text() == "{}" and "hook_transport" not in config(power_dir)


def test_the_certificate_names_127_0_0_1_only_and_signs_nothing_else(power_dir: str, project: Path) -> None:
    from cryptography import x509

    assert install(project, "--transport", "http").exit_code == 0
    cert_path, key_path = certificate_paths(power_dir)
    certificate = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == []
    assert (os.stat(key_path).st_mode & 0o777) == 0o600


# -- doctor -----------------------------------------------------------------------------------------------------------

def over_http_check(project: Path) -> dict[str, Any]:
    _result, checks = doctor(project)
    (check,) = checks["hooks over HTTP"]
    return check


def test_doctor_follows_hooks_over_http_from_installed_to_answered(power_dir: str, project: Path) -> None:
    assert install(project, "--transport", "http").exit_code == 0
    check = over_http_check(project)
    assert check["verdict"] == "ok" and "Power Mode is off" in check["found"]
    start_session(power_dir, "Ship it", sender="human")
    check = over_http_check(project)
    assert check["verdict"] == "FAIL" and "nothing answers" in check["found"] and "not recorded" in check["found"]
    with serving(power_dir):
        check = over_http_check(project)
    assert check["verdict"] == "ok" and "answered at https://127.0.0.1:" in check["found"]


def test_doctor_knows_a_listener_without_the_projects_certificate(power_dir: str, project: Path,
                                                                  tmp_path: Path) -> None:
    """Something else on the port (another user's server, say): doctor tells it from the coordinator."""
    from popkit_power.hook_transport import ensure_certificate

    assert install(project, "--transport", "http").exit_code == 0
    start_session(power_dir, "Ship it", sender="human")
    other = tmp_path / "other"
    other.mkdir()
    ensure_certificate(str(other))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate_paths(str(other)))
    with socket.create_server(("127.0.0.1", config(power_dir)["hook_port"])) as listener:
        import threading

        def accept() -> None:
            for _ in range(2):  # doctor's text, then its JSON
                connection, _ = listener.accept()
                try:
                    context.wrap_socket(connection, server_side=True)
                except (ssl.SSLError, OSError):
                    pass
                finally:
                    connection.close()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        check = over_http_check(project)
        thread.join(10)
    assert check["verdict"] == "FAIL" and "without the project's certificate" in check["found"]


@pytest.mark.parametrize("spoil, said", [
    (lambda project, power_dir: Path(power_dir, "hook-secret").write_text("0" * 64), "secret"),
    (lambda project, power_dir: Path(power_dir, "config.json").write_text(
        json.dumps({**config(power_dir), "hook_port": config(power_dir)["hook_port"] + 1})), "hook_port"),
    (lambda project, power_dir: Path(power_dir, "config.json").write_text(
        json.dumps({**config(power_dir), "hook_transport": "command"})), "no coordinator answers them"),
])
def test_doctor_names_settings_that_do_not_fit_the_power_directory(power_dir: str, project: Path, spoil: Any,
                                                                   said: str) -> None:
    assert install(project, "--transport", "http").exit_code == 0
    spoil(project, power_dir)
    check = over_http_check(project)
    assert check["verdict"] == "FAIL" and said in check["found"]
    assert any("popkit-power install" in fix for fix in check["fixes"])


def test_doctor_names_a_secret_that_cannot_be_used(power_dir: str, project: Path, tmp_path: Path) -> None:
    assert install(project, "--transport", "http").exit_code == 0
    secret = Path(power_dir, "hook-secret")
    planted = tmp_path / "planted"
    planted.write_text(secret.read_text())
    secret.unlink()
    secret.symlink_to(planted)
    check = over_http_check(project)
    assert check["verdict"] == "FAIL" and "secret cannot be used" in check["found"] and "link" in check["found"]


def test_doctor_says_http_is_configured_but_nothing_posts(power_dir: str, project: Path) -> None:
    turn_on_http(power_dir)
    assert CliRunner().invoke(main, ["install", "--project-dir", str(project), "--transport", "command"]
                              ).exit_code == 0
    turn_on_http(power_dir)  # config.json edited back by hand
    check = over_http_check(project)
    assert check["verdict"] == "FAIL" and "no settings file posts the hooks" in check["found"]


def test_doctor_says_nothing_of_http_when_it_is_not_used(power_dir: str, project: Path) -> None:
    assert install(project).exit_code == 0
    _result, checks = doctor(project)
    assert "hooks over HTTP" not in checks
