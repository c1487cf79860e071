"""The node agent's settings: one YAML file (``/etc/lcm-agent/config.yaml``) with environment overrides.

cloud-init writes the file once per machine; it names the API endpoint, the machine and the files holding
its credentials, so it is refused when group/other can read or write it or when someone other than root or
the agent owns it. Unknown keys are refused too: a typo (``api.servr``) must fail the start, not silently
fall back to a default. Environment variables ``LCM_AGENT_<SECTION>_<KEY>`` (``LCM_AGENT_API_SERVER``,
``LCM_AGENT_STATE_DIR``) override the file, for systemd drop-ins and tests; every key is in
``docs/agent-config.md``.

Secrets (the API token, the MQTT password) are never written in the file itself: it names files, which are
read here into ``Secret`` values that print as ``***``, and must be private like the config.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import os
import platform
import re
import shlex
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from agent.api.execution import RUNNER_VARS
from agent.kits.addresses import Address, AddressError
from agent.kits.backoff import Backoff

DEFAULT_PATH = Path("/etc/lcm-agent/config.yaml")
ENV_PREFIX = "LCM_AGENT_"
CONFIG_PATH_ENV = "LCM_AGENT_CONFIG"
"""Read by the CLI to find the file; not a setting, so ``load_config`` lets it pass."""

DOCKER_HOST_VAR = "lcm_docker_host"
"""The extra var carrying ``docker.host`` to the playbooks."""

DEFAULT_METRICS_ADDRESS = "127.0.0.1:9737"
"""The agent's metrics port: on loopback, off the ports of the exporters a node commonly runs."""

MIN_TOKEN_LIFETIME = 600
"""kube-apiserver refuses a TokenRequest for less than 10 minutes."""

