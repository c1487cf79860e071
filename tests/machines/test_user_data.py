"""The user-data a provider hands a machine: what it writes, with which modes, what it runs, and that the
agent accepts the configuration it writes. ``cloud-init schema`` of the machines' own cloud-init checks it
too (tests/machines/test_userdata_schema.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import __version__
from agent.daemon.config import load_config
from agent.decisions.cloudinit import PIP_WHEELS, UNIT_FILE, AgentBuild, MachineUserData, render_user_data
from testbed.lab.mirrors.server import MirrorServer

LCMCTL = str(Path(sys.executable).with_name("lcmctl"))
TOKEN = "eyJhbGciOiJSUzI1NiJ9.machine-token"
SHA = "ab" * 32
AGENT = AgentBuild(url="http://10.79.0.1:8080/pypi/files/lcm_agent-0.1.0-py3-none-any.whl", sha256=SHA,
                   index_url="http://10.79.0.1:8080/pypi/simple/")
TREE = replace(AGENT, tree_url="http://10.79.0.1:8080/trees/lcm_agent-0.1.0-py311-x86_64.tar.gz",
               tree_sha256="cd" * 32)
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def user_data(**changes: Any) -> MachineUserData:
    fields: dict[str, Any] = {
        "machine": "wrk-1", "namespace": "cluster-a", "api_server": "https://10.79.0.1:6443", "token": TOKEN,
        "ca_pem": CA, "agent": AGENT, "unit": UNIT_FILE.read_text()}
    return MachineUserData(**{**fields, **changes})


def parsed(data: MachineUserData) -> dict[str, Any]:
    text = render_user_data(data)
    assert text.startswith("#cloud-config\n")  # cloud-init ignores a document without this first line
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def files(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {f["path"]: f for f in doc["write_files"]}


def test_credentials_are_files_private_to_root_and_no_command_carries_a_secret() -> None:
    doc = parsed(user_data(mqtt_url="mqtts://10.79.0.1:8883", mqtt_username="cluster-a.wrk-1",
                           mqtt_password="broker-secret"))
    written = files(doc)
    for path in ("/etc/lcm-agent/config.yaml", "/etc/lcm-agent/token", "/etc/lcm-agent/mqtt-password"):
        assert written[path]["permissions"] == "0600"
        assert written[path]["owner"] == "root:root"
    assert written["/etc/lcm-agent/token"]["content"].strip() == TOKEN
    assert written["/etc/lcm-agent/mqtt-password"]["content"].strip() == "broker-secret"
    commands = yaml.safe_dump(doc["runcmd"])
    assert TOKEN not in commands
    assert "broker-secret" not in commands
    assert TOKEN not in written["/etc/lcm-agent/config.yaml"]["content"]
    assert ["install", "-d", "-m", "0700", "/etc/lcm-agent"] in doc["bootcmd"]  # before write_files runs


def test_the_unit_is_installed_and_the_agent_installed_verified_activated_and_started() -> None:
    doc = parsed(user_data())
    assert files(doc)["/etc/systemd/system/lcm-agent.service"]["content"] == UNIT_FILE.read_text()
    tree = "/opt/lcm-agent/versions/0.1.0"
    venv, pip, activate, reload, enable = doc["runcmd"]
    assert venv == ["python3", "-m", "venv", "--without-pip", tree]
    assert pip[:2] == ["sh", "-c"]  # pip from the system's pip wheel (the next test runs it)
    assert pip[3] == f"{tree}/bin/python"
    assert pip[-1] == f"lcm-agent @ {AGENT.url}#sha256={SHA}"  # pip refuses a wheel with another digest
    assert pip[pip.index("--index-url") + 1] == AGENT.index_url
    assert pip[pip.index("--trusted-host") + 1] == "10.79.0.1"  # pip ignores a plain-http index otherwise
    assert activate == [f"{tree}/bin/lcm-agent", "activate", "--wheel-sha256", SHA]
    assert reload == ["systemctl", "daemon-reload"]
    assert enable == ["systemctl", "enable", "--now", "--no-block", "lcm-agent.service"]
    assert "python3-venv" in doc["packages"]


@pytest.mark.skipif(not list(Path(PIP_WHEELS).glob("pip-*.whl")),
                    reason=f"no pip wheel in {PIP_WHEELS} (Debian's python3-pip-whl, with python3-venv)")
def test_the_venv_made_without_pip_gets_a_working_pip_from_the_systems_wheel(tmp_path: Path) -> None:
    """The first two commands as a machine runs them, on this host: only the tree and the requirements
    differ (nothing but the pip wheel itself, offline)."""
    venv, pip, *_ = parsed(user_data())["runcmd"]
    tree = tmp_path / "tree"
    subprocess.run([*venv[:-1], str(tree)], check=True, timeout=120)
    assert not (tree / "bin" / "pip").exists()
    done = subprocess.run([*pip[:3], str(tree / "bin" / "python"), "--no-index", "--quiet"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    version = subprocess.run([str(tree / "bin" / "python"), "-m", "pip", "--version"], capture_output=True,
                             text=True, timeout=60, check=True)
    assert version.stdout.startswith("pip ")
    assert str(tree) in version.stdout  # the venv's own pip now, for the agent's self-upgrades


def test_a_built_tree_is_fetched_verified_unpacked_and_activated_in_place_of_pip() -> None:
    tree = "/opt/lcm-agent/versions/0.1.0"
    archive = "/opt/lcm-agent/lcm_agent-0.1.0-py311-x86_64.tar.gz"
    doc = parsed(user_data(agent=TREE))
    mkdir, fetch, unpack, remove, activate, *start = doc["runcmd"]
    assert mkdir == ["install", "-d", "-m", "0755", "/opt/lcm-agent/versions"]
    assert fetch[:2] == ["python3", "-c"]
    assert fetch[3:] == [TREE.tree_url, TREE.tree_sha256, archive]
    assert unpack == ["tar", "-xzf", archive, "-C", "/opt/lcm-agent/versions", "--no-same-owner"]
    assert remove == ["rm", "-f", archive]
    assert activate == [f"{tree}/bin/lcm-agent", "activate", "--wheel-sha256", SHA]  # the release's wheel
    assert start[-1] == ["systemctl", "enable", "--now", "--no-block", "lcm-agent.service"]
    assert "packages" not in doc  # the tree carries its venv: the boot reads no package index


def test_the_fetch_keeps_an_archive_with_the_named_digest_only(tmp_path: Path) -> None:
    """The fetch command as a machine runs it, against a file served over HTTP on this host."""
    (tmp_path / "www" / "0.1.0" / "bin").mkdir(parents=True)
    (tmp_path / "www" / "0.1.0" / "bin" / "lcm-agent").write_text("#!/bin/sh\n")
    served = tmp_path / "www" / "lcm_agent-0.1.0-py311-x86_64.tar.gz"
    with tarfile.open(served, "w:gz") as tar:
        tar.add(tmp_path / "www" / "0.1.0", arcname="0.1.0")
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    server = MirrorServer(tmp_path / "www", "127.0.0.1").start()
    try:
        url = f"{server.url.replace('http://', 'http://user:s3cret@')}/{served.name}"
        fetch = parsed(user_data(agent=replace(TREE, tree_url=url, tree_sha256=digest)))["runcmd"][1]
        kept = tmp_path / "kept.tar.gz"
        good = subprocess.run([sys.executable, *fetch[1:3], url, digest, str(kept)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert good.returncode == 0, good.stderr
        assert kept.read_bytes() == served.read_bytes()
        refused = tmp_path / "refused.tar.gz"
        bad = subprocess.run([sys.executable, *fetch[1:3], url, "0" * 64, str(refused)], capture_output=True,
                             text=True, timeout=60, check=False)
    finally:
        server.stop()
    assert bad.returncode != 0
    assert f"/{served.name}: sha256 {digest}" in bad.stderr
    assert "s3cret" not in bad.stderr  # a URL's credentials never reach cloud-init's log
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.tar.gz", "www"]  # nothing half-kept


def test_an_https_index_is_not_marked_trusted() -> None:
    agent = AgentBuild(url="https://mirror.example.net/lcm_agent-0.2.0-py3-none-any.whl", sha256=SHA,
                       index_url="https://mirror.example.net/simple/")
    _, pip, *_ = parsed(user_data(agent=agent))["runcmd"]
    assert "--trusted-host" not in pip
    assert pip[3] == "/opt/lcm-agent/versions/0.2.0/bin/python"


def test_the_agent_accepts_the_configuration_the_user_data_writes(tmp_path: Path) -> None:
    written = files(parsed(user_data(mqtt_url="mqtt://10.79.0.1:1883", mqtt_username="u",
                                     mqtt_password="p", mqtt_ca_pem=CA)))
    moved = {}
    for path, entry in written.items():
        if path.startswith("/etc/lcm-agent/"):
            local = tmp_path / Path(path).name
            local.write_text(entry["content"])
            local.chmod(int(entry["permissions"], 8))
            moved[path] = local
    config = moved["/etc/lcm-agent/config.yaml"]
    config.write_text(config.read_text().replace("/etc/lcm-agent/", f"{tmp_path}/"))
    cfg = load_config(config, {})
    assert cfg.api.server == "https://10.79.0.1:6443"
    assert (cfg.api.namespace, cfg.api.machine_name) == ("cluster-a", "wrk-1")
    assert cfg.api.token is not None
    assert cfg.api.token.reveal() == TOKEN
    assert cfg.mqtt.password is not None
    assert cfg.mqtt.password.reveal() == "p"
    assert cfg.api.ca_file == tmp_path / "ca.pem"


@pytest.mark.parametrize(("change", "message"), [
    ({"machine": "Worker_1"}, "not a Kubernetes object name"),
    ({"namespace": ""}, "not a Kubernetes namespace name"),
    ({"api_server": "http://10.79.0.1:6443"}, "must be an https:// URL"),
    ({"token": ""}, "token must be one non-empty word"),
    ({"token": "two words"}, "token must be one non-empty word"),
    ({"agent": AgentBuild(url="http://m/agent.tar.gz", sha256=SHA, index_url="http://m/simple/")},
     "must name a wheel"),
    ({"agent": AgentBuild(url="http://m/other-1.0-py3-none-any.whl", sha256=SHA, index_url="http://m/s/")},
     "must name a wheel"),
    ({"agent": AgentBuild(url=AGENT.url, sha256="abc", index_url=AGENT.index_url)}, "64 lower-case hex"),
    ({"agent": AgentBuild(url=AGENT.url, sha256=SHA, index_url="file:///srv/simple")}, "http(s) URL"),
    ({"agent": replace(AGENT, tree_url="http://m/lcm_agent-0.2.0-py311-x86_64.tar.gz", tree_sha256=SHA)},
     "the wheel's version"),
    ({"agent": replace(AGENT, tree_url="file:///srv/lcm_agent-0.1.0-py311-x86_64.tar.gz", tree_sha256=SHA)},
     "http(s) URL"),
    ({"agent": replace(AGENT, tree_url=TREE.tree_url, tree_sha256="")}, "tree sha256"),
    ({"mqtt_url": "tcp://broker:1883"}, "mqtt:// or mqtts://"),
    ({"unit": "not a unit"}, "not a systemd service unit"),
])
def test_inputs_that_cannot_work_are_refused_by_name(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        render_user_data(user_data(**change))


def render_cli(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    ca = tmp_path / "ca.pem"
    ca.write_text(CA)
    return subprocess.run(
        [LCMCTL, "cloud-init", "render", "--machine", "ctl-1", "--namespace", "cluster-a",
         "--api-server", "https://10.79.0.1:6443", "--ca-file", str(ca), "--token-file", str(token),
         "--agent-url", AGENT.url, "--agent-sha256", SHA, "--index-url", AGENT.index_url, *extra],
        capture_output=True, text=True, timeout=60, check=False)


def test_cli_writes_the_document_private_and_never_echoes_the_token(tmp_path: Path) -> None:
    out = tmp_path / "ctl-1.user-data"
    done = render_cli(tmp_path, "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert TOKEN not in done.stdout + done.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    doc = yaml.safe_load(out.read_text())
    assert files(doc)["/etc/lcm-agent/token"]["content"].strip() == TOKEN  # the file's newline is not kept
    assert files(doc)["/etc/lcm-agent/ca.pem"]["content"] == CA


def test_cli_renders_the_install_from_a_built_tree(tmp_path: Path) -> None:
    done = render_cli(tmp_path, "--agent-tree-url", TREE.tree_url, "--agent-tree-sha256", TREE.tree_sha256)
    assert done.returncode == 0, done.stderr
    fetch = yaml.safe_load(done.stdout)["runcmd"][1]
    assert fetch[3:5] == [TREE.tree_url, TREE.tree_sha256]
    refused = render_cli(tmp_path, "--agent-tree-url", TREE.tree_url)
    assert refused.returncode == 2
    assert "agent tree sha256" in refused.stderr


def test_cli_says_what_is_wrong_with_an_input(tmp_path: Path) -> None:
    done = render_cli(tmp_path, "--unit-file", str(tmp_path / "missing.service"))
    assert done.returncode == 2
    assert f"cannot read {tmp_path / 'missing.service'}" in done.stderr


def test_activate_refuses_an_agent_installed_outside_the_layout() -> None:
    """The user-data's ``lcm-agent activate`` only switches a tree under <root>/versions/<version>; this
    checkout's venv is not one (the real layout is exercised by the machines in test_boot.py)."""
    agent = str(Path(sys.executable).with_name("lcm-agent"))
    done = subprocess.run([agent, "activate", "--wheel-sha256", SHA], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert f"is not <root>/versions/{__version__}" in done.stderr
