"""Maintenance on a real swarm: the scheduler deploys three lab nodes with the release's playbooks through
their agents, then a worker goes into maintenance (its swarm node drained, its tasks moved to the other
worker) and out again (active, tasks back), and another controller's active workload lock holds a
maintenance request until it goes inactive."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
from machine_harness import (
    MACHINES,
    OTHER,
    WORKER,
    MakeNode,
    deployed_swarm,
    engine,
    eventually,
    swarm_node,
    tasks_running_on,
)

from agent.adapters.kube import Kube, Resource
from agent.api.models import API_VERSION, GROUP, VERSION
from testbed.lab.netns.nodes import Lab
from testbed.sim.testing import field_of

LabFactory = Callable[..., Lab]
NODE_LOCKS = Resource(GROUP, VERSION, "nodeworkloadlocks")
NODE_REQUESTS = Resource(GROUP, VERSION, "nodemaintenancerequests")


async def test_a_worker_in_maintenance_is_drained_on_the_swarm_and_a_lock_holds_it(
    machine: MakeNode, admin: Kube, lab_nodes: LabFactory, tmp_path: Path,
) -> None:
    lab = lab_nodes("ctl-m", "wrk-m", "oth-m")
    manager, node = lab["ctl-m"], lab["wrk-m"]
    async with deployed_swarm(machine, admin, lab, tmp_path) as (ns, _):
        ids = {name: swarm_node(manager, lab[lab_name].address)["ID"]
               for name, lab_name in ((WORKER, "wrk-m"), (OTHER, "oth-m"))}
        service = engine(manager).services.create(
            "busybox:lab", ["sleep", "3600"], name="sleepers", mode=docker.types.ServiceMode("replicated", 2),
            constraints=["node.role == worker"])
        def tasks(name: str) -> int:
            return tasks_running_on(manager, service, ids[name])

        await eventually(lambda: [tasks(WORKER), tasks(OTHER)] == [1, 1], "one task on each worker")

        await admin.patch(MACHINES, ns, WORKER, {"spec": {"maintenance": True}})
        await eventually(lambda: field_of(admin, MACHINES, ns, WORKER, "status", "maintenance"),
                          "in maintenance")
        assert swarm_node(manager, node.address)["Spec"]["Availability"] == "drain"
        assert tasks(WORKER) == 0
        await eventually(lambda: tasks(OTHER) == 2, "its task moved to the other worker")

        await admin.patch(MACHINES, ns, WORKER, {"spec": {"maintenance": False}})
        await eventually(lambda: swarm_node(manager, node.address)["Spec"]["Availability"] == "active",
                          "the node active again")
        assert await field_of(admin, MACHINES, ns, WORKER, "status", "maintenance") is False

        await admin.create(NODE_LOCKS, ns, {"apiVersion": API_VERSION, "kind": "NodeWorkloadLock",
                                            "metadata": {"name": f"{WORKER}-storage"},
                                            "spec": {"controllerName": "storage", "nodeName": WORKER}})
        await admin.create(NODE_REQUESTS, ns, {"apiVersion": API_VERSION, "kind": "NodeMaintenanceRequest",
                                               "metadata": {"name": "disk-swap"},
                                               "spec": {"nodeName": WORKER, "scope": "os"}})
        await eventually(lambda: field_of(admin, NODE_REQUESTS, ns, "disk-swap", "status", "message"),
                          "the request's verdict")
        assert await field_of(admin, NODE_REQUESTS, ns, "disk-swap", "status") == {
            "phase": "Waiting", "message": f"active: NodeWorkloadLock {WORKER}-storage of storage"}
        assert swarm_node(manager, node.address)["Spec"]["Availability"] == "active"  # the lock held it
        await admin.patch(NODE_LOCKS, ns, f"{WORKER}-storage", {"status": {"state": "inactive"}},
                          subresource="status")
        await eventually(lambda: swarm_node(manager, node.address)["Spec"]["Availability"] == "drain",
                          "drained once the lock let it")
        await admin.delete(NODE_REQUESTS, ns, "disk-swap")
        await eventually(lambda: swarm_node(manager, node.address)["Spec"]["Availability"] == "active",
                          "active again after the request")

