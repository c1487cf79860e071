"""Object semantics as kubernetes_asyncio sees them over HTTPS: CRUD, patches, status, conflicts, schema
errors, selectors, Secrets. The same tests pass against a real cluster (``LCM_TEST_KUBECONFIG``)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from kubernetes_asyncio import client

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


async def machines_api(kube_api: KubeApi) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(await kube_api.client())


async def create(objs: client.CustomObjectsApi, ns: str, name: str, **kw: Any) -> dict[str, Any]:
    body = lcm_machine(name, ns, **kw)
    created: dict[str, Any] = await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES,
                                                                         body)
    return created


async def test_create_get_replace_delete_round_trip(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    created = await create(objs, ns, "m1", release="r1")
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"]
    assert meta["generation"] == 1
    assert await objs.get_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1") == created

    created["spec"]["release"] = "r2"
    replaced = await objs.replace_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1",
                                                           created)
    assert replaced["spec"]["release"] == "r2"
    assert replaced["metadata"]["generation"] == 2
    assert int(replaced["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    await objs.delete_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1")
    with pytest.raises(client.ApiException) as err:
        await objs.get_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1")
    assert err.value.status == 404
    assert api_status(err.value)["reason"] == "NotFound"


async def test_create_twice_is_409_already_exists(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    await create(objs, ns, "m1")
    with pytest.raises(client.ApiException) as err:
        await create(objs, ns, "m1")
    assert (err.value.status, api_status(err.value)["reason"]) == (409, "AlreadyExists")


async def test_schema_defaults_apply_on_create(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    body = lcm_machine("m1", ns, stateItems=[{"runner": "ansible", "name": "prep", "version": "1"}])
    del body["spec"]["type"]
    created = await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, body)
    assert created["spec"]["type"] == "unassigned"
    assert "phase" not in created["spec"]["stateItems"][0]  # no default: a phase-less item counts in none


async def test_merge_patch_and_json_patch(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    await create(objs, ns, "m1", labels={"keep": "yes"})
    merged = await merge_patch(objs, ns, "m1", {"spec": {"release": "r9"}})
    assert merged["spec"]["release"] == "r9"
    assert merged["spec"]["type"] == "worker"
    assert merged["metadata"]["labels"] == {"keep": "yes"}

    ops = [{"op": "replace", "path": "/spec/type", "value": "control"},
           {"op": "add", "path": "/metadata/labels/role", "value": "cp"}]
    patched = await objs.patch_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1", ops)
    assert patched["spec"]["type"] == "control"
    assert patched["metadata"]["labels"] == {"keep": "yes", "role": "cp"}
    assert patched["metadata"]["generation"] == 3


async def test_json_patch_test_op_failure_is_422(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    await create(objs, ns, "m1")
    ops = [{"op": "test", "path": "/spec/type", "value": "control"}]
    with pytest.raises(client.ApiException) as err:
        await objs.patch_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1", ops)
    assert err.value.status == 422


async def test_status_subresource_separates_spec_and_status(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    await create(objs, ns, "m1")
    both = {"status": {"state": "Pending"}, "spec": {"release": "ignored"}}
    with_status = await merge_patch(objs, ns, "m1", both, status=True)
    assert with_status["status"]["state"] == "Pending"
    assert "release" not in with_status["spec"]
    assert with_status["metadata"]["generation"] == 1

    via_main = await merge_patch(objs, ns, "m1", {"status": {"state": "Ready"}, "spec": {"release": "r2"}})
    assert via_main["status"]["state"] == "Pending"
    assert via_main["spec"]["release"] == "r2"
    assert via_main["metadata"]["generation"] == 2

    via_main["status"]["state"] = "Deploy"
    via_main["spec"]["release"] = "r3"
    replaced = await objs.replace_namespaced_custom_object_status(
        LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1", via_main)
    assert (replaced["status"]["state"], replaced["spec"]["release"]) == ("Deploy", "r2")
    assert replaced["metadata"]["generation"] == 2
    got = await objs.get_namespaced_custom_object_status(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1")
    assert got["status"]["state"] == "Deploy"


async def test_stale_resource_version_is_409_conflict(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    first = await create(objs, ns, "m1")
    await merge_patch(objs, ns, "m1", {"spec": {"release": "new"}})
    first["spec"]["release"] = "stale"
    with pytest.raises(client.ApiException) as err:
        await objs.replace_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1", first)
    assert (err.value.status, api_status(err.value)["reason"]) == (409, "Conflict")
    assert "the object has been modified" in api_status(err.value)["message"]


async def test_delete_precondition_on_a_stale_version_is_409(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    created = await create(objs, ns, "m1")
    await merge_patch(objs, ns, "m1", {"spec": {"release": "new"}})
    options = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=created["metadata"]["resourceVersion"]))
    with pytest.raises(client.ApiException) as err:
        await objs.delete_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, "m1", body=options)
    assert err.value.status == 409


@pytest.mark.parametrize(("spec", "field", "words"), [
    ({"type": "foo"}, "spec.type", 'Unsupported value: "foo"'),
    ({"stateItems": [{"runner": "ansible", "version": "1"}]}, "spec.stateItems[0].name", "Required value"),
    ({"rebootRequired": "yes"}, "spec.rebootRequired", "must be of type boolean"),
])
async def test_schema_violation_is_422_with_field_and_message(
    kube_api: KubeApi, spec: dict[str, Any], field: str, words: str,
) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    with pytest.raises(client.ApiException) as err:
        await create(objs, ns, "bad", **spec)
    status = api_status(err.value)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert words in status["message"]
    assert any(c["field"] == field and words in c["message"] for c in status["details"]["causes"])


async def test_dry_run_create_stores_nothing(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    body = lcm_machine("m1", ns)
    answer = await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, body,
                                                        dry_run="All")
    assert answer["metadata"]["name"] == "m1"
    listing = await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES)
    assert listing["items"] == []


async def test_list_with_label_and_field_selectors(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    for name, role in (("m1", "control"), ("m2", "worker"), ("m3", "worker")):
        await create(objs, ns, name, labels={"role": role, "test": ns})

    async def names(**selectors: Any) -> list[str]:
        listing = await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, **selectors)
        return sorted(o["metadata"]["name"] for o in listing["items"])

    assert await names(label_selector="role=worker") == ["m2", "m3"]
    assert await names(label_selector="role in (control),!absent") == ["m1"]
    assert await names(field_selector="metadata.name=m2") == ["m2"]
    assert await names(field_selector="metadata.name!=m2", label_selector="role=worker") == ["m3"]
    # Across namespaces, but only this test's: a shared server holds other tests' machines too.
    everywhere = await objs.list_cluster_custom_object(LCM_GROUP, LCM_VERSION, MACHINES,
                                                       label_selector=f"role,test={ns}")
    assert {o["metadata"]["namespace"] for o in everywhere["items"]} == {ns}
    assert len(everywhere["items"]) == 3


@pytest.mark.parametrize("selectors", [
    {"label_selector": "role in (a"},
    {"field_selector": "spec.type=worker"},
])
async def test_malformed_selector_is_400(kube_api: KubeApi, selectors: dict[str, Any]) -> None:
    objs = await machines_api(kube_api)
    with pytest.raises(client.ApiException) as err:
        await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, kube_api.namespace, MACHINES,
                                                 **selectors)
    assert err.value.status == 400


async def test_paginated_list_continues_to_the_end(kube_api: KubeApi) -> None:
    objs, ns = await machines_api(kube_api), kube_api.namespace
    for i in range(5):
        await create(objs, ns, f"m{i}")
    seen: list[str] = []
    token = ""
    while True:
        page = await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, ns, MACHINES, limit=2,
                                                        _continue=token)
        seen += [o["metadata"]["name"] for o in page["items"]]
        token = page["metadata"].get("continue", "")
        if not token:
            break
    assert seen == [f"m{i}" for i in range(5)]


async def test_secret_round_trip_through_core_v1(kube_api: KubeApi) -> None:
    core, ns = client.CoreV1Api(await kube_api.client()), kube_api.namespace
    token = base64.b64encode(b"SWMTKN-1-secret").decode()
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="join", labels={"app": "swarm"}),
                             data={"token": token}, type="Opaque")
    await core.create_namespaced_secret(ns, secret)
    got = await core.read_namespaced_secret("join", ns)
    assert got.data == {"token": token}
    assert got.type == "Opaque"
    patched = await core.patch_namespaced_secret("join", ns, {"metadata": {"labels": {"rotated": "1"}}})
    assert patched.metadata.labels == {"app": "swarm", "rotated": "1"}
    listed = await core.list_namespaced_secret(ns, label_selector="app=swarm")
    assert [s.metadata.name for s in listed.items] == ["join"]
    await core.delete_namespaced_secret("join", ns)
    assert (await core.list_namespaced_secret(ns, label_selector="app=swarm")).items == []


async def test_unknown_resource_is_404(kube_api: KubeApi) -> None:
    objs = await machines_api(kube_api)
    with pytest.raises(client.ApiException) as err:
        await objs.list_namespaced_custom_object(LCM_GROUP, LCM_VERSION, kube_api.namespace, "nosuchthings")
    assert err.value.status == 404


async def test_discovery_lists_the_crds_with_status_subresource(kube_api: KubeApi) -> None:
    api = await kube_api.client()
    groups = await client.ApisApi(api).get_api_versions()
    assert LCM_GROUP in [g.name for g in groups.groups]
    resources = await client.CustomObjectsApi(api).get_api_resources(LCM_GROUP, LCM_VERSION)
    by_name = {r.name: r for r in resources.resources}
    machines = by_name[MACHINES]
    assert (machines.kind, machines.namespaced, machines.short_names) == ("LCMMachine", True, ["lcmm"])
    assert {"get", "list", "watch", "patch"} <= set(machines.verbs)
    assert f"{MACHINES}/status" in by_name
    core = await client.CoreV1Api(api).get_api_resources()
    assert {"namespaces", "secrets", "serviceaccounts"} <= {r.name for r in core.resources}


async def test_lease_renewal_through_coordination_v1(kube_api: KubeApi) -> None:
    leases, ns = client.CoordinationV1Api(await kube_api.client()), kube_api.namespace
    lease = client.V1Lease(metadata=client.V1ObjectMeta(name="scheduler"),
                           spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15))
    stale = await leases.create_namespaced_lease(ns, lease)
    stale.spec.holder_identity = "b"
    renewed = await leases.replace_namespaced_lease("scheduler", ns, stale)
    assert renewed.spec.holder_identity == "b"
    stale.spec.holder_identity = "c"
    with pytest.raises(client.ApiException) as err:
        await leases.replace_namespaced_lease("scheduler", ns, stale)
    assert err.value.status == 409
    assert (await leases.read_namespaced_lease("scheduler", ns)).spec.holder_identity == "b"
