"""The protocol edges a client library normally hides: status codes for malformed requests, content types,
tables, health and OpenAPI documents, sent as raw requests through the client's own TLS and token."""

from __future__ import annotations

import json
import ssl
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from testbed.sim.testing import LCM_GROUP, LCM_VERSION, MACHINES, KubeApi, lcm_machine

pytestmark = pytest.mark.kube
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


async def request(
    kube_api: KubeApi, method: str, path: str, *, body: Any = None, content_type: str = "application/json",
    accept: str = "application/json", query: list[tuple[str, str]] | None = None, token: bool = True,
) -> tuple[int, dict[str, Any]]:
    """One raw request (bytes go as they are) with the kubeconfig's CA and credentials; returns the status
    code and the decoded JSON answer."""
    cfg = (await kube_api.client()).configuration
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    headers = {"Content-Type": content_type, "Accept": accept}
    bearer = await cfg.get_api_key_with_prefix("BearerToken")
    if token and bearer:
        headers["Authorization"] = bearer
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{cfg.host}{path}", params=query or [], data=data, headers=headers, ssl=ctx) as response:
        raw = await response.read()
        # A real server answers some 404s with plain text ("404 page not found"), not a Status.
        answer: dict[str, Any] = json.loads(raw) if raw.startswith(b"{") else {"text": raw.decode()}
        return response.status, answer


def machines_path(kube_api: KubeApi, name: str = "") -> str:
    path = f"/apis/{LCM_GROUP}/{LCM_VERSION}/namespaces/{kube_api.namespace}/{MACHINES}"
    return f"{path}/{name}" if name else path


@pytest.mark.parametrize(("query", "reason"), [
    ([("timeoutSeconds", "abc")], "BadRequest"),
    ([("labelSelector", "a in (")], "BadRequest"),
    ([("watch", "true"), ("labelSelector", "a in (")], "BadRequest"),
    ([("watch", "true"), ("fieldSelector", "spec.type=worker")], "BadRequest"),
])
async def test_malformed_parameters_are_400_before_any_stream(
    kube_api: KubeApi, query: list[tuple[str, str]], reason: str,
) -> None:
    code, status = await request(kube_api, "GET", machines_path(kube_api), query=query)
    assert (code, status["kind"], status["reason"]) == (400, "Status", reason)


@pytest.mark.parametrize(("method", "content_type", "body", "code"), [
    ("PATCH", "text/plain", b"{}", 415),
    ("PATCH", "application/json-patch+json", {"spec": {}}, 400),
    ("PATCH", "application/merge-patch+json", b"{not json", 400),
    ("PUT", "application/json", b"[1, 2]", 400),
])
async def test_bad_bodies_and_content_types(
    kube_api: KubeApi, method: str, content_type: str, body: Any, code: int,
) -> None:
    objs = client.CustomObjectsApi(await kube_api.client())
    await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, kube_api.namespace, MACHINES,
                                               lcm_machine("m1", kube_api.namespace))
    got, status = await request(kube_api, method, machines_path(kube_api, "m1"), body=body,
                                content_type=content_type)
    assert (got, status["kind"]) == (code, "Status")


@pytest.mark.parametrize(("content_type", "hint"), [
    ("application/apply-patch+yaml", "use client-side kubectl apply"),
    ("application/vnd.kubernetes.protobuf", "send JSON"),
])
@pytest.mark.simulator("how the simulator refuses what it lacks (a real server has both)")
async def test_encodings_the_simulator_lacks_are_415_with_a_hint(
    kube_api: KubeApi, content_type: str, hint: str,
) -> None:
    code, status = await request(kube_api, "PATCH", machines_path(kube_api, "m1"), body=b"k8s\x00",
                                 content_type=content_type)
    assert code == 415
    assert hint in status["message"]


async def test_yaml_bodies_are_accepted(kube_api: KubeApi) -> None:
    body = json.dumps(lcm_machine("y1", kube_api.namespace)).encode()
    code, created = await request(kube_api, "POST", machines_path(kube_api), body=body,
                                  content_type="application/yaml")
    assert (code, created["metadata"]["name"]) == (201, "y1")


async def test_requests_without_a_token_are_anonymous_and_403(kube_api: KubeApi) -> None:
    code, status = await request(kube_api, "GET", machines_path(kube_api), token=False)
    assert (code, status["reason"]) == (403, "Forbidden")
    assert 'User "system:anonymous"' in status["message"]
    code, status = await request(kube_api, "GET", "/apis", token=False)
    assert (code, status["reason"]) == (403, "Forbidden")


async def test_unknown_paths_are_404_and_wrong_methods_405(kube_api: KubeApi) -> None:
    assert (await request(kube_api, "GET", f"/apis/{LCM_GROUP}/v9/{MACHINES}"))[0] == 404
    assert (await request(kube_api, "GET", f"/apis/{LCM_GROUP}/{LCM_VERSION}/{MACHINES}/m1"))[0] == 404
    assert (await request(kube_api, "POST", f"/api/v1/namespaces/{kube_api.namespace}/secrets/s1",
                          body={}))[0] == 405


async def test_tables_carry_the_printer_columns(kube_api: KubeApi) -> None:
    objs = client.CustomObjectsApi(await kube_api.client())
    await objs.create_namespaced_custom_object(LCM_GROUP, LCM_VERSION, kube_api.namespace, MACHINES,
                                               lcm_machine("m1", kube_api.namespace))
    code, table = await request(kube_api, "GET", machines_path(kube_api), accept=TABLE)
    assert (code, table["kind"]) == (200, "Table")
    assert [c["name"] for c in table["columnDefinitions"]][:8] == [
        "Name", "Type", "State", "Pending", "Waiting", "Items", "Release", "Age"]
    assert table["rows"][0]["cells"][:2] == ["m1", "worker"]
    _, one = await request(kube_api, "GET", machines_path(kube_api, "m1"), accept=TABLE)
    assert [row["cells"][0] for row in one["rows"]] == ["m1"]


@pytest.mark.simulator("reads the simulator's minimal document; a real server's refers to shared parameters")
async def test_openapi_v3_declares_server_side_field_validation(kube_api: KubeApi) -> None:
    code, index = await request(kube_api, "GET", "/openapi/v3")
    assert code == 200
    url = index["paths"][f"apis/{LCM_GROUP}/{LCM_VERSION}"]["serverRelativeURL"]
    path, _, _ = url.partition("?")
    _, document = await request(kube_api, "GET", path)
    patches = [p["patch"] for p in document["paths"].values() if "patch" in p]
    machine = next(p for p in patches if p["x-kubernetes-group-version-kind"]["kind"] == "LCMMachine")
    assert "fieldValidation" in [param["name"] for param in machine["parameters"]]
    assert "application/merge-patch+json" in machine["requestBody"]["content"]