_LOADED = "loaded"  # field metadata: filled from a file the config names, not a key of its own
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOCKER_HOST = re.compile(r"unix:///\S+|tcp://[^/\s]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


SYSTEM_RELEASE_DIR = Path("/usr/share/lcm-agent/playbooks")
"""Playbooks an operator or a distribution package put on the machine: they win when present."""
BUNDLED_RELEASE_DIR = Path(__file__).resolve().parents[1] / "release" / "playbooks"
"""The playbooks inside the agent's wheel (pyproject's force-include of ``playbooks/``): a release's agent
build carries its own playbooks, so a machine installed by cloud-init has them and a self-upgrade brings
the new release's."""
CHECKOUT_RELEASE_DIR = Path(__file__).resolve().parents[2] / "playbooks"
"""A source checkout's playbooks (an editable install has no bundled tree)."""


def default_release_dir(
    candidates: tuple[Path, ...] = (SYSTEM_RELEASE_DIR, BUNDLED_RELEASE_DIR, CHECKOUT_RELEASE_DIR),
) -> Path:
    """The first of ``candidates`` that is a directory; the bundled tree when none is (the agent then
    fails each ansible item naming that path, which says what is missing)."""
    return next((path for path in candidates if path.is_dir()), BUNDLED_RELEASE_DIR)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, key or variable at fault."""


@dataclass(frozen=True, repr=False)
class Secret:
    """A credential: ``reveal()`` gives the value; ``repr``, ``str`` and f-strings give ``***``."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the regional Kubernetes API and which LCMMachine is this one."""

    server: str = ""
    """``https://host:port`` of the API server; with ``token_file``. Unused with ``kubeconfig``."""
    ca_file: Path | None = None
    """PEM bundle that signs the API server's certificate; None trusts the system's CAs."""
    token_file: Path | None = None
    """File holding the machine's bearer token (0600). The agent renews a ServiceAccount token itself and
    writes the new one here; a token an operator writes here is picked up when the API refuses the old one."""
    kubeconfig: Path | None = None
    """A kubeconfig instead of server + token (a developer's laptop, a kind cluster). 0600."""
    namespace: str = ""
    """Namespace of the machine's LCMMachine. Required: a wrong guess would register in the wrong place."""
    machine_name: str = ""
    """Name of the LCMMachine; the host name (lowercased) when empty."""
    create_if_missing: bool = False
    """Create the LCMMachine as ``type: unassigned`` when it does not exist, instead of waiting for it."""
    token_lifetime: int = 86400
    """Seconds each renewed token is asked to live (at least 600, the API server's minimum; its
    ``--service-account-max-token-expiration`` may shorten it). A token is renewed after 80% of its life,
    so a machine that is off for longer than that needs re-provisioning (docs/security.md)."""
    token: Secret | None = field(default=None, metadata={_LOADED: True})
    """The content of ``token_file``."""


@dataclass(frozen=True)
class MqttSettings:
    """The telemetry broker; an empty ``url`` turns telemetry off (Kubernetes alone still works)."""

    url: str = ""
    """``mqtt://host:1883`` or ``mqtts://host:8883``."""
    username: str = ""
    """This node's broker user; the broker's ACL limits it to the node's own topic subtree."""
    password_file: Path | None = None
    """File holding the broker password (0600)."""
    ca_file: Path | None = None
    """PEM bundle that signs the broker's certificate (``mqtts``); None trusts the system's CAs."""
    cert_file: Path | None = None
    """Client certificate, for brokers that authenticate nodes by certificate instead of password."""
    key_file: Path | None = None
    """Private key of ``cert_file`` (0600)."""
    buffer_size: int = 1000
    """Messages kept while the broker is unreachable (a few hundred KiB); beyond it the oldest are dropped
    and counted in the next heartbeat."""
    password: Secret | None = field(default=None, metadata={_LOADED: True})
    """The content of ``password_file``."""


@dataclass(frozen=True)
class TimingSettings:
    """Timings; seconds throughout."""

    watch_inactivity_timeout: float = 150.0
    """A watch silent this long is presumed dead (half-open TCP) and restarted. Must exceed the API
    server's bookmark interval (60 s)."""
    backoff_base: float = 1.0
    """First retry window after a failed item or a lost API connection; doubles per failure."""
    backoff_cap: float = 300.0
    """Largest retry window: a broken item is retried at least this often once the cause is fixed."""
    heartbeat_period: float = 10.0
    """MQTT heartbeat interval: how quickly the regional side notices a dead node."""
    host_info_period: float = 60.0
    """How often host facts are re-collected; hostInfo is written only when they changed."""
    stop_grace_period: float = 60.0
    """On SIGTERM, how long the running item may take before it is cancelled. Keep it below the unit's
    ``TimeoutStopSec`` so the journal is persisted before systemd kills the agent."""

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=self.backoff_cap)


@dataclass(frozen=True)
class LoggingSettings:
    """What the agent logs and how."""

    level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    json: bool = True
    """One JSON object per line, for journald and log shippers; False gives plain text for a terminal."""


@dataclass(frozen=True)
class DockerSettings:
    """The machine's Docker Engine, as the agent (join tokens) and the playbooks (``lcm_docker_host``) reach
    it."""

    host: str = "unix:///var/run/docker.sock"
    """``unix:///path/to/docker.sock`` or ``tcp://host:port``: the lab's nodes each run an engine of their
    own on a socket of their own."""


@dataclass(frozen=True)
class ReconcileSettings:
    """The reconciler (docs/reconciler.md); seconds throughout."""

    check_period: float = 30.0
    """How often the agent checks the node against its desired state between engine events."""
    timeout: float = 300.0
    """A reconciler run longer than this is killed (its whole process group) and counts as failed."""
    backoff_base: float = 10.0
    """Delay before retrying after a failed run; doubles per consecutive failure."""
    backoff_cap: float = 600.0
    """Largest delay between runs on a node that keeps failing to converge."""

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=self.backoff_cap)


@dataclass(frozen=True)
class MetricsSettings:
    """The agent's Prometheus endpoint (docs/metrics.md)."""

    address: str = DEFAULT_METRICS_ADDRESS
    """``host:port`` serving ``/metrics``; loopback by default, so only the node itself (a node exporter's
    textfile, a local Prometheus agent, an operator's curl) reads it; "" turns it off."""


