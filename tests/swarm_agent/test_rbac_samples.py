"""The deploy/rbac samples give each machine's agent what its swarm role needs and nothing more: checked
request by request with each machine's own ServiceAccount token against the test API's RBAC."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from machine_harness import MANAGER_SECRET, WORKER_SECRET, put_secret

from agent.adapters.kube import SECRETS, Kube, KubeError, connect
from agent.daemon.own_machine import LCMMACHINES
from agent.daemon.swarm_executor import EXECUTOR_LABEL, LCMCLUSTERSTATES
from testbed.sim.testing import KubeApi, lcm_machine

MACHINES = ("demo-control-0", "demo-worker-0", "demo-worker-1")
Call = Callable[[Kube, str, str], Awaitable[Any]]
"""(client, namespace, the calling machine) → the request."""


def secret(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": name},
            "data": {"token": base64.b64encode(b"t").decode()}}


CALLS: dict[str, Call] = {
    "get own machine": lambda k, ns, me: k.get(LCMMACHINES, ns, me),
    "watch own machine": lambda k, ns, me: k.list_objects(LCMMACHINES, ns,
                                                          field_selector=f"metadata.name={me}"),
    "patch own status": lambda k, ns, me: k.patch(LCMMACHINES, ns, me, {"status": {"progress": "0/0"}},
                                              subresource="status"),
    "get another machine": lambda k, ns, me: k.get(LCMMACHINES, ns, "demo-worker-1"),
    "patch another machine's status": lambda k, ns, me: k.patch(
        LCMMACHINES, ns, "demo-worker-1", {"status": {"swarmCordonDrain": "cordondraining"}},
        subresource="status"),
    "patch another machine's spec": lambda k, ns, me: k.patch(LCMMACHINES, ns, "demo-worker-1",
                                                          {"spec": {"haltAgent": True}}),
    "list all machines": lambda k, ns, me: k.list_objects(LCMMACHINES, ns),
    "get the worker token": lambda k, ns, me: k.get(SECRETS, ns, WORKER_SECRET),
    "get the manager token": lambda k, ns, me: k.get(SECRETS, ns, MANAGER_SECRET),
    "update the manager token": lambda k, ns, me: k.replace(SECRETS, ns, MANAGER_SECRET,
                                                            secret(MANAGER_SECRET)),
    "create a token secret": lambda k, ns, me: k.create(SECRETS, ns, secret("demo-swarm-extra-token")),
    "get another secret": lambda k, ns, me: k.get(SECRETS, ns, "unrelated"),
    "watch its cluster states": lambda k, ns, me: k.list_objects(
        LCMCLUSTERSTATES, ns, label_selector=f"{EXECUTOR_LABEL}=demo-control-0"),
    "report a cluster state": lambda k, ns, me: k.patch(LCMCLUSTERSTATES, ns, "sd-demo-worker-1",
                                                    {"status": {"value": "true"}}, subresource="status"),
    "change a cluster state": lambda k, ns, me: k.patch(LCMCLUSTERSTATES, ns, "sd-demo-worker-1",
                                                    {"spec": {"value": "false"}}),
}
ALLOWED = {
    "demo-control-0": {"get own machine", "watch own machine", "patch own status", "get another machine",
                       "patch another machine's status", "get the worker token", "get the manager token",
                       "update the manager token", "create a token secret", "watch its cluster states",
                       "report a cluster state"},
    "demo-worker-0": {"get own machine", "watch own machine", "patch own status", "get the worker token"},
}


@pytest.fixture
async def world(kube_api: KubeApi, admin: Kube) -> dict[str, Path]:
    """The sample cluster's objects, and each sample machine's kubeconfig."""
    ns = kube_api.namespace
    for name in MACHINES:
        await admin.create(LCMMACHINES, ns, lcm_machine(name, ns))
    for name in (MANAGER_SECRET, WORKER_SECRET, "unrelated"):
        await put_secret(admin, ns, name, {"token": "t"})
    await admin.create(LCMCLUSTERSTATES, ns, {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMClusterState",
        "metadata": {"name": "sd-demo-worker-1", "labels": {EXECUTOR_LABEL: "demo-control-0"}},
        "spec": {"clusterName": "demo", "type": "swarm-drain", "arg": "demo-worker-1", "value": "true"}})
    return {name: await kube_api.service_account_kubeconfig(ns, f"lcm-agent-{name}") for name in ALLOWED}


@pytest.mark.parametrize("who", sorted(ALLOWED))
async def test_each_machine_may_do_exactly_what_its_role_needs(
    kube_api: KubeApi, world: dict[str, Path], who: str,
) -> None:
    answers: dict[str, int] = {}
    async with await connect(kubeconfig=world[who]) as kube:
        for name, call in CALLS.items():
            try:
                await call(kube, kube_api.namespace, who)
                answers[name] = 200
            except KubeError as exc:
                answers[name] = exc.status
    assert answers == {name: 200 if name in ALLOWED[who] else 403 for name in CALLS}
