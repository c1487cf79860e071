"""cloud-init user-data that turns a fresh machine into an LCM node: a pure function of the machine's inputs.

The user-data installs the release's agent build into the install layout of docs/self-upgrade.md
(``/opt/lcm-agent/versions/<v>`` + ``current``), writes the agent's configuration and credentials, installs
the systemd unit and starts it. Three rules shape it:

- **Secrets travel in ``write_files`` only.** The machine's API token (and MQTT password) must reach the
  machine somehow, and user-data is how a provider hands a machine its identity, so the rendered document is
  itself a secret (the CLI writes it 0600). cloud-init logs the commands of ``runcmd`` and keeps them as a
  script, so no command line carries a secret: they are files with mode 0600, named by the config.
- **The agent build is the release's.** The wheel comes from the release's ``downloadURL`` and is verified
  against its ``sha256`` (pip checks the URL's ``#sha256=`` fragment); its dependencies come from the
  release's package index. The version directory is named after the wheel's version, so a later self-upgrade
  and rollback find it exactly as if the agent had built it.
- **A built tree when the site has one.** ``tree_url`` names the same install already made (the venv a
  ``pip install`` of the wheel gives, with its byte code, for the machines' Python and architecture) as one
  archive with its own ``sha256``: the machine fetches, checks and unpacks it instead of resolving,
  unpacking and compiling some forty wheels, the largest part of its time from boot to registered
  (bench/boot_to_ready.py). The wheel's digest is still the one recorded.
- **No install logic in shell.** After the install, ``lcm-agent activate`` (agent/adapters/install.py)
  records the wheel's digest and switches ``current`` atomically; cloud-init only sequences the steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from agent.kits.digests import is_sha256

UNIT_FILE = Path(__file__).resolve().parents[2] / "systemd" / "lcm-agent.service"
"""The agent's unit in a source checkout; an installed wheel does not carry it, so callers take a path."""
INSTALL_ROOT = "/opt/lcm-agent"
CONFIG_DIR = "/etc/lcm-agent"
UNIT_PATH = "/etc/systemd/system/lcm-agent.service"

# PEP 427: {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl
_WHEEL = re.compile(r"(?P<dist>[A-Za-z0-9_.]+)-(?P<version>[A-Za-z0-9_.+!]+)(-\d[^-]*)?(-[^-]+){3}\.whl")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class AgentBuild:
    """The release's agent: where its wheel is, its digest, and the index its dependencies come from."""

    url: str
    """http(s) or file URL of ``lcm_agent-<version>-py3-none-any.whl``."""
    sha256: str
    index_url: str
    """A PEP 503 "simple" index holding the agent's dependencies (the release's mirror)."""
    tree_url: str = ""
    """http(s) URL of ``lcm_agent-<version>-….tar.gz``: the wheel installed with its dependencies into
    ``versions/<version>`` (``venv_commands``), archived; "" installs from the wheel and the index."""
    tree_sha256: str = ""

    @property
    def version(self) -> str:
        """The version in the wheel's file name: pip installs exactly that, and it names the directory."""
        found = _WHEEL.fullmatch(_file_name(self.url))
        if found is None or found["dist"].lower().replace(".", "_") != "lcm_agent":
            raise ValueError(f"agent URL {self.url!r} must name a wheel lcm_agent-<version>-…whl")
        return found["version"]


@dataclass(frozen=True)
class MachineUserData:
    """Everything one machine's user-data says; the secret values are inlined into 0600 files only."""

    machine: str
    namespace: str
    api_server: str
    token: str
    agent: AgentBuild
    unit: str
    """The text of systemd/lcm-agent.service."""
    ca_pem: str = ""
    """PEM bundle signing the API server's certificate; empty trusts the machine's system CAs."""
    mqtt_url: str = ""
    mqtt_username: str = ""
    mqtt_password: str = ""
    mqtt_ca_pem: str = ""


