"""Injected faults as clients meet them (errors with Retry-After, latency, the CLI), and the simulator keeping
its objects across a restart. A real server does none of this on demand: these run on the simulator only."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from testbed.sim.faults import Faults
from testbed.sim.testing import (
    LCM_GROUP,
    LCM_VERSION,
    MACHINES,
    KubeApi,
    api_status,
    lcm_machine,
    merge_patch,
)

pytestmark = [pytest.mark.kube, pytest.mark.simulator("injected errors and latency, restarts of the server")]
LCMCTL = str(Path(sys.executable).with_name("lcmctl"))


async def get_machine(kube_api: KubeApi, name: str = "m1") -> dict[str, object]:
    objs = client.CustomObjectsApi(await kube_api.client())
    got: dict[str, object] = await objs.get_namespaced_custom_object(
        LCM_GROUP, LCM_VERSION, kube_api.namespace, MACHINES, name)
    return got


async def create_machine(kube_api: KubeApi, name: str = "m1") -> dict[str, object]:
    objs = client.CustomObjectsApi(await kube_api.client())
    created: dict[str, object] = await objs.create_namespaced_custom_object(
        LCM_GROUP, LCM_VERSION, kube_api.namespace, MACHINES, lcm_machine(name, kube_api.namespace))
    return created


async def test_injected_503_fails_once_then_requests_succeed(kube_api: KubeApi, faults: Faults) -> None:
    await create_machine(kube_api)
    faults.error(503, count=1, verb="get", resource=MACHINES)
    with pytest.raises(client.ApiException) as err:
        await get_machine(kube_api)
    assert err.value.status == 503
    assert err.value.headers is not None
    assert err.value.headers["Retry-After"] == "1"
    assert api_status(err.value)["reason"] == "ServiceUnavailable"
    assert (await get_machine(kube_api))["metadata"]["name"] == "m1"  # type: ignore[index]
    assert faults.rules == []


async def test_faults_match_only_their_target(kube_api: KubeApi, faults: Faults) -> None:
    await create_machine(kube_api)
    faults.error(500, verb="patch", resource=f"{MACHINES}/status")
    assert (await get_machine(kube_api))["kind"] == "LCMMachine"
    objs = client.CustomObjectsApi(await kube_api.client())
    with pytest.raises(client.ApiException) as err:
        await merge_patch(objs, kube_api.namespace, "m1", {"status": {"state": "Pending"}}, status=True)
    assert err.value.status == 500
    faults.clear()
    assert faults.rules == []


async def test_injected_latency_delays_matching_requests(kube_api: KubeApi, faults: Faults) -> None:
    await create_machine(kube_api)
    faults.latency(300, count=1, resource=MACHINES)
    start = time.monotonic()
    await get_machine(kube_api)
    assert time.monotonic() - start >= 0.3
    # Spent by that one request: the rule is gone, so nothing delays the next one (how fast it then is,
    # is the host's business, not an assertion's).
    assert faults.rules == []
    assert (await get_machine(kube_api))["metadata"]["name"] == "m1"  # type: ignore[index]


async def test_lcmctl_injects_faults_over_https(kube_api: KubeApi, faults: Faults) -> None:
    await create_machine(kube_api)
    proc = await asyncio.create_subprocess_exec(
        LCMCTL, "sim", "fault", "--kubeconfig", str(kube_api.kubeconfig_path),
        "error", "--code", "429", "--count", "1", "--verb", "get", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert json.loads(out)["rules"][0]["code"] == 429
    with pytest.raises(client.ApiException) as err:
        await get_machine(kube_api)
    assert err.value.status == 429


async def test_fault_endpoint_is_for_admins_only(kube_api: KubeApi, faults: Faults) -> None:
    sa = await kube_api.client(await kube_api.service_account_kubeconfig(kube_api.namespace, "intruder"))
    with pytest.raises(client.ApiException) as err:
        await sa.call_api("/sim/v1/faults", "POST", body={"action": "error", "code": 500},
                          header_params={"Content-Type": "application/json"}, auth_settings=["BearerToken"],
                          response_types_map={200: "object"})
    assert err.value.status == 403
    assert faults.rules == []


async def test_objects_survive_a_simulator_restart(kube_api: KubeApi, tmp_path: Path) -> None:
    created = await create_machine(kube_api)
    await kube_api.restart()
    got = await get_machine(kube_api)
    assert got["metadata"] == created["metadata"]
    assert got["spec"] == created["spec"]
