"""The agent's config file: defaults, env overrides, and refusals that name what is wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Protocol

import pytest

from agent.daemon import config as config_module
from agent.daemon.config import ConfigError, Secret, load_config

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agent-config.md"
TOKEN = "tok-8f3a9c1e5b7d"


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    return _private(tmp_path / "token", TOKEN + "\n")


class WriteConfig(Protocol):
    def __call__(self, body: str = "", *, api_extra: str = "", api: str | None = None) -> Path: ...


@pytest.fixture
def write_config(tmp_path: Path, token_file: Path) -> WriteConfig:
    """Writes a private config with a valid api section (plus ``api_extra``), unless ``api`` replaces it."""

    def write(body: str = "", *, api_extra: str = "", api: str | None = None) -> Path:
        if api is None:
            api = f"api:\n  server: https://127.0.0.1:6443\n  token_file: {token_file}\n  namespace: ns1\n" \
                  f"  machine_name: node-1\n{api_extra}"
        return _private(tmp_path / "config.yaml", api + body)

    return write


def test_minimal_config_gets_documented_defaults_and_reads_the_token(write_config: WriteConfig) -> None:
    cfg = load_config(write_config(), {})
    assert cfg.api.machine_name == "node-1"
    assert cfg.api.namespace == "ns1"
    assert cfg.api.token == Secret(TOKEN)
    assert cfg.api.token is not None
    assert cfg.api.token.reveal() == TOKEN
    assert cfg.state_dir == Path("/var/lib/lcm-agent")
    assert cfg.mqtt.url == ""
    assert cfg.metrics.address == "127.0.0.1:9737"  # on loopback only
    assert cfg.mqtt.password is None
    assert cfg.timings.heartbeat_period == 10.0
    assert cfg.timings.backoff.window(0) == cfg.timings.backoff_base
    assert cfg.logging.json is True
    assert cfg.logging.level == "INFO"
    assert cfg.secret_values() == (TOKEN,)


def test_secrets_never_show_in_repr_or_str(write_config: WriteConfig, tmp_path: Path) -> None:
    password = _private(tmp_path / "mqtt-pass", "hunter2-mqtt")
    mqtt = f"mqtt:\n  url: mqtts://127.0.0.1:8883\n  password_file: {password}\n"
    cfg = load_config(write_config(mqtt), {})
    for text in (repr(cfg), str(cfg), f"{cfg.api.token}", f"{cfg.mqtt}"):
        assert TOKEN not in text
        assert "hunter2-mqtt" not in text
    assert "***" in repr(cfg)
    assert set(cfg.secret_values()) == {TOKEN, "hunter2-mqtt"}


def test_environment_overrides_the_file(write_config: WriteConfig) -> None:
    env = {
        "LCM_AGENT_API_SERVER": "https://10.0.0.1:443",
        "LCM_AGENT_API_CREATE_IF_MISSING": "yes",
        "LCM_AGENT_TIMINGS_BACKOFF_CAP": "42.5",
        "LCM_AGENT_LOGGING_JSON": "false",
        "LCM_AGENT_LOGGING_LEVEL": "debug",
        "LCM_AGENT_STATE_DIR": "/srv/lcm",
        "LCM_AGENT_CONFIG": "/elsewhere.yaml",  # the CLI's, not a setting: passes
        "PATH": "/usr/bin",  # not ours: ignored
    }
    cfg = load_config(write_config("logging:\n  json: true\n"), env)
    assert cfg.api.server == "https://10.0.0.1:443"
    assert cfg.api.create_if_missing is True
    assert cfg.timings.backoff_cap == 42.5
    assert cfg.logging.json is False
    assert cfg.logging.level == "DEBUG"
    assert cfg.state_dir == Path("/srv/lcm")


def test_empty_environment_value_unsets_an_optional_path(write_config: WriteConfig, tmp_path: Path) -> None:
    path = write_config(api_extra=f"  ca_file: {tmp_path / 'ca.pem'}\n")
    assert load_config(path, {}).api.ca_file == tmp_path / "ca.pem"
    assert load_config(path, {"LCM_AGENT_API_CA_FILE": ""}).api.ca_file is None


def test_machine_name_defaults_to_the_lowercased_host_name(
    write_config: WriteConfig, token_file: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("platform.node", lambda: "Worker-07")
    api = f"api:\n  server: https://127.0.0.1:6443\n  token_file: {token_file}\n  namespace: ns1\n"
    assert load_config(write_config(api=api), {}).api.machine_name == "worker-07"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_config_open_to_others_is_refused_naming_path_and_mode(write_config: WriteConfig, mode: int) -> None:
    path = write_config()
    path.chmod(mode)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} has mode {mode:04o}.*chmod 600"):
        load_config(path, {})


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_config_owned_by_another_user_is_refused(write_config: WriteConfig) -> None:
    path = write_config()
    os.chown(path, 4321, 4321)
    with pytest.raises(ConfigError, match="owned by uid 4321"):
        load_config(path, {})


def test_token_file_readable_by_others_is_refused(write_config: WriteConfig, token_file: Path) -> None:
    token_file.chmod(0o644)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(token_file))} has mode 0644"):
        load_config(write_config(), {})


@pytest.mark.parametrize(
    ("body", "env", "message"),
    [
        ("  servr: https://x\n", {}, r"unknown key 'api\.servr' \(did you mean 'api\.server'\?\)"),
        ("mqtt:\n  uri: mqtt://x\n", {}, r"unknown key 'mqtt\.uri' \(did you mean 'mqtt\.url'\?\)"),
        ("statedir: /x\n", {}, r"unknown key 'statedir' \(did you mean 'state_dir'\?\)"),
        ("  token: inline-secret\n", {}, r"unknown key 'api\.token'"),  # secrets only from files
        ("", {"LCM_AGENT_API_SERVR": "x"}, r"unknown environment variable LCM_AGENT_API_SERVR"),
        ("timings:\n  backoff_cap: ten\n", {}, r"'timings\.backoff_cap' must be a float, got 'ten'"),
        ("logging:\n  json: 'yes'\n", {}, r"'logging\.json' must be a bool"),
        ("  ca_file: certs/ca.pem\n", {}, r"'api\.ca_file' must be an absolute path"),
        ("timings: 5\n", {}, r"'timings' must be a mapping"),
        ("", {"LCM_AGENT_TIMINGS_HEARTBEAT_PERIOD": "soon"}, r"expected a number of seconds"),
        ("", {"LCM_AGENT_LOGGING_JSON": "maybe"}, r"expected true or false"),
        ("timings:\n  heartbeat_period: 0\n", {}, r"timings\.heartbeat_period must be a positive"),
        ("", {"LCM_AGENT_TIMINGS_STOP_GRACE_PERIOD": "nan"}, r"timings\.stop_grace_period must be a pos"),
        ("timings:\n  backoff_cap: .inf\n", {}, r"timings\.backoff_cap must be a positive"),
        ("timings:\n  backoff_base: 60\n  backoff_cap: 30\n", {}, r"backoff_base must not exceed"),
        ("logging:\n  level: chatty\n", {}, r"logging\.level 'chatty'"),
        ("mqtt:\n  url: http://broker\n", {}, r"mqtt\.url 'http://broker' must be an mqtt://"),
        ("mqtt:\n  cert_file: /etc/c.pem\n", {}, r"cert_file and mqtt\.key_file go together"),
        ("metrics:\n  address: localhost:9737\n", {}, r"'localhost' is not an IP address"),
        ("metrics:\n  address: 9737\n", {}, r"'metrics\.address' must be a str"),
        ("", {"LCM_AGENT_METRICS_ADDRESS": "127.0.0.1"}, r"metrics\.address: .* must be host:port"),
        ("", {"LCM_AGENT_METRICS_ADDRESS": "[::1]:99999"}, r"the port must be a number from 0 to 65535"),
        ("", {"LCM_AGENT_API_SERVER": "127.0.0.1:6443"}, r"api\.server '127\.0\.0\.1:6443' must be an http"),
        ("", {"LCM_AGENT_API_NAMESPACE": ""}, r"api\.namespace '' must be set"),
        ("", {"LCM_AGENT_API_MACHINE_NAME": "Node_1"}, r"machine name 'Node_1' is not a Kubernetes object"),
        ("", {"LCM_AGENT_API_KUBECONFIG": "/root/.kube/config"}, r"exclude each other"),
        ("", {"LCM_AGENT_API_SERVER": ""}, r"set api\.server and api\.token_file, or api\.kubeconfig"),
        ("  token_lifetime: 60\n", {}, r"api\.token_lifetime must be at least 600 seconds .*got 60"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    write_config: WriteConfig, body: str, env: dict[str, str], message: str,
) -> None:
    api_extra, top = (body, "") if body.startswith("  ") else ("", body)
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(top, api_extra=api_extra), env)


@pytest.mark.parametrize(
    ("text", "message"),
    [("api: [unclosed\n", "is not valid YAML"), ("- a\n- b\n", "must be a mapping of sections, not list")],
)
def test_unparseable_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_private(tmp_path / "config.yaml", text), {})


def test_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"cannot read config {re.escape(str(tmp_path))}/nope\.yaml"):
        load_config(tmp_path / "nope.yaml", {})


def test_kubeconfig_alone_is_enough_and_must_be_private(tmp_path: Path) -> None:
    kubeconfig = _private(tmp_path / "kubeconfig", "apiVersion: v1\n")
    path = _private(tmp_path / "config.yaml", f"api:\n  kubeconfig: {kubeconfig}\n  namespace: ns1\n"
                                               "  machine_name: m1\nmqtt:\n")
    cfg = load_config(path, {})
    assert cfg.api.kubeconfig == kubeconfig
    assert cfg.api.token is None
    kubeconfig.chmod(0o644)
    with pytest.raises(ConfigError, match="kubeconfig has mode 0644"):
        load_config(path, {})


def test_docs_describe_every_key_and_its_variable() -> None:
    text = DOCS.read_text()
    for env_name, (section, key) in config_module._known_keys().items():
        dotted = f"{section}.{key}" if section else key
        assert f"`{dotted}`" in text, dotted
        assert f"`{env_name}`" in text, env_name