@dataclass(frozen=True)
class RebootSettings:
    """How the agent reboots its machine when the scheduler's ``spec.rebootRequired`` asks (docs/api.md)."""

    command: str = "systemctl reboot"
    """The reboot, split like a shell command line (no shell runs it). It returns at once; the agent is then
    stopped with the rest of the system."""
    restart_is_reboot: bool = False
    """The command restarts the node's engine without rebooting the kernel (the netns lab nodes, which share
    the host's): its success is the reboot done, and the boot id is not looked at. A real machine must come
    back with a new boot id."""
    check_period: float = 2.0
    """Seconds between the engine's desired-state checks after the boot, before the reboot is reported
    completed."""


@dataclass(frozen=True)
class AgentSettings:
    """Everything ``lcm-agent run`` needs."""

    api: ApiSettings = field(default_factory=ApiSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    timings: TimingSettings = field(default_factory=TimingSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    reboot: RebootSettings = field(default_factory=RebootSettings)
    playbook_vars: Mapping[str, str] = field(default_factory=dict)
    """Node-local settings every ansible item gets as extra vars (``lcm_docker_config``, ``lcm_etc_dir``...,
    see docs/swarm.md); they win over the release's params of the same name."""
    state_dir: Path = Path("/var/lib/lcm-agent")
    """Where the journal, artifacts and the desired-state record live; created 0700 by the daemon."""
    release_dir: Path = field(default_factory=default_release_dir)
    """Root of the release's playbooks: an ansible item's ``playbook`` param is resolved inside it only,
    so an item can never run a file from elsewhere on the machine. Default: ``default_release_dir()``."""

    def secret_values(self) -> tuple[str, ...]:
        """Every credential, for the log redaction registry."""
        return tuple(s.reveal() for s in (self.api.token, self.mqtt.password) if s is not None)

    def node_vars(self) -> dict[str, str]:
        """The extra vars of every ansible item that come from this machine, not from the release."""
        return {DOCKER_HOST_VAR: self.docker.host, **self.playbook_vars}


def load_config(path: Path, env: Mapping[str, str]) -> AgentSettings:
    """The validated configuration from ``path`` overridden by ``env``; raises ConfigError."""
    raw = _read_yaml(path)
    keys = _known_keys()
    _refuse_unknown(raw, keys, path)
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name != CONFIG_PATH_ENV:
            if name not in keys:
                raise ConfigError(f"unknown environment variable {name}{_suggest(name, keys)}")
            section, key = keys[name]
            target = raw.setdefault(section, {}) if section else raw
            target[key] = _from_env(value, _hint(section, key), name)
    return _validate(_build(raw, path))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            _check_private(path, os.fstat(file.fileno()))
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, not {type(raw).__name__}")
    # An empty section ("mqtt:" with every key commented out) is YAML null; it means "all defaults".
    return {k: {} if v is None and k in _sections() else v for k, v in raw.items()}


def _check_private(path: Path, st: os.stat_result) -> None:
    """Refuse files others could read (credentials leak) or write (the agent runs as root)."""
    if st.st_mode & 0o077:
        raise ConfigError(
            f"{path} has mode {st.st_mode & 0o777:04o}: group or others can read or write it; "
            f"it must be private to its owner (chmod 600 {path})"
        )
    if st.st_uid not in (0, os.geteuid()):
        raise ConfigError(f"{path} is owned by uid {st.st_uid}: only root or uid {os.geteuid()} may own it")


@functools.cache
def _sections() -> dict[str, type]:
    """``section name → settings class``, from AgentSettings's fields."""
    hints = get_type_hints(AgentSettings)
    return {name: t for name, t in hints.items() if isinstance(t, type) and dataclasses.is_dataclass(t)}


def _known_keys() -> dict[str, tuple[str, str]]:
    """Every setting as ``ENV_NAME → (section, key)``; section "" for top-level keys."""
    keys = {}
    sections = _sections()
    for f in dataclasses.fields(AgentSettings):
        if f.name not in sections:
            keys[f"{ENV_PREFIX}{f.name.upper()}"] = ("", f.name)
    for section, cls in sections.items():
        for f in dataclasses.fields(cls):
            if not f.metadata.get(_LOADED):
                keys[f"{ENV_PREFIX}{section.upper()}_{f.name.upper()}"] = (section, f.name)
    return keys


def _refuse_unknown(raw: Mapping[str, Any], keys: Mapping[str, tuple[str, str]], path: Path) -> None:
    dotted = {f"{s}.{k}" if s else k for s, k in keys.values()}
    sections = _sections()
    for name, value in raw.items():
        if name in sections and isinstance(value, dict):
            found = [f"{name}.{key}" for key in value]
        elif name in sections:
            raise ConfigError(f"config {path}: '{name}' must be a mapping of keys")
        else:
            found = [str(name)]
        for key in found:
            if key not in dotted:
                raise ConfigError(f"config {path}: unknown key '{key}'{_suggest(key, dotted)}")


def _suggest(name: str, candidates: Any) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _hint(section: str, key: str) -> Any:
    return _hints(_sections()[section] if section else AgentSettings)[key]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def _from_env(text: str, hint: Any, name: str) -> Any:
    """An environment string as the YAML value it stands for; "" unsets an optional path."""
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}={text!r}: expected true or false")
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected a number of seconds") from None
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name}={text!r}: expected a whole number") from None
    if _is_string_map(hint):
        try:
            return json.loads(text) if text.strip() else {}
        except ValueError:
            example = '{"lcm_etc_dir": "/etc"}'
            raise ConfigError(f"{name}: expected a JSON object of strings, like {example}") from None
    return None if text == "" and hint == (Path | None) else text


