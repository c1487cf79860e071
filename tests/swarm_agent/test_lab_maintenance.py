"""Maintenance on a real swarm: the scheduler deploys three lab nodes with the release's playbooks through
their agents, then a worker goes into maintenance (its swarm node drained, its tasks moved to the other
worker) and out again (active, tasks back), and another controller's active workload lock holds a
maintenance request until it goes inactive."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import docker
import pytest
from machine_harness import PATIENCE, PLAYBOOKS, MakeNode, engine, swarm_node, tasks_running_on

from agent.adapters.kube import Kube, Resource
from agent.api.models import API_VERSION, GROUP, KAAS_API_VERSION, KAAS_GROUP, VERSION
from regional.scheduler.leadership import LeaseSettings
from regional.scheduler.runtime import Scheduler
from regional.scheduler.settings import SchedulerSettings, Throttle
from testbed.lab.netns import dockerd
from testbed.lab.netns.nodes import Lab
from testbed.sim.testing import field_of

LabFactory = Callable[..., Lab]
RELEASES = Resource(KAAS_GROUP, VERSION, "clusterreleases", namespaced=False)
CLUSTERS = Resource(GROUP, VERSION, "lcmclusters")
MACHINES = Resource(GROUP, VERSION, "lcmmachines")
NODE_LOCKS = Resource(GROUP, VERSION, "nodeworkloadlocks")
NODE_REQUESTS = Resource(GROUP, VERSION, "nodemaintenancerequests")
CONTROL, WORKER, OTHER = "demo-control-0", "demo-worker-0", "demo-worker-1"


def _item(name: str, **params: str) -> dict[str, Any]:
    return {"runner": "ansible", "name": name, "version": "1", "phase": "deploy",
            "params": {"playbook": f"deploy/{name}.yml", **params}}


PREPARE = {"runner": "bash", "name": "ready", "version": "1", "phase": "prepare",
           "params": {"script": "true"}}
"""The planner lets a machine into the swarm rollout once its prepare items are done: this one does
nothing."""
RELEASE = {
    "apiVersion": KAAS_API_VERSION, "kind": "ClusterRelease", "metadata": {"name": "swarm-lab"},
    "spec": {"version": "1.0.0", "agent": {"version": "0.1.0"},
             "machineTypes": {"control": [PREPARE, _item("swarm-init"), _item("swarm-join")],
                              "worker": [PREPARE, _item("swarm-join", role="worker")]}}}


async def _eventually(check: Callable[[], Any], what: str, within: float = PATIENCE * 2) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


@contextlib.asynccontextmanager
async def _scheduler(admin: Kube, ns: str) -> AsyncIterator[None]:
    lease = LeaseSettings(name="lcm-scheduler", namespace=ns, identity="lab", lease_duration=15,
                          renew_deadline=10, retry_period=2)
    settings = SchedulerSettings(namespace=ns, writes=Throttle(200.0, 200), lease=lease)
    stopping = asyncio.Event()
    task = asyncio.create_task(Scheduler(admin, settings).run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


async def test_a_worker_in_maintenance_is_drained_on_the_swarm_and_a_lock_holds_it(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl-m", "wrk-m", "oth-m")
    manager, node, other = lab["ctl-m"], lab["wrk-m"], lab["oth-m"]
    machines = {CONTROL: machine(CONTROL, lab=manager, release=(PLAYBOOKS,)),
                WORKER: machine(WORKER, lab=node, release=(PLAYBOOKS,)),
                OTHER: machine(OTHER, lab=other, release=(PLAYBOOKS,))}
    ns = machines[CONTROL].namespace
    await admin.create(RELEASES, "", RELEASE)
    await admin.create(CLUSTERS, ns, {"apiVersion": API_VERSION, "kind": "LCMCluster",
                                      "metadata": {"name": "demo"}, "spec": {"release": "swarm-lab"}})
    for name, m in machines.items():
        await m.create([], type="control" if name == CONTROL else "worker")
    rootfs = dockerd.busybox_rootfs(tmp_path / "rootfs.tar")
    for lab_node in (node, other):
        dockerd.import_image(lab_node, rootfs, "busybox:lab")

    async with contextlib.AsyncExitStack() as stack:
        for m in machines.values():
            await stack.enter_async_context(m.agent(await m.configure()))
        await stack.enter_async_context(_scheduler(admin, ns))
        await _eventually(lambda: _ready(admin, ns), "3 machines ready", within=PATIENCE * 4)
        ids = {name: swarm_node(manager, lab[lab_name].address)["ID"]
               for name, lab_name in ((WORKER, "wrk-m"), (OTHER, "oth-m"))}
        service = engine(manager).services.create(
            "busybox:lab", ["sleep", "3600"], name="sleepers", mode=docker.types.ServiceMode("replicated", 2),
            constraints=["node.role == worker"])
        def tasks(name: str) -> int:
            return tasks_running_on(manager, service, ids[name])

        await _eventually(lambda: [tasks(WORKER), tasks(OTHER)] == [1, 1], "one task on each worker")

        await admin.patch(MACHINES, ns, WORKER, {"spec": {"maintenance": True}})
        await _eventually(lambda: field_of(admin, MACHINES, ns, WORKER, "status", "maintenance"),
                          "in maintenance")
        assert swarm_node(manager, node.address)["Spec"]["Availability"] == "drain"
        assert tasks(WORKER) == 0
        await _eventually(lambda: tasks(OTHER) == 2, "its task moved to the other worker")

        await admin.patch(MACHINES, ns, WORKER, {"spec": {"maintenance": False}})
        await _eventually(lambda: swarm_node(manager, node.address)["Spec"]["Availability"] == "active",
                          "the node active again")
        assert await field_of(admin, MACHINES, ns, WORKER, "status", "maintenance") is False

        await admin.create(NODE_LOCKS, ns, {"apiVersion": API_VERSION, "kind": "NodeWorkloadLock",
                                            "metadata": {"name": f"{WORKER}-storage"},
                                            "spec": {"controllerName": "storage", "nodeName": WORKER}})
        await admin.create(NODE_REQUESTS, ns, {"apiVersion": API_VERSION, "kind": "NodeMaintenanceRequest",
                                               "metadata": {"name": "disk-swap"},
                                               "spec": {"nodeName": WORKER, "scope": "os"}})
        await _eventually(lambda: field_of(admin, NODE_REQUESTS, ns, "disk-swap", "status", "message"),
                          "the request's verdict")
        assert await field_of(admin, NODE_REQUESTS, ns, "disk-swap", "status") == {
            "phase": "Waiting", "message": f"active: NodeWorkloadLock {WORKER}-storage of storage"}
        assert swarm_node(manager, node.address)["Spec"]["Availability"] == "active"  # the lock held it
        await admin.patch(NODE_LOCKS, ns, f"{WORKER}-storage", {"status": {"state": "inactive"}},
                          subresource="status")
        await _eventually(lambda: swarm_node(manager, node.address)["Spec"]["Availability"] == "drain",
                          "drained once the lock let it")
        await admin.delete(NODE_REQUESTS, ns, "disk-swap")
        await _eventually(lambda: swarm_node(manager, node.address)["Spec"]["Availability"] == "active",
                          "active again after the request")


async def _ready(admin: Kube, ns: str) -> bool:
    return await field_of(admin, CLUSTERS, ns, "demo", "status", "readyNodes") == 3