def render_user_data(data: MachineUserData) -> str:
    """The ``#cloud-config`` document; raises ValueError naming the first input that cannot work."""
    _check(data)
    version = data.agent.version
    files = [_file(f"{CONFIG_DIR}/config.yaml", yaml.safe_dump(_agent_config(data), sort_keys=False), "0600"),
             _file(f"{CONFIG_DIR}/token", data.token + "\n", "0600")]
    if data.ca_pem:
        files.append(_file(f"{CONFIG_DIR}/ca.pem", data.ca_pem, "0644"))
    if data.mqtt_password:
        files.append(_file(f"{CONFIG_DIR}/mqtt-password", data.mqtt_password + "\n", "0600"))
    if data.mqtt_ca_pem:
        files.append(_file(f"{CONFIG_DIR}/mqtt-ca.pem", data.mqtt_ca_pem, "0644"))
    files.append(_file(UNIT_PATH, data.unit, "0644"))
    doc: dict[str, Any] = {
        # bootcmd runs before write_files: the credentials land in a directory only root can enter, and
        # systemd's ConfigurationDirectoryMode does not tighten a directory that exists already.
        "bootcmd": [["install", "-d", "-m", "0700", CONFIG_DIR]],
        "write_files": files,
        "runcmd": _install_commands(data.agent, version),
    }
    if not data.agent.tree_url:
        # python3-venv builds the agent's virtualenv (on the lab's image it is there already). A built tree
        # carries its own, so the boot then needs no package index at all: no apt-get update at cloud-init.
        doc["packages"] = ["python3-venv"]
    header = (f"#cloud-config\n# lcm-agent {version} for LCMMachine {data.namespace}/{data.machine}; "
              "rendered by `lcmctl cloud-init render`.\n"
              "# It carries this machine's API credentials: keep it as private as the token itself.\n")
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)


def _check(data: MachineUserData) -> None:
    if not _DNS_SUBDOMAIN.fullmatch(data.machine):
        raise ValueError(f"machine name {data.machine!r} is not a Kubernetes object name")
    if not _DNS_LABEL.fullmatch(data.namespace):
        raise ValueError(f"namespace {data.namespace!r} is not a Kubernetes namespace name")
    if urlsplit(data.api_server).scheme != "https" or not urlsplit(data.api_server).netloc:
        # The agent takes http:// on loopback only; from another machine it would send the token in clear.
        raise ValueError(f"API server {data.api_server!r} must be an https:// URL")
    if not data.token.strip() or any(c.isspace() for c in data.token.strip()):
        raise ValueError("the token must be one non-empty word")
    if not is_sha256(data.agent.sha256):
        raise ValueError(f"agent sha256 {data.agent.sha256!r} must be 64 lower-case hex digits")
    if urlsplit(data.agent.index_url).scheme not in ("https", "http"):
        raise ValueError(f"package index {data.agent.index_url!r} must be an http(s) URL")
    if data.agent.tree_url:
        _check_tree(data.agent)
    if data.mqtt_url and urlsplit(data.mqtt_url).scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"MQTT URL {data.mqtt_url!r} must be an mqtt:// or mqtts:// URL")
    if "[Service]" not in data.unit:
        raise ValueError("the unit text is not a systemd service unit")


def _check_tree(agent: AgentBuild) -> None:
    if urlsplit(agent.tree_url).scheme not in ("https", "http"):
        raise ValueError(f"agent tree {agent.tree_url!r} must be an http(s) URL")
    name = _file_name(agent.tree_url)
    if not (name.startswith(f"lcm_agent-{agent.version}-") and name.endswith(".tar.gz")):
        # The archive holds versions/<version>: a tree of another version would be activated under the
        # wheel's name.
        raise ValueError(f"agent tree {name!r} must be lcm_agent-{agent.version}-….tar.gz, "
                         "the wheel's version")
    if not is_sha256(agent.tree_sha256):
        raise ValueError(f"agent tree sha256 {agent.tree_sha256!r} must be 64 lower-case hex digits")


def _file_name(url: str) -> str:
    """The last segment of a URL's path: a wheel's or an archive's file name, which says its version."""
    return urlsplit(url).path.rsplit("/", 1)[-1]


def _agent_config(data: MachineUserData) -> dict[str, Any]:
    """docs/agent-config.md's file; credentials are named, never inlined."""
    api: dict[str, Any] = {"server": data.api_server, "token_file": f"{CONFIG_DIR}/token",
                           "namespace": data.namespace, "machine_name": data.machine}
    if data.ca_pem:
        api["ca_file"] = f"{CONFIG_DIR}/ca.pem"
    doc: dict[str, Any] = {"api": api}
    if data.mqtt_url:
        mqtt: dict[str, Any] = {"url": data.mqtt_url}
        if data.mqtt_username:
            mqtt["username"] = data.mqtt_username
        if data.mqtt_password:
            mqtt["password_file"] = f"{CONFIG_DIR}/mqtt-password"
        if data.mqtt_ca_pem:
            mqtt["ca_file"] = f"{CONFIG_DIR}/mqtt-ca.pem"
        doc["mqtt"] = mqtt
    return doc


