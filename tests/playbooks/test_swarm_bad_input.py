"""Bad input to the release's playbooks: each fails with a message an operator can act on, and leaves the
node as it was (no half-joined node, no half-applied daemon.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from swarm_harness import LAB_PREPARE, Release, engine, join_params, join_token, swarm_nodes

from testbed.lab.netns import dockerd, nodes
from testbed.lab.netns.node import LabNode
from testbed.lab.netns.nodes import Lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """``alpha`` manages swarm A, ``beta`` manages swarm B, ``free`` belongs to none (tests put it back)."""
    reason = nodes.missing_requirements()
    if reason:
        pytest.skip(reason)
    lab = nodes.up(["alpha", "beta", "free"], prefix=nodes.session_prefix())
    try:
        for name in ("alpha", "beta"):
            engine(lab[name]).swarm.init(advertise_addr=lab[name].address)
        yield lab
    finally:
        lab.down()


@pytest.fixture
def release(tmp_path: Path) -> Release:
    return Release(tmp_path / "work")


@pytest.fixture
def free(lab: Lab) -> Iterator[LabNode]:
    """The node in no swarm, with its own daemon.json, before and after the test."""
    node = lab["free"]
    config = node.config_path.read_text()
    yield node
    client = engine(node)
    if client.info()["Swarm"]["LocalNodeState"] != "inactive":
        client.swarm.leave(force=True)
    for manager in (lab["alpha"], lab["beta"]):
        for gone in engine(manager).nodes.list(filters={"name": "free"}):
            gone.remove(force=True)
    if node.config_path.read_text() != config:
        node.config_path.write_text(config)
        dockerd.stop(node)
        dockerd.start(node)


def nobody(lab: Lab) -> str:
    """An address on the lab's subnet that no node answers: a join there times out (after 20 s)."""
    return str(lab.net.address(200))


def _state(node: LabNode) -> str:
    state: str = engine(node).info()["Swarm"]["LocalNodeState"]
    return state


async def test_an_unreachable_manager_fails_the_join_and_leaves_no_half_joined_node(
    lab: Lab, free: LabNode, release: Release
) -> None:
    params = {**join_params(free, [lab["alpha"]], "worker"), "managerAddresses": f"{nobody(lab)}:2377"}
    run = await release.run(free, "deploy/swarm-join.yml", params,
                            secrets={"JOIN_TOKEN": join_token(lab["alpha"], "worker")})
    assert not run.ok
    assert f"could not join the swarm at {nobody(lab)}:2377" in run.result.message
    assert "the attempt was cancelled, the node is in no swarm" in run.result.message
    assert _state(free) == "inactive"


async def test_a_half_joined_node_is_cleaned_up_on_retry(lab: Lab, free: LabNode, release: Release) -> None:
    """A node left ``pending`` by an earlier attempt (an agent killed mid-join) joins on the next run."""
    token = join_token(lab["alpha"], "worker")
    with pytest.raises(docker.errors.APIError):
        engine(free).swarm.join(remote_addrs=[f"{nobody(lab)}:2377"], join_token=token,
                                advertise_addr=free.address)
    assert _state(free) == "pending"  # docker keeps trying in the background
    run = await release.run(free, "deploy/swarm-join.yml", join_params(free, [lab["alpha"]], "worker"),
                            secrets={"JOIN_TOKEN": token})
    assert run.ok, run.result.message
    assert swarm_nodes(lab["alpha"])["free"].role == "worker"


async def test_init_on_a_node_of_another_swarm_fails_and_changes_nothing(
    lab: Lab, free: LabNode, release: Release
) -> None:
    await release.must(free, "deploy/swarm-join.yml", join_params(free, [lab["alpha"]], "worker"),
                       secrets={"JOIN_TOKEN": join_token(lab["alpha"], "worker")})
    run = await release.run(free, "deploy/swarm-init.yml", {"advertiseAddress": free.address})
    assert not run.ok
    assert "already a worker of another swarm" in run.result.message
    assert f"{lab['alpha'].address}:2377" in run.result.message
    assert swarm_nodes(lab["alpha"])["free"].state == "ready"


