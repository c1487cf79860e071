"""The machine's own playbook settings: ``docker.host`` and ``playbook_vars`` in the config, and how they
reach every ansible item (over the release's params, under the run's own vars, outside the item's hash)."""

from __future__ import annotations

from pathlib import Path

import pytest
from machine_harness import MakeNode, SwarmNode

from agent.adapters.runners.ansible import extra_vars
from agent.api.execution import RUNNER_VARS, ItemInput
from agent.daemon.config import ConfigError, load_config

API = "api:\n  server: https://127.0.0.1:6443\n  token_file: {token}\n  namespace: ns1\n  machine_name: m1\n"


def write(tmp_path: Path, body: str) -> Path:
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    token.chmod(0o600)
    path = tmp_path / "config.yaml"
    path.write_text(API.format(token=token) + body)
    path.chmod(0o600)
    return path


def test_defaults_reach_the_engine_at_its_usual_socket(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), {})
    assert cfg.docker.host == "unix:///var/run/docker.sock"
    assert cfg.playbook_vars == {}
    assert cfg.node_vars() == {"lcm_docker_host": "unix:///var/run/docker.sock"}


def test_file_and_environment_settings_become_the_node_vars(tmp_path: Path) -> None:
    body = "docker:\n  host: unix:///srv/n1/docker.sock\nplaybook_vars:\n  lcm_etc_dir: /srv/n1/etc\n"
    cfg = load_config(write(tmp_path, body), {})
    assert cfg.node_vars() == {"lcm_docker_host": "unix:///srv/n1/docker.sock", "lcm_etc_dir": "/srv/n1/etc"}
    env = {"LCM_AGENT_DOCKER_HOST": "tcp://10.0.0.5:2375",
           "LCM_AGENT_PLAYBOOK_VARS": '{"lcm_service_manager": "command"}'}
    cfg = load_config(write(tmp_path, body), env)
    assert cfg.node_vars() == {"lcm_docker_host": "tcp://10.0.0.5:2375", "lcm_service_manager": "command"}


def test_an_empty_playbook_vars_key_means_none(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "playbook_vars:\n"), {}).playbook_vars == {}


@pytest.mark.parametrize(("body", "env", "error"), [
    ("docker:\n  host: /var/run/docker.sock\n", {}, "docker.host '/var/run/docker.sock' must be unix://"),
    ("docker:\n  host: http://x\n", {}, "must be unix:///path/to/socket or tcp://host:port"),
    ("docker:\n  hots: unix:///x\n", {}, "unknown key 'docker.hots' (did you mean 'docker.host'?)"),
    ("playbook_vars: [a, b]\n", {}, "'playbook_vars' must be a mapping of names to strings"),
    ("playbook_vars:\n  lcm_port: 2377\n", {}, "'playbook_vars.lcm_port' must be a string, got 2377"),
    ("playbook_vars:\n  lcm-etc: /x\n", {}, "'lcm-etc' is not a variable name"),
    ("playbook_vars:\n  lcm_docker_host: unix:///x\n", {}, "set lcm_docker_host through docker.host"),
    ("playbook_vars:\n  lcm_machine: other\n", {}, "'lcm_machine' is reserved"),
    ("playbook_vars:\n  ansible_connection: ssh\n", {}, "'ansible_connection' is reserved"),
    ("", {"LCM_AGENT_PLAYBOOK_VARS": "lcm_etc_dir=/x"}, "LCM_AGENT_PLAYBOOK_VARS: expected a JSON object"),
    ("", {"LCM_AGENT_PLAYBOOK_VARS": '["x"]'}, "'playbook_vars' must be a mapping"),
    ("", {"LCM_AGENT_DOCKER_HOTS": "unix:///x"}, "unknown environment variable LCM_AGENT_DOCKER_HOTS"),
])
def test_bad_settings_are_refused_with_the_key_named(
    tmp_path: Path, body: str, env: dict[str, str], error: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body), env)
    assert error in str(caught.value)


def item(params: dict[str, str], node_vars: dict[str, str]) -> ItemInput:
    return ItemInput(machine="m1", name="x", runner="ansible", version="1", phase="deploy", params=params,
                     attempt=2, release_dir=Path("/r"), work_dir=Path("/w"), node_vars=node_vars)


@pytest.mark.parametrize(("params", "node_vars", "expected"), [
    ({"playbook": "p.yml", "role": "worker"}, {}, {"role": "worker"}),
    ({"lcm_etc_dir": "/release"}, {"lcm_etc_dir": "/node"}, {"lcm_etc_dir": "/node"}),
    ({"lcm_docker_host": "tcp://evil:2375"}, {"lcm_docker_host": "unix:///node.sock"},
     {"lcm_docker_host": "unix:///node.sock"}),
    ({"lcm_machine": "other"}, {}, {"lcm_machine": "m1"}),
    ({}, {"lcm_attempt": "9"}, {"lcm_attempt": "2"}),
])
def test_node_vars_win_over_params_and_the_run_wins_over_both(
    params: dict[str, str], node_vars: dict[str, str], expected: dict[str, str],
) -> None:
    got = extra_vars(item(params, node_vars))
    assert "playbook" not in got
    assert set(got) >= RUNNER_VARS
    assert {k: got[k] for k in expected} == expected


async def test_a_playbook_sees_the_machines_settings_not_the_releases(
    machine: MakeNode, tmp_path: Path,
) -> None:
    node: SwarmNode = machine("demo-worker-0")
    record = tmp_path / "vars.txt"
    cfg = await node.configure(docker_host="unix:///srv/node-a/docker.sock",
                               playbook_vars={"lcm_etc_dir": "/srv/node-a/etc"})
    params = {"playbook": "vars.yml", "record": str(record), "colour": "blue", "lcm_etc_dir": "/etc"}
    await node.create([{"runner": "ansible", "name": "show", "version": "1", "phase": "deploy",
                        "params": params}])
    async with node.agent(cfg):
        await node.wait_state("Ready")
    assert record.read_text().splitlines() == [
        "lcm_docker_host=unix:///srv/node-a/docker.sock", "lcm_etc_dir=/srv/node-a/etc",
        "lcm_machine=demo-worker-0", "colour=blue"]


async def test_changing_the_machines_settings_re_runs_nothing(machine: MakeNode, tmp_path: Path) -> None:
    node: SwarmNode = machine("demo-worker-0")
    record = tmp_path / "vars.txt"
    params = {"playbook": "vars.yml", "record": str(record), "colour": "red"}
    await node.create([{"runner": "ansible", "name": "show", "version": "1", "phase": "deploy",
                        "params": params}])
    async with node.agent(await node.configure(playbook_vars={"lcm_etc_dir": "/one"})):
        await node.wait_state("Ready")
    record.unlink()
    async with node.agent(await node.configure(playbook_vars={"lcm_etc_dir": "/two"})):
        await node.wait_state("Ready")
        await node.patch_spec({"rebootRequired": False})  # a spec event: the agent decides again
        await node.wait_for(lambda o: o["metadata"]["generation"] == 2, describe="the spec change")
    assert not record.exists()
