"""Authentication and RBAC as an agent meets them: its ServiceAccount token may touch its own LCMMachine and
its join Secret, by resourceNames, and nothing else."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest
from kubernetes_asyncio import client, watch

from testbed.kubeconfig import write_kubeconfig
from testbed.sim.testing import (
    LCM_GROUP,
    LCM_VERSION,
    MACHINES,
    KubeApi,
    api_status,
    lcm_machine,
    merge_patch,
)

pytestmark = pytest.mark.kube


def agent_role() -> client.V1Role:
    """What an agent's Role allows: its own machine (and status), its join Secret; nothing to list."""
    return client.V1Role(metadata=client.V1ObjectMeta(name="agent-m1"), rules=[
        client.V1PolicyRule(api_groups=[LCM_GROUP], resources=[MACHINES, f"{MACHINES}/status"],
                            resource_names=["m1"], verbs=["get", "watch", "patch"]),
        client.V1PolicyRule(api_groups=[""], resources=["secrets"], resource_names=["join-m1"],
                            verbs=["get"]),
    ])


def binding(ns: str, account: str) -> client.V1RoleBinding:
    return client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="agent-m1"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="agent-m1"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=ns)])


@pytest.fixture
async def agent_client(kube_api: KubeApi) -> client.ApiClient:
    """A client authenticated as ServiceAccount ``agent``, bound to ``agent_role``; m1, m2 and two Secrets
    exist."""
    admin, ns = await kube_api.client(), kube_api.namespace
    objs, core = client.CustomObjectsApi(admin), client.CoreV1Api(admin)
    for name in ("m1", "m2"):
        body = lcm_machine(name, ns)
        await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, body)
    for name in ("join-m1", "other"):
        data = {"token": base64.b64encode(name.encode()).decode()}
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=data)
        await core.create_namespaced_secret(ns, secret)
    rbac = client.RbacAuthorizationV1Api(admin)
    await rbac.create_namespaced_role(ns, agent_role())
    await rbac.create_namespaced_role_binding(ns, binding(ns, "agent"))
    return await kube_api.client(await kube_api.service_account_kubeconfig(ns, "agent"))


async def status_of(call: object) -> int:
    try:
        await call  # type: ignore[misc]
    except client.ApiException as exc:
        return int(exc.status)
    return 200


async def test_agent_may_read_watch_and_patch_its_own_machine(
    kube_api: KubeApi, agent_client: client.ApiClient,
) -> None:
    objs, ns = client.CustomObjectsApi(agent_client), kube_api.namespace
    got = await objs.get_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1")
    assert got["metadata"]["name"] == "m1"
    patched = await merge_patch(objs, ns, "m1", {"status": {"state": "Pending"}}, status=True)
    assert patched["status"]["state"] == "Pending"
    stream = watch.Watch().stream(objs.list_namespaced_custom_object, LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                  field_selector="metadata.name=m1", timeout_seconds=5)
    async with stream:
        event = await asyncio.wait_for(anext(stream), 5)
    assert (event["type"], event["raw_object"]["status"]["state"]) == ("ADDED", "Pending")


async def test_agent_may_read_only_its_join_secret(kube_api: KubeApi, agent_client: client.ApiClient) -> None:
    core, ns = client.CoreV1Api(agent_client), kube_api.namespace
    secret = await core.read_namespaced_secret("join-m1", ns)
    assert base64.b64decode(secret.data["token"]) == b"join-m1"
    assert await status_of(core.read_namespaced_secret("other", ns)) == 403
    assert await status_of(core.list_namespaced_secret(ns)) == 403


async def test_agent_is_refused_other_machines_with_the_api_servers_words(
    kube_api: KubeApi, agent_client: client.ApiClient,
) -> None:
    objs, ns = client.CustomObjectsApi(agent_client), kube_api.namespace
    with pytest.raises(client.ApiException) as err:
        await objs.get_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m2")
    status = api_status(err.value)
    assert (err.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        f'lcmmachines.lcm.mirantis.com "m2" is forbidden: User "system:serviceaccount:{ns}:agent" cannot get '
        f'resource "lcmmachines" in API group "lcm.mirantis.com" in the namespace "{ns}"')
    assert await status_of(objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES)) == 403
    delete = objs.delete_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1")
    assert await status_of(delete) == 403
    assert await status_of(merge_patch(objs, ns, "m2", {"status": {}}, status=True)) == 403


async def test_an_unknown_token_is_401(kube_api: KubeApi, tmp_path: Path) -> None:
    admin = (await kube_api.client()).configuration
    ca = await asyncio.to_thread(Path(admin.ssl_ca_cert).read_bytes) if admin.ssl_ca_cert else None
    bogus = write_kubeconfig(tmp_path / "bogus", str(admin.host), "not-a-token", ca_pem=ca, user="nobody")
    objs = client.CustomObjectsApi(await kube_api.client(bogus))
    with pytest.raises(client.ApiException) as err:
        await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, kube_api.namespace, MACHINES)
    assert err.value.status == 401
