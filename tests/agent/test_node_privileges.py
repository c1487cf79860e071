"""A node's credentials, as provisioning issues them, cannot rewrite the node's own orders (issue 15): with a
worker's token every escalation an attacker on the node would try is refused with 403, while everything its
agent needs works. The token is the one ``lcmctl cloud-init provision`` hands the machine (a bound
TokenRequest token), and the Role is the one it creates, so this is the node's real privilege."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.adapters.kube import SECRETS, Kube, KubeError, Resource, connect
from agent.api.names import agent_account
from regional.planning.contract import manager_token_secret, worker_token_secret
from regional.provisioning import LCMMACHINES, ROLES, agent_rules, credential_secret, provision
from testbed.sim.testing import KubeApi

pytestmark = pytest.mark.kube
BOTH_SERVERS = pytest.mark.parametrize("api_backend", ["kube", "sim"], indirect=True)
"""The real API server's RBAC decides; the simulator must agree with it."""

ME, OTHER, CLUSTER = "w-1", "w-2", "c1"
EVENTS = Resource("", "v1", "events")
RBAC_DIR = Path(__file__).parents[2] / "deploy" / "rbac"

Call = Callable[[Kube, str], Awaitable[Any]]


def event(ns: str) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{ME}.test", "namespace": ns},
            "involvedObject": {"apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "name": ME,
                               "namespace": ns},
            "reason": "Test", "message": "a node's event", "type": "Normal",
            "source": {"component": "lcm-agent", "host": ME}, "firstTimestamp": stamp, "lastTimestamp": stamp,
            "count": 1}


ALLOWED: dict[str, Call] = {
    "get its LCMMachine": lambda k, ns: k.get(LCMMACHINES, ns, ME),
    "list its LCMMachine by name": lambda k, ns: k.list_objects(LCMMACHINES, ns,
                                                                field_selector=f"metadata.name={ME}"),
    "patch its status": lambda k, ns: k.patch(LCMMACHINES, ns, ME, {"status": {"progress": "0/0"}},
                                              subresource="status"),
    "read its join token": lambda k, ns: k.get(SECRETS, ns, worker_token_secret(CLUSTER)),
    "create an Event": lambda k, ns: k.create(EVENTS, ns, event(ns)),
    "renew its own token": lambda k, ns: k.request_token(ns, agent_account(ME), seconds=600,
                                                         bound_secret=credential_secret(agent_account(ME))),
}
ESCALATIONS: dict[str, Call] = {
    "label its LCMMachine": lambda k, ns: k.patch(
        LCMMACHINES, ns, ME, {"metadata": {"labels": {"swarm.lcm.mirantis.com/tier": "secure"}}}),
    "make itself a control machine": lambda k, ns: k.patch(LCMMACHINES, ns, ME,
                                                          {"spec": {"type": "control"}}),
    "move itself to another cluster": lambda k, ns: k.patch(LCMMACHINES, ns, ME,
                                                           {"spec": {"clusterName": "other"}}),
    "cancel its deletion": lambda k, ns: k.patch(LCMMACHINES, ns, ME, {"spec": {"prepareDeletion": False}}),
    "remove its finalizer": lambda k, ns: k.patch(LCMMACHINES, ns, ME, {"metadata": {"finalizers": None}}),
    "replace its stateItems": lambda k, ns: k.patch(
        LCMMACHINES, ns, ME, [{"op": "replace", "path": "/spec/stateItems", "value": []}], kind="json"),
    "update its LCMMachine whole": lambda k, ns: _replace_own(k, ns),
    "delete its LCMMachine": lambda k, ns: k.delete(LCMMACHINES, ns, ME),
    "create an LCMMachine": lambda k, ns: k.create(LCMMACHINES, ns, {
        "apiVersion": "lcm.mirantis.com/v1alpha1", "kind": "LCMMachine", "metadata": {"name": "w-9"},
        "spec": {"clusterName": CLUSTER, "type": "control"}}),
    "read another machine": lambda k, ns: k.get(LCMMACHINES, ns, OTHER),
    "watch another machine": lambda k, ns: k.list_objects(LCMMACHINES, ns,
                                                          field_selector=f"metadata.name={OTHER}"),
    "list every machine": lambda k, ns: k.list_objects(LCMMACHINES, ns),
    "write another machine's status": lambda k, ns: k.patch(
        LCMMACHINES, ns, OTHER, {"status": {"progress": "9/9"}}, subresource="status"),
    "read another machine's credential Secret": lambda k, ns: k.get(
        SECRETS, ns, credential_secret(agent_account(OTHER))),
    "read the manager join token": lambda k, ns: k.get(SECRETS, ns, manager_token_secret(CLUSTER)),
    "list Secrets": lambda k, ns: k.list_objects(SECRETS, ns),
    "overwrite its join token": lambda k, ns: k.patch(SECRETS, ns, worker_token_secret(CLUSTER),
                                                      {"data": {"token": "eA=="}}),
    "get a token for another machine": lambda k, ns: k.request_token(ns, agent_account(OTHER), seconds=600),
    "widen its own Role": lambda k, ns: k.patch(ROLES, ns, agent_account(ME), {"rules": []}),
}