def _is_string_map(hint: Any) -> bool:
    return typing.get_origin(hint) is Mapping


def _build(raw: Mapping[str, Any], path: Path) -> AgentSettings:
    values = {}
    for name, value in raw.items():
        if name in _sections():
            fields = {k: _coerce(v, _hint(name, k), f"{name}.{k}", path) for k, v in value.items()}
            values[name] = _sections()[name](**fields)
        else:
            values[name] = _coerce(value, _hint("", name), name, path)
    return AgentSettings(**values)


def _coerce(value: Any, hint: Any, key: str, path: Path) -> Any:
    """Check a YAML value against the field's type; paths must be absolute (the daemon's cwd is /)."""
    if value is None and hint == (Path | None):
        return None
    if hint in (Path, Path | None):
        if not isinstance(value, str) or not value.startswith("/"):
            raise ConfigError(f"config {path}: '{key}' must be an absolute path, got {value!r}")
        return Path(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if _is_string_map(hint):
        return _string_map(value, key, path)
    if isinstance(value, hint) and not (hint is not bool and isinstance(value, bool)):
        return value
    raise ConfigError(f"config {path}: '{key}' must be a {hint.__name__}, got {value!r}")


def _string_map(value: Any, key: str, path: Path) -> dict[str, str]:
    """A mapping of strings to strings, as the playbooks get them (YAML ``42`` is not silently "42"); an
    empty key (``playbook_vars:`` with every entry commented out) is an empty mapping."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config {path}: '{key}' must be a mapping of names to strings, got {value!r}")
    for name, item in value.items():
        if not isinstance(item, str):
            raise ConfigError(f"config {path}: '{key}.{name}' must be a string, got {item!r} (quote it)")
    return {str(name): item for name, item in value.items()}


def _validate(cfg: AgentSettings) -> AgentSettings:
    """Cross-field rules, defaults that need the host, and the secrets read from their files."""
    api, mqtt = cfg.api, cfg.mqtt
    if api.kubeconfig is not None and (api.server or api.token_file is not None):
        raise ConfigError("api.kubeconfig and api.server/api.token_file exclude each other: set one way in")
    if api.kubeconfig is None and not (api.server and api.token_file is not None):
        raise ConfigError("set api.server and api.token_file, or api.kubeconfig")
    if api.token_lifetime < MIN_TOKEN_LIFETIME:
        raise ConfigError(f"api.token_lifetime must be at least {MIN_TOKEN_LIFETIME} seconds (the API "
                          f"server's shortest token), got {api.token_lifetime}")
    if api.server and not re.match(r"https?://[^/]", api.server):
        raise ConfigError(f"api.server {api.server!r} must be an http:// or https:// URL")
    if not _DNS_LABEL.fullmatch(api.namespace):
        raise ConfigError(f"api.namespace {api.namespace!r} must be set to a Kubernetes namespace name")
    machine = api.machine_name or platform.node().lower()
    if not _DNS_SUBDOMAIN.fullmatch(machine):
        raise ConfigError(f"machine name {machine!r} is not a Kubernetes object name: set api.machine_name")
    if mqtt.url and not re.match(r"mqtts?://[^/]", mqtt.url):
        raise ConfigError(f"mqtt.url {mqtt.url!r} must be an mqtt:// or mqtts:// URL")
    if (mqtt.cert_file is None) != (mqtt.key_file is None):
        raise ConfigError("mqtt.cert_file and mqtt.key_file go together")
    if mqtt.buffer_size < 1:
        raise ConfigError("mqtt.buffer_size must be at least 1 message")
    _validate_timings(cfg.timings)
    _validate_timings(cfg.reconcile, "reconcile")
    _validate_docker(cfg.docker, cfg.playbook_vars)
    if cfg.metrics.address:
        try:
            Address.parse(cfg.metrics.address)
        except AddressError as exc:
            raise ConfigError(f"metrics.address: {exc}") from None
    _validate_reboot(cfg.reboot)
    if cfg.logging.level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"logging.level {cfg.logging.level!r} must be DEBUG, INFO, WARNING or ERROR")
    for private in (api.kubeconfig, mqtt.key_file):
        if private is not None:
            _stat_private(private)
    return dataclasses.replace(
        cfg,
        api=dataclasses.replace(api, machine_name=machine, token=_read_secret(api.token_file)),
        mqtt=dataclasses.replace(mqtt, password=_read_secret(mqtt.password_file)),
        logging=dataclasses.replace(cfg.logging, level=cfg.logging.level.upper()),
    )


def _validate_timings(timings: TimingSettings | ReconcileSettings, section: str = "timings") -> None:
    for f in dataclasses.fields(timings):
        if not 0 < getattr(timings, f.name) < math.inf:  # also refuses NaN, which compares false
            raise ConfigError(f"{section}.{f.name} must be a positive number of seconds")
    if timings.backoff_base > timings.backoff_cap:
        raise ConfigError(f"{section}.backoff_base must not exceed {section}.backoff_cap")


def _validate_reboot(reboot: RebootSettings) -> None:
    try:
        argv = shlex.split(reboot.command)
    except ValueError as exc:
        raise ConfigError(f"reboot.command {reboot.command!r} is not a command line: {exc}") from None
    if not argv:
        raise ConfigError("reboot.command must name a command")
    if not 0 < reboot.check_period < math.inf:
        raise ConfigError("reboot.check_period must be a positive number of seconds")


def _validate_docker(docker: DockerSettings, playbook_vars: Mapping[str, str]) -> None:
    """The engine URL, and var names the playbooks can take: Ansible identifiers that the agent does not
    set itself and that do not reach into Ansible's own ``ansible_*`` settings (a node-local var must not
    switch the connection or the interpreter)."""
    if not _DOCKER_HOST.fullmatch(docker.host):
        raise ConfigError(f"docker.host {docker.host!r} must be unix:///path/to/socket or tcp://host:port")
    for name in playbook_vars:
        if not _VAR_NAME.fullmatch(name):
            raise ConfigError(f"playbook_vars: {name!r} is not a variable name (letters, digits, _)")
        if name == DOCKER_HOST_VAR:
            raise ConfigError(f"playbook_vars: set {DOCKER_HOST_VAR} through docker.host, not here")
        if name in RUNNER_VARS or name.startswith("ansible_"):
            raise ConfigError(f"playbook_vars: {name!r} is reserved (set by the agent or by Ansible itself)")


def _stat_private(path: Path) -> None:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    _check_private(path, st)


def _read_secret(path: Path | None) -> Secret | None:
    """The file's content without the trailing newline editors and ``echo`` add."""
    if path is None:
        return None
    try:
        with path.open("rb") as file:
            _check_private(path, os.fstat(file.fileno()))
            value = file.read().decode().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text") from None
    if not value:
        raise ConfigError(f"{path} is empty")
    return Secret(value)
