"""A machine's identity in the regional API, as a provider issues it: its LCMMachine, a ServiceAccount, a
Role that lets that account do what the machine's agent needs and nothing more, and a bound token.

The token comes from a TokenRequest (``POST .../serviceaccounts/NAME/token``), the way a real cluster issues
credentials now (kube-controller-manager no longer fills token Secrets by default): it expires after
``lifetime`` seconds (the machine must first boot before that; the agent then renews it itself), and it is
bound to the machine's credential Secret (``<account>-credential``, empty): deleting that Secret revokes
every token the machine holds at once, renewed ones included, without touching its RBAC. Provisioning
again makes a new Secret if it is gone and issues a new token.
"""

from __future__ import annotations

from typing import Any

from agent.adapters.kube import SECRETS, Kube, KubeError, Resource
from agent.api.models import LCM_TYPE
from agent.api.names import agent_account
from regional.planning.contract import manager_token_secret, worker_token_secret

LCM_GROUP = "lcm.mirantis.com"
LCMMACHINES = Resource(LCM_GROUP, "v1alpha1", "lcmmachines")
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings")
BOOTSTRAP_LIFETIME = 7 * 24 * 3600
"""Seconds a provisioned token lives by default: the time a machine has to boot for the first time."""


class ProvisioningError(Exception):
    """The API refused part of a machine's identity; the message names the object and the reason."""


def credential_secret(account: str) -> str:
    """The Secret a machine's tokens are bound to: delete it to revoke them all."""
    return f"{account}-credential"


def agent_rules(machine: str, *, machine_type: str = "worker", cluster: str = "") -> list[dict[str, Any]]:
    """What a node agent may do (docs/security.md): read and watch its own LCMMachine (by name: the watch
    sends ``fieldSelector=metadata.name=…``, which kube-apiserver's RBAC takes as the request's name), write
    only its status, read its swarm join token, create Events, and renew its own token. A control machine
    also publishes the join tokens, executes its LCMClusterStates and drains the other machines (reads them
    and writes their status), as ``deploy/rbac/10-control-*.yaml`` says."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": [LCM_GROUP], "resources": ["lcmmachines"], "resourceNames": [machine],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [LCM_GROUP], "resources": ["lcmmachines/status"], "resourceNames": [machine],
         "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [agent_account(machine)],
         "verbs": ["create"]},
    ]
    control = machine_type == "control"
    if cluster:
        join = [manager_token_secret(cluster), worker_token_secret(cluster)] if control else [
            worker_token_secret(cluster)]
        rules.append({"apiGroups": [""], "resources": ["secrets"], "resourceNames": join,
                      "verbs": ["get", "update"] if control else ["get"]})
    if control:
        rules += [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [LCM_GROUP], "resources": ["lcmclusterstates"], "verbs": ["list", "watch"]},
            {"apiGroups": [LCM_GROUP], "resources": ["lcmclusterstates/status"], "verbs": ["patch"]},
            {"apiGroups": [LCM_GROUP], "resources": ["lcmmachines"], "verbs": ["get"]},
            {"apiGroups": [LCM_GROUP], "resources": ["lcmmachines/status"], "verbs": ["patch"]},
        ]
    return rules


async def ensure_namespace(kube: Kube, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await _create(kube, NAMESPACES, "", body)


async def provision(
    kube: Kube, namespace: str, machine: str, *, cluster: str, machine_type: str,
    lifetime: int = BOOTSTRAP_LIFETIME,
) -> str:
    """Create the LCMMachine and its access (each step tolerates an earlier run); returns a new token."""
    await _check_unique(kube, namespace, machine)
    await _create(kube, LCMMACHINES, namespace, {
        "apiVersion": f"{LCM_GROUP}/v1alpha1", "kind": "LCMMachine",
        "metadata": {"name": machine, "namespace": namespace},
        # lcm-agent's machines are Mirantis' ucp family (agent.api.models.LCM_TYPE): without it Mirantis'
        # rules keep a registered machine Uninitialized until the scheduler first plans it.
        "spec": {"clusterName": cluster, "type": machine_type, "lcmType": LCM_TYPE}})
    account = agent_account(machine)
    meta = {"name": account, "namespace": namespace}
    await _create(kube, SERVICE_ACCOUNTS, namespace,
                  {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
    await _create(kube, ROLES, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
        "rules": agent_rules(machine, machine_type=machine_type, cluster=cluster)})
    await _create(kube, ROLE_BINDINGS, namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    return await issue_token(kube, namespace, account, lifetime=lifetime)


async def issue_token(kube: Kube, namespace: str, account: str, *, lifetime: int = BOOTSTRAP_LIFETIME) -> str:
    """A new token of ServiceAccount ``account``, valid ``lifetime`` seconds and bound to its credential
    Secret (made if missing)."""
    secret = credential_secret(account)
    await _create(kube, SECRETS, namespace, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": secret, "namespace": namespace, "annotations": {
            "lcm.mirantis.com/purpose": f"the tokens of ServiceAccount {account} are bound to this Secret: "
                                        "deleting it revokes them all"}}})
    try:
        answer = await kube.request_token(namespace, account, seconds=lifetime, bound_secret=secret)
    except KubeError as exc:
        raise ProvisioningError(
            f"the API refused a token for ServiceAccount {namespace}/{account}: {exc}") from None
    token = str((answer.get("status") or {}).get("token", ""))
    if not token:
        raise ProvisioningError(
            f"the API answered the token request of {namespace}/{account} without a token")
    return token


async def _check_unique(kube: Kube, namespace: str, machine: str) -> None:
    """A machine's name is also its broker user (``deploy/mqtt/acl`` pins a node's topics to ``%u``, its
    name, and leaves the namespace segment open): two machines of one name in two namespaces would share
    one broker identity, and either could speak for the other on the MQTT plane. Refused here; a machine
    being deleted (or in a namespace being deleted) no longer counts."""
    try:
        found = await kube.list_objects(LCMMACHINES, field_selector=f"metadata.name={machine}")
        candidates = {m["metadata"]["namespace"] for m in found.get("items", [])
                      if not m["metadata"].get("deletionTimestamp")} - {namespace}
        elsewhere = [ns for ns in sorted(candidates)
                     if not (await kube.get(NAMESPACES, "", ns))["metadata"].get("deletionTimestamp")]
    except KubeError as exc:
        raise ProvisioningError(f"cannot check that the machine name {machine!r} is unique: {exc}") from None
    if elsewhere:
        raise ProvisioningError(
            f"an LCMMachine {machine!r} already exists in namespace {elsewhere[0]}: a machine's "
            "name is its MQTT broker user, so it must be unique across the namespaces one broker "
            "serves; choose another name")


async def _create(kube: Kube, res: Resource, namespace: str, body: dict[str, Any]) -> None:
    try:
        await kube.create(res, namespace, body)
    except KubeError as exc:
        if exc.status != 409:
            raise ProvisioningError(
                f"cannot create {body['kind']} {body['metadata']['name']}: {exc}") from None
