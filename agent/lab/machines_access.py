"""A machine's identity in the regional API, as a provider issues it: its LCMMachine, a ServiceAccount and
a Role that lets that account touch only that object (``resourceNames``), and the account's token.

The token is what the machine's user-data carries. Tokens come from a ``kubernetes.io/service-account-token``
Secret, which both a real API server (token controller) and the project's simulator fill in; a long-lived
Secret token rather than a TokenRequest one, because a machine may first boot long after it was provisioned.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from agent.adapters.kube import SECRETS, Kube, KubeError, Resource
from agent.lab.machines_host import LabError

LCM_GROUP = "lcm.mirantis.com"
LCMMACHINES = Resource(LCM_GROUP, "v1alpha1", "lcmmachines")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
TOKEN_WAIT = 10.0
"""Seconds the token controller may take to fill the token Secret in."""


def agent_rules(machine: str) -> list[dict[str, Any]]:
    """What a node agent may do: read and watch its own LCMMachine, and write its status."""
    return [
        {"apiGroups": [LCM_GROUP], "resources": ["lcmmachines"], "resourceNames": [machine],
         "verbs": ["get", "list", "watch", "patch"]},
        {"apiGroups": [LCM_GROUP], "resources": ["lcmmachines/status"], "resourceNames": [machine],
         "verbs": ["get", "patch", "update"]},
    ]


async def ensure_namespace(kube: Kube, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await _create(kube, NAMESPACES, "", body)


async def provision(kube: Kube, namespace: str, machine: str, *, cluster: str, machine_type: str) -> str:
    """Create the LCMMachine and its access (each step tolerates an earlier run); returns the token."""
    await _create(kube, LCMMACHINES, namespace, {
        "apiVersion": f"{LCM_GROUP}/v1alpha1", "kind": "LCMMachine",
        "metadata": {"name": machine, "namespace": namespace},
        "spec": {"clusterName": cluster, "type": machine_type}})
    account = f"lcm-agent-{machine}"
    meta = {"name": account, "namespace": namespace}
    await _create(kube, SERVICE_ACCOUNTS, namespace,
                  {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    await _create(kube, ROLES, namespace, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                           "metadata": meta, "rules": agent_rules(machine)})
    await _create(kube, ROLE_BINDINGS, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    return await issue_token(kube, namespace, account)


async def issue_token(kube: Kube, namespace: str, account: str) -> str:
    """The long-lived token of ServiceAccount ``account``, from its token Secret (made if missing)."""
    secret = f"{account}-token"
    await _create(kube, SECRETS, namespace, {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": secret, "namespace": namespace,
                     "annotations": {"kubernetes.io/service-account.name": account}}})
    for _ in range(int(TOKEN_WAIT * 20)):
        token = (await kube.get(SECRETS, namespace, secret)).get("data", {}).get("token")
        if token:
            return base64.b64decode(token).decode()
        await asyncio.sleep(0.05)
    raise LabError(f"the API never issued the token of ServiceAccount {namespace}/{account}")


async def _create(kube: Kube, res: Resource, namespace: str, body: dict[str, Any]) -> None:
    try:
        await kube.create(res, namespace, body)
    except KubeError as exc:
        if exc.status != 409:
            raise LabError(f"cannot create {body['kind']} {body['metadata']['name']}: {exc}") from None