async def test_joining_a_manager_of_another_swarm_fails_and_changes_nothing(
    lab: Lab, release: Release
) -> None:
    beta = lab["beta"]
    cluster = engine(beta).info()["Swarm"]["Cluster"]["ID"]
    run = await release.run(beta, "deploy/swarm-join.yml", join_params(beta, [lab["alpha"]], "manager"),
                            secrets={"JOIN_TOKEN": join_token(lab["alpha"], "manager")})
    assert not run.ok
    assert "already in another swarm" in run.result.message
    assert engine(beta).info()["Swarm"]["Cluster"]["ID"] == cluster


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"logDriver": "no-such-driver"}, "logDriver 'no-such-driver' is not a Docker log driver"),
        ({"logOpts": "max-size=10m"}, "logOpts is not JSON"),
        ({"logOpts": '{"max-size": "ten"}'}, "logOpts max-size 'ten' is not a size like 10m"),
        ({"registryMirrors": "mirror.internal"},
         "registryMirrors entry 'mirror.internal' is not an http(s) URL"),
        ({"dataRoot": "relative/dir"}, "dataRoot 'relative/dir' is not an absolute path"),
        ({"liveRestore": "yes"}, 'liveRestore must be "true" or "false"'),
    ],
)
async def test_an_invalid_daemon_setting_fails_before_anything_changes(
    free: LabNode, release: Release, params: dict[str, str], message: str
) -> None:
    before, pid = free.config_path.read_text(), dockerd.pid(free)
    run = await release.run(free, "reconfigure/daemon-config.yml", params, phase="reconfigure")
    assert not run.ok
    assert f"invalid daemon setting: {message}" in run.result.message
    assert (free.config_path.read_text(), dockerd.pid(free)) == (before, pid)


async def test_invalid_labels_fail_before_anything_changes(free: LabNode, release: Release) -> None:
    before = free.config_path.read_text()
    run = await release.run(free, "reconfigure/node-labels.yml", {"labels": '["zone=a"]'},
                            phase="reconfigure")
    assert not run.ok
    assert "labels must be a JSON object of strings" in run.result.message
    assert free.config_path.read_text() == before


async def test_settings_dockerd_refuses_are_rolled_back(free: LabNode, release: Release) -> None:
    """A data-root that is a file passes the checks but not dockerd: the old file returns, dockerd runs."""
    before = free.config_path.read_text()
    run = await release.run(free, "reconfigure/daemon-config.yml", {"dataRoot": str(free.config_path)},
                            phase="reconfigure")
    assert not run.ok
    assert "dockerd did not accept the new daemon.json (changed: data-root)" in run.result.message
    assert "the previous file is back and dockerd runs with it" in run.result.message
    assert free.config_path.read_text() == before
    assert dockerd.ping(free)
    assert json.loads(before)["data-root"] == engine(free).info()["DockerRootDir"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"minMemoryMiB": "99999999"}, "MiB of memory, the release needs 99999999"),
        ({"kernelModules": "overlay,lcm_no_such_module"},
         "required kernel modules are neither loaded nor loadable: lcm_no_such_module"),
        ({"supportedOS": "plan9"}, "unsupported operating system"),
    ],
)
async def test_preflight_names_the_requirement_that_is_not_met(
    free: LabNode, release: Release, params: dict[str, str], message: str
) -> None:
    run = await release.run(free, "prepare/preflight.yml", {**LAB_PREPARE, **params}, phase="prepare")
    assert not run.ok
    assert message in run.result.message


async def test_a_node_still_in_the_swarm_is_not_removed(lab: Lab, free: LabNode, release: Release) -> None:
    await release.must(free, "deploy/swarm-join.yml", join_params(free, [lab["alpha"]], "worker"),
                       secrets={"JOIN_TOKEN": join_token(lab["alpha"], "worker")})
    run = await release.run(lab["alpha"], "maintenance/swarm-remove.yml",
                            {"node_address": free.address, "down_timeout": "2"})
    assert not run.ok
    assert f"node {free.address} is still up" in run.result.message
    assert "free" in swarm_nodes(lab["alpha"])


async def test_draining_an_unknown_node_fails(lab: Lab, release: Release) -> None:
    run = await release.run(lab["alpha"], "maintenance/swarm-drain.yml",
                            {"node_address": "10.255.255.254", "availability": "drain"})
    assert not run.ok
    assert "no swarm node with address 10.255.255.254 is up" in run.result.message