async def _replace_own(kube: Kube, ns: str) -> Any:
    """A PUT of the object as read, with the spec rewritten (the agent may read it, not write it)."""
    own = await kube.get(LCMMACHINES, ns, ME)
    own["spec"]["type"] = "control"
    return await kube.replace(LCMMACHINES, ns, ME, own)


@pytest.fixture
async def node_client(kube_api: KubeApi, tmp_path: Path) -> AsyncIterator[Kube]:
    """The worker ``ME`` provisioned as ``lcmctl cloud-init provision`` does, beside ``OTHER``, with the
    cluster's join tokens published; a client with ``ME``'s token, read from its file as the agent does."""
    ns = kube_api.namespace
    admin = await kube_api.kube()
    token = await provision(admin, ns, ME, cluster=CLUSTER, machine_type="worker")
    await provision(admin, ns, OTHER, cluster=CLUSTER, machine_type="worker")
    await admin.patch(LCMMACHINES, ns, ME, {"metadata": {"finalizers": ["lcm.mirantis.com/machine"]}})
    for name in (manager_token_secret(CLUSTER), worker_token_secret(CLUSTER)):
        await admin.create(SECRETS, ns, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                                         "data": {"token": base64.b64encode(b"join").decode()}})
    token_file = tmp_path / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    there = admin.endpoint
    yield await connect(server=there.server, ca_file=Path(there.ca_file) if there.ca_file else None,
                        token_file=token_file)
    # Nothing removes this finalizer on the test's behalf: left, it would keep the namespace from going.
    await admin.patch(LCMMACHINES, ns, ME, {"metadata": {"finalizers": None}})


async def outcome(call: Call, kube: Kube, ns: str) -> int:
    try:
        await call(kube, ns)
    except KubeError as exc:
        return exc.status
    return 200


@BOTH_SERVERS
async def test_a_worker_token_does_its_job_and_nothing_else(kube_api: KubeApi, node_client: Kube) -> None:
    ns = kube_api.namespace
    async with node_client:
        allowed = {name: await outcome(call, node_client, ns) for name, call in ALLOWED.items()}
        refused = {name: await outcome(call, node_client, ns) for name, call in ESCALATIONS.items()}
    assert allowed == dict.fromkeys(ALLOWED, 200)
    assert refused == dict.fromkeys(ESCALATIONS, 403)
    admin = await kube_api.kube()
    mine = await admin.get(LCMMACHINES, ns, ME)
    assert (mine["spec"]["type"], mine["spec"]["clusterName"]) == ("worker", CLUSTER)
    assert mine["metadata"]["finalizers"] == ["lcm.mirantis.com/machine"]
    assert "labels" not in mine["metadata"]


@BOTH_SERVERS
async def test_the_status_subresource_takes_status_only(kube_api: KubeApi, node_client: Kube) -> None:
    """What the Role allows (patch of ``/status``) cannot carry spec or metadata either: the API server
    keeps everything but the status of the object as it was."""
    ns = kube_api.namespace
    async with node_client:
        written = await node_client.patch(LCMMACHINES, ns, ME, {
            "metadata": {"labels": {"swarm.lcm.mirantis.com/tier": "secure"}, "finalizers": None},
            "spec": {"type": "control", "stateItems": []}, "status": {"progress": "1/1"}},
            subresource="status")
    assert written["status"]["progress"] == "1/1"
    assert written["spec"]["type"] == "worker"
    assert "labels" not in written["metadata"]
    assert written["metadata"]["finalizers"] == ["lcm.mirantis.com/machine"]


@pytest.mark.parametrize("manifest", sorted(p.name for p in RBAC_DIR.glob("[12]*.yaml")))
def test_the_sample_roles_are_the_ones_provisioning_makes(manifest: str) -> None:
    """deploy/rbac's Roles for the demo machines grant exactly what ``provision`` grants such a machine."""
    role = next(d for d in yaml.safe_load_all((RBAC_DIR / manifest).read_text()) if d["kind"] == "Role")
    machine = role["metadata"]["name"].removeprefix("lcm-agent-")
    machine_type = "control" if "control" in machine else "worker"
    expected = agent_rules(machine, machine_type=machine_type, cluster="demo")
    assert sorted(map(_canonical, role["rules"])) == sorted(map(_canonical, expected))


def _canonical(rule: dict[str, Any]) -> str:
    return yaml.safe_dump({k: sorted(v) for k, v in rule.items()}, sort_keys=True)