PIP_WHEELS = "/usr/share/python-wheels"
"""Where Debian's python3-venv keeps the pip wheel that ensurepip installs (package python3-pip-whl)."""

_PIP_FROM_WHEEL = (
    f'for wheel in {PIP_WHEELS}/pip-*.whl; do :; done; '
    f'[ -f "$wheel" ] || {{ echo "no pip wheel in {PIP_WHEELS} (python3-pip-whl)" >&2; exit 1; }}; '
    'exec "$0" "$wheel/pip" install "$wheel" "$@"')
"""``sh -c`` script: the venv's python ($0) runs pip from that wheel and installs it with the arguments."""


_FETCH_TREE = """\
import base64, hashlib, os, sys, urllib.parse, urllib.request
url, want, archive = sys.argv[1:]
parts = urllib.parse.urlsplit(url)
request = urllib.request.Request(parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl())
if parts.username is not None:
    pair = urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")
    request.add_header("Authorization", "Basic " + base64.b64encode(pair.encode()).decode())
digest = hashlib.sha256()
try:
    with urllib.request.urlopen(request, timeout=60) as answer, open(archive + ".part", "wb") as out:
        for block in iter(lambda: answer.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
except OSError as error:
    if os.path.exists(archive + ".part"):
        os.unlink(archive + ".part")
    sys.exit(f"cannot fetch {parts.path} from {parts.hostname}: {error}")
if digest.hexdigest() != want:
    os.unlink(archive + ".part")
    sys.exit(f"{parts.path}: sha256 {digest.hexdigest()}, the user-data names {want}")
os.rename(archive + ".part", archive)
"""
"""``python3 -c`` script: download the tree's archive, verify it while it streams, keep it only if it
matches. A URL's credentials go in an Authorization header (urllib takes none in the URL), and an
error names the URL's host and path alone."""


def venv_commands(agent: AgentBuild, tree: str) -> list[list[str]]:
    """Make ``tree`` the venv of the wheel with its dependencies from the index: a machine without a built
    tree runs these, and the lab builds the tree it publishes with the very same ones.

    The venv is made without pip and pip comes from the same wheel in the agent's own install: ensurepip
    would byte-compile pip's 700 files first, seconds of every machine's boot (bench/boot_to_ready.py)."""
    pip = ["--no-cache-dir", "--disable-pip-version-check", "--no-input", "--index-url", agent.index_url]
    index = urlsplit(agent.index_url)
    if index.scheme == "http" and index.hostname:
        # pip ignores a plain-http index unless told to trust it; the wheel itself is still checked
        # against the release's sha256, and an https index needs no such flag.
        pip += ["--trusted-host", index.hostname]
    return [
        ["python3", "-m", "venv", "--without-pip", tree],
        ["sh", "-c", _PIP_FROM_WHEEL, f"{tree}/bin/python", *pip,
         f"lcm-agent @ {agent.url}#sha256={agent.sha256}"],
    ]


def _install_commands(agent: AgentBuild, version: str) -> list[list[str]]:
    """Put the version's tree in place (unpacked from the site's archive, or built), switch, start."""
    versions = f"{INSTALL_ROOT}/versions"
    if agent.tree_url:
        archive = f"{INSTALL_ROOT}/{_file_name(agent.tree_url)}"
        install = [["install", "-d", "-m", "0755", versions],
                   ["python3", "-c", _FETCH_TREE, agent.tree_url, agent.tree_sha256, archive],
                   ["tar", "-xzf", archive, "-C", versions, "--no-same-owner"],
                   ["rm", "-f", archive]]
    else:
        install = venv_commands(agent, f"{versions}/{version}")
    return [
        *install,
        [f"{versions}/{version}/bin/lcm-agent", "activate", "--wheel-sha256", agent.sha256],
        ["systemctl", "daemon-reload"],
        # --no-block: the unit is Type=notify and reports ready only once registered, so waiting for the
        # start would hold cloud-init (and its status) hostage to the API being reachable.
        ["systemctl", "enable", "--now", "--no-block", "lcm-agent.service"],
    ]


class _Dumper(yaml.SafeDumper):
    """Multi-line file contents as literal blocks and commands on one line, so an operator can read what a
    machine will get."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


def _commands(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    """A command (a list of words) on one line, as cloud-init's examples write them."""
    flow = bool(value) and all(isinstance(item, str) and "\n" not in item for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _literal)
_Dumper.add_representer(list, _commands)


def _file(path: str, content: str, mode: str) -> dict[str, str]:
    return {"path": path, "owner": "root:root", "permissions": mode, "content": content}
