"""A GracefulRebootRequest the scheduler cannot act on says why on its status, as a user would look for it
(``kubectl get gracefulrebootrequest -o yaml``), instead of waiting on nothing."""

from __future__ import annotations

from typing import Any

import pytest
from scheduler_harness import (
    CLUSTERS,
    MACHINES,
    RELEASES,
    cluster_body,
    eventually,
    machine_body,
    release_body,
    running,
    scheduler,
)

from agent.adapters.kube import Kube, Resource
from agent.api.models import VERSION, GracefulRebootRequest
from testbed.sim.testing import KubeApi, field_of

pytestmark = pytest.mark.kube

REQUESTS = Resource(GracefulRebootRequest.GROUP, VERSION, GracefulRebootRequest.PLURAL)
PATIENCE = 60.0
"""Seconds any wait may take: the host is shared and loaded."""


async def _accepted(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    conditions = await field_of(kube, REQUESTS, ns, name, "status", "conditions") or []
    return next((c for c in conditions if c["type"] == "Accepted"), None)


async def _refused_for(reason: str, kube: Kube, ns: str, name: str) -> bool:
    accepted = await _accepted(kube, ns, name)
    return accepted is not None and (accepted["status"], accepted["reason"]) == ("False", reason)


async def test_a_request_named_like_no_cluster_is_refused_until_the_cluster_exists(kube_api: KubeApi,
                                                                                  kube: Kube) -> None:
    ns = kube_api.namespace
    await kube.create(REQUESTS, ns, {
        "apiVersion": f"{REQUESTS.group}/{REQUESTS.version}", "kind": "GracefulRebootRequest",
        "metadata": {"name": "late", "namespace": ns}, "spec": {"machines": ["m9"]}})
    async with running(scheduler(kube, ns)):
        await eventually(lambda: _refused_for("UnknownCluster", kube, ns, "late"), within=PATIENCE,
                         what="the request refused for want of its cluster")
        accepted = await _accepted(kube, ns, "late")
        assert accepted is not None
        assert accepted["message"] == f"no LCMCluster late in namespace {ns}"
        assert await field_of(kube, REQUESTS, ns, "late", "status", "pending") == []

        await kube.create(RELEASES, "", release_body("swarm-1.0.0", "1.0.0"))
        await kube.create(CLUSTERS, ns, cluster_body(ns, "swarm-1.0.0", name="late"))
        await kube.create(MACHINES, ns, machine_body(ns, "m0", "control", cluster="late"))
        await eventually(lambda: _refused_for("UnknownMachines", kube, ns, "late"), within=PATIENCE,
                         what="the request judged against the cluster now there")
        accepted = await _accepted(kube, ns, "late")
        assert accepted is not None
        assert accepted["message"] == "not machines of cluster late: m9"
