"""Two agents build a real two-node swarm on lab nodes with the release's playbooks, passing the join token
through the API within their RBAC; then the control machine's agent drains and undrains the worker's node
for an LCMClusterState, with the release's maintenance playbook."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from machine_harness import (
    MANAGER_SECRET,
    PLAYBOOKS,
    WORKER_SECRET,
    MakeNode,
    SwarmNode,
    engine,
    swarm_node,
    tasks_running_on,
)

from agent.adapters.kube import Kube
from agent.daemon.swarm_executor import LCMCLUSTERSTATES
from testbed.lab.netns import dockerd
from testbed.lab.netns.nodes import Lab

LabFactory = Callable[..., Lab]
SD = "sd-demo-worker-0"


def item(name: str, playbook: str, **params: str) -> dict[str, Any]:
    return {"runner": "ansible", "name": name, "version": "1", "phase": "deploy",
            "params": {"playbook": playbook, **params}}


async def eventually(check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {check}")
        await asyncio.sleep(0.3)


async def test_agents_build_a_swarm_and_the_executor_drains_and_undrains_a_worker(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl-a", "wrk-a")
    manager, worker_node = lab["ctl-a"], lab["wrk-a"]
    control: SwarmNode = machine("demo-control-0", lab=manager, release=(PLAYBOOKS,))
    worker: SwarmNode = machine("demo-worker-0", lab=worker_node, release=(PLAYBOOKS,))
    await control.create([item("swarm-init", "deploy/swarm-init.yml")], type="control", stateItemsOverwrites={
        "swarm-init": {"advertiseAddress": manager.address, "managerTokenSecret": MANAGER_SECRET,
                       "workerTokenSecret": WORKER_SECRET}})
    await worker.create([item("swarm-join", "deploy/swarm-join.yml", role="worker")], stateItemsOverwrites={
        "swarm-join": {"managerAddresses": f"{manager.address}:2377", "joinTokenSecret": WORKER_SECRET,
                       "advertiseAddress": worker_node.address}})
    dockerd.import_image(worker_node, dockerd.busybox_rootfs(tmp_path / "rootfs.tar"), "busybox:lab")

    async with worker.agent(await worker.configure()), control.agent(await control.configure()):
        await control.wait_state("Ready", within=120)
        await worker.wait_state("Ready", within=120)  # it joined with the token the control machine published
        joined = swarm_node(manager, worker_node.address)
        assert (joined["Spec"]["Role"], joined["Status"]["State"]) == ("worker", "ready")

        service = engine(manager).services.create("busybox:lab", ["sleep", "3600"], name="sleepers",
                                                  constraints=["node.role == worker"])
        await eventually(lambda: tasks_running_on(manager, service, joined["ID"]) == 1)
        await admin.create(LCMCLUSTERSTATES, control.namespace, {
            "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState",
            "metadata": {"name": SD, "labels": {"lcm.mirantis.com/executor": "demo-control-0"}},
            "spec": {"clusterName": "demo", "type": "swarm-drain", "arg": "demo-worker-0", "value": "true"}})
        drained = await wait_value(admin, control.namespace, "true")
        assert swarm_node(manager, worker_node.address)["Spec"]["Availability"] == "drain"
        assert tasks_running_on(manager, service, joined["ID"]) == 0  # done only once the node ran nothing
        assert (await worker.get())["status"]["swarmCordonDrain"] == "cordondrained"

        await admin.patch(LCMCLUSTERSTATES, control.namespace, SD, {"spec": {"value": "false"}})
        undrained = await wait_value(admin, control.namespace, "false")
        assert swarm_node(manager, worker_node.address)["Spec"]["Availability"] == "active"
        assert "swarmCordonDrain" not in (await worker.get())["status"]
        await eventually(lambda: tasks_running_on(manager, service, joined["ID"]) == 1)
    assert (drained, undrained) == ({"value": "true", "message": "", "attempt": 1},
                                    {"value": "false", "message": "", "attempt": 2})
    tokens = list(engine(manager).swarm.attrs["JoinTokens"].values())
    assert len(tokens) == 2
    for node in (control, worker):
        written = node.everything_written() + json.dumps(await node.get())
        assert [t for t in tokens if t in written] == []


async def wait_value(admin: Kube, namespace: str, value: str, within: float = 120.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    found: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        found = (await admin.get(LCMCLUSTERSTATES, namespace, SD)).get("status") or {}
        if found.get("value") == value:
            return found
        await asyncio.sleep(0.2)
    pytest.fail(f"{SD} never reached {value}: status {found}")
